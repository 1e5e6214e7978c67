//! ffmpeg's argument vector for a [`TranscodePlan`]: one process for the whole ladder.
//!
//! - Input: FLV on stdin with short probing, so the first segment is not held back.
//! - Decode once: `split` the decoded video, then `fps` (when set) and `scale` per encoded
//!   rendition; audio is decoded once and encoded to AAC per variant.
//! - Aligned cuts: every encoded rendition forces keyframes at the same instants
//!   (`expr:gte(t,n_forced*K)`), without scene-cut keyframes, with `-g`/`-keyint_min` of
//!   one interval when the frame rate is known; the HLS muxer cuts on keyframes.
//! - Latency: x264's look-ahead buffers frames before the first one comes out, which delays
//!   the first segment; measured with two 2 s renditions, the first local playlists appeared
//!   about 2.5 s after the first frame with libx264's veryfast defaults, 2.3 s with a
//!   3-frame look-ahead, no sync look-ahead and sliced threads (set here), and 2.2 s with
//!   `-tune zerolatency`. Zerolatency also drops B-frames and macroblock-tree rate control,
//!   costing some 10-20 % of bit rate at equal quality, for 0.1 s; so it is not used.
//! - Output: the HLS muxer writes every rendition into its own folder of the run's output
//!   folder; `temp_file` makes a segment appear under its name only once complete, and the
//!   muxer rewrites the local playlist (atomically) only after that.

use std::ffi::OsString;
use std::path::Path;

use super::plan::{Container, PlannedRendition, TranscodePlan};

/// Name of ffmpeg's local media playlist inside each rendition folder.
pub const LOCAL_PLAYLIST: &str = "index.m3u8";
/// Segments kept in ffmpeg's local playlists: enough slack for a slow reader.
pub const LOCAL_LIST_SIZE: u32 = 12;
/// x264 options that shorten the encoder delay (see the module documentation).
pub const LOW_DELAY_X264_PARAMS: &str = "rc-lookahead=3:sync-lookahead=0:sliced-threads=1";

/// Builds the arguments (without the program name) for one run writing into `output_dir`.
/// `source_frame_rate` sets the keyframe distance of renditions without their own rate.
pub fn ffmpeg_args(plan: &TranscodePlan, output_dir: &Path, source_frame_rate: Option<f64>) -> Vec<OsString> {
    let mut args = Args::default();
    args.push_all(["-hide_banner", "-nostdin", "-loglevel", "warning"]);
    // Input: FLV on stdin. The FLV demuxer learns codecs from the sequence headers, so a
    // short probe suffices; no frame rate probing (it would wait for 20 frames).
    args.push_all(["-probesize", "65536", "-analyzeduration", "500000", "-fpsprobesize", "0"]);
    args.push_all(["-f", "flv", "-i", "pipe:0"]);

    let encoded: Vec<(usize, &PlannedRendition)> = plan
        .renditions
        .iter()
        .enumerate()
        .filter(|(_, rendition)| matches!(rendition, PlannedRendition::Encoded { .. }))
        .collect();
    if !encoded.is_empty() {
        args.push_all(["-filter_complex", &filter_graph(&encoded)]);
    }
    for (index, rendition) in plan.renditions.iter().enumerate() {
        match rendition {
            PlannedRendition::Encoded { .. } => args.push_all(["-map", &format!("[v{index}]")]),
            PlannedRendition::Passthrough { .. } => args.push_all(["-map", "0:v:0"]),
        }
    }
    for _ in &plan.renditions {
        args.push_all(["-map", "0:a:0"]);
    }
    for (index, rendition) in plan.renditions.iter().enumerate() {
        video_encoder_args(&mut args, plan, index, rendition, source_frame_rate);
        audio_encoder_args(&mut args, plan, index, rendition);
    }
    hls_args(&mut args, plan, output_dir);
    args.push_all(["-progress", "pipe:1", "-nostats"]);
    args.push(output_dir.join("%v").join(LOCAL_PLAYLIST));
    args.0
}

/// `[0:v]split=N[s0][s1]...;[s0]fps=30,scale=...[v0];...`, labelled by rendition index.
fn filter_graph(encoded: &[(usize, &PlannedRendition)]) -> String {
    let mut chains = Vec::with_capacity(encoded.len() + 1);
    let inputs: Vec<String> = if encoded.len() == 1 {
        vec!["[0:v]".to_string()]
    } else {
        let labels: Vec<String> = encoded.iter().map(|(index, _)| format!("[s{index}]")).collect();
        chains.push(format!("[0:v]split={}{}", encoded.len(), labels.concat()));
        labels
    };
    for ((index, rendition), input) in encoded.iter().zip(inputs) {
        let PlannedRendition::Encoded { width, height, frame_rate, .. } = rendition else { continue };
        let fps = frame_rate.map(|rate| format!("fps={rate},")).unwrap_or_default();
        chains.push(format!("{input}{fps}scale=w={width}:h={height},setsar=1,format=yuv420p[v{index}]"));
    }
    chains.join(";")
}

fn video_encoder_args(
    args: &mut Args,
    plan: &TranscodePlan,
    index: usize,
    rendition: &PlannedRendition,
    source_frame_rate: Option<f64>,
) {
    let stream = |option: &str| format!("-{option}:v:{index}");
    let PlannedRendition::Encoded { video_kbps, frame_rate, profile, .. } = rendition else {
        args.pair(&stream("c"), "copy");
        return;
    };
    let max_kbps = rendition.max_video_kbps().unwrap_or(*video_kbps);
    let interval = plan.keyframe_interval_s.max(1);
    args.pair(&stream("c"), "libx264");
    args.pair(&stream("preset"), &plan.preset);
    args.pair(&stream("profile"), profile.x264_name());
    args.pair(&stream("b"), &format!("{video_kbps}k"));
    args.pair(&stream("maxrate"), &format!("{max_kbps}k"));
    args.pair(&stream("bufsize"), &format!("{max_kbps}k"));
    args.pair(&stream("x264-params"), LOW_DELAY_X264_PARAMS);
    let fps =
        frame_rate.map(f64::from).or(source_frame_rate).filter(|fps| fps.is_finite() && *fps > 0.0 && *fps <= 240.0);
    if let Some(fps) = fps {
        // The rounded product: 29.97 fps every 2 s gives 60 frames.
        let gop = ((fps * f64::from(interval)).round() as u32).max(1).to_string();
        args.pair(&stream("g"), &gop);
        args.pair(&stream("keyint_min"), &gop);
    }
    args.pair(&stream("sc_threshold"), "0");
    args.pair(&stream("force_key_frames"), &format!("expr:gte(t,n_forced*{interval})"));
}

fn audio_encoder_args(args: &mut Args, plan: &TranscodePlan, index: usize, rendition: &PlannedRendition) {
    let stream = |option: &str| format!("-{option}:a:{index}");
    if let PlannedRendition::Passthrough { .. } = rendition {
        args.pair(&stream("c"), "copy");
        return;
    }
    // FLV timestamps are whole milliseconds; resampling against them keeps AAC frames
    // evenly spaced (otherwise the MP4 muxer sees negative packet durations).
    args.pair(&stream("filter"), "aresample=async=1");
    args.pair(&stream("c"), "aac");
    args.pair(&stream("b"), &format!("{}k", plan.audio.bitrate_kbps));
    args.pair(&stream("ar"), &plan.audio.sample_rate.to_string());
    args.pair(&stream("ac"), &plan.audio.channels.to_string());
}

fn hls_args(args: &mut Args, plan: &TranscodePlan, output_dir: &Path) {
    let (segment_type, extension) = match plan.container {
        Container::Fmp4 => ("fmp4", "m4s"),
        Container::Ts => ("mpegts", "ts"),
    };
    args.push_all(["-f", "hls"]);
    args.push_all(["-hls_time", &plan.segment_duration_s.max(1).to_string()]);
    args.push_all(["-hls_list_size", &LOCAL_LIST_SIZE.to_string()]);
    args.push_all(["-hls_flags", "+independent_segments+temp_file"]);
    args.push_all(["-hls_segment_type", segment_type]);
    if plan.container == Container::Fmp4 {
        args.push_all(["-hls_fmp4_init_filename", "init.mp4"]);
    }
    args.push_all(["-hls_segment_filename"]);
    args.push(output_dir.join("%v").join(format!("seg_%d.{extension}")));
    let map: Vec<String> = plan
        .renditions
        .iter()
        .enumerate()
        .map(|(index, rendition)| format!("v:{index},a:{index},name:{}", rendition.name()))
        .collect();
    args.push_all(["-var_stream_map", &map.join(" ")]);
}

/// An argument vector being built.
#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push(&mut self, value: impl Into<OsString>) {
        self.0.push(value.into());
    }

    fn push_all<'a>(&mut self, values: impl IntoIterator<Item = &'a str>) {
        self.0.extend(values.into_iter().map(OsString::from));
    }

    fn pair(&mut self, option: &str, value: &str) {
        self.push_all([option, value]);
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::transcode::plan::{AudioPlan, Profile};

    fn plan(renditions: Vec<PlannedRendition>, container: Container) -> TranscodePlan {
        TranscodePlan {
            renditions,
            audio: AudioPlan { bitrate_kbps: 96, sample_rate: 44_100, channels: 2 },
            preset: "veryfast".into(),
            keyframe_interval_s: 2,
            segment_duration_s: 4,
            container,
            ffmpeg: PathBuf::from("ffmpeg"),
            scratch_dir: PathBuf::from("/scratch"),
        }
    }

    fn rendition(name: &str, width: u32, height: u32, frame_rate: Option<u32>) -> PlannedRendition {
        PlannedRendition::Encoded {
            name: name.into(),
            width,
            height,
            video_kbps: 1000,
            max_kbps: None,
            frame_rate,
            profile: Profile::Main,
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string_lossy().into_owned()).collect()
    }

    /// The value following `option`, which must appear exactly once.
    fn value<'a>(args: &'a [String], option: &str) -> &'a str {
        let positions: Vec<usize> =
            args.iter().enumerate().filter(|(_, arg)| *arg == option).map(|(index, _)| index).collect();
        assert_eq!(positions.len(), 1, "{option} appears {} times in {args:?}", positions.len());
        &args[positions[0] + 1]
    }

    #[test]
    fn two_rung_fmp4_ladder() {
        let plan =
            plan(vec![rendition("720p", 1280, 720, None), rendition("360p", 640, 360, Some(15))], Container::Fmp4);
        let args = strings(&ffmpeg_args(&plan, Path::new("/scratch/run-3"), Some(30.0)));
        let input = args.iter().position(|arg| arg == "-i").unwrap();
        assert_eq!(&args[input - 2..input + 2], ["-f", "flv", "-i", "pipe:0"]);
        assert_eq!(
            value(&args, "-filter_complex"),
            "[0:v]split=2[s0][s1];[s0]scale=w=1280:h=720,setsar=1,format=yuv420p[v0];[s1]fps=15,scale=w=640:h=360,setsar=1,format=yuv420p[v1]"
        );
        let maps: Vec<&str> = args.windows(2).filter(|pair| pair[0] == "-map").map(|pair| pair[1].as_str()).collect();
        assert_eq!(maps, ["[v0]", "[v1]", "0:a:0", "0:a:0"]);
        assert_eq!(value(&args, "-c:v:0"), "libx264");
        assert_eq!(value(&args, "-b:v:0"), "1000k");
        assert_eq!(value(&args, "-maxrate:v:0"), "1500k");
        assert_eq!(value(&args, "-bufsize:v:0"), "1500k");
        assert_eq!(value(&args, "-profile:v:1"), "main");
        assert_eq!(value(&args, "-preset:v:1"), "veryfast");
        assert_eq!(value(&args, "-g:v:0"), "60");
        assert_eq!(value(&args, "-keyint_min:v:0"), "60");
        assert_eq!(value(&args, "-g:v:1"), "30", "15 fps rendition: 15 frames a second, every 2 s");
        assert_eq!(value(&args, "-sc_threshold:v:1"), "0");
        assert_eq!(value(&args, "-force_key_frames:v:0"), "expr:gte(t,n_forced*2)");
        assert_eq!(value(&args, "-force_key_frames:v:1"), "expr:gte(t,n_forced*2)");
        assert_eq!(value(&args, "-c:a:1"), "aac");
        assert_eq!(value(&args, "-filter:a:1"), "aresample=async=1");
        assert_eq!(value(&args, "-b:a:1"), "96k");
        assert_eq!(value(&args, "-ar:a:0"), "44100");
        assert_eq!(value(&args, "-hls_time"), "4");
        assert_eq!(value(&args, "-hls_segment_type"), "fmp4");
        assert_eq!(value(&args, "-hls_fmp4_init_filename"), "init.mp4");
        assert!(value(&args, "-hls_flags").contains("+temp_file"));
        assert!(value(&args, "-hls_flags").contains("+independent_segments"));
        assert_eq!(value(&args, "-hls_segment_filename"), "/scratch/run-3/%v/seg_%d.m4s");
        assert_eq!(value(&args, "-var_stream_map"), "v:0,a:0,name:720p v:1,a:1,name:360p");
        assert_eq!(value(&args, "-progress"), "pipe:1");
        assert!(args.contains(&"-nostats".to_string()));
        assert_eq!(args.last().unwrap(), "/scratch/run-3/%v/index.m3u8");
    }

    #[test]
    fn passthrough_and_ts() {
        let plan = plan(
            vec![PlannedRendition::Passthrough { name: "source".into() }, rendition("low", 320, 180, None)],
            Container::Ts,
        );
        let args = strings(&ffmpeg_args(&plan, Path::new("/out"), None));
        assert_eq!(value(&args, "-filter_complex"), "[0:v]scale=w=320:h=180,setsar=1,format=yuv420p[v1]");
        let maps: Vec<&str> = args.windows(2).filter(|pair| pair[0] == "-map").map(|pair| pair[1].as_str()).collect();
        assert_eq!(maps, ["0:v:0", "[v1]", "0:a:0", "0:a:0"]);
        assert_eq!(value(&args, "-c:v:0"), "copy");
        assert_eq!(value(&args, "-c:a:0"), "copy");
        assert_eq!(value(&args, "-c:v:1"), "libx264");
        assert!(!args.iter().any(|arg| arg.starts_with("-g:")), "no GOP size without a known frame rate");
        assert_eq!(value(&args, "-force_key_frames:v:1"), "expr:gte(t,n_forced*2)");
        assert_eq!(value(&args, "-hls_segment_type"), "mpegts");
        assert!(!args.contains(&"-hls_fmp4_init_filename".to_string()));
        assert_eq!(value(&args, "-hls_segment_filename"), "/out/%v/seg_%d.ts");
        assert_eq!(value(&args, "-var_stream_map"), "v:0,a:0,name:source v:1,a:1,name:low");
    }

    #[test]
    fn ntsc_rate_rounds_gop() {
        let plan = plan(vec![rendition("a", 640, 360, None)], Container::Fmp4);
        let args = strings(&ffmpeg_args(&plan, Path::new("/out"), Some(29.97)));
        assert_eq!(value(&args, "-g:v:0"), "60");
        let args = strings(&ffmpeg_args(&plan, Path::new("/out"), Some(f64::NAN)));
        assert!(!args.contains(&"-g:v:0".to_string()));
    }
}
