//! The product on a real single-node cluster (`support::cluster`): the node runs the
//! project's image as users build it; the Helm chart installs, upgrades and uninstalls the
//! operator, which runs as pods with the chart's rights only; and a LiveStream applied with
//! kubectl goes live through the operator, the worker pod, the ingest NodePort and MinIO,
//! ends, and is cleaned from storage on delete, while its pods serve every metric the
//! chart's dashboard queries; and a stream with `storage.webIdentity`
//! writes with its worker's projected token and no key anywhere.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use livestream::api::{LiveStream, Phase};
use livestream::storage::Store;
use support::cluster::{Cluster, ClusterHandle, IMAGE, NODE_NAME};
use support::helm;
use support::livestream::{
    StreamRef, StreamSpec, condition_is_true, create_namespace_with_credentials, exec, jsonpath, phase, pod_ready,
    stream_yaml,
};
use support::media::decode_errors;
use support::minio::{MinioServer, OpenIdProvider};
use support::process::wait_for;
use support::stream::{
    Encoder, PlaylistWatch, history, kubectl_apply, kubectl_output, redacted_log, variants, wait_until_reachable,
};

fn cluster() -> &'static ClusterHandle {
    tokio::task::block_in_place(Cluster::shared)
}

/// The release whose install brings the CRD (the chart's, with its keep policy): the
/// lifecycle test's. The CRD belongs to one release; the other releases of this binary
/// install without it (`crds.install=false`) once it is there.
const CRD_RELEASE: (&str, &str, &str) = ("lifecycle", "lifecycle-ops", "lifecycle-media");

/// Installs the CRD's release once, whichever test comes first; its helm home lives in
/// the cluster's run directory.
async fn install_crd_release() -> Duration {
    static INSTALLED: tokio::sync::OnceCell<Duration> = tokio::sync::OnceCell::const_new();
    *INSTALLED
        .get_or_init(|| async {
            let cluster = cluster();
            let (release, ns, media) = CRD_RELEASE;
            // The chart grants its rights in the watched namespace, which must exist.
            kubectl_apply(cluster.kubectl(), &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {media}\n"));
            let started = Instant::now();
            let home = cluster.dir.join("helm-lifecycle");
            let values = [format!("watchNamespace={media}")];
            tokio::task::block_in_place(|| {
                helm::install_operator(cluster.kube.kubeconfig(), &home, release, ns, &[&values[0]])
            })
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs_tail()));
            started.elapsed()
        })
        .await
}

/// Installs the operator as `release` in `ops`, watching `ns` only (the CRD is the CRD
/// release's), with its helm home in `home`; the stream `name` of `ns` under it.
async fn install_watching(release: &str, ops: &str, ns: &str, name: &str, home: &std::path::Path) -> StreamRef {
    let cluster = cluster();
    install_crd_release().await;
    tokio::task::block_in_place(|| {
        let watch = format!("watchNamespace={ns}");
        helm::install_operator(cluster.kube.kubeconfig(), home, release, ops, &[&watch, "crds.install=false"])
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs_tail()));
    StreamRef {
        cluster: cluster.clone(),
        client: cluster.kube.client().await,
        namespace: ns.into(),
        name: name.into(),
        operator_namespace: ops.into(),
    }
}

/// A pod of the image behind a NodePort Service: scheduled by kube-scheduler, started by
/// containerd and runc as the image's non-root user on a read-only root filesystem, probed
/// by the kubelet, and reached through kube-proxy on its ClusterIP and on the node's port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_runs_the_image_behind_a_service() {
    let cluster = cluster();
    let ns = "node-basics";
    kubectl_apply(cluster.kubectl(), &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"));
    cluster.wait_default_service_account(ns);
    kubectl_apply(
        cluster.kubectl(),
        &format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: serve, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: serve}}}}
  template:
    metadata: {{labels: {{app: serve}}}}
    spec:
      securityContext: {{runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}}
      containers:
        - name: serve
          image: {IMAGE}
          imagePullPolicy: IfNotPresent
          args: [serve, --http-addr=0.0.0.0:8080, --rtmp-addr=0.0.0.0:1935, --data-dir=/data, --scratch-dir=/scratch]
          ports: [{{name: http, containerPort: 8080}}]
          readinessProbe: {{httpGet: {{path: /readyz, port: http}}, periodSeconds: 1}}
          securityContext: {{readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}
          volumeMounts: [{{name: data, mountPath: /data}}, {{name: scratch, mountPath: /scratch}}]
      volumes: [{{name: data, emptyDir: {{}}}}, {{name: scratch, emptyDir: {{}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: serve, namespace: {ns}}}
spec:
  type: NodePort
  selector: {{app: serve}}
  ports: [{{name: http, port: 8080, targetPort: http}}]
"#
        ),
    );
    let started = Instant::now();
    let wait = cluster
        .kubectl()
        .args(["wait", "-n", ns, "--for=condition=Ready", "pod", "-l", "app=serve", "--timeout=90s"])
        .output()
        .expect("kubectl wait");
    assert!(
        wait.status.success(),
        "the pod did not turn Ready: {}\n{}\n{}",
        String::from_utf8_lossy(&wait.stderr),
        kubectl_output({
            let mut c = cluster.kubectl();
            c.args(["describe", "pods", "-n", ns]);
            c
        }),
        cluster.logs_tail()
    );
    eprintln!("node: pod Ready {:.1}s after the Deployment", started.elapsed().as_secs_f64());

    let pod = jsonpath(cluster, &["pods", "-n", ns, "-l", "app=serve"], "{.items[0].metadata.name}");
    let node = jsonpath(cluster, &["pod", "-n", ns, &pod], "{.spec.nodeName}");
    assert_eq!(node, NODE_NAME, "kube-scheduler placed the pod on the node");
    let image = jsonpath(cluster, &["pod", "-n", ns, &pod], "{.status.containerStatuses[0].image}");
    assert_eq!(image, IMAGE, "the pod runs the image loaded into containerd");
    let (ok, id) = exec(cluster, ns, &pod, &["id"]);
    assert!(ok && id.contains("uid=65532") && id.contains("gid=65532"), "runs as the image's user: {id}");
    let (ok, touch) = exec(cluster, ns, &pod, &["sh", "-c", "touch /usr/local/bin/probe"]);
    assert!(!ok && touch.contains("Read-only file system"), "the root filesystem is read-only: {touch}");
    let (ok, ffmpeg) = exec(cluster, ns, &pod, &["ffmpeg", "-hide_banner", "-version"]);
    assert!(ok && ffmpeg.starts_with("ffmpeg version"), "the image carries ffmpeg: {ffmpeg}");

    let cluster_ip = jsonpath(cluster, &["service", "-n", ns, "serve"], "{.spec.clusterIP}");
    let node_port = jsonpath(cluster, &["service", "-n", ns, "serve"], "{.spec.ports[0].nodePort}");
    for url in [format!("http://{cluster_ip}:8080/healthz"), format!("http://{}:{node_port}/healthz", cluster.node_ip)]
    {
        let status = wait_for(&format!("{url} to answer through kube-proxy"), Duration::from_secs(30), || {
            let (status, ..) = support::media::http_get(&url);
            (status == 200).then_some(status)
        });
        assert_eq!(status, 200);
    }
    kubectl_output({
        let mut c = cluster.kubectl();
        c.args(["delete", "namespace", ns, "--wait=false"]);
        c
    });
}

/// The chart's objects of a release, by kind: (kind, name) of each that still exists.
async fn chart_objects(client: &Client, release: &str, namespace: &str) -> Vec<(String, String)> {
    let name = format!("{release}-livestream-operator");
    let mut found = Vec::new();
    let ns = |kind: &str, exists: bool| exists.then(|| (kind.to_string(), name.clone()));
    found.extend(ns(
        "Deployment",
        Api::<Deployment>::namespaced(client.clone(), namespace).get_opt(&name).await.ok().flatten().is_some(),
    ));
    found.extend(ns(
        "ServiceAccount",
        Api::<ServiceAccount>::namespaced(client.clone(), namespace).get_opt(&name).await.ok().flatten().is_some(),
    ));
    found.extend(ns(
        "ClusterRole",
        Api::<ClusterRole>::all(client.clone()).get_opt(&name).await.ok().flatten().is_some(),
    ));
    found.extend(ns(
        "ClusterRoleBinding",
        Api::<ClusterRoleBinding>::all(client.clone()).get_opt(&name).await.ok().flatten().is_some(),
    ));
    let labelled = ListParams::default().labels(&format!("app.kubernetes.io/instance={release}"));
    for role in
        Api::<Role>::namespaced(client.clone(), namespace).list(&labelled).await.map(|l| l.items).unwrap_or_default()
    {
        found.push(("Role".into(), role.name_any()));
    }
    for binding in Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .list(&labelled)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        found.push(("RoleBinding".into(), binding.name_any()));
    }
    for service in
        Api::<Service>::namespaced(client.clone(), namespace).list(&labelled).await.map(|l| l.items).unwrap_or_default()
    {
        found.push(("Service".into(), service.name_any()));
    }
    for pod in Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        found.push(("Pod".into(), pod.name_any()));
    }
    for budget in Api::<PodDisruptionBudget>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        found.push(("PodDisruptionBudget".into(), budget.name_any()));
    }
    for lease in Api::<Lease>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        found.push(("Lease".into(), lease.name_any()));
    }
    found
}

/// The operator's pods of a release: (name, ReplicaSet hash), ready ones only.
async fn operator_pods(client: &Client, release: &str, namespace: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("app.kubernetes.io/name=livestream-operator,app.kubernetes.io/instance={release}");
    pods.list(&ListParams::default().labels(&selector)).await.expect("list operator pods").items
}

/// `helm install` runs the operator as two pods with the chart's ServiceAccount, one of
/// which holds the leader Lease and reconciles with the chart's rights; `helm upgrade` with
/// a changed value rolls the pods; `helm uninstall` removes every object of the release and
/// keeps the CRD and the users' LiveStreams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_and_uninstalls_the_operator() {
    let cluster = cluster();
    let client = cluster.kube.client().await;
    let (release, ns, media) = CRD_RELEASE;
    let home = cluster.dir.join("helm-lifecycle");
    let kubeconfig = cluster.kube.kubeconfig().to_path_buf();
    let took = install_crd_release().await;
    eprintln!("helm: installed and ready in {:.1}s", took.as_secs_f64());

    let account = format!("{release}-livestream-operator");
    let pods = operator_pods(&client, release, ns).await;
    assert_eq!(pods.len(), 2, "two operator replicas: {:?}", pods.iter().map(|p| p.name_any()).collect::<Vec<_>>());
    for pod in &pods {
        let spec = pod.spec.as_ref().expect("pod spec");
        assert_eq!(spec.service_account_name.as_deref(), Some(account.as_str()), "runs as the chart's ServiceAccount");
        assert_eq!(spec.node_name.as_deref(), Some(NODE_NAME));
        assert!(pod_ready(pod), "{} is Ready", pod.name_any());
    }
    let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    let holder = wait_for_async("a replica to hold the leader Lease", Duration::from_secs(60), || {
        let leases = leases.clone();
        let names = names.clone();
        let account = account.clone();
        async move {
            let lease = leases.get_opt(&account).await.ok().flatten()?;
            let holder = lease.spec?.holder_identity?;
            names.contains(&holder).then_some(holder)
        }
    })
    .await;

    // The leader reconciles with the chart's rights only: the worker Deployment appears.
    kubectl_apply(
        cluster.kubectl(),
        &format!(
            "apiVersion: livestream.dev/v1alpha1\nkind: LiveStream\nmetadata:\n  name: kept\n  namespace: {media}\n\
             spec:\n  storage:\n    bucket: kept-video\n"
        ),
    );
    let streams: Api<LiveStream> = Api::namespaced(client.clone(), media);
    let reconciled = await_condition(streams.clone(), "kept", |s: Option<&LiveStream>| {
        s.is_some_and(|s| phase(s) == Some(Phase::Pending))
    });
    tokio::time::timeout(Duration::from_secs(60), reconciled)
        .await
        .unwrap_or_else(|_| panic!("the operator (leader {holder}) did not reconcile the LiveStream"))
        .expect("watch");
    Api::<Deployment>::namespaced(client.clone(), media).get("kept-worker").await.expect("the worker Deployment");

    // A changed value rolls the operator's pods.
    let mut upgrade = helm::helm(&kubeconfig, &home);
    upgrade
        .args(["upgrade", release])
        .arg(helm::chart_dir())
        .args(["--namespace", ns, "--wait", "--timeout", "180s", "--reuse-values"])
        .args(["--set", "storageCleanupTimeoutSeconds=45"]);
    tokio::task::block_in_place(|| helm::run(upgrade)).unwrap_or_else(|e| panic!("{e}"));
    let rolled = wait_for_async("the upgrade to replace both operator pods", Duration::from_secs(120), || {
        let client = client.clone();
        let names = names.clone();
        async move {
            let pods = operator_pods(&client, release, ns).await;
            let fresh = pods.iter().filter(|p| !names.contains(&p.name_any()) && pod_ready(p)).count();
            (pods.len() == 2 && fresh == 2).then_some(pods)
        }
    })
    .await;
    let args = rolled[0].spec.as_ref().expect("spec").containers[0].args.clone().unwrap_or_default();
    assert!(
        args.iter().any(|a| a == "--storage-cleanup-timeout-seconds=45"),
        "the new pods have the new value: {args:?}"
    );

    // Uninstall: nothing of the release is left; the CRD and the LiveStream stay.
    let mut uninstall = helm::helm(&kubeconfig, &home);
    uninstall.args(["uninstall", release, "--namespace", ns, "--wait", "--timeout", "120s"]);
    tokio::task::block_in_place(|| helm::run(uninstall)).unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let left = loop {
        let left = chart_objects(&client, release, ns).await;
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(left.is_empty(), "helm uninstall left objects of the release behind: {left:?}");
    Api::<CustomResourceDefinition>::all(client.clone())
        .get("livestreams.livestream.dev")
        .await
        .expect("helm uninstall keeps the CRD");
    streams.get("kept").await.expect("helm uninstall keeps the users' LiveStreams");
}

fn condition_reason(stream: &LiveStream, type_: &str) -> Option<String> {
    stream.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_).map(|c| c.reason.clone())
}

/// The reasons of the events in `namespace`.
async fn event_reasons(client: &Client, namespace: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), namespace);
    let list = events.list(&ListParams::default()).await.expect("list events");
    list.items.into_iter().filter_map(|e| e.reason).collect()
}

/// Polls an async check until it gives `Some`, at most `timeout`.
async fn wait_for_async<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The chart's Grafana dashboard against the pods of a live stream that has uploaded a few
/// segments: every metric family it queries is served by the worker pod's `/metrics` (the
/// stream's, its storage's and its RTMP ingest's) or by the leading operator pod's (the
/// controller's), as the chart's PodMonitor and ServiceMonitor would scrape them, but for
/// upload failures, whose series come with the first failure of a class; and the live
/// stream's own series say it is live and uploading.
async fn the_dashboard_reads_what_the_pods_serve(client: &Client, release: &str, ops: &str, ns: &str, worker: &str) {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/charts/livestream-operator/files/dashboards/livestream.json"
        ))
        .expect("the chart's dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut queried = std::collections::BTreeSet::new();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    for expr in &exprs {
        for token in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if token.starts_with("livestream_") || token.starts_with("rtmp_") {
                queried.insert(token.to_string());
            }
        }
    }
    assert!(queried.len() > 10, "the dashboard's queries name the product's metrics: {queried:?}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let worker_ip = pods.get(worker).await.expect("the worker pod").status.and_then(|s| s.pod_ip).expect("a pod IP");
    let worker_text = http_text(&format!("http://{worker_ip}:8080/metrics")).await;
    let leader = Api::<Lease>::namespaced(client.clone(), ops)
        .get(&format!("{release}-livestream-operator"))
        .await
        .expect("the leader Lease")
        .spec
        .and_then(|s| s.holder_identity)
        .expect("a leader");
    let operator = operator_pods(client, release, ops).await.into_iter().find(|p| p.name_any() == leader);
    let operator_ip = operator.and_then(|p| p.status).and_then(|s| s.pod_ip).expect("the leader's pod IP");
    let operator_text = http_text(&format!("http://{operator_ip}:8080/metrics")).await;
    let declared = |text: &str, name: &str| {
        let family = ["_total", "_bucket", "_sum", "_count"].iter().fold(name, |n, suffix| n.trim_end_matches(suffix));
        text.lines()
            .any(|line| line.starts_with(&format!("# TYPE {family} ")) || line.starts_with(&format!("# TYPE {name} ")))
    };
    let missing: Vec<&String> = queried
        .iter()
        .filter(|name| name.as_str() != "livestream_storage_upload_failures_total")
        .filter(|name| {
            let text = if name.starts_with("livestream_controller_") { &operator_text } else { &worker_text };
            !declared(text, name)
        })
        .collect();
    assert!(missing.is_empty(), "dashboard metrics the pods do not serve: {missing:?}\n{worker_text}\n{operator_text}");
    let stream = format!("stream=\"{ns}/launch\"");
    let sample = |name: &str| {
        worker_text
            .lines()
            .find(|line| line.starts_with(name) && line.contains(&stream))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
    };
    assert_eq!(sample("livestream_live{"), Some(1.0), "{worker_text}");
    assert!(sample("livestream_ingest_bitrate_kbps{").is_some_and(|kbps| kbps > 0.0), "{worker_text}");
    assert!(sample("livestream_segments_uploaded_total{").is_some_and(|count| count >= 2.0), "{worker_text}");
    assert_eq!(sample("livestream_ffmpeg_restarts_total{"), Some(0.0), "{worker_text}");
    assert!(
        operator_text.lines().any(|l| l.starts_with("livestream_controller_streams{") && l.contains("phase=\"Live\"")),
        "{operator_text}"
    );
}

/// Every `expr` of a Grafana dashboard's panels and targets.
fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| collect_exprs(item, out)),
        _ => {}
    }
}

async fn http_text(url: &str) -> String {
    let response = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status(), 200, "GET {url}");
    response.text().await.expect("the body")
}

/// The whole product: the operator installed by its chart, a LiveStream applied with
/// kubectl and awaited with `kubectl wait`, its worker pod running the image locked down,
/// ffmpeg pushing to the ingest NodePort with the generated key, the status Live with
/// figures, the playback URL serving playlists whose renditions decode, Ended with ENDLIST
/// when the push stops, and the objects removed on delete (retention Delete).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_livestream_applied_with_kubectl_goes_live_ends_and_is_cleaned() {
    let cluster = cluster();
    let client = cluster.kube.client().await;
    let (release, ops, ns, name) = ("e2e", "e2e-ops", "e2e", "launch");
    let minio = MinioServer::start_on(cluster.node_ip).await;
    minio.create_bucket("live", true).await;
    let home = tempfile::tempdir().expect("helm home");
    tokio::task::block_in_place(|| create_namespace_with_credentials(cluster, ns, &minio));
    let stream = install_watching(release, ops, ns, name, home.path()).await;
    // The stream takes RTMPS with a certificate from a kubernetes.io/tls Secret, created
    // after the stream: until then the stream says what is missing.
    let spec = StreamSpec {
        renditions: &[("90p", 160, 90, 100), ("180p", 320, 180, 250)],
        tls_secret: Some("ingest-tls"),
        ..StreamSpec::default()
    };
    kubectl_apply(cluster.kubectl(), &stream_yaml(ns, name, &minio, &spec));
    let waiting = stream
        .wait_for("Ready False for the missing TLS Secret", Duration::from_secs(30), |s| {
            condition_reason(s, "Ready").as_deref() == Some("TlsSecretNotFound")
        })
        .await;
    assert_eq!(phase(&waiting), Some(Phase::Failed), "{:?}", waiting.status);
    let certificates = tempfile::tempdir().expect("certificate dir");
    let certified = rcgen::generate_simple_self_signed(vec![cluster.node_ip.to_string()]).expect("a certificate");
    let (cert_file, key_file) = (certificates.path().join("tls.crt"), certificates.path().join("tls.key"));
    std::fs::write(&cert_file, certified.cert.pem()).expect("write tls.crt");
    std::fs::write(&key_file, certified.signing_key.serialize_pem()).expect("write tls.key");
    let created = tokio::task::block_in_place(|| {
        cluster
            .kubectl()
            .args(["create", "secret", "tls", "ingest-tls", "-n", ns])
            .arg(format!("--cert={}", cert_file.display()))
            .arg(format!("--key={}", key_file.display()))
            .output()
            .expect("kubectl create secret tls")
    });
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));

    let started = Instant::now();
    let wait = tokio::task::block_in_place(|| {
        cluster
            .kubectl()
            .args(["wait", "-n", ns, "--for=condition=Ready", &format!("livestream/{name}"), "--timeout=120s"])
            .output()
            .expect("kubectl wait")
    });
    if !wait.status.success() {
        panic!(
            "kubectl wait --for=condition=Ready failed: {}\n{}",
            String::from_utf8_lossy(&wait.stderr),
            stream.report().await
        );
    }
    eprintln!("e2e: Ready {:.1}s after kubectl apply", started.elapsed().as_secs_f64());

    let ready = stream.api().get(name).await.expect("the LiveStream");
    assert_eq!(phase(&ready), Some(Phase::Idle), "a ready stream without a push is Idle: {:?}", ready.status);
    let status = ready.status.clone().expect("a status");
    let ingest_url = status.ingest_url.clone().expect("status.ingestUrl");
    let node_port = jsonpath(cluster, &["service", "-n", ns, &format!("{name}-ingest")], "{.spec.ports[0].nodePort}");
    assert_eq!(ingest_url, format!("rtmp://{}:{node_port}/live", cluster.node_ip), "the ingest URL is the NodePort");
    let secure_ingest_url = status.secure_ingest_url.clone().expect("status.secureIngestUrl");
    let tls_node_port =
        jsonpath(cluster, &["service", "-n", ns, &format!("{name}-ingest")], "{.spec.ports[1].nodePort}");
    assert_eq!(secure_ingest_url, format!("rtmps://{}:{tls_node_port}/live", cluster.node_ip));
    let playback_url = status.playback_url.clone().expect("status.playbackUrl");
    assert_eq!(playback_url, format!("{}/live/{ns}/{name}/master.m3u8", minio.endpoint()));

    let pods = stream.worker_pods().await;
    assert_eq!(pods.len(), 1, "one worker pod");
    let worker = pods[0].name_any();
    let image = jsonpath(cluster, &["pod", "-n", ns, &worker], "{.status.containerStatuses[0].image}");
    assert_eq!(image, IMAGE);
    // Scheduled with the CPU its ladder needs (90p and 180p at 30 fps, veryfast).
    let cpu = jsonpath(cluster, &["pod", "-n", ns, &worker], "{.spec.containers[0].resources.requests.cpu}");
    assert_eq!(cpu, "150m", "the worker requests the CPU of its ladder");
    let (ok, id) = tokio::task::block_in_place(|| exec(cluster, ns, &worker, &["id", "-u"]));
    assert!(ok && id.trim() == "65532", "the worker runs as non-root: {id}");
    let (ok, touch) = tokio::task::block_in_place(|| exec(cluster, ns, &worker, &["sh", "-c", "touch /probe"]));
    assert!(!ok && touch.contains("Read-only file system"), "the worker's root filesystem is read-only: {touch}");

    let key = stream.stream_key().await;
    let logs = tempfile::tempdir().expect("log dir");
    tokio::task::block_in_place(|| wait_until_reachable(&secure_ingest_url, Duration::from_secs(30)));
    let watch = PlaylistWatch::start(&playback_url);
    let encoder = Encoder::start(format!("{secure_ingest_url}/{key}"), Duration::from_secs(12), logs.path());
    let live = stream
        .wait_for("phase Live with figures", Duration::from_secs(40), |s| {
            phase(s) == Some(Phase::Live)
                && condition_is_true(s, "Live")
                && s.status.as_ref().and_then(|st| st.live.as_ref()).is_some_and(|l| {
                    l.ingest_bitrate_kbps.is_some_and(|b| b > 0) && l.frame_rate.is_some_and(|f| f > 0.0)
                })
        })
        .await;
    assert!(!condition_is_true(&live, "Degraded"), "a healthy stream is not Degraded: {:?}", live.status);
    assert_eq!(condition_reason(&live, "Live").as_deref(), Some("Publishing"), "{:?}", live.status);
    eprintln!("e2e: Live {:.1}s after kubectl apply", started.elapsed().as_secs_f64());
    stream
        .wait_playlists("two segments in every media playlist", Duration::from_secs(20), &playback_url, |p| {
            p.iter().all(|(_, m)| m.segments.len() >= 2)
        })
        .await;
    the_dashboard_reads_what_the_pods_serve(&client, release, ops, ns, &worker).await;

    let connections = tokio::task::block_in_place(|| encoder.finish());
    assert!(
        connections.len() == 1 && connections[0].completed,
        "one uninterrupted push: {connections:?}\n{}",
        redacted_log(&logs.path().join("encoder.log"), &key)
    );
    let ended = stream.wait_for("phase Ended", Duration::from_secs(40), |s| phase(s) == Some(Phase::Ended)).await;
    assert!(!condition_is_true(&ended, "Live"), "an ended stream is not Live: {:?}", ended.status);
    assert_eq!(condition_reason(&ended, "Live").as_deref(), Some("StreamEnded"), "{:?}", ended.status);
    // The events follow the status write that they describe.
    wait_for_async("the events PublishStarted and PublishStopped", Duration::from_secs(20), || async {
        let reasons = event_reasons(&client, ns).await;
        ["PublishStarted", "PublishStopped"].iter().all(|reason| reasons.iter().any(|r| r == reason)).then_some(())
    })
    .await;
    let base = playback_url.trim_end_matches("/master.m3u8").to_string();
    let poster_url = ended.status.as_ref().and_then(|s| s.poster_url.clone()).expect("status.posterUrl");
    assert_eq!(poster_url, format!("{base}/poster.jpg"));
    let poster = reqwest::get(&poster_url).await.expect("GET the poster");
    assert_eq!(poster.status(), 200, "the poster is in storage");
    let content_type = poster.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    assert_eq!(content_type.as_deref(), Some("image/jpeg"));
    let jpeg = poster.bytes().await.expect("the poster's bytes");
    assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]), "a whole JPEG");
    let playlists = stream
        .wait_playlists("ENDLIST in every media playlist", Duration::from_secs(20), &playback_url, |p| {
            p.iter().all(|(_, m)| m.ended)
        })
        .await;
    assert_eq!(playlists.len(), 2, "both renditions in the master: {playlists:?}");
    let report = watch.finish();
    assert!(report.unreadable.is_empty(), "playlists named unreadable objects: {:?}", report.unreadable);
    for variant in variants(&report) {
        let history = history(&report, &variant);
        assert!(history.problems.is_empty(), "{variant}: {:?}", history.problems);
        assert!(history.gaps().is_empty(), "{variant} has holes in its sequence: {:?}", history.gaps());
        assert!(history.discontinuities().is_empty(), "{variant}: one push, no discontinuity");
        let url = format!("{base}/{variant}");
        let errors = tokio::task::spawn_blocking(move || decode_errors(&url, "0:v")).await.expect("decode");
        assert!(errors.trim().is_empty(), "{variant} does not decode cleanly:\n{errors}");
    }

    let worker_log = kubectl_output({
        let mut c = cluster.kubectl();
        c.args(["logs", "-n", ns, &worker]);
        c
    });
    assert!(!worker_log.is_empty(), "the worker logged");
    assert!(!worker_log.contains(&key), "the stream key appears in the worker's log");
    assert!(!worker_log.contains(minio.secret_key()), "the storage secret appears in the worker's log");
    assert!(worker_log.contains("rtmps"), "the worker names its RTMPS listener: {worker_log}");

    let uid = stream.api().get(name).await.expect("the LiveStream").uid().expect("uid");
    stream.api().delete(name, &DeleteParams::default()).await.expect("delete the LiveStream");
    let gone = await_condition(stream.api(), name, conditions::is_deleted(&uid));
    stream.within("the LiveStream to be deleted", Duration::from_secs(60), gone).await.expect("watch");
    let left = minio.store("live").list(&format!("{ns}/{name}"), 10).await.expect("list the prefix");
    assert!(left.is_empty(), "retention Delete leaves the prefix empty, found {left:?}");
    let no_worker = stream.wait_pods("the worker pod to go", Duration::from_secs(60), |pods| pods.is_empty()).await;
    assert!(no_worker.is_empty());
    eprintln!("e2e: done {:.1}s after kubectl apply", started.elapsed().as_secs_f64());
}

/// A stream without a key: `storage.webIdentity` names MinIO's role, the operator mounts
/// a token of the worker's ServiceAccount for MinIO's audience, and the worker exchanges
/// it at MinIO's STS (which trusts the cluster's token issuer) for temporary credentials
/// that write the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_writes_with_its_workers_token_and_no_key() {
    const AUDIENCE: &str = "livestream-minio";
    const POLICY: &str = "livestream-writer";
    const BUCKET: &str = "identity";
    let cluster = cluster();
    let (release, ops, ns, name) = ("identity", "identity-ops", "identity", "keyless");
    let issuer = cluster.kube.token_issuer().expect("the cluster publishes its token issuer");
    let provider = OpenIdProvider {
        discovery_url: issuer.discovery_url.clone(),
        ca_cert: Some(issuer.ca_cert.clone()),
        audience: AUDIENCE.into(),
        role_policy: POLICY.into(),
    };
    let minio = MinioServer::start_with_openid(cluster.node_ip, provider).await;
    minio.create_bucket(BUCKET, true).await;
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
             "Resource": [format!("arn:aws:s3:::{BUCKET}/*")]},
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
             "Resource": [format!("arn:aws:s3:::{BUCKET}")]},
        ],
    });
    minio.create_policy(POLICY, &policy).await;
    kubectl_apply(cluster.kubectl(), &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"));
    tokio::task::block_in_place(|| cluster.wait_default_service_account(ns));
    let home = tempfile::tempdir().expect("helm home");
    let stream = install_watching(release, ops, ns, name, home.path()).await;
    let role_arn = minio.role_arn();
    let sts = minio.sts_endpoint();
    let spec = StreamSpec {
        bucket: BUCKET,
        retention: "Retain",
        web_identity: Some((&role_arn, AUDIENCE, &sts)),
        ..StreamSpec::default()
    };
    kubectl_apply(cluster.kubectl(), &stream_yaml(ns, name, &minio, &spec));
    let ready = stream.wait_for("condition Ready", Duration::from_secs(90), |s| condition_is_true(s, "Ready")).await;
    let status = ready.status.expect("a status");
    let (ingest_url, playback_url) = (status.ingest_url.expect("ingestUrl"), status.playback_url.expect("playbackUrl"));

    let pods = stream.worker_pods().await;
    let pod = serde_json::to_value(&pods[0]).expect("the worker pod as JSON");
    let env = &pod["spec"]["containers"][0]["env"];
    let names: Vec<&str> = env.as_array().into_iter().flatten().filter_map(|e| e["name"].as_str()).collect();
    assert!(!names.contains(&"AWS_SECRET_ACCESS_KEY"), "no key in the worker's environment: {names:?}");
    for variable in ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL_STS"] {
        assert!(names.contains(&variable), "{variable} in {names:?}");
    }
    let projected = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|v| v["projected"]["sources"][0]["serviceAccountToken"].as_object().cloned())
        .expect("a projected ServiceAccount token");
    assert_eq!(projected["audience"], AUDIENCE);

    let key = stream.stream_key().await;
    let logs = tempfile::tempdir().expect("log dir");
    tokio::task::block_in_place(|| wait_until_reachable(&ingest_url, Duration::from_secs(30)));
    let encoder = Encoder::start(format!("{ingest_url}/{key}"), Duration::from_secs(8), logs.path());
    stream.wait_for("phase Live", Duration::from_secs(40), |s| phase(s) == Some(Phase::Live)).await;
    let connections = tokio::task::block_in_place(|| encoder.finish());
    assert_eq!(connections.len(), 1, "one push: {connections:?}");
    stream.wait_for("phase Ended", Duration::from_secs(40), |s| phase(s) == Some(Phase::Ended)).await;
    let playlists = stream
        .wait_playlists("ENDLIST in every media playlist", Duration::from_secs(20), &playback_url, |p| {
            p.iter().all(|(_, m)| m.ended)
        })
        .await;
    let seconds: f64 = playlists.iter().flat_map(|(_, m)| m.segments.iter().map(|s| s.1)).sum();
    assert!(seconds >= 5.0, "the push reached storage: {seconds:.1} s in {playlists:?}");
    let written = minio.store(BUCKET).list(&format!("{ns}/{name}"), 1000).await.expect("list the prefix as root");
    assert!(written.len() > 5, "objects under the stream's prefix: {written:?}");

    let worker = stream.worker_pods().await[0].name_any();
    let log = kubectl_output({
        let mut c = cluster.kubectl();
        c.args(["logs", "-n", ns, &worker]);
        c
    });
    let (ok, token) = tokio::task::block_in_place(|| {
        exec(cluster, ns, &worker, &["cat", "/var/run/secrets/livestream/web-identity/token"])
    });
    assert!(ok, "the token is mounted: {token}");
    let signature = token.trim().rsplit('.').next().expect("a signed token");
    assert!(!log.contains(signature) && !log.contains(&key), "no token or key in the worker's log:\n{log}");
    assert!(!log.contains("ASIA"), "no temporary access key in the worker's log:\n{log}");
}
