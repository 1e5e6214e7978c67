//! A MinIO server for one test, on loopback ports, with its data in a temporary directory:
//! started from the binary that `scripts/testenv.sh` installs, stoppable and restartable on
//! the same data and port to simulate outages, and killed and removed when dropped.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use livestream::storage::{S3Credentials, S3Settings, S3Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::process::{ManagedProcess, free_port, testenv_bin};

/// How long MinIO may take to answer its health check after starting.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running (or stopped) MinIO server owned by a test.
pub struct MinioServer {
    process: Option<ManagedProcess>,
    binary: PathBuf,
    dir: tempfile::TempDir,
    host: Ipv4Addr,
    api_port: u16,
    console_port: u16,
    access_key: String,
    secret_key: String,
}

impl MinioServer {
    /// Starts MinIO on free loopback ports and waits until it serves requests.
    pub async fn start() -> Self {
        Self::start_on(Ipv4Addr::LOCALHOST).await
    }

    /// Starts MinIO on `host` (a cluster node's address, which its pods reach) and free
    /// ports, and waits until it serves requests.
    pub async fn start_on(host: Ipv4Addr) -> Self {
        let binary = testenv_bin("minio");
        let dir = tempfile::Builder::new().prefix("minio-").tempdir().expect("create a MinIO directory");
        std::fs::create_dir_all(dir.path().join("data")).expect("create the MinIO data directory");
        std::fs::create_dir_all(dir.path().join("certs")).expect("create the MinIO certs directory");
        let mut server = Self {
            process: None,
            binary,
            dir,
            host,
            api_port: free_port(),
            console_port: free_port(),
            access_key: "livestream-test".to_string(),
            secret_key: format!("secret-{:016x}", rand::random::<u64>()),
        };
        server.spawn_and_wait().await;
        server
    }

    /// `http://HOST:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.host, self.api_port)
    }

    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// Settings for `bucket` on this server with its root credentials.
    pub fn settings(&self, bucket: &str) -> S3Settings {
        S3Settings::new(bucket, "us-east-1", S3Credentials::from_keys(&self.access_key, &self.secret_key))
            .with_endpoint(self.endpoint(), true)
    }

    /// A store for `bucket` on this server with its root credentials.
    pub fn store(&self, bucket: &str) -> S3Store {
        S3Store::new(self.settings(bucket))
    }

    /// Creates `bucket`; with `public_read`, anyone may GET its objects without
    /// credentials, as a CDN origin.
    pub async fn create_bucket(&self, bucket: &str, public_read: bool) {
        let store = self.store(bucket);
        store
            .client()
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
        if public_read {
            let policy = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":["*"]}},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::{bucket}/*"]}}]}}"#
            );
            store.client().put_bucket_policy().bucket(bucket).policy(policy).send().await.unwrap_or_else(|e| {
                panic!("set the public-read policy of {bucket}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))
            });
        }
    }

    /// Kills the server, as an outage would; its data stays.
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Starts the server again on the same data and port, and waits until it serves.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn_and_wait().await;
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read(self.log_path()).unwrap_or_default();
        String::from_utf8_lossy(&log[log.len().saturating_sub(4000)..]).into_owned()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("minio.log")
    }

    async fn spawn_and_wait(&mut self) {
        let mut command = Command::new(&self.binary);
        command
            .arg("server")
            .arg("--quiet")
            .arg("--anonymous")
            .arg("--address")
            .arg(format!("{}:{}", self.host, self.api_port))
            .arg("--console-address")
            .arg(format!("{}:{}", self.host, self.console_port))
            .arg("--certs-dir")
            .arg(self.dir.path().join("certs"))
            .arg(self.dir.path().join("data"))
            .env("MINIO_ROOT_USER", &self.access_key)
            .env("MINIO_ROOT_PASSWORD", &self.secret_key)
            .env("MINIO_BROWSER", "off")
            .env("MINIO_UPDATE", "off")
            .env("MINIO_CALLHOME_ENABLE", "off")
            // Accepts a data directory on tmpfs or on the root disk.
            .env("MINIO_CI_CD", "1");
        self.process = Some(ManagedProcess::spawn("minio", command, &self.log_path()));
        self.wait_until_live().await;
    }

    /// Polls the liveness endpoint: there is no event to await for a server coming up.
    /// MinIO answers it before its storage layer is ready, marking the answer with
    /// `x-minio-server-status: offline` until then.
    async fn wait_until_live(&mut self) {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(process) = self.process.as_mut() {
                process.assert_running();
            }
            if let Some(head) = http_head_of(self.host, self.api_port, "/minio/health/live").await
                && head.starts_with("HTTP/1.1 200")
                && !head.to_ascii_lowercase().contains("x-minio-server-status: offline")
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "MinIO did not become live within {START_TIMEOUT:?}; its log ends with:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The status line and headers of a GET to `path` on 127.0.0.1:`port`, if it answers.
async fn http_head_of(host: Ipv4Addr, port: u16, path: &str) -> Option<String> {
    let exchange = async {
        let mut stream = TcpStream::connect((host, port)).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response).into_owned();
        Some(text.split("\r\n\r\n").next().unwrap_or_default().to_string())
    };
    tokio::time::timeout(Duration::from_secs(2), exchange).await.ok().flatten()
}
