//! `livestream serve` as viewers get it: ffmpeg pushes a live test picture, the stream goes
//! through a caching reverse proxy (nginx standing in for the CDN), and hls.js plays it in
//! headless Chromium until the push stops and the stream ends. The test asserts what a
//! viewer notices: the picture starts soon and where the player aims (its target distance
//! from the live edge), it never stalls while the stream is live, a rendition switch takes
//! effect, and the player ends when the playlists carry ENDLIST. It prints the latency
//! behind the wall clock (median and 95th percentile).

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::cdn::{Cdn, CdnRoutes};
use support::media::{self, Serve, http_get, wait_exit};
use support::player::{self, PlayOptions, PlayReport, Player, Source, push_live};
use support::process::wait_for;

/// Two renditions, 2-second segments (the default), a short grace so that the end of the
/// push ends the stream at once.
const SERVE_ARGS: [&str; 6] =
    ["--rendition", "360p:640x360:800", "--rendition", "180p:320x180:300", "--reconnect-grace", "1"];
/// How long the encoder pushes: the live window fills in about 14 s, then the player
/// watches the stream live for about 40 s.
const PUSH_SECONDS: u64 = 54;

#[test]
fn fmp4_plays_in_hls_js_through_the_cdn() {
    standard_hls_in_hls_js("fmp4");
}

#[test]
fn ts_plays_in_hls_js_through_the_cdn() {
    standard_hls_in_hls_js("ts");
}

fn standard_hls_in_hls_js(container: &str) {
    let _serial = media::serial();
    let mut args = SERVE_ARGS.to_vec();
    args.extend(["--container", container]);
    let serve = Serve::start(&args, &[]);
    let cdn = Cdn::start(&CdnRoutes::single(&format!("http://127.0.0.1:{}", serve.http_port)));
    let logs = tempfile::tempdir().unwrap();
    let mut pusher = push_live(&serve.rtmp_url("live", "demo"), &player::LivePush::small(PUSH_SECONDS), logs.path());
    let master = cdn.url("live/demo/master.m3u8");
    // The viewer joins a stream that is well under way: the live window is full.
    let media_playlist = cdn.url("live/demo/180p/index.m3u8");
    wait_for("a full live window through the CDN", Duration::from_secs(40), || {
        pusher.assert_running();
        let (status, _, _, body) = http_get(&media_playlist);
        (status == 200 && media::parse_media(&String::from_utf8_lossy(&body)).segments.len() >= 6).then_some(())
    });

    let options = PlayOptions {
        duration: Duration::from_secs(PUSH_SECONDS),
        until_ended: true,
        switch_at: Some(12.0),
        ..PlayOptions::default()
    };
    let player = Player::start(&Source::Playlist(master.clone()), &options);
    assert!(
        wait_exit(&mut pusher, Duration::from_secs(PUSH_SECONDS + 30)),
        "the push failed: {}",
        pusher.log_tail(2000)
    );
    let push_ended = wall_ms();
    let report = player.wait();

    let live = report.latency_between(0.0, push_ended);
    println!("{container}: {}", report.summary());
    if let Some(live) = live {
        println!("{container}: latency behind the wall clock while live: {live}");
    }
    // Figures that tell an overloaded machine from a packaging fault: an encoder or a
    // transcoder slower than real time stalls any player.
    let (_, _, _, metrics) = http_get(&serve.http_url("metrics"));
    let speed = String::from_utf8_lossy(&metrics)
        .lines()
        .find(|l| l.starts_with("livestream_transcode_speed"))
        .map(|l| l.rsplit(' ').next().unwrap_or("?").to_string());
    println!(
        "{container}: transcoder speed {}x, load average {}",
        speed.as_deref().unwrap_or("?"),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    let requests = cdn.requests();
    let count = |playlists: bool, hit: bool| {
        requests.iter().filter(|r| r.uri.contains(".m3u8") == playlists && (r.cache == "HIT") == hit).count()
    };
    println!(
        "{container}: through the CDN: playlists {} hits, {} misses; media {} hits, {} misses",
        count(true, true),
        count(true, false),
        count(false, true),
        count(false, false)
    );
    let saved = report.save(&format!("player-hls-{container}"));
    println!("{container}: the whole report is in {}", saved.display());

    let failures = viewer_failures(&report, push_ended);
    assert!(
        failures.is_empty(),
        "{container}: {} of the viewer's expectations failed:\n- {}\n\n{}\nserve log:\n{}",
        failures.len(),
        failures.join("\n- "),
        report.summary(),
        serve.log().lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"),
    );
    let pid = cdn.pid();
    cdn.stop();
    assert_nothing_left(pid);
}

/// What a viewer of a live stream expects, as failure messages (empty when all hold).
fn viewer_failures(report: &PlayReport, push_ended: f64) -> Vec<String> {
    let mut failures = Vec::new();
    let mut check = |ok: bool, message: String| {
        if !ok {
            failures.push(message);
        }
    };
    let fatal = report.fatal_errors();
    check(fatal.is_empty(), format!("hls.js gave up: {fatal:?}"));
    check(
        report.first_frame.is_some_and(|t| t < 10.0),
        format!("the first frame shows within 10 s (it showed after {:?} s)", report.first_frame),
    );
    let live_seconds = report.samples.iter().filter(|s| s.wall < push_ended).count() as f64 / 4.0;
    check(
        report.advanced_by() >= 0.8 * live_seconds,
        format!("playback advances ({:.1} s of media in {live_seconds:.1} s of live playing)", report.advanced_by()),
    );
    // Where hls.js starts: at its target distance from the live edge (three target
    // durations by default), not further back.
    match report.start_distance() {
        Some((edge, target)) => check(
            edge <= target + 1.0,
            format!(
                "playback starts at most 1 s behind hls.js's target distance from the live edge (started {edge:.2} s from the edge, target {target:.2} s)"
            ),
        ),
        None => check(false, "hls.js reports its distance from the live edge".to_string()),
    }
    let live_stalls: Vec<_> = report
        .stalls
        .iter()
        .chain(report.open_stall.iter())
        .filter(|s| {
            let at_wall = report.samples.first().map(|first| first.wall + (s.at - first.t) * 1000.0);
            at_wall.is_some_and(|w| w < push_ended)
        })
        .collect();
    let stalled: f64 = live_stalls.iter().filter_map(|s| s.seconds).sum();
    check(
        live_stalls.is_empty(),
        format!(
            "no stall while the stream is live ({} stalls, {stalled:.2} s in all, at media times {:?})",
            live_stalls.len(),
            live_stalls.iter().map(|s| s.current_time).collect::<Vec<_>>()
        ),
    );
    match &report.forced_switch {
        Some(forced) => check(
            forced.switched_at.is_some_and(|t| t - forced.requested_at < 8.0) && forced.from_height != forced.to_height,
            format!("a rendition switch shows within 8 s ({forced:?})"),
        ),
        None => check(false, "the rendition switch was asked for".to_string()),
    }
    check(report.heights_played().len() >= 2, format!("two renditions were on screen ({:?})", report.heights_played()));
    check(
        report.ended,
        format!(
            "the video ends after ENDLIST (ended: {}, buffer EOS: {:?}, final state: {:?})",
            report.ended, report.buffer_eos_at, report.final_state
        ),
    );
    failures
}

/// The proxy's process is gone once stopped: nothing of the CDN outlives its test.
fn assert_nothing_left(pid: Option<u32>) {
    if let Some(pid) = pid {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "nginx ({pid}) is still running");
    }
}

fn wall_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0
}
