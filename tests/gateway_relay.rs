//! The ingest gateway with real publishers and real workers (`livestream serve` standing
//! in for two streams' workers): ffmpeg pushes to one address, each key reaches its own
//! stream, which plays; wrong keys are refused at the gateway and counted; routes follow
//! the table; a worker that is not there is a clear refusal; RTMPS ends at the gateway.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::gateway::Gateway;
use support::media::{self, Push, Serve, fetch_consistent, http_get, parse_master, push, wait_exit};
use support::process::wait_for;

const ARGS: [&str; 6] = ["--rendition", "180p:320x180:300", "--segment-duration", "1", "--reconnect-grace", "1"];

fn serve_with_key(name: &str, key: &str) -> Serve {
    let stream_key = format!("--stream-key={name}={key}");
    Serve::start(&[ARGS.as_slice(), &[stream_key.as_str()]].concat(), &[])
}

fn address(serve: &Serve) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], serve.rtmp_port))
}

/// Waits until `name`'s playlists on `serve` carry ENDLIST, and checks that they decode.
fn assert_played(serve: &Serve, name: &str, seconds: f64) {
    let base = serve.http_url(&format!("live/{name}"));
    let playlists = wait_for(&format!("{name} to end on its worker"), Duration::from_secs(30), || {
        fetch_consistent(&base).filter(|p| !p.is_empty() && p.iter().all(|(_, p)| p.ended))
    });
    let master = String::from_utf8(http_get(&format!("{base}/master.m3u8")).3).unwrap();
    assert_eq!(parse_master(&master).len(), 1, "{master}");
    let total: f64 = playlists[0].1.segments.iter().map(|segment| segment.1).sum();
    assert!((total - seconds).abs() <= 1.0, "{name}: {total} s of the {seconds} s pushed");
    let errors = media::decode_errors(&format!("{base}/{}", playlists[0].0), "0");
    assert!(errors.trim().is_empty(), "{name}: {errors}");
}

#[test]
fn one_address_routes_each_key_to_its_stream_and_refuses_the_rest() {
    let _serial = media::serial();
    let dir = tempfile::tempdir().unwrap();
    let first = serve_with_key("first", "k3y-first-8c1a");
    let second = serve_with_key("second", "k3y-second-5e7b");
    let mut gateway = Gateway::start(dir.path(), &[]);
    gateway.route("ns/first", "live", "k3y-first-8c1a", address(&first));
    gateway.route("ns/second", "live", "k3y-second-5e7b", address(&second));

    let options = Push { seconds: 4.0, ..Push::default() };
    let mut one = push(&gateway.rtmp_url("live", "k3y-first-8c1a"), &options, &dir.path().join("one.log"));
    let mut two = push(&gateway.rtmp_url("live", "k3y-second-5e7b"), &options, &dir.path().join("two.log"));
    assert!(wait_exit(&mut one, Duration::from_secs(40)), "the first push: {}", one.log_tail(2000));
    assert!(wait_exit(&mut two, Duration::from_secs(40)), "the second push: {}", two.log_tail(2000));
    assert_played(&first, "first", 4.0);
    assert_played(&second, "second", 4.0);
    assert!(!first.data_dir.join("live/second").exists() && !second.data_dir.join("live/first").exists());
    assert_eq!(gateway.labelled("rtmp_relays_total", "result=\"started\""), 2.0);

    // A wrong key, and a right key under another application: refused at the gateway.
    let mut wrong = push(&gateway.rtmp_url("live", "not-a-key"), &options, &dir.path().join("wrong.log"));
    assert!(!wait_exit(&mut wrong, Duration::from_secs(20)), "a wrong key must be refused");
    let mut other_app = push(&gateway.rtmp_url("vod", "k3y-first-8c1a"), &options, &dir.path().join("vod.log"));
    assert!(!wait_exit(&mut other_app, Duration::from_secs(20)), "only the stream's application");
    assert_eq!(gateway.labelled("rtmp_publishes_rejected_total", "reason=\"bad_key\""), 2.0);
    let log = gateway.log();
    assert!(!log.contains("k3y-first") && !log.contains("k3y-second") && !log.contains("not-a-key"), "{log}");
}

#[test]
fn routes_follow_the_table_and_a_missing_worker_is_refused() {
    let _serial = media::serial();
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = Gateway::start(dir.path(), &[]);
    let options = Push { seconds: 3.0, ..Push::default() };
    let url = gateway.rtmp_url("live", "late-k3y");
    let mut early = push(&url, &options, &dir.path().join("early.log"));
    assert!(!wait_exit(&mut early, Duration::from_secs(20)), "no route yet");

    // A route to a worker that is not there: a refusal, counted.
    let nothing = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    gateway.route("ns/late", "live", "late-k3y", nothing);
    let mut lost = push(&url, &options, &dir.path().join("lost.log"));
    assert!(!wait_exit(&mut lost, Duration::from_secs(20)), "a worker that is not there");
    assert_eq!(gateway.labelled("rtmp_relays_total", "result=\"unreachable\""), 1.0);

    // The worker comes up and the route follows it.
    let late = serve_with_key("late", "late-k3y");
    gateway.route("ns/late", "live", "late-k3y", address(&late));
    let mut pusher = push(&url, &options, &dir.path().join("late.log"));
    assert!(wait_exit(&mut pusher, Duration::from_secs(40)), "{}", pusher.log_tail(2000));
    assert_played(&late, "late", 3.0);
}

#[test]
fn rtmps_ends_at_the_gateway_and_plain_rtmp_reaches_the_worker() {
    let _serial = media::serial();
    let dir = tempfile::tempdir().unwrap();
    let (tls_args, rtmps_port) = media::rtmps_args(dir.path());
    let worker = serve_with_key("secure", "k3y-tls-71d0");
    let mut gateway = Gateway::start(dir.path(), &tls_args);
    gateway.route("ns/secure", "live", "k3y-tls-71d0", address(&worker));
    let url = format!("rtmps://localhost:{rtmps_port}/live/k3y-tls-71d0");
    let mut pusher = push(&url, &Push { seconds: 3.0, ..Push::default() }, &dir.path().join("push.log"));
    assert!(wait_exit(&mut pusher, Duration::from_secs(40)), "{}", pusher.log_tail(2000));
    assert_played(&worker, "secure", 3.0);
}
