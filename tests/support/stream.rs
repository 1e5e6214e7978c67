//! A LiveStream on a real cluster as its users see it: applied with kubectl, pushed to by
//! an encoder that reconnects the way OBS does, and watched through its playback URL by a
//! reader that checks every playlist it sees (every object named is readable) and, after
//! the fact, the continuity that players rely on across faults.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::media::{MediaPlaylist, http_get, parse_master, parse_media};
use super::process::{ManagedProcess, testenv_bin};

/// `kubectl apply -f -` of `yaml`; panics with kubectl's message when it fails.
pub fn kubectl_apply(mut kubectl: Command, yaml: &str) {
    let mut child = kubectl
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl apply");
    child.stdin.take().expect("stdin").write_all(yaml.as_bytes()).expect("write to kubectl");
    let out = child.wait_with_output().expect("kubectl apply");
    assert!(out.status.success(), "kubectl apply failed: {}\n{yaml}", String::from_utf8_lossy(&out.stderr));
}

/// A kubectl command's standard output; panics with its message when it fails.
pub fn kubectl_output(mut kubectl: Command) -> String {
    let out = kubectl.output().expect("run kubectl");
    assert!(out.status.success(), "{kubectl:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `rtmp_url`'s host and port accept TCP connections (a Service's NodePort
/// routes only once kube-proxy has programmed the endpoint, a moment after the pod is
/// Ready); the probe closes at once, as a load balancer's health check does.
pub fn wait_until_reachable(rtmp_url: &str, timeout: Duration) {
    let authority = ["rtmp://", "rtmps://"]
        .iter()
        .find_map(|scheme| rtmp_url.strip_prefix(scheme))
        .and_then(|r| r.split('/').next())
        .expect("an rtmp:// or rtmps:// URL");
    let addr: std::net::SocketAddr = authority.parse().expect("HOST:PORT in the ingest URL");
    super::process::wait_for(&format!("{authority} to accept connections"), timeout, || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()
    });
}

/// The encoder's log with the stream key taken out, for failure messages.
pub fn redacted_log(log: &Path, key: &str) -> String {
    std::fs::read_to_string(log).unwrap_or_default().replace(key, "<stream key>")
}

/// What a reconnecting encoder did: one entry per connection.
#[derive(Clone, Debug)]
pub struct Connection {
    pub started: Instant,
    pub ended: Instant,
    /// Whether ffmpeg finished its part of the push (false: the connection broke or was
    /// refused).
    pub completed: bool,
    /// The media ffmpeg was to push on this connection.
    pub media: Duration,
}

impl Connection {
    pub fn seconds(&self) -> f64 {
        (self.ended - self.started).as_secs_f64()
    }

    /// When the media of this connection began to flow: for a completed connection, its
    /// media's length before its end (ffmpeg reads its input in real time only once the
    /// server has taken the publish, which a gateway waiting for a new worker delays);
    /// else the connection's start.
    pub fn media_started(&self) -> Instant {
        if self.completed {
            self.ended.checked_sub(self.media).unwrap_or(self.started).max(self.started)
        } else {
            self.started
        }
    }
}

/// An encoder pushing a synthetic stream in real time for a fixed time, reconnecting (as
/// OBS does: after a short delay, continuing its timestamps) whenever the connection breaks.
pub struct Encoder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Connection>>>,
}

/// The delay before a reconnect (OBS's default "retry delay" is a couple of seconds).
const RECONNECT_DELAY: Duration = Duration::from_secs(2);

impl Encoder {
    /// Pushes to `url` (which holds the stream key: never logged) for `total`.
    pub fn start(url: String, total: Duration, log_dir: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let log = log_dir.join("encoder.log");
        let flag = stop.clone();
        let thread = std::thread::spawn(move || push_reconnecting(&url, total, &log, &flag));
        Self { stop, thread: Some(thread) }
    }

    /// Waits until the push is over; the connections it made.
    pub fn finish(mut self) -> Vec<Connection> {
        self.thread.take().expect("the encoder thread").join().expect("the encoder thread panicked")
    }

    /// Ends the push now.
    pub fn stop(self) -> Vec<Connection> {
        self.stop.store(true, Ordering::SeqCst);
        self.finish()
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn push_reconnecting(url: &str, total: Duration, log: &Path, stop: &AtomicBool) -> Vec<Connection> {
    let begin = Instant::now();
    let mut connections = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let elapsed = begin.elapsed();
        if elapsed + Duration::from_millis(500) >= total {
            break;
        }
        let remaining = total - elapsed;
        let mut cmd = Command::new(testenv_bin("ffmpeg"));
        cmd.args(["-hide_banner", "-nostdin", "-loglevel", "warning", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc=size=320x180:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-t", &format!("{:.2}", remaining.as_secs_f64())])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25"])
            .args(["-c:a", "aac", "-b:a", "64k"])
            // Timestamps go on from where the broken connection left them, as an encoder's do.
            .args(["-output_ts_offset", &format!("{:.3}", elapsed.as_secs_f64())])
            // A peer that vanished (a deleted pod) is noticed within seconds.
            .args(["-rw_timeout", "5000000"])
            .args(["-f", "flv", url]);
        let started = Instant::now();
        let mut process = ManagedProcess::spawn("encoder", cmd, log);
        while process.is_running() && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        process.kill();
        let completed = process.exit_success();
        connections.push(Connection { started, ended: Instant::now(), completed, media: remaining });
        if completed {
            break;
        }
        let until = Instant::now() + RECONNECT_DELAY;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    connections
}

/// One reading of one media playlist.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub at: Instant,
    pub variant: String,
    pub playlist: MediaPlaylist,
    /// The writer marker line (a comment naming the worker that wrote the playlist).
    pub writer: Option<String>,
}

/// What a [`PlaylistWatch`] saw.
#[derive(Debug, Default)]
pub struct WatchReport {
    pub snapshots: Vec<Snapshot>,
    /// Objects that a playlist named and storage did not serve.
    pub unreadable: Vec<String>,
}

/// Reads a stream's playlists through its playback URL every half second, and checks
/// each object a playlist names as soon as it is seen.
pub struct PlaylistWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<WatchReport>>,
}

impl PlaylistWatch {
    /// Watches the master playlist at `playback_url`.
    pub fn start(playback_url: &str) -> Self {
        let base = playback_url.strip_suffix("/master.m3u8").expect("a master playlist URL").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || watch(&base, &flag));
        Self { stop, thread: Some(thread) }
    }

    pub fn finish(mut self) -> WatchReport {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().expect("the watch thread").join().expect("the watch thread panicked")
    }
}

impl Drop for PlaylistWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The writer marker of a playlist: a comment line (not a tag) that names its writer.
pub fn writer_marker(text: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with('#') && !l.starts_with("#EXT") && l.to_ascii_lowercase().contains("writer"))
        .map(str::to_string)
}

fn content_hash(body: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    hasher.finish()
}

/// How often (in rounds) the objects in the current playlists are read again: an
/// announced segment must neither vanish nor change while a playlist names it.
const RECHECK_ROUNDS: u32 = 4;

fn watch(base: &str, stop: &AtomicBool) -> WatchReport {
    let mut report = WatchReport::default();
    let mut checked: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut round_number = 0u32;
    // A last reading after the stop request: what the caller saw before it asked to stop
    // (ENDLIST) is in the report.
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        round_number += 1;
        let recheck = round_number.is_multiple_of(RECHECK_ROUNDS);
        let round = Instant::now();
        let (status, _, _, body) = http_get(&format!("{base}/master.m3u8"));
        if status == 200
            && let Ok(master) = String::from_utf8(body)
        {
            for (_, uri) in parse_master(&master) {
                let (status, _, _, body) = http_get(&format!("{base}/{uri}"));
                if status == 404 {
                    report.unreadable.push(format!("the master names {uri}, which storage does not serve (404)"));
                }
                let Ok(text) = String::from_utf8(body) else { continue };
                if status != 200 || !text.starts_with("#EXTM3U") {
                    continue;
                }
                let playlist = parse_media(&text);
                let dir = uri.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
                for (segment, _, _, map) in &playlist.segments {
                    for object in std::iter::once(segment).chain(map.iter()) {
                        let url = format!("{base}/{dir}/{object}");
                        let known = checked.get(&url).copied();
                        if known.is_some() && !recheck {
                            continue;
                        }
                        let (status, _, _, body) = http_get(&url);
                        match (status, known) {
                            (200, None) => {
                                checked.insert(url, content_hash(&body));
                            }
                            (200, Some(hash)) if hash != content_hash(&body) => {
                                report
                                    .unreadable
                                    .push(format!("{uri} names {object}, which changed after it was announced"));
                                checked.insert(url, content_hash(&body));
                            }
                            (200, Some(_)) => {}
                            // Storage unreachable (an outage under test): no answer either way.
                            (0, _) => {}
                            (other, _) => report.unreadable.push(format!("{uri} names {object}: status {other}")),
                        }
                    }
                }
                report.snapshots.push(Snapshot {
                    at: Instant::now(),
                    variant: uri,
                    writer: writer_marker(&text),
                    playlist,
                });
            }
        }
        if stopping {
            return report;
        }
        let spent = round.elapsed();
        if spent < Duration::from_millis(500) {
            std::thread::sleep(Duration::from_millis(500) - spent);
        }
    }
}

/// One segment as the watch saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct SeenSegment {
    pub uri: String,
    pub duration: f64,
    pub discontinuity: bool,
    /// When a playlist first named it.
    pub first_seen: Instant,
}

/// A media playlist's history across all the readings of one variant.
#[derive(Debug, Default)]
pub struct History {
    /// Every segment seen, by media sequence number.
    pub segments: BTreeMap<u64, SeenSegment>,
    /// Broken promises: a sequence number that changed its segment, a media sequence that
    /// went back, an announced segment that vanished from the window.
    pub problems: Vec<String>,
    /// The writer markers in the order they appeared (consecutive repeats collapsed).
    pub writers: Vec<Option<String>>,
    pub ended: bool,
}

impl History {
    /// Discontinuities after the first segment.
    pub fn discontinuities(&self) -> Vec<u64> {
        self.segments.iter().skip(1).filter(|(_, s)| s.discontinuity).map(|(seq, _)| *seq).collect()
    }

    /// Seconds of media in segments from `from` (a sequence number) on, and before it.
    pub fn seconds_split_at(&self, from: u64) -> (f64, f64) {
        let before = self.segments.range(..from).map(|(_, s)| s.duration).sum();
        let after = self.segments.range(from..).map(|(_, s)| s.duration).sum();
        (before, after)
    }

    /// Seconds of media in segments that playlists first named after `at`.
    pub fn seconds_announced_after(&self, at: Instant) -> f64 {
        self.segments.values().filter(|s| s.first_seen > at).map(|s| s.duration).sum()
    }

    /// The writers that wrote the playlist, in order, without repeats; an error when one
    /// came back after another took over (two writers taking turns).
    pub fn writer_turns(&self) -> Result<Vec<String>, String> {
        let mut turns: Vec<String> = Vec::new();
        for writer in self.writers.iter().flatten() {
            if turns.last() == Some(writer) {
                continue;
            }
            if turns.contains(writer) {
                return Err(format!("the writer {writer:?} came back after {:?}", turns.last()));
            }
            turns.push(writer.clone());
        }
        Ok(turns)
    }

    /// Whether the sequence numbers seen have no hole.
    pub fn gaps(&self) -> Vec<u64> {
        let seqs: Vec<u64> = self.segments.keys().copied().collect();
        seqs.windows(2).filter(|w| w[1] != w[0] + 1).map(|w| w[0] + 1).collect()
    }
}

/// The history of `variant` in `report`.
pub fn history(report: &WatchReport, variant: &str) -> History {
    let mut history = History::default();
    let mut previous: Option<&MediaPlaylist> = None;
    for snapshot in report.snapshots.iter().filter(|s| s.variant == variant) {
        let playlist = &snapshot.playlist;
        if history.writers.last() != Some(&snapshot.writer) {
            history.writers.push(snapshot.writer.clone());
        }
        history.ended |= playlist.ended;
        for (index, (uri, duration, discontinuity, _)) in playlist.segments.iter().enumerate() {
            let seq = playlist.media_sequence + index as u64;
            let seen = SeenSegment {
                uri: uri.clone(),
                duration: *duration,
                discontinuity: *discontinuity,
                first_seen: snapshot.at,
            };
            match history.segments.get(&seq) {
                Some(known) if known.uri != seen.uri || known.discontinuity != seen.discontinuity => {
                    history.problems.push(format!("sequence {seq} was {known:?}, later {seen:?}"))
                }
                Some(_) => {}
                None => {
                    history.segments.insert(seq, seen);
                }
            }
        }
        if let Some(before) = previous {
            if playlist.media_sequence < before.media_sequence {
                history.problems.push(format!(
                    "the media sequence went back from {} to {}",
                    before.media_sequence, playlist.media_sequence
                ));
            }
            let last_before = before.media_sequence + before.segments.len() as u64;
            let last_now = playlist.media_sequence + playlist.segments.len() as u64;
            if last_now < last_before {
                history.problems.push(format!(
                    "announced segments vanished: the playlist ended at sequence {}, later at {}",
                    last_before - 1,
                    last_now.saturating_sub(1)
                ));
            }
        }
        previous = Some(playlist);
    }
    history
}

/// The variants (media playlist URIs) in a report.
pub fn variants(report: &WatchReport) -> Vec<String> {
    let mut out: Vec<String> = report.snapshots.iter().map(|s| s.variant.clone()).collect();
    out.sort();
    out.dedup();
    out
}
