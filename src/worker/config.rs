//! The worker's configuration file: what the controller mounts into the worker pod, and
//! what `livestream worker --config FILE` reads. Secrets are never in this file: it names
//! the environment variables (set from Secrets) that hold them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::{HlsSpec, LadderSpec};
use crate::ingest::listener::TlsFiles;
use crate::storage::S3Credentials;

/// Errors reading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid worker configuration: {source}")]
    Parse { path: PathBuf, source: serde_yaml::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("the environment variable {name} is not set (it should come from a Secret)")]
    MissingSecret { name: String },
    #[error("the environment variable {name} is empty")]
    EmptySecret { name: String },
}

/// One stream's worker.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerConfig {
    /// Which LiveStream this worker serves (for logs and metrics).
    pub stream: StreamIdentity,
    /// RTMP ingest.
    #[serde(default)]
    pub rtmp: RtmpConfig,
    /// SRT ingest beside RTMP, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srt: Option<SrtIngestConfig>,
    /// Health, metrics and the live status the controller reads.
    #[serde(default)]
    pub http: HttpConfig,
    /// The HLS origin: low-latency playlists with blocking reloads (fmp4 with
    /// `hls.lowLatency`), on a port of its own so that it can be exposed apart from `http`.
    #[serde(default)]
    pub origin: OriginConfig,
    /// The ABR ladder.
    #[serde(default)]
    pub ladder: LadderSpec,
    /// HLS packaging.
    #[serde(default)]
    pub hls: HlsSpec,
    /// Where segments and playlists go: `{s3: {...}}` or `{local: {...}}`.
    #[serde(with = "serde_yaml::with::singleton_map")]
    pub storage: StorageConfig,
    /// Scratch directory for ffmpeg's local segments.
    #[serde(default = "default_scratch_dir")]
    pub scratch_dir: PathBuf,
    /// The ffmpeg binary.
    #[serde(default = "default_ffmpeg")]
    pub ffmpeg: PathBuf,
    /// How long after an encoder disconnects a reconnect continues the same playlists
    /// before the stream is ended with ENDLIST.
    #[serde(default = "default_reconnect_grace")]
    pub reconnect_grace_seconds: u64,
}

/// The LiveStream a worker belongs to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamIdentity {
    pub namespace: String,
    pub name: String,
}

/// RTMP ingest settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RtmpConfig {
    /// Listen address.
    #[serde(default = "default_rtmp_listen")]
    pub listen: SocketAddr,
    /// Application name in the publish URL.
    #[serde(default = "default_app")]
    pub app: String,
    /// Environment variable holding the stream key (set from a Secret).
    #[serde(default = "default_stream_key_env")]
    pub stream_key_env: String,
    /// RTMPS beside plain RTMP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RtmpsConfig>,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        Self { listen: default_rtmp_listen(), app: default_app(), stream_key_env: default_stream_key_env(), tls: None }
    }
}

/// RTMPS: a TLS port with a certificate from PEM files (a mounted `kubernetes.io/tls`
/// Secret), read again when they change.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RtmpsConfig {
    #[serde(default = "default_rtmps_listen")]
    pub listen: SocketAddr,
    /// The certificate chain, PEM.
    pub certificate_file: PathBuf,
    /// The private key, PEM.
    pub private_key_file: PathBuf,
}

impl RtmpsConfig {
    /// The files of the certificate.
    pub fn files(&self) -> TlsFiles {
        TlsFiles { certificate: self.certificate_file.clone(), private_key: self.private_key_file.clone() }
    }
}

/// SRT ingest: a UDP port whose callers name `APP/KEY` in their stream ID, the
/// application and key being RTMP's.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SrtIngestConfig {
    #[serde(default = "default_srt_listen")]
    pub listen: SocketAddr,
    /// Receiver latency: how long packets are held to recover losses.
    #[serde(default = "default_srt_latency")]
    pub latency_milliseconds: u32,
    /// Environment variable holding the SRT passphrase (set from a Secret), for AES
    /// encryption; none without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_env: Option<String>,
}

impl Default for SrtIngestConfig {
    fn default() -> Self {
        Self { listen: default_srt_listen(), latency_milliseconds: default_srt_latency(), passphrase_env: None }
    }
}

fn default_srt_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9000))
}

fn default_srt_latency() -> u32 {
    // libsrt's and ffmpeg's default.
    120
}

/// The worker's HTTP endpoints.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_http_listen")]
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: default_http_listen() }
    }
}

/// The worker's HLS origin.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OriginConfig {
    #[serde(default = "default_origin_listen")]
    pub listen: SocketAddr,
    /// The URL at which viewers reach the stream's storage prefix (the CDN, or the bucket):
    /// media URIs of low-latency playlists point there, since the origin serves playlists
    /// only. Relative URIs when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_base_url: Option<String>,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self { listen: default_origin_listen(), media_base_url: None }
    }
}

fn default_origin_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8081))
}

/// Storage: S3-compatible or a local directory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum StorageConfig {
    S3(S3Config),
    Local(LocalConfig),
}

/// An S3 bucket and prefix.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix of this stream's objects, without leading or trailing slash.
    pub prefix: String,
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub force_path_style: bool,
    /// Environment variables holding the access key (set from a Secret).
    #[serde(default = "default_access_key_id_env")]
    pub access_key_id_env: String,
    #[serde(default = "default_secret_access_key_env")]
    pub secret_access_key_env: String,
}

/// A local directory and the prefix of this stream within it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalConfig {
    pub dir: PathBuf,
    pub prefix: String,
}

fn default_stream_key_env() -> String {
    "LIVESTREAM_STREAM_KEY".into()
}
fn default_access_key_id_env() -> String {
    "AWS_ACCESS_KEY_ID".into()
}
fn default_secret_access_key_env() -> String {
    "AWS_SECRET_ACCESS_KEY".into()
}
fn default_scratch_dir() -> PathBuf {
    std::env::temp_dir().join("livestream")
}
fn default_ffmpeg() -> PathBuf {
    PathBuf::from("ffmpeg")
}
fn default_reconnect_grace() -> u64 {
    10
}
fn default_rtmp_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 1935))
}
fn default_rtmps_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 1936))
}
fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}
fn default_app() -> String {
    "live".into()
}
fn default_region() -> String {
    "us-east-1".into()
}

impl WorkerConfig {
    /// Reads and checks a configuration file (YAML or JSON).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let config: Self =
            serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })?;
        config.check().map_err(|message| ConfigError::Invalid { path: path.into(), message })?;
        Ok(config)
    }

    /// Checks what the types cannot express.
    pub fn check(&self) -> Result<(), String> {
        if self.hls.segment_duration_seconds == 0 || self.ladder.keyframe_interval_seconds == 0 {
            return Err("segment duration and keyframe interval must be positive".into());
        }
        if !self.hls.segment_duration_seconds.is_multiple_of(self.ladder.keyframe_interval_seconds) {
            return Err("hls.segmentDurationSeconds must be a multiple of ladder.keyframeIntervalSeconds".into());
        }
        if let Some(srt) = &self.srt
            && !(20..=8000).contains(&srt.latency_milliseconds)
        {
            return Err("srt.latencyMilliseconds must be 20 to 8000".into());
        }
        if self.hls.window_segments < 3 {
            return Err("hls.windowSegments must be at least 3".into());
        }
        if self.hls.part_duration_milliseconds < 100
            || self.hls.part_duration_milliseconds * 2 > self.hls.segment_duration_seconds * 1000
        {
            return Err("hls.partDurationMilliseconds must be at least 100 and at most half the segment".into());
        }
        let prefix = match &self.storage {
            StorageConfig::S3(s3) => &s3.prefix,
            StorageConfig::Local(local) => &local.prefix,
        };
        if prefix.starts_with('/') || prefix.ends_with('/') || prefix.split('/').any(|p| p == ".." || p == ".") {
            return Err(format!("storage prefix {prefix:?} must be relative, without '.' or '..' segments"));
        }
        Ok(())
    }

    pub fn reconnect_grace(&self) -> Duration {
        Duration::from_secs(self.reconnect_grace_seconds)
    }
}

/// Reads a secret from the environment variable `name`.
pub fn read_secret_env(name: &str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Err(ConfigError::EmptySecret { name: name.into() }),
        Ok(value) => Ok(value.trim().to_string()),
        Err(_) => Err(ConfigError::MissingSecret { name: name.into() }),
    }
}

/// The storage credentials in the environment variables `access_key_id_env` and
/// `secret_access_key_env`: both set give a static key; neither gives the AWS provider
/// chain (which reads `AWS_ACCESS_KEY_ID` itself, then a web identity token, container
/// and instance credentials); one without the other is a mistake, named.
pub fn credentials_from_env(
    access_key_id_env: &str,
    secret_access_key_env: &str,
) -> Result<S3Credentials, ConfigError> {
    let set = |name: &str| std::env::var_os(name).is_some();
    match (set(access_key_id_env), set(secret_access_key_env)) {
        (false, false) => Ok(S3Credentials::ProviderChain),
        _ => Ok(S3Credentials::from_keys(read_secret_env(access_key_id_env)?, read_secret_env(secret_access_key_env)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
stream: {namespace: default, name: demo}
storage:
  s3: {bucket: live-video, prefix: default/demo}
"#;

    #[test]
    fn minimal_file_takes_defaults() {
        let config: WorkerConfig = serde_yaml::from_str(MINIMAL).unwrap();
        assert_eq!(config.rtmp.listen, "0.0.0.0:1935".parse().unwrap());
        assert_eq!(config.rtmp.app, "live");
        assert_eq!(config.http.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.hls.segment_duration_seconds, 2);
        assert_eq!(config.reconnect_grace(), Duration::from_secs(10));
        assert_eq!(config.srt, None, "SRT only when configured");
        assert!(config.check().is_ok());
    }

    #[test]
    fn srt_takes_defaults_and_checks_its_latency() {
        let mut config: WorkerConfig = serde_yaml::from_str(&format!("{MINIMAL}srt: {{}}\n")).unwrap();
        assert_eq!(config.srt, Some(SrtIngestConfig::default()));
        assert_eq!(config.srt.as_ref().map(|srt| srt.listen.port()), Some(9000));
        config.srt = Some(SrtIngestConfig { latency_milliseconds: 5, ..SrtIngestConfig::default() });
        assert!(config.check().unwrap_err().contains("latency"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = format!("{MINIMAL}\nsegmentSeconds: 4\n");
        let err = serde_yaml::from_str::<WorkerConfig>(&text).unwrap_err().to_string();
        assert!(err.contains("segmentSeconds"), "{err}");
    }

    #[test]
    fn misaligned_segments_are_refused() {
        let mut config: WorkerConfig = serde_yaml::from_str(MINIMAL).unwrap();
        config.hls.segment_duration_seconds = 3;
        config.ladder.keyframe_interval_seconds = 2;
        assert!(config.check().unwrap_err().contains("multiple"));
    }

    #[test]
    fn missing_and_empty_secrets_are_named_without_their_value() {
        let err = read_secret_env("LIVESTREAM_TEST_SECRET_THAT_IS_NOT_SET").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the environment variable LIVESTREAM_TEST_SECRET_THAT_IS_NOT_SET is not set (it should come from a Secret)"
        );
    }
}
