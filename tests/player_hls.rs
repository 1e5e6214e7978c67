//! `livestream serve` as viewers get it: ffmpeg pushes a live test picture, the stream goes
//! through a caching reverse proxy (nginx standing in for the CDN), and hls.js plays it in
//! headless Chromium until the push stops and the stream ends. The test asserts what a
//! viewer notices: the picture starts soon and where the player aims (its target distance
//! from the live edge), it never stalls while the stream is live, a rendition switch takes
//! effect, the latency behind the wall clock (median and 95th percentile, printed) is no
//! more than the player's target allows, and the player ends when the playlists carry ENDLIST.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::Digest;

use support::cdn::{Cdn, CdnRoutes};
use support::media::{self, Serve, http_get};
use support::player::{self, PlayOptions, PlayReport, Player, Source, push_live};
use support::process::wait_for;

/// Two renditions, 2-second segments (the default), a short grace so that the end of the
/// push ends the stream at once.
const SERVE_ARGS: [&str; 6] =
    ["--rendition", "360p:640x360:800", "--rendition", "180p:320x180:300", "--reconnect-grace", "1"];
/// How long the encoder pushes: the live window fills in about 14 s, then the player
/// watches the stream live for about 40 s.
const PUSH_SECONDS: u64 = 54;

/// How serve packages and how hls.js plays.
#[derive(Clone, Copy, Debug)]
enum Flavour {
    /// Standard HLS in fMP4 (`--low-latency false`), hls.js in its standard mode.
    StandardFmp4,
    /// Standard HLS in MPEG-TS.
    StandardTs,
    /// LL-HLS (parts, blocking reloads from serve's origin through the CDN), hls.js with
    /// `lowLatencyMode`.
    LowLatency,
}

impl Flavour {
    fn name(self) -> &'static str {
        match self {
            Self::StandardFmp4 => "fmp4",
            Self::StandardTs => "ts",
            Self::LowLatency => "ll-hls",
        }
    }

    fn serve_args(self) -> [&'static str; 4] {
        match self {
            Self::StandardFmp4 => ["--container", "fmp4", "--low-latency", "false"],
            Self::StandardTs => ["--container", "ts", "--low-latency", "false"],
            Self::LowLatency => ["--container", "fmp4", "--low-latency", "true"],
        }
    }
}

#[test]
fn fmp4_plays_in_hls_js_through_the_cdn() {
    hls_in_hls_js(Flavour::StandardFmp4);
}

#[test]
fn ts_plays_in_hls_js_through_the_cdn() {
    hls_in_hls_js(Flavour::StandardTs);
}

#[test]
fn low_latency_hls_plays_in_hls_js_through_the_cdn() {
    hls_in_hls_js(Flavour::LowLatency);
}

fn hls_in_hls_js(flavour: Flavour) {
    let _serial = media::serial();
    let container = flavour.name();
    let mut args = SERVE_ARGS.to_vec();
    args.extend(flavour.serve_args());
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
        low_latency: matches!(flavour, Flavour::LowLatency),
        duration: Duration::from_secs(PUSH_SECONDS),
        until_ended: true,
        switch_at: Some(12.0),
        ..PlayOptions::default()
    };
    let player = Player::start(&Source::Playlist(master.clone()), &options);
    // The transcoder's speed while the player plays: below 1.0 the segments come late, and
    // any player stalls at the end of the last one it has.
    let mut speeds = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(PUSH_SECONDS + 30);
    while pusher.is_running() {
        assert!(std::time::Instant::now() < deadline, "the push did not end");
        speeds.extend(serve.transcode_speed());
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(pusher.exit_success(), "the push failed: {}", pusher.log_tail(2000));
    let push_ended = wall_ms();
    let report = player.wait();

    let live = report.latency_between(0.0, push_ended);
    println!("{container}: {}", report.summary());
    if let Some(live) = live {
        println!("{container}: latency behind the wall clock while live: {live}");
    }
    // Figures that tell an overloaded machine from a packaging fault: a transcoder slower
    // than real time stalls any player, a browser short of CPU plays slower than real time.
    let slowest = speeds.iter().copied().fold(f64::INFINITY, f64::min);
    let machine = format!(
        "transcoder speed {slowest:.2}x at the slowest ({} readings), load average {}",
        speeds.len(),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    println!("{container}: {machine}");
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

    let failures = viewer_failures(&report, push_ended, flavour);
    assert!(
        failures.is_empty(),
        "{container}: {} of the viewer's expectations failed:\n- {}\n\n{}\n{machine}\nserve log:\n{}",
        failures.len(),
        failures.join("\n- "),
        report.summary(),
        serve.log().lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"),
    );
    let (pid, dir) = (cdn.pid(), cdn.dir().to_path_buf());
    cdn.stop();
    assert_nothing_left(pid);
    assert!(!dir.exists(), "the CDN's directory {} stays behind", dir.display());
}

/// A source without video, as LL-HLS: hls.js in low-latency mode plays the one AAC
/// rendition from the start to ENDLIST without a stall or an error.
#[test]
fn an_audio_only_stream_plays_in_hls_js_to_its_end() {
    let _serial = media::serial();
    let serve = Serve::start(&["--reconnect-grace", "1", "--low-latency", "true"], &[]);
    let logs = tempfile::tempdir().unwrap();
    let radio = media::Push { seconds: 30.0, video: false, ..media::Push::default() };
    let mut pusher = media::push(&serve.rtmp_url("live", "radio"), &radio, &logs.path().join("push.log"));
    let master = serve.http_url("live/radio/master.m3u8");
    wait_for("the master playlist", Duration::from_secs(20), || {
        pusher.assert_running();
        (http_get(&master).0 == 200).then_some(())
    });
    let options = PlayOptions {
        low_latency: true,
        duration: Duration::from_secs(45),
        until_ended: true,
        ..PlayOptions::default()
    };
    let report = player::play(&Source::Playlist(master), &options);
    println!("audio only: {}", report.summary());
    assert!(media::wait_exit(&mut pusher, Duration::from_secs(20)), "{}", pusher.log_tail(2000));
    assert!(report.fatal_errors().is_empty(), "{}", report.summary());
    assert!(report.first_frame.is_some_and(|t| t < 10.0), "the sound starts within 10 s: {}", report.summary());
    assert!(report.advanced_by() > 20.0, "playback advances: {}", report.summary());
    let (stalls, seconds) = report.stall_total();
    assert_eq!(stalls, 0, "no stall ({seconds:.2} s in all): {}", report.summary());
    assert!(report.ended, "the player ends after ENDLIST: {}", report.summary());
}

/// What a viewer of a live stream expects, as failure messages (empty when all hold).
fn viewer_failures(report: &PlayReport, push_ended: f64, flavour: Flavour) -> Vec<String> {
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
            edge <= target + 1.5,
            format!(
                "playback starts at most 1.5 s behind hls.js's target distance from the live edge (started {edge:.2} s from the edge, target {target:.2} s)"
            ),
        ),
        None => check(false, "hls.js reports its distance from the live edge".to_string()),
    }
    // Behind the wall clock, a player can be no closer than its target distance from the
    // edge, plus the time a segment (or part) takes to be listed after its last frame came
    // in (a second at most), plus how stale its playlist gets between reloads (a target
    // duration of 2 s for standard HLS, which reloads once a segment; a part for LL-HLS,
    // whose reloads block until the next part), and half a second of slack. A playlist that
    // lists its media late (by a segment: 2 s) shows here, not in hls.js's distance from an
    // edge it only knows from that playlist.
    let target = report.samples.iter().rev().find_map(|s| s.target_latency).unwrap_or(f64::NAN);
    let reload = if matches!(flavour, Flavour::LowLatency) { 0.4 } else { 2.0 };
    let bound = target + 1.0 + reload + 0.5;
    match report.latency_between(0.0, push_ended) {
        Some(live) => check(
            live.median <= bound,
            format!(
                "the latency behind the wall clock is at most hls.js's target distance + 1 s + {reload} s + 0.5 s (median {:.2} s, bound {bound:.2} s)",
                live.median
            ),
        ),
        None => check(false, "the playlists carry PROGRAM-DATE-TIME".to_string()),
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

#[test]
fn watch_page_plays_the_stream_and_shows_latency_and_rendition() {
    let _serial = media::serial();
    let script = format!("--player-script={}", player::hls_js_file().display());
    let mut args = SERVE_ARGS.to_vec();
    args.push(&script);
    let serve = Serve::start(&args, &[]);
    let cdn = Cdn::start(&CdnRoutes::single(&format!("http://127.0.0.1:{}", serve.http_port)));
    let logs = tempfile::tempdir().unwrap();
    let mut pusher = push_live(&serve.rtmp_url("live", "demo"), &player::LivePush::small(45), logs.path());
    let master = cdn.url("live/demo/master.m3u8");
    wait_for("the master playlist through the CDN", Duration::from_secs(30), || {
        pusher.assert_running();
        (http_get(&master).0 == 200).then_some(())
    });

    // The index links each stream's watch page; the page names no stream key and loads the
    // player script from where --player-script says.
    let (_, _, _, index) = http_get(&cdn.url(""));
    let index = String::from_utf8_lossy(&index);
    assert!(index.contains("<a href=\"/watch/live/demo\">"), "{index}");
    let (status, content_type, _, page) = http_get(&cdn.url("watch/live/demo"));
    let page = String::from_utf8_lossy(&page);
    assert_eq!(status, 200, "{page}");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(page.contains("data-script=\"/assets/hls.min.js\""), "{page}");
    let (status, _, _, served) = http_get(&cdn.url("assets/hls.min.js"));
    assert_eq!((status, served.len() as u64), (200, std::fs::metadata(player::hls_js_file()).unwrap().len()));
    assert_eq!(http_get(&cdn.url("watch/live/nothing")).0, 404);

    let options = PlayOptions { duration: Duration::from_secs(20), ..PlayOptions::default() };
    let report = player::play(&Source::Page(cdn.url("watch/live/demo")), &options);
    println!("watch page: {}", report.summary());
    let text = report.page_text.clone().unwrap_or_default();
    println!("watch page shows: {text}");
    assert_eq!(report.player.as_deref(), Some("hls.js"), "Chromium plays with hls.js (it has MSE)");
    assert!(report.first_frame.is_some_and(|t| t < 10.0), "{}", report.summary());
    assert!(report.advanced_by() > 10.0, "{}", report.summary());
    assert!(report.fatal_errors().is_empty(), "{}", report.summary());
    assert!(text.contains("Player: hls.js 1.7.4"), "{text}");
    let shown = text.split("Latency: ").nth(1).and_then(|t| t.split(" s").next()).and_then(|v| v.parse::<f64>().ok());
    let measured = report.latency().map(|l| l.median).unwrap_or(f64::NAN);
    assert!(shown.is_some_and(|s| (s - measured).abs() < 1.0), "the page shows the latency ({measured:.1} s): {text}");
    assert!(text.contains("Rendition: 360p") || text.contains("Rendition: 180p"), "{text}");

    // The hash that the pages pin is the one of the npm release that the tests use.
    let source = include_str!("../src/serve/watch.rs");
    let pinned = source.split("\"sha384-").nth(1).and_then(|s| s.split('"').next()).expect("a pinned hash");
    let digest = sha2::Sha384::digest(std::fs::read(player::hls_js_file()).unwrap());
    assert_eq!(base64(&digest), pinned, "the integrity hash in src/serve/watch.rs is not the npm copy's");
    let version = include_str!("player/package.json").split("\"hls.js\": \"").nth(1).and_then(|s| s.split('"').next());
    assert!(source.contains(&format!("hls.js@{}/", version.unwrap())), "the pages load the npm copy's version");

    // The browser's own HLS, when asked for: Chromium has one too.
    let native = player::play(&Source::Page(cdn.url("watch/live/demo?player=native")), &options);
    println!("watch page, native HLS: {}", native.summary());
    assert_eq!(native.player.as_deref(), Some("native"));
    assert!(native.first_frame.is_some() && native.advanced_by() > 5.0, "{}", native.summary());
    assert!(native.page_text.unwrap_or_default().contains("Player: native HLS"));
}

/// Standard base64 with padding, as subresource-integrity hashes are written.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char } else { '=' });
        }
    }
    out
}
