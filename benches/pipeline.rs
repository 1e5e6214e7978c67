//! Figures of the media path, printed as a table (run with `scripts/bench`):
//!
//! - CPU of the worker for a 3-rung 720p ladder against the bare ffmpeg command that
//!   produces the same ladder from the same input (target: within 5%);
//! - time from the start of a publish to the first playable part (a low-latency playlist
//!   naming a part) and to the first full segment (the standard playlist in storage), on
//!   local disk and on MinIO;
//! - the worker's memory per stream, apart from ffmpeg;
//! - the origin's CPU and memory with 200 LL-HLS clients doing blocking playlist reloads.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use livestream::transcode::{
    AudioPlan, Container, PlannedRendition, Profile, SourceFormat, TranscodePlan, ffmpeg_args,
};
use support::media::{Serve, http_get, parse_media, wait_exit};
use support::minio::MinioServer;
use support::process::{ManagedProcess, testenv_bin};

const SECONDS: u32 = 20;
const LADDER: [(&str, u32, u32, u32); 3] =
    [("720p", 1280, 720, 3000), ("480p", 854, 480, 1400), ("360p", 640, 360, 800)];
/// LL-HLS clients of the origin figure.
const CLIENTS: usize = 200;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = make_input(dir.path());
    println!("input: {SECONDS} s of 1280x720 at 30 fps, H.264 + AAC, pushed in real time\n");
    println!("| figure | value | target |");
    println!("| --- | --- | --- |");

    let (worker_cpu, worker_hwm, worker_idle) = worker_run(&input, dir.path());
    let bare_cpu = bare_ffmpeg(&input, dir.path());
    println!("| worker CPU, 3-rung 720p ladder ({SECONDS} s) | {worker_cpu:.2} s | |");
    println!("| bare ffmpeg CPU, same ladder and input | {bare_cpu:.2} s | |");
    println!("| worker over bare ffmpeg | {:+.1}% | within 5% |", (worker_cpu / bare_cpu - 1.0) * 100.0);
    println!("| worker memory idle (RSS) | {:.1} MiB | |", worker_idle as f64 / 1024.0);
    println!(
        "| worker memory per stream, apart from ffmpeg (peak RSS - idle RSS) | {:.1} MiB | |",
        worker_hwm.saturating_sub(worker_idle) as f64 / 1024.0
    );

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let minio = runtime.block_on(MinioServer::start());
    runtime.block_on(minio.create_bucket("live", true));
    for (storage, minio) in [("local disk", None), ("MinIO", Some(&minio))] {
        let (mut parts, mut segments): (Vec<f64>, Vec<f64>) =
            (0..3).map(|_| first_media(&input, dir.path(), minio)).unzip();
        println!("| publish to the first playable part, {storage} (median of 3) | {:.2} s | |", median(&mut parts));
        println!(
            "| publish to the first full segment in storage, {storage} (median of 3) | {:.2} s | |",
            median(&mut segments)
        );
    }

    let load = origin_under_load(&input, dir.path(), &runtime);
    println!(
        "| origin CPU with {CLIENTS} LL-HLS clients (blocking reloads), over the same stream without them | {:.1} % of a core | |",
        load.cpu_percent
    );
    println!("| origin memory with {CLIENTS} clients, over without them | {:.1} MiB | |", load.memory_mib);
    println!(
        "| blocking reloads answered, a second ({} errors, {:.0} ms median wait for the next part) | {:.0} | |",
        load.errors, load.median_wait_ms, load.answered_per_second
    );
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn make_input(dir: &Path) -> PathBuf {
    let path = dir.join("input.flv");
    let status = Command::new(testenv_bin("ffmpeg"))
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &SECONDS.to_string(), "-c:v", "libx264", "-preset", "veryfast", "-b:v", "4000k", "-g", "60"])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "flv"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "cannot make the benchmark input");
    path
}

fn ladder_flags() -> Vec<String> {
    let mut flags = Vec::new();
    for (name, w, h, kbps) in LADDER {
        flags.push("--rendition".to_string());
        flags.push(format!("{name}:{w}x{h}:{kbps}"));
    }
    flags
}

fn push_file(input: &Path, url: &str, log: &Path) -> ManagedProcess {
    let mut cmd = Command::new(testenv_bin("ffmpeg"));
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-i"])
        .arg(input)
        .args(["-c", "copy", "-f", "flv", url]);
    ManagedProcess::spawn("ffmpeg push", cmd, log)
}

/// (utime + stime + cutime + cstime) of a process in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = after_name.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    // After the name: state(skipped: not numeric), ppid, pgrp, session, tty, tpgid, flags,
    // minflt, cminflt, majflt, cmajflt, utime, stime, cutime, cstime.
    let ticks: u64 = fields[10..14].iter().sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Runs the ladder through `livestream serve`; returns (CPU seconds of the worker and its
/// ffmpeg, peak RSS KiB, idle RSS KiB).
fn worker_run(input: &Path, dir: &Path) -> (f64, u64, u64) {
    let mut args = ladder_flags();
    args.extend(["--segment-duration", "2", "--reconnect-grace", "1", "--preset", "veryfast"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let serve = Serve::start(&args, &[("RUST_LOG", "warn")]);
    let pid = serve.process.pid().expect("pid");
    let idle = status_kib(pid, "VmRSS:");
    let before = cpu_seconds(pid);
    let mut pusher = push_file(input, &serve.rtmp_url("live", "bench"), &dir.join("push-cpu.log"));
    assert!(wait_exit(&mut pusher, Duration::from_secs(120)), "push failed: {}", pusher.log_tail(2000));
    wait_ended(&serve.http_url("live/bench/720p/index.m3u8"));
    let cpu = cpu_seconds(pid) - before;
    let hwm = status_kib(pid, "VmHWM:");
    (cpu, hwm, idle)
}

fn wait_ended(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, _, _, body) = http_get(url);
        if code == 200 && String::from_utf8_lossy(&body).contains("#EXT-X-ENDLIST") {
            return;
        }
        assert!(Instant::now() < deadline, "the stream did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The same ladder from the same input by ffmpeg alone, reading the file in real time.
fn bare_ffmpeg(input: &Path, dir: &Path) -> f64 {
    let out = dir.join("bare");
    std::fs::create_dir_all(&out).expect("bare dir");
    let plan = TranscodePlan {
        renditions: LADDER
            .iter()
            .map(|(name, width, height, kbps)| PlannedRendition::Encoded {
                name: name.to_string(),
                width: *width,
                height: *height,
                video_kbps: *kbps,
                max_kbps: None,
                frame_rate: None,
                profile: Profile::High,
            })
            .collect(),
        audio: AudioPlan { bitrate_kbps: 128, sample_rate: 48_000, channels: 2 },
        has_audio: true,
        preset: "veryfast".into(),
        keyframe_interval_s: 2,
        segment_duration_s: 2,
        container: Container::Fmp4,
        fragment_duration: Some(Duration::from_millis(500)),
        ffmpeg: testenv_bin("ffmpeg"),
        scratch_dir: out.clone(),
        poster: None,
    };
    let args: Vec<String> =
        ffmpeg_args(&plan, &out, SourceFormat { frame_rate: Some(30.0), ..SourceFormat::default() })
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
    // Same arguments; the input is the file read in real time instead of stdin, and each
    // rendition's fragmented MP4 goes to a file instead of the packager's socket.
    let mut args: Vec<String> = args
        .into_iter()
        .map(|a| match a.strip_prefix("unix:") {
            Some(socket) => format!("{socket}.mp4"),
            None if a == "pipe:0" => input.display().to_string(),
            None => a,
        })
        .collect();
    if let Some(i) = args.iter().position(|a| a == "-f") {
        args.insert(i, "-re".into());
    }
    let before = rusage_children();
    let status = Command::new(testenv_bin("ffmpeg"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "bare ffmpeg failed");
    rusage_children() - before
}

fn rusage_children() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Seconds from starting the push to the first playable part (a low-latency playlist from
/// the server naming a part) and to the first full segment (the standard playlist in
/// storage).
fn first_media(input: &Path, dir: &Path, minio: Option<&MinioServer>) -> (f64, f64) {
    let mut args = ladder_flags();
    args.extend(["--reconnect-grace", "1"].map(String::from));
    let mut env = vec![("RUST_LOG", "warn")];
    if let Some(minio) = minio {
        args.extend([
            "--s3-bucket=live".to_string(),
            "--s3-path-style".to_string(),
            format!("--s3-endpoint={}", minio.endpoint()),
        ]);
        env.push(("AWS_ACCESS_KEY_ID", minio.access_key()));
        env.push(("AWS_SECRET_ACCESS_KEY", minio.secret_key()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let serve = Serve::start(&args, &env);
    let name = format!("lat{}", rand_suffix());
    let low_latency = serve.http_url(&format!("live/{name}/360p/index.m3u8"));
    let stored = match minio {
        None => serve.http_url(&format!("live/{name}/360p/index.m3u8")),
        Some(minio) => format!("{}/live/live/{name}/360p/index.m3u8", minio.endpoint()),
    };
    let started = Instant::now();
    let mut pusher = push_file(input, &serve.rtmp_url("live", &name), &dir.join("push-latency.log"));
    let (mut part, mut segment) = (None, None);
    while part.is_none() || segment.is_none() {
        if part.is_none() {
            let (code, _, _, body) = http_get(&low_latency);
            if code == 200 && !parse_media(&String::from_utf8_lossy(&body)).parts.is_empty() {
                part = Some(started.elapsed().as_secs_f64());
            }
        }
        if segment.is_none() {
            let (code, _, _, body) = http_get(&stored);
            if code == 200 && !parse_media(&String::from_utf8_lossy(&body)).segments.is_empty() {
                segment = Some(started.elapsed().as_secs_f64());
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no media within 30 s: {}", serve.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    pusher.kill();
    (part.unwrap_or_default(), segment.unwrap_or_default())
}

/// What the origin costs under load.
struct OriginLoad {
    cpu_percent: f64,
    memory_mib: f64,
    answered_per_second: f64,
    errors: u64,
    median_wait_ms: f64,
}

/// CPU time of a process itself (not its children), in seconds.
fn own_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = after_name.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (fields[10] + fields[11]) as f64 / hz
}

/// One live stream, its origin measured for `SPAN` without clients and then for `SPAN`
/// with [`CLIENTS`] clients that each reload the low-latency playlist blocking on the
/// next part, as LL-HLS players do.
fn origin_under_load(input: &Path, dir: &Path, runtime: &tokio::runtime::Runtime) -> OriginLoad {
    const SPAN: Duration = Duration::from_secs(15);
    let serve = Serve::start(&["--rendition", "360p:640x360:800", "--reconnect-grace", "1"], &[("RUST_LOG", "warn")]);
    let pid = serve.process.pid().expect("pid");
    let mut looped = Command::new(testenv_bin("ffmpeg"));
    looped
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i"])
        .arg(input)
        .args(["-c", "copy", "-f", "flv", &serve.rtmp_url("live", "load")]);
    let _pusher = ManagedProcess::spawn("ffmpeg push", looped, &dir.join("push-load.log"));
    let url = serve.http_url("live/load/360p/index.m3u8");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(&url).0 != 200 {
        assert!(Instant::now() < deadline, "no playlist: {}", serve.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let measure = |span: Duration| {
        let (cpu, started) = (own_cpu_seconds(pid), Instant::now());
        std::thread::sleep(span);
        (own_cpu_seconds(pid) - cpu) / started.elapsed().as_secs_f64()
    };
    let rss = || status_kib(pid, "VmRSS:") as f64 / 1024.0;
    let (idle_cpu, idle_rss) = (measure(SPAN), rss());

    let answered = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let waits = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Instant::now() + SPAN + Duration::from_secs(3);
    let client = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().expect("client");
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url, answered, errors, waits) =
                (client.clone(), url.clone(), answered.clone(), errors.clone(), waits.clone());
            runtime.spawn(async move {
                let mut next: Option<String> = None;
                while Instant::now() < stop {
                    let request = match &next {
                        Some(query) => format!("{url}?{query}"),
                        None => url.clone(),
                    };
                    let asked = Instant::now();
                    match client.get(&request).send().await {
                        Ok(response) if response.status().is_success() => {
                            let text = response.text().await.unwrap_or_default();
                            if next.is_some() {
                                waits.lock().unwrap().push(asked.elapsed().as_secs_f64() * 1000.0);
                            }
                            answered.fetch_add(1, Ordering::Relaxed);
                            next = parse_media(&text).preload_hint.and_then(|hint| {
                                let (msn, part) = hint.trim_end_matches(".m4s").split_once('.')?;
                                Some(format!("_HLS_msn={msn}&_HLS_part={part}"))
                            });
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            next = None;
                        }
                    }
                }
            })
        })
        .collect();
    // The clients settle onto the live edge first.
    std::thread::sleep(Duration::from_secs(3));
    let before = answered.load(Ordering::Relaxed);
    let busy_cpu = measure(SPAN);
    let answered_per_second = (answered.load(Ordering::Relaxed) - before) as f64 / SPAN.as_secs_f64();
    let busy_rss = rss();
    runtime.block_on(async {
        for task in tasks {
            let _ = task.await;
        }
    });
    let mut waits = waits.lock().unwrap().clone();
    OriginLoad {
        cpu_percent: (busy_cpu - idle_cpu) * 100.0,
        memory_mib: busy_rss - idle_rss,
        answered_per_second,
        errors: errors.load(Ordering::Relaxed),
        median_wait_ms: if waits.is_empty() { 0.0 } else { median(&mut waits) },
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
}
