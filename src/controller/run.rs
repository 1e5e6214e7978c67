//! Running the operator: watches and caches, the kube-rs Controller, leader election, and
//! the telemetry endpoints.

use std::future::Future;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher};
use kube::{Client, Resource};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{info, warn};

use super::backoff::FailureCounts;
use super::children::{FIELD_MANAGER, MANAGED_SELECTOR};
use super::leader::{LeaderElector, LeaseSettings};
use super::probe::WorkerStatusClient;
use super::reconcile::{Context, StatusWrites, Stores, error_policy, reconcile};
use super::{ControllerArgs, Metrics, OperatorConfig, PrefixCleaner};
use crate::api::LiveStream;
use crate::telemetry::{self, Health, HealthCheck};

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
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down");
        stop_tx.send_replace(true);
    });
    let listener = telemetry::bind(args.listen).await?;
    let server = tokio::spawn(telemetry::serve(
        listener,
        Arc::new(registry),
        health.clone(),
        axum::Router::new(),
        stopped(stop_rx.clone()),
    ));
    let result = run_controller(client, settings, cleaner, metrics, health, stopped(stop_rx)).await;
    match server.await {
        Ok(Err(e)) => warn!(error = %e, "telemetry server failed"),
        Err(e) => warn!(error = %e, "telemetry server task failed"),
        Ok(Ok(())) => {}
    }
    result
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn stopped(stop: watch::Receiver<bool>) {
    becomes(stop, true).await;
}

/// Resolves when the flag equals `value`; never, once its sender is gone without it.
async fn becomes(mut flag: watch::Receiver<bool>, value: bool) {
    if flag.wait_for(|v| *v == value).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs the operator on `client` until `shutdown` resolves. With leader election it first
/// waits to hold the Lease, and returns [`RunError::LostLeadership`] if it loses it.
pub async fn run_controller(
    client: Client,
    settings: RunSettings,
    cleaner: Arc<dyn PrefixCleaner>,
    metrics: Metrics,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let shutdown_tx = stop_tx.clone();
    tokio::spawn(async move {
        shutdown.await;
        shutdown_tx.send_replace(true);
    });

    let (leader_tx, leader_rx) = watch::channel(settings.leader_election.is_none());
    let elector = settings
        .leader_election
        .clone()
        .map(|lease| tokio::spawn(LeaderElector::new(client.clone(), lease).run(leader_tx, stop_rx.clone())));
    health.set("controller", HealthCheck::Ok);
    tokio::select! {
        _ = becomes(leader_rx.clone(), true) => {}
        _ = becomes(stop_rx.clone(), true) => {
            if let Some(elector) = elector { let _ = elector.await; }
            return Ok(());
        }
    }
    info!(identity = %settings.identity, "starting the LiveStream controller");

    let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let controller_stop = {
        let lost = lost.clone();
        let stop = stop_rx.clone();
        let leader = leader_rx.clone();
        async move {
            tokio::select! {
                _ = becomes(stop.clone(), true) => {}
                // The elector also drops leadership when it stops on shutdown: only a loss
                // without a stop request is an error.
                _ = becomes(leader, false) => {
                    if !*stop.borrow() {
                        lost.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            }
        }
    };
    run_reconcilers(client, &settings, cleaner, metrics, &health, controller_stop).await;
    stop_tx.send_replace(true);
    if let Some(elector) = elector {
        let _ = elector.await;
    }
    if lost.load(std::sync::atomic::Ordering::SeqCst) { Err(RunError::LostLeadership) } else { Ok(()) }
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

/// Caches every managed object of kind `K` (selected by the managed-by label).
fn cache<K>(api: Api<K>, selector: &str) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    // managedFields are never read from the cache; dropping them keeps it small.
    let events = watcher(api, watcher::Config::default().labels(selector))
        .default_backoff()
        .modify(|object: &mut K| object.meta_mut().managed_fields = None);
    let stream = reflector::reflector(writer, events).for_each(|_| futures::future::ready(()));
    (store, tokio::spawn(stream))
}

async fn run_reconcilers(
    client: Client,
    settings: &RunSettings,
    cleaner: Arc<dyn PrefixCleaner>,
    metrics: Metrics,
    health: &Health,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = settings.namespace.as_deref();
    let (config_maps, t1) = cache::<ConfigMap>(api(&client, ns), MANAGED_SELECTOR);
    let (deployments, t2) = cache::<Deployment>(api(&client, ns), MANAGED_SELECTOR);
    let (services, t3) = cache::<Service>(api(&client, ns), MANAGED_SELECTOR);
    let (pods, t4) =
        cache::<Pod>(api(&client, ns), "app.kubernetes.io/name=livestream,app.kubernetes.io/component=worker");
    let caches = [t1, t2, t3, t4];
    health.set("caches", HealthCheck::Failing("waiting for the first list of children".into()));
    let stop = stop.shared();
    // An error here means the cache task ended; reconciles then fall back to applying. A
    // stop meanwhile (no rights any more, no API server) ends the wait.
    let ready = async {
        let _ = config_maps.wait_until_ready().await;
        let _ = deployments.wait_until_ready().await;
        let _ = services.wait_until_ready().await;
        let _ = pods.wait_until_ready().await;
    };
    tokio::select! {
        () = ready => {}
        () = stop.clone() => {
            for task in caches {
                task.abort();
            }
            info!("stopped before the caches were ready");
            return;
        }
    }
    health.set("caches", HealthCheck::Ok);

    let reporter = Reporter { controller: FIELD_MANAGER.into(), instance: Some(settings.identity.clone()) };
    let ctx = Arc::new(Context {
        client: client.clone(),
        config: settings.operator.clone(),
        cleaner,
        recorder: Recorder::new(client.clone(), reporter),
        metrics,
        stores: Stores { config_maps, deployments, services, pods },
        failures: FailureCounts::default(),
        status_writes: StatusWrites::default(),
        worker_status: WorkerStatusClient::new(settings.operator.worker_status_timeout),
    });
    let owned = watcher::Config::default().labels(MANAGED_SELECTOR);
    let controller = Controller::new(api::<LiveStream>(&client, ns), watcher::Config::default());
    let streams = controller.store();
    controller
        .owns(api::<ConfigMap>(&client, ns), owned.clone())
        .owns(api::<Deployment>(&client, ns), owned.clone())
        .owns(api::<Service>(&client, ns), owned)
        // Every Secret, not only the generated ones: a user who creates or fixes a
        // referenced Secret sees the stream recover at once, not after a backoff.
        .watches(api::<Secret>(&client, ns), watcher::Config::default(), move |secret| {
            streams_referencing(&streams, &secret)
        })
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile did not complete");
            }
            futures::future::ready(())
        })
        .await;
    for task in caches {
        task.abort();
    }
    info!("the LiveStream controller stopped");
}

/// The LiveStreams that use `secret`: as their stream key (generated or referenced), their
/// storage credentials or their RTMPS certificate.
fn streams_referencing(
    streams: &kube::runtime::reflector::Store<LiveStream>,
    secret: &Secret,
) -> Vec<kube::runtime::reflector::ObjectRef<LiveStream>> {
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
        .map(|stream| kube::runtime::reflector::ObjectRef::from_obj(stream.as_ref()))
        .collect()
}
