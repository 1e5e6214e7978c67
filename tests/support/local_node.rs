//! A test "local node": a stand-in for a kubelet without a container runtime, so that
//! Deployments can be driven end to end against a real API server.
//!
//! It registers a Ready Node and keeps its Lease renewed, binds unscheduled Pods to it (there
//! is no scheduler), and runs the first container of every Pod bound to it as a local
//! process: the executable comes from the image through a map the test supplies; command and
//! args get Kubernetes `$(VAR)` expansion; env comes from values, Secrets, ConfigMaps and
//! field references; ConfigMap and Secret volumes are written into a per-pod directory and
//! emptyDirs are directories there, with every arg and env value under a mount path rewritten
//! to that directory. Each pod gets its own loopback IP (`127.0.N.M`), reports Running with
//! Ready driven by its readiness probe, is restarted per its restart policy, and is stopped
//! (SIGTERM, then SIGKILL after the grace period) and removed when deleted. NodePort and
//! LoadBalancer Services are forwarded from `127.0.0.1:NODEPORT` to a ready pod.
//!
//! Not emulated: liveness and startup probes, init and sidecar containers, `envFrom`,
//! projected and other volume types (a pod using one reports `CreateContainerConfigError`),
//! security contexts, resources, and the real exit code of a container (0 or 1).
//! Dropping the [`LocalNode`] kills every process and stops every task it started.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, EnvVar, KeyToPath, Node, Pod, Probe, Secret, Service, ServicePort, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::process::ManagedProcess;

/// How often a running pod's process and readiness probe are checked.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How often the node's Lease is renewed.
const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// The longest a deleted pod's process gets between SIGTERM and SIGKILL.
const MAX_GRACE: Duration = Duration::from_secs(30);
/// The longest wait before a crashed container is started again.
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(10);
/// The namespace of node Leases.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Maps a container image to the local executable that stands in for it.
pub type ImageMap = Arc<dyn Fn(&str) -> PathBuf + Send + Sync>;

/// How to start a [`LocalNode`].
#[derive(Clone)]
pub struct LocalNodeOptions {
    /// The Node's name.
    pub name: String,
    /// The executable of each image; it replaces the first word of the container's command
    /// (or is the entrypoint when the container has no command).
    pub executable_for_image: ImageMap,
    /// Environment every container starts with, as an image's own environment (`PATH`).
    pub base_env: Vec<(String, String)>,
}

impl LocalNodeOptions {
    /// A node named `local-node` whose containers start with this process's `PATH`.
    pub fn new(executable_for_image: impl Fn(&str) -> PathBuf + Send + Sync + 'static) -> Self {
        Self {
            name: "local-node".into(),
            executable_for_image: Arc::new(executable_for_image),
            base_env: std::env::var("PATH").map(|path| vec![("PATH".to_string(), path)]).unwrap_or_default(),
        }
    }

    /// Sets (or replaces) one variable of the base environment.
    pub fn with_env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.base_env.retain(|(n, _)| n != name);
        self.base_env.push((name.to_string(), value.into()));
        self
    }
}

/// A running local node. Dropping it kills its processes and stops its tasks.
pub struct LocalNode {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the node's tasks share.
struct Shared {
    client: Client,
    options: LocalNodeOptions,
    dir: tempfile::TempDir,
    /// Running container processes by pod UID.
    processes: Mutex<HashMap<String, ManagedProcess>>,
    /// Pods with an address, for Service forwarding, by pod UID.
    endpoints: Mutex<HashMap<String, Endpoint>>,
    /// Container logs by `namespace/name`.
    logs: Mutex<BTreeMap<String, PathBuf>>,
    ip_block: u8,
    next_ip: AtomicU32,
}

/// A pod as Service forwarding sees it.
#[derive(Clone, Debug)]
struct Endpoint {
    namespace: String,
    labels: BTreeMap<String, String>,
    ip: IpAddr,
    ready: bool,
    ports: Vec<ContainerPort>,
}

impl LocalNode {
    /// Registers the Node and starts binding, running and forwarding.
    pub async fn start(client: Client, options: LocalNodeOptions) -> Self {
        let dir = tempfile::Builder::new().prefix("local-node-").tempdir().expect("create the local node directory");
        let shared = Arc::new(Shared {
            client,
            options,
            dir,
            processes: Mutex::new(HashMap::new()),
            endpoints: Mutex::new(HashMap::new()),
            logs: Mutex::new(BTreeMap::new()),
            ip_block: 100 + (rand::random::<u8>() % 100),
            next_ip: AtomicU32::new(0),
        });
        register_node(&shared).await;
        renew_lease(&shared).await.unwrap_or_else(|e| panic!("create the Lease of the local node: {e}"));
        let tasks = vec![
            tokio::spawn(keep_lease_renewed(shared.clone())),
            tokio::spawn(run_pods(shared.clone())),
            tokio::spawn(forward_services(shared.clone())),
        ];
        Self { shared, tasks }
    }

    /// The Node's name.
    pub fn name(&self) -> &str {
        &self.shared.options.name
    }

    /// The directory holding the pods' volumes and logs.
    pub fn dir(&self) -> &Path {
        self.shared.dir.path()
    }

    /// The log of the pod `namespace/name` (all its container runs), if it ran here.
    pub fn pod_log(&self, namespace: &str, name: &str) -> Option<String> {
        let path = self.shared.logs.lock().expect("logs lock").get(&format!("{namespace}/{name}")).cloned()?;
        Some(String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned())
    }

    /// The last `max` bytes of every pod's log, for failure messages.
    pub fn logs_tail(&self, max: usize) -> String {
        let logs = self.shared.logs.lock().expect("logs lock").clone();
        let mut out = String::new();
        for (pod, path) in logs {
            let bytes = std::fs::read(&path).unwrap_or_default();
            let tail = String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(max)..]).into_owned();
            out.push_str(&format!("--- log of pod {pod} ({}):\n{tail}\n", path.display()));
        }
        if out.is_empty() { "(no pod ran on the local node)".into() } else { out }
    }
}

impl Drop for LocalNode {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let processes: Vec<ManagedProcess> =
            self.shared.processes.lock().map(|mut p| p.drain().map(|(_, v)| v).collect()).unwrap_or_default();
        drop(processes);
    }
}

// ---------------------------------------------------------------------------------------
// The Node and its Lease.

async fn register_node(shared: &Shared) {
    let name = &shared.options.name;
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
        }},
    }))
    .expect("node object");
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("register the Node {name}: {e}"),
    }
    let now = now_rfc3339();
    let status = json!({"status": {
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "the local test node runs pods as processes",
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
        "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("report the status of the Node {name}: {e}"));
}

async fn renew_lease(shared: &Shared) -> Result<(), kube::Error> {
    let name = &shared.options.name;
    let leases: Api<Lease> = Api::namespaced(shared.client.clone(), NODE_LEASE_NAMESPACE);
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now_rfc3339_micros()},
    });
    leases.patch(name, &PatchParams::apply("local-node").force(), &Patch::Apply(&lease)).await?;
    Ok(())
}

async fn keep_lease_renewed(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(LEASE_RENEW_INTERVAL).await;
        if let Err(e) = renew_lease(&shared).await {
            tracing::warn!(error = %e, "local node: renewing the Lease failed");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pods: binding, and one supervisor per pod bound to this node.

/// A supervisor's stop switch; dropping the map entry keeps the pod from starting again.
struct Supervisor {
    stop: watch::Sender<bool>,
}

async fn run_pods(shared: Arc<Shared>) {
    let pods: Api<Pod> = Api::all(shared.client.clone());
    let mut supervisors: HashMap<String, Supervisor> = HashMap::new();
    let mut running = tokio::task::JoinSet::new();
    let mut events = watcher(pods, watcher::Config::default()).default_backoff().boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(pod) | Event::InitApply(pod)) => {
                on_pod_changed(&shared, pod, &mut supervisors, &mut running).await;
            }
            Ok(Event::Delete(pod)) => {
                if let Some(supervisor) = supervisors.get(&pod.uid().unwrap_or_default()) {
                    supervisor.stop.send_replace(true);
                }
            }
            Ok(Event::Init | Event::InitDone) => {}
            Err(e) => tracing::warn!(error = %e, "local node: watching pods failed"),
        }
        while running.try_join_next().is_some() {}
    }
}

async fn on_pod_changed(
    shared: &Arc<Shared>,
    pod: Pod,
    supervisors: &mut HashMap<String, Supervisor>,
    running: &mut tokio::task::JoinSet<()>,
) {
    let Some(uid) = pod.uid() else { return };
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
    let deleting = pod.metadata.deletion_timestamp.is_some();
    if node_name.is_empty() {
        if !deleting {
            bind(shared, &pod).await;
        }
        return;
    }
    if node_name != shared.options.name {
        return;
    }
    if let Some(supervisor) = supervisors.get(&uid) {
        if deleting {
            supervisor.stop.send_replace(true);
        }
        return;
    }
    if deleting {
        delete_now(shared, &pod).await;
        return;
    }
    if matches!(pod_phase(&pod), Some("Succeeded" | "Failed")) {
        return;
    }
    let (stop, stopped) = watch::channel(false);
    supervisors.insert(uid, Supervisor { stop });
    running.spawn(supervise(shared.clone(), pod, stopped));
}

/// Binds an unscheduled pod to this node, as a scheduler would.
async fn bind(shared: &Shared, pod: &Pod) {
    let Some(namespace) = pod.namespace() else { return };
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), &namespace);
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod.name_any(), "uid": pod.uid()},
        "target": {"apiVersion": "v1", "kind": "Node", "name": shared.options.name},
    });
    match pods.create_subresource::<_, Value>("binding", &pod.name_any(), &PostParams::default(), &binding).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => {}
        Err(e) => tracing::warn!(pod = %pod_key(pod), error = %e, "local node: binding failed"),
    }
}

/// Removes a deleted pod's object at once (grace 0), as the kubelet does once it stopped.
async fn delete_now(shared: &Shared, pod: &Pod) {
    let Some(namespace) = pod.namespace() else { return };
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), &namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: pod.uid(), resource_version: None }),
        ..DeleteParams::default()
    };
    match pods.delete(&pod.name_any(), &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
        Err(e) => tracing::warn!(pod = %pod_key(pod), error = %e, "local node: removing the pod failed"),
    }
}

fn pod_phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

/// Runs one pod until it is deleted, then stops its process and removes its object.
async fn supervise(shared: Arc<Shared>, pod: Pod, stop: watch::Receiver<bool>) {
    let mut run = PodRun::new(shared.clone(), pod);
    run.run_until_stopped(stop).await;
    let latest = latest_pod(&shared, &run.pod).await.unwrap_or_else(|| run.pod.clone());
    run.stop_process(grace_period(&latest)).await;
    delete_now(&shared, &run.pod).await;
    shared.endpoints.lock().expect("endpoints lock").remove(&run.uid);
}

async fn latest_pod(shared: &Shared, pod: &Pod) -> Option<Pod> {
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), &pod.namespace()?);
    pods.get_opt(&pod.name_any()).await.ok().flatten().filter(|p| p.uid() == pod.uid())
}

/// The deletion grace period of a pod, at most [`MAX_GRACE`].
fn grace_period(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0)).min(MAX_GRACE)
}

/// What is known about a pod's one container, for its status.
#[derive(Clone, Debug, PartialEq)]
enum ContainerRun {
    Waiting { reason: String, message: String },
    Running { started_at: String, ready: bool },
    Terminated { exit_code: i32, reason: String, started_at: String, finished_at: String },
}

/// One pod on this node.
struct PodRun {
    shared: Arc<Shared>,
    pod: Pod,
    uid: String,
    ip: IpAddr,
    dir: PathBuf,
    log: PathBuf,
    started_at: String,
    restarts: u32,
    state: ContainerRun,
    last_terminated: Option<ContainerRun>,
    ready_since: String,
    last_report: Option<Value>,
    http: reqwest::Client,
}

impl PodRun {
    fn new(shared: Arc<Shared>, pod: Pod) -> Self {
        let uid = pod.uid().unwrap_or_default();
        let ip = shared.allocate_ip();
        let dir = shared.dir.path().join(format!(
            "{}_{}_{}",
            pod.namespace().unwrap_or_default(),
            pod.name_any(),
            &uid[..uid.len().min(8)]
        ));
        std::fs::create_dir_all(&dir).expect("create the pod directory");
        let log = dir.join(format!("{}.log", first_container(&pod).map(|c| c.name.as_str()).unwrap_or("container")));
        shared.logs.lock().expect("logs lock").insert(pod_key(&pod), log.clone());
        let now = now_rfc3339();
        Self {
            shared,
            pod,
            uid,
            ip,
            dir,
            log,
            started_at: now.clone(),
            restarts: 0,
            state: ContainerRun::Waiting { reason: "ContainerCreating".into(), message: String::new() },
            last_terminated: None,
            ready_since: now,
            last_report: None,
            http: reqwest::Client::builder().no_proxy().build().expect("HTTP client for probes"),
        }
    }

    /// Starts, watches and restarts the container until `stop` turns true.
    async fn run_until_stopped(&mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let launch = match self.prepare_launch().await {
                Ok(launch) => launch,
                Err(message) => {
                    self.state = ContainerRun::Waiting { reason: "CreateContainerConfigError".into(), message };
                    self.report("Pending").await;
                    if sleep_or_stop(&mut stop, Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            self.start_process(launch);
            self.report("Running").await;
            if self.watch_process(&mut stop).await {
                return;
            }
            let succeeded = self.take_exit_success();
            self.record_exit(succeeded);
            if !self.restarts_after(succeeded) {
                self.report(if succeeded { "Succeeded" } else { "Failed" }).await;
                let _ = stop.wait_for(|stopped| *stopped).await;
                return;
            }
            let backoff = restart_backoff(self.restarts);
            self.state = ContainerRun::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: format!("back-off {backoff:?} restarting the failed container"),
            };
            self.report("Running").await;
            if sleep_or_stop(&mut stop, backoff).await {
                return;
            }
            self.restarts += 1;
        }
    }

    /// Polls the process and the readiness probe; true when stopped, false when the
    /// process exited.
    async fn watch_process(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        loop {
            if sleep_or_stop(stop, POLL_INTERVAL).await {
                return true;
            }
            if !self.process_running() {
                return false;
            }
            let ready = self.probe_ready().await;
            if let ContainerRun::Running { ready: was_ready, .. } = &mut self.state
                && *was_ready != ready
            {
                *was_ready = ready;
                self.ready_since = now_rfc3339();
            }
            self.report("Running").await;
        }
    }

    async fn prepare_launch(&self) -> Result<Launch, String> {
        let container = first_container(&self.pod).ok_or("the pod has no container")?.clone();
        let mounts = self.prepare_volumes(&container).await?;
        let env = self.resolve_env(&container, &mounts).await?;
        let image = container.image.clone().unwrap_or_default();
        let executable = (self.shared.options.executable_for_image)(&image);
        let lookup = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let command = container.command.clone().unwrap_or_default();
        let args = command
            .iter()
            .skip(1)
            .chain(container.args.iter().flatten())
            .map(|arg| rewrite_mount_paths(&expand_references(arg, &lookup), &mounts))
            .collect();
        Ok(Launch { executable, args, env })
    }

    /// Writes the pod's volumes into its directory; returns (mount path, host path) of
    /// each mount of `container`.
    async fn prepare_volumes(&self, container: &Container) -> Result<Vec<(String, PathBuf)>, String> {
        let volumes = self.pod.spec.as_ref().and_then(|s| s.volumes.clone()).unwrap_or_default();
        let mut mounts = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let volume = volumes
                .iter()
                .find(|v| v.name == mount.name)
                .ok_or_else(|| format!("the mount {} names no volume of the pod", mount.name))?;
            let host = self.dir.join("volumes").join(&volume.name);
            self.write_volume(volume, &host).await?;
            let host = match mount.sub_path.as_deref().filter(|p| !p.is_empty()) {
                Some(sub) => host.join(sub),
                None => host,
            };
            mounts.push((mount.mount_path.trim_end_matches('/').to_string(), host));
        }
        Ok(mounts)
    }

    async fn write_volume(&self, volume: &Volume, host: &Path) -> Result<(), String> {
        std::fs::create_dir_all(host).map_err(|e| format!("create {}: {e}", host.display()))?;
        if volume.empty_dir.is_some() {
            return Ok(());
        }
        let (files, items) = if let Some(source) = &volume.config_map {
            (self.config_map_files(&source.name, source.optional).await?, source.items.clone())
        } else if let Some(source) = &volume.secret {
            let name = source.secret_name.clone().unwrap_or_default();
            (self.secret_files(&name, source.optional).await?, source.items.clone())
        } else {
            return Err(format!("volume {} has a type the local node does not support", volume.name));
        };
        for (path, bytes) in select_items(files, items.as_deref())? {
            let file = host.join(&path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
            }
            std::fs::write(&file, bytes).map_err(|e| format!("write {}: {e}", file.display()))?;
        }
        Ok(())
    }

    async fn config_map_files(&self, name: &str, optional: Option<bool>) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let api: Api<ConfigMap> = Api::namespaced(self.shared.client.clone(), &self.namespace());
        match api.get_opt(name).await.map_err(|e| format!("read ConfigMap {name}: {e}"))? {
            Some(cm) => Ok(config_map_entries(&cm)),
            None if optional == Some(true) => Ok(BTreeMap::new()),
            None => Err(format!("ConfigMap {name} not found")),
        }
    }

    async fn secret_files(&self, name: &str, optional: Option<bool>) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let api: Api<Secret> = Api::namespaced(self.shared.client.clone(), &self.namespace());
        match api.get_opt(name).await.map_err(|e| format!("read Secret {name}: {e}"))? {
            Some(secret) => Ok(secret_entries(&secret)),
            None if optional == Some(true) => Ok(BTreeMap::new()),
            None => Err(format!("Secret {name} not found")),
        }
    }

    /// The container's environment in order, each value expanded against the ones
    /// before it; never logged, since values may come from Secrets.
    async fn resolve_env(
        &self,
        container: &Container,
        mounts: &[(String, PathBuf)],
    ) -> Result<Vec<(String, String)>, String> {
        let mut env: Vec<(String, String)> = Vec::new();
        for var in container.env.iter().flatten() {
            let Some(value) = self.env_value(var, &env).await? else { continue };
            env.retain(|(n, _)| n != &var.name);
            env.push((var.name.clone(), rewrite_mount_paths(&value, mounts)));
        }
        Ok(env)
    }

    async fn env_value(&self, var: &EnvVar, earlier: &[(String, String)]) -> Result<Option<String>, String> {
        let Some(source) = &var.value_from else {
            let lookup = |name: &str| earlier.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone());
            return Ok(Some(expand_references(var.value.as_deref().unwrap_or(""), &lookup)));
        };
        if let Some(field) = &source.field_ref {
            return self.field_value(&field.field_path).map(Some);
        }
        let (files, key, optional) = if let Some(selector) = &source.secret_key_ref {
            (self.secret_files(&selector.name, selector.optional).await?, &selector.key, selector.optional)
        } else if let Some(selector) = &source.config_map_key_ref {
            (self.config_map_files(&selector.name, selector.optional).await?, &selector.key, selector.optional)
        } else {
            return Err(format!("env {} has a source the local node does not support", var.name));
        };
        match files.get(key) {
            Some(bytes) => Ok(Some(String::from_utf8_lossy(bytes).into_owned())),
            None if optional == Some(true) => Ok(None),
            None => Err(format!("env {}: key {key} not found", var.name)),
        }
    }

    fn field_value(&self, path: &str) -> Result<String, String> {
        let spec = self.pod.spec.as_ref();
        match path {
            "status.podIP" => Ok(self.ip.to_string()),
            "status.hostIP" => Ok("127.0.0.1".into()),
            "metadata.name" => Ok(self.pod.name_any()),
            "metadata.namespace" => Ok(self.namespace()),
            "metadata.uid" => Ok(self.uid.clone()),
            "spec.nodeName" => Ok(self.shared.options.name.clone()),
            "spec.serviceAccountName" => Ok(spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default()),
            other => Err(format!("the field reference {other} is not supported by the local node")),
        }
    }

    fn start_process(&mut self, launch: Launch) {
        let mut command = Command::new(&launch.executable);
        command.args(&launch.args).current_dir(&self.dir).env_clear();
        command.envs(self.shared.options.base_env.iter().map(|(k, v)| (k, v)));
        command.env("HOSTNAME", self.pod.name_any());
        command.envs(launch.env.iter().map(|(k, v)| (k, v)));
        let name = format!("pod {}", pod_key(&self.pod));
        let process = ManagedProcess::spawn(&name, command, &self.log);
        self.shared.processes.lock().expect("processes lock").insert(self.uid.clone(), process);
        self.state = ContainerRun::Running { started_at: now_rfc3339(), ready: false };
        self.ready_since = now_rfc3339();
    }

    fn process_running(&self) -> bool {
        let mut processes = self.shared.processes.lock().expect("processes lock");
        processes.get_mut(&self.uid).is_some_and(ManagedProcess::is_running)
    }

    /// Whether the exited process succeeded; forgets it.
    fn take_exit_success(&self) -> bool {
        let process = self.shared.processes.lock().expect("processes lock").remove(&self.uid);
        process.is_some_and(|mut p| p.exit_success())
    }

    fn record_exit(&mut self, succeeded: bool) {
        let started_at = match &self.state {
            ContainerRun::Running { started_at, .. } => started_at.clone(),
            _ => now_rfc3339(),
        };
        let terminated = ContainerRun::Terminated {
            exit_code: if succeeded { 0 } else { 1 },
            reason: if succeeded { "Completed" } else { "Error" }.into(),
            started_at,
            finished_at: now_rfc3339(),
        };
        self.last_terminated = Some(terminated.clone());
        self.state = terminated;
    }

    fn restarts_after(&self, succeeded: bool) -> bool {
        match self.pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always") {
            "Never" => false,
            "OnFailure" => !succeeded,
            _ => true,
        }
    }

    /// SIGTERM, then SIGKILL once `grace` has passed.
    async fn stop_process(&mut self, grace: Duration) {
        self.set_endpoint_ready(false);
        let signalled = {
            let mut processes = self.shared.processes.lock().expect("processes lock");
            match processes.get_mut(&self.uid) {
                Some(process) => process.is_running() && process.pid().map(send_sigterm).is_some(),
                None => false,
            }
        };
        if signalled {
            let deadline = tokio::time::Instant::now() + grace;
            while self.process_running() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let process = self.shared.processes.lock().expect("processes lock").remove(&self.uid);
        drop(process);
    }

    async fn probe_ready(&self) -> bool {
        let Some(container) = first_container(&self.pod) else { return false };
        match &container.readiness_probe {
            None => true,
            Some(probe) => http_probe_succeeds(&self.http, probe, container, self.ip).await,
        }
    }

    fn namespace(&self) -> String {
        self.pod.namespace().unwrap_or_default()
    }

    fn ready(&self) -> bool {
        matches!(self.state, ContainerRun::Running { ready: true, .. })
    }

    fn set_endpoint_ready(&self, ready: bool) {
        let container = first_container(&self.pod);
        let endpoint = Endpoint {
            namespace: self.namespace(),
            labels: self.pod.labels().clone(),
            ip: self.ip,
            ready,
            ports: container.and_then(|c| c.ports.clone()).unwrap_or_default(),
        };
        self.shared.endpoints.lock().expect("endpoints lock").insert(self.uid.clone(), endpoint);
    }

    /// Writes the pod's status when it changed since the last write.
    async fn report(&mut self, phase: &str) {
        self.set_endpoint_ready(self.ready());
        let status = self.status_json(phase);
        if self.last_report.as_ref() == Some(&status) {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.namespace());
        match pods.patch_status(&self.pod.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await {
            Ok(_) => self.last_report = Some(status),
            Err(e) => tracing::warn!(pod = %pod_key(&self.pod), error = %e, "local node: pod status write failed"),
        }
    }

    fn status_json(&self, phase: &str) -> Value {
        let container = first_container(&self.pod);
        let ready = self.ready();
        let condition = |type_: &str, status: bool, since: &str| json!({"type": type_, "status": if status { "True" } else { "False" }, "lastTransitionTime": since});
        let ip = self.ip.to_string();
        json!({"status": {
            "phase": phase,
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.started_at,
            "conditions": [
                condition("PodScheduled", true, &self.started_at),
                condition("Initialized", true, &self.started_at),
                condition("ContainersReady", ready, &self.ready_since),
                condition("Ready", ready, &self.ready_since),
            ],
            "containerStatuses": [{
                "name": container.map(|c| c.name.clone()).unwrap_or_default(),
                "image": container.and_then(|c| c.image.clone()).unwrap_or_default(),
                "imageID": "",
                "ready": ready,
                "started": matches!(self.state, ContainerRun::Running { .. }),
                "restartCount": self.restarts,
                "state": state_json(&self.state),
                "lastState": self.last_terminated.as_ref().map(state_json).unwrap_or_else(|| json!({})),
            }],
        }})
    }
}

/// How to start a container.
struct Launch {
    executable: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn first_container(pod: &Pod) -> Option<&Container> {
    pod.spec.as_ref().and_then(|s| s.containers.first())
}

fn state_json(state: &ContainerRun) -> Value {
    match state {
        ContainerRun::Waiting { reason, message } => json!({"waiting": {"reason": reason, "message": message}}),
        ContainerRun::Running { started_at, .. } => json!({"running": {"startedAt": started_at}}),
        ContainerRun::Terminated { exit_code, reason, started_at, finished_at } => json!({"terminated": {
            "exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": finished_at,
        }}),
    }
}

/// 1 s, 2 s, 4 s, ... at most [`MAX_RESTART_BACKOFF`].
fn restart_backoff(restarts: u32) -> Duration {
    Duration::from_secs(1u64 << restarts.min(6)).min(MAX_RESTART_BACKOFF)
}

/// Sleeps `duration`; true if `stop` turned true first (or its sender is gone).
async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        changed = stop.wait_for(|stopped| *stopped) => { let _ = changed; true }
        _ = tokio::time::sleep(duration) => false,
    }
}

fn send_sigterm(pid: u32) {
    // SAFETY: plain kill(2) on a child that has not been reaped (checked under the lock).
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// Whether an HTTP GET probe answers 200-399 within its timeout.
async fn http_probe_succeeds(http: &reqwest::Client, probe: &Probe, container: &Container, ip: IpAddr) -> bool {
    let Some(get) = &probe.http_get else { return true };
    let Some(port) = resolve_port(&get.port, container.ports.as_deref().unwrap_or_default()) else { return false };
    let host = get.host.clone().unwrap_or_else(|| ip.to_string());
    let path = get.path.as_deref().unwrap_or("/");
    let url = format!("http://{host}:{port}{path}");
    let timeout = Duration::from_secs(u64::try_from(probe.timeout_seconds.unwrap_or(1).max(1)).unwrap_or(1));
    match http.get(url).timeout(timeout).send().await {
        Ok(response) => (200..400).contains(&response.status().as_u16()),
        Err(_) => false,
    }
}

/// A port number, or the number of the container port with that name.
fn resolve_port(port: &IntOrString, ports: &[ContainerPort]) -> Option<u16> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => ports.iter().find(|p| p.name.as_deref() == Some(name))?.container_port,
        },
    };
    u16::try_from(number).ok()
}

// ---------------------------------------------------------------------------------------
// Pure helpers: expansion, mount paths, volume contents.

/// Kubernetes `$(VAR)` expansion: `$(NAME)` becomes the value of NAME when it is defined
/// and stays as written otherwise; `$$` becomes `$`.
pub fn expand_references(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Replaces a leading container mount path (the longest that matches, on a path
/// boundary) with its host directory.
pub fn rewrite_mount_paths(value: &str, mounts: &[(String, PathBuf)]) -> String {
    let best = mounts
        .iter()
        .filter(|(mount, _)| {
            !mount.is_empty()
                && value.strip_prefix(mount.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .max_by_key(|(mount, _)| mount.len());
    match best {
        Some((mount, host)) => format!("{}{}", host.display(), &value[mount.len()..]),
        None => value.to_string(),
    }
}

fn config_map_entries(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let text = cm.data.iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes()));
    let binary = cm.binary_data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()));
    text.chain(binary).collect()
}

fn secret_entries(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let data = secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()));
    let text = secret.string_data.iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes()));
    data.chain(text).collect()
}

/// The files of a ConfigMap or Secret volume: every key, or only the listed items.
fn select_items(
    entries: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let Some(items) = items else { return Ok(entries.into_iter().collect()) };
    items
        .iter()
        .map(|item| {
            let bytes = entries.get(&item.key).ok_or_else(|| format!("key {} not found", item.key))?;
            if item.path.starts_with('/') || item.path.split('/').any(|p| p == "..") {
                return Err(format!("item path {} leaves the volume", item.path));
            }
            Ok((item.path.clone(), bytes.clone()))
        })
        .collect()
}

fn now_rfc3339() -> String {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn now_rfc3339_micros() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

impl Shared {
    /// A loopback address of its own for each pod: 127.0.N.M.
    fn allocate_ip(&self) -> IpAddr {
        let n = self.next_ip.fetch_add(1, Ordering::SeqCst);
        let block = u32::from(self.ip_block) + n / 250;
        let host = 2 + n % 250;
        IpAddr::V4(Ipv4Addr::new(127, 0, u8::try_from(block % 256).unwrap_or(0), u8::try_from(host).unwrap_or(2)))
    }
}

// ---------------------------------------------------------------------------------------
// Services: NodePort forwarding from 127.0.0.1.

/// Where one node port forwards to; updated in place when the Service changes.
#[derive(Clone, Debug)]
struct ForwardTarget {
    namespace: String,
    selector: BTreeMap<String, String>,
    port: ServicePort,
}

/// A forwarder task with the target it reads on every connection.
struct Forwarder {
    target: Arc<Mutex<ForwardTarget>>,
    task: JoinHandle<()>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward_services(shared: Arc<Shared>) {
    let services: Api<Service> = Api::all(shared.client.clone());
    let mut forwarders: HashMap<(String, i32), Forwarder> = HashMap::new();
    let mut events = watcher(services, watcher::Config::default()).default_backoff().boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(service) | Event::InitApply(service)) => {
                sync_forwarders(&shared, &service, &mut forwarders);
            }
            Ok(Event::Delete(service)) => {
                let key = service_key(&service);
                forwarders.retain(|(owner, _), _| owner != &key);
            }
            Ok(Event::Init | Event::InitDone) => {}
            Err(e) => tracing::warn!(error = %e, "local node: watching services failed"),
        }
    }
}

fn service_key(service: &Service) -> String {
    format!("{}/{}", service.namespace().unwrap_or_default(), service.name_any())
}

/// The node ports a Service asks for: type NodePort or LoadBalancer, with a selector.
fn node_port_targets(service: &Service) -> Vec<(i32, ForwardTarget)> {
    let Some(spec) = &service.spec else { return Vec::new() };
    if !matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer")) {
        return Vec::new();
    }
    let Some(selector) = spec.selector.clone().filter(|s| !s.is_empty()) else { return Vec::new() };
    spec.ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| {
            let target = ForwardTarget {
                namespace: service.namespace().unwrap_or_default(),
                selector: selector.clone(),
                port: p.clone(),
            };
            Some((p.node_port?, target))
        })
        .collect()
}

fn sync_forwarders(shared: &Arc<Shared>, service: &Service, forwarders: &mut HashMap<(String, i32), Forwarder>) {
    let key = service_key(service);
    let wanted = node_port_targets(service);
    forwarders.retain(|(owner, port), _| owner != &key || wanted.iter().any(|(p, _)| p == port));
    for (node_port, target) in wanted {
        match forwarders.get(&(key.clone(), node_port)) {
            Some(existing) => *existing.target.lock().expect("forward target lock") = target,
            None => {
                let target = Arc::new(Mutex::new(target));
                let task = tokio::spawn(forward_node_port(shared.clone(), node_port, target.clone()));
                forwarders.insert((key.clone(), node_port), Forwarder { target, task });
            }
        }
    }
}

/// Listens on 127.0.0.1:`node_port` and relays each connection to a ready pod.
async fn forward_node_port(shared: Arc<Shared>, node_port: i32, target: Arc<Mutex<ForwardTarget>>) {
    let Ok(port) = u16::try_from(node_port) else { return };
    let listener = match bind_with_retry(SocketAddr::from(([127, 0, 0, 1], port))).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(node_port, error = %e, "local node: cannot listen on the node port");
            return;
        }
    };
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else { continue };
        let current = target.lock().expect("forward target lock").clone();
        let Some(backend) = shared.backend_for(&current) else {
            tracing::warn!(node_port, "local node: no ready pod behind the node port; closing the connection");
            continue;
        };
        connections.spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

/// Binds, retrying briefly while a previous listener on the same port goes away.
async fn bind_with_retry(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let mut attempts = 0;
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) if attempts >= 50 => return Err(e),
            Err(_) => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Shared {
    /// The address of a ready pod that `target` selects, at its target port.
    fn backend_for(&self, target: &ForwardTarget) -> Option<SocketAddr> {
        let endpoints = self.endpoints.lock().expect("endpoints lock");
        endpoints.values().filter(|e| e.ready && e.namespace == target.namespace).find_map(|endpoint| {
            let selected = target.selector.iter().all(|(k, v)| endpoint.labels.get(k) == Some(v));
            let wanted = target.port.target_port.clone().unwrap_or(IntOrString::Int(target.port.port));
            let port = resolve_port(&wanted, &endpoint.ports)?;
            selected.then_some(SocketAddr::new(endpoint.ip, port))
        })
    }
}
