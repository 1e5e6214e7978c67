//! Pure builders of a LiveStream's child objects. Every child carries the common labels and
//! a controller owner reference to its LiveStream; none carries a secret value except the
//! generated stream-key Secret itself.

mod config_map;
mod deployment;
mod names;
mod secret;
mod service;

pub use config_map::{CONFIG_FILE_KEY, config_checksum, config_map, worker_config, worker_config_yaml};
pub use deployment::{
    CONFIG_CHECKSUM_ANNOTATION, CONFIG_MOUNT_DIR, HTTP_PORT, ORIGIN_PORT, RTMP_PORT, STREAM_KEY_ENV, deployment,
};
pub use names::*;
pub use secret::{GENERATED_STREAM_KEY_KEY, generate_stream_key, stream_key_secret};
pub use service::{ingest_service, origin_service};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};

use super::OperatorConfig;
use super::validate::Resolved;
use crate::api::LiveStream;

/// Errors building children.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the LiveStream has no {0}")]
    MissingMetadata(&'static str),
    #[error("cannot render the worker configuration: {0}")]
    RenderConfig(#[from] serde_yaml::Error),
}

/// The children applied on every reconcile (the generated Secret is created once, apart).
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    pub config_map: ConfigMap,
    pub deployment: Deployment,
    pub ingest_service: Service,
    pub origin_service: Service,
}

/// Builds every applied child of `stream`.
pub fn build(stream: &LiveStream, config: &OperatorConfig, resolved: &Resolved) -> Result<Children, BuildError> {
    let yaml = worker_config_yaml(stream)?;
    let checksum = config_checksum(&yaml);
    Ok(Children {
        config_map: config_map(stream, yaml)?,
        deployment: deployment(stream, config, resolved, &checksum)?,
        ingest_service: ingest_service(stream, config)?,
        origin_service: origin_service(stream)?,
    })
}

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::api::{LiveStream, LiveStreamSpec, StorageSpec};

    /// A minimal LiveStream as the API server would return it (defaults applied, uid set).
    pub fn stream(namespace: &str, name: &str) -> LiveStream {
        let spec: LiveStreamSpec = serde_json::from_value(serde_json::json!({
            "storage": {"bucket": "live-video"}
        }))
        .unwrap();
        let mut stream = LiveStream::new(name, spec);
        stream.metadata.namespace = Some(namespace.into());
        stream.metadata.uid = Some("0b7e6a8c-1111-2222-3333-444455556666".into());
        stream.metadata.generation = Some(1);
        stream
    }

    pub fn storage(stream: &mut LiveStream) -> &mut StorageSpec {
        &mut stream.spec.storage
    }
}
