//! Scale of the operator against a real API server, printed as a table (run with
//! `scripts/bench`):
//!
//! - time from the first create of N LiveStreams (default 500) to every one having its
//!   ConfigMap, Deployment, Service and Secret and a current status with a Ready
//!   condition;
//! - the peak memory of the process that runs the controller;
//! - the API writes in the minute after convergence (target: zero).
//!
//! The control plane is etcd and kube-apiserver only: no kube-controller-manager, so no
//! Deployment ever gets a pod and no worker runs. Ready is therefore False
//! (WorkerNotAvailable) on every stream; "converged" means the Ready condition is present
//! and the status describes the current generation.
//!
//! `LIVESTREAM_BENCH_STREAMS` lowers the number of streams for a quick run;
//! `LIVESTREAM_BENCH_RESYNC_SECS` sets the operator's idle resync (default: the
//! operator's own default), to see what resyncs do during the quiet minute.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use livestream::api::LiveStream;
use livestream::controller::children::{MANAGED_SELECTOR, generated_secret_name, ingest_service_name, worker_name};
use livestream::controller::{
    CleanupError, Metrics, OperatorConfig, PrefixCleaner, RunSettings, StorageTarget, run_controller,
};
use livestream::telemetry::{Health, HealthCheck};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use serde_json::json;
use support::kube::{KubeEnv, KubeEnvOptions};
use tokio::task::JoinHandle;

const NAMESPACE: &str = "bench-scale";
const DEFAULT_STREAMS: usize = 500;
const CREATE_CONCURRENCY: usize = 16;
const QUIET_WINDOW: Duration = Duration::from_secs(60);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(900);
const POLL: Duration = Duration::from_millis(100);

fn main() {
    let streams = std::env::var("LIVESTREAM_BENCH_STREAMS")
        .ok()
        .map(|v| v.trim().parse::<usize>().expect("LIVESTREAM_BENCH_STREAMS: a number of streams"))
        .unwrap_or(DEFAULT_STREAMS);
    assert!(streams > 0, "LIVESTREAM_BENCH_STREAMS must be at least 1");
    let mut operator = OperatorConfig { worker_image: "livestream:bench".into(), ..OperatorConfig::default() };
    if let Ok(secs) = std::env::var("LIVESTREAM_BENCH_RESYNC_SECS") {
        operator.idle_resync = Duration::from_secs(secs.trim().parse().expect("LIVESTREAM_BENCH_RESYNC_SECS: seconds"));
    }
    if std::env::var_os("RUST_LOG").is_some() {
        livestream::telemetry::init_logging(livestream::telemetry::LogFormat::Text);
    }

    let env = KubeEnv::start(KubeEnvOptions::default());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!(
        "{streams} LiveStreams created {CREATE_CONCURRENCY} at a time in one namespace against etcd + kube-apiserver \
         (no kube-controller-manager: no worker runs); controller in-process, leader election off, \
         idle resync {} s\n",
        operator.idle_resync.as_secs()
    );
    let report = runtime.block_on(run(&env, streams, operator));
    report.print();
    drop(runtime);
    drop(env);
}

/// A cleaner that deletes nothing: no stream is deleted here.
struct NoopCleaner;

impl PrefixCleaner for NoopCleaner {
    fn delete_prefix<'a>(&'a self, _storage: &'a StorageTarget) -> BoxFuture<'a, Result<u64, CleanupError>> {
        Box::pin(futures::future::ready(Ok(0)))
    }
}

fn crd() -> CustomResourceDefinition {
    serde_yaml::from_str(include_str!("../crds/livestream.yaml")).expect("parse crds/livestream.yaml")
}

fn stream_name(i: usize) -> String {
    format!("bench-{i:04}")
}

fn bench_stream(i: usize) -> LiveStream {
    serde_json::from_value(json!({
        "apiVersion": "livestream.dev/v1alpha1",
        "kind": "LiveStream",
        "metadata": {"name": stream_name(i)},
        "spec": {"storage": {"bucket": "live-video"}},
    }))
    .expect("LiveStream")
}

/// Keeps the metadata of every managed object of kind `K` in the namespace.
fn watch_meta<K>(client: &Client, updates: Arc<AtomicU64>) -> (Store<PartialObjectMeta<K>>, JoinHandle<()>)
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    // An Api of PartialObjectMeta makes metadata-only requests.
    let api: Api<PartialObjectMeta<K>> = Api::namespaced(client.clone(), NAMESPACE);
    let (store, writer) = reflector::store();
    let events = watcher(api, watcher::Config::default().labels(MANAGED_SELECTOR));
    let task = reflector::reflector(writer, events).default_backoff().for_each(move |event| {
        count_update(&event, &updates);
        futures::future::ready(())
    });
    (store, tokio::spawn(task))
}

/// Counts an added or modified object (not the initial list).
fn count_update<K, E>(event: &Result<watcher::Event<K>, E>, updates: &AtomicU64) {
    if let Ok(watcher::Event::Apply(_)) = event {
        updates.fetch_add(1, Ordering::Relaxed);
    }
}

fn names<K: Resource>(store: &Store<PartialObjectMeta<K>>) -> HashSet<String>
where
    PartialObjectMeta<K>: Resource<DynamicType = ()> + Clone,
{
    store.state().iter().map(|o| o.name_any()).collect()
}

/// The benchmark's own view of the namespace, kept by watches.
struct Views {
    streams: Store<LiveStream>,
    config_maps: Store<PartialObjectMeta<ConfigMap>>,
    deployments: Store<PartialObjectMeta<Deployment>>,
    services: Store<PartialObjectMeta<Service>>,
    secrets: Store<PartialObjectMeta<Secret>>,
    /// Objects added or modified as seen by the watches, by kind: each one is a write
    /// that changed an object (a no-op patch changes nothing and is not seen).
    updates: Vec<(&'static str, Arc<AtomicU64>)>,
    tasks: Vec<JoinHandle<()>>,
}

/// How far the streams are, from the benchmark's view.
#[derive(Default, Debug)]
struct Progress {
    seen: usize,
    with_children: usize,
    with_status: usize,
    converged: usize,
    ready: BTreeMap<String, usize>,
}

impl Views {
    async fn start(client: &Client) -> Self {
        let api: Api<LiveStream> = Api::namespaced(client.clone(), NAMESPACE);
        let updates: Vec<(&'static str, Arc<AtomicU64>)> =
            ["LiveStream", "ConfigMap", "Deployment", "Service", "Secret"].map(|k| (k, Arc::default())).into();
        let (streams, writer) = reflector::store();
        let counter = updates[0].1.clone();
        let task = reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff().for_each(
            move |event| {
                count_update(&event, &counter);
                futures::future::ready(())
            },
        );
        let mut tasks = vec![tokio::spawn(task)];
        let (config_maps, t) = watch_meta::<ConfigMap>(client, updates[1].1.clone());
        tasks.push(t);
        let (deployments, t) = watch_meta::<Deployment>(client, updates[2].1.clone());
        tasks.push(t);
        let (services, t) = watch_meta::<Service>(client, updates[3].1.clone());
        tasks.push(t);
        let (secrets, t) = watch_meta::<Secret>(client, updates[4].1.clone());
        tasks.push(t);
        streams.wait_until_ready().await.expect("LiveStream watch");
        config_maps.wait_until_ready().await.expect("ConfigMap watch");
        deployments.wait_until_ready().await.expect("Deployment watch");
        services.wait_until_ready().await.expect("Service watch");
        secrets.wait_until_ready().await.expect("Secret watch");
        Self { streams, config_maps, deployments, services, secrets, updates, tasks }
    }

    fn progress(&self) -> Progress {
        let config_maps = names(&self.config_maps);
        let deployments = names(&self.deployments);
        let services = names(&self.services);
        let secrets = names(&self.secrets);
        let mut progress = Progress::default();
        for stream in self.streams.state() {
            progress.seen += 1;
            let name = stream.name_any();
            let children = config_maps.contains(&worker_name(&name))
                && deployments.contains(&worker_name(&name))
                && services.contains(&ingest_service_name(&name))
                && secrets.contains(&generated_secret_name(&name));
            let status = stream.status.as_ref();
            let ready = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
            let current =
                status.and_then(|s| s.observed_generation).is_some_and(|g| Some(g) == stream.meta().generation)
                    && ready.is_some();
            progress.with_children += usize::from(children);
            progress.with_status += usize::from(current);
            if children && current {
                progress.converged += 1;
                let ready = ready.expect("Ready condition");
                *progress.ready.entry(format!("{}/{}", ready.status, ready.reason)).or_default() += 1;
            }
        }
        progress
    }

    fn updates(&self) -> BTreeMap<String, u64> {
        self.updates.iter().map(|(kind, n)| (kind.to_string(), n.load(Ordering::Relaxed))).collect()
    }

    fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Every LiveStream, managed child and Event in the namespace, with its resourceVersion.
async fn versions(client: &Client) -> BTreeMap<String, String> {
    async fn add<K>(client: &Client, kind: &str, lp: &ListParams, into: &mut BTreeMap<String, String>)
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug,
    {
        let api: Api<K> = Api::namespaced(client.clone(), NAMESPACE);
        let list = api.list_metadata(lp).await.unwrap_or_else(|e| panic!("list {kind}: {e}"));
        for item in list.items {
            into.insert(format!("{kind}/{}", item.name_any()), item.resource_version().unwrap_or_default());
        }
    }
    let mut all = BTreeMap::new();
    let managed = ListParams::default().labels(MANAGED_SELECTOR);
    add::<LiveStream>(client, "LiveStream", &ListParams::default(), &mut all).await;
    add::<ConfigMap>(client, "ConfigMap", &managed, &mut all).await;
    add::<Deployment>(client, "Deployment", &managed, &mut all).await;
    add::<Service>(client, "Service", &managed, &mut all).await;
    add::<Secret>(client, "Secret", &managed, &mut all).await;
    add::<Event>(client, "Event", &ListParams::default(), &mut all).await;
    all
}

/// Keys added, removed or with another resourceVersion, by kind.
fn changed(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut by_kind = BTreeMap::new();
    let keys: HashSet<&String> = before.keys().chain(after.keys()).collect();
    for key in keys {
        if before.get(key) != after.get(key) {
            let kind = key.split_once('/').map(|(k, _)| k).unwrap_or(key);
            *by_kind.entry(kind.to_string()).or_insert(0) += 1;
        }
    }
    by_kind
}

fn count_kind(map: &BTreeMap<String, String>, kind: &str) -> usize {
    map.keys().filter(|k| k.split_once('/').is_some_and(|(k, _)| k == kind)).count()
}

/// A counter family of the controller's metrics, by its one label.
fn by_label(registry: &Registry, metric: &str, label: &str) -> BTreeMap<String, u64> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode metrics");
    let prefix = format!("livestream_controller_{metric}_total{{{label}=\"");
    text.lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter_map(|rest| rest.split_once("\"} "))
        .filter_map(|(value, count)| Some((value.to_string(), count.trim().parse::<f64>().ok()? as u64)))
        .collect()
}

fn minus(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0))).filter(|(_, v)| *v > 0).collect()
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state, ppid, pgrp, session, tty, tpgid, flags, minflt, cminflt,
    // majflt, cmajflt, utime, stime.
    let ticks: u64 = fields[11..13].iter().filter_map(|f| f.parse::<u64>().ok()).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn list(map: &BTreeMap<String, impl std::fmt::Display>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

struct Report {
    streams: usize,
    created: Duration,
    children: Duration,
    statuses: Duration,
    converged: Duration,
    ready: BTreeMap<String, usize>,
    converge_reconciles: u64,
    converge_writes: u64,
    converge_writes_by_kind: BTreeMap<String, u64>,
    converge_errors: BTreeMap<String, u64>,
    converge_updates: BTreeMap<String, u64>,
    converge_cpu: f64,
    rss_before: u64,
    rss_converged: u64,
    hwm_converged: u64,
    hwm_end: u64,
    quiet_writes: u64,
    quiet_writes_by_kind: BTreeMap<String, u64>,
    quiet_errors: BTreeMap<String, u64>,
    quiet_reconciles: u64,
    quiet_cpu: f64,
    objects: usize,
    events: usize,
    quiet_changes: BTreeMap<String, usize>,
}

impl Report {
    fn print(&self) {
        let n = self.streams as f64;
        let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
        let object_changes: usize =
            self.quiet_changes.iter().filter(|(kind, _)| kind.as_str() != "Event").map(|(_, c)| c).sum();
        let event_changes = self.quiet_changes.get("Event").copied().unwrap_or(0);
        println!("| figure | value | target |");
        println!("| --- | --- | --- |");
        println!(
            "| LiveStreams created ({CREATE_CONCURRENCY} at a time) | {} in {} | |",
            self.streams,
            secs(self.created)
        );
        println!("| first create to every stream with its 4 children | {} | |", secs(self.children));
        println!(
            "| first create to every status current (observedGeneration = generation) with a Ready condition | {} | |",
            secs(self.statuses)
        );
        println!("| **first create to convergence (both of the above)** ¹ | **{}** | |", secs(self.converged));
        println!(
            "| Ready condition at convergence (status/reason: streams) | {} | no worker runs ¹ |",
            list(&self.ready)
        );
        println!(
            "| reconciles to convergence | {} ({:.1} per stream) | |",
            self.converge_reconciles,
            self.converge_reconciles as f64 / n
        );
        println!(
            "| API writes to convergence (controller metric) | {} ({:.1} per stream): {} | |",
            self.converge_writes,
            self.converge_writes as f64 / n,
            list(&self.converge_writes_by_kind)
        );
        let updates: u64 = self.converge_updates.values().sum();
        println!(
            "| objects created or changed to convergence, seen by watch ³ | {updates} ({:.1} per stream): {} | |",
            updates as f64 / n,
            list(&self.converge_updates)
        );
        println!("| reconcile errors to convergence | {} | |", list(&self.converge_errors));
        println!("| CPU of the process, first create to convergence ² | {:.1} s | |", self.converge_cpu);
        println!("| peak memory of the process at convergence (VmHWM) ² | {} | |", mib(self.hwm_converged));
        println!(
            "| RSS growth, before the controller started to convergence | {} (RSS {} → {}) | |",
            mib(self.rss_converged.saturating_sub(self.rss_before)),
            mib(self.rss_before),
            mib(self.rss_converged)
        );
        println!(
            "| peak memory growth over RSS before the controller started (VmHWM - RSS) | {} | |",
            mib(self.hwm_converged.saturating_sub(self.rss_before))
        );
        println!(
            "| **API writes in the {} s after convergence (controller metric)** | **{}**{} | 0 |",
            QUIET_WINDOW.as_secs(),
            self.quiet_writes,
            if self.quiet_writes_by_kind.is_empty() {
                String::new()
            } else {
                format!(": {}", list(&self.quiet_writes_by_kind))
            }
        );
        println!(
            "| **objects whose resourceVersion changed in that minute (of {} LiveStreams and children)** | **{}**{} | 0 |",
            self.objects,
            object_changes,
            if object_changes == 0 { String::new() } else { format!(": {}", list(&self.quiet_changes)) }
        );
        println!(
            "| Events created or updated in that minute (of {} at convergence) | {event_changes} | |",
            self.events
        );
        println!("| reconciles in that minute | {} | |", self.quiet_reconciles);
        println!("| reconcile errors in that minute | {} | |", list(&self.quiet_errors));
        println!("| CPU of the process in that minute ² | {:.2} s | |", self.quiet_cpu);
        println!(
            "| peak memory of the process at the end (VmHWM, after the benchmark's two lists of every object) ² | {} | |",
            mib(self.hwm_end)
        );
        println!();
        println!(
            "¹ Without kube-controller-manager no pod runs, so Ready is False (WorkerNotAvailable): a stream counts \
             as converged when its ConfigMap, Deployment, Service and stream-key Secret exist and its status has \
             observedGeneration = metadata.generation and a Ready condition."
        );
        println!(
            "² The controller runs in the benchmark process: these figures include the benchmark's own client, \
             the creates and its watch caches (full LiveStreams, metadata only of children)."
        );
        println!(
            "³ Added or modified events of the benchmark's watches: writes that changed an object. A LiveStream \
             changes at least 3 times (create, finalizer, first status); a write that changes nothing is counted \
             by the controller metric but not here."
        );
    }
}

async fn run(env: &KubeEnv, n: usize, operator: OperatorConfig) -> Report {
    let client = env.client().await;
    env.handle().install_crd(&client, &crd()).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).expect("namespace");
    namespaces.create(&PostParams::default(), &ns).await.expect("create namespace");
    let views = Views::start(&client).await;

    let rss_before = status_kib("VmRSS:");
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let health = Health::new();
    // Set here so that readiness means "the controller's caches are ready".
    health.set("caches", HealthCheck::Failing("the controller has not started".into()));
    let settings =
        RunSettings { operator, namespace: Some(NAMESPACE.into()), leader_election: None, identity: "bench".into() };
    let stop = tokio_util::sync::CancellationToken::new();
    let controller_client = env.client().await;
    let mut controller = tokio::spawn(run_controller(
        controller_client,
        settings,
        Arc::new(NoopCleaner),
        metrics.clone(),
        health.clone(),
        stop.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !health.readiness().0 {
        assert!(!controller.is_finished(), "the controller stopped: {:?}", (&mut controller).await);
        assert!(Instant::now() < deadline, "the controller's caches were not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let api: Api<LiveStream> = Api::namespaced(client.clone(), NAMESPACE);
    let started = Instant::now();
    let cpu_start = cpu_seconds();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &bench_stream(i)).await.map(|_| ()) }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_for_each(|()| futures::future::ready(Ok(())))
        .await
        .expect("create LiveStreams");
    let created = started.elapsed();

    let (mut children, mut statuses) = (None, None);
    let mut last_report = Instant::now();
    let (converged, progress) = loop {
        let progress = views.progress();
        let elapsed = started.elapsed();
        if progress.seen == n && progress.with_children == n {
            children.get_or_insert(elapsed);
        }
        if progress.seen == n && progress.with_status == n {
            statuses.get_or_insert(elapsed);
        }
        if progress.seen == n && progress.converged == n {
            break (elapsed, progress);
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "{:>6.1} s: {} streams seen, {} with children, {} with a current status, {} converged; {} reconciles, {} writes",
                elapsed.as_secs_f64(),
                progress.seen,
                progress.with_children,
                progress.with_status,
                progress.converged,
                metrics.reconciles(),
                metrics.writes()
            );
        }
        assert!(!controller.is_finished(), "the controller stopped: {:?}", (&mut controller).await);
        assert!(elapsed < CONVERGE_TIMEOUT, "no convergence within {CONVERGE_TIMEOUT:?}: {progress:?}");
        tokio::time::sleep(POLL).await;
    };
    let converged_at = Instant::now();
    let converge_cpu = cpu_seconds() - cpu_start;
    let converge_updates = views.updates();
    let hwm_converged = status_kib("VmHWM:");
    let rss_converged = status_kib("VmRSS:");
    let (reconciles_0, writes_0) = (metrics.reconciles(), metrics.writes());
    let writes_by_kind_0 = by_label(&registry, "api_writes", "kind");
    let errors_0 = by_label(&registry, "reconcile_errors", "reason");
    let cpu_0 = cpu_seconds();
    let before = versions(&client).await;
    eprintln!("{:>6.1} s: converged; waiting {} s for writes", converged.as_secs_f64(), QUIET_WINDOW.as_secs());

    // The quiet minute is the measurement window itself.
    tokio::time::sleep_until((converged_at + QUIET_WINDOW).into()).await;
    let quiet_cpu = cpu_seconds() - cpu_0;
    let (reconciles_1, writes_1) = (metrics.reconciles(), metrics.writes());
    let writes_by_kind_1 = by_label(&registry, "api_writes", "kind");
    let errors_1 = by_label(&registry, "reconcile_errors", "reason");
    let after = versions(&client).await;
    let hwm_end = status_kib("VmHWM:");
    assert!(!controller.is_finished(), "the controller stopped: {:?}", (&mut controller).await);

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(20), &mut controller).await;
    controller.abort();
    views.stop();

    Report {
        streams: n,
        created,
        children: children.unwrap_or(converged),
        statuses: statuses.unwrap_or(converged),
        converged,
        ready: progress.ready,
        converge_reconciles: reconciles_0,
        converge_writes: writes_0,
        converge_writes_by_kind: writes_by_kind_0.clone(),
        converge_errors: errors_0.clone(),
        converge_updates,
        converge_cpu,
        rss_before,
        rss_converged,
        hwm_converged,
        hwm_end,
        quiet_writes: writes_1 - writes_0,
        quiet_writes_by_kind: minus(&writes_by_kind_1, &writes_by_kind_0),
        quiet_errors: minus(&errors_1, &errors_0),
        quiet_reconciles: reconciles_1 - reconciles_0,
        quiet_cpu,
        objects: before.len() - count_kind(&before, "Event"),
        events: count_kind(&before, "Event"),
        quiet_changes: changed(&before, &after),
    }
}
