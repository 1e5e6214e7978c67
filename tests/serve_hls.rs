//! `livestream serve` end to end: ffmpeg pushes RTMP, the worker transcodes an ABR
//! ladder and packages HLS; players' requirements are checked with the playlists, curl
//! and ffprobe, against local disk and against MinIO, and through the failures a live
//! stream meets: a wrong key, garbage, reconnects, a killed ffmpeg, a storage outage.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::media::{self, Push, Serve, fetch_consistent, http_get, parse_master, push, wait_exit};
use support::minio::MinioServer;
use support::process::wait_for;

const LADDER: [&str; 4] = ["--rendition", "180p:320x180:300", "--rendition", "90p:160x90:100"];

fn ladder_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args: Vec<&str> = LADDER.to_vec();
    args.extend(["--segment-duration", "1"]);
    args.extend_from_slice(extra);
    args
}

/// Polls the stream while `pusher` runs, checking after each poll that every object the
/// playlists name is readable; returns how many polls saw playlists.
fn watch_while_pushing(base: &str, pusher: &mut support::process::ManagedProcess, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut seen = 0;
    while pusher.is_running() {
        assert!(Instant::now() < deadline, "the push did not end within {limit:?}");
        if fetch_consistent(base).is_some() {
            seen += 1;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    seen
}

/// Waits until every media playlist of the stream carries ENDLIST.
/// GET with a `Range` header: status, Content-Range and body.
fn get_range(url: &str, range: &str) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "10", "-r", range, "-D"])
        .arg(&headers)
        .arg(url)
        .output()
        .expect("run curl");
    let head = std::fs::read_to_string(&headers).unwrap_or_default();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let content_range = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-range"))
        .map(|(_, value)| value.trim().to_string())
        .unwrap_or_default();
    (status, content_range, out.stdout)
}

fn wait_ended(base: &str, serve: &Serve) -> Vec<(String, media::MediaPlaylist)> {
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(playlists) = fetch_consistent(base) {
            if !playlists.is_empty() && playlists.iter().all(|(_, p)| p.ended) {
                return playlists;
            }
            last = Some(playlists);
        }
        assert!(Instant::now() < deadline, "the stream did not end within 30s: {last:?}\n{}", serve.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn local_push_gives_playable_abr_hls() {
    let _serial = media::serial();
    let serve = Serve::start(&ladder_args(&["--reconnect-grace", "1"]), &[]);
    let logs = tempfile::tempdir().unwrap();
    let mut pusher = push(&serve.rtmp_url("live", "demo"), &Push::default(), &logs.path().join("push.log"));
    let base = serve.http_url("live/demo");
    let polls = watch_while_pushing(&base, &mut pusher, Duration::from_secs(30));
    assert!(pusher.exit_success(), "ffmpeg push failed: {}", pusher.log_tail(2000));
    assert!(polls > 0, "no playlist while pushing:\n{}", serve.log());
    let playlists = wait_ended(&base, &serve);

    // The master playlist: every variant with bandwidth, codecs from the streams,
    // resolution and frame rate.
    let (status, content_type, cache, master) = http_get(&format!("{base}/master.m3u8"));
    assert_eq!((status, content_type.as_str()), (200, "application/vnd.apple.mpegurl"));
    assert!(cache.contains("max-age="), "{cache}");
    let master = String::from_utf8(master).unwrap();
    let variants = parse_master(&master);
    assert_eq!(variants.len(), 2, "{master}");
    for (attributes, _) in &variants {
        for attribute in ["BANDWIDTH=", "AVERAGE-BANDWIDTH=", "CODECS=\"avc1.", "mp4a.40.2\"", "FRAME-RATE=25.000"] {
            assert!(attributes.contains(attribute), "{attribute} missing in {attributes}");
        }
    }
    assert!(variants[0].0.contains("RESOLUTION=320x180"), "highest first: {master}");
    assert!(variants[1].0.contains("RESOLUTION=160x90"), "{master}");

    for (uri, playlist) in &playlists {
        let dir = uri.rsplit_once('/').map(|(d, _)| d).unwrap();
        assert!(playlist.independent, "{uri}: EXT-X-INDEPENDENT-SEGMENTS");
        assert_eq!(playlist.target_duration, 1, "{uri}");
        assert_eq!(playlist.program_date_times, playlist.segments.len(), "{uri}: a date-time per segment");
        let total: f64 = playlist.segments.iter().map(|s| s.1).sum();
        // The window holds the last segments; the whole push lasted 6 s.
        assert!(total > 0.0 && total <= 6.3, "{uri}: {total} s");
        // Every segment starts with a keyframe and decodes.
        for (segment, _, _, map) in &playlist.segments {
            let map = map.as_ref().expect("fMP4 segments have an EXT-X-MAP");
            let (_, init_type, init_cache, init) = http_get(&format!("{base}/{dir}/{map}"));
            assert_eq!(init_type, "video/mp4");
            assert!(init_cache.contains("immutable"), "{init_cache}");
            let (_, seg_type, seg_cache, body) = http_get(&format!("{base}/{dir}/{segment}"));
            assert_eq!(seg_type, "video/iso.segment");
            assert!(seg_cache.contains("immutable"), "{seg_cache}");
            let file = logs.path().join(format!("{}-{segment}.mp4", dir.replace('/', "_")));
            std::fs::write(&file, [init, body].concat()).unwrap();
            let packets = media::video_packets(file.to_str().unwrap());
            assert!(packets.first().is_some_and(|p| p.1), "{uri} {segment} does not start with a keyframe");
        }
    }
    // Byte ranges of media, as players and caches ask for them.
    let (uri, playlist) = &playlists[0];
    let dir = uri.rsplit_once('/').map(|(d, _)| d).unwrap();
    let segment_url = format!("{base}/{dir}/{}", playlist.segments[0].0);
    let (_, _, _, whole) = http_get(&segment_url);
    let (status, content_range, first_bytes) = get_range(&segment_url, "0-99");
    assert_eq!(status, 206, "a range of a segment");
    assert_eq!(content_range, format!("bytes 0-99/{}", whole.len()));
    assert_eq!(first_bytes, whole[..100], "the range holds the segment's first bytes");
    let (status, _, tail) = get_range(&segment_url, "-10");
    assert_eq!((status, tail.as_slice()), (206, &whole[whole.len() - 10..]), "the last 10 bytes");
    let (status, content_range, _) = get_range(&segment_url, &format!("{}-", whole.len()));
    assert_eq!((status, content_range), (416, format!("bytes */{}", whole.len())), "a range past the end");

    // The recording-free live window covers the push: sequence numbers start at 0.
    let (_, top) = &playlists[0];
    assert_eq!(top.discontinuity_sequence, 0);
    // ffprobe decodes each rendition through the master playlist.
    for program in 0..variants.len() {
        let errors = media::decode_errors(&format!("{base}/master.m3u8"), &format!("0:p:{program}:v"));
        assert!(errors.trim().is_empty(), "program {program} decodes with errors: {errors}");
    }
    // The index page lists the stream with its playback URL.
    let (_, _, _, index) = http_get(&serve.http_url(""));
    let index = String::from_utf8(index).unwrap();
    assert!(index.contains(&format!("{base}/master.m3u8")), "{index}");
    let ingest = format!("rtmp://127.0.0.1:{}/live/NAME", serve.rtmp_port);
    assert!(index.contains(&ingest), "the index names the port encoders push to: {index}");
}

#[test]
fn push_to_minio_reads_back_anonymously() {
    let _serial = media::serial();
    let (_runtime, minio, serve) = serve_on_minio("1");
    let endpoint = minio.endpoint();
    let logs = tempfile::tempdir().unwrap();
    let mut pusher =
        push(&serve.rtmp_url("live", "demo"), &Push { seconds: 4.0, ..Push::default() }, &logs.path().join("push.log"));
    let base = format!("{endpoint}/live/live/demo");
    let polls = watch_while_pushing(&base, &mut pusher, Duration::from_secs(30));
    assert!(pusher.exit_success(), "ffmpeg push failed: {}", pusher.log_tail(2000));
    assert!(polls > 0, "no playlist in MinIO while pushing:\n{}", serve.log());
    let playlists = wait_ended(&base, &serve);
    assert_eq!(playlists.len(), 2);
    let (_, content_type, cache, _) = http_get(&format!("{base}/master.m3u8"));
    assert_eq!(content_type, "application/vnd.apple.mpegurl");
    assert!(cache.contains("max-age="));
    let errors = media::decode_errors(&format!("{base}/{}", playlists[0].0), "0:v");
    assert!(errors.trim().is_empty(), "{errors}");
    assert!(!serve.log().contains(minio.secret_key()), "the secret key appears in the log");
}

#[test]
fn wrong_key_is_refused_and_the_right_one_publishes_under_its_name() {
    let _serial = media::serial();
    let serve = Serve::start(&ladder_args(&["--stream-key", "studio=k3y-Th4t-is-l0ng", "--reconnect-grace", "1"]), &[]);
    let logs = tempfile::tempdir().unwrap();
    let mut wrong = push(&serve.rtmp_url("live", "not-the-key"), &Push::default(), &logs.path().join("wrong.log"));
    assert!(!wait_exit(&mut wrong, Duration::from_secs(20)), "a wrong key must be refused");
    assert!(!serve.data_dir.join("live").exists(), "nothing may be written for a refused publish");
    // The right key under another application than the server's is refused too.
    let mut other_app =
        push(&serve.rtmp_url("vod", "k3y-Th4t-is-l0ng"), &Push::default(), &logs.path().join("vod.log"));
    assert!(!wait_exit(&mut other_app, Duration::from_secs(20)), "only the configured application publishes");
    assert!(!serve.data_dir.join("vod").exists(), "no folder for another application");

    let mut right = push(
        &serve.rtmp_url("live", "k3y-Th4t-is-l0ng"),
        &Push { seconds: 3.0, ..Push::default() },
        &logs.path().join("right.log"),
    );
    assert!(wait_exit(&mut right, Duration::from_secs(30)), "the right key publishes: {}", right.log_tail(2000));
    let playlists = wait_ended(&serve.http_url("live/studio"), &serve);
    assert!(!playlists.is_empty());
    assert!(!serve.data_dir.join("live/k3y-Th4t-is-l0ng").exists(), "the key must never be a path");
    assert!(!serve.log().contains("k3y-Th4t-is-l0ng"), "the key appears in the log");
}

#[test]
fn reconnect_within_grace_continues_the_playlists() {
    let _serial = media::serial();
    let serve = Serve::start(&ladder_args(&["--reconnect-grace", "4"]), &[]);
    let logs = tempfile::tempdir().unwrap();
    let url = serve.rtmp_url("live", "demo");
    let base = serve.http_url("live/demo");
    // A dropped connection (the encoder's process killed), not a clean unpublish.
    let mut first = push(&url, &Push { seconds: 30.0, ..Push::default() }, &logs.path().join("first.log"));
    wait_for("a segment of the first push in every playlist", Duration::from_secs(20), || {
        fetch_consistent(&base).filter(|p| !p.is_empty() && p.iter().all(|(_, p)| !p.segments.is_empty()))
    });
    first.kill();
    let before = fetch_consistent(&base).expect("playlists after the first push");
    assert!(before.iter().all(|(_, p)| !p.ended), "no ENDLIST within the grace window");
    let mut second = push(&url, &Push { seconds: 3.0, ..Push::default() }, &logs.path().join("second.log"));
    assert!(wait_exit(&mut second, Duration::from_secs(30)));
    let after = wait_ended(&base, &serve);
    for (uri, playlist) in &after {
        assert_eq!(playlist.media_sequence, 0, "{uri}: the window of a short stream starts at 0");
        let discontinuities = playlist.segments.iter().filter(|s| s.2).count();
        assert_eq!(discontinuities, 1, "{uri}: one discontinuity at the reconnect: {playlist:?}");
        let names: Vec<u64> =
            playlist.segments.iter().map(|s| s.0.split('.').next().unwrap().parse().unwrap()).collect();
        assert!(names.windows(2).all(|w| w[1] == w[0] + 1), "{uri}: sequence continues: {names:?}");
        let maps: std::collections::BTreeSet<_> = playlist.segments.iter().map(|s| s.3.clone()).collect();
        assert_eq!(maps.len(), 2, "{uri}: a new init segment after the discontinuity");
    }
}

#[test]
fn a_source_without_audio_plays_as_video_only_renditions() {
    let _serial = media::serial();
    for container in ["fmp4", "ts"] {
        let serve = Serve::start(&ladder_args(&["--container", container, "--reconnect-grace", "1"]), &[]);
        let logs = tempfile::tempdir().unwrap();
        let silent = Push { seconds: 4.0, audio: false, ..Push::default() };
        let mut pusher = push(&serve.rtmp_url("live", "silent"), &silent, &logs.path().join("push.log"));
        assert!(wait_exit(&mut pusher, Duration::from_secs(30)), "{container}: {}", pusher.log_tail(2000));
        let base = serve.http_url("live/silent");
        let playlists = wait_ended(&base, &serve);
        assert_eq!(playlists.len(), 2, "{container}: both renditions");
        let (_, _, _, master) = http_get(&format!("{base}/master.m3u8"));
        let master = String::from_utf8(master).unwrap();
        for (attributes, _) in parse_master(&master) {
            let codecs = media::attribute(&attributes, "CODECS").expect("CODECS");
            assert!(codecs.starts_with("avc1.") && !codecs.contains("mp4a"), "{container}: {codecs}");
        }
        let errors = media::decode_errors(&format!("{base}/{}", playlists[0].0), "0:v");
        assert!(errors.trim().is_empty(), "{container}: {errors}");
        assert!(!serve.log().contains("matches no streams"), "{container}: {}", serve.log());
    }
}

/// A source without video (ffmpeg's `-vn`, whose metadata names audio only; and bare AAC
/// without metadata, known as audio only after seconds of audio): one AAC rendition, with
/// CODECS `mp4a.40.2` and no RESOLUTION, whole and decodable, fMP4 (with LL-HLS parts) and
/// TS.
#[test]
fn a_source_without_video_plays_as_one_audio_rendition() {
    use support::rtmp_publisher::{self, Scheduled};
    let _serial = media::serial();
    for container in ["fmp4", "ts"] {
        let serve = Serve::start(&ladder_args(&["--container", container, "--reconnect-grace", "1"]), &[]);
        let logs = tempfile::tempdir().unwrap();
        let radio = Push { seconds: 5.0, video: false, ..Push::default() };
        let mut pusher = push(&serve.rtmp_url("live", "radio"), &radio, &logs.path().join("push.log"));
        assert!(wait_exit(&mut pusher, Duration::from_secs(30)), "{container}: {}", pusher.log_tail(2000));
        let bare: Vec<Scheduled> = rtmp_publisher::encoded_tags(logs.path(), 6)
            .into_iter()
            .filter(|tag| tag.kind == livestream::media::flv::FlvTagKind::Audio)
            .map(|tag| Scheduled { at: Duration::from_millis(u64::from(tag.timestamp_ms)), tag })
            .collect();
        rtmp_publisher::publish(serve.rtmp_port, "live", "bare", &bare).expect("the publish goes through");
        for (name, seconds) in [("radio", 5.0), ("bare", 6.0)] {
            let base = serve.http_url(&format!("live/{name}"));
            let playlists = wait_ended(&base, &serve);
            let master = String::from_utf8(http_get(&format!("{base}/master.m3u8")).3).unwrap();
            let variants = parse_master(&master);
            assert_eq!(variants.len(), 1, "{container} {name}: one rendition: {master}");
            let (attributes, uri) = &variants[0];
            assert_eq!(uri, "audio/index.m3u8", "{container} {name}: {master}");
            assert_eq!(media::attribute(attributes, "CODECS"), Some("mp4a.40.2"), "{container} {name}: {master}");
            assert!(!attributes.contains("RESOLUTION") && !attributes.contains("FRAME-RATE"), "{master}");
            let playlist = &playlists[0].1;
            let total: f64 = playlist.segments.iter().map(|segment| segment.1).sum();
            assert!((total - seconds).abs() <= 1.0, "{container} {name}: {total} s of {seconds} s: {playlist:?}");
            for (segment, duration, _, _) in &playlist.segments {
                assert!(
                    duration.round() <= playlist.target_duration as f64,
                    "{container} {name}: {segment} lasts {duration} s, past the target {}",
                    playlist.target_duration
                );
            }
            let errors = media::decode_errors(&format!("{base}/{uri}"), "0:a");
            assert!(errors.trim().is_empty(), "{container} {name}: {errors}");
        }
        assert!(!serve.log().contains("publish failed"), "{container}: {}", serve.log());
    }
}

/// An encoder whose clock leaps an hour ahead mid-stream: the stream goes on from the frame
/// before the leap, without an hour of repeated frames in between.
#[test]
fn a_source_whose_timestamps_leap_an_hour_plays_on() {
    use support::rtmp_publisher;
    let _serial = media::serial();
    let serve = Serve::start(&ladder_args(&["--reconnect-grace", "1"]), &[]);
    let dir = tempfile::tempdir().unwrap();
    let hour = Duration::from_secs(3600);
    let tags = rtmp_publisher::leaping(rtmp_publisher::encoded_tags(dir.path(), 6), Duration::from_secs(3), hour);
    rtmp_publisher::publish(serve.rtmp_port, "live", "leap", &tags).expect("the publish goes through");
    let base = serve.http_url("live/leap");
    let playlists = wait_ended(&base, &serve);
    for (uri, playlist) in &playlists {
        let last = playlist.segments.last().map(|s| s.0.split('.').next().unwrap().parse::<u64>().unwrap());
        assert!(
            last.is_some_and(|last| last <= 8),
            "{uri}: 6 s of media make about 6 segments of 1 s, not an hour of them: {playlist:?}"
        );
        let total: f64 = playlist.segments.iter().map(|s| s.1).sum();
        assert!((5.0..=6.5).contains(&total), "{uri}: {total} s of media for 6 s pushed");
        assert!(playlist.segments.iter().all(|s| !s.2), "{uri}: no discontinuity within one publish");
    }
    let errors = media::decode_errors(&format!("{base}/master.m3u8"), "0:v:0");
    assert!(errors.trim().is_empty(), "the stream decodes across the leap: {errors}");
    let (_, _, _, metrics) = http_get(&serve.http_url("metrics"));
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    let leaps = metrics
        .lines()
        .find(|line| line.starts_with("livestream_source_timestamp_leaps_total{"))
        .and_then(|line| line.rsplit(' ').next()?.parse::<u64>().ok());
    assert_eq!(leaps, Some(2), "the audio's and the video's leap are counted:\n{metrics}");
    assert!(serve.log().contains("timestamps leapt"), "the leap is logged");
}

#[test]
fn clean_unpublish_ends_the_stream_at_once() {
    let _serial = media::serial();
    // A grace window far longer than the wait below: only the clean unpublish ends it.
    let serve = Serve::start(&ladder_args(&["--reconnect-grace", "300"]), &[]);
    let logs = tempfile::tempdir().unwrap();
    let base = serve.http_url("live/demo");
    let mut pusher =
        push(&serve.rtmp_url("live", "demo"), &Push { seconds: 3.0, ..Push::default() }, &logs.path().join("push.log"));
    assert!(wait_exit(&mut pusher, Duration::from_secs(30)), "ffmpeg push failed: {}", pusher.log_tail(2000));
    let playlists = wait_ended(&base, &serve);
    assert!(!playlists.is_empty());
    assert!(serve.log().contains("reason=Unpublished"), "{}", serve.log());
}

#[test]
fn killed_transcoder_is_restarted_and_the_stream_continues() {
    let _serial = media::serial();
    let serve = Serve::start(&ladder_args(&["--reconnect-grace", "1"]), &[]);
    let logs = tempfile::tempdir().unwrap();
    let base = serve.http_url("live/demo");
    let mut pusher =
        push(&serve.rtmp_url("live", "demo"), &Push { seconds: 8.0, ..Push::default() }, &logs.path().join("push.log"));
    wait_for("the first playlist", Duration::from_secs(20), || fetch_consistent(&base));
    let serve_pid = serve.process.pid().unwrap();
    let out = Command::new("pgrep").args(["-P", &serve_pid.to_string(), "ffmpeg"]).output().unwrap();
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!pid.is_empty(), "no ffmpeg child of the worker");
    Command::new("kill").args(["-9", &pid]).status().unwrap();
    assert!(
        wait_exit(&mut pusher, Duration::from_secs(30)),
        "the encoder keeps its connection: {}",
        pusher.log_tail(2000)
    );
    let playlists = wait_ended(&base, &serve);
    for (uri, playlist) in &playlists {
        // The window may have slid past the tag; the discontinuity sequence still counts it.
        let tags = playlist.segments.iter().filter(|s| s.2).count() as u64;
        assert_eq!(
            playlist.discontinuity_sequence + tags,
            1,
            "{uri}: one discontinuity after the restart: {playlist:?}"
        );
    }
    let (_, _, _, metrics) = http_get(&serve.http_url("metrics"));
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("livestream_ffmpeg_restarts_total{stream=\"live/demo\"} 1")),
        "{metrics}"
    );
}

#[test]
fn garbage_on_the_rtmp_port_does_not_disturb_a_live_stream() {
    use std::io::Write;
    let _serial = media::serial();
    let serve = Serve::start(&ladder_args(&["--reconnect-grace", "1"]), &[]);
    let logs = tempfile::tempdir().unwrap();
    let base = serve.http_url("live/demo");
    let mut pusher =
        push(&serve.rtmp_url("live", "demo"), &Push { seconds: 4.0, ..Push::default() }, &logs.path().join("push.log"));
    wait_for("the first playlist", Duration::from_secs(20), || fetch_consistent(&base));
    for garbage in [&b"GET / HTTP/1.1\r\n\r\n"[..], &[0x03; 3000][..], &[0xff; 1537][..]] {
        let mut socket = std::net::TcpStream::connect(("127.0.0.1", serve.rtmp_port)).unwrap();
        let _ = socket.write_all(garbage);
    }
    assert!(wait_exit(&mut pusher, Duration::from_secs(30)), "the push survives: {}", pusher.log_tail(2000));
    let playlists = wait_ended(&base, &serve);
    assert!(playlists.iter().all(|(_, p)| p.segments.len() >= 3));
    serve_still_ready(&serve);
}

#[test]
fn storage_outage_delays_playlists_but_never_names_a_missing_object() {
    let _serial = media::serial();
    let (runtime, mut minio, serve) = serve_on_minio("2");
    let endpoint = minio.endpoint();
    let logs = tempfile::tempdir().unwrap();
    let base = format!("{endpoint}/live/live/demo");
    let mut pusher =
        push(&serve.rtmp_url("live", "demo"), &Push { seconds: 9.0, ..Push::default() }, &logs.path().join("push.log"));
    wait_for("the first playlist in MinIO", Duration::from_secs(20), || fetch_consistent(&base));
    minio.stop();
    std::thread::sleep(Duration::from_secs(3)); // the outage itself: a span of time, not a wait for an event
    runtime.block_on(minio.restart());
    let polls = watch_while_pushing(&base, &mut pusher, Duration::from_secs(40));
    assert!(polls > 0);
    assert!(pusher.exit_success(), "the encoder never noticed the outage: {}", pusher.log_tail(2000));
    let playlists = wait_ended(&base, &serve);
    for (uri, playlist) in &playlists {
        let names: Vec<u64> =
            playlist.segments.iter().map(|s| s.0.split('.').next().unwrap().parse().unwrap()).collect();
        assert!(names.windows(2).all(|w| w[1] == w[0] + 1), "{uri}: {names:?}");
    }
    let (_, _, _, metrics) = http_get(&serve.http_url("metrics"));
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("livestream_storage_upload_failures_total") && !l.ends_with(" 0")),
        "upload failures are counted: {metrics}"
    );
}

/// MinIO with a public bucket `live`, and `livestream serve` writing to it.
fn serve_on_minio(reconnect_grace: &str) -> (tokio::runtime::Runtime, MinioServer, Serve) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let minio = runtime.block_on(MinioServer::start());
    runtime.block_on(minio.create_bucket("live", true));
    let endpoint_flag = format!("--s3-endpoint={}", minio.endpoint());
    let mut args = ladder_args(&["--reconnect-grace", reconnect_grace, "--s3-bucket", "live", "--s3-path-style"]);
    args.push(&endpoint_flag);
    let serve = Serve::start(
        &args,
        &[("AWS_ACCESS_KEY_ID", minio.access_key()), ("AWS_SECRET_ACCESS_KEY", minio.secret_key())],
    );
    (runtime, minio, serve)
}

fn serve_still_ready(serve: &Serve) {
    let (status, _, _, _) = http_get(&serve.http_url("readyz"));
    assert_eq!(status, 200, "{}", serve.log());
}

/// A ladder this machine cannot encode in real time (x264 `medium` at 720p30): the
/// worker says so at once (status problem, metric, warning), and stops saying it when the
/// publish ends.
#[test]
fn a_transcoder_slower_than_real_time_is_reported() {
    let _serial = media::serial();
    let heavy = ["--preset", "medium", "--rendition", "720p:1280x720:3000", "--rendition", "480p:854x480:1500"];
    let serve = Serve::start(&[heavy.as_slice(), &["--reconnect-grace", "1", "--when-behind", "report"]].concat(), &[]);
    let logs = tempfile::tempdir().unwrap();
    let source = Push { seconds: 60.0, size: "1280x720", rate: 30, gop: 30, noise: true, ..Push::default() };
    let mut pusher = push(&serve.rtmp_url("live", "heavy"), &source, &logs.path().join("push.log"));
    let behind_metric = |serve: &Serve| {
        let (_, _, _, metrics) = http_get(&serve.http_url("metrics"));
        String::from_utf8_lossy(&metrics)
            .lines()
            .find(|line| line.starts_with("livestream_transcoder_behind{"))
            .and_then(|line| line.rsplit(' ').next().map(str::to_string))
    };
    let status = wait_for("the status to report TranscoderBehind", Duration::from_secs(60), || {
        pusher.assert_running();
        let (_, _, _, body) = http_get(&serve.http_url("status"));
        let body = String::from_utf8_lossy(&body).into_owned();
        body.contains("\"TranscoderBehind\"").then_some(body)
    });
    assert!(status.contains("does not keep up with the source"), "{status}");
    assert_eq!(behind_metric(&serve).as_deref(), Some("1"), "livestream_transcoder_behind");
    assert!(serve.log().contains("ffmpeg does not keep up with the source"), "{}", serve.log());
    pusher.kill();
    wait_for("the problem to clear when the publish ends", Duration::from_secs(90), || {
        let (_, _, _, body) = http_get(&serve.http_url("status"));
        (!String::from_utf8_lossy(&body).contains("TranscoderBehind")).then_some(())
    });
    assert_eq!(behind_metric(&serve).as_deref(), Some("0"));
}

/// The same transcoder slower than real time, under the default policy: ffmpeg is
/// restarted at a faster preset chosen from the speed it reached, keeps up from then on,
/// and the stream plays on across one discontinuity.
#[test]
fn a_transcoder_behind_is_restarted_at_a_faster_preset_and_keeps_up() {
    let _serial = media::serial();
    let heavy = ["--preset", "medium", "--rendition", "720p:1280x720:3000", "--rendition", "480p:854x480:1500"];
    let serve = Serve::start(&[heavy.as_slice(), &["--reconnect-grace", "1"]].concat(), &[]);
    let logs = tempfile::tempdir().unwrap();
    let source = Push { seconds: 40.0, size: "1280x720", rate: 30, gop: 30, noise: true, ..Push::default() };
    let mut pusher = push(&serve.rtmp_url("live", "shed"), &source, &logs.path().join("push.log"));
    wait_for("the preset to be lowered", Duration::from_secs(60), || {
        pusher.assert_running();
        serve.metric("livestream_transcoder_presets_lowered_total").filter(|n| *n >= 1.0)
    });
    let log = serve.log();
    let lowered = log.lines().find(|l| l.contains("restarting it at a faster preset")).unwrap_or_default();
    assert!(lowered.contains("from=\"medium\"") || lowered.contains("from=medium"), "{lowered}");
    // Kept up from then on: the input never waits long enough to be judged behind.
    let mut polls = 0;
    while pusher.is_running() {
        assert_eq!(
            serve.metric("livestream_transcoder_behind"),
            Some(0.0),
            "behind after the change:\n{}",
            serve.log()
        );
        polls += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(polls > 10, "the push ended too soon after the change to judge it");
    let base = serve.http_url("live/shed");
    let playlists = wait_ended(&base, &serve);
    let changes = serve.metric("livestream_transcoder_presets_lowered_total").unwrap_or_default() as u64;
    for line in serve.log().lines().filter(|l| l.contains("at a faster preset")) {
        eprintln!("{line}");
    }
    for (uri, playlist) in &playlists {
        let breaks = playlist.segments.iter().filter(|segment| segment.2).count() as u64;
        assert_eq!(
            playlist.discontinuity_sequence + breaks,
            changes,
            "{uri}: one discontinuity for each preset change: {playlist:?}"
        );
        let errors = media::decode_errors(&format!("{base}/{uri}"), "0");
        assert!(errors.trim().is_empty(), "{uri} does not decode cleanly: {errors}");
    }
    assert!(!serve.log().contains("died; restarting"), "a preset change is not a crash: {}", serve.log());
}

/// RTMPS: ffmpeg publishes over TLS with the certificate given to `serve`, the stream
/// plays, the index page names both ingest URLs; a certificate that cannot be read stops
/// `serve` at start with the file's name.
#[test]
fn rtmps_publish_plays_and_a_bad_certificate_is_a_clear_error() {
    let _serial = media::serial();
    let dir = tempfile::tempdir().unwrap();
    let (mut tls_args, rtmps_port) = media::rtmps_args(dir.path());
    tls_args.push("--stream-key=secure=rtmps-k3y-0f9d".to_string());
    let key = dir.path().join("tls.key");
    let cert = dir.path().join("tls.crt");
    let mut args = ladder_args(&["--reconnect-grace", "1"]);
    args.extend(tls_args.iter().map(String::as_str));
    let serve = Serve::start(&args, &[]);
    let (_, _, _, index) = http_get(&serve.http_url(""));
    let index = String::from_utf8(index).unwrap();
    assert!(index.contains(&format!("rtmps://127.0.0.1:{rtmps_port}/live/NAME")), "{index}");

    let logs = tempfile::tempdir().unwrap();
    let url = format!("rtmps://127.0.0.1:{rtmps_port}/live/rtmps-k3y-0f9d");
    let mut pusher = push(&url, &Push { seconds: 4.0, ..Push::default() }, &logs.path().join("push.log"));
    assert!(wait_exit(&mut pusher, Duration::from_secs(30)), "{}", pusher.log_tail(2000));
    let base = serve.http_url("live/secure");
    let playlists = wait_ended(&base, &serve);
    assert_eq!(playlists.len(), 2, "both renditions");
    let errors = media::decode_errors(&format!("{base}/{}", playlists[0].0), "0");
    assert!(errors.trim().is_empty(), "{errors}");
    assert!(!serve.log().contains("rtmps-k3y-0f9d"), "the stream key was logged: {}", serve.log());

    std::fs::write(&key, "not a key").unwrap();
    let output = Command::new(media::livestream_bin())
        .arg("serve")
        .args(["--rtmp-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--rtmps-addr=127.0.0.1:0"])
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg(format!("--tls-cert={}", cert.display()))
        .arg(format!("--tls-key={}", key.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "serve started with a broken key: {stderr}");
    assert!(stderr.contains("TLS private key") && stderr.contains("tls.key"), "{stderr}");
}

/// Encoders other than ffmpeg: GStreamer's rtmp2sink over RTMPS and librtmp (GStreamer's
/// rtmpsink, the RTMP library OBS's output descends from) over RTMP, each remuxing an
/// ffmpeg-made H.264/AAC file; both streams play and decode.
#[test]
fn gstreamer_and_librtmp_publishes_play() {
    let _serial = media::serial();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.flv");
    let made = Command::new(support::process::testenv_bin("ffmpeg"))
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac"])
        .arg(&source)
        .status()
        .unwrap();
    assert!(made.success(), "ffmpeg made no source file");
    let (tls_args, rtmps_port) = media::rtmps_args(dir.path());
    let mut args = ladder_args(&["--reconnect-grace", "1"]);
    args.extend(tls_args.iter().map(String::as_str));
    let serve = Serve::start(&args, &[]);
    let publishes = [
        ("rtmp2sink", format!("rtmps://127.0.0.1:{rtmps_port}/live/gstreamer"), Some("tls-validation-flags=0")),
        ("rtmpsink", serve.rtmp_url("live", "librtmp"), None),
    ];
    for (sink, url, extra) in publishes {
        let log = dir.path().join(format!("{sink}.log"));
        let mut command = Command::new("gst-launch-1.0");
        command
            .arg("-q")
            .arg("filesrc")
            .arg(format!("location={}", source.display()))
            .args(["!", "flvdemux", "name=demux", "demux.video", "!", "queue", "!", "h264parse", "!", "mux."])
            .args(["demux.audio", "!", "queue", "!", "aacparse", "!", "mux."])
            .args(["flvmux", "name=mux", "streamable=true", "!", sink])
            .arg(format!("location={url}"))
            .args(extra);
        let mut publisher = support::process::ManagedProcess::spawn(sink, command, &log);
        assert!(wait_exit(&mut publisher, Duration::from_secs(30)), "{sink}: {}", publisher.log_tail(2000));
        let name = url.rsplit('/').next().unwrap();
        let base = serve.http_url(&format!("live/{name}"));
        let playlists = wait_ended(&base, &serve);
        assert_eq!(playlists.len(), 2, "{sink}: both renditions");
        let (_, _, _, master) = http_get(&format!("{base}/master.m3u8"));
        let master = String::from_utf8(master).unwrap();
        for (attributes, _) in parse_master(&master) {
            let codecs = media::attribute(&attributes, "CODECS").expect("CODECS");
            assert!(codecs.starts_with("avc1.") && codecs.contains("mp4a.40.2"), "{sink}: {codecs}");
        }
        let total: f64 = playlists[0].1.segments.iter().map(|(_, duration, _, _)| duration).sum();
        assert!(total > 3.0, "{sink}: {total} s of the 4 s source in the playlist");
        let errors = media::decode_errors(&format!("{base}/{}", playlists[0].0), "0");
        assert!(errors.trim().is_empty(), "{sink}: {errors}");
    }
}

/// Pushes `seconds` of a test pattern and a tone with ffmpeg, encoded with `video` (the
/// libx264 arguments and the source's rate), and waits for the push to end.
fn push_encoded(serve: &Serve, name: &str, rate: &str, size: &str, video: &[&str], seconds: u32) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(support::process::testenv_bin("ffmpeg"));
    command
        .args(["-hide_banner", "-nostdin", "-loglevel", "warning", "-re"])
        .args(["-f", "lavfi", "-i", &format!("testsrc2=size={size}:rate={rate}")])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string(), "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .args(video)
        .args(["-c:a", "aac", "-f", "flv"])
        .arg(serve.rtmp_url("live", name));
    let mut pusher = support::process::ManagedProcess::spawn(name, command, &dir.path().join("push.log"));
    let limit = Duration::from_secs(u64::from(seconds) * 4 + 20);
    assert!(wait_exit(&mut pusher, limit), "{name}: {}", pusher.log_tail(2000));
}

/// What players need of every stream, whatever its source: the renditions end, decode
/// without an error, have the same segment boundaries (so a player switches between them
/// anywhere), segments no longer than the target duration, and all the media pushed.
/// Returns the master playlist.
fn assert_plays_aligned(serve: &Serve, name: &str, seconds: f64) -> String {
    let base = serve.http_url(&format!("live/{name}"));
    let playlists = wait_ended(&base, serve);
    assert_eq!(playlists.len(), 2, "{name}: both renditions: {playlists:?}");
    let durations: Vec<Vec<f64>> =
        playlists.iter().map(|(_, p)| p.segments.iter().map(|segment| segment.1).collect()).collect();
    assert_eq!(durations[0].len(), durations[1].len(), "{name}: the renditions have the same segments");
    for (top, bottom) in durations[0].iter().zip(&durations[1]) {
        assert!((top - bottom).abs() < 0.05, "{name}: segment boundaries differ: {durations:?}");
    }
    for (uri, playlist) in &playlists {
        for (segment, duration, _, _) in &playlist.segments {
            assert!(
                *duration <= playlist.target_duration as f64 + 0.05,
                "{name}: {uri} {segment} lasts {duration} s, past the target {}",
                playlist.target_duration
            );
        }
        let total: f64 = playlist.segments.iter().map(|segment| segment.1).sum();
        assert!((total - seconds).abs() <= 1.0, "{name}: {uri} holds {total} s of the {seconds} s pushed");
        assert!(playlist.segments.iter().all(|segment| !segment.2), "{name}: {uri}: one publish, no discontinuity");
        let errors = media::decode_errors(&format!("{base}/{uri}"), "0");
        assert!(errors.trim().is_empty(), "{name}: {uri} does not decode cleanly: {errors}");
    }
    String::from_utf8(http_get(&format!("{base}/master.m3u8")).3).unwrap()
}

/// Sources that players trip on: B-frames, a 4 s GOP and irregular keyframes (the ladder
/// still cuts at its own keyframes, aligned across renditions), 25 and 29.97 fps, and
/// 1080p60 High profile (superfast: x264's ultrafast would make it Constrained Baseline).
#[test]
fn sources_players_trip_on_play_aligned() {
    let _serial = media::serial();
    let serve = Serve::start(&ladder_args(&["--reconnect-grace", "1"]), &[]);
    let sources: [(&str, &str, &str, &[&str], &str); 5] = [
        ("bframes", "25", "640x360", &["-preset", "veryfast", "-bf", "3", "-g", "50", "-profile:v", "main"], "25.000"),
        ("gop4s", "25", "320x180", &["-preset", "ultrafast", "-g", "100"], "25.000"),
        (
            "irregular",
            "25",
            "320x180",
            &["-preset", "ultrafast", "-g", "1000", "-force_key_frames", "0,0.7,1.1,2.9,3.0,4.6"],
            "25.000",
        ),
        ("ntsc", "30000/1001", "320x180", &["-preset", "ultrafast", "-g", "30"], "29.970"),
        ("hd60", "60", "1920x1080", &["-preset", "superfast", "-profile:v", "high", "-g", "120"], "60.000"),
    ];
    for (name, rate, size, video, frame_rate) in sources {
        push_encoded(&serve, name, rate, size, video, 6);
        let master = assert_plays_aligned(&serve, name, 6.0);
        for (attributes, _) in parse_master(&master) {
            assert_eq!(media::attribute(&attributes, "FRAME-RATE"), Some(frame_rate), "{name}: {master}");
        }
    }
}

/// A source whose picture size changes mid-stream (a new sequence header, as an encoder
/// sends when its output is reconfigured) goes on in the same renditions and sizes.
#[test]
fn a_resolution_change_mid_stream_keeps_the_renditions() {
    use support::rtmp_publisher::{self, Scheduled};
    let _serial = media::serial();
    let serve = Serve::start(&ladder_args(&["--reconnect-grace", "1"]), &[]);
    let dir = tempfile::tempdir().unwrap();
    let first = rtmp_publisher::encoded_tags_sized(dir.path(), 3, "640x360");
    let second = rtmp_publisher::encoded_tags_sized(dir.path(), 3, "480x270");
    let offset = 3_000;
    let tags: Vec<Scheduled> = first
        .into_iter()
        .chain(second.into_iter().map(|mut tag| {
            tag.timestamp_ms += offset;
            tag
        }))
        .map(|tag| Scheduled { at: Duration::from_millis(u64::from(tag.timestamp_ms)), tag })
        .collect();
    rtmp_publisher::publish(serve.rtmp_port, "live", "resized", &tags).expect("the publish goes through");
    let master = assert_plays_aligned(&serve, "resized", 6.0);
    let sizes: Vec<_> = parse_master(&master)
        .iter()
        .map(|(attributes, _)| media::attribute(attributes, "RESOLUTION").unwrap_or_default().to_string())
        .collect();
    assert_eq!(sizes, ["320x180", "160x90"], "the ladder keeps its sizes: {master}");
}

/// The poster: a JPEG of the top rendition's picture, beside the playlists, served with a
/// short cache lifetime and replaced by a newer picture as the stream goes on.
#[test]
fn a_poster_of_the_top_rendition_is_kept_fresh() {
    let _serial = media::serial();
    let serve = Serve::start(&ladder_args(&["--reconnect-grace", "1"]), &[]);
    let logs = tempfile::tempdir().unwrap();
    let source = Push { seconds: 14.0, ..Push::default() };
    let mut pusher = push(&serve.rtmp_url("live", "poster"), &source, &logs.path().join("push.log"));
    let url = serve.http_url("live/poster/poster.jpg");
    let (content_type, cache_control, first) = wait_for("a poster", Duration::from_secs(20), || {
        pusher.assert_running();
        let (status, content_type, cache_control, body) = http_get(&url);
        (status == 200).then_some((content_type, cache_control, body))
    });
    assert_eq!((content_type.as_str(), cache_control.as_str()), ("image/jpeg", "max-age=2"));
    wait_for("a newer poster", Duration::from_secs(20), || {
        let (status, _, _, body) = http_get(&url);
        (status == 200 && body != first).then_some(())
    });
    assert!(wait_exit(&mut pusher, Duration::from_secs(30)), "{}", pusher.log_tail(2000));
    let poster = serve.data_dir.join("live/poster/poster.jpg");
    let probe = Command::new(support::process::testenv_bin("ffprobe"))
        .args(["-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0"])
        .arg(&poster)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "mjpeg,320,180", "the top rendition's size");
    let errors = media::decode_errors(poster.to_str().unwrap(), "0");
    assert!(errors.trim().is_empty(), "the poster decodes: {errors}");
}

/// The codec of the first video stream of `input`, as ffprobe names it.
fn video_codec(input: &str) -> String {
    stream_codec(input, "v:0")
}

/// The codec of the stream `selector` (`v:0`, `a:0`) of `input`; empty without one.
fn stream_codec(input: &str, selector: &str) -> String {
    let out = Command::new(support::process::testenv_bin("ffprobe"))
        .args(["-v", "error", "-select_streams", selector, "-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(input)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// HEVC and AV1 as OBS 30 sends them over Enhanced RTMP (FourCC video tags, B-frames with
/// composition times for HEVC), and H.264 in multitrack packets: transcoded into the H.264
/// ladder, and passed through in fMP4 with the source codec's CODECS (the default track
/// of a multitrack source); every rendition decodes.
#[test]
fn enhanced_rtmp_hevc_av1_and_multitrack_are_transcoded_and_passed_through() {
    use livestream::media::flv::FlvTagKind;
    use support::enhanced_source::{EnhancedCodec, enhanced_tags};
    use support::rtmp_publisher::{self, Scheduled};
    let _serial = media::serial();
    let args = ["--rendition", "source:passthrough", "--rendition", "90p:160x90:100", "--reconnect-grace", "1"];
    let serve = Serve::start(&args, &[]);
    let dir = tempfile::tempdir().unwrap();
    for (codec, name, codecs_prefix, decoded_as) in [
        (EnhancedCodec::Hevc, "hevc", "hvc1.1.6.L", "hevc"),
        (EnhancedCodec::Av1, "av1", "av01.0.", "av1"),
        (EnhancedCodec::MultitrackAvc, "multitrack", "avc1.64", "h264"),
        (EnhancedCodec::Hevc, "hevc-late-audio", "hvc1.1.6.L", "hevc"),
    ] {
        let mut tags = enhanced_tags(dir.path(), codec, 4, "320x180");
        if name.ends_with("late-audio") {
            // The AAC configuration after the first keyframe and a few frames, as some
            // encoders send it: the audio must still be there.
            let config = tags.iter().position(|t| t.kind == FlvTagKind::Audio && t.data.get(1) == Some(&0)).unwrap();
            let mut config = tags.remove(config);
            let after = tags.iter().position(|t| t.kind == FlvTagKind::Video && t.timestamp_ms >= 120).unwrap();
            config.timestamp_ms = tags[after].timestamp_ms;
            tags.insert(after, config);
        }
        let tags: Vec<Scheduled> = tags
            .into_iter()
            .map(|tag| Scheduled { at: Duration::from_millis(u64::from(tag.timestamp_ms)), tag })
            .collect();
        rtmp_publisher::publish(serve.rtmp_port, "live", name, &tags).expect("the publish goes through");
        let base = serve.http_url(&format!("live/{name}"));
        let playlists = wait_ended(&base, &serve);
        assert_eq!(playlists.len(), 2, "{name}: both renditions: {}", serve.log());
        let master = String::from_utf8(http_get(&format!("{base}/master.m3u8")).3).unwrap();
        let variant = |uri: &str| {
            let (attributes, _) = parse_master(&master).into_iter().find(|(_, u)| u == uri).unwrap_or_default();
            let attribute = |name| media::attribute(&attributes, name).unwrap_or_default().to_string();
            (attribute("CODECS"), attribute("RESOLUTION"))
        };
        let (source_codecs, source_size) = variant("source/index.m3u8");
        assert!(source_codecs.starts_with(codecs_prefix) && source_codecs.ends_with(",mp4a.40.2"), "{name}: {master}");
        assert_eq!(source_size, "320x180", "{name}: {master}");
        let (encoded_codecs, _) = variant("90p/index.m3u8");
        assert!(encoded_codecs.starts_with("avc1.") && encoded_codecs.ends_with(",mp4a.40.2"), "{name}: {master}");
        for (uri, playlist) in &playlists {
            let expected = if uri.starts_with("source/") { decoded_as } else { "h264" };
            let total: f64 = playlist.segments.iter().map(|segment| segment.1).sum();
            assert!((total - 4.0).abs() <= 1.0, "{name}: {uri} holds {total} s of the 4 s pushed");
            let first = first_segment(dir.path(), &base, uri, playlist);
            assert_eq!(video_codec(&first), expected, "{name}: {uri}");
            assert_eq!(stream_codec(&first, "a:0"), "aac", "{name}: {uri} has its audio from the first segment");
            let errors = media::decode_errors(&format!("{base}/{uri}"), "0");
            assert!(errors.trim().is_empty(), "{name}: {uri} does not decode cleanly: {errors}");
        }
    }
    assert!(!serve.log().contains("publish failed"), "{}", serve.log());
}

/// The init segment and first segment of a media playlist, joined into one file in `dir`
/// that ffprobe reads.
fn first_segment(dir: &std::path::Path, base: &str, uri: &str, playlist: &media::MediaPlaylist) -> String {
    let folder = uri.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let (segment, _, _, map) = &playlist.segments[0];
    let mut bytes = Vec::new();
    for object in map.iter().chain([segment]) {
        bytes.extend(http_get(&media::resolve(&format!("{base}/{folder}"), object)).3);
    }
    let path = dir.join(format!("first-{}.mp4", uri.replace('/', "-")));
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

/// A codec the worker cannot decode (VP9 over Enhanced RTMP) is refused with a message
/// that names it, and writes nothing.
#[test]
fn an_unsupported_video_codec_is_refused_by_name() {
    use bytes::Bytes;
    use livestream::media::flv::{FlvTag, FlvTagKind};
    use livestream::media::video_tag::enhanced_body;
    use support::rtmp_publisher::{self, Scheduled};
    let _serial = media::serial();
    let serve = Serve::start(&ladder_args(&["--reconnect-grace", "1"]), &[]);
    let tags: Vec<Scheduled> = (0..10u32)
        .map(|frame| {
            let packet_type = if frame == 0 { 0 } else { 1 };
            let body = enhanced_body(b"vp09", frame % 5 == 1, packet_type, 0, &[1, 2, 3]);
            let tag = FlvTag::new(FlvTagKind::Video, frame * 40, Bytes::from(body));
            Scheduled { at: Duration::from_millis(u64::from(frame) * 40), tag }
        })
        .collect();
    // The server closes the connection when it refuses the source: the publish may end
    // early with a broken pipe.
    let _ = rtmp_publisher::publish(serve.rtmp_port, "live", "vp9", &tags);
    wait_for("the refusal in the log", Duration::from_secs(10), || {
        serve.log().contains("the publish's video is vp09, which the worker does not decode").then_some(())
    });
    assert!(!serve.data_dir.join("live/vp9/master.m3u8").exists(), "nothing is published");
    let status = String::from_utf8(http_get(&serve.http_url("status")).3).unwrap();
    assert!(status.contains("SourceUnsupported") && status.contains("vp09"), "the status says why: {status}");
}

/// The Access Control stream ID that ffmpeg and OBS users give for a publish.
fn srt_publish_id(app: &str, key: &str) -> String {
    format!("#!::r={app}/{key},m=publish")
}

/// SRT publishes with the key in either form of stream ID (the Access Control syntax and
/// the plain `APP/KEY`) play like RTMP ones: both renditions, aligned, decoding, with the
/// audio and the frame rate of the source; the index page names the SRT URL.
#[test]
fn srt_publishes_with_the_key_in_either_stream_id_form_and_plays() {
    let _serial = media::serial();
    let keys = ["--stream-key", "studio=srt-Key-0ne-1s-l0ng", "--stream-key", "backup=srt-Key-tw0-1s-l0ng"];
    let serve = Serve::start(&ladder_args(&[&keys[..], &["--reconnect-grace", "1"]].concat()), &[]);
    let logs = tempfile::tempdir().unwrap();
    let forms = [
        ("studio", serve.srt_url(&srt_publish_id("live", "srt-Key-0ne-1s-l0ng"))),
        ("backup", serve.srt_url("live/srt-Key-tw0-1s-l0ng")),
    ];
    for (name, url) in &forms {
        let mut pusher = push(url, &Push { seconds: 5.0, ..Push::default() }, &logs.path().join(format!("{name}.log")));
        assert!(wait_exit(&mut pusher, Duration::from_secs(30)), "{name}: {}", pusher.log_tail(2000));
        let master = assert_plays_aligned(&serve, name, 5.0);
        for (attributes, _) in parse_master(&master) {
            let codecs = media::attribute(&attributes, "CODECS").expect("CODECS");
            assert!(codecs.starts_with("avc1.") && codecs.contains("mp4a.40.2"), "{name}: {codecs}");
            assert_eq!(media::attribute(&attributes, "FRAME-RATE"), Some("25.000"), "{name}: {master}");
        }
    }
    assert!(serve.log().contains("reason=Unpublished"), "the sender's close ends the stream: {}", serve.log());
    let log = serve.log();
    assert!(!log.contains("srt-Key-0ne") && !log.contains("srt-Key-tw0"), "a key appears in the log:\n{log}");
    let (_, _, _, metrics) = http_get(&serve.http_url("metrics"));
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    assert!(metrics.contains("srt_connections_accepted_total 2"), "{metrics}");
    let (_, _, _, index) = http_get(&serve.http_url(""));
    let index = String::from_utf8(index).unwrap();
    let ingest = format!("srt://127.0.0.1:{}?streamid=#!::r=live/NAME,m=publish", serve.srt_port);
    assert!(index.contains(&ingest), "the index names the SRT URL: {index}");
}

/// A wrong key, another application and a playback request are refused in the SRT
/// handshake: ffmpeg fails at once, nothing is written, the refusals are counted, and the
/// keys never reach the log.
#[test]
fn srt_refuses_a_wrong_key_another_app_and_playback() {
    let _serial = media::serial();
    let serve = Serve::start(&ladder_args(&["--stream-key", "studio=srt-k3y-Th4t-is-l0ng"]), &[]);
    let logs = tempfile::tempdir().unwrap();
    let refused = [
        ("wrong key", srt_publish_id("live", "srt-n0t-the-k3y")),
        ("plain wrong key", "live/srt-n0t-the-k3y".to_string()),
        ("other app", srt_publish_id("vod", "srt-k3y-Th4t-is-l0ng")),
        ("playback", "#!::r=live/srt-k3y-Th4t-is-l0ng,m=request".to_string()),
        ("no stream id", String::new()),
    ];
    for (what, stream_id) in &refused {
        let url =
            if stream_id.is_empty() { format!("srt://127.0.0.1:{}", serve.srt_port) } else { serve.srt_url(stream_id) };
        let mut pusher = push(&url, &Push::default(), &logs.path().join("refused.log"));
        assert!(!wait_exit(&mut pusher, Duration::from_secs(15)), "{what}: a refused caller must fail");
        assert!(pusher.log_tail(4000).to_lowercase().contains("reject"), "{what}: {}", pusher.log_tail(2000));
    }
    assert!(!serve.data_dir.join("live").exists() && !serve.data_dir.join("vod").exists(), "nothing may be written");
    let (_, _, _, metrics) = http_get(&serve.http_url("metrics"));
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    assert!(metrics.contains("srt_publishes_rejected_total{reason=\"bad_key\"} 3"), "{metrics}");
    assert!(metrics.contains("srt_publishes_rejected_total{reason=\"other\"} 2"), "{metrics}");
    assert!(metrics.contains("srt_connections_accepted_total 0"), "{metrics}");
    let log = serve.log();
    assert!(!log.contains("srt-k3y-Th4t") && !log.contains("srt-n0t-the"), "a key appears in the log:\n{log}");
}

#[test]
fn srt_source_without_audio_plays_as_video_only_renditions() {
    let _serial = media::serial();
    let serve = Serve::start(&ladder_args(&["--reconnect-grace", "1"]), &[]);
    let logs = tempfile::tempdir().unwrap();
    let silent = Push { seconds: 4.0, audio: false, ..Push::default() };
    let mut pusher = push(&serve.srt_url(&srt_publish_id("live", "silent")), &silent, &logs.path().join("push.log"));
    assert!(wait_exit(&mut pusher, Duration::from_secs(30)), "{}", pusher.log_tail(2000));
    let master = assert_plays_aligned(&serve, "silent", 4.0);
    for (attributes, _) in parse_master(&master) {
        let codecs = media::attribute(&attributes, "CODECS").expect("CODECS");
        assert!(codecs.starts_with("avc1.") && !codecs.contains("mp4a"), "{codecs}");
    }
    assert!(!serve.log().contains("matches no streams"), "{}", serve.log());
}

/// An SRT sender that vanishes (its process killed: no close reaches the server) is
/// taken as dropped once it has been silent for SRT's peer idle timeout; a new publish
/// within the grace continues the same playlists after one discontinuity.
#[test]
fn srt_reconnect_within_grace_continues_the_playlists() {
    let _serial = media::serial();
    let serve = Serve::start(&ladder_args(&["--reconnect-grace", "10"]), &[]);
    let logs = tempfile::tempdir().unwrap();
    let url = serve.srt_url(&srt_publish_id("live", "demo"));
    let base = serve.http_url("live/demo");
    let mut first = push(&url, &Push { seconds: 30.0, ..Push::default() }, &logs.path().join("first.log"));
    wait_for("a segment of the first push in every playlist", Duration::from_secs(20), || {
        fetch_consistent(&base).filter(|p| !p.is_empty() && p.iter().all(|(_, p)| !p.segments.is_empty()))
    });
    first.kill();
    // Until SRT's peer idle timeout says the sender is gone, the stream is live: another
    // publisher is refused in the handshake (409, conflict).
    let mut early = push(&url, &Push::default(), &logs.path().join("early.log"));
    assert!(!wait_exit(&mut early, Duration::from_secs(15)), "a publish to a live stream must be refused");
    assert!(early.log_tail(4000).to_lowercase().contains("reject"), "{}", early.log_tail(2000));
    let metrics = String::from_utf8_lossy(&http_get(&serve.http_url("metrics")).3).into_owned();
    assert!(metrics.contains("srt_publishes_rejected_total{reason=\"already_live\"} 1"), "{metrics}");
    wait_for("the stream to wait for its encoder", Duration::from_secs(15), || {
        let (_, _, _, status) = http_get(&serve.http_url("status"));
        String::from_utf8_lossy(&status).contains("\"phase\":\"Reconnecting\"").then_some(())
    });
    let before = fetch_consistent(&base).expect("playlists after the first push");
    assert!(before.iter().all(|(_, p)| !p.ended), "no ENDLIST within the grace window");
    let mut second = push(&url, &Push { seconds: 3.0, ..Push::default() }, &logs.path().join("second.log"));
    assert!(wait_exit(&mut second, Duration::from_secs(30)), "{}", second.log_tail(2000));
    let after = wait_ended(&base, &serve);
    for (uri, playlist) in &after {
        let discontinuities = playlist.segments.iter().filter(|s| s.2).count() as u64;
        assert_eq!(playlist.discontinuity_sequence + discontinuities, 1, "{uri}: one discontinuity: {playlist:?}");
        let names: Vec<u64> =
            playlist.segments.iter().map(|s| s.0.split('.').next().unwrap().parse().unwrap()).collect();
        assert!(names.windows(2).all(|w| w[1] == w[0] + 1), "{uri}: sequence continues: {names:?}");
    }
    assert!(serve.log().contains("SRT sender fell silent"), "{}", serve.log());
    let errors = media::decode_errors(&format!("{base}/master.m3u8"), "0:v:0");
    assert!(errors.trim().is_empty(), "{errors}");
}

/// Datagrams that are not SRT, or SRT handshakes that go nowhere, leave a live SRT
/// publish alone.
#[test]
fn garbage_on_the_srt_port_does_not_disturb_a_live_stream() {
    let _serial = media::serial();
    let serve = Serve::start(&ladder_args(&["--reconnect-grace", "1"]), &[]);
    let logs = tempfile::tempdir().unwrap();
    let base = serve.http_url("live/demo");
    let url = serve.srt_url(&srt_publish_id("live", "demo"));
    let mut pusher = push(&url, &Push { seconds: 5.0, ..Push::default() }, &logs.path().join("push.log"));
    wait_for("the first playlist", Duration::from_secs(20), || fetch_consistent(&base));
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut handshake = vec![0x80, 0x00, 0x00, 0x00];
    handshake.resize(64, 0xab);
    let mut noise = 0x1234_5678_u32;
    for round in 0..300 {
        let datagram: Vec<u8> = match round % 3 {
            0 => handshake.clone(),
            1 => b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            _ => (0..1316)
                .map(|_| {
                    noise ^= noise << 13;
                    noise ^= noise >> 17;
                    noise ^= noise << 5;
                    noise as u8
                })
                .collect(),
        };
        socket.send_to(&datagram, ("127.0.0.1", serve.srt_port)).unwrap();
    }
    assert!(wait_exit(&mut pusher, Duration::from_secs(30)), "the push survives: {}", pusher.log_tail(2000));
    let playlists = wait_ended(&base, &serve);
    assert!(playlists.iter().all(|(_, p)| p.segments.len() >= 4), "{playlists:?}");
    serve_still_ready(&serve);
}

/// With a passphrase, SRT is encrypted: a caller with it publishes, one without it or with
/// another is refused.
#[test]
fn srt_with_a_passphrase_takes_only_callers_that_know_it() {
    let _serial = media::serial();
    let passphrase = "correct-horse-battery";
    let serve = Serve::start(&ladder_args(&["--reconnect-grace", "1"]), &[("LIVESTREAM_SRT_PASSPHRASE", passphrase)]);
    let logs = tempfile::tempdir().unwrap();
    let url = serve.srt_url(&srt_publish_id("live", "secret"));
    for (what, suffix) in [("no passphrase", String::new()), ("another", "&passphrase=wrong-horse-battery".to_string())]
    {
        let mut pusher = push(&format!("{url}{suffix}"), &Push::default(), &logs.path().join("refused.log"));
        assert!(!wait_exit(&mut pusher, Duration::from_secs(15)), "{what}: must be refused");
    }
    assert!(!serve.data_dir.join("live").exists(), "nothing may be written");
    let encrypted = format!("{url}&passphrase={passphrase}");
    let mut pusher = push(&encrypted, &Push { seconds: 4.0, ..Push::default() }, &logs.path().join("push.log"));
    assert!(wait_exit(&mut pusher, Duration::from_secs(30)), "{}", pusher.log_tail(2000));
    assert_plays_aligned(&serve, "secret", 4.0);
    assert!(!serve.log().contains(passphrase), "the passphrase appears in the log");
}

/// HEVC over SRT (libx265 in MPEG-TS, as hardware encoders send it): transcoded into the
/// H.264 ladder and passed through as `hvc1`, every rendition decoding.
#[test]
fn srt_hevc_is_transcoded_and_passed_through() {
    let _serial = media::serial();
    let args = ["--rendition", "source:passthrough", "--rendition", "90p:160x90:100", "--reconnect-grace", "1"];
    let serve = Serve::start(&args, &[]);
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(support::process::testenv_bin("ffmpeg"));
    command
        .args(["-hide_banner", "-nostdin", "-loglevel", "warning", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "4", "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p"])
        .args(["-x265-params", "log-level=error:keyint=25:bframes=2"])
        .args(["-c:a", "aac", "-f", "mpegts"])
        .arg(serve.srt_url(&srt_publish_id("live", "hevc")));
    let mut pusher = support::process::ManagedProcess::spawn("hevc", command, &dir.path().join("push.log"));
    assert!(wait_exit(&mut pusher, Duration::from_secs(40)), "{}", pusher.log_tail(2000));
    let base = serve.http_url("live/hevc");
    let playlists = wait_ended(&base, &serve);
    assert_eq!(playlists.len(), 2, "both renditions: {}", serve.log());
    let master = String::from_utf8(http_get(&format!("{base}/master.m3u8")).3).unwrap();
    for (attributes, uri) in parse_master(&master) {
        let codecs = media::attribute(&attributes, "CODECS").unwrap_or_default().to_string();
        let expected = if uri.starts_with("source/") { "hvc1.1.6.L" } else { "avc1." };
        assert!(codecs.starts_with(expected) && codecs.ends_with(",mp4a.40.2"), "{uri}: {master}");
    }
    for (uri, playlist) in &playlists {
        let first = first_segment(dir.path(), &base, uri, playlist);
        let expected = if uri.starts_with("source/") { "hevc" } else { "h264" };
        assert_eq!(video_codec(&first), expected, "{uri}");
        let errors = media::decode_errors(&format!("{base}/{uri}"), "0");
        assert!(errors.trim().is_empty(), "{uri} does not decode cleanly: {errors}");
    }
}
