//! The operator against a real kube-apiserver: children with owner references, status
//! and conditions, updates, suspend, invalid references, deletion with storage cleanup,
//! no writes for an unchanged stream, and leader election between two replicas.
//!
//! No worker runs here: the stream's life with a running worker (Idle, Live, Ended, the
//! events) is tested on a real node, in `cluster_operator`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use livestream::api::{LiveStream, Phase};
use livestream::backoff::Backoff;
use livestream::controller::leader::LeaseSettings;
use livestream::controller::{
    CleanupError, Metrics, OperatorConfig, PrefixCleaner, RunSettings, StorageTarget, run_controller,
};
use livestream::telemetry::Health;
use serde_json::json;
use support::kube::KubeEnv;
use tokio_util::sync::CancellationToken;

fn crd() -> CustomResourceDefinition {
    serde_yaml::from_str(include_str!("../crds/livestream.yaml")).expect("parse crds/livestream.yaml")
}

/// A storage cleaner that records what it was asked to delete, or never answers.
#[derive(Default)]
struct FakeCleaner {
    calls: Mutex<Vec<StorageTarget>>,
    hang: bool,
}

impl PrefixCleaner for FakeCleaner {
    fn delete_prefix<'a>(&'a self, storage: &'a StorageTarget) -> BoxFuture<'a, Result<u64, CleanupError>> {
        self.calls.lock().unwrap().push(storage.clone());
        if self.hang { Box::pin(futures::future::pending()) } else { Box::pin(futures::future::ready(Ok(7))) }
    }
}

/// One running controller, stopped on drop.
struct Operator {
    metrics: Metrics,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), livestream::controller::RunError>>,
}

impl Operator {
    fn start(
        client: &Client,
        namespace: &str,
        cleaner: Arc<FakeCleaner>,
        lease: Option<LeaseSettings>,
        identity: &str,
    ) -> Self {
        Self::start_with(client, namespace, cleaner, lease, identity, OperatorConfig::default())
    }

    /// As [`Self::start`], with `base`'s settings besides the tests' short timings.
    fn start_with(
        client: &Client,
        namespace: &str,
        cleaner: Arc<FakeCleaner>,
        lease: Option<LeaseSettings>,
        identity: &str,
        base: OperatorConfig,
    ) -> Self {
        let settings = RunSettings {
            operator: OperatorConfig {
                worker_image: "livestream:test".into(),
                live_poll_interval: Duration::from_millis(500),
                worker_status_timeout: Duration::from_secs(1),
                idle_resync: Duration::from_secs(1),
                cleanup_timeout: Duration::from_secs(3),
                error_backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(2)),
                ..base
            },
            namespace: Some(namespace.into()),
            leader_election: lease,
            identity: identity.into(),
        };
        let metrics = Metrics::default();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run_controller(
            client.clone(),
            settings,
            cleaner,
            metrics.clone(),
            Health::new(),
            stop.clone(),
        ));
        Self { metrics, stop, task }
    }

    async fn stop(mut self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), &mut self.task).await;
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client, the CRD, and a fresh namespace with a default service account.
async fn setup(namespace: &str) -> Client {
    livestream::telemetry::init_logging(livestream::telemetry::LogFormat::Text);
    let env = KubeEnv::shared();
    let client = env.client().await;
    env.install_crd(&client, &crd()).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    namespaces.create(&PostParams::default(), &ns).await.expect("create namespace");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    accounts.create(&PostParams::default(), &sa).await.expect("create default service account");
    client
}

async fn create_stream(client: &Client, namespace: &str, name: &str, spec: serde_json::Value) -> LiveStream {
    let api: Api<LiveStream> = Api::namespaced(client.clone(), namespace);
    let stream: LiveStream = serde_json::from_value(json!({
        "apiVersion": "livestream.dev/v1alpha1",
        "kind": "LiveStream",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap();
    api.create(&PostParams::default(), &stream).await.expect("create LiveStream")
}

/// Polls `check` every 100 ms until it returns `Some`, at most `timeout`.
async fn eventually<T, F>(what: &str, timeout: Duration, mut check: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stream_where(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    pred: impl Fn(&LiveStream) -> bool,
) -> LiveStream {
    let api: Api<LiveStream> = Api::namespaced(client.clone(), ns);
    eventually(what, Duration::from_secs(30), || {
        let api = api.clone();
        let pred = &pred;
        async move { api.get_opt(name).await.ok().flatten().filter(|s| pred(s)) }
    })
    .await
}

fn phase(stream: &LiveStream) -> Option<Phase> {
    stream.status.as_ref().and_then(|s| s.phase)
}

fn condition(stream: &LiveStream, type_: &str) -> Option<(String, String)> {
    let status = stream.status.as_ref()?;
    status.conditions.iter().find(|c| c.type_ == type_).map(|c| (c.status.clone(), c.reason.clone()))
}

async fn event_with_reason(client: &Client, ns: &str, reason: &str) -> Event {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    eventually(&format!("an event {reason}"), Duration::from_secs(30), || {
        let api = api.clone();
        async move {
            let events = api.list(&ListParams::default()).await.ok()?;
            events.items.into_iter().find(|e| e.reason.as_deref() == Some(reason))
        }
    })
    .await
}

async fn children_exist(client: &Client, ns: &str, name: &str) -> (ConfigMap, Deployment, Service, Secret) {
    eventually("the children", Duration::from_secs(30), || async {
        let cm = Api::<ConfigMap>::namespaced(client.clone(), ns).get_opt(&format!("{name}-worker")).await.ok()??;
        let d = Api::<Deployment>::namespaced(client.clone(), ns).get_opt(&format!("{name}-worker")).await.ok()??;
        let svc = Api::<Service>::namespaced(client.clone(), ns).get_opt(&format!("{name}-ingest")).await.ok()??;
        let secret =
            Api::<Secret>::namespaced(client.clone(), ns).get_opt(&format!("{name}-stream-key")).await.ok()??;
        Some((cm, d, svc, secret))
    })
    .await
}

fn checksum(d: &Deployment) -> String {
    d.spec.template.metadata.as_ref().unwrap().annotations.as_ref().unwrap()["livestream.dev/config-checksum"].clone()
}

#[tokio::test]
async fn create_builds_owned_children_and_reports_pending_until_a_worker_runs() {
    let ns = "ctl-create";
    let client = setup(ns).await;
    let _operator = Operator::start(&client, ns, Arc::default(), None, "solo");
    let stream = create_stream(&client, ns, "demo", json!({"storage": {"bucket": "live-video", "endpoint": "http://127.0.0.1:9000", "forcePathStyle": true}, "ingest": {"service": {"type": "NodePort"}}})).await;

    let (cm, d, svc, secret) = children_exist(&client, ns, "demo").await;
    for owners in [
        &cm.metadata.owner_references,
        &d.metadata.owner_references,
        &svc.metadata.owner_references,
        &secret.metadata.owner_references,
    ] {
        let owner = &owners.as_ref().expect("owner references")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("LiveStream", stream.uid().unwrap().as_str(), Some(true))
        );
    }
    assert_eq!(cm.labels()["app.kubernetes.io/managed-by"], "livestream-operator");
    let key = &secret.data.as_ref().unwrap()["streamKey"].0;
    assert_eq!(key.len(), 32);
    let config = &cm.data.as_ref().unwrap()["worker.yaml"];
    assert!(!config.contains(std::str::from_utf8(key).unwrap()), "the stream key must not be in the ConfigMap");

    let pending =
        stream_where(&client, ns, "demo", "Pending with Ready False", |s| phase(s) == Some(Phase::Pending)).await;
    assert_eq!(condition(&pending, "Ready"), Some(("False".into(), "WorkerNotAvailable".into())));
    let status = pending.status.unwrap();
    assert_eq!(status.playback_url.as_deref(), Some("http://127.0.0.1:9000/live-video/ctl-create/demo/master.m3u8"));
    assert!(
        status.ingest_url.as_deref().is_some_and(|u| u.starts_with("rtmp://") && u.ends_with("/live")),
        "{:?}",
        status.ingest_url
    );
}

#[tokio::test]
async fn an_unchanged_stream_causes_no_writes() {
    let ns = "ctl-nowrites";
    let client = setup(ns).await;
    let operator = Operator::start(&client, ns, Arc::default(), None, "solo");
    create_stream(&client, ns, "quiet", json!({"storage": {"bucket": "live-video"}})).await;
    children_exist(&client, ns, "quiet").await;
    stream_where(&client, ns, "quiet", "Pending", |s| phase(s) == Some(Phase::Pending)).await;
    // Let the first reconciles after the initial writes settle.
    let settled = operator.metrics.reconciles() + 3;
    eventually("a few reconciles", Duration::from_secs(30), || async {
        (operator.metrics.reconciles() >= settled).then_some(())
    })
    .await;

    let versions = || async {
        let rv = |m: &kube::api::ObjectMeta| m.resource_version.clone().unwrap();
        vec![
            rv(&Api::<LiveStream>::namespaced(client.clone(), ns).get("quiet").await.unwrap().metadata),
            rv(&Api::<ConfigMap>::namespaced(client.clone(), ns).get("quiet-worker").await.unwrap().metadata),
            rv(&Api::<Deployment>::namespaced(client.clone(), ns).get("quiet-worker").await.unwrap().metadata),
            rv(&Api::<Service>::namespaced(client.clone(), ns).get("quiet-ingest").await.unwrap().metadata),
            rv(&Api::<Secret>::namespaced(client.clone(), ns).get("quiet-stream-key").await.unwrap().metadata),
        ]
    };
    let before = versions().await;
    let writes_before = operator.metrics.writes();
    let target = operator.metrics.reconciles() + 4;
    eventually("four more resyncs", Duration::from_secs(30), || async {
        (operator.metrics.reconciles() >= target).then_some(())
    })
    .await;
    assert_eq!(versions().await, before, "resourceVersions changed without a spec change");
    assert_eq!(operator.metrics.writes(), writes_before, "the controller wrote without a change");
}

#[tokio::test]
async fn ladder_change_rolls_the_worker_and_suspend_scales_to_zero() {
    let ns = "ctl-update";
    let client = setup(ns).await;
    let _operator = Operator::start(&client, ns, Arc::default(), None, "solo");
    create_stream(&client, ns, "demo", json!({"storage": {"bucket": "live-video"}})).await;
    let (_, d, _, secret) = children_exist(&client, ns, "demo").await;
    let before = checksum(&d);
    let api: Api<LiveStream> = Api::namespaced(client.clone(), ns);
    let ladder = json!({"spec": {"ladder": {"renditions": [{"name": "360p", "width": 640, "height": 360, "videoBitrateKbps": 800}]}}});
    api.patch("demo", &PatchParams::default(), &Patch::Merge(&ladder)).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let rolled = eventually("a new config checksum", Duration::from_secs(30), || async {
        deployments.get("demo-worker").await.ok().filter(|d| checksum(d) != before)
    })
    .await;
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns).get("demo-worker").await.unwrap();
    assert!(cm.data.unwrap()["worker.yaml"].contains("360p"));
    assert_eq!(rolled.spec.replicas, Some(1));

    api.patch("demo", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"suspend": true}}))).await.unwrap();
    eventually("replicas 0", Duration::from_secs(30), || async {
        deployments.get("demo-worker").await.ok().filter(|d| d.spec.replicas == Some(0))
    })
    .await;
    let suspended = stream_where(&client, ns, "demo", "Suspended", |s| phase(s) == Some(Phase::Suspended)).await;
    assert_eq!(condition(&suspended, "Ready"), Some(("False".into(), "Suspended".into())));

    api.patch("demo", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"suspend": false}}))).await.unwrap();
    eventually("replicas 1", Duration::from_secs(30), || async {
        deployments.get("demo-worker").await.ok().filter(|d| d.spec.replicas == Some(1))
    })
    .await;
    stream_where(&client, ns, "demo", "Pending again", |s| phase(s) == Some(Phase::Pending)).await;
    let after = Api::<Secret>::namespaced(client.clone(), ns).get("demo-stream-key").await.unwrap();
    assert_eq!(after.data, secret.data, "the generated stream key is never rotated");
}

#[tokio::test]
async fn a_missing_secret_fails_the_stream_until_it_exists() {
    let ns = "ctl-invalid";
    let client = setup(ns).await;
    let _operator = Operator::start(&client, ns, Arc::default(), None, "solo");
    create_stream(
        &client,
        ns,
        "demo",
        json!({
            "storage": {"bucket": "live-video"},
            "ingest": {"streamKeySecretRef": {"name": "publisher-keys", "key": "demo"}},
        }),
    )
    .await;
    let failed = stream_where(&client, ns, "demo", "Failed", |s| phase(s) == Some(Phase::Failed)).await;
    assert_eq!(condition(&failed, "Ready"), Some(("False".into(), "StreamKeySecretNotFound".into())));
    let event = event_with_reason(&client, ns, "StreamKeySecretNotFound").await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    assert!(deployments.get_opt("demo-worker").await.unwrap().is_none(), "no worker without a stream key");

    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let wrong: Secret =
        serde_json::from_value(json!({"metadata": {"name": "publisher-keys"}, "stringData": {"other": "x"}})).unwrap();
    secrets.create(&PostParams::default(), &wrong).await.unwrap();
    stream_where(&client, ns, "demo", "StreamKeyMissing", |s| {
        condition(s, "Ready").is_some_and(|c| c.1 == "StreamKeyMissing")
    })
    .await;

    let fixed = json!({"stringData": {"demo": "s3cr3t-key"}});
    secrets.patch("publisher-keys", &PatchParams::default(), &Patch::Merge(&fixed)).await.unwrap();
    stream_where(&client, ns, "demo", "Pending after the fix", |s| phase(s) == Some(Phase::Pending)).await;
    let d = deployments.get("demo-worker").await.unwrap();
    let env = d.spec.template.spec.unwrap().containers[0].env.clone().unwrap();
    let key = env.iter().find(|e| e.name == "LIVESTREAM_STREAM_KEY").unwrap();
    let selector = key.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!((selector.name.as_str(), selector.key.as_str()), ("publisher-keys", "demo"));
    let status =
        serde_json::to_string(&Api::<LiveStream>::namespaced(client.clone(), ns).get("demo").await.unwrap().status)
            .unwrap();
    assert!(!status.contains("s3cr3t-key"));
}

#[tokio::test]
async fn delete_cleans_storage_only_with_delete_retention() {
    let ns = "ctl-delete";
    let client = setup(ns).await;
    let cleaner = Arc::new(FakeCleaner::default());
    let _operator = Operator::start(&client, ns, cleaner.clone(), None, "solo");
    create_stream(&client, ns, "gone", json!({"storage": {"bucket": "live-video", "retention": "Delete"}})).await;
    create_stream(&client, ns, "kept", json!({"storage": {"bucket": "live-video", "retention": "Retain"}})).await;
    let api: Api<LiveStream> = Api::namespaced(client.clone(), ns);
    for name in ["gone", "kept"] {
        stream_where(&client, ns, name, "the finalizer", |s| {
            s.finalizers().iter().any(|f| f == "livestream.dev/storage-cleanup")
        })
        .await;
        api.delete(name, &DeleteParams::default()).await.unwrap();
        eventually(&format!("{name} to be deleted"), Duration::from_secs(30), || async {
            api.get_opt(name).await.ok().filter(Option::is_none)
        })
        .await;
    }
    let calls = cleaner.calls.lock().unwrap().clone();
    // Cleanup is idempotent and may run again for a stale copy; it never runs for "kept".
    assert!(!calls.is_empty(), "the cleaner was not called");
    assert!(
        calls.iter().all(|c| (c.bucket.as_str(), c.prefix.as_str()) == ("live-video", "ctl-delete/gone")),
        "{calls:?}"
    );
    event_with_reason(&client, ns, "StorageCleaned").await;
}

#[tokio::test]
async fn unreachable_storage_does_not_block_deletion_beyond_the_bound() {
    let ns = "ctl-delete-hang";
    let client = setup(ns).await;
    let cleaner = Arc::new(FakeCleaner { hang: true, ..FakeCleaner::default() });
    let _operator = Operator::start(&client, ns, cleaner.clone(), None, "solo");
    create_stream(&client, ns, "stuck", json!({"storage": {"bucket": "live-video", "retention": "Delete"}})).await;
    let api: Api<LiveStream> = Api::namespaced(client.clone(), ns);
    stream_where(&client, ns, "stuck", "the finalizer", |s| !s.finalizers().is_empty()).await;
    let started = std::time::Instant::now();
    api.delete("stuck", &DeleteParams::default()).await.unwrap();
    eventually("the delete to finish", Duration::from_secs(20), || async {
        api.get_opt("stuck").await.ok().filter(Option::is_none)
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10), "deletion took {:?} with a 3 s bound", started.elapsed());
    assert!(!cleaner.calls.lock().unwrap().is_empty(), "cleanup was attempted");
    let event = event_with_reason(&client, ns, "StorageCleanupAbandoned").await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
}

#[tokio::test]
async fn with_two_replicas_only_the_leader_reconciles() {
    let ns = "ctl-leader";
    let client = setup(ns).await;
    let lease = |identity: &str| {
        let mut settings = LeaseSettings::new("livestream-operator", ns, identity);
        settings.lease_duration = Duration::from_secs(4);
        settings.retry_interval = Duration::from_millis(500);
        Some(settings)
    };
    let first = Operator::start(&client, ns, Arc::default(), lease("replica-a"), "replica-a");
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client.clone(), ns);
    eventually("replica-a to hold the lease", Duration::from_secs(30), || async {
        let lease = leases.get_opt("livestream-operator").await.ok()??;
        (lease.spec?.holder_identity.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    let second = Operator::start(&client, ns, Arc::default(), lease("replica-b"), "replica-b");
    create_stream(&client, ns, "demo", json!({"storage": {"bucket": "live-video"}})).await;
    stream_where(&client, ns, "demo", "Pending", |s| phase(s) == Some(Phase::Pending)).await;
    let target = first.metrics.reconciles() + 3;
    eventually("resyncs on the leader", Duration::from_secs(30), || async {
        (first.metrics.reconciles() >= target).then_some(())
    })
    .await;
    assert_eq!(second.metrics.reconciles(), 0, "the follower reconciled");

    // The leader stops and releases the lease: the follower takes over.
    first.stop().await;
    eventually("replica-b to reconcile", Duration::from_secs(30), || async {
        (second.metrics.reconciles() > 0).then_some(())
    })
    .await;
    let holder = leases.get("livestream-operator").await.unwrap().spec.unwrap().holder_identity;
    assert_eq!(holder.as_deref(), Some("replica-b"));
}

/// Behind the ingest gateway: each stream's ingest Service is a ClusterIP one, its status
/// names the gateway's address, and the routes Secret maps its key's digest to that
/// Service; a deleted stream loses its route, and an unchanged fleet rewrites nothing.
#[tokio::test]
async fn behind_the_gateway_streams_are_routed_by_their_keys() {
    use livestream::controller::config::GatewaySettings;
    use livestream::gateway::routes::{ROUTES_KEY, RouteTable};
    use livestream::ingest::session::StreamKey;
    let ns = "ctl-gateway";
    let client = setup(ns).await;
    let gateway = GatewaySettings {
        url: "rtmp://ingest.example.com:1935".into(),
        secure_url: None,
        routes_namespace: ns.into(),
        routes_secret: "gateway-routes".into(),
    };
    let config = OperatorConfig { gateway: Some(gateway), ..OperatorConfig::default() };
    let operator = Operator::start_with(&client, ns, Arc::default(), None, "solo", config);
    for name in ["one", "two"] {
        create_stream(&client, ns, name, json!({"storage": {"bucket": "live-video"}})).await;
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let table = || async {
        let secret = secrets.get_opt("gateway-routes").await.ok().flatten()?;
        serde_json::from_slice::<RouteTable>(&secret.data?.get(ROUTES_KEY)?.0).ok()
    };
    let routed = eventually("two routes", Duration::from_secs(30), || async {
        table().await.filter(|table| table.routes.len() == 2)
    })
    .await;
    for name in ["one", "two"] {
        let stream = stream_where(&client, ns, name, "the gateway's URL", |s| {
            s.status.as_ref().and_then(|s| s.ingest_url.as_deref()) == Some("rtmp://ingest.example.com:1935/live")
        })
        .await;
        assert!(stream.status.unwrap().secure_ingest_url.is_none());
        let service = services.get(&format!("{name}-ingest")).await.unwrap();
        let spec = service.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"), "no load balancer per stream");
        let key_secret = secrets.get(&format!("{name}-stream-key")).await.unwrap();
        let key = String::from_utf8(key_secret.data.unwrap()["streamKey"].0.clone()).unwrap();
        let route = routed.lookup("live", &StreamKey::new(key.trim())).expect("the key routes");
        assert_eq!(route.stream, format!("{ns}/{name}"));
        assert_eq!(route.address.to_string(), format!("{}:1935", spec.cluster_ip.unwrap()));
    }
    let raw = secrets.get("gateway-routes").await.unwrap();
    let text = String::from_utf8(raw.data.unwrap()[ROUTES_KEY].0.clone()).unwrap();
    for name in ["one", "two"] {
        let key = secrets.get(&format!("{name}-stream-key")).await.unwrap().data.unwrap()["streamKey"].0.clone();
        assert!(!text.contains(String::from_utf8(key).unwrap().trim()), "no key in the routes");
    }

    // Quiet: nothing changes, nothing is written.
    let version = raw.metadata.resource_version.clone();
    let target = operator.metrics.reconciles() + 6;
    eventually("more resyncs", Duration::from_secs(30), || async {
        (operator.metrics.reconciles() >= target).then_some(())
    })
    .await;
    assert_eq!(secrets.get("gateway-routes").await.unwrap().metadata.resource_version, version);

    Api::<LiveStream>::namespaced(client.clone(), ns).delete("two", &DeleteParams::default()).await.unwrap();
    let left = eventually("one route", Duration::from_secs(30), || async {
        table().await.filter(|table| table.routes.len() == 1)
    })
    .await;
    assert_eq!(left.routes[0].stream, format!("{ns}/one"));
    assert_eq!(left.salt, routed.salt, "the salt stays");

    // Two streams with one key (a Secret shared by mistake): the gateway could route the
    // key to one of them only, so the younger is refused with a reason, and takes the key
    // over when the older goes.
    let key = "a-key-two-streams-share";
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "shared-key"}, "stringData": {"streamKey": key}})).unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();
    let shared = json!({"ingest": {"streamKeySecretRef": {"name": "shared-key"}}, "storage": {"bucket": "live-video"}});
    create_stream(&client, ns, "elder", shared.clone()).await;
    eventually("the elder routed", Duration::from_secs(30), || async {
        table().await.filter(|table| table.routes.iter().any(|r| r.stream == format!("{ns}/elder")))
    })
    .await;
    create_stream(&client, ns, "younger", shared).await;
    let refused = stream_where(&client, ns, "younger", "Ready False with StreamKeyInUse", |s| {
        s.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready")).map(|c| c.reason.as_str())
            == Some("StreamKeyInUse")
    })
    .await;
    let status = refused.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Failed));
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert!(ready.message.contains(&format!("{ns}/elder")), "names the stream holding the key: {}", ready.message);
    assert!(!ready.message.contains(key), "no key in the status: {}", ready.message);
    let routed_to = |table: &RouteTable| table.lookup("live", &StreamKey::new(key)).map(|r| r.stream.clone());
    assert_eq!(routed_to(&table().await.unwrap()), Some(format!("{ns}/elder")), "the key stays with the elder");
    Api::<LiveStream>::namespaced(client.clone(), ns).delete("elder", &DeleteParams::default()).await.unwrap();
    let taken_over = eventually("the key routed to the younger", Duration::from_secs(60), || async {
        table().await.filter(|table| routed_to(table) == Some(format!("{ns}/younger")))
    })
    .await;
    assert_eq!(taken_over.salt, routed.salt);
    stream_where(&client, ns, "younger", "Ready no longer StreamKeyInUse", |s| {
        s.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready")).map(|c| c.reason.as_str())
            != Some("StreamKeyInUse")
    })
    .await;
}
