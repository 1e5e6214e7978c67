//! Scale of the operator against a real API server, printed as tables (run with
//! `scripts/bench`), for 100 and for 1,000 LiveStreams (`LIVESTREAM_BENCH_STREAMS=N,M,...`
//! for other counts):
//!
//! - time from the first create of N LiveStreams to every one having its ConfigMap,
//!   Deployment, Services and Secret and a current status with a Ready condition;
//! - the API writes that took, per stream;
//! - the API writes in the minute after convergence (target: zero);
//! - the controller's peak memory (VmHWM) and CPU, measured on its own process: the
//!   `livestream controller` binary, as the chart runs it (target: below 64 MiB at 1,000);
//! - how each figure grows from the smallest count to the largest.
//!
//! The control plane is etcd and kube-apiserver only: no kube-controller-manager, so no
//! Deployment ever gets a pod and no worker runs. Ready is therefore False
//! (WorkerNotAvailable) on every stream; "converged" means the Ready condition is present
//! and the status describes the current generation.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
use livestream::controller::children::{
    MANAGED_SELECTOR, generated_secret_name, ingest_service_name, origin_service_name, worker_name,
};
use serde::de::DeserializeOwned;
use serde_json::json;
use support::kube::{KubeEnv, KubeEnvOptions};
use support::process::{ManagedProcess, free_port};
use tokio::task::JoinHandle;

const DEFAULT_STREAMS: &str = "100,1000";
const CREATE_CONCURRENCY: usize = 16;
const QUIET_WINDOW: Duration = Duration::from_secs(60);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(900);
const POLL: Duration = Duration::from_millis(100);

fn main() {
    let counts: Vec<usize> = std::env::var("LIVESTREAM_BENCH_STREAMS")
        .unwrap_or_else(|_| DEFAULT_STREAMS.into())
        .split(',')
        .map(|v| v.trim().parse::<usize>().expect("LIVESTREAM_BENCH_STREAMS: numbers of streams, comma-separated"))
        .collect();
    assert!(counts.iter().all(|n| *n > 0), "LIVESTREAM_BENCH_STREAMS: at least 1 stream each");
    let env = KubeEnv::start(KubeEnvOptions::default());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let logs = tempfile::tempdir().expect("a directory for the controller's logs");
    let mut reports = Vec::new();
    for n in counts {
        println!(
            "{n} LiveStreams created {CREATE_CONCURRENCY} at a time in one namespace against etcd + kube-apiserver \
             (no kube-controller-manager: no worker runs); `livestream controller` in its own process, watching \
             that namespace, leader election off\n"
        );
        let report = runtime.block_on(run(&env, n, logs.path()));
        report.print();
        println!();
        reports.push(report);
    }
    if reports.len() > 1 {
        print_growth(&reports);
    }
    drop(runtime);
    drop(env);
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

/// Keeps the metadata of every managed object of kind `K` in `namespace`.
fn watch_meta<K>(
    client: &Client,
    namespace: &str,
    updates: Arc<AtomicU64>,
) -> (Store<PartialObjectMeta<K>>, JoinHandle<()>)
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
    let api: Api<PartialObjectMeta<K>> = Api::namespaced(client.clone(), namespace);
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
    async fn start(client: &Client, namespace: &str) -> Self {
        let api: Api<LiveStream> = Api::namespaced(client.clone(), namespace);
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
        let (config_maps, t) = watch_meta::<ConfigMap>(client, namespace, updates[1].1.clone());
        tasks.push(t);
        let (deployments, t) = watch_meta::<Deployment>(client, namespace, updates[2].1.clone());
        tasks.push(t);
        let (services, t) = watch_meta::<Service>(client, namespace, updates[3].1.clone());
        tasks.push(t);
        let (secrets, t) = watch_meta::<Secret>(client, namespace, updates[4].1.clone());
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
                && services.contains(&origin_service_name(&name))
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

/// Every LiveStream, managed child and Event in `namespace`, with its resourceVersion.
async fn versions(client: &Client, namespace: &str) -> BTreeMap<String, String> {
    async fn add<K>(client: &Client, namespace: &str, kind: &str, lp: &ListParams, into: &mut BTreeMap<String, String>)
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug,
    {
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        let list = api.list_metadata(lp).await.unwrap_or_else(|e| panic!("list {kind}: {e}"));
        for item in list.items {
            into.insert(format!("{kind}/{}", item.name_any()), item.resource_version().unwrap_or_default());
        }
    }
    let mut all = BTreeMap::new();
    let managed = ListParams::default().labels(MANAGED_SELECTOR);
    add::<LiveStream>(client, namespace, "LiveStream", &ListParams::default(), &mut all).await;
    add::<ConfigMap>(client, namespace, "ConfigMap", &managed, &mut all).await;
    add::<Deployment>(client, namespace, "Deployment", &managed, &mut all).await;
    add::<Service>(client, namespace, "Service", &managed, &mut all).await;
    add::<Secret>(client, namespace, "Secret", &managed, &mut all).await;
    add::<Event>(client, namespace, "Event", &ListParams::default(), &mut all).await;
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

/// `livestream controller` in a process of its own, as the chart runs it, so that its
/// memory and CPU are its own and not the benchmark's.
struct ControllerProcess {
    process: ManagedProcess,
    pid: u32,
    base: String,
    http: reqwest::Client,
}

/// What the controller's `/metrics` say, at one moment.
#[derive(Clone, Debug, Default)]
struct Scrape {
    reconciles: u64,
    writes_by_kind: BTreeMap<String, u64>,
    errors_by_reason: BTreeMap<String, u64>,
}

impl Scrape {
    fn writes(&self) -> u64 {
        self.writes_by_kind.values().sum()
    }
}

impl ControllerProcess {
    fn start(env: &KubeEnv, namespace: &str, logs: &Path) -> Self {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_livestream"));
        command
            .args(["controller", "--namespace", namespace, "--leader-election", "false"])
            .args(["--worker-image", "livestream:bench", "--listen", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", env.kubeconfig())
            .env("RUST_LOG", "warn");
        let mut process =
            ManagedProcess::spawn("livestream controller", command, &logs.join(format!("{namespace}.log")));
        let pid = process.pid().expect("the controller's pid");
        process.assert_running();
        Self { process, pid, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() }
    }

    async fn ready(&mut self) -> bool {
        self.process.assert_running();
        let response = self.http.get(format!("{}/readyz", self.base)).send().await;
        response.is_ok_and(|r| r.status().is_success())
    }

    async fn scrape(&mut self) -> Scrape {
        self.process.assert_running();
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("the controller's /metrics")
            .text()
            .await
            .expect("the body of /metrics");
        let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) as u64;
        let by_label = |metric: &str, label: &str| -> BTreeMap<String, u64> {
            let prefix = format!("livestream_controller_{metric}_total{{{label}=\"");
            text.lines()
                .filter_map(|line| Some((line.strip_prefix(&prefix)?.split('"').next()?.to_string(), value(line))))
                .collect()
        };
        Scrape {
            reconciles: text
                .lines()
                .find(|l| l.starts_with("livestream_controller_reconciles_total "))
                .map(value)
                .unwrap_or(0),
            writes_by_kind: by_label("api_writes", "kind"),
            errors_by_reason: by_label("reconcile_errors", "reason"),
        }
    }

    /// A `/proc/PID/status` figure in KiB (`VmHWM:`, `VmRSS:`).
    fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).expect("the controller's status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// CPU seconds (user + system) of the controller.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).expect("the controller's stat");
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // After the name: state, ppid, pgrp, session, tty, tpgid, flags, minflt, cminflt,
        // majflt, cmajflt, utime, stime.
        let ticks: u64 = fields[11..13].iter().filter_map(|f| f.parse::<u64>().ok()).sum();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        ticks as f64 / hz
    }

    fn stop(mut self) {
        self.process.terminate(Duration::from_secs(20));
    }
}

fn minus(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0))).filter(|(_, v)| *v > 0).collect()
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
    converge: Scrape,
    converge_updates: BTreeMap<String, u64>,
    converge_cpu: f64,
    rss_idle: u64,
    hwm_converged: u64,
    rss_converged: u64,
    hwm_end: u64,
    quiet: Scrape,
    quiet_cpu: f64,
    objects: usize,
    events: usize,
    quiet_changes: BTreeMap<String, usize>,
}

impl Report {
    fn quiet_writes(&self) -> u64 {
        self.quiet.writes() - self.converge.writes()
    }

    fn print(&self) {
        let n = self.streams as f64;
        let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
        let object_changes: usize =
            self.quiet_changes.iter().filter(|(kind, _)| kind.as_str() != "Event").map(|(_, c)| c).sum();
        let event_changes = self.quiet_changes.get("Event").copied().unwrap_or(0);
        let quiet_by_kind = minus(&self.quiet.writes_by_kind, &self.converge.writes_by_kind);
        println!("| figure | value | target |");
        println!("| --- | --- | --- |");
        println!(
            "| LiveStreams created ({CREATE_CONCURRENCY} at a time) | {} in {} | |",
            self.streams,
            secs(self.created)
        );
        println!("| first create to every stream with its 5 children | {} | |", secs(self.children));
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
            self.converge.reconciles,
            self.converge.reconciles as f64 / n
        );
        println!(
            "| **API writes to convergence (controller metric)** | **{} ({:.1} per stream)**: {} | |",
            self.converge.writes(),
            self.converge.writes() as f64 / n,
            list(&self.converge.writes_by_kind)
        );
        let updates: u64 = self.converge_updates.values().sum();
        println!(
            "| objects created or changed to convergence, seen by watch ² | {updates} ({:.1} per stream): {} | |",
            updates as f64 / n,
            list(&self.converge_updates)
        );
        println!("| reconcile errors to convergence | {} | |", list(&self.converge.errors_by_reason));
        println!("| controller CPU, first create to convergence | {:.1} s | |", self.converge_cpu);
        println!("| controller memory before the first create (RSS, caches listed) | {} | |", mib(self.rss_idle));
        println!(
            "| **controller peak memory at convergence (VmHWM of its process)** | **{}** (RSS {}) | below 64 MiB |",
            mib(self.hwm_converged),
            mib(self.rss_converged)
        );
        println!(
            "| **API writes in the {} s after convergence (controller metric)** | **{}**{} | 0 |",
            QUIET_WINDOW.as_secs(),
            self.quiet_writes(),
            if quiet_by_kind.is_empty() { String::new() } else { format!(": {}", list(&quiet_by_kind)) }
        );
        println!(
            "| objects whose resourceVersion changed in that minute (of {} LiveStreams and children) | {}{} | 0 |",
            self.objects,
            object_changes,
            if object_changes == 0 { String::new() } else { format!(": {}", list(&self.quiet_changes)) }
        );
        println!(
            "| Events created or updated in that minute (of {} at convergence) | {event_changes} | |",
            self.events
        );
        println!("| reconciles in that minute | {} | |", self.quiet.reconciles - self.converge.reconciles);
        println!(
            "| reconcile errors in that minute | {} | |",
            list(&minus(&self.quiet.errors_by_reason, &self.converge.errors_by_reason))
        );
        println!("| controller CPU in that minute | {:.2} s | |", self.quiet_cpu);
        println!("| controller peak memory at the end (VmHWM) | {} | below 64 MiB |", mib(self.hwm_end));
        println!();
        println!(
            "¹ Without kube-controller-manager no pod runs, so Ready is False (WorkerNotAvailable): a stream counts \
             as converged when its ConfigMap, Deployment, ingest and origin Services and stream-key Secret exist and \
             its status has observedGeneration = metadata.generation and a Ready condition."
        );
        println!(
            "² Added or modified events of the benchmark's watches: writes that changed an object. A LiveStream \
             changes at least 3 times (create, finalizer, first status); a write that changes nothing is counted \
             by the controller metric but not here."
        );
    }
}

/// How the figures grow from the smallest count of streams to the largest.
fn print_growth(reports: &[Report]) {
    let (Some(small), Some(large)) = (reports.first(), reports.last()) else { return };
    let ratio = |a: f64, b: f64| if a > 0.0 { format!("{:.1}x", b / a) } else { "-".into() };
    let (ns, nl) = (small.streams as f64, large.streams as f64);
    println!(
        "| figure | {} streams | {} streams | growth ({:.0}x the streams) |",
        small.streams,
        large.streams,
        nl / ns
    );
    println!("| --- | --- | --- | --- |");
    let row = |name: &str, a: f64, b: f64, show: &dyn Fn(f64) -> String| {
        println!("| {name} | {} | {} | {} |", show(a), show(b), ratio(a, b));
    };
    let seconds = |v: f64| format!("{v:.1} s");
    let plain = |v: f64| format!("{v:.1}");
    let memory = |v: f64| mib(v as u64);
    row("first create to convergence", small.converged.as_secs_f64(), large.converged.as_secs_f64(), &seconds);
    row(
        "API writes per stream to convergence",
        small.converge.writes() as f64 / ns,
        large.converge.writes() as f64 / nl,
        &plain,
    );
    row(
        "reconciles per stream to convergence",
        small.converge.reconciles as f64 / ns,
        large.converge.reconciles as f64 / nl,
        &plain,
    );
    row("API writes in the quiet minute", small.quiet_writes() as f64, large.quiet_writes() as f64, &plain);
    row("controller CPU to convergence", small.converge_cpu, large.converge_cpu, &seconds);
    row("controller peak memory (VmHWM)", small.hwm_end as f64, large.hwm_end as f64, &memory);
    row(
        "controller memory per stream over idle (VmHWM - idle RSS) / streams, KiB",
        small.hwm_end.saturating_sub(small.rss_idle) as f64 / ns,
        large.hwm_end.saturating_sub(large.rss_idle) as f64 / nl,
        &plain,
    );
}

async fn run(env: &KubeEnv, n: usize, logs: &Path) -> Report {
    let namespace = format!("bench-{n}");
    let client = env.client().await;
    env.handle().install_crd(&client, &crd()).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("namespace");
    namespaces.create(&PostParams::default(), &ns).await.expect("create namespace");
    let views = Views::start(&client, &namespace).await;

    let mut controller = ControllerProcess::start(env, &namespace, logs);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !controller.ready().await {
        assert!(Instant::now() < deadline, "the controller's caches were not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_idle = controller.memory_kib("VmRSS:");

    let api: Api<LiveStream> = Api::namespaced(client.clone(), &namespace);
    let started = Instant::now();
    let cpu_start = controller.cpu_seconds();
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
            let scrape = controller.scrape().await;
            eprintln!(
                "{:>6.1} s: {} streams seen, {} with children, {} with a current status, {} converged; {} reconciles, {} writes",
                elapsed.as_secs_f64(),
                progress.seen,
                progress.with_children,
                progress.with_status,
                progress.converged,
                scrape.reconciles,
                scrape.writes()
            );
        }
        assert!(elapsed < CONVERGE_TIMEOUT, "no convergence within {CONVERGE_TIMEOUT:?}: {progress:?}");
        tokio::time::sleep(POLL).await;
    };
    let converged_at = Instant::now();
    let converge_cpu = controller.cpu_seconds() - cpu_start;
    let converge_updates = views.updates();
    let hwm_converged = controller.memory_kib("VmHWM:");
    let rss_converged = controller.memory_kib("VmRSS:");
    let converge = controller.scrape().await;
    let cpu_0 = controller.cpu_seconds();
    let before = versions(&client, &namespace).await;
    eprintln!("{:>6.1} s: converged; waiting {} s for writes", converged.as_secs_f64(), QUIET_WINDOW.as_secs());

    // The quiet minute is the measurement window itself.
    tokio::time::sleep_until((converged_at + QUIET_WINDOW).into()).await;
    let quiet_cpu = controller.cpu_seconds() - cpu_0;
    let quiet = controller.scrape().await;
    let after = versions(&client, &namespace).await;
    let hwm_end = controller.memory_kib("VmHWM:");
    controller.stop();
    views.stop();

    Report {
        streams: n,
        created,
        children: children.unwrap_or(converged),
        statuses: statuses.unwrap_or(converged),
        converged,
        ready: progress.ready,
        converge,
        converge_updates,
        converge_cpu,
        rss_idle,
        hwm_converged,
        rss_converged,
        hwm_end,
        quiet,
        quiet_cpu,
        objects: before.len() - count_kind(&before, "Event"),
        events: count_kind(&before, "Event"),
        quiet_changes: changed(&before, &after),
    }
}
