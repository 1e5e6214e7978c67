//! `livestream worker --config FILE`, as the operator runs it: one stream, its key from
//! the environment, its objects in MinIO under the configured prefix, its live state on
//! `/status`; and continuity across a restart of the worker, recording and MPEG-TS.

mod support;

use std::process::Command;
use std::time::Duration;

use livestream::worker::status::{StreamPhase, WorkerStatus};
use support::media::{self, Push, Serve, fetch_consistent, http_get, parse_media, push, wait_exit};
use support::minio::MinioServer;
use support::process::{ManagedProcess, free_port, testenv_bin, wait_for};

fn status(port: u16) -> Option<WorkerStatus> {
    let (code, _, _, body) = http_get(&format!("http://127.0.0.1:{port}/status"));
    (code == 200).then(|| serde_json::from_slice(&body).expect("WorkerStatus JSON"))
}

#[test]
fn worker_runs_one_stream_from_its_config_file_and_reports_its_state() {
    let _serial = media::serial();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let minio = runtime.block_on(MinioServer::start());
    runtime.block_on(minio.create_bucket("streams", true));
    let dir = tempfile::tempdir().unwrap();
    let (rtmp, http) = (free_port(), free_port());
    let config = format!(
        r#"
stream: {{namespace: media, name: keynote}}
rtmp: {{listen: "127.0.0.1:{rtmp}", app: live}}
http: {{listen: "127.0.0.1:{http}"}}
ladder:
  renditions:
    - {{name: 180p, width: 320, height: 180, videoBitrateKbps: 300}}
  keyframeIntervalSeconds: 1
hls: {{segmentDurationSeconds: 1, windowSegments: 4}}
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
        .env("LIVESTREAM_STREAM_KEY", "w0rker-key-of-keynote")
        .env("AWS_ACCESS_KEY_ID", minio.access_key())
        .env("AWS_SECRET_ACCESS_KEY", minio.secret_key());
    let mut worker = ManagedProcess::spawn("livestream worker", cmd, &dir.path().join("worker.log"));
    wait_for("the worker to become ready", Duration::from_secs(30), || {
        worker.assert_running();
        let (code, _, _, _) = http_get(&format!("http://127.0.0.1:{http}/readyz"));
        (code == 200).then_some(())
    });
    assert_eq!(status(http).unwrap().phase, StreamPhase::Idle);

    let url = format!("rtmp://127.0.0.1:{rtmp}/live/w0rker-key-of-keynote");
    let mut pusher = push(&url, &Push { seconds: 5.0, ..Push::default() }, &dir.path().join("push.log"));
    let live = wait_for("/status to say Live", Duration::from_secs(15), || {
        status(http).filter(|s| s.phase == StreamPhase::Live)
    });
    assert!(live.started_at.is_some());
    let base = format!("{}/streams/media/keynote", minio.endpoint());
    wait_for("the first playlist in MinIO", Duration::from_secs(20), || fetch_consistent(&base));
    let figures = wait_for("live figures", Duration::from_secs(10), || {
        status(http).filter(|s| s.ingest_bitrate_kbps.unwrap_or(0) > 0 && s.last_segment_at.is_some())
    });
    assert!(figures.frame_rate.unwrap_or(0.0) > 10.0, "{figures:?}");
    assert!(wait_exit(&mut pusher, Duration::from_secs(30)), "{}", pusher.log_tail(2000));
    wait_for("/status to say Ended", Duration::from_secs(20), || {
        status(http).filter(|s| s.phase == StreamPhase::Ended)
    });
    let playlists = fetch_consistent(&base).expect("playlists");
    assert!(playlists.iter().all(|(_, p)| p.ended), "{playlists:?}");
    assert_eq!(playlists[0].1.segments.len(), 4, "the window holds 4 segments");
    let log = worker.log_tail(50_000);
    assert!(!log.contains("w0rker-key-of-keynote") && !log.contains(minio.secret_key()), "a secret in the log");
}

/// A `livestream worker` on MinIO for stream `media/keynote`, with its ports.
struct Worker {
    process: ManagedProcess,
    rtmp: u16,
    http: u16,
}

fn start_worker(minio: &MinioServer, dir: &std::path::Path, name: &str) -> Worker {
    start_worker_with(minio, dir, name, "", &[])
}

/// A worker as [`start_worker`] starts it, with `extra` lines in its configuration and
/// `env` in its environment.
fn start_worker_with(
    minio: &MinioServer,
    dir: &std::path::Path,
    name: &str,
    extra: &str,
    env: &[(&str, &str)],
) -> Worker {
    let (rtmp, http, origin) = (free_port(), free_port(), free_port());
    let config = format!(
        r#"
stream: {{namespace: media, name: keynote}}
rtmp: {{listen: "127.0.0.1:{rtmp}", app: live}}
http: {{listen: "127.0.0.1:{http}"}}
origin: {{listen: "127.0.0.1:{origin}"}}
ladder:
  renditions:
    - {{name: 180p, width: 320, height: 180, videoBitrateKbps: 300}}
  keyframeIntervalSeconds: 1
hls: {{segmentDurationSeconds: 1, windowSegments: 20}}
storage:
  s3: {{bucket: streams, prefix: media/keynote, endpoint: "{endpoint}", forcePathStyle: true}}
scratchDir: {scratch}
ffmpeg: {ffmpeg}
reconnectGraceSeconds: 30
{extra}
"#,
        endpoint = minio.endpoint(),
        scratch = dir.join(format!("scratch-{name}")).display(),
        ffmpeg = testenv_bin("ffmpeg").display(),
    );
    let config_path = dir.join(format!("{name}.yaml"));
    std::fs::write(&config_path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_livestream"));
    cmd.args(["worker", "--config"])
        .arg(&config_path)
        .env("LIVESTREAM_STREAM_KEY", "w0rker-key-of-keynote")
        .env("AWS_ACCESS_KEY_ID", minio.access_key())
        .env("AWS_SECRET_ACCESS_KEY", minio.secret_key())
        .envs(env.iter().copied());
    let mut process = ManagedProcess::spawn(name, cmd, &dir.join(format!("{name}.log")));
    wait_for("the worker to become ready", Duration::from_secs(30), || {
        process.assert_running();
        let (code, _, _, _) = http_get(&format!("http://127.0.0.1:{http}/readyz"));
        (code == 200).then_some(())
    });
    Worker { process, rtmp, http }
}

/// Two workers of one stream at once (a pod deleted while its successor starts): the new
/// one takes the playlists over, the old one stops writing at its next playlist and lets
/// its encoder go, and the playlists never go back to the old writer.
#[test]
fn a_second_worker_takes_over_and_the_first_stops_writing() {
    let _serial = media::serial();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let minio = runtime.block_on(MinioServer::start());
    runtime.block_on(minio.create_bucket("streams", true));
    let dir = tempfile::tempdir().unwrap();
    let playlist_url = format!("{}/streams/media/keynote/180p/index.m3u8", minio.endpoint());
    let read = || {
        let (code, _, _, body) = http_get(&playlist_url);
        (code == 200).then(|| parse_media(&String::from_utf8_lossy(&body)))
    };
    let mut writers: Vec<String> = Vec::new();
    let mut note = |playlist: &media::MediaPlaylist| {
        let writer = playlist.writer.clone().expect("a stored playlist names its writer");
        if writers.last() != Some(&writer) {
            writers.push(writer);
        }
    };

    let mut first = start_worker(&minio, dir.path(), "first");
    let url = |worker: &Worker| format!("rtmp://127.0.0.1:{}/live/w0rker-key-of-keynote", worker.rtmp);
    let mut first_push = push(&url(&first), &Push { seconds: 60.0, ..Push::default() }, &dir.path().join("p1.log"));
    let before = wait_for("three segments from the first worker", Duration::from_secs(30), || {
        read().filter(|p| p.segments.len() >= 3)
    });
    note(&before);

    // The encoder reaches the second worker while the first still has its own publish.
    let second = start_worker(&minio, dir.path(), "second");
    let mut second_push = push(&url(&second), &Push { seconds: 8.0, ..Push::default() }, &dir.path().join("p2.log"));
    // The first worker learns at its next playlist write that it is no longer the writer.
    let superseded = wait_for("the first worker to stop as superseded", Duration::from_secs(20), || {
        if let Some(playlist) = read() {
            note(&playlist);
        }
        status(first.http)
            .filter(|s| s.phase == StreamPhase::Idle && s.problems.iter().any(|p| p.reason == "Superseded"))
    });
    assert!(superseded.problems[0].message.contains("another worker"), "{superseded:?}");
    assert!(
        wait_exit(&mut first_push, Duration::from_secs(20)) || !first_push.is_running(),
        "the first worker lets its encoder go"
    );
    assert!(wait_exit(&mut second_push, Duration::from_secs(30)), "{}", second_push.log_tail(2000));
    let after = wait_for("the second worker to end the stream", Duration::from_secs(30), || {
        let playlist = read()?;
        note(&playlist);
        playlist.ended.then_some(playlist)
    });
    assert_eq!(writers.len(), 2, "the writer changed once and never back: {writers:?}");
    let numbers: Vec<u64> = after.segments.iter().map(|s| s.0.split('.').next().unwrap().parse().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "no gap and no number twice: {numbers:?}");
    assert!(after.segments.iter().any(|s| s.2), "a discontinuity where the second worker began: {after:?}");
    assert!(first.process.is_running(), "the superseded worker keeps running (Idle) until it is stopped");
    let log = first.process.log_tail(20_000);
    assert!(log.contains("no longer writes the stream"), "{log}");
}

#[test]
fn a_restarted_server_continues_the_stored_playlists() {
    let _serial = media::serial();
    let args = ["--rendition", "90p:160x90:100", "--segment-duration", "1", "--reconnect-grace", "1"];
    let serve = Serve::start(&args, &[]);
    let logs = tempfile::tempdir().unwrap();
    let base = serve.http_url("live/demo");
    let mut first =
        push(&serve.rtmp_url("live", "demo"), &Push { seconds: 3.0, ..Push::default() }, &logs.path().join("1.log"));
    assert!(wait_exit(&mut first, Duration::from_secs(30)));
    let before = wait_for("the first stream to end", Duration::from_secs(20), || {
        fetch_consistent(&base).filter(|p| p.iter().all(|(_, m)| m.ended))
    });
    let last_before: u64 = before[0].1.segments.last().unwrap().0.split('.').next().unwrap().parse().unwrap();
    // A new process on the same storage, as a restarted pod.
    let data_dir = serve.data_dir.clone();
    let mut old = serve;
    old.process.terminate(Duration::from_secs(10));
    let data_arg = format!("--data-dir={}", data_dir.display());
    let mut again_args = args.to_vec();
    again_args.push(&data_arg);
    let serve = Serve::start(&again_args, &[]);
    let base = serve.http_url("live/demo");
    let mut second =
        push(&serve.rtmp_url("live", "demo"), &Push { seconds: 3.0, ..Push::default() }, &logs.path().join("2.log"));
    assert!(wait_exit(&mut second, Duration::from_secs(30)));
    let after = wait_for("the second stream to end", Duration::from_secs(20), || {
        fetch_consistent(&base).filter(|p| p.iter().all(|(_, m)| m.ended && m.segments.iter().any(|s| s.2)))
    });
    let playlist = &after[0].1;
    let first_new = playlist.segments.iter().position(|s| s.2).expect("a discontinuity");
    let number: u64 = playlist.segments[first_new].0.split('.').next().unwrap().parse().unwrap();
    assert_eq!(number, last_before + 1, "numbering continues after the restart: {playlist:?}");
    assert!(playlist.discontinuity_sequence + 1 >= 1);
    drop(old);
}

#[test]
fn recording_keeps_a_vod_playlist_and_ts_segments_work() {
    let _serial = media::serial();
    let args = [
        "--rendition",
        "90p:160x90:100",
        "--segment-duration",
        "1",
        "--window",
        "3",
        "--reconnect-grace",
        "1",
        "--recording",
        "--container",
        "ts",
    ];
    let serve = Serve::start(&args, &[]);
    let logs = tempfile::tempdir().unwrap();
    let base = serve.http_url("live/demo");
    let mut pusher =
        push(&serve.rtmp_url("live", "demo"), &Push { seconds: 6.0, ..Push::default() }, &logs.path().join("p.log"));
    assert!(wait_exit(&mut pusher, Duration::from_secs(30)));
    wait_for("the stream to end", Duration::from_secs(20), || {
        fetch_consistent(&base).filter(|p| p.iter().all(|(_, m)| m.ended))
    });
    let (code, content_type, _, vod) = http_get(&format!("{base}/90p/vod.m3u8"));
    assert_eq!((code, content_type.as_str()), (200, "application/vnd.apple.mpegurl"));
    let vod_text = String::from_utf8(vod).unwrap();
    assert!(vod_text.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{vod_text}");
    let vod = parse_media(&vod_text);
    assert!(vod.ended);
    let total: f64 = vod.segments.iter().map(|s| s.1).sum();
    assert!((total - 6.0).abs() < 0.5, "the recording covers the whole event: {total} s");
    assert!(vod.segments.len() > 3, "more than the live window");
    for (segment, _, _, map) in &vod.segments {
        assert!(segment.ends_with(".ts") && map.is_none(), "{segment}");
        let (code, content_type, _, _) = http_get(&format!("{base}/90p/{segment}"));
        assert_eq!((code, content_type.as_str()), (200, "video/mp2t"), "{segment}");
    }
    let (code, _, _, master) = http_get(&format!("{base}/vod.m3u8"));
    assert_eq!(code, 200);
    assert!(String::from_utf8(master).unwrap().contains("90p/vod.m3u8"));
    let errors = media::decode_errors(&format!("{base}/90p/vod.m3u8"), "0:v");
    assert!(errors.trim().is_empty(), "{errors}");
}

#[test]
fn old_segments_are_deleted_and_a_second_publisher_is_refused() {
    let _serial = media::serial();
    let args = ["--rendition", "90p:160x90:100", "--segment-duration", "1", "--window", "3", "--reconnect-grace", "1"];
    let serve = Serve::start(&args, &[]);
    let logs = tempfile::tempdir().unwrap();
    let base = serve.http_url("live/demo");
    let url = serve.rtmp_url("live", "demo");
    let mut first = push(&url, &Push { seconds: 9.0, ..Push::default() }, &logs.path().join("1.log"));
    wait_for("the first playlist", Duration::from_secs(20), || fetch_consistent(&base));
    let mut second = push(&url, &Push { seconds: 3.0, ..Push::default() }, &logs.path().join("2.log"));
    assert!(!wait_exit(&mut second, Duration::from_secs(20)), "a second publisher must be refused");
    assert!(first.is_running(), "the first publisher keeps the stream");
    assert!(wait_exit(&mut first, Duration::from_secs(30)), "{}", first.log_tail(2000));
    let playlists = wait_for("the stream to end", Duration::from_secs(20), || {
        fetch_consistent(&base).filter(|p| p.iter().all(|(_, m)| m.ended))
    });
    let window = &playlists[0].1;
    assert_eq!(window.segments.len(), 3);
    let oldest: u64 = window.segments[0].0.split('.').next().unwrap().parse().unwrap();
    assert!(oldest >= 6, "{window:?}");
    // Segments stay one more window after leaving the playlist, then go.
    let dir = serve.data_dir.join("live/demo/90p");
    assert!(!dir.join("0.m4s").exists(), "segment 0 left the window long ago and is deleted");
    assert!(dir.join(format!("{}.m4s", oldest - 1)).exists(), "a segment that just left stays for a window");
}

/// The worker's `srt` section: a publish over SRT with the stream's key (the plain stream
/// ID) and the passphrase from the environment plays from MinIO; neither secret is logged.
#[test]
fn worker_takes_an_encrypted_srt_publish_from_its_config_file() {
    let _serial = media::serial();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let minio = runtime.block_on(MinioServer::start());
    runtime.block_on(minio.create_bucket("streams", true));
    let dir = tempfile::tempdir().unwrap();
    let srt = support::process::free_udp_port();
    let config =
        format!(r#"srt: {{listen: "127.0.0.1:{srt}", latencyMilliseconds: 200, passphraseEnv: SRT_PASSPHRASE}}"#);
    let mut worker =
        start_worker_with(&minio, dir.path(), "srt", &config, &[("SRT_PASSPHRASE", "w0rker-srt-passphrase")]);
    let url = format!("srt://127.0.0.1:{srt}?streamid=live/w0rker-key-of-keynote&passphrase=w0rker-srt-passphrase");
    let mut pusher = push(&url, &Push { seconds: 4.0, ..Push::default() }, &dir.path().join("push.log"));
    assert!(
        wait_exit(&mut pusher, Duration::from_secs(30)),
        "{}\n{}",
        pusher.log_tail(2000),
        worker.process.log_tail(5000)
    );
    // A sender's close ends the publish at once, well inside the 30 s reconnect grace.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while status(worker.http).is_none_or(|s| s.phase != StreamPhase::Ended) {
        assert!(
            std::time::Instant::now() < deadline,
            "/status did not say Ended within 20 s of the sender's close:\n{}",
            worker.process.log_tail(5000)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let base = format!("{}/streams/media/keynote", minio.endpoint());
    let playlists = fetch_consistent(&base).expect("playlists");
    assert!(playlists.iter().all(|(_, p)| p.ended && p.segments.len() >= 3), "{playlists:?}");
    let errors = media::decode_errors(&format!("{base}/{}", playlists[0].0), "0");
    assert!(errors.trim().is_empty(), "{errors}");
    worker.process.assert_running();
    let log = worker.process.log_tail(50_000);
    assert!(!log.contains("w0rker-key-of-keynote") && !log.contains("w0rker-srt-passphrase"), "a secret in the log");
}
