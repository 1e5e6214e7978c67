//! Running the operator: watches and caches, the kube-rs Controller, leader election, and
//! the telemetry endpoints.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::{Client, Resource, ResourceExt};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::backoff::FailureCounts;
use super::cache::Cached;
use super::children::{FIELD_MANAGER, INSTANCE_LABEL, MANAGED_SELECTOR, WORKER_POD_SELECTOR};
use super::gateway_routes::GatewayRoutes;
use super::leader::{LeaderElector, LeaseSettings};
use super::probe::WorkerStatusClient;
use super::reconcile::{Context, StatusWrites, Stores, error_policy, reconcile};
use super::{ControllerArgs, Metrics, OperatorConfig, PrefixCleaner};
use crate::api::LiveStream;
use crate::telemetry::{self, Health, HealthCheck};

/// Reconciles run at once: enough to keep the API server busy on a few cores, few enough
/// that their connections and buffers stay small beside the caches.
const RECONCILE_CONCURRENCY: u16 = 16;

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot connect to Kubernetes: {0}")]
    Client(#[from] kube::Error),
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryServerError),
    #[error("lost the leader lease; stopping so that another replica takes over")]
    LostLeadership,
}

/// What [`run_controller`] needs besides a client.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub operator: OperatorConfig,
    /// Watch only this namespace.
    pub namespace: Option<String>,
    /// Leader election, when more than one replica may run.
    pub leader_election: Option<LeaseSettings>,
    /// This replica's identity, for events.
    pub identity: String,
}

/// `livestream controller`: serves telemetry and runs the operator until SIGTERM or
/// Ctrl-C. `cleaner` removes a stream's objects from storage on delete.
pub async fn run(args: ControllerArgs, cleaner: Arc<dyn PrefixCleaner>) -> Result<(), RunError> {
    let client = Client::try_default().await?;
    let identity = args.identity();
    let lease_namespace = args.lease_namespace.clone().unwrap_or_else(|| "default".into());
    let settings = RunSettings {
        operator: args.operator_config(),
        namespace: args.namespace.clone(),
        leader_election: args
            .leader_election
            .then(|| LeaseSettings::new(&args.lease_name, &lease_namespace, &identity)),
        identity,
    };
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let health = Health::new();
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            telemetry::shutdown_signal().await;
            info!("shutting down");
            shutdown.cancel();
        }
    });
    let listener = telemetry::bind(args.listen).await?;
    let server = tokio::spawn(telemetry::serve(
        listener,
        Arc::new(registry),
        health.clone(),
        axum::Router::new(),
        shutdown.clone().cancelled_owned(),
    ));
    let result = run_controller(client, settings, cleaner, metrics, health, shutdown).await;
    match server.await {
        Ok(Err(e)) => warn!(error = %e, "telemetry server failed"),
        Err(e) => warn!(error = %e, "telemetry server task failed"),
        Ok(Ok(())) => {}
    }
    result
}

/// Resolves when the flag equals `value`; never, once its sender is gone without it.
async fn becomes(mut flag: watch::Receiver<bool>, value: bool) {
    if flag.wait_for(|v| *v == value).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs the operator on `client` until `shutdown` is cancelled. With leader election it
/// first waits to hold the Lease, and returns [`RunError::LostLeadership`] if it loses it.
pub async fn run_controller(
    client: Client,
    settings: RunSettings,
    cleaner: Arc<dyn PrefixCleaner>,
    metrics: Metrics,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let (leader_tx, leader_rx) = watch::channel(settings.leader_election.is_none());
    // The elector stops after the controller, so that the Lease is released only once
    // nothing reconciles any more.
    let elector_stop = CancellationToken::new();
    let elector = settings
        .leader_election
        .clone()
        .map(|lease| tokio::spawn(LeaderElector::new(client.clone(), lease).run(leader_tx, elector_stop.clone())));
    health.set("controller", HealthCheck::Ok);
    let stop_elector = || async {
        elector_stop.cancel();
        if let Some(elector) = elector {
            let _ = elector.await;
        }
    };
    tokio::select! {
        _ = becomes(leader_rx.clone(), true) => {}
        _ = shutdown.cancelled() => {
            stop_elector().await;
            return Ok(());
        }
    }
    info!(identity = %settings.identity, "starting the LiveStream controller");

    // The controller stops on shutdown, or when leadership is lost without one.
    let controller_stop = shutdown.child_token();
    let lost = tokio::spawn({
        let controller_stop = controller_stop.clone();
        async move {
            tokio::select! {
                _ = becomes(leader_rx, false) => {
                    controller_stop.cancel();
                    true
                }
                _ = controller_stop.cancelled() => false,
            }
        }
    });
    run_reconcilers(client, &settings, cleaner, metrics, &health, controller_stop.clone()).await;
    controller_stop.cancel();
    let lost = lost.await.unwrap_or(false) && !shutdown.is_cancelled();
    stop_elector().await;
    if lost { Err(RunError::LostLeadership) } else { Ok(()) }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// One watch of the objects of kind `K` that `selector` picks: it fills a store for the
/// reconciles to read (compact: see [`Cached`]), and its events (deletions included) are
/// what triggers them.
fn reflected<K>(
    client: &Client,
    namespace: Option<&str>,
    selector: &str,
) -> (Store<Cached<K>>, impl Stream<Item = Result<Cached<K>, watcher::Error>> + Send + use<K>)
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()> + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let events = watcher(api::<Cached<K>>(client, namespace), watcher::Config::default().labels(selector))
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    (store, events)
}

async fn run_reconcilers(
    client: Client,
    settings: &RunSettings,
    cleaner: Arc<dyn PrefixCleaner>,
    metrics: Metrics,
    health: &Health,
    stop: CancellationToken,
) {
    let ns = settings.namespace.as_deref();
    let (config_maps, config_map_events) = reflected::<ConfigMap>(&client, ns, MANAGED_SELECTOR);
    let (deployments, deployment_events) = reflected::<Deployment>(&client, ns, MANAGED_SELECTOR);
    let (services, service_events) = reflected::<Service>(&client, ns, MANAGED_SELECTOR);
    let (pods, pod_events) = reflected::<Pod>(&client, ns, WORKER_POD_SELECTOR);
    let stores = Stores { config_maps, deployments, services, pods };
    // Ready once every watch has listed its objects, which the controller's own polling of
    // the watches brings about.
    health.set("caches", HealthCheck::Failing("waiting for the first list of children".into()));
    tokio::spawn({
        let (stores, health, stop) = (stores.clone(), health.clone(), stop.clone());
        async move {
            tokio::select! {
                () = stores.ready() => health.set("caches", HealthCheck::Ok),
                () = stop.cancelled() => {}
            }
        }
    });

    let gateway_routes = settings
        .operator
        .gateway
        .as_ref()
        .map(|gateway| Arc::new(GatewayRoutes::new(&gateway.routes_namespace, &gateway.routes_secret)));
    let reporter = Reporter { controller: FIELD_MANAGER.into(), instance: Some(settings.identity.clone()) };
    let ctx = Arc::new(Context {
        client: client.clone(),
        config: settings.operator.clone(),
        cleaner,
        recorder: Recorder::new(client.clone(), reporter),
        metrics,
        stores,
        failures: FailureCounts::default(),
        status_writes: StatusWrites::default(),
        worker_status: WorkerStatusClient::new(settings.operator.worker_status_timeout),
        gateway_routes: gateway_routes.clone(),
    });
    // Bounded concurrency: every reconcile in flight holds an API connection (HTTP/1.1)
    // and its buffers, so a thousand new streams would otherwise open a thousand at once.
    // The LiveStreams, kept without their managedFields: a reconcile never reads them, and
    // in memory (as JSON values) they outweigh the rest of a stream.
    let (streams, streams_writer) = reflector::store();
    let stream_events = watcher(api::<LiveStream>(&client, ns), watcher::Config::default())
        .default_backoff()
        .modify(|stream| stream.managed_fields_mut().clear())
        .reflect(streams_writer)
        .applied_objects();
    let controller = Controller::for_stream(stream_events, streams.clone())
        .with_config(controller::Config::default().concurrency(RECONCILE_CONCURRENCY));
    let routes_writer = gateway_routes.map(|routes| {
        let (client, streams, metrics, stop) = (client.clone(), streams.clone(), ctx.metrics.clone(), stop.clone());
        tokio::spawn(async move { routes.run(client, streams, metrics, stop).await })
    });
    // Every Secret, not only the generated ones: a user who creates or fixes a referenced
    // Secret sees the stream recover at once, not after a backoff. Only their metadata is
    // watched: the data of every Secret of the cluster would cost memory for nothing.
    let secret_events = watcher(api::<PartialObjectMeta<Secret>>(&client, ns), watcher::Config::default())
        .default_backoff()
        .touched_objects();
    controller
        .owns_stream(config_map_events)
        .owns_stream(deployment_events)
        .owns_stream(service_events)
        .watches_stream(pod_events, |pod| stream_of_worker(&pod))
        .watches_stream(secret_events, move |secret| streams_referencing(&streams, &secret))
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile did not complete");
            }
            futures::future::ready(())
        })
        .await;
    if let Some(writer) = routes_writer {
        let _ = writer.await;
    }
    info!("the LiveStream controller stopped");
}

/// The LiveStream whose worker `pod` is (from the labels its Deployment gives it).
fn stream_of_worker(pod: &Cached<Pod>) -> Option<ObjectRef<LiveStream>> {
    let name = pod.labels().get(INSTANCE_LABEL)?;
    Some(ObjectRef::new(name).within(pod.namespace().as_deref()?))
}

/// The LiveStreams that use `secret`: as their stream key (generated or referenced), their
/// storage credentials or their RTMPS certificate.
fn streams_referencing(streams: &Store<LiveStream>, secret: &PartialObjectMeta<Secret>) -> Vec<ObjectRef<LiveStream>> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let namespace = secret.metadata.namespace.as_deref();
    streams
        .state()
        .iter()
        .filter(|stream| stream.metadata.namespace.as_deref() == namespace)
        .filter(|stream| {
            let generated = stream.metadata.name.as_deref().map(super::children::generated_secret_name);
            super::validate::referenced_secrets(stream).any(|referenced| referenced == name)
                || generated.as_deref() == Some(name)
        })
        .map(|stream| ObjectRef::from_obj(stream.as_ref()))
        .collect()
}
