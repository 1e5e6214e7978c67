//! ffmpeg's argument vector for a [`TranscodePlan`]: one process for the whole ladder.
//!
//! - Input: FLV on stdin (Matroska for HEVC and AV1, see `gate`) with short probing, so
//!   the first segment is not held back.
//! - Decode once: `split` the decoded video, then `fps` (when set) and `scale` per encoded
//!   rendition; audio is decoded once and encoded to AAC per variant.
//! - Aligned cuts: every encoded rendition forces keyframes at the same instants
//!   (`expr:gte(t,n_forced*K)`), without scene-cut keyframes, with `-g`/`-keyint_min` of
//!   one interval when the frame rate is known.
//! - Latency: x264's look-ahead buffers frames before the first one comes out, which delays
//!   every part; measured with two 2 s renditions, the first local playlists appeared
//!   about 2.5 s after the first frame with libx264's veryfast defaults, 2.3 s with a
//!   3-frame look-ahead, no sync look-ahead and sliced threads (set here), and 2.2 s with
//!   `-tune zerolatency`. Zerolatency also drops B-frames and macroblock-tree rate control,
//!   costing some 10-20 % of bit rate at equal quality, for 0.1 s; so it is not used.
//! - Output, fMP4: one fragmented MP4 stream per rendition (video and audio muxed), written
//!   to the Unix socket `{index}.sock` of the run's folder, where the packager reads it. A
//!   fragment starts at every keyframe and after the fragment duration; the stream has no
//!   trailer. Sources without audio get video-only renditions (`-map 0:a:0?`).
//! - Output, MPEG-TS: the HLS muxer writes every rendition into its own folder of the run's
//!   folder; `temp_file` makes a segment appear under its name only once complete, and the
//!   muxer rewrites the local playlist (atomically) only after that.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::gate::InputFormat;
use super::plan::{Container, PlannedRendition, SourceFormat, TranscodePlan};
use super::poster::{POSTER_FILE, POSTER_INTERVAL};
use crate::media::video_tag::VideoCodec;

/// Name of ffmpeg's local media playlist inside each rendition folder (MPEG-TS).
pub const LOCAL_PLAYLIST: &str = "index.m3u8";
/// Segments kept in ffmpeg's local playlists: enough slack for a slow reader.
pub const LOCAL_LIST_SIZE: u32 = 12;
/// x264 options that shorten the encoder delay (see the module documentation).
pub const LOW_DELAY_X264_PARAMS: &str = "rc-lookahead=3:sync-lookahead=0:sliced-threads=1";

/// The socket a run's fMP4 output of rendition `index` goes to.
pub fn fragment_socket(output_dir: &Path, index: usize) -> PathBuf {
    output_dir.join(format!("{index}.sock"))
}

/// Builds the arguments (without the program name) for one run writing into `output_dir`.
pub fn ffmpeg_args(plan: &TranscodePlan, output_dir: &Path, source: SourceFormat) -> Vec<OsString> {
    let mut args = Args::default();
    args.push_all(["-hide_banner", "-nostdin", "-loglevel", "warning"]);
    // Input on stdin. Both demuxers learn codecs from the configuration records, so a
    // short probe suffices; no frame rate probing (it would wait for 20 frames).
    args.push_all(["-probesize", "65536", "-analyzeduration", "500000", "-fpsprobesize", "0"]);
    args.push_all(["-f", InputFormat::for_source(&source).demuxer(), "-i", "pipe:0"]);

    let encoded: Vec<(usize, &PlannedRendition)> = plan
        .renditions
        .iter()
        .enumerate()
        .filter(|(_, rendition)| matches!(rendition, PlannedRendition::Encoded { .. }))
        .collect();
    let poster = plan.poster.filter(|_| !encoded.is_empty());
    if !encoded.is_empty() {
        args.push_all(["-filter_complex", &filter_graph(&encoded, poster)]);
    }
    args.push_all(["-progress", "pipe:1", "-nostats"]);
    match plan.container {
        Container::Fmp4 => fragmented_outputs(&mut args, plan, output_dir, source),
        Container::Ts => hls_output(&mut args, plan, output_dir, source.frame_rate),
    }
    if poster.is_some() {
        poster_output(&mut args, output_dir);
    }
    args.0
}

/// The poster: one JPEG every [`POSTER_INTERVAL`], written over the last atomically.
fn poster_output(args: &mut Args, output_dir: &Path) {
    args.push_all(["-map", "[poster]", "-an", "-c:v", "mjpeg", "-q:v", "5", "-fps_mode", "passthrough"]);
    args.push_all(["-f", "image2", "-update", "1", "-atomic_writing", "1"]);
    args.push(output_dir.join(POSTER_FILE));
}

/// One fragmented MP4 output per rendition, each with its own video and audio stream.
fn fragmented_outputs(args: &mut Args, plan: &TranscodePlan, output_dir: &Path, source: SourceFormat) {
    for (index, rendition) in plan.renditions.iter().enumerate() {
        match rendition {
            PlannedRendition::Encoded { .. } => args.push_all(["-map", &format!("[v{index}]")]),
            PlannedRendition::Passthrough { .. } => args.push_all(["-map", "0:v:0"]),
            PlannedRendition::Audio { .. } => {}
        }
        if plan.has_audio {
            // Optional: a source that announced audio but sends none still plays.
            args.push_all(["-map", "0:a:0?"]);
        }
        video_encoder_args(args, plan, rendition, "", source.frame_rate);
        if matches!(rendition, PlannedRendition::Passthrough { .. }) && source.codec == VideoCodec::Hevc {
            // `hvc1` (parameter sets in the sample entry), which Apple's players require.
            args.pair("-tag:v", "hvc1");
        }
        if plan.has_audio {
            audio_encoder_args(args, plan, rendition, "");
        }
        args.push_all(["-f", "mp4", "-movflags", "+frag_keyframe+empty_moov+default_base_moof+skip_trailer"]);
        // Every audio frame is a sync sample: audio alone is cut by duration even when
        // parts are off, a quarter of a segment, or each frame would be a fragment.
        let audio_fragments = matches!(rendition, PlannedRendition::Audio { .. })
            .then(|| Duration::from_secs(u64::from(plan.segment_duration_s.max(1))) / 4);
        if let Some(duration) = plan.fragment_duration.filter(|d| !d.is_zero()).or(audio_fragments) {
            let fps = match rendition {
                PlannedRendition::Encoded { frame_rate: Some(rate), .. } => Some(f64::from(*rate)),
                _ => source.frame_rate,
            };
            args.push_all(["-frag_duration", &fragment_duration_us(duration, fps).to_string()]);
        }
        let mut target = OsString::from("unix:");
        target.push(fragment_socket(output_dir, index));
        args.push(target);
    }
}

/// The `-frag_duration` that makes parts as long as possible within `part_target`.
///
/// ffmpeg cuts a fragment before the first packet, of any stream, that is at least
/// `-frag_duration` past the first packet of its own stream in the fragment. With a known
/// frame rate, asking for a microsecond less than the whole frames that fit makes the
/// video frame after them cut: at 0.4 s, 12 frames at 30 fps and 10 at 25 fps, five whole
/// parts to a 2 s segment. Audio packets, interleaved by time, never reach that point
/// first, so no fragment is cut between the last frame of a segment and its keyframe
/// (such a fragment would hold audio only). Without a frame rate, a tenth less than the
/// target keeps parts within it at 20 fps and more.
fn fragment_duration_us(part_target: Duration, frame_rate: Option<f64>) -> u64 {
    let target = part_target.as_secs_f64();
    match frame_rate.filter(|fps| fps.is_finite() && *fps > 0.0 && *fps <= 240.0) {
        Some(fps) if (target * fps + 1e-6).floor() >= 1.0 => {
            let frames = (target * fps + 1e-6).floor();
            ((frames / fps * 1e6).floor() as u64).saturating_sub(1).max(1)
        }
        _ => ((target * 0.9 * 1e6).round() as u64).max(1),
    }
}

/// The HLS muxer, writing every rendition (a video and an audio stream each) into its
/// own folder.
fn hls_output(args: &mut Args, plan: &TranscodePlan, output_dir: &Path, source_frame_rate: Option<f64>) {
    for (index, rendition) in plan.renditions.iter().enumerate() {
        match rendition {
            PlannedRendition::Encoded { .. } => args.push_all(["-map", &format!("[v{index}]")]),
            PlannedRendition::Passthrough { .. } => args.push_all(["-map", "0:v:0"]),
            PlannedRendition::Audio { .. } => {}
        }
    }
    if plan.has_audio {
        for _ in &plan.renditions {
            args.push_all(["-map", "0:a:0"]);
        }
    }
    for (index, rendition) in plan.renditions.iter().enumerate() {
        let suffix = format!(":{index}");
        video_encoder_args(args, plan, rendition, &suffix, source_frame_rate);
        if plan.has_audio {
            audio_encoder_args(args, plan, rendition, &suffix);
        }
    }
    args.push_all(["-f", "hls"]);
    args.push_all(["-hls_time", &plan.segment_duration_s.max(1).to_string()]);
    args.push_all(["-hls_list_size", &LOCAL_LIST_SIZE.to_string()]);
    args.push_all(["-hls_flags", "+independent_segments+temp_file"]);
    args.push_all(["-hls_segment_type", "mpegts"]);
    args.push_all(["-hls_segment_filename"]);
    args.push(output_dir.join("%v").join("seg_%d.ts"));
    let map: Vec<String> = plan
        .renditions
        .iter()
        .enumerate()
        .map(|(index, rendition)| match (rendition, plan.has_audio) {
            (PlannedRendition::Audio { name }, _) => format!("a:{index},name:{name}"),
            (_, true) => format!("v:{index},a:{index},name:{}", rendition.name()),
            (_, false) => format!("v:{index},name:{}", rendition.name()),
        })
        .collect();
    args.push_all(["-var_stream_map", &map.join(" ")]);
    args.push(output_dir.join("%v").join(LOCAL_PLAYLIST));
}

/// `[0:v]split=N[s0][s1]...;[s0]fps=30,scale=...[v0];...`, labelled by rendition index,
/// and with a poster size, a branch `[poster]` of one picture per [`POSTER_INTERVAL`].
fn filter_graph(encoded: &[(usize, &PlannedRendition)], poster: Option<(u32, u32)>) -> String {
    let mut chains = Vec::with_capacity(encoded.len() + 2);
    let branches = encoded.len() + usize::from(poster.is_some());
    let inputs: Vec<String> = if branches == 1 {
        vec!["[0:v]".to_string()]
    } else {
        let mut labels: Vec<String> = encoded.iter().map(|(index, _)| format!("[s{index}]")).collect();
        labels.extend(poster.map(|_| "[sposter]".to_string()));
        chains.push(format!("[0:v]split={branches}{}", labels.concat()));
        labels
    };
    if let Some((width, height)) = poster {
        let every = POSTER_INTERVAL.as_secs().max(1);
        chains.push(format!("[sposter]fps=1/{every},scale=w={width}:h={height},setsar=1,format=yuvj420p[poster]"));
    }
    for ((index, rendition), input) in encoded.iter().zip(inputs) {
        let PlannedRendition::Encoded { width, height, frame_rate, .. } = rendition else { continue };
        let fps = frame_rate.map(|rate| format!("fps={rate},")).unwrap_or_default();
        chains.push(format!("{input}{fps}scale=w={width}:h={height},setsar=1,format=yuv420p[v{index}]"));
    }
    chains.join(";")
}

/// Video encoding options of one rendition; `suffix` is the stream index within a shared
/// output (`:2`), or empty when the rendition has an output of its own.
fn video_encoder_args(
    args: &mut Args,
    plan: &TranscodePlan,
    rendition: &PlannedRendition,
    suffix: &str,
    source_frame_rate: Option<f64>,
) {
    let stream = |option: &str| format!("-{option}:v{suffix}");
    let (video_kbps, frame_rate, profile) = match rendition {
        PlannedRendition::Encoded { video_kbps, frame_rate, profile, .. } => (video_kbps, frame_rate, profile),
        PlannedRendition::Passthrough { .. } => return args.pair(&stream("c"), "copy"),
        PlannedRendition::Audio { .. } => return,
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

fn audio_encoder_args(args: &mut Args, plan: &TranscodePlan, rendition: &PlannedRendition, suffix: &str) {
    let stream = |option: &str| format!("-{option}:a{suffix}");
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

    fn source(codec: VideoCodec, frame_rate: Option<f64>) -> SourceFormat {
        SourceFormat { codec, enhanced: codec != VideoCodec::Avc, frame_rate }
    }

    fn plan(renditions: Vec<PlannedRendition>, container: Container) -> TranscodePlan {
        TranscodePlan {
            renditions,
            audio: AudioPlan { bitrate_kbps: 96, sample_rate: 44_100, channels: 2 },
            has_audio: true,
            preset: "veryfast".into(),
            keyframe_interval_s: 2,
            segment_duration_s: 4,
            container,
            fragment_duration: Some(Duration::from_millis(500)),
            ffmpeg: PathBuf::from("ffmpeg"),
            scratch_dir: PathBuf::from("/scratch"),
            poster: None,
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

    /// The arguments of each output: from after the previous output's target (or the
    /// global options) up to and including its target.
    fn outputs(args: &[String]) -> Vec<Vec<String>> {
        let first = args.iter().position(|arg| arg == "-nostats").unwrap() + 1;
        let mut out = Vec::new();
        let mut current = Vec::new();
        for arg in &args[first..] {
            current.push(arg.clone());
            if arg.starts_with("unix:") {
                out.push(std::mem::take(&mut current));
            }
        }
        assert!(current.is_empty(), "arguments after the last output: {current:?}");
        out
    }

    #[test]
    fn two_rung_fmp4_ladder_writes_one_stream_per_rendition() {
        let plan =
            plan(vec![rendition("720p", 1280, 720, None), rendition("360p", 640, 360, Some(15))], Container::Fmp4);
        let args = strings(&ffmpeg_args(&plan, Path::new("/scratch/run-3"), source(VideoCodec::Avc, Some(30.0))));
        let input = args.iter().position(|arg| arg == "-i").unwrap();
        assert_eq!(&args[input - 2..input + 2], ["-f", "flv", "-i", "pipe:0"]);
        assert_eq!(
            value(&args, "-filter_complex"),
            "[0:v]split=2[s0][s1];[s0]scale=w=1280:h=720,setsar=1,format=yuv420p[v0];[s1]fps=15,scale=w=640:h=360,setsar=1,format=yuv420p[v1]"
        );
        assert_eq!(value(&args, "-progress"), "pipe:1");
        let outputs = outputs(&args);
        assert_eq!(outputs.len(), 2);
        for (index, output) in outputs.iter().enumerate() {
            let maps: Vec<&str> =
                output.windows(2).filter(|pair| pair[0] == "-map").map(|pair| pair[1].as_str()).collect();
            assert_eq!(maps, [format!("[v{index}]").as_str(), "0:a:0?"]);
            assert_eq!(value(output, "-c:v"), "libx264");
            assert_eq!(value(output, "-b:v"), "1000k");
            assert_eq!(value(output, "-maxrate:v"), "1500k");
            assert_eq!(value(output, "-profile:v"), "main");
            assert_eq!(value(output, "-sc_threshold:v"), "0");
            assert_eq!(value(output, "-force_key_frames:v"), "expr:gte(t,n_forced*2)");
            assert_eq!(value(output, "-c:a"), "aac");
            assert_eq!(value(output, "-filter:a"), "aresample=async=1");
            assert_eq!(value(output, "-ar:a"), "44100");
            assert_eq!(value(output, "-f"), "mp4");
            assert_eq!(value(output, "-movflags"), "+frag_keyframe+empty_moov+default_base_moof+skip_trailer");
            let expected = if index == 0 { "499999" } else { "466665" };
            assert_eq!(value(output, "-frag_duration"), expected, "15 frames at 30 fps, 7 at 15 fps");
            assert_eq!(output.last().unwrap(), &format!("unix:/scratch/run-3/{index}.sock"));
        }
        assert_eq!(value(&outputs[0], "-g:v"), "60");
        assert_eq!(value(&outputs[1], "-g:v"), "30", "15 fps rendition: 15 frames a second, every 2 s");
        assert!(!args.iter().any(|arg| arg == "hls"));
    }

    #[test]
    fn fragments_at_keyframes_only_without_a_fragment_duration() {
        let mut plan = plan(vec![PlannedRendition::Passthrough { name: "source".into() }], Container::Fmp4);
        plan.fragment_duration = None;
        let args = strings(&ffmpeg_args(&plan, Path::new("/out"), source(VideoCodec::Avc, None)));
        assert!(!args.contains(&"-filter_complex".to_string()));
        let output = &outputs(&args)[0];
        assert_eq!(&output[..4], ["-map", "0:v:0", "-map", "0:a:0?"]);
        assert_eq!(value(output, "-c:v"), "copy");
        assert_eq!(value(output, "-c:a"), "copy");
        assert!(!output.contains(&"-frag_duration".to_string()));
    }

    #[test]
    fn hevc_is_read_as_matroska_and_passed_through_as_hvc1() {
        let plan = plan(
            vec![PlannedRendition::Passthrough { name: "source".into() }, rendition("low", 320, 180, None)],
            Container::Fmp4,
        );
        let args = strings(&ffmpeg_args(&plan, Path::new("/out"), source(VideoCodec::Hevc, None)));
        let input = args.iter().position(|a| a == "-i").unwrap();
        assert_eq!(&args[input - 2..input + 2], ["-f", "matroska", "-i", "pipe:0"]);
        let outputs = outputs(&args);
        assert_eq!(value(&outputs[0], "-tag:v"), "hvc1");
        assert!(!outputs[1].contains(&"-tag:v".to_string()), "the encoded rendition is H.264");
        let av1 = strings(&ffmpeg_args(&plan, Path::new("/out"), source(VideoCodec::Av1, None)));
        let input = av1.iter().position(|a| a == "-i").unwrap();
        assert_eq!(&av1[input - 2..input], ["-f", "matroska"]);
        assert!(!av1.contains(&"-tag:v".to_string()), "AV1 keeps ffmpeg's av01");
    }

    #[test]
    fn passthrough_and_ts() {
        let plan = plan(
            vec![PlannedRendition::Passthrough { name: "source".into() }, rendition("low", 320, 180, None)],
            Container::Ts,
        );
        let args = strings(&ffmpeg_args(&plan, Path::new("/out"), source(VideoCodec::Avc, None)));
        assert_eq!(value(&args, "-filter_complex"), "[0:v]scale=w=320:h=180,setsar=1,format=yuv420p[v1]");
        let maps: Vec<&str> = args.windows(2).filter(|pair| pair[0] == "-map").map(|pair| pair[1].as_str()).collect();
        assert_eq!(maps, ["0:v:0", "[v1]", "0:a:0", "0:a:0"]);
        assert_eq!(value(&args, "-c:v:0"), "copy");
        assert_eq!(value(&args, "-c:a:0"), "copy");
        assert_eq!(value(&args, "-c:v:1"), "libx264");
        assert!(!args.iter().any(|arg| arg.starts_with("-g:")), "no GOP size without a known frame rate");
        assert_eq!(value(&args, "-force_key_frames:v:1"), "expr:gte(t,n_forced*2)");
        assert_eq!(value(&args, "-hls_time"), "4");
        assert_eq!(value(&args, "-hls_segment_type"), "mpegts");
        assert!(value(&args, "-hls_flags").contains("+temp_file"));
        assert_eq!(value(&args, "-hls_segment_filename"), "/out/%v/seg_%d.ts");
        assert_eq!(value(&args, "-var_stream_map"), "v:0,a:0,name:source v:1,a:1,name:low");
        assert_eq!(args.last().unwrap(), "/out/%v/index.m3u8");
    }

    #[test]
    fn fragments_hold_whole_frames_within_the_part_target() {
        let half = Duration::from_millis(500);
        assert_eq!(fragment_duration_us(half, Some(30.0)), 499_999, "cut at frame 15");
        assert_eq!(fragment_duration_us(Duration::from_millis(400), Some(30.0)), 399_999, "12 frames");
        assert_eq!(fragment_duration_us(Duration::from_millis(400), Some(25.0)), 399_999, "10 frames");
        assert_eq!(fragment_duration_us(half, Some(25.0)), 479_999, "12 frames: 0.48 s");
        assert_eq!(fragment_duration_us(half, Some(29.97)), 467_132, "14 frames: 0.467 s");
        assert_eq!(fragment_duration_us(half, None), 450_000);
        assert_eq!(fragment_duration_us(Duration::from_millis(100), Some(5.0)), 90_000, "less than a frame");
    }

    #[test]
    fn a_source_without_video_gives_one_audio_output() {
        let audio = vec![PlannedRendition::Audio { name: "audio".into() }];
        let mut fmp4 = plan(audio.clone(), Container::Fmp4);
        fmp4.fragment_duration = None;
        let args = strings(&ffmpeg_args(&fmp4, Path::new("/out"), SourceFormat::default()));
        assert!(!args.iter().any(|a| a == "-filter_complex" || a.contains(":v")), "{args:?}");
        let output = &outputs(&args)[0];
        assert_eq!(&output[..2], ["-map", "0:a:0?"]);
        assert_eq!(value(output, "-c:a"), "aac");
        assert_eq!(value(output, "-frag_duration"), "900000", "a quarter of the segment, even without parts");
        let ts = strings(&ffmpeg_args(&plan(audio, Container::Ts), Path::new("/out"), SourceFormat::default()));
        assert_eq!(value(&ts, "-var_stream_map"), "a:0,name:audio");
        assert!(!ts.iter().any(|a| a.contains(":v")), "{ts:?}");
    }

    #[test]
    fn a_source_without_audio_gives_video_only_outputs() {
        let mut fmp4 = plan(vec![rendition("a", 640, 360, None)], Container::Fmp4);
        fmp4.has_audio = false;
        let args = strings(&ffmpeg_args(&fmp4, Path::new("/out"), source(VideoCodec::Avc, Some(30.0))));
        assert!(!args.iter().any(|a| a.starts_with("0:a") || a.starts_with("-c:a")), "{args:?}");
        let mut ts = plan(vec![rendition("a", 640, 360, None), rendition("b", 320, 180, None)], Container::Ts);
        ts.has_audio = false;
        let args = strings(&ffmpeg_args(&ts, Path::new("/out"), source(VideoCodec::Avc, Some(30.0))));
        assert!(!args.iter().any(|a| a.starts_with("0:a") || a.starts_with("-c:a")), "{args:?}");
        assert_eq!(value(&args, "-var_stream_map"), "v:0,name:a v:1,name:b");
    }

    #[test]
    fn the_poster_is_a_branch_of_the_same_decode_written_over_itself() {
        let mut one = plan(vec![rendition("a", 640, 360, None)], Container::Fmp4);
        one.poster = Some((640, 360));
        let args = strings(&ffmpeg_args(&one, Path::new("/out"), source(VideoCodec::Avc, Some(30.0))));
        let graph = value(&args, "-filter_complex");
        assert!(graph.starts_with("[0:v]split=2[s0][sposter];"), "{graph}");
        assert!(graph.contains("[sposter]fps=1/4,scale=w=640:h=360,setsar=1,format=yuvj420p[poster]"), "{graph}");
        let output = args.iter().position(|a| a == "[poster]").expect("the poster is mapped");
        let tail = &args[output..];
        assert!(
            tail.windows(2).any(|w| w == ["-update", "1"]) && tail.windows(2).any(|w| w == ["-atomic_writing", "1"])
        );
        assert_eq!(tail.last().map(String::as_str), Some("/out/poster.jpg"));
        let without = strings(&ffmpeg_args(
            &plan(vec![rendition("a", 640, 360, None)], Container::Fmp4),
            Path::new("/out"),
            SourceFormat::default(),
        ));
        assert!(!without.iter().any(|a| a.contains("poster")), "no poster unless planned");
    }

    #[test]
    fn ntsc_rate_rounds_gop() {
        let plan = plan(vec![rendition("a", 640, 360, None)], Container::Fmp4);
        let args = strings(&ffmpeg_args(&plan, Path::new("/out"), source(VideoCodec::Avc, Some(29.97))));
        assert_eq!(value(&args, "-g:v"), "60");
        let args = strings(&ffmpeg_args(&plan, Path::new("/out"), source(VideoCodec::Avc, Some(f64::NAN))));
        assert!(!args.contains(&"-g:v".to_string()));
    }
}
