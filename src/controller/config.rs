//! The operator's own settings, shared by every reconcile.

use std::time::Duration;

use crate::api::ServiceType;
use crate::backoff::Backoff;

/// Settings that apply to every LiveStream the operator manages.
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorConfig {
    /// The worker image used when `spec.worker.image` is not set.
    pub worker_image: String,
    /// The non-root user and group the worker runs as.
    pub worker_uid: i64,
    /// How often a running worker's `/status` is read.
    pub live_poll_interval: Duration,
    /// How long one read of a worker's `/status` may take.
    pub worker_status_timeout: Duration,
    /// How often a stream without a running worker is reconciled anyway.
    pub idle_resync: Duration,
    /// How long a delete may wait for storage cleanup before giving up on it.
    pub cleanup_timeout: Duration,
    /// Retry delays after an error or an invalid spec.
    pub error_backoff: Backoff,
    /// The ServiceAccount of workers whose LiveStream names none (`None`: the namespace's
    /// `default`).
    pub worker_service_account: Option<String>,
    /// The ingest gateway that routes every stream's encoders, when one runs.
    pub gateway: Option<GatewaySettings>,
}

/// The ingest gateway beside the operator: where encoders reach it, and the Secret in
/// which the operator keeps its routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewaySettings {
    /// `rtmp://HOST:PORT`, as encoders reach the gateway.
    pub url: String,
    /// `rtmps://HOST:PORT`, when the gateway serves RTMPS.
    pub secure_url: Option<String>,
    /// Namespace of the routes Secret (the operator's own).
    pub routes_namespace: String,
    /// Name of the routes Secret.
    pub routes_secret: String,
}

impl OperatorConfig {
    /// The type of a stream's ingest Service when its spec names none: ClusterIP behind
    /// the gateway, else LoadBalancer.
    pub fn default_ingest_service_type(&self) -> ServiceType {
        if self.gateway.is_some() { ServiceType::ClusterIP } else { ServiceType::LoadBalancer }
    }
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            worker_image: "ghcr.io/livestream-operator/livestream:latest".into(),
            worker_uid: 65532,
            live_poll_interval: Duration::from_secs(3),
            worker_status_timeout: Duration::from_secs(2),
            idle_resync: Duration::from_secs(300),
            cleanup_timeout: Duration::from_secs(30),
            error_backoff: Backoff::new(Duration::from_secs(2), Duration::from_secs(300)),
            worker_service_account: None,
            gateway: None,
        }
    }
}
