//! Media test tools: `livestream serve` as a process, ffmpeg as the encoder, ffprobe as
//! the decoder, and a playlist reader that checks what players rely on.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::{ManagedProcess, free_port, free_udp_port, testenv_bin, wait_for};

/// Media tests run one at a time: each runs real-time encoders, and two cores are few.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `livestream` binary under test: cargo's, or `LIVESTREAM_BIN` (a copy of one build,
/// where worktrees share a target directory and overwrite each other's `target/debug/livestream`).
pub fn livestream_bin() -> PathBuf {
    // Integration tests know the binary; the example that shares this module does not.
    #[allow(clippy::option_env_unwrap)]
    let built = || {
        PathBuf::from(option_env!("CARGO_BIN_EXE_livestream").expect("an integration test knows the livestream binary"))
    };
    std::env::var_os("LIVESTREAM_BIN").map(PathBuf::from).unwrap_or_else(built)
}

/// A running `livestream serve`.
pub struct Serve {
    pub process: ManagedProcess,
    pub rtmp_port: u16,
    /// SRT's UDP port.
    pub srt_port: u16,
    pub http_port: u16,
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Serve {
    /// Starts `livestream serve` on free ports with a temporary data directory, with the
    /// extra arguments given, and waits until it is ready.
    pub fn start(extra: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new().prefix("livestream-serve-").tempdir().expect("temp dir");
        // A `--data-dir=` among the extra arguments reuses that directory (a restart).
        let data_dir = extra
            .iter()
            .find_map(|a| a.strip_prefix("--data-dir="))
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.path().join("data"));
        let rtmp_port = free_port();
        let srt_port = free_udp_port();
        let http_port = free_port();
        let mut cmd = Command::new(livestream_bin());
        cmd.arg("serve")
            .arg(format!("--rtmp-addr=127.0.0.1:{rtmp_port}"))
            .arg(format!("--srt-addr=127.0.0.1:{srt_port}"))
            .arg(format!("--http-addr=127.0.0.1:{http_port}"))
            .args(
                (!extra.iter().any(|a| a.starts_with("--data-dir=")))
                    .then(|| format!("--data-dir={}", data_dir.display())),
            )
            .arg(format!("--scratch-dir={}", dir.path().join("scratch").display()))
            .arg(format!("--ffmpeg={}", testenv_bin("ffmpeg").display()))
            .args(extra)
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = dir.path().join("serve.log");
        let mut process = ManagedProcess::spawn("livestream serve", cmd, &log);
        let url = format!("http://127.0.0.1:{http_port}/readyz");
        wait_for("livestream serve to become ready", Duration::from_secs(30), || {
            process.assert_running();
            let out = Command::new("curl").args(["-sf", &url]).output().ok()?;
            out.status.success().then_some(())
        });
        Self { process, rtmp_port, srt_port, http_port, data_dir, _dir: dir }
    }

    pub fn rtmp_url(&self, app: &str, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}/{key}", self.rtmp_port)
    }

    /// The SRT URL ffmpeg publishes to with `stream_id` (its `#` and `,` as they are:
    /// ffmpeg takes the query's value up to the next `&`).
    pub fn srt_url(&self, stream_id: &str) -> String {
        format!("srt://127.0.0.1:{}?streamid={stream_id}", self.srt_port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.http_port)
    }

    pub fn log(&self) -> String {
        self.process.log_tail(20_000)
    }

    /// The transcoder's current speed (1.0 is real time), from the metrics.
    pub fn transcode_speed(&self) -> Option<f64> {
        self.metric("livestream_transcode_speed")
    }

    /// The value of the first series of metric `name` (one with labels), if it exists.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, _, _, metrics) = http_get(&self.http_url("metrics"));
        let series = format!("{name}{{");
        String::from_utf8_lossy(&metrics)
            .lines()
            .find(|l| l.starts_with(&series))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}

/// Options of a synthetic push.
#[derive(Clone, Debug)]
pub struct Push {
    pub seconds: f64,
    pub size: &'static str,
    pub rate: u32,
    /// Keyframe interval of the encoder, in frames.
    pub gop: u32,
    /// A test pattern.
    pub video: bool,
    /// A sine tone beside the picture.
    pub audio: bool,
    /// Noise over the picture: as costly to encode as camera footage, unlike the bare
    /// test pattern.
    pub noise: bool,
}

impl Default for Push {
    fn default() -> Self {
        Self { seconds: 6.0, size: "320x180", rate: 25, gop: 25, video: true, audio: true, noise: false }
    }
}

/// Starts ffmpeg pushing testsrc and a sine tone (either may be left out) in real time
/// to `url`: FLV to `rtmp://` and `rtmps://`, MPEG-TS to `srt://`.
pub fn push(url: &str, options: &Push, log: &Path) -> ManagedProcess {
    let mut cmd = Command::new(testenv_bin("ffmpeg"));
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "warning", "-re"]);
    if options.video {
        let noise = if options.noise { ",noise=alls=30:allf=t" } else { "" };
        let source = format!("testsrc=size={}:rate={}{noise}", options.size, options.rate);
        cmd.args(["-f", "lavfi", "-i", &source]);
    }
    if options.audio {
        cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    }
    cmd.args(["-t", &options.seconds.to_string()]);
    if options.video {
        let gop = options.gop.to_string();
        cmd.args(["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", &gop]);
    }
    if options.audio {
        cmd.args(["-c:a", "aac", "-b:a", "64k"]);
    }
    let format = if url.starts_with("srt://") { "mpegts" } else { "flv" };
    cmd.args(["-f", format, url]);
    ManagedProcess::spawn("ffmpeg push", cmd, log)
}

/// Waits for a process to exit on its own, at most `timeout`; returns its success.
pub fn wait_exit(process: &mut ManagedProcess, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while process.is_running() {
        assert!(std::time::Instant::now() < deadline, "{} did not exit within {timeout:?}", process.name());
        std::thread::sleep(Duration::from_millis(50));
    }
    process.exit_success()
}

/// A GET with curl: (status, content-type, cache-control, body).
pub fn http_get(url: &str) -> (u16, String, String, Vec<u8>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let headers = dir.path().join("headers");
    let out =
        Command::new("curl").args(["-s", "--max-time", "10", "-D"]).arg(&headers).arg(url).output().expect("run curl");
    let head = std::fs::read_to_string(&headers).unwrap_or_default();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    (status, header("content-type"), header("cache-control"), out.stdout)
}

/// A media playlist as tests see it.
#[derive(Debug, Default, Clone)]
pub struct MediaPlaylist {
    pub target_duration: u64,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub ended: bool,
    pub independent: bool,
    /// (uri, duration, discontinuity before it, map uri in force)
    pub segments: Vec<(String, f64, bool, Option<String>)>,
    pub program_date_times: usize,
    /// The worker that wrote it (the `# writer` comment of stored playlists).
    pub writer: Option<String>,
    /// Low-latency playlists: (uri, duration, independent) of every EXT-X-PART.
    pub parts: Vec<(String, f64, bool)>,
    /// Low-latency playlists: the EXT-X-PRELOAD-HINT part.
    pub preload_hint: Option<String>,
    /// Low-latency playlists: EXT-X-PART-INF's PART-TARGET.
    pub part_target: Option<f64>,
}

/// The value of attribute `name` in a tag's attribute list, without quotes.
pub fn attribute<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    let start = list.find(&format!("{name}="))? + name.len() + 1;
    let rest = &list[start..];
    if let Some(quoted) = rest.strip_prefix('"') { quoted.split('"').next() } else { rest.split(',').next() }
}

pub fn parse_media(text: &str) -> MediaPlaylist {
    assert!(text.starts_with("#EXTM3U"), "not a playlist:\n{text}");
    let mut playlist = MediaPlaylist::default();
    let mut duration = None;
    let mut discontinuity = false;
    let mut map = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            playlist.target_duration = v.parse().expect("target duration");
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            playlist.media_sequence = v.parse().expect("media sequence");
        } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            playlist.discontinuity_sequence = v.parse().expect("discontinuity sequence");
        } else if line == "#EXT-X-ENDLIST" {
            playlist.ended = true;
        } else if line == "#EXT-X-INDEPENDENT-SEGMENTS" {
            playlist.independent = true;
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if line.starts_with("#EXT-X-PROGRAM-DATE-TIME:") {
            playlist.program_date_times += 1;
        } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            map = Some(v.trim_end_matches('"').to_string());
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            duration = Some(v.trim_end_matches(',').split(',').next().unwrap_or("0").parse::<f64>().expect("EXTINF"));
        } else if let Some(v) = line.strip_prefix("# writer ") {
            playlist.writer = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
            let uri = attribute(v, "URI").expect("a part has a URI").to_string();
            let duration = attribute(v, "DURATION").and_then(|d| d.parse().ok()).expect("a part has a DURATION");
            playlist.parts.push((uri, duration, attribute(v, "INDEPENDENT") == Some("YES")));
        } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            playlist.preload_hint = attribute(v, "URI").map(str::to_string);
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
            playlist.part_target = attribute(v, "PART-TARGET").and_then(|t| t.parse().ok());
        } else if !line.starts_with('#') && !line.is_empty() {
            let d = duration.take().expect("a URI without EXTINF");
            playlist.segments.push((line.to_string(), d, discontinuity, map.clone()));
            discontinuity = false;
        }
    }
    playlist
}

/// A master playlist's variants: (attributes line, uri).
pub fn parse_master(text: &str) -> Vec<(String, String)> {
    assert!(text.starts_with("#EXTM3U"), "not a playlist:\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0].starts_with("#EXT-X-STREAM-INF:"))
        .map(|w| (w[0].to_string(), w[1].to_string()))
        .collect()
}

/// Fetches a stream's playlists over HTTP and checks that every object they name is
/// readable: returns the media playlists by variant URI.
pub fn fetch_consistent(base: &str) -> Option<Vec<(String, MediaPlaylist)>> {
    let (status, _, _, body) = http_get(&format!("{base}/master.m3u8"));
    if status != 200 {
        return None;
    }
    let master = String::from_utf8(body).expect("UTF-8 master");
    let mut out = Vec::new();
    for (_, uri) in parse_master(&master) {
        let (status, _, _, body) = http_get(&format!("{base}/{uri}"));
        assert_eq!(status, 200, "the master names {uri}, which is not readable");
        let media = parse_media(&String::from_utf8(body).expect("UTF-8 media playlist"));
        let dir = uri.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let parts = media.parts.iter().map(|(part, _, _)| part);
        for (segment, _, _, map) in &media.segments {
            for object in std::iter::once(segment).chain(map.iter()) {
                let (status, _, _, _) = http_get(&resolve(&format!("{base}/{dir}"), object));
                assert_eq!(status, 200, "{uri} names {object}, which is not readable");
            }
        }
        for object in parts {
            let (status, _, _, _) = http_get(&resolve(&format!("{base}/{dir}"), object));
            assert_eq!(status, 200, "{uri} names the part {object}, which is not readable");
        }
        out.push((uri, media));
    }
    Some(out)
}

/// A URI of a playlist at `dir_url`: absolute ones as they are.
pub fn resolve(dir_url: &str, uri: &str) -> String {
    if uri.starts_with("http://") || uri.starts_with("https://") { uri.to_string() } else { format!("{dir_url}/{uri}") }
}

/// ffprobe's view of a file or URL: the video packets' (pts_time, keyframe).
pub fn video_packets(input: &str) -> Vec<(f64, bool)> {
    let out = Command::new(testenv_bin("ffprobe"))
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
            input,
        ])
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe {input} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (pts, flags) = line.split_once(',')?;
            Some((pts.parse().ok()?, flags.contains('K')))
        })
        .collect()
}

/// Decodes `input` completely with ffmpeg; returns the error output (empty when clean).
pub fn decode_errors(input: &str, map: &str) -> String {
    let out = Command::new(testenv_bin("ffmpeg"))
        .args(["-v", "error", "-nostdin", "-i", input, "-map", map, "-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let mut errors = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        errors.push_str(&format!("\nexit status {}", out.status));
    }
    errors
}

/// A self-signed certificate for `localhost` written as `tls.crt` and `tls.key` into
/// `dir`, and the arguments that make `serve` (or the gateway) take RTMPS with it on a free port.
pub fn rtmps_args(dir: &std::path::Path) -> (Vec<String>, u16) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let port = free_port();
    let args = vec![
        format!("--tls-cert={}", cert.display()),
        format!("--tls-key={}", key.display()),
        format!("--rtmps-addr=127.0.0.1:{port}"),
    ];
    (args, port)
}
