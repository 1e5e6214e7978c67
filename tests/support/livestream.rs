//! LiveStreams on a real cluster through the API, as a user and an operator's tests touch
//! them: a namespace with storage credentials, a stream applied with kubectl, its key, its
//! worker pods, and bounded waits for its status with the diagnostics a failure needs
//! (status, pods, the worker's and operator's logs, the node's logs).

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams};
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt};
use livestream::api::{LiveStream, Phase};

use super::cluster::ClusterHandle;
use super::media::{MediaPlaylist, fetch_consistent};
use super::minio::MinioServer;
use super::stream::{kubectl_apply, kubectl_output};

/// A stream under test: its namespace and name on a cluster.
#[derive(Clone)]
pub struct StreamRef {
    pub cluster: ClusterHandle,
    pub client: Client,
    pub namespace: String,
    pub name: String,
    /// The operator's namespace, for its logs in failure messages.
    pub operator_namespace: String,
}

/// How a test's stream is set up.
pub struct StreamSpec<'a> {
    pub renditions: &'a [(&'a str, u32, u32, u32)],
    pub retention: &'a str,
    pub window: u32,
    pub bucket: &'a str,
    /// The `kubernetes.io/tls` Secret of RTMPS, when the stream takes RTMPS.
    pub tls_secret: Option<&'a str>,
    /// The ingest Service's type; none behind the ingest gateway.
    pub ingest_service: Option<&'a str>,
    /// Storage credentials by web identity (`roleArn`, `audience`, `stsEndpoint`) instead
    /// of the `storage` Secret.
    pub web_identity: Option<(&'a str, &'a str, &'a str)>,
}

impl Default for StreamSpec<'_> {
    fn default() -> Self {
        Self {
            renditions: &[("90p", 160, 90, 100)],
            retention: "Delete",
            window: 10,
            bucket: "live",
            tls_secret: None,
            ingest_service: Some("NodePort"),
            web_identity: None,
        }
    }
}

/// Creates `namespace` with a `storage` Secret holding MinIO's credentials.
pub fn create_namespace_with_credentials(cluster: &ClusterHandle, namespace: &str, minio: &MinioServer) {
    kubectl_apply(
        cluster.kubectl(),
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata:\n  name: storage\n  namespace: {namespace}\n\
             stringData:\n  accessKeyId: {}\n  secretAccessKey: {}\n",
            minio.access_key(),
            minio.secret_key()
        ),
    );
    cluster.wait_default_service_account(namespace);
}

/// The LiveStream's manifest: an ingest NodePort (unless the spec says otherwise), a small
/// ladder of 1-second segments, MinIO.
pub fn stream_yaml(namespace: &str, name: &str, minio: &MinioServer, spec: &StreamSpec<'_>) -> String {
    let renditions: String = spec
        .renditions
        .iter()
        .map(|(n, w, h, kbps)| {
            format!("      - name: {n}\n        width: {w}\n        height: {h}\n        videoBitrateKbps: {kbps}\n")
        })
        .collect();
    format!(
        "apiVersion: livestream.dev/v1alpha1
kind: LiveStream
metadata:
  name: {name}
  namespace: {namespace}
spec:
{ingest}  ladder:
    keyframeIntervalSeconds: 1
    renditions:
{renditions}  hls:
    segmentDurationSeconds: 1
    windowSegments: {window}
  storage:
    bucket: {bucket}
    endpoint: {endpoint}
    forcePathStyle: true
{credentials}    retention: {retention}
",
        ingest = ingest_yaml(spec),
        credentials = match spec.web_identity {
            Some((role_arn, audience, sts)) => format!(
                "    webIdentity:\n      roleArn: {role_arn}\n      audience: {audience}\n      stsEndpoint: {sts}\n"
            ),
            None => "    credentialsSecretRef:\n      name: storage\n      accessKeyIdKey: accessKeyId\n      \
                     secretAccessKeyKey: secretAccessKey\n"
                .to_string(),
        },
        window = spec.window,
        bucket = spec.bucket,
        endpoint = minio.endpoint(),
        retention = spec.retention,
    )
}

/// The `ingest` of a stream's manifest.
fn ingest_yaml(spec: &StreamSpec<'_>) -> String {
    let service = spec.ingest_service.map(|type_| format!("    service:\n      type: {type_}\n")).unwrap_or_default();
    let tls = spec.tls_secret.map(|secret| format!("    tls:\n      secretName: {secret}\n")).unwrap_or_default();
    if service.is_empty() && tls.is_empty() {
        "  ingest: {}\n".to_string()
    } else {
        format!("  ingest:\n{service}{tls}")
    }
}

pub fn phase(stream: &LiveStream) -> Option<Phase> {
    stream.status.as_ref().and_then(|s| s.phase)
}

pub fn condition_is_true(stream: &LiveStream, type_: &str) -> bool {
    stream.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

impl StreamRef {
    pub fn api(&self) -> Api<LiveStream> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn worker_selector(&self) -> ListParams {
        ListParams::default()
            .labels(&format!("app.kubernetes.io/instance={},app.kubernetes.io/component=worker", self.name))
    }

    /// The stream's worker pods, oldest first.
    pub async fn worker_pods(&self) -> Vec<Pod> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut list = pods.list(&self.worker_selector()).await.expect("list worker pods").items;
        list.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
        list
    }

    /// The generated stream key.
    pub async fn stream_key(&self) -> String {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let secret = secrets.get(&format!("{}-stream-key", self.name)).await.expect("the generated stream-key Secret");
        let bytes = secret.data.as_ref().and_then(|d| d.get("streamKey")).expect("a streamKey").0.clone();
        String::from_utf8(bytes).expect("a UTF-8 stream key")
    }

    /// Everything a failure message needs.
    pub async fn report(&self) -> String {
        let status = match self.api().get_opt(&self.name).await {
            Ok(Some(stream)) => serde_json::to_string_pretty(&stream.status).unwrap_or_default(),
            Ok(None) => "(the LiveStream is gone)".into(),
            Err(e) => format!("(cannot read the LiveStream: {e})"),
        };
        let pods = kubectl_text(self.cluster.kubectl().args(["get", "pods", "-A", "-o", "wide"]));
        let worker_logs = kubectl_text(self.cluster.kubectl().args([
            "logs",
            "-n",
            &self.namespace,
            "-l",
            &format!("app.kubernetes.io/instance={}", self.name),
            "--tail=60",
            "--prefix",
            "--all-containers",
        ]));
        let operator_logs = kubectl_text(self.cluster.kubectl().args([
            "logs",
            "-n",
            &self.operator_namespace,
            "-l",
            "app.kubernetes.io/name=livestream-operator",
            "--tail=40",
            "--prefix",
        ]));
        let events = kubectl_text(self.cluster.kubectl().args(["get", "events", "-n", &self.namespace]));
        let node = tokio::task::block_in_place(|| self.cluster.logs_tail());
        let node_tail: String = node.chars().rev().take(4000).collect::<Vec<_>>().into_iter().rev().collect();
        format!(
            "LiveStream status:\n{status}\nPods:\n{pods}\nEvents:\n{events}\nWorker logs:\n{worker_logs}\n\
             Operator logs:\n{operator_logs}\nNode:\n{node_tail}"
        )
    }

    /// Awaits `future` at most `timeout`; panics naming `what`, with the diagnostics.
    pub async fn within<T>(&self, what: &str, timeout: Duration, future: impl Future<Output = T>) -> T {
        match tokio::time::timeout(timeout, future).await {
            Ok(value) => value,
            Err(_) => panic!("timed out after {timeout:?} waiting for {what}\n{}", self.report().await),
        }
    }

    /// Awaits a LiveStream watch event after which `accept` holds.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        accept: impl Fn(&LiveStream) -> bool + Send + 'static,
    ) -> LiveStream {
        let condition = move |stream: Option<&LiveStream>| stream.is_some_and(&accept);
        let found = self.within(what, timeout, await_condition(self.api(), &self.name, condition)).await;
        found.expect("watch the LiveStream").expect("the LiveStream exists")
    }

    /// Awaits the stream's playlists, read through `playback_url` and checked by
    /// `fetch_consistent`, for which `accept` holds (polled: storage has no events).
    pub async fn wait_playlists(
        &self,
        what: &str,
        timeout: Duration,
        playback_url: &str,
        accept: impl Fn(&[(String, MediaPlaylist)]) -> bool + Send + Sync + 'static,
    ) -> Vec<(String, MediaPlaylist)> {
        let base = playback_url.strip_suffix("/master.m3u8").expect("a master playlist URL").to_string();
        let accept = std::sync::Arc::new(accept);
        let poll = async {
            loop {
                let (base, accept) = (base.clone(), accept.clone());
                let found =
                    tokio::task::spawn_blocking(move || fetch_consistent(&base).filter(|p| !p.is_empty() && accept(p)))
                        .await
                        .expect("read the playlists");
                if let Some(found) = found {
                    return found;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        };
        self.within(what, timeout, poll).await
    }

    /// Awaits a state of the worker pods (polled: pods change through several objects).
    pub async fn wait_pods(&self, what: &str, timeout: Duration, accept: impl Fn(&[Pod]) -> bool) -> Vec<Pod> {
        let poll = async {
            loop {
                let pods = self.worker_pods().await;
                if accept(&pods) {
                    return pods;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        };
        self.within(what, timeout, poll).await
    }
}

/// A kubectl command's output, or what went wrong, for diagnostics.
fn kubectl_text(cmd: &mut std::process::Command) -> String {
    match cmd.output() {
        Ok(out) => format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        Err(e) => format!("(kubectl: {e})"),
    }
}

/// The name of a pod's node, and whether its (first) container is ready.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The restart count of a pod's first container.
pub fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map(|c| c.restart_count)
        .unwrap_or(0)
}

/// `kubectl exec` in a pod's container; (success, stdout + stderr).
pub fn exec(cluster: &ClusterHandle, namespace: &str, pod: &str, command: &[&str]) -> (bool, String) {
    let out =
        cluster.kubectl().args(["exec", "-n", namespace, pod, "--"]).args(command).output().expect("kubectl exec");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// `kubectl get` of a single JSONPath value.
pub fn jsonpath(cluster: &ClusterHandle, args: &[&str], path: &str) -> String {
    let mut cmd = cluster.kubectl();
    cmd.arg("get").args(args).arg("-o").arg(format!("jsonpath={path}"));
    kubectl_output(cmd)
}

pub fn pod_name(pod: &Pod) -> String {
    pod.name_any()
}
