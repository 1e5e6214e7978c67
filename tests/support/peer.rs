//! The latency benchmark's reference server: `benches/peer` (gortmplib's RTMP server and
//! gohlslib's LL-HLS muxer with MediaMTX's defaults), built by `scripts/bench` into the
//! test environment's bin directory, run on free loopback ports.

use std::process::Command;
use std::time::Duration;

use super::process::{ManagedProcess, free_port, testenv_bin, wait_for};

pub struct Peer {
    pub process: ManagedProcess,
    pub rtmp_port: u16,
    pub http_port: u16,
    _dir: tempfile::TempDir,
}

impl Peer {
    /// Starts the peer with its defaults (LL-HLS, 1 s segments, 200 ms parts, 7 segments)
    /// and any `extra` flags, and waits until it accepts connections.
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::Builder::new().prefix("ll-hls-peer-").tempdir().expect("peer temp dir");
        let (rtmp_port, http_port) = (free_port(), free_port());
        let mut cmd = Command::new(testenv_bin("ll-hls-peer"));
        cmd.arg(format!("-rtmp=127.0.0.1:{rtmp_port}")).arg(format!("-http=127.0.0.1:{http_port}")).args(extra);
        let mut process = ManagedProcess::spawn("ll-hls-peer", cmd, &dir.path().join("peer.log"));
        wait_for("the peer to listen", Duration::from_secs(10), || {
            process.assert_running();
            std::net::TcpStream::connect(("127.0.0.1", http_port)).ok().map(|_| ())
        });
        Self { process, rtmp_port, http_port, _dir: dir }
    }

    pub fn rtmp_url(&self, app: &str, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}/{name}", self.rtmp_port)
    }

    /// The multivariant playlist of the stream published as `app/name`.
    pub fn playlist_url(&self, app: &str, name: &str) -> String {
        format!("http://127.0.0.1:{}/{app}/{name}/index.m3u8", self.http_port)
    }

    pub fn log(&self) -> String {
        self.process.log_tail(8000)
    }
}
