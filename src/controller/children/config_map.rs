//! The worker's configuration file and the ConfigMap that carries it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use super::BuildError;
use super::deployment::{RTMPS_PORT, SRT_PORT, TLS_MOUNT_DIR};
use super::names::{Component, child_metadata, storage_prefix, worker_name};
use crate::api::LiveStream;
use crate::controller::status::urls::media_base_url;
use crate::controller::validate::{TLS_CERTIFICATE_KEY, TLS_PRIVATE_KEY_KEY};
use crate::worker::config::{
    HttpConfig, OriginConfig, RtmpConfig, RtmpsConfig, S3Config, SrtIngestConfig, StorageConfig, StreamIdentity,
    WorkerConfig,
};

/// The ConfigMap key (and file name) of the worker configuration.
pub const CONFIG_FILE_KEY: &str = "worker.yaml";

/// The worker configuration of `stream`. It names the environment variables that hold
/// secrets, never their values.
pub fn worker_config(stream: &LiveStream) -> Result<WorkerConfig, BuildError> {
    let namespace = stream.namespace().ok_or(BuildError::MissingMetadata("namespace"))?;
    let storage = &stream.spec.storage;
    Ok(WorkerConfig {
        stream: StreamIdentity { namespace, name: stream.name_any() },
        rtmp: RtmpConfig {
            app: stream.spec.ingest.app.clone(),
            tls: stream.spec.ingest.tls.as_ref().map(|_| RtmpsConfig {
                listen: SocketAddr::from(([0, 0, 0, 0], RTMPS_PORT as u16)),
                certificate_file: Path::new(TLS_MOUNT_DIR).join(TLS_CERTIFICATE_KEY),
                private_key_file: Path::new(TLS_MOUNT_DIR).join(TLS_PRIVATE_KEY_KEY),
            }),
            ..RtmpConfig::default()
        },
        srt: stream.spec.ingest.srt.as_ref().map(|srt| SrtIngestConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], SRT_PORT as u16)),
            latency_milliseconds: srt.latency_milliseconds,
            passphrase_env: None,
        }),
        http: HttpConfig::default(),
        origin: OriginConfig { media_base_url: Some(media_base_url(stream)), ..OriginConfig::default() },
        ladder: stream.spec.ladder.clone(),
        hls: stream.spec.hls.clone(),
        storage: StorageConfig::S3(S3Config {
            bucket: storage.bucket.clone(),
            prefix: storage_prefix(stream),
            region: storage.region.clone(),
            endpoint: storage.endpoint.clone(),
            force_path_style: storage.force_path_style,
            access_key_id_env: "AWS_ACCESS_KEY_ID".into(),
            secret_access_key_env: "AWS_SECRET_ACCESS_KEY".into(),
        }),
        scratch_dir: PathBuf::from("/tmp/livestream"),
        ffmpeg: PathBuf::from("ffmpeg"),
        reconnect_grace_seconds: 10,
    })
}

/// The worker configuration as YAML, byte-stable for equal specs.
pub fn worker_config_yaml(stream: &LiveStream) -> Result<String, BuildError> {
    Ok(serde_yaml::to_string(&worker_config(stream)?)?)
}

/// Hex SHA-256 of the rendered configuration, put on the pod template so that a change
/// rolls the worker.
pub fn config_checksum(yaml: &str) -> String {
    Sha256::digest(yaml.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The ConfigMap holding the rendered configuration under [`CONFIG_FILE_KEY`].
pub fn config_map(stream: &LiveStream, yaml: String) -> Result<ConfigMap, BuildError> {
    Ok(ConfigMap {
        metadata: child_metadata(stream, worker_name(&stream.name_any()), Component::Worker)?,
        data: Some(BTreeMap::from([(CONFIG_FILE_KEY.to_string(), yaml)])),
        ..ConfigMap::default()
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    fn rendered_config_round_trips_and_checks() {
        let mut stream = fixtures::stream("media", "demo");
        fixtures::storage(&mut stream).endpoint = Some("http://minio:9000".into());
        fixtures::storage(&mut stream).force_path_style = true;
        let yaml = worker_config_yaml(&stream).unwrap();
        let parsed: WorkerConfig = serde_yaml::from_str(&yaml).unwrap();
        assert!(parsed.check().is_ok());
        assert_eq!(parsed.stream, StreamIdentity { namespace: "media".into(), name: "demo".into() });
        let StorageConfig::S3(s3) = parsed.storage else { panic!("not s3") };
        assert_eq!(s3.bucket, "live-video");
        assert_eq!(s3.prefix, "media/demo");
        assert_eq!(s3.endpoint.as_deref(), Some("http://minio:9000"));
        assert!(s3.force_path_style);
        assert_eq!(s3.access_key_id_env, "AWS_ACCESS_KEY_ID");
        assert_eq!(parsed.rtmp.tls, None, "no RTMPS without a TLS Secret");

        stream.spec.ingest.tls =
            Some(crate::api::IngestTlsSpec { secret_name: "ingest-tls".into(), port: 443, node_port: None });
        let parsed: WorkerConfig = serde_yaml::from_str(&worker_config_yaml(&stream).unwrap()).unwrap();
        let tls = parsed.rtmp.tls.expect("RTMPS configured");
        assert_eq!(tls.listen.port(), 1936, "the worker's own port; the Service maps 443 to it");
        assert_eq!(tls.certificate_file, Path::new("/etc/livestream-tls/tls.crt"));
        assert_eq!(tls.private_key_file, Path::new("/etc/livestream-tls/tls.key"));
        assert_eq!(parsed.srt, None, "no SRT unless asked for");

        stream.spec.ingest.srt =
            Some(crate::api::IngestSrtSpec { port: 7001, node_port: None, latency_milliseconds: 400 });
        let parsed: WorkerConfig = serde_yaml::from_str(&worker_config_yaml(&stream).unwrap()).unwrap();
        let srt = parsed.srt.expect("SRT configured");
        assert_eq!((srt.listen.port(), srt.latency_milliseconds), (9000, 400), "the worker's own port");
    }

    #[test]
    fn checksum_follows_the_ladder() {
        let mut stream = fixtures::stream("media", "demo");
        let before = config_checksum(&worker_config_yaml(&stream).unwrap());
        assert_eq!(before, config_checksum(&worker_config_yaml(&stream).unwrap()), "stable");
        assert_eq!(before.len(), 64);
        stream.spec.ladder.keyframe_interval_seconds = 1;
        assert_ne!(before, config_checksum(&worker_config_yaml(&stream).unwrap()));
    }

    #[test]
    fn config_map_holds_the_file() {
        let stream = fixtures::stream("media", "demo");
        let yaml = worker_config_yaml(&stream).unwrap();
        let cm = config_map(&stream, yaml.clone()).unwrap();
        assert_eq!(cm.metadata.name.as_deref(), Some("demo-worker"));
        assert_eq!(cm.data.unwrap()[CONFIG_FILE_KEY], yaml);
    }
}
