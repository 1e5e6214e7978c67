//! A caching reverse proxy standing in for the CDN: Debian's nginx (unpacked by
//! `scripts/testenv.sh`) with `proxy_cache`, run as the test's own process on a free port,
//! its configuration, cache and logs in a temporary directory that goes when it is dropped.
//!
//! It routes as the design asks a CDN to: playlists (`*.m3u8`, with their query string, which
//! carries the blocking-reload parameters `_HLS_msn`, `_HLS_part` and `_HLS_skip`) to the
//! playlist origin, media (`*.m4s`, `*.mp4`, `*.ts`, ...) to the media origin (a bucket or the
//! same origin), anything else (pages, scripts) to the playlist origin. Freshness comes from
//! the origins' `Cache-Control` alone, as at a CDN that honours it; concurrent misses for
//! one object wait for one upstream request (`proxy_cache_lock`), as at a CDN that collapses
//! requests, which is what makes blocking reloads cheap for the origin.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::{ManagedProcess, free_port, testenv_bin, wait_for};

/// Where the proxy sends requests: base URLs that the request path is appended to, e.g.
/// `http://127.0.0.1:8080` (an origin) or `http://127.0.0.1:9000/live` (a bucket,
/// path-style, so that `/live/demo/720p/3.m4s` is read from the key `live/demo/720p/3.m4s`).
#[derive(Clone, Debug)]
pub struct CdnRoutes {
    pub playlists: String,
    pub media: String,
}

impl CdnRoutes {
    /// Everything from one origin.
    pub fn single(origin: &str) -> Self {
        Self { playlists: origin.to_string(), media: origin.to_string() }
    }
}

/// One request as the proxy logged it.
#[derive(Clone, Debug, PartialEq)]
pub struct CdnRequest {
    /// Path and query string.
    pub uri: String,
    pub status: u16,
    /// nginx's cache status: HIT, MISS, EXPIRED, BYPASS, ... or `-` when not cacheable.
    pub cache: String,
    /// Seconds from the request to the response.
    pub seconds: f64,
}

/// A running nginx owned by a test.
pub struct Cdn {
    process: ManagedProcess,
    port: u16,
    dir: tempfile::TempDir,
}

impl Cdn {
    /// Starts nginx on a free loopback port in front of `routes` and waits until it answers.
    pub fn start(routes: &CdnRoutes) -> Self {
        let dir = tempfile::Builder::new().prefix("livestream-cdn-").tempdir().expect("CDN temp dir");
        let port = free_port();
        let conf = dir.path().join("nginx.conf");
        std::fs::create_dir(dir.path().join("tmp")).expect("nginx temp dir");
        std::fs::write(&conf, config(dir.path(), port, routes)).expect("write nginx.conf");
        let mut cmd = Command::new(testenv_bin("nginx"));
        cmd.arg("-p").arg(dir.path()).arg("-c").arg(&conf).args(["-e", "stderr"]);
        let mut process = ManagedProcess::spawn("nginx", cmd, &dir.path().join("nginx.log"));
        let url = format!("http://127.0.0.1:{port}/__cdn/health");
        wait_for("nginx to answer", Duration::from_secs(10), || {
            process.assert_running();
            let out = Command::new("curl").args(["-sf", "--max-time", "1", &url]).output().ok()?;
            out.status.success().then_some(())
        });
        Self { process, port, dir }
    }

    /// `http://127.0.0.1:PORT/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, path.trim_start_matches('/'))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The requests served so far, oldest first.
    pub fn requests(&self) -> Vec<CdnRequest> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let mut fields = line.split('\t');
                Some(CdnRequest {
                    uri: fields.next()?.to_string(),
                    status: fields.next()?.parse().ok()?,
                    cache: fields.next()?.to_string(),
                    seconds: fields.next()?.parse().ok()?,
                })
            })
            .filter(|r| !r.uri.starts_with("/__cdn/"))
            .collect()
    }

    /// nginx's own log (errors and warnings), for failure messages.
    pub fn log(&self) -> String {
        self.process.log_tail(8000)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id, to check that nothing of it stays behind.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Stops nginx (it finishes the requests in flight) and removes its directory.
    pub fn stop(mut self) {
        self.process.terminate(Duration::from_secs(5));
    }
}

/// The configuration. One process (`master_process off`): nothing of it can outlive the
/// test, since the kernel kills it with the test process, and a worker running as another
/// user would not be able to write the cache in the test's private directory.
fn config(dir: &Path, port: u16, routes: &CdnRoutes) -> String {
    let path = |name: &str| -> PathBuf { dir.join(name) };
    let playlists = routes.playlists.trim_end_matches('/');
    let media = routes.media.trim_end_matches('/');
    format!(
        r#"daemon off;
master_process off;
pid {pid};
error_log stderr warn;
events {{ worker_connections 512; }}
http {{
  log_format cdn '$request_uri\t$status\t$upstream_cache_status\t$request_time';
  access_log {access} cdn;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  proxy_cache_path {cache} levels=1:2 keys_zone=hls:10m max_size=2g inactive=10m use_temp_path=off;
  proxy_cache hls;
  # The key is the whole request URI with its query string: a blocking reload for the next
  # part is another object than the playlist without parameters.
  proxy_cache_key $request_uri;
  proxy_cache_lock on;
  proxy_cache_lock_timeout 15s;
  proxy_cache_lock_age 15s;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_read_timeout 30s;
  proxy_buffering on;
  add_header X-Cache-Status $upstream_cache_status always;
  server {{
    listen 127.0.0.1:{port};
    location = /__cdn/health {{ access_log off; return 200 "ok\n"; }}
    location ~ \.m3u8$ {{ proxy_pass {playlists}$uri$is_args$args; }}
    location ~ \.(m4s|mp4|ts|m4a|m4v|aac|cmfv|cmfa)$ {{ proxy_pass {media}$uri$is_args$args; }}
    location / {{ proxy_pass {playlists}$uri$is_args$args; }}
  }}
}}
"#,
        pid = path("nginx.pid").display(),
        access = path("access.log").display(),
        tmp = path("tmp").display(),
        cache = path("cache").display(),
    )
}
