//! A real player: hls.js in headless Chromium (Debian's chromium, puppeteer-core), driven by
//! `tests/player/play.mjs` as a managed process with a bounded run time, and its JSON report
//! parsed into figures the tests assert on: time to the first frame, stalls, rendition
//! switches, latency behind the wall clock, distance from the live edge, errors, `ended`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::process::{ManagedProcess, testenv_bin, testenv_bin_dir};

/// What the browser opens.
#[derive(Clone, Debug)]
pub enum Source {
    /// A master (or media) playlist, played by the pinned hls.js on a blank page.
    Playlist(String),
    /// A page that plays a stream itself and sets `window.livestreamPlayer`.
    Page(String),
}

/// How to play.
#[derive(Clone, Debug)]
pub struct PlayOptions {
    /// hls.js `lowLatencyMode` (LL-HLS parts, blocking reloads).
    pub low_latency: bool,
    /// hls.js `maxLiveSyncPlaybackRate`: the fastest it plays to catch up with its target
    /// latency (`None`: hls.js's default, 1, never faster).
    pub catch_up: Option<f64>,
    /// The longest the player runs, from the page's start.
    pub duration: Duration,
    /// Stop as soon as the video element fires `ended`.
    pub until_ended: bool,
    /// Switch to another rendition this many seconds after the first frame.
    pub switch_at: Option<f64>,
    /// Give up when no frame has shown after this long.
    pub start_timeout: Duration,
    /// hls.js debug logging into the player's log.
    pub debug: bool,
}

impl Default for PlayOptions {
    fn default() -> Self {
        Self {
            low_latency: false,
            catch_up: None,
            duration: Duration::from_secs(30),
            until_ended: false,
            switch_at: None,
            start_timeout: Duration::from_secs(20),
            debug: false,
        }
    }
}

/// One sample of the player's state, every 250 ms after the first frame.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Seconds since the page started.
    pub t: f64,
    /// Wall clock, milliseconds since the epoch.
    pub wall: f64,
    /// Seconds from the PROGRAM-DATE-TIME of the frame on screen to now.
    pub latency: Option<f64>,
    /// hls.js's distance from the live edge (`hls.latency`), and the one it aims for.
    pub hls_latency: Option<f64>,
    pub target_latency: Option<f64>,
    /// `hls.liveSyncPosition - currentTime`.
    pub edge_distance: Option<f64>,
    pub current_time: f64,
    pub buffered_ahead: Option<f64>,
    pub level: Option<i64>,
    pub height: Option<u32>,
    pub rate: f64,
}

/// The state when the first frame showed.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AtFirstFrame {
    pub latency: Option<f64>,
    pub hls_latency: Option<f64>,
    pub target_latency: Option<f64>,
    pub edge_distance: Option<f64>,
    pub current_time: f64,
    pub buffered: Vec<(f64, f64)>,
    pub height: Option<u32>,
}

/// A span during which the picture did not move while it should have.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stall {
    /// Seconds since the page started.
    pub at: f64,
    /// `waiting`, `stalled` (events of the video element) or `frozen` (no event, but the
    /// clock stood still for 500 ms or more).
    pub cause: String,
    /// The media time where playback stood, and what was buffered then.
    pub current_time: f64,
    pub buffered: Vec<(f64, f64)>,
    pub seconds: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LevelSwitch {
    pub t: f64,
    pub level: i64,
    pub height: Option<u32>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForcedSwitch {
    pub requested_at: f64,
    pub from_height: Option<u32>,
    pub to_height: Option<u32>,
    /// When hls.js reported the new rendition on screen (LEVEL_SWITCHED).
    pub switched_at: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayerError {
    pub t: f64,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub details: Option<String>,
    pub fatal: bool,
    pub url: Option<String>,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalState {
    pub current_time: f64,
    /// `null` in JSON for an infinite (live) duration.
    pub duration: Option<f64>,
    pub buffered: Vec<(f64, f64)>,
    pub ready_state: u32,
    pub paused: bool,
    pub ended: bool,
    pub video_height: u32,
}

/// The player's report.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayReport {
    /// `hls.js` or `native`.
    pub player: Option<String>,
    pub hls_version: Option<String>,
    pub browser: String,
    pub source: String,
    pub low_latency_mode: bool,
    /// hls.js `maxLiveSyncPlaybackRate`, when the harness page set it.
    #[serde(default)]
    pub catch_up: Option<f64>,
    /// Why the run stopped: `duration`, `ended`, `fatal-error` or `no-first-frame`.
    pub outcome: String,
    pub elapsed: f64,
    /// Seconds from the page's start to the first frame on screen.
    pub first_frame: Option<f64>,
    pub at_first_frame: Option<AtFirstFrame>,
    pub samples: Vec<Sample>,
    pub stalls: Vec<Stall>,
    /// A stall still going on when the run stopped (the end of a stream that never
    /// fired `ended`, typically).
    pub open_stall: Option<Stall>,
    pub switches: Vec<LevelSwitch>,
    pub forced_switch: Option<ForcedSwitch>,
    pub errors: Vec<PlayerError>,
    pub ended: bool,
    pub ended_at: Option<f64>,
    pub buffer_eos_at: Option<f64>,
    #[serde(rename = "final")]
    pub final_state: Option<FinalState>,
    /// Everything else the page noted, in order (events of the video element and hls.js).
    pub events: Vec<serde_json::Value>,
    /// The text of the page at the end.
    pub page_text: Option<String>,
    /// The report as the player wrote it.
    #[serde(skip)]
    pub raw: serde_json::Value,
}

/// Median and 95th percentile of some figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub p95: f64,
    pub count: usize,
}

impl Spread {
    pub fn of(mut values: Vec<f64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        Some(Self { median: at(0.5), p95: at(0.95), count: values.len() })
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "median {:.2} s, p95 {:.2} s ({} samples)", self.median, self.p95, self.count)
    }
}

impl PlayReport {
    /// Writes the report as JSON into the test's temporary target directory, for a closer
    /// look after the run; returns the file.
    pub fn save(&self, name: &str) -> PathBuf {
        let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.json"));
        let _ = std::fs::write(&file, serde_json::to_vec(&self.raw).unwrap_or_default());
        file
    }

    /// The latency behind the wall clock (now minus the PROGRAM-DATE-TIME of the frame on
    /// screen) over the samples whose wall clock lies in `[from, until)` (ms since the epoch).
    pub fn latency_between(&self, from: f64, until: f64) -> Option<Spread> {
        Spread::of(self.samples.iter().filter(|s| s.wall >= from && s.wall < until).filter_map(|s| s.latency).collect())
    }

    /// The latency over all samples.
    pub fn latency(&self) -> Option<Spread> {
        self.latency_between(f64::MIN, f64::MAX)
    }

    /// hls.js's distance from the live edge over all samples.
    pub fn edge_distance(&self) -> Option<Spread> {
        Spread::of(self.samples.iter().filter_map(|s| s.hls_latency).collect())
    }

    /// Where playback started: hls.js's distance from the live edge and its target, over the
    /// second after the first frame (at the first frame itself hls.js has not yet measured).
    pub fn start_distance(&self) -> Option<(f64, f64)> {
        let first = self.samples.first()?;
        let early: Vec<&Sample> =
            self.samples.iter().filter(|s| s.t >= first.t + 0.25 && s.t < first.t + 1.25).collect();
        let distance = Spread::of(early.iter().filter_map(|s| s.hls_latency).collect())?.median;
        let target = early.iter().find_map(|s| s.target_latency)?;
        Some((distance, target))
    }

    /// The stalls that ended, and their total length in seconds.
    pub fn stall_total(&self) -> (usize, f64) {
        (self.stalls.len(), self.stalls.iter().filter_map(|s| s.seconds).sum())
    }

    /// Whether the media time moved by more than `seconds` between the first sample and
    /// the last.
    pub fn advanced_by(&self) -> f64 {
        match (self.samples.first(), self.final_state.as_ref()) {
            (Some(first), Some(last)) => last.current_time - first.current_time,
            _ => 0.0,
        }
    }

    /// Media seconds played per wall-clock second, stalls left out: 1.0 in real time. Below
    /// that, the browser's media clock fell behind (a starved CPU: headless Chromium renders
    /// audio to a timer-driven fake device), and the latency grows by itself.
    pub fn playback_speed(&self) -> Option<f64> {
        let (first, last) = (self.samples.first()?, self.samples.last()?);
        let wall = (last.wall - first.wall) / 1000.0;
        let stalled: f64 = self
            .stalls
            .iter()
            .chain(self.open_stall.iter())
            .filter(|s| s.at >= first.t && s.at < last.t)
            .filter_map(|s| s.seconds)
            .sum();
        (wall - stalled > 1.0).then(|| (last.current_time - first.current_time) / (wall - stalled))
    }

    /// The heights that were on screen, in order, without repeats.
    pub fn heights_played(&self) -> Vec<u32> {
        let mut heights: Vec<u32> = Vec::new();
        for h in self.switches.iter().filter_map(|s| s.height) {
            if heights.last() != Some(&h) {
                heights.push(h);
            }
        }
        heights
    }

    pub fn fatal_errors(&self) -> Vec<&PlayerError> {
        self.errors.iter().filter(|e| e.fatal).collect()
    }

    /// A few lines for the test output.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} {} in {} (lowLatencyMode {}), {}; stopped: {} after {:.1} s\n",
            self.player.as_deref().unwrap_or("?"),
            self.hls_version.as_deref().unwrap_or(""),
            self.browser,
            self.low_latency_mode,
            self.source,
            self.outcome,
            self.elapsed
        );
        match (&self.first_frame, &self.at_first_frame) {
            (Some(t), Some(at)) => out.push_str(&format!(
                "first frame after {t:.2} s at {:?}p, {} s behind the wall clock; start {} s from the live edge (target {} s)\n",
                at.height.unwrap_or(0),
                opt(at.latency),
                opt(self.start_distance().map(|d| d.0)),
                opt(self.start_distance().map(|d| d.1)),
            )),
            _ => out.push_str("no frame showed\n"),
        }
        if let Some(latency) = self.latency() {
            out.push_str(&format!("latency behind the wall clock: {latency}\n"));
        }
        if let Some(edge) = self.edge_distance() {
            out.push_str(&format!("distance from the live edge (hls.latency): {edge}\n"));
        }
        if let Some(speed) = self.playback_speed() {
            out.push_str(&format!("playback speed {speed:.3}x of real time, stalls left out\n"));
        }
        let (stalls, seconds) = self.stall_total();
        out.push_str(&format!("stalls: {stalls}, {seconds:.2} s in all"));
        for stall in &self.stalls {
            out.push_str(&format!(
                "\n  at {:.2} s, media time {:.3}, {} for {} s, buffered {:?}",
                stall.at,
                stall.current_time,
                stall.cause,
                opt(stall.seconds),
                stall.buffered
            ));
        }
        if let Some(open) = &self.open_stall {
            out.push_str(&format!(
                "\n  still stalled at the end: since {:.2} s at media time {:.3} ({}), buffered {:?}",
                open.at, open.current_time, open.cause, open.buffered
            ));
        }
        out.push_str(&format!("\nrenditions on screen: {:?}", self.heights_played()));
        if let Some(forced) = &self.forced_switch {
            out.push_str(&format!(
                "; switch {:?}p -> {:?}p asked at {:.2} s, on screen at {}",
                forced.from_height.unwrap_or(0),
                forced.to_height.unwrap_or(0),
                forced.requested_at,
                forced.switched_at.map(|t| format!("{t:.2} s")).unwrap_or_else(|| "never".into())
            ));
        }
        out.push_str(&format!(
            "\nended: {} (buffer EOS {}); final state {:?}",
            self.ended,
            self.buffer_eos_at.map(|t| format!("at {t:.2} s")).unwrap_or_else(|| "never".into()),
            self.final_state
        ));
        for error in self.errors.iter().take(10) {
            out.push_str(&format!(
                "\nhls.js error at {:.2} s: {} {} fatal={} {} {}",
                error.t,
                error.kind.as_deref().unwrap_or(""),
                error.details.as_deref().unwrap_or(""),
                error.fatal,
                error.url.as_deref().unwrap_or(""),
                error.reason.as_deref().unwrap_or("")
            ));
        }
        out
    }
}

fn opt(value: Option<f64>) -> String {
    value.map(|v| format!("{v:.2}")).unwrap_or_else(|| "?".into())
}

/// The directory with the player's npm packages (`node_modules`), installed by
/// `scripts/testenv.sh` from `tests/player/package-lock.json`.
pub fn player_modules_dir() -> PathBuf {
    std::env::var_os("LIVESTREAM_PLAYER_DIR").map(PathBuf::from).unwrap_or_else(|| {
        testenv_bin_dir().parent().map(|cache| cache.join("player")).unwrap_or_else(|| PathBuf::from("player"))
    })
}

/// The pinned hls.js build the tests serve to pages (`dist/hls.min.js`).
pub fn hls_js_file() -> PathBuf {
    let file = player_modules_dir().join("node_modules/hls.js/dist/hls.min.js");
    assert!(file.exists(), "{} is missing: run scripts/testenv.sh to install the player packages", file.display());
    file
}

/// A player running in the background.
pub struct Player {
    process: ManagedProcess,
    report: PathBuf,
    limit: Duration,
    started: Instant,
    group: libc::pid_t,
    profile: PathBuf,
    _dir: tempfile::TempDir,
}

impl Player {
    /// Starts Chromium with hls.js on `source`.
    pub fn start(source: &Source, options: &PlayOptions) -> Self {
        let modules = player_modules_dir();
        assert!(
            modules.join("node_modules/puppeteer-core").exists(),
            "{} has no puppeteer-core: run scripts/testenv.sh to install the player packages",
            modules.display()
        );
        let dir = tempfile::Builder::new().prefix("livestream-player-").tempdir().expect("player temp dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/player/play.mjs");
        let report = dir.path().join("report.json");
        let profile = dir.path().join("profile");
        let mut cmd = Command::new("node");
        cmd.arg(script)
            .arg(match source {
                Source::Playlist(url) => format!("--url={url}"),
                Source::Page(url) => format!("--page={url}"),
            })
            .arg(format!("--duration={}", options.duration.as_secs_f64()))
            .arg(format!("--start-timeout={}", options.start_timeout.as_secs_f64()))
            .arg(format!("--chromium={}", testenv_bin("chromium").display()))
            .arg(format!("--profile={}", profile.display()))
            .arg(format!("--report={}", report.display()))
            .env("LIVESTREAM_PLAYER_DIR", &modules);
        if options.low_latency {
            cmd.arg("--low-latency");
        }
        if let Some(rate) = options.catch_up {
            cmd.arg(format!("--catch-up={rate}"));
        }
        if options.until_ended {
            cmd.arg("--until-ended");
        }
        if let Some(at) = options.switch_at {
            cmd.arg(format!("--switch-at={at}"));
        }
        if options.debug {
            cmd.arg("--debug");
        }
        // Its own process group, so that Chromium and its helpers go with it.
        cmd.process_group(0);
        let process = ManagedProcess::spawn("hls.js in Chromium", cmd, &dir.path().join("player.log"));
        let group = process.pid().expect("the player's pid") as libc::pid_t;
        // Chromium's start, the page, the run and the report.
        let limit = options.duration + Duration::from_secs(30);
        Self { process, report, limit, started: Instant::now(), group, profile, _dir: dir }
    }

    /// Waits for the report, at most the run's duration and half a minute.
    pub fn wait(mut self) -> PlayReport {
        while self.process.is_running() {
            if self.started.elapsed() > self.limit {
                let tail = self.process.log_tail(6000);
                self.kill_group();
                panic!("the player did not finish within {:?}; its log ends with:\n{tail}", self.limit);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = self.process.log_tail(6000);
        assert!(self.process.exit_success(), "the player failed; its log ends with:\n{log}");
        let left = processes_naming(&self.profile);
        assert!(left.is_empty(), "Chromium processes outlived the player: {left:?}");
        let text = std::fs::read_to_string(&self.report)
            .unwrap_or_else(|e| panic!("no report from the player ({e}); its log ends with:\n{log}"));
        let raw: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("unreadable player report: {e}\n{text}"));
        let mut report: PlayReport =
            serde_json::from_value(raw.clone()).unwrap_or_else(|e| panic!("unexpected player report: {e}\n{text}"));
        report.raw = raw;
        report
    }

    /// The player's log (page warnings and errors; hls.js debug lines with `debug`).
    pub fn log(&self) -> String {
        self.process.log_tail(100_000)
    }

    /// Kills whatever is left of the player's process group: Chromium's processes, should
    /// node have died without closing the browser.
    fn kill_group(&mut self) {
        // SAFETY: kill(2) on the process group that this player's node process leads; the
        // group id cannot be reused while any of its members lives.
        unsafe {
            libc::kill(-self.group, libc::SIGKILL);
        }
        self.process.kill();
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// The processes whose command line names `path` (Chromium names its profile directory).
fn processes_naming(path: &Path) -> Vec<u32> {
    let needle = path.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&needle))
        })
        .collect()
}

/// Plays `source` and returns the report.
pub fn play(source: &Source, options: &PlayOptions) -> PlayReport {
    Player::start(source, options).wait()
}

/// A live encoder for the player tests: ffmpeg making testsrc2 and a sine tone in real
/// time, H.264 and AAC, pushed over RTMP.
#[derive(Clone, Debug)]
pub struct LivePush {
    pub seconds: u64,
    pub size: &'static str,
    pub rate: u32,
    /// Keyframe interval in frames.
    pub gop: u32,
    pub preset: &'static str,
    pub video_kbps: u32,
}

impl LivePush {
    /// 360p30 with a keyframe every 2 s, light on the CPU: for tests that transcode a ladder.
    pub fn small(seconds: u64) -> Self {
        Self { seconds, size: "640x360", rate: 30, gop: 60, preset: "ultrafast", video_kbps: 1000 }
    }

    /// 720p30 with a keyframe every second: the latency benchmark's source.
    pub fn hd(seconds: u64) -> Self {
        Self { seconds, size: "1280x720", rate: 30, gop: 30, preset: "veryfast", video_kbps: 3000 }
    }
}

/// Starts ffmpeg pushing `options` to `url`; its log goes to `log_dir/push.log`.
pub fn push_live(url: &str, options: &LivePush, log_dir: &Path) -> ManagedProcess {
    let mut cmd = Command::new(testenv_bin("ffmpeg"));
    let kbps = options.video_kbps;
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "warning", "-re"])
        .args(["-f", "lavfi", "-i", &format!("testsrc2=size={}:rate={}", options.size, options.rate)])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &options.seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", options.preset, "-pix_fmt", "yuv420p"])
        .args(["-g", &options.gop.to_string(), "-keyint_min", &options.gop.to_string(), "-sc_threshold", "0"])
        .args(["-b:v", &format!("{kbps}k"), "-maxrate", &format!("{kbps}k"), "-bufsize", &format!("{}k", kbps * 2)])
        .args(["-c:a", "aac", "-b:a", "128k", "-f", "flv", url]);
    ManagedProcess::spawn("ffmpeg push", cmd, &log_dir.join("push.log"))
}

/// Glass-to-glass figures of one stream in hls.js: the latency behind the wall clock (now
/// minus the PROGRAM-DATE-TIME of the frame on screen), so as good as the server's
/// PROGRAM-DATE-TIME is close to the capture time; see each server for what it takes.
#[derive(Clone, Debug)]
pub struct LatencyFigures {
    pub latency: Spread,
    /// hls.js's distance from the live edge.
    pub edge: Option<Spread>,
    pub target: Option<f64>,
    pub stalls: usize,
    pub stalled_seconds: f64,
    /// Stalls between the first frame and the measured span.
    pub startup_stalls: usize,
    /// The player's playback speed and the machine's load average: figures taken on a
    /// machine short of CPU are not the server's.
    pub conditions: String,
    pub first_frame: f64,
    pub errors: usize,
    pub report: PlayReport,
}

impl LatencyFigures {
    pub const TABLE_HEADER: &'static str = "| server | stream | hls.js lowLatencyMode | latency median | latency p95 | from the live edge (target) | stalls in the span (before it) | first frame | playback speed, load |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |";

    /// One row of the table under [`Self::TABLE_HEADER`].
    pub fn row(&self, server: &str, stream: &str) -> String {
        format!(
            "| {server} | {stream} | {} | {:.2} s | {:.2} s | {} ({}) | {} ({:.1} s), {} before | {:.2} s | {} |",
            match (self.report.low_latency_mode, self.report.catch_up.filter(|rate| *rate > 1.0)) {
                (true, Some(rate)) => format!("on, catch-up to {rate}x"),
                (true, None) => "on".to_string(),
                (false, Some(rate)) => format!("off, catch-up to {rate}x"),
                (false, None) => "off".to_string(),
            },
            self.latency.median,
            self.latency.p95,
            self.edge.map(|e| format!("{:.2} s", e.median)).unwrap_or_else(|| "?".into()),
            self.target.map(|t| format!("{t:.2} s")).unwrap_or_else(|| "?".into()),
            self.stalls,
            self.stalled_seconds,
            self.startup_stalls,
            self.first_frame,
            self.conditions,
        )
    }
}

/// Plays `master` in hls.js, set up as `player` says, for `warmup` and then `measure`, and
/// returns the figures of the `measure` span; panics when nothing played. The stream must stay live all that time.
pub fn measure_latency(master: &str, player: &PlayOptions, warmup: Duration, measure: Duration) -> LatencyFigures {
    let options = PlayOptions {
        duration: warmup + measure + Duration::from_secs(10),
        start_timeout: Duration::from_secs(10),
        ..player.clone()
    };
    let report = play(&Source::Playlist(master.to_string()), &options);
    let first_frame = report.first_frame.unwrap_or_else(|| panic!("no frame of {master}:\n{}", report.summary()));
    let from = first_frame + warmup.as_secs_f64();
    let until = from + measure.as_secs_f64();
    let window: Vec<&Sample> = report.samples.iter().filter(|s| s.t >= from && s.t < until).collect();
    let latency = Spread::of(window.iter().filter_map(|s| s.latency).collect())
        .unwrap_or_else(|| panic!("no PROGRAM-DATE-TIME latency for {master}:\n{}", report.summary()));
    let stalls: Vec<&Stall> =
        report.stalls.iter().chain(report.open_stall.iter()).filter(|s| s.at >= from && s.at < until).collect();
    LatencyFigures {
        latency,
        edge: Spread::of(window.iter().filter_map(|s| s.hls_latency).collect()),
        target: window.iter().rev().find_map(|s| s.target_latency),
        stalls: stalls.len(),
        stalled_seconds: stalls.iter().filter_map(|s| s.seconds).sum(),
        startup_stalls: report.stalls.iter().filter(|s| s.at < from).count(),
        conditions: format!(
            "{}x, {}",
            report.playback_speed().map(|s| format!("{s:.2}")).unwrap_or_else(|| "?".into()),
            std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').next().unwrap_or("?")
        ),
        first_frame,
        errors: report.errors.len(),
        report,
    }
}

/// Waits until the first media playlist of `master` lists `segments` segments with media
/// (not `EXT-X-GAP` placeholders), as a viewer finds a stream that has been live a while;
/// `check` runs at every poll (to fail early when the encoder died).
pub fn wait_for_live_window(master: &str, segments: usize, timeout: Duration, mut check: impl FnMut()) {
    let base = master.rsplit_once('/').map(|(b, _)| b).unwrap_or(master);
    super::process::wait_for(&format!("{segments} segments in the first playlist of {master}"), timeout, || {
        check();
        let (status, _, _, body) = super::media::http_get(master);
        let text = String::from_utf8_lossy(&body).into_owned();
        let variant = text.lines().find(|l| !l.is_empty() && !l.starts_with('#'))?.to_string();
        let media = if text.contains("#EXTINF") {
            text
        } else {
            let (_, _, _, body) = super::media::http_get(&format!("{base}/{variant}"));
            String::from_utf8_lossy(&body).into_owned()
        };
        let listed = media.lines().filter(|l| l.starts_with("#EXTINF")).count();
        let gaps = media.lines().filter(|l| l.starts_with("#EXT-X-GAP")).count();
        (status == 200 && listed.saturating_sub(gaps) >= segments).then_some(())
    });
}
