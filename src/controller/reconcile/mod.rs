//! One reconcile of one LiveStream, in named stages, each a submodule:
//!
//! `dereference` (read and check the Secrets it names) -> build (the pure builders of
//! [`crate::controller::children`]) -> `apply_children` (server-side apply of what
//! changed) -> `observe` (its worker pod and the worker's `/status`) -> `update_status`
//! (the typed status by server-side apply, and the events of its transitions).
//!
//! On delete, the finalizer cleans its storage up within a bounded time.

mod apply_children;
mod dereference;
mod observe;
mod update_status;

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::finalizer::{Error as FinalizerError, Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use tracing::{debug, warn};

pub use update_status::StatusWrites;

use super::backoff::FailureCounts;
use super::cache::{Cached, until_ready};
use super::children::{self, BuildError, FINALIZER, ingest_service_name, origin_service_name, worker_name};
use super::cleanup::{CleanupOutcome, PrefixCleaner, StorageTarget, clean_up};
use super::events::{Notice, publish};
use super::gateway_routes::{GatewayRoutes, KeyInUse};
use super::probe::WorkerStatusClient;
use super::status::{Observed, WorkerObservation, compute};
use super::validate::{Invalid, Resolved};
use super::{Metrics, OperatorConfig};
use crate::api::{LiveStream, Retention};

/// Caches of the children the operator manages (and of the worker pods), kept by the
/// watches that also trigger the reconciles.
#[derive(Clone)]
pub struct Stores {
    pub config_maps: Store<Cached<ConfigMap>>,
    pub deployments: Store<Cached<Deployment>>,
    pub services: Store<Cached<Service>>,
    pub pods: Store<Cached<Pod>>,
}

impl Stores {
    /// Resolves once every cache holds its first complete list (at once after that), or
    /// when a watch ended for good.
    pub async fn ready(&self) {
        futures::join!(
            until_ready(&self.config_maps),
            until_ready(&self.deployments),
            until_ready(&self.services),
            until_ready(&self.pods),
        );
    }
}

/// How long a reconcile waits for the gateway's routes to be written before it reports
/// the stream's status.
const ROUTES_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    pub cleaner: Arc<dyn PrefixCleaner>,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub stores: Stores,
    pub failures: FailureCounts,
    pub status_writes: StatusWrites,
    /// Reads the workers' `/status`.
    pub worker_status: WorkerStatusClient,
    /// The ingest gateway's routes, when the operator runs one.
    pub gateway_routes: Option<Arc<GatewayRoutes>>,
}

/// Why a reconcile failed, naming the object it failed on; retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading Secret {name}: {source}")]
    ReadSecret { name: String, source: kube::Error },
    #[error("cannot build children: {0}")]
    Build(#[from] BuildError),
    #[error("applying {kind} {name}: {source}")]
    ApplyChild { kind: String, name: String, source: kube::Error },
    #[error("writing the status: {source}")]
    WriteStatus { source: kube::Error },
    #[error("storage cleanup failed: {0}")]
    Cleanup(String),
    #[error("the LiveStream has no namespace")]
    NoNamespace,
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<FinalizerError<ReconcileError>>),
}

impl ReconcileError {
    /// Every label of [`Self::metric_reason`].
    pub const METRIC_REASONS: [&str; 7] =
        ["ReadSecret", "Build", "ApplyChild", "WriteStatus", "StorageCleanup", "NoNamespace", "Finalizer"];

    /// A short label for metrics.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            ReconcileError::ReadSecret { .. } => "ReadSecret",
            ReconcileError::Build(_) => "Build",
            ReconcileError::ApplyChild { .. } => "ApplyChild",
            ReconcileError::WriteStatus { .. } => "WriteStatus",
            ReconcileError::Cleanup(_) => "StorageCleanup",
            ReconcileError::NoNamespace => "NoNamespace",
            ReconcileError::Finalizer(inner) => match inner.as_ref() {
                FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e.metric_reason(),
                _ => "Finalizer",
            },
        }
    }

    fn is_cleanup(&self) -> bool {
        match self {
            ReconcileError::Cleanup(_) => true,
            ReconcileError::Finalizer(inner) => {
                matches!(inner.as_ref(), FinalizerError::CleanupFailed(e) if e.is_cleanup())
            }
            _ => false,
        }
    }
}

fn stream_key(stream: &LiveStream) -> String {
    format!("{}/{}", stream.namespace().unwrap_or_default(), stream.name_any())
}

/// Reconciles one LiveStream.
pub async fn reconcile(stream: Arc<LiveStream>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let namespace = stream.namespace().ok_or(ReconcileError::NoNamespace)?;
    let api: Api<LiveStream> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, stream, |event| {
        let ctx = ctx.clone();
        async move {
            match event {
                FinalizerEvent::Apply(stream) => apply_stream(&stream, &ctx).await,
                FinalizerEvent::Cleanup(stream) => cleanup_stream(&stream, &ctx).await,
            }
        }
    })
    .await
    .map_err(|e| ReconcileError::Finalizer(Box::new(e)));
    ctx.metrics.observe_reconcile(started.elapsed(), result.as_ref().err().map(ReconcileError::metric_reason));
    result
}

/// What to do after a failed reconcile: retry with a growing delay.
pub fn error_policy(stream: Arc<LiveStream>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    warn!(stream = %stream_key(&stream), %error, "reconcile failed");
    if error.is_cleanup() {
        return Action::requeue(ctx.config.error_backoff.min);
    }
    let failures = ctx.failures.record_failure(&stream_key(&stream));
    Action::requeue(ctx.config.error_backoff.delay(failures))
}

/// The stages of a stream that exists.
async fn apply_stream(stream: &LiveStream, ctx: &Context) -> Result<Action, ReconcileError> {
    // Before the caches hold the children, every child would look missing and be applied.
    ctx.stores.ready().await;
    let namespace = stream.namespace().ok_or(ReconcileError::NoNamespace)?;
    let resolved = match dereference::resolve(stream, &namespace, ctx).await? {
        Ok(resolved) => resolved,
        Err(invalid) => return report_invalid(stream, &namespace, &invalid, ctx).await,
    };
    let children = children::build(stream, &ctx.config, &resolved)?;
    let applied = apply_children::apply(children, &namespace, ctx).await?;
    if let Err(invalid) = route_through_gateway(stream, &resolved, &applied.ingest_service, ctx).await {
        return report_invalid(stream, &namespace, &invalid, ctx).await;
    }

    let pod = observe::running_worker_pod(&ctx.stores.pods, &namespace, &stream.name_any());
    let available = applied.deployment.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0) > 0;
    let worker = match (&pod, available && !stream.spec.suspend) {
        (Some(pod), true) => observe::worker(pod, ctx).await,
        _ => WorkerObservation::NotRunning,
    };
    let node_address = pod.as_ref().and_then(|p| p.status.as_ref()).and_then(|s| s.host_ip.clone());
    let observed = Observed {
        deployment: Some(&applied.deployment),
        ingest_service: Some(&applied.ingest_service),
        origin_service: Some(&applied.origin_service),
        node_address: node_address.as_deref(),
        gateway: ctx.config.gateway.as_ref(),
        worker,
    };
    let status = compute(stream, &observed, None, update_status::now_in_seconds());
    update_status::write(stream, &namespace, status, ctx).await?;
    ctx.failures.reset(&stream_key(stream));
    Ok(if pod.is_some() && !stream.spec.suspend {
        Action::requeue(ctx.config.live_poll_interval)
    } else {
        Action::requeue(ctx.config.idle_resync)
    })
}

/// Routes the stream's publishes through the ingest gateway to its ingest Service's
/// cluster IP, where kube-proxy finds its current worker pod, and waits for the route to
/// be written, so that Ready behind the gateway means routed; refused when an older
/// stream publishes with the same key.
async fn route_through_gateway(
    stream: &LiveStream,
    resolved: &Resolved,
    service: &Service,
    ctx: &Context,
) -> Result<(), Invalid> {
    let Some(routes) = &ctx.gateway_routes else { return Ok(()) };
    let spec = service.spec.as_ref();
    let ip = spec.and_then(|spec| spec.cluster_ip.as_deref()).and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
    let port = spec
        .and_then(|spec| spec.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.name.as_deref() == Some("rtmp")))
        .and_then(|port| u16::try_from(port.port).ok());
    match (ip, port) {
        (Some(ip), Some(port)) => {
            let address = std::net::SocketAddr::new(ip, port);
            let created = stream.metadata.creation_timestamp.as_ref().map(|time| time.0);
            let claimed = routes.claim(&stream_key(stream), created, &stream.spec.ingest.app, &resolved.key, address);
            claimed.map_err(|in_use| key_in_use(resolved, &in_use))?;
        }
        _ => routes.remove(&stream_key(stream)),
    }
    if !routes.settled(ROUTES_PATIENCE).await {
        warn!(stream = %stream_key(stream), "the gateway's routes are not written yet; reporting the status anyway");
    }
    Ok(())
}

/// The reason a stream whose key an older stream holds behind the gateway is not routed.
fn key_in_use(resolved: &Resolved, in_use: &KeyInUse) -> Invalid {
    let secret = &resolved.stream_key;
    let message = format!(
        "the stream key in Secret {} (key {}) is also the key of stream {} with the same application, and the \
         ingest gateway routes a key to one stream only, the older: give this stream a key of its own (another \
         Secret, or no spec.ingest.streamKeySecretRef to have one generated)",
        secret.name, secret.key, in_use.holder
    );
    Invalid { reason: "StreamKeyInUse", message }
}

/// A stream whose references are unusable: its status says why (with what the caches hold
/// of its children), and it is retried with backoff.
async fn report_invalid(
    stream: &LiveStream,
    namespace: &str,
    invalid: &Invalid,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let name = stream.name_any();
    debug!(stream = %stream_key(stream), reason = invalid.reason, "references are not usable");
    let deployment = cached(&ctx.stores.deployments, namespace, &worker_name(&name));
    let ingest = cached(&ctx.stores.services, namespace, &ingest_service_name(&name));
    let origin = cached(&ctx.stores.services, namespace, &origin_service_name(&name));
    let observed = Observed {
        deployment: deployment.as_ref(),
        ingest_service: ingest.as_ref(),
        origin_service: origin.as_ref(),
        node_address: None,
        gateway: ctx.config.gateway.as_ref(),
        worker: WorkerObservation::NotRunning,
    };
    if let Some(routes) = &ctx.gateway_routes {
        routes.remove(&stream_key(stream));
    }
    let status = compute(stream, &observed, Some(invalid), update_status::now_in_seconds());
    update_status::write(stream, namespace, status, ctx).await?;
    let failures = ctx.failures.record_failure(&stream_key(stream));
    Ok(Action::requeue(ctx.config.error_backoff.delay(failures)))
}

/// The cached object `name` of `namespace`, typed; `None` when it is not cached or does
/// not parse as its kind.
fn cached<K: serde::de::DeserializeOwned>(store: &Store<Cached<K>>, namespace: &str, name: &str) -> Option<K>
where
    Cached<K>: kube::Resource<DynamicType = ()>,
{
    store.get(&ObjectRef::new(name).within(namespace)).and_then(|object| object.object().ok())
}

/// A deleted stream: with `Delete` retention, its objects are removed from storage,
/// within the configured time.
async fn cleanup_stream(stream: &LiveStream, ctx: &Context) -> Result<Action, ReconcileError> {
    ctx.metrics.set_phase(&stream_key(stream), None);
    if let Some(routes) = &ctx.gateway_routes {
        routes.remove(&stream_key(stream));
    }
    ctx.status_writes.forget(&stream_key(stream));
    if stream.spec.storage.retention == Retention::Retain {
        return Ok(Action::await_change());
    }
    let namespace = stream.namespace().ok_or(ReconcileError::NoNamespace)?;
    let credentials = dereference::storage_credentials(stream, &namespace, &ctx.client).await;
    let target = StorageTarget::of(stream, credentials);
    let deleted_at = stream.metadata.deletion_timestamp.as_ref().map(|t| t.0);
    let location = format!("{}/{}", target.bucket, target.prefix);
    match clean_up(ctx.cleaner.as_ref(), &target, deleted_at, ctx.config.cleanup_timeout).await {
        CleanupOutcome::Deleted(count) => {
            let note = format!("deleted {count} objects under {location}");
            publish(&ctx.recorder, stream, "Cleanup", &Notice::normal("StorageCleaned", note)).await;
            Ok(Action::await_change())
        }
        CleanupOutcome::Failed(error) => {
            let note = format!("cleaning {location} failed, retrying: {error}");
            publish(&ctx.recorder, stream, "Cleanup", &Notice::warning("StorageCleanupFailed", note)).await;
            Err(ReconcileError::Cleanup(error.to_string()))
        }
        CleanupOutcome::GaveUp => {
            let note = format!(
                "storage cleanup did not finish within {}s; objects under {location} are left in storage",
                ctx.config.cleanup_timeout.as_secs()
            );
            publish(&ctx.recorder, stream, "Cleanup", &Notice::warning("StorageCleanupAbandoned", note)).await;
            Ok(Action::await_change())
        }
    }
}
