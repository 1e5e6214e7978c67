//! Low-Latency HLS against real ffmpeg: `livestream serve`'s origin and a worker's origin
//! in front of MinIO serve playlists with parts, preload hints and rendition reports;
//! blocking reloads wait for the part asked for, refuse what is too far ahead, and
//! answer at once when the stream has ended; delta updates skip old segments; every part
//! a playlist names is readable; the standard playlists in storage have no parts.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::media::{self, MediaPlaylist, Push, Serve, fetch_consistent, http_get, parse_media, push, wait_exit};
use support::minio::MinioServer;
use support::process::{ManagedProcess, free_port, testenv_bin, wait_for};

const LADDER: [&str; 4] = ["--rendition", "180p:320x180:300", "--rendition", "90p:160x90:100"];

fn media_playlist(url: &str) -> Option<(MediaPlaylist, String, String)> {
    let (code, _, cache, body) = http_get(url);
    let text = String::from_utf8(body).ok()?;
    (code == 200).then(|| (parse_media(&text), text, cache))
}

/// `(msn, part)` of the hinted part, from its URI `MSN.PART.m4s`.
fn hinted(playlist: &MediaPlaylist) -> (u64, u32) {
    let hint = playlist.preload_hint.as_deref().expect("a live low-latency playlist hints the next part");
    let file = hint.rsplit('/').next().unwrap_or(hint);
    let mut numbers = file.trim_end_matches(".m4s").split('.');
    let msn = numbers.next().and_then(|n| n.parse().ok()).expect("MSN in the hint");
    let part = numbers.next().and_then(|n| n.parse().ok()).expect("part index in the hint");
    (msn, part)
}

/// Whether a playlist carries the rendition report of `other`, which it can only do
/// once `other` has a part of its own.
fn reports(text: &str, other: &str) -> bool {
    text.contains(&format!("#EXT-X-RENDITION-REPORT:URI=\"../{other}/index.m3u8\","))
}

/// What every live low-latency playlist must hold (RFC 8216bis).
fn check_low_latency(text: &str, playlist: &MediaPlaylist, other: &str) {
    assert!(text.contains("#EXT-X-VERSION:9\n"), "{text}");
    assert!(text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL="), "{text}");
    let part_target = playlist.part_target.expect("EXT-X-PART-INF");
    let hold_back: f64 = text
        .lines()
        .find_map(|l| media::attribute(l.strip_prefix("#EXT-X-SERVER-CONTROL:")?, "PART-HOLD-BACK"))
        .and_then(|v| v.parse().ok())
        .expect("PART-HOLD-BACK");
    assert!(hold_back >= 2.0 * part_target, "PART-HOLD-BACK {hold_back} is at least twice {part_target}");
    assert!(!playlist.parts.is_empty(), "{text}");
    for (uri, duration, _) in &playlist.parts {
        assert!(*duration <= part_target + 1e-6, "part {uri} of {duration} s exceeds the part target: {text}");
    }
    // Every part that opens a segment (MSN.0) starts with a keyframe.
    for (uri, _, independent) in &playlist.parts {
        if uri.ends_with(".0.m4s") {
            assert!(independent, "{uri} opens a segment and must be INDEPENDENT: {text}");
        }
    }
    assert!(
        text.contains(&format!("#EXT-X-RENDITION-REPORT:URI=\"../{other}/index.m3u8\",LAST-MSN=")),
        "a report of {other}: {text}"
    );
}

#[test]
fn serve_low_latency_playlists_block_until_the_part_exists() {
    let _serial = media::serial();
    let mut args = LADDER.to_vec();
    args.extend(["--segment-duration", "1", "--part-duration", "0.5", "--window", "20", "--reconnect-grace", "1"]);
    let serve = Serve::start(&args, &[]);
    let logs = tempfile::tempdir().unwrap();
    let mut pusher = push(
        &serve.rtmp_url("live", "demo"),
        &Push { seconds: 14.0, ..Push::default() },
        &logs.path().join("push.log"),
    );
    let base = serve.http_url("live/demo");
    let url = format!("{base}/180p/index.m3u8");

    // The first part is playable long before the first segment is complete.
    // Each rendition reports the others once they have a part: wait for both.
    let (first, text, cache) = wait_for("the first part of each rendition", Duration::from_secs(20), || {
        media_playlist(&url).filter(|(p, text, _)| !p.parts.is_empty() && reports(text, "90p"))
    });
    check_low_latency(&text, &first, "90p");
    assert_eq!(cache, "max-age=1", "a playlist answered without blocking is short-lived");

    // A blocking reload for the hinted part waits for it, then names it.
    let (msn, part) = hinted(&first);
    let started = Instant::now();
    let (code, _, cache, body) = http_get(&format!("{url}?_HLS_msn={msn}&_HLS_part={part}"));
    let waited = started.elapsed();
    assert_eq!(code, 200);
    let blocked = String::from_utf8(body).unwrap();
    assert!(blocked.contains(&format!("URI=\"{msn}.{part}.m4s\"")), "the answer holds {msn}.{part}: {blocked}");
    assert!(waited < Duration::from_secs(3), "a hold ends with the part, not after the limit: {waited:?}");
    assert_eq!(cache, "max-age=6", "a blocking answer may be cached for six target durations");

    // The hinted part itself, asked for before it exists, comes when it exists.
    let next = hinted(&parse_media(&blocked));
    let (code, content_type, _, bytes) = http_get(&format!("{base}/180p/{}.{}.m4s", next.0, next.1));
    assert_eq!((code, content_type.as_str()), (200, "video/iso.segment"));
    assert!(bytes.windows(4).any(|w| w == b"moof"), "a part is a fragment");

    // Too far ahead, or malformed: refused at once.
    let started = Instant::now();
    assert_eq!(http_get(&format!("{url}?_HLS_msn={}&_HLS_part=0", msn + 10)).0, 400);
    assert_eq!(http_get(&format!("{url}?_HLS_part=1")).0, 400);
    assert_eq!(http_get(&format!("{url}?_HLS_msn=x")).0, 400);
    assert!(started.elapsed() < Duration::from_secs(2), "refusals do not wait");

    // Every object the playlists name is readable, parts included, all along.
    let mut polls = 0;
    let mut skipped = false;
    while pusher.is_running() {
        fetch_consistent(&base).expect("playlists while live");
        polls += 1;
        if let Some((_, delta, _)) = media_playlist(&format!("{url}?_HLS_skip=YES")) {
            // CAN-SKIP-UNTIL is six target durations: 6 s, well within the 20 s window.
            skipped |= delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(pusher.exit_success(), "{}", pusher.log_tail(2000));
    assert!(polls > 3);
    assert!(skipped, "a delta update skipped the oldest segments once the stream was long enough");

    // Ended: ENDLIST, no hint, and a reload for a future part answers at once.
    let (ended, text, _) =
        wait_for("ENDLIST", Duration::from_secs(20), || media_playlist(&url).filter(|(p, _, _)| p.ended));
    assert_eq!(ended.preload_hint, None, "{text}");
    let last: u64 = ended.segments.last().unwrap().0.split('.').next().unwrap().parse().unwrap();
    let started = Instant::now();
    assert_eq!(http_get(&format!("{url}?_HLS_msn={}&_HLS_part=0", last + 1)).0, 200);
    assert!(started.elapsed() < Duration::from_secs(2));

    // The standard playlist on disk lists segments only, and names its writer.
    let stored = std::fs::read_to_string(serve.data_dir.join("live/demo/180p/index.m3u8")).unwrap();
    assert!(!stored.contains("#EXT-X-PART"), "{stored}");
    assert!(parse_media(&stored).writer.is_some());
    let errors = media::decode_errors(&serve.data_dir.join("live/demo/180p/index.m3u8").display().to_string(), "0:v");
    assert!(errors.trim().is_empty(), "{errors}");
}

#[test]
fn worker_origin_serves_playlists_whose_media_comes_from_minio() {
    let _serial = media::serial();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let minio = runtime.block_on(MinioServer::start());
    runtime.block_on(minio.create_bucket("streams", true));
    let dir = tempfile::tempdir().unwrap();
    let (rtmp, http, origin) = (free_port(), free_port(), free_port());
    let media_base = format!("{}/streams/media/keynote", minio.endpoint());
    let config = format!(
        r#"
stream: {{namespace: media, name: keynote}}
rtmp: {{listen: "127.0.0.1:{rtmp}", app: live}}
http: {{listen: "127.0.0.1:{http}"}}
origin: {{listen: "127.0.0.1:{origin}", mediaBaseUrl: "{media_base}"}}
ladder:
  renditions:
    - {{name: 180p, width: 320, height: 180, videoBitrateKbps: 300}}
    - {{name: 90p, width: 160, height: 90, videoBitrateKbps: 100}}
  keyframeIntervalSeconds: 1
hls: {{segmentDurationSeconds: 1, windowSegments: 6, partDurationMilliseconds: 500}}
storage:
  s3: {{bucket: streams, prefix: media/keynote, endpoint: "{endpoint}", forcePathStyle: true}}
scratchDir: {scratch}
ffmpeg: {ffmpeg}
reconnectGraceSeconds: 1
"#,
        endpoint = minio.endpoint(),
        scratch = dir.path().join("scratch").display(),
        ffmpeg = testenv_bin("ffmpeg").display(),
    );
    let config_path = dir.path().join("worker.yaml");
    std::fs::write(&config_path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_livestream"));
    cmd.args(["worker", "--config"])
        .arg(&config_path)
        .env("LIVESTREAM_STREAM_KEY", "origin-test-key")
        .env("AWS_ACCESS_KEY_ID", minio.access_key())
        .env("AWS_SECRET_ACCESS_KEY", minio.secret_key());
    let mut worker = ManagedProcess::spawn("livestream worker", cmd, &dir.path().join("worker.log"));
    wait_for("the worker to become ready", Duration::from_secs(30), || {
        worker.assert_running();
        (http_get(&format!("http://127.0.0.1:{http}/readyz")).0 == 200).then_some(())
    });
    let mut pusher = push(
        &format!("rtmp://127.0.0.1:{rtmp}/live/origin-test-key"),
        &Push { seconds: 6.0, ..Push::default() },
        &dir.path().join("push.log"),
    );
    let origin_base = format!("http://127.0.0.1:{origin}/media/keynote");
    let url = format!("{origin_base}/180p/index.m3u8");
    let (playlist, text, _) = wait_for("a low-latency playlist from the origin", Duration::from_secs(20), || {
        media_playlist(&url)
            .filter(|(p, text, _)| !p.parts.is_empty() && !p.segments.is_empty() && reports(text, "90p"))
    });
    check_low_latency(&text, &playlist, "90p");
    for (uri, _, _) in &playlist.parts {
        assert!(uri.starts_with(&format!("{media_base}/180p/")), "media comes from the bucket: {uri}");
    }
    assert!(playlist.segments.iter().all(|s| s.0.starts_with(&media_base)), "{text}");
    // Master and media playlists from the origin, every named object from MinIO.
    while pusher.is_running() {
        fetch_consistent(&origin_base).expect("playlists while live");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(wait_exit(&mut pusher, Duration::from_secs(5)), "{}", pusher.log_tail(2000));
    // The origin serves playlists, not media.
    let part = playlist.parts[0].0.rsplit('/').next().unwrap().to_string();
    assert_eq!(http_get(&format!("{origin_base}/180p/{part}")).0, 404);
    let stored = wait_for("the stored playlist to end", Duration::from_secs(20), || {
        media_playlist(&format!("{media_base}/180p/index.m3u8")).filter(|(p, _, _)| p.ended)
    });
    assert!(stored.0.parts.is_empty() && !stored.1.contains("EXT-X-PART"), "{}", stored.1);
    assert_eq!(stored.2, "max-age=30", "an ended playlist in storage");
    let log = worker.log_tail(50_000);
    assert!(!log.contains("origin-test-key") && !log.contains(minio.secret_key()), "a secret in the log");
}
