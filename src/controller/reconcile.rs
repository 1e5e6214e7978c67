//! One reconcile of one LiveStream: read and check its references, build its children,
//! apply what changed, observe, and write the status if it changed. On delete, the
//! finalizer cleans its storage up within a bounded time.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use super::backoff::FailureCounts;
use super::children::{
    self, BuildError, Children, FIELD_MANAGER, FINALIZER, HTTP_PORT, INSTANCE_LABEL, generate_stream_key,
    generated_secret_name, ingest_service_name, origin_service_name, stream_key_secret, worker_name,
};
use super::cleanup::{CleanupOutcome, PrefixCleaner, StorageCredentials, StorageTarget, clean_up};
use super::events::{Notice, publish, transitions};
use super::probe::WorkerStatusClient;
use super::status::{Observed, WorkerObservation, compute};
use super::validate::{self, Invalid, Resolved};
use super::{Metrics, OperatorConfig, apply};
use crate::api::{LiveStream, LiveStreamStatus, Retention};

/// Caches of the children the operator manages, kept by the watches that also trigger
/// the reconciles.
#[derive(Clone)]
pub struct Stores {
    pub config_maps: Store<ConfigMap>,
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub pods: Store<Pod>,
}

impl Stores {
    /// Resolves once every cache holds its first complete list (at once after that), or
    /// when a watch ended for good.
    pub async fn ready(&self) {
        let _ = futures::join!(
            self.config_maps.wait_until_ready(),
            self.deployments.wait_until_ready(),
            self.services.wait_until_ready(),
            self.pods.wait_until_ready(),
        );
    }
}

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
}

/// The resourceVersion each stream had when this controller last patched its status. A
/// reconcile that still sees that version works on a copy from before the patch (the
/// cache has not caught up); the patch's own watch event brings a fresh reconcile, so
/// that one writes nothing.
#[derive(Debug, Default)]
pub struct StatusWrites {
    patched_from: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl StatusWrites {
    fn is_stale(&self, key: &str, resource_version: Option<&String>) -> bool {
        let patched = self.patched_from.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        resource_version.is_some() && patched.get(key) == resource_version
    }

    fn record(&self, key: String, resource_version: Option<String>) {
        let mut patched = self.patched_from.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match resource_version {
            Some(version) => patched.insert(key, version),
            None => patched.remove(&key),
        };
    }

    fn forget(&self, key: &str) {
        self.patched_from.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key);
    }
}

/// Why a reconcile failed; retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot build children: {0}")]
    Build(#[from] BuildError),
    #[error("storage cleanup failed: {0}")]
    Cleanup(String),
    #[error("the LiveStream has no namespace")]
    NoNamespace,
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<ReconcileError>>),
}

impl ReconcileError {
    /// A short label for metrics.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            ReconcileError::Kube(_) => "KubeApi",
            ReconcileError::Build(_) => "Build",
            ReconcileError::Cleanup(_) => "StorageCleanup",
            ReconcileError::NoNamespace => "NoNamespace",
            ReconcileError::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => {
                    e.metric_reason()
                }
                _ => "Finalizer",
            },
        }
    }

    fn is_cleanup(&self) -> bool {
        match self {
            ReconcileError::Cleanup(_) => true,
            ReconcileError::Finalizer(inner) => {
                matches!(inner.as_ref(), kube::runtime::finalizer::Error::CleanupFailed(e) if e.is_cleanup())
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

async fn apply_stream(stream: &LiveStream, ctx: &Context) -> Result<Action, ReconcileError> {
    // Before the caches hold the children, every child would look missing and be applied.
    ctx.stores.ready().await;
    let namespace = stream.namespace().ok_or(ReconcileError::NoNamespace)?;
    let name = stream.name_any();
    let key = stream_key(stream);

    let resolved = match resolve_references(stream, &namespace, ctx).await? {
        Ok(resolved) => resolved,
        Err(invalid) => {
            debug!(stream = %key, reason = invalid.reason, "references are not usable");
            let deployment = ctx.stores.deployments.get(&ObjectRef::new(&worker_name(&name)).within(&namespace));
            let ingest = ctx.stores.services.get(&ObjectRef::new(&ingest_service_name(&name)).within(&namespace));
            let origin = ctx.stores.services.get(&ObjectRef::new(&origin_service_name(&name)).within(&namespace));
            let observed = Observed {
                deployment: deployment.as_deref(),
                ingest_service: ingest.as_deref(),
                origin_service: origin.as_deref(),
                node_address: None,
                worker: WorkerObservation::NotRunning,
            };
            let status = compute(stream, &observed, Some(&invalid), now_in_seconds());
            write_status(stream, &namespace, status, ctx).await?;
            let failures = ctx.failures.record_failure(&key);
            return Ok(Action::requeue(ctx.config.error_backoff.delay(failures)));
        }
    };

    // Destructured without `..`: a new kind of child does not compile until it is applied.
    let Children { config_map, deployment, ingest_service, origin_service } =
        children::build(stream, &ctx.config, &resolved)?;
    let client = &ctx.client;
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let existing_cm = ctx.stores.config_maps.get(&ObjectRef::new(&worker_name(&name)).within(&namespace));
    let (_, wrote) = apply::apply_if_changed(&cm_api, config_map, existing_cm.as_deref()).await?;
    count_write(ctx, wrote, "ConfigMap");

    let deploy_api: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let existing_deploy = ctx.stores.deployments.get(&ObjectRef::new(&worker_name(&name)).within(&namespace));
    let (deployment, wrote) = apply::apply_if_changed(&deploy_api, deployment, existing_deploy.as_deref()).await?;
    count_write(ctx, wrote, "Deployment");

    let svc_api: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let ingest_service = apply_service(ctx, &svc_api, &namespace, ingest_service).await?;
    let origin_service = apply_service(ctx, &svc_api, &namespace, origin_service).await?;

    let pod = running_worker_pod(&ctx.stores.pods, &namespace, &name);
    let available = deployment.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0) > 0;
    let worker = match (&pod, available && !stream.spec.suspend) {
        (Some(pod), true) => observe_worker(pod, ctx).await,
        _ => WorkerObservation::NotRunning,
    };
    let node_address = pod.as_ref().and_then(|p| p.status.as_ref()).and_then(|s| s.host_ip.clone());
    let observed = Observed {
        deployment: Some(&deployment),
        ingest_service: Some(&ingest_service),
        origin_service: Some(&origin_service),
        node_address: node_address.as_deref(),
        worker,
    };
    let status = compute(stream, &observed, None, now_in_seconds());
    write_status(stream, &namespace, status, ctx).await?;
    ctx.failures.reset(&key);
    Ok(if pod.is_some() && !stream.spec.suspend {
        Action::requeue(ctx.config.live_poll_interval)
    } else {
        Action::requeue(ctx.config.idle_resync)
    })
}

async fn apply_service(
    ctx: &Context,
    api: &Api<Service>,
    namespace: &str,
    service: Service,
) -> Result<Service, ReconcileError> {
    let existing = ctx.stores.services.get(&ObjectRef::new(&service.name_any()).within(namespace));
    let (service, wrote) = apply::apply_if_changed(api, service, existing.as_deref()).await?;
    count_write(ctx, wrote, "Service");
    Ok(service)
}

fn count_write(ctx: &Context, wrote: bool, kind: &str) {
    if wrote {
        ctx.metrics.observe_write(kind);
    }
}

/// Reads the Secrets the stream needs (creating the generated stream key once) and checks
/// them. The outer error is an API failure; the inner one a problem for the user.
async fn resolve_references(
    stream: &LiveStream,
    namespace: &str,
    ctx: &Context,
) -> Result<Result<Resolved, Invalid>, ReconcileError> {
    if let Err(invalid) = validate::check_spec(stream) {
        return Ok(Err(invalid));
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let key_ref = validate::stream_key_ref(stream);
    let mut key_secret = secrets.get_opt(&key_ref.name).await?;
    if key_secret.is_none() && validate::uses_generated_stream_key(stream) {
        key_secret = Some(create_stream_key_secret(stream, &secrets, ctx).await?);
    }
    let credentials_secret = match &stream.spec.storage.credentials_secret_ref {
        Some(reference) => secrets.get_opt(&reference.name).await?,
        None => None,
    };
    let tls_secret = match &stream.spec.ingest.tls {
        Some(tls) => secrets.get_opt(&tls.secret_name).await?,
        None => None,
    };
    let fetched = validate::Fetched {
        stream_key: key_secret.as_ref(),
        credentials: credentials_secret.as_ref(),
        tls: tls_secret.as_ref(),
    };
    Ok(validate::resolve(stream, fetched))
}

/// Creates the generated stream-key Secret. Never overwrites: if it appeared meanwhile,
/// the existing one is returned.
async fn create_stream_key_secret(
    stream: &LiveStream,
    secrets: &Api<Secret>,
    ctx: &Context,
) -> Result<Secret, ReconcileError> {
    let secret = stream_key_secret(stream, generate_stream_key(&mut rand::rng()))?;
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(created) => {
            ctx.metrics.observe_write("Secret");
            info!(stream = %stream_key(stream), secret = %generated_secret_name(&stream.name_any()), "generated a stream key");
            Ok(created)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            Ok(secrets.get(&generated_secret_name(&stream.name_any())).await?)
        }
        Err(e) => Err(e.into()),
    }
}

/// The stream's running worker pod with an address, if any.
fn running_worker_pod(pods: &Store<Pod>, namespace: &str, name: &str) -> Option<Arc<Pod>> {
    pods.state()
        .into_iter()
        .filter(|pod| pod.namespace().as_deref() == Some(namespace))
        .filter(|pod| pod.labels().get(INSTANCE_LABEL).map(String::as_str) == Some(name))
        .filter(|pod| pod.labels().get("app.kubernetes.io/component").map(String::as_str) == Some("worker"))
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter(|pod| pod.status.as_ref().is_some_and(|s| s.phase.as_deref() == Some("Running") && s.pod_ip.is_some()))
        .max_by_key(|pod| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

async fn observe_worker(pod: &Pod, ctx: &Context) -> WorkerObservation {
    let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).and_then(|ip| ip.parse::<IpAddr>().ok())
    else {
        return WorkerObservation::NotRunning;
    };
    let port = u16::try_from(HTTP_PORT).unwrap_or(8080);
    match ctx.worker_status.fetch(SocketAddr::new(ip, port)).await {
        Ok(report) => WorkerObservation::Reported(report),
        Err(error) => WorkerObservation::Unreachable(error.to_string()),
    }
}

/// The current time in whole seconds, as the API server stores condition times: a
/// finer time would never compare equal to the stored status, and every reconcile would
/// send a patch.
fn now_in_seconds() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// Writes `status` if it differs from the stream's, and emits events for transitions.
async fn write_status(
    stream: &LiveStream,
    namespace: &str,
    status: LiveStreamStatus,
    ctx: &Context,
) -> Result<(), ReconcileError> {
    ctx.metrics.set_phase(&stream_key(stream), status.phase);
    let old = stream.status.as_ref();
    let key = stream_key(stream);
    if old == Some(&status) || ctx.status_writes.is_stale(&key, stream.metadata.resource_version.as_ref()) {
        return Ok(());
    }
    let api: Api<LiveStream> = Api::namespaced(ctx.client.clone(), namespace);
    // Server-side apply of the whole typed status: every field is written (a new one cannot
    // be forgotten), and one that is now empty is removed, since this manager owned it.
    let patch = json!({
        "apiVersion": LiveStream::api_version(&()),
        "kind": LiveStream::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patched = api.patch_status(&stream.name_any(), &params, &Patch::Apply(&patch)).await?;
    // Only a patch that changed the object brings a watch event (and a fresh reconcile);
    // after a patch that changed nothing, the cached copy is as good as any.
    if patched.metadata.resource_version != stream.metadata.resource_version {
        ctx.status_writes.record(key, stream.metadata.resource_version.clone());
    } else {
        ctx.status_writes.forget(&key);
    }
    ctx.metrics.observe_write("LiveStreamStatus");
    for notice in transitions(old, &status) {
        publish(&ctx.recorder, stream, "Reconcile", &notice).await;
    }
    Ok(())
}

async fn cleanup_stream(stream: &LiveStream, ctx: &Context) -> Result<Action, ReconcileError> {
    ctx.metrics.set_phase(&stream_key(stream), None);
    ctx.status_writes.forget(&stream_key(stream));
    if stream.spec.storage.retention == Retention::Retain {
        return Ok(Action::await_change());
    }
    let namespace = stream.namespace().ok_or(ReconcileError::NoNamespace)?;
    let credentials = read_credentials(stream, &namespace, ctx).await;
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

/// The storage credentials of a stream, if its Secret still exists and holds them.
async fn read_credentials(stream: &LiveStream, namespace: &str, ctx: &Context) -> Option<StorageCredentials> {
    let reference = stream.spec.storage.credentials_secret_ref.as_ref()?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = secrets.get_opt(&reference.name).await.ok().flatten()?;
    let value = |key: &str| -> Option<String> {
        let data = secret.data.as_ref()?;
        let ByteString(bytes) = data.get(key)?;
        String::from_utf8(bytes.clone()).ok().map(|v| v.trim().to_string())
    };
    Some(StorageCredentials {
        access_key_id: value(&reference.access_key_id_key)?,
        secret_access_key: value(&reference.secret_access_key_key)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_copy_from_before_a_patch_is_stale() {
        let writes = StatusWrites::default();
        let v = |s: &str| Some(s.to_string());
        assert!(!writes.is_stale("ns/a", v("5").as_ref()), "nothing patched yet");
        writes.record("ns/a".into(), v("5"));
        assert!(writes.is_stale("ns/a", v("5").as_ref()), "the copy the patch was computed from");
        assert!(!writes.is_stale("ns/a", v("6").as_ref()), "the copy after the patch");
        assert!(!writes.is_stale("ns/b", v("5").as_ref()), "another stream");
        assert!(!writes.is_stale("ns/a", None));
        writes.forget("ns/a");
        assert!(!writes.is_stale("ns/a", v("5").as_ref()), "a patch that changed nothing leaves nothing stale");
    }

    #[test]
    fn condition_times_have_whole_seconds() {
        assert_eq!(now_in_seconds().subsec_nanosecond(), 0);
    }
}
