//! The whole product against real components: the operator (in-process) on a real
//! kube-apiserver and kube-controller-manager turns a LiveStream into a worker Deployment;
//! the local node runs the worker pod as a process and forwards the NodePort; ffmpeg pushes
//! RTMP to the status' ingest URL with the generated stream key; the worker writes HLS to
//! MinIO, where the status' playback URL serves it; deleting the LiveStream with retention
//! Delete empties its prefix.

mod support;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use livestream::api::{LiveStream, Phase};
use livestream::controller::s3_cleaner::S3Cleaner;
use livestream::controller::{Metrics, OperatorConfig, RunSettings, run_controller};
use livestream::storage::Store;
use livestream::telemetry::Health;
use serde_json::json;
use support::kube::{KubeEnv, KubeEnvOptions};
use support::local_node::{LocalNode, LocalNodeOptions, expand_references, rewrite_mount_paths};
use support::media::{Push, decode_errors, fetch_consistent, push};
use support::minio::MinioServer;
use support::process::{ManagedProcess, testenv_bin_dir};
use tokio::sync::oneshot;

const NAMESPACE: &str = "e2e";
const BUCKET: &str = "live";

/// The LiveStream's name, unique per run: on the local node the worker's scratch directory
/// (`/tmp/livestream/APP/NAME` in its configuration file, an emptyDir in a real pod) is on
/// the host's /tmp, so concurrent runs must not share a name.
fn stream_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| format!("launch-{:08x}", rand::random::<u32>()))
}

fn crd() -> CustomResourceDefinition {
    serde_yaml::from_str(include_str!("../crds/livestream.yaml")).expect("parse crds/livestream.yaml")
}

/// The operator, run in-process until dropped.
struct Operator {
    _stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), livestream::controller::RunError>>,
}

impl Operator {
    fn start(client: &Client) -> Self {
        let settings = RunSettings {
            operator: OperatorConfig {
                worker_image: "livestream:e2e".into(),
                live_poll_interval: Duration::from_millis(500),
                worker_status_timeout: Duration::from_secs(1),
                idle_resync: Duration::from_secs(1),
                cleanup_timeout: Duration::from_secs(20),
                error_backoff_min: Duration::from_millis(500),
                error_backoff_max: Duration::from_secs(2),
                ..OperatorConfig::default()
            },
            namespace: Some(NAMESPACE.into()),
            leader_election: None,
            identity: "e2e-operator".into(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let task = tokio::spawn(run_controller(
            client.clone(),
            settings,
            Arc::new(S3Cleaner),
            Metrics::default(),
            Health::new(),
            shutdown,
        ));
        Self { _stop: stop, task }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a failure message needs: the stream's status, the worker pods, the worker's log.
struct Diagnostics<'a> {
    client: &'a Client,
    node: &'a LocalNode,
}

impl Diagnostics<'_> {
    async fn report(&self) -> String {
        let streams: Api<LiveStream> = Api::namespaced(self.client.clone(), NAMESPACE);
        let status = match streams.get_opt(stream_name()).await {
            Ok(Some(stream)) => serde_json::to_string_pretty(&stream.status).unwrap_or_default(),
            Ok(None) => "(the LiveStream is gone)".into(),
            Err(e) => format!("(cannot read the LiveStream: {e})"),
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NAMESPACE);
        let pods = match pods.list(&ListParams::default()).await {
            Ok(list) => list
                .items
                .iter()
                .map(|p| format!("{}: {}", p.name_any(), serde_json::to_string(&p.status).unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("(cannot list pods: {e})"),
        };
        format!("LiveStream status:\n{status}\nPods:\n{pods}\nLocal node:\n{}", self.node.logs_tail(6000))
    }

    /// Awaits `future` at most `timeout`; panics naming `what`, with the diagnostics.
    async fn within<T>(&self, what: &str, timeout: Duration, future: impl Future<Output = T>) -> T {
        match tokio::time::timeout(timeout, future).await {
            Ok(value) => value,
            Err(_) => panic!("timed out after {timeout:?} waiting for {what}\n{}", self.report().await),
        }
    }

    /// Awaits a LiveStream watch event after which `accept` holds.
    async fn stream_where(
        &self,
        what: &str,
        timeout: Duration,
        accept: impl Fn(&LiveStream) -> bool + Send + 'static,
    ) -> LiveStream {
        let streams: Api<LiveStream> = Api::namespaced(self.client.clone(), NAMESPACE);
        let condition = move |stream: Option<&LiveStream>| stream.is_some_and(&accept);
        let found = self.within(what, timeout, await_condition(streams, stream_name(), condition)).await;
        found.expect("watch the LiveStream").expect("the LiveStream exists")
    }

    /// Polls a blocking check (an HTTP fetch: storage has no event) until it gives `Some`.
    async fn poll<T: Send + 'static>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn() -> Option<T> + Send + Sync + 'static,
    ) -> T {
        let check = Arc::new(check);
        let deadline = Instant::now() + timeout;
        loop {
            let attempt = check.clone();
            if let Some(value) = tokio::task::spawn_blocking(move || attempt()).await.expect("check task") {
                return value;
            }
            if Instant::now() >= deadline {
                panic!("timed out after {timeout:?} waiting for {what}\n{}", self.report().await);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Removes the worker's scratch directory on the host when the test ends, however it ends.
struct ScratchCleanup(PathBuf);

impl ScratchCleanup {
    /// The directory the worker's configuration (`scratchDir: /tmp/livestream`) gives this
    /// stream under the application `live`.
    fn of_stream() -> Self {
        Self(PathBuf::from("/tmp/livestream/live").join(stream_name()))
    }
}

impl Drop for ScratchCleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn phase(stream: &LiveStream) -> Option<Phase> {
    stream.status.as_ref().and_then(|s| s.phase)
}

fn condition_is_true(stream: &LiveStream, type_: &str) -> bool {
    stream.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

async fn create_namespace(client: &Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).unwrap();
    namespaces.create(&PostParams::default(), &ns).await.expect("create the namespace");
}

/// Pods are refused until kube-controller-manager created the namespace's default account.
async fn default_service_account(client: &Client) -> impl Future<Output = ()> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    async move {
        await_condition(accounts, "default", conditions::is_created()).await.expect("watch service accounts");
    }
}

async fn create_credentials_secret(client: &Client, minio: &MinioServer) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "storage"},
        "stringData": {"accessKeyId": minio.access_key(), "secretAccessKey": minio.secret_key()},
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &secret).await.expect("create the credentials Secret");
}

async fn create_stream(client: &Client, minio: &MinioServer) -> LiveStream {
    let streams: Api<LiveStream> = Api::namespaced(client.clone(), NAMESPACE);
    let stream: LiveStream = serde_json::from_value(json!({
        "apiVersion": "livestream.dev/v1alpha1",
        "kind": "LiveStream",
        "metadata": {"name": stream_name()},
        "spec": {
            "ingest": {"service": {"type": "NodePort"}},
            "ladder": {
                "keyframeIntervalSeconds": 1,
                "renditions": [{"name": "90p", "width": 160, "height": 90, "videoBitrateKbps": 100}],
            },
            "hls": {"segmentDurationSeconds": 1},
            "storage": {
                "bucket": BUCKET,
                "endpoint": minio.endpoint(),
                "forcePathStyle": true,
                "credentialsSecretRef": {
                    "name": "storage",
                    "accessKeyIdKey": "accessKeyId",
                    "secretAccessKeyKey": "secretAccessKey",
                },
                "retention": "Delete",
            },
        },
    }))
    .expect("LiveStream object");
    streams.create(&PostParams::default(), &stream).await.expect("create the LiveStream")
}

async fn read_stream_key(client: &Client) -> String {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let secret = secrets.get(&format!("{}-stream-key", stream_name())).await.expect("the generated stream-key Secret");
    let bytes = secret.data.as_ref().and_then(|d| d.get("streamKey")).expect("the Secret has a streamKey").0.clone();
    let key = String::from_utf8(bytes).expect("a UTF-8 stream key");
    assert!(key.len() >= 16, "the generated stream key is long enough to be secret");
    key
}

fn worker_pods_selector() -> ListParams {
    ListParams::default()
        .labels(&format!("app.kubernetes.io/instance={},app.kubernetes.io/component=worker", stream_name()))
}

/// The restart count of the stream's (single) worker pod.
async fn worker_restarts(client: &Client) -> i32 {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let list = pods.list(&worker_pods_selector()).await.expect("list worker pods");
    assert_eq!(list.items.len(), 1, "one worker pod");
    let statuses = list.items[0].status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    statuses.first().map(|c| c.restart_count).expect("a container status")
}

async fn wait_for_push_to_end(pusher: &mut ManagedProcess, diagnostics: &Diagnostics<'_>) {
    diagnostics
        .within("ffmpeg to finish its push", Duration::from_secs(30), async {
            while pusher.is_running() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
    assert!(pusher.exit_success(), "the push failed:\n{}\n{}", pusher.log_tail(3000), diagnostics.report().await);
}

/// The directory of a master playlist URL.
fn base_of(playback_url: &str) -> String {
    playback_url.strip_suffix("/master.m3u8").unwrap_or_else(|| panic!("not a master URL: {playback_url}")).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_livestream_goes_live_through_the_operator_and_its_storage_is_cleaned_on_delete() {
    livestream::telemetry::init_logging(livestream::telemetry::LogFormat::Text);
    let started = Instant::now();
    let _scratch = ScratchCleanup::of_stream();
    let env = tokio::task::block_in_place(|| KubeEnv::start(KubeEnvOptions { controller_manager: true }));
    let client = env.client().await;
    env.handle().install_crd(&client, &crd()).await;
    let minio = MinioServer::start().await;
    minio.create_bucket(BUCKET, true).await;
    let _operator = Operator::start(&client);
    let worker_binary = PathBuf::from(env!("CARGO_BIN_EXE_livestream"));
    // The worker's configuration runs `ffmpeg` from PATH, as in the image.
    let path = format!("{}:{}", testenv_bin_dir().display(), std::env::var("PATH").unwrap_or_default());
    let options = LocalNodeOptions::new(move |_image| worker_binary.clone()).with_env("PATH", path);
    let node = LocalNode::start(client.clone(), options).await;
    let diagnostics = Diagnostics { client: &client, node: &node };

    create_namespace(&client).await;
    let account = default_service_account(&client).await;
    diagnostics.within("the default service account", Duration::from_secs(30), account).await;
    create_credentials_secret(&client, &minio).await;
    create_stream(&client, &minio).await;

    let ready = diagnostics
        .stream_where("condition Ready=True", Duration::from_secs(45), |s| condition_is_true(s, "Ready"))
        .await;
    let status = ready.status.clone().expect("a status");
    let ingest_url = status.ingest_url.clone().expect("status.ingestUrl");
    assert!(ingest_url.starts_with("rtmp://127.0.0.1:") && ingest_url.ends_with("/live"), "{ingest_url}");
    let playback_url = status.playback_url.clone().expect("status.playbackUrl");
    assert_eq!(playback_url, format!("{}/{BUCKET}/{NAMESPACE}/{}/master.m3u8", minio.endpoint(), stream_name()));
    let key = read_stream_key(&client).await;
    eprintln!("e2e: Ready after {:?}", started.elapsed());

    let logs = tempfile::tempdir().expect("temp dir");
    let push_options = Push { seconds: 6.0, size: "160x90", rate: 25, gop: 25, audio: true };
    let mut pusher = push(&format!("{ingest_url}/{key}"), &push_options, &logs.path().join("push.log"));
    let live = diagnostics
        .stream_where("phase Live with the Live condition True", Duration::from_secs(20), |s| {
            phase(s) == Some(Phase::Live) && condition_is_true(s, "Live")
        })
        .await;
    assert!(!condition_is_true(&live, "Degraded"), "a healthy live stream is not Degraded: {:?}", live.status);
    eprintln!("e2e: Live after {:?}", started.elapsed());

    let base = base_of(&playback_url);
    let master_base = base.clone();
    let playlists = diagnostics
        .poll("the master playlist and its segments in storage", Duration::from_secs(20), move || {
            fetch_consistent(&master_base).filter(|p| !p.is_empty() && p.iter().all(|(_, m)| !m.segments.is_empty()))
        })
        .await;
    assert_eq!(playlists.len(), 1, "one rendition in the master: {playlists:?}");
    assert_eq!(worker_restarts(&client).await, 0, "the worker never restarted");

    wait_for_push_to_end(&mut pusher, &diagnostics).await;
    // The worker ends the stream once the reconnect grace (10 s) has passed.
    let ended =
        diagnostics.stream_where("phase Ended", Duration::from_secs(30), |s| phase(s) == Some(Phase::Ended)).await;
    assert!(!condition_is_true(&ended, "Live"), "an ended stream is not Live: {:?}", ended.status);
    eprintln!("e2e: Ended after {:?}", started.elapsed());
    let ended_base = base.clone();
    let playlists = diagnostics
        .poll("ENDLIST in every media playlist", Duration::from_secs(15), move || {
            fetch_consistent(&ended_base).filter(|p| p.iter().all(|(_, m)| m.ended))
        })
        .await;
    for (uri, media) in &playlists {
        assert!(media.segments.len() >= 3, "{uri} holds the pushed seconds: {media:?}");
        let url = format!("{base}/{uri}");
        let errors = tokio::task::spawn_blocking(move || decode_errors(&url, "0:v")).await.unwrap();
        assert!(errors.trim().is_empty(), "{uri} does not decode cleanly:\n{errors}");
    }

    let worker_log = worker_log(&client, &node).await;
    assert!(!worker_log.is_empty(), "the worker pod ran on the local node");
    assert!(!worker_log.contains(&key), "the stream key appears in the worker's log");
    assert!(!worker_log.contains(minio.secret_key()), "the storage secret appears in the worker's log");

    delete_stream_and_wait(&client, &diagnostics).await;
    let store = minio.store(BUCKET);
    let left = store.list(&format!("{NAMESPACE}/{}", stream_name()), 10).await.expect("list the stream's prefix");
    assert!(left.is_empty(), "retention Delete leaves the prefix empty, found {left:?}");
    eprintln!("e2e: done after {:?}", started.elapsed());
}

/// Deletes the LiveStream; waits until it is gone (its finalizer cleaned storage) and its
/// worker pod was stopped and removed by the garbage collector and the local node.
async fn delete_stream_and_wait(client: &Client, diagnostics: &Diagnostics<'_>) {
    let streams: Api<LiveStream> = Api::namespaced(client.clone(), NAMESPACE);
    let uid = streams.get(stream_name()).await.expect("the LiveStream").uid().expect("a uid");
    streams.delete(stream_name(), &DeleteParams::default()).await.expect("delete the LiveStream");
    let gone = await_condition(streams, stream_name(), conditions::is_deleted(&uid));
    diagnostics.within("the LiveStream to be deleted", Duration::from_secs(30), gone).await.expect("watch");
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let no_worker = async {
        loop {
            let list = pods.list(&worker_pods_selector()).await.expect("list worker pods");
            if list.items.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    diagnostics.within("the worker pod to be removed", Duration::from_secs(40), no_worker).await;
}

/// The log of the stream's worker pod(s), as the local node kept it.
async fn worker_log(client: &Client, node: &LocalNode) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let list = pods.list(&worker_pods_selector()).await.expect("list worker pods");
    list.items.iter().filter_map(|p| node.pod_log(NAMESPACE, &p.name_any())).collect::<Vec<_>>().join("\n")
}

#[test]
fn references_expand_like_kubernetes_and_mount_paths_are_rewritten() {
    let lookup = |name: &str| (name == "POD_IP").then(|| "127.0.3.4".to_string());
    assert_eq!(expand_references("--listen-ip=$(POD_IP)", &lookup), "--listen-ip=127.0.3.4");
    assert_eq!(expand_references("$(MISSING) $$(POD_IP) $ $(", &lookup), "$(MISSING) $(POD_IP) $ $(");
    let mounts = vec![("/etc/livestream".to_string(), PathBuf::from("/x/config")), ("/tmp".into(), "/x/tmp".into())];
    assert_eq!(rewrite_mount_paths("/etc/livestream/worker.yaml", &mounts), "/x/config/worker.yaml");
    assert_eq!(rewrite_mount_paths("/tmp", &mounts), "/x/tmp");
    assert_eq!(rewrite_mount_paths("/tmpfile", &mounts), "/tmpfile");
    assert_eq!(rewrite_mount_paths("worker", &mounts), "worker");
}
