//! Glass-to-glass latency in a real player (run with `scripts/bench`): hls.js in headless
//! Chromium plays each stream for a minute, and the table gives the latency behind the wall
//! clock (now minus the PROGRAM-DATE-TIME of the frame on screen: median and 95th
//! percentile), hls.js's distance from the live edge and its target, stalls and the time to
//! the first frame. ffmpeg pushes 720p30 with a keyframe every second in real time.
//!
//! Rows:
//! - the peer (`benches/peer`: the RTMP server and LL-HLS muxer of MediaMTX v1.20.1 with its
//!   defaults), passthrough; its PROGRAM-DATE-TIME is the time samples arrive at it;
//! - `livestream serve`, LL-HLS with its defaults (2 s segments, 0.4 s parts) and a 720p +
//!   360p ladder transcoded (target: median at most 2.0 s); LL-HLS passthrough at the
//!   peer's settings (1 s segments, 200 ms parts; target: below the peer); standard HLS in
//!   fMP4 and TS with the same ladder.
//!
//! Every LL-HLS stream is played twice: by hls.js as it comes (it never plays faster than
//! 1x, so it stays as far behind as its start left it), and catching up with its target
//! latency at up to [`CATCH_UP`]x, as the watch page of `serve` plays.
//!
//! `LIVESTREAM_BENCH_LATENCY_SECONDS` sets the measured span (default 60).
//! [`measure_latency`] plays any master playlist; a new row is one call.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use support::media::Serve;
use support::peer::Peer;
use support::player::{LatencyFigures, LivePush, PlayOptions, measure_latency, push_live, wait_for_live_window};

/// hls.js settles (start position, first reloads) before the measured span begins.
const WARMUP: Duration = Duration::from_secs(10);
/// hls.js `maxLiveSyncPlaybackRate` of the catching-up rows: the watch page's.
const CATCH_UP: f64 = 1.2;

fn hls_js(low_latency: bool, catch_up: bool) -> PlayOptions {
    PlayOptions { low_latency, catch_up: catch_up.then_some(CATCH_UP), ..PlayOptions::default() }
}

fn main() {
    let measure = Duration::from_secs(
        std::env::var("LIVESTREAM_BENCH_LATENCY_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60),
    );
    let push_seconds = (WARMUP + measure).as_secs() + 40;
    println!(
        "glass to glass, {} s measured after {} s in hls.js, 720p30 source, 1 s GOP\n",
        measure.as_secs(),
        WARMUP.as_secs()
    );
    println!("{}", LatencyFigures::TABLE_HEADER);

    for player in [hls_js(true, false), hls_js(true, true), hls_js(false, false)] {
        let peer = Peer::start(&[]);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut pusher = push_live(&peer.rtmp_url("live", "bench"), &LivePush::hd(push_seconds), dir.path());
        let url = peer.playlist_url("live", "bench");
        wait_for_live_window(&url, 7, Duration::from_secs(40), || pusher.assert_running());
        let figures = measure_latency(&url, &player, WARMUP, measure);
        println!(
            "{}",
            figures.row(
                "peer (gohlslib LL-HLS, MediaMTX defaults)",
                "LL-HLS fMP4, 1 s segments, 200 ms parts, passthrough"
            )
        );
        pusher.kill();
    }

    const LADDER: [&str; 4] = ["--rendition", "720p:1280x720:3000", "--rendition", "360p:640x360:800"];
    const PASSTHROUGH: [&str; 6] =
        ["--rendition", "source:passthrough", "--segment-duration", "1", "--part-duration", "0.2"];
    const LL_LADDER: &str = "LL-HLS fMP4, defaults (2 s segments, 0.4 s parts), 720p + 360p transcoded";
    const LL_PASSTHROUGH: &str = "LL-HLS fMP4, 1 s segments, 200 ms parts, passthrough";
    // (label, serve flags, player)
    let setups: [(&str, Vec<&str>, PlayOptions); 6] = [
        (LL_LADDER, LADDER.to_vec(), hls_js(true, false)),
        (LL_LADDER, LADDER.to_vec(), hls_js(true, true)),
        (LL_PASSTHROUGH, PASSTHROUGH.to_vec(), hls_js(true, false)),
        (LL_PASSTHROUGH, PASSTHROUGH.to_vec(), hls_js(true, true)),
        (
            "standard HLS fMP4, 2 s segments, 720p + 360p transcoded",
            [LADDER.as_slice(), &["--container", "fmp4", "--low-latency", "false"]].concat(),
            hls_js(false, false),
        ),
        (
            "standard HLS TS, 2 s segments, 720p + 360p transcoded",
            [LADDER.as_slice(), &["--container", "ts", "--low-latency", "false"]].concat(),
            hls_js(false, false),
        ),
    ];
    for (label, flags, player) in setups {
        let mut args = vec!["--reconnect-grace", "1"];
        args.extend(flags);
        let serve = Serve::start(&args, &[("RUST_LOG", "warn")]);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut pusher = push_live(&serve.rtmp_url("live", "bench"), &LivePush::hd(push_seconds), dir.path());
        let url = serve.http_url("live/bench/master.m3u8");
        wait_for_live_window(&url, 6, Duration::from_secs(40), || pusher.assert_running());
        // The transcoder's slowest speed while the player plays: below 1.0 the machine, not
        // the packaging, sets the latency.
        let playing = std::sync::atomic::AtomicBool::new(true);
        let (mut figures, slowest) = std::thread::scope(|scope| {
            let sampler = scope.spawn(|| {
                let mut slowest = f64::INFINITY;
                while playing.load(std::sync::atomic::Ordering::Relaxed) {
                    slowest = slowest.min(serve.transcode_speed().unwrap_or(f64::INFINITY));
                    std::thread::sleep(Duration::from_secs(1));
                }
                slowest
            });
            let figures = measure_latency(&url, &player, WARMUP, measure);
            playing.store(false, std::sync::atomic::Ordering::Relaxed);
            (figures, sampler.join().expect("speed sampler"))
        });
        figures.conditions.push_str(&format!(", transcoder {slowest:.2}x at the slowest"));
        println!("{}", figures.row("livestream serve", label));
        let name = label.split(',').next().unwrap_or(label).replace(' ', "-");
        let catching_up = if player.catch_up.is_some() { "-catch-up" } else { "" };
        figures.report.save(&format!("latency-serve-{name}{catching_up}"));
        pusher.kill();
    }
}
