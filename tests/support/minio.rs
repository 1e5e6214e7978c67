//! A MinIO server for one test, on loopback ports, with its data in a temporary directory:
//! started from the binary that `scripts/testenv.sh` installs, stoppable and restartable on
//! the same data and port to simulate outages, and killed and removed when dropped.
//! Optionally its STS trusts an OpenID Connect provider (such as the test API server's
//! service account token issuer): AssumeRoleWithWebIdentity exchanges the provider's tokens
//! for temporary credentials under one role, whose IAM policy [`MinioServer::create_policy`]
//! defines.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign};
use base64::Engine as _;
use livestream::storage::{S3Credentials, S3Settings, S3Store};
use sha1::Digest as _;
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
    openid: Option<OpenIdProvider>,
}

/// An OpenID Connect provider that MinIO's STS trusts, and the one role its tokens assume.
#[derive(Clone, Debug)]
pub struct OpenIdProvider {
    /// The provider's discovery document (`.../.well-known/openid-configuration`). MinIO
    /// reads it once at start for the `jwks_uri`, and the keys there whenever a token names
    /// a key it does not know. It checks a token's signature, its times (`exp`, `nbf`,
    /// `iat`) and `aud` (or `azp`), and requires a `sub`; it does not compare `iss` with
    /// the provider.
    pub discovery_url: String,
    /// The CA of the provider's HTTPS certificate (PEM), trusted by MinIO in addition to
    /// the system's.
    pub ca_cert: Option<PathBuf>,
    /// The audience that tokens must name in `aud` (MinIO's OpenID client ID).
    pub audience: String,
    /// The IAM policy (or comma-separated policies) of the role: every valid token gets
    /// credentials under it. It may be defined after the start, with
    /// [`MinioServer::create_policy`]; an exchange fails until it is.
    pub role_policy: String,
}

impl MinioServer {
    /// Starts MinIO on free loopback ports and waits until it serves requests.
    pub async fn start() -> Self {
        Self::start_on(Ipv4Addr::LOCALHOST).await
    }

    /// Starts MinIO on `host` (a cluster node's address, which its pods reach) and free
    /// ports, and waits until it serves requests.
    pub async fn start_on(host: Ipv4Addr) -> Self {
        Self::start_with(host, None).await
    }

    /// Starts MinIO on `host` and free ports with an STS that trusts `provider`, and waits
    /// until the provider's keys are loaded (MinIO retries until it can read the
    /// discovery document, and reports itself unready meanwhile).
    pub async fn start_with_openid(host: Ipv4Addr, provider: OpenIdProvider) -> Self {
        Self::start_with(host, Some(provider)).await
    }

    async fn start_with(host: Ipv4Addr, openid: Option<OpenIdProvider>) -> Self {
        let binary = testenv_bin("minio");
        let dir = tempfile::Builder::new().prefix("minio-").tempdir().expect("create a MinIO directory");
        std::fs::create_dir_all(dir.path().join("data")).expect("create the MinIO data directory");
        std::fs::create_dir_all(dir.path().join("certs/CAs")).expect("create the MinIO certs directory");
        if let Some(ca_cert) = openid.as_ref().and_then(|provider| provider.ca_cert.as_ref()) {
            std::fs::copy(ca_cert, dir.path().join("certs/CAs/openid-provider.crt"))
                .unwrap_or_else(|e| panic!("copy the OpenID provider's CA {}: {e}", ca_cert.display()));
        }
        let mut server = Self {
            process: None,
            binary,
            dir,
            host,
            api_port: free_port(),
            console_port: free_port(),
            access_key: "livestream-test".to_string(),
            secret_key: format!("secret-{:016x}", rand::random::<u64>()),
            openid,
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

    /// The STS endpoint (AssumeRoleWithWebIdentity): MinIO serves it at its S3 address, as
    /// `AWS_ENDPOINT_URL_STS` names it to the AWS SDKs.
    pub fn sts_endpoint(&self) -> String {
        self.endpoint()
    }

    /// The role that the OpenID provider's tokens assume. MinIO names it after the client
    /// ID: `arn:minio:iam:REGION::role/` and the unpadded base64url SHA-1 of the audience,
    /// with an empty region as no region is configured here.
    pub fn role_arn(&self) -> String {
        let provider = self.openid.as_ref().expect("MinIO was started without an OpenID provider");
        let digest = sha1::Sha1::digest(provider.audience.as_bytes());
        format!("arn:minio:iam:::role/{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest))
    }

    /// Defines (or replaces) the IAM policy `name`, with MinIO's admin API as
    /// `mc admin policy create` does.
    pub async fn create_policy(&self, name: &str, document: &serde_json::Value) {
        let url = format!("{}/minio/admin/v3/add-canned-policy?name={name}", self.endpoint());
        let body = serde_json::to_vec(document).expect("serialize the policy");
        let credentials =
            aws_credential_types::Credentials::new(&self.access_key, &self.secret_key, None, None, "minio-root");
        let identity = credentials.into();
        // The admin API checks the payload's hash, which only travels in x-amz-content-sha256.
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .expect("signing parameters")
            .into();
        let signable = SignableRequest::new("PUT", &url, std::iter::empty(), SignableBody::Bytes(&body))
            .expect("a signable request");
        let (instructions, _) = sign(signable, &params).expect("sign the request").into_parts();
        let mut request = reqwest::Client::new().put(&url).timeout(Duration::from_secs(10)).body(body);
        for (header, value) in instructions.headers() {
            request = request.header(header, value);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("create the policy {name}: {e}"));
        let status = response.status();
        assert!(
            status.is_success(),
            "MinIO refused the policy {name}: {status} {}",
            response.text().await.unwrap_or_default()
        );
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
        command.arg("server").arg("--quiet");
        // `--anonymous` hides names in the log, and with them why a provider cannot be loaded.
        if self.openid.is_none() {
            command.arg("--anonymous");
        }
        command
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
        if let Some(provider) = &self.openid {
            command
                .env("MINIO_IDENTITY_OPENID_CONFIG_URL", &provider.discovery_url)
                .env("MINIO_IDENTITY_OPENID_CLIENT_ID", &provider.audience)
                .env("MINIO_IDENTITY_OPENID_ROLE_POLICY", &provider.role_policy);
        }
        self.process = Some(ManagedProcess::spawn("minio", command, &self.log_path()));
        self.wait_until_live().await;
    }

    /// Polls a health endpoint: there is no event to await for a server coming up. MinIO
    /// answers `/minio/health/live` before its storage layer is ready, marking the answer
    /// with `x-minio-server-status: offline` until then; with an OpenID provider, it waits
    /// for `/minio/health/cluster`, which answers 503 (`iam-offline`) until the IAM
    /// subsystem, and with it the provider's keys, is loaded.
    async fn wait_until_live(&mut self) {
        let (path, what) = match self.openid {
            None => ("/minio/health/live", "live"),
            Some(_) => ("/minio/health/cluster", "ready with its OpenID provider"),
        };
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(process) = self.process.as_mut() {
                process.assert_running();
            }
            if let Some(head) = http_head_of(self.host, self.api_port, path).await
                && head.starts_with("HTTP/1.1 200")
                && !head.to_ascii_lowercase().contains("x-minio-server-status: offline")
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "MinIO did not become {what} within {START_TIMEOUT:?}; its log ends with:\n{}",
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
