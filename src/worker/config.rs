//! The worker's configuration file: what the controller mounts into the worker pod, and
//! what `livestream worker --config FILE` reads. Secrets are never in this file: it names
//! the files (mounted from Secrets) that hold them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::{HlsSpec, LadderSpec};

/// Errors reading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid worker configuration: {source}")]
    Parse { path: PathBuf, source: serde_yaml::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot read the secret file {path}: {source}")]
    Secret { path: PathBuf, source: std::io::Error },
    #[error("the secret file {path} is empty")]
    EmptySecret { path: PathBuf },
}

/// One stream's worker.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerConfig {
    /// Which LiveStream this worker serves (for logs and metrics).
    pub stream: StreamIdentity,
    /// RTMP ingest.
    pub rtmp: RtmpConfig,
    /// Health, metrics and the live status the controller reads.
    #[serde(default)]
    pub http: HttpConfig,
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
    /// File holding the stream key (mounted from a Secret).
    pub stream_key_file: PathBuf,
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
    /// Files holding the access key (mounted from a Secret). Without them the worker
    /// reads `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` from its environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_file: Option<PathBuf>,
}

/// A local directory and the prefix of this stream within it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalConfig {
    pub dir: PathBuf,
    pub prefix: String,
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
        if self.hls.window_segments < 3 {
            return Err("hls.windowSegments must be at least 3".into());
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

/// Reads a secret from a mounted file, trimming one trailing newline.
pub fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Secret { path: path.into(), source })?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        return Err(ConfigError::EmptySecret { path: path.into() });
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
stream: {namespace: default, name: demo}
rtmp: {streamKeyFile: /var/run/livestream/stream-key}
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
        assert!(config.check().is_ok());
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
    fn secret_files_are_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "s3cr3t\n").unwrap();
        assert_eq!(read_secret_file(&key).unwrap(), "s3cr3t");
        std::fs::write(&key, "\n").unwrap();
        assert!(matches!(read_secret_file(&key), Err(ConfigError::EmptySecret { .. })));
    }
}
