//! A running `livestream gateway` with a routes file that the test writes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use livestream::gateway::routes::{Route, RouteTable};
use livestream::ingest::session::StreamKey;

use super::media::{http_get, livestream_bin};
use super::process::{ManagedProcess, free_port, wait_for};

/// A gateway on free ports, routing by the table in its routes file.
pub struct Gateway {
    pub process: ManagedProcess,
    pub rtmp_port: u16,
    pub http_port: u16,
    routes_file: PathBuf,
    table: RouteTable,
}

impl Gateway {
    /// Starts the gateway with no routes (and `extra` arguments) and waits until it is ready.
    pub fn start(dir: &Path, extra: &[String]) -> Self {
        let table = RouteTable::new();
        let routes_file = dir.join("routes.json");
        std::fs::write(&routes_file, serde_json::to_vec(&table).unwrap()).unwrap();
        let (rtmp_port, http_port) = (free_port(), free_port());
        let mut command = Command::new(livestream_bin());
        command
            .arg("gateway")
            .arg(format!("--rtmp-addr=127.0.0.1:{rtmp_port}"))
            .arg(format!("--http-addr=127.0.0.1:{http_port}"))
            .arg(format!("--routes-file={}", routes_file.display()))
            .args(extra)
            .env("RUST_LOG", "info");
        let mut process = ManagedProcess::spawn("livestream gateway", command, &dir.join("gateway.log"));
        let ready = format!("http://127.0.0.1:{http_port}/readyz");
        wait_for("the gateway to become ready", Duration::from_secs(20), || {
            process.assert_running();
            (http_get(&ready).0 == 200).then_some(())
        });
        Self { process, rtmp_port, http_port, routes_file, table }
    }

    /// Routes publishes to `app` with `key` to the RTMP server at `address`, and waits
    /// until the gateway has read the new table.
    pub fn route(&mut self, stream: &str, app: &str, key: &str, address: SocketAddr) {
        let key_digest = self.table.digest(&StreamKey::new(key));
        self.table.routes.retain(|route| route.stream != stream);
        self.table.routes.push(Route { stream: stream.into(), app: app.into(), key_digest, address });
        let reads = self.log().matches("routes changed").count();
        std::fs::write(&self.routes_file, serde_json::to_vec(&self.table).unwrap()).unwrap();
        wait_for("the gateway to read its routes", Duration::from_secs(10), || {
            (self.log().matches("routes changed").count() > reads).then_some(())
        });
        assert_eq!(self.metric("gateway_routes"), Some(self.table.routes.len() as f64));
    }

    pub fn rtmp_url(&self, app: &str, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}/{key}", self.rtmp_port)
    }

    pub fn log(&self) -> String {
        self.process.log_tail(20_000)
    }

    /// The sum of every series of metric `name` (a counter family, or a gauge).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, _, _, metrics) = http_get(&format!("http://127.0.0.1:{}/metrics", self.http_port));
        let values: Vec<f64> = String::from_utf8_lossy(&metrics)
            .lines()
            .filter(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// The value of the series of metric `name` whose labels hold `label`.
    pub fn labelled(&self, name: &str, label: &str) -> f64 {
        let (_, _, _, metrics) = http_get(&format!("http://127.0.0.1:{}/metrics", self.http_port));
        String::from_utf8_lossy(&metrics)
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }
}
