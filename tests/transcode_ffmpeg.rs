//! The transcoder against real ffmpeg: a generated FLV fed through the supervisor with a
//! two-rung ladder; its fMP4 streams cut into parts and segments as the packager does, and
//! its MPEG-TS segments, checked with ffprobe; and a killed ffmpeg restarted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use jiff::Timestamp;
use livestream::media::codecs::{codecs_from_init_segment, codecs_from_ts_segment};
use livestream::media::flv::{FlvReader, FlvTag};
use livestream::package::cutter::{Cut, Cutter};
use livestream::package::{MediaTrack, SegmentFormat, TrackConfig, UploadedPart};
use livestream::transcode::plan::{AudioPlan, Container, PlannedRendition, Profile, TranscodePlan};
use livestream::transcode::{RestartPolicy, SupervisorConfig, TranscodeEvent, Transcoder};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};

const RENDITIONS: [&str; 2] = ["full", "quarter"];
const INPUT_SECONDS: f64 = 6.0;
const FRAME_SECONDS: f64 = 1.0 / 25.0;
/// The part target: twelve frames at 25 fps, and the rest of the second as a last part.
const PART: Duration = Duration::from_millis(500);

fn init_tracing() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
}

/// A ~`seconds` s FLV at 320x180, 25 fps, keyframes every second, AAC audio.
fn generate_flv(dir: &Path, seconds: f64) -> Vec<FlvTag> {
    let path = dir.join("input.flv");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x180:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string(), "-pix_fmt", "yuv420p"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-b:a", "64k", "-f", "flv"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "generating the FLV failed");
    let bytes = std::fs::read(&path).unwrap();
    let mut reader = FlvReader::new();
    reader.push(&bytes);
    let mut tags = Vec::new();
    while let Some(tag) = reader.next_tag().unwrap() {
        tags.push(tag);
    }
    assert!(tags.len() > 100, "the FLV holds {} tags", tags.len());
    tags
}

fn plan(scratch: &Path, container: Container) -> TranscodePlan {
    TranscodePlan {
        renditions: vec![
            PlannedRendition::Encoded {
                name: RENDITIONS[0].into(),
                width: 320,
                height: 180,
                video_kbps: 300,
                max_kbps: None,
                frame_rate: None,
                profile: Profile::High,
            },
            PlannedRendition::Encoded {
                name: RENDITIONS[1].into(),
                width: 160,
                height: 90,
                video_kbps: 100,
                max_kbps: Some(150),
                frame_rate: None,
                profile: Profile::Main,
            },
        ],
        audio: AudioPlan { bitrate_kbps: 64, sample_rate: 48_000, channels: 2 },
        has_audio: true,
        preset: "ultrafast".into(),
        keyframe_interval_s: 1,
        segment_duration_s: 1,
        container,
        fragment_duration: Some(PART),
        ffmpeg: PathBuf::from("ffmpeg"),
        scratch_dir: scratch.to_path_buf(),
        poster: None,
    }
}

fn config(plan: TranscodePlan) -> SupervisorConfig {
    let mut config = SupervisorConfig::new(plan);
    config.source.frame_rate = Some(25.0);
    config.restart = RestartPolicy {
        max_restarts_per_minute: 3,
        backoff: livestream::backoff::Backoff::new(Duration::from_millis(100), Duration::from_secs(1)),
    };
    config
}

/// Collects events until the channel closes; kills the first run's ffmpeg at its first
/// segment when `kill_first_run` is set.
async fn collect_events(mut events: mpsc::Receiver<TranscodeEvent>, kill_first_run: bool) -> Vec<TranscodeEvent> {
    let mut collected = Vec::new();
    let mut first_pid = None;
    let mut killed = false;
    while let Some(event) = events.recv().await {
        match &event {
            TranscodeEvent::Started { run: 1, pid } => first_pid = *pid,
            TranscodeEvent::Fragment { run: 1, fragment, .. }
                if kill_first_run && !killed && fragment.sequence >= 8 =>
            {
                let pid = first_pid.expect("run 1 reported its pid");
                let status = Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
                assert!(status.success(), "killing ffmpeg {pid} failed");
                killed = true;
            }
            _ => {}
        }
        collected.push(event);
    }
    collected
}

/// Feeds the tags, paced at `speed` times real time (`None`: as fast as ffmpeg reads).
async fn feed(transcoder: &Transcoder, tags: &[FlvTag], speed: Option<f64>) {
    let start = Instant::now();
    for tag in tags {
        if let Some(speed) = speed {
            sleep_until(start + Duration::from_secs_f64(f64::from(tag.timestamp_ms) / 1000.0 / speed)).await;
        }
        transcoder.send(tag.clone()).await.expect("the transcoder takes input");
    }
}

/// Runs the whole input through a transcoder and returns its events.
async fn transcode(
    plan: TranscodePlan,
    tags: &[FlvTag],
    speed: Option<f64>,
    kill_first_run: bool,
) -> Vec<TranscodeEvent> {
    let (transcoder, events) = Transcoder::start(config(plan)).expect("ffmpeg starts");
    let collector = tokio::spawn(collect_events(events, kill_first_run));
    feed(&transcoder, tags, speed).await;
    transcoder.finish().await.expect("the transcoder finishes cleanly");
    collector.await.unwrap()
}

/// One segment of a rendition as the packager would store it.
struct Segment {
    run: u32,
    /// The run's init segment (fMP4).
    init: Option<Vec<u8>>,
    bytes: Vec<u8>,
    duration: Duration,
    /// Each part's duration and whether the cutter found it independent.
    parts: Vec<(Duration, bool)>,
}

/// The segments of `rendition` in the events: fMP4 fragments placed by the packager's
/// cutter, or MPEG-TS segment files.
fn segments(events: &[TranscodeEvent], rendition: usize) -> Vec<Segment> {
    let mut cutter = Cutter::new(Duration::from_secs(1), true);
    let mut init: Option<Vec<u8>> = None;
    let mut out: Vec<Segment> = Vec::new();
    for event in events {
        match event {
            TranscodeEvent::Init { rendition: r, init: segment, .. } if *r == rendition => {
                cutter.start_run(segment);
                init = Some(segment.bytes.to_vec());
            }
            TranscodeEvent::Fragment { rendition: r, run, fragment } if *r == rendition => {
                let placement = match cutter.place(fragment) {
                    Some(Cut::Part(placement)) => placement,
                    // Audio between two video frames goes with the next part.
                    Some(Cut::Join) => {
                        out.last_mut().expect("a segment is open").bytes.extend_from_slice(&fragment.bytes);
                        continue;
                    }
                    // Audio muxed before a run's first video frame has no place.
                    None => continue,
                };
                if placement.opens_segment {
                    out.push(Segment {
                        run: *run,
                        init: init.clone(),
                        bytes: Vec::new(),
                        duration: Duration::ZERO,
                        parts: Vec::new(),
                    });
                }
                let segment = out.last_mut().expect("the first fragment of a run opens a segment");
                assert_eq!(segment.run, *run, "a segment holds fragments of one run");
                segment.bytes.extend_from_slice(&fragment.bytes);
                segment.duration += placement.duration;
                segment.parts.push((placement.duration, placement.independent));
            }
            TranscodeEvent::Segment(segment) if segment.rendition == RENDITIONS[rendition] => out.push(Segment {
                run: segment.run,
                init: None,
                bytes: std::fs::read(&segment.path).unwrap(),
                duration: segment.duration,
                parts: Vec::new(),
            }),
            _ => {}
        }
    }
    out
}

/// `ffprobe` output for the first stream of a type, as `key=value` lines.
fn probe(path: &Path, stream: &str, entries: &str) -> String {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream, "-show_entries", entries, "-of", "default=noprint_wrappers=1"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(output.status.success(), "ffprobe failed on {}", path.display());
    String::from_utf8(output.stdout).unwrap()
}

/// The segment as ffprobe can read it: prefixed by its init segment for fMP4.
fn probeable(segment: &Segment, scratch: &Path) -> PathBuf {
    let mut bytes = segment.init.clone().unwrap_or_default();
    bytes.extend_from_slice(&segment.bytes);
    let joined = scratch.join(if segment.init.is_some() { "probe.mp4" } else { "probe.ts" });
    std::fs::write(&joined, bytes).unwrap();
    joined
}

/// Flags of the first video packet of a segment.
fn first_video_packet_flags(segment: &Segment, scratch: &Path) -> String {
    let probed = probeable(segment, scratch);
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=flags",
            "-of",
            "csv=p=0",
            "-read_intervals",
            "%+#1",
        ])
        .arg(&probed)
        .output()
        .expect("ffprobe runs");
    String::from_utf8(output.stdout).unwrap().lines().next().unwrap_or_default().to_string()
}

/// The `avc1.PPCCLL` profile and level and the `mp4a.40.N` object type ffprobe reports.
fn ffprobe_codecs(path: &Path) -> (u8, u8, u8) {
    let video = probe(path, "v:0", "stream=profile,level");
    let audio = probe(path, "a:0", "stream=profile");
    let field = |text: &str, key: &str| {
        text.lines().find_map(|line| line.strip_prefix(&format!("{key}="))).unwrap_or_default().to_string()
    };
    let profile_idc = match field(&video, "profile").as_str() {
        "Baseline" | "Constrained Baseline" => 66,
        "Main" => 77,
        "High" => 100,
        other => panic!("unexpected H.264 profile {other}"),
    };
    let level: u8 = field(&video, "level").parse().unwrap();
    let object_type = match field(&audio, "profile").as_str() {
        "LC" => 2,
        "HE-AAC" => 5,
        other => panic!("unexpected AAC profile {other}"),
    };
    (profile_idc, level, object_type)
}

/// Checks one container end to end.
async fn check_container(container: Container) {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let tags = generate_flv(dir.path(), INPUT_SECONDS);
    let scratch = dir.path().join("scratch");
    let events = timeout(Duration::from_secs(60), transcode(plan(&scratch, container), &tags, None, false))
        .await
        .expect("transcoding 6 s took over a minute");
    assert!(
        matches!(events.first(), Some(TranscodeEvent::Started { run: 1, .. })),
        "first event: {:?}",
        events.first()
    );
    assert!(
        matches!(events.last(), Some(TranscodeEvent::Exited { run: 1, will_restart: false, status: Some(status) }) if status.success()),
        "last event: {:?}",
        events.last()
    );
    let mut all_durations = Vec::new();
    for (index, rendition) in RENDITIONS.iter().enumerate() {
        let mine = segments(&events, index);
        assert!(mine.len() >= 5, "{rendition}: only {} segments", mine.len());
        let total: f64 = mine.iter().map(|segment| segment.duration.as_secs_f64()).sum();
        assert!(
            (total - INPUT_SECONDS).abs() <= 2.0 * FRAME_SECONDS + 1e-6,
            "{rendition}: segments add up to {total} s, input is {INPUT_SECONDS} s"
        );
        for (number, segment) in mine.iter().enumerate() {
            assert_eq!(segment.run, 1);
            assert_eq!(segment.init.is_some(), container == Container::Fmp4);
            let flags = first_video_packet_flags(segment, dir.path());
            assert!(flags.starts_with('K'), "{rendition} segment {number} starts with a packet flagged {flags:?}");
            if container == Container::Fmp4 {
                assert!(segment.parts[0].1, "{rendition} segment {number}: its first part is independent");
                let (last_part, parts) = segment.parts.split_last().expect("a segment has parts");
                for (index, (duration, _)) in parts.iter().enumerate() {
                    // The first frame of a run starts up to an AAC frame early, with the
                    // audio: the run's first part may be that much longer.
                    let allowed = if number == 0 && index == 0 { PART + Duration::from_micros(21_400) } else { PART };
                    // RFC 8216bis: parts but a segment's last reach 85 % of the part target.
                    assert!(
                        *duration <= allowed && duration.as_secs_f64() >= 0.85 * PART.as_secs_f64(),
                        "{rendition} segment {number}: a part of {duration:?}"
                    );
                }
                assert!(last_part.0 <= PART, "{rendition} segment {number}: a last part of {:?}", last_part.0);
                if number + 1 < mine.len() {
                    // Cut at the forced keyframes: one second of video each (the first
                    // frame of a run may last a little longer, up to the first audio).
                    let off = (segment.duration.as_secs_f64() - 1.0).abs();
                    assert!(off <= FRAME_SECONDS, "{rendition} segment {number}: {:?}", segment.parts);
                }
            }
        }
        // CODECS from the stream bytes must equal what ffprobe decodes.
        let first = &mine[0];
        let codecs = match &first.init {
            Some(init) => codecs_from_init_segment(init).unwrap(),
            None => codecs_from_ts_segment(&first.bytes).unwrap(),
        };
        let (profile_idc, level, object_type) = ffprobe_codecs(&probeable(first, dir.path()));
        let video = codecs.video.clone().expect("a video codec");
        assert_eq!(&video[..7], &format!("avc1.{profile_idc:02x}"), "{rendition}: {video}");
        assert_eq!(&video[9..], &format!("{level:02x}"), "{rendition}: {video}");
        assert_eq!(codecs.audio.as_deref(), Some(format!("mp4a.40.{object_type}").as_str()));
        all_durations.push(mine.iter().map(|segment| segment.duration).collect::<Vec<_>>());
    }
    // Aligned cuts: both renditions have the same segment durations.
    assert_eq!(all_durations[0], all_durations[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fmp4_ladder_segments_are_complete_and_aligned() {
    check_container(Container::Fmp4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts_ladder_segments_are_complete_and_aligned() {
    check_container(Container::Ts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_ffmpeg_restarts_and_playlists_continue() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let tags = generate_flv(dir.path(), 8.0);
    let scratch = dir.path().join("scratch");
    let events = timeout(Duration::from_secs(60), transcode(plan(&scratch, Container::Fmp4), &tags, Some(2.0), true))
        .await
        .expect("transcoding 8 s took over a minute");

    let exits: Vec<(u32, bool)> = events
        .iter()
        .filter_map(|event| {
            if let TranscodeEvent::Exited { run, will_restart, .. } = event {
                Some((*run, *will_restart))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(exits, vec![(1, true), (2, false)], "run 1 killed and restarted, run 2 finished");
    let starts: Vec<u32> = events
        .iter()
        .filter_map(|event| if let TranscodeEvent::Started { run, .. } = event { Some(*run) } else { None })
        .collect();
    assert_eq!(starts, vec![1, 2]);

    for (index, rendition) in RENDITIONS.iter().enumerate() {
        let mut track = MediaTrack::new(TrackConfig {
            rendition: rendition.to_string(),
            format: SegmentFormat::Fmp4,
            target_duration_s: 1,
            window_segments: 100,
            recording: false,
            max_parts_per_segment: 7,
            expiry_grace: std::time::Duration::ZERO,
        })
        .unwrap();
        let mut sequences = Vec::new();
        let mut discontinuities = Vec::new();
        let mut inits = Vec::new();
        for segment in segments(&events, index) {
            for (part, (duration, independent)) in segment.parts.iter().enumerate() {
                if part == 0 {
                    track.close_segment().unwrap();
                }
                let slot = track.next_part(segment.run, false, part == 0);
                if let Some(init) = slot.segment.init.as_ref().filter(|init| slot.opens_segment && init.upload) {
                    inits.push((init.key.clone(), segment.run));
                }
                if slot.opens_segment {
                    if slot.segment.discontinuity {
                        discontinuities.push(slot.segment.sequence);
                    }
                    sequences.push((segment.run, slot.segment.sequence));
                }
                let uploaded = UploadedPart {
                    duration: *duration,
                    bytes: 1000,
                    independent: *independent,
                    starts_at: Timestamp::now(),
                    stored: true,
                };
                track.commit_part(&slot, uploaded).unwrap();
            }
        }
        track.close_segment().unwrap();
        let numbers: Vec<u64> = sequences.iter().map(|(_, sequence)| *sequence).collect();
        assert_eq!(numbers, (0..numbers.len() as u64).collect::<Vec<_>>(), "{rendition}: global numbers without gaps");
        let first_of_run_two = sequences.iter().find(|(run, _)| *run == 2).map(|(_, sequence)| *sequence);
        assert!(sequences.iter().any(|(run, _)| *run == 1), "{rendition}: run 1 produced segments");
        assert!(first_of_run_two.is_some(), "{rendition}: run 2 produced segments");
        assert_eq!(discontinuities, vec![first_of_run_two.unwrap()], "{rendition}: one discontinuity, at the restart");
        assert_eq!(inits, vec![(format!("{rendition}/init-0.mp4"), 1), (format!("{rendition}/init-1.mp4"), 2)]);
        let playlist = track.render_live();
        assert_eq!(playlist.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{playlist}");
        assert!(playlist.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n"), "{playlist}");
    }
}
