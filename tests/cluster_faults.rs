//! Faults on a real single-node cluster while a stream is live, each with the operator
//! installed by its chart and an encoder that reconnects as OBS does. Throughout, every
//! object a playlist names must be readable and must not change or vanish while named;
//! afterwards the playlists must continue (no media sequence going back, no hole, the
//! expected number of discontinuities), hold the media pushed after the fault, and end with
//! ENDLIST; and of two workers only one may ever write (the writer marker in the media
//! playlists changes at most once and never back).
//!
//! The faults: the worker container killed (the kubelet restarts it), the worker pod
//! deleted (a new pod takes over), the worker rolled behind the ingest gateway (the
//! gateway's route leads to the new pod), a gateway pod deleted under two streams (their
//! encoders reconnect through the other), the leader operator pod killed (another replica takes the Lease within the lease
//! time), kube-apiserver restarted, MinIO stopped for 30 seconds, the kubelet restarted.
//! One at a time: each disturbs the whole cluster, and two cores run one stream well.

mod support;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use livestream::api::Phase;
use support::cluster::{Cluster, ClusterHandle};
use support::helm;
use support::livestream::{
    StreamRef, StreamSpec, condition_is_true, create_namespace_with_credentials, jsonpath, phase, pod_ready, restarts,
    stream_yaml,
};
use support::minio::MinioServer;
use support::stream::{
    Connection, Encoder, PlaylistWatch, WatchReport, history, kubectl_apply, redacted_log, variants,
    wait_until_reachable,
};

const RELEASE: &str = "faults";
const OPERATOR_NAMESPACE: &str = "faults-ops";
const BUCKET: &str = "live";
/// How long each stream is pushed; the fault comes a few seconds into it.
const PUSH: Duration = Duration::from_secs(36);
/// How long storage is down in the outage test (whose push is longer by as much).
const OUTAGE: Duration = Duration::from_secs(30);
/// Media that may be missing of what was pushed after the recovery (seconds): the first
/// segment starts at the first keyframe the new worker gets, and the last one is cut
/// short when the push ends.
const TOLERANCE_SECONDS: f64 = 2.5;

/// The ingest gateway's node port: one of the static band, which the API server never
/// hands to Services that ask for any port.
const GATEWAY_NODE_PORT: u16 = 30010;

/// One fault at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where encoders reach the ingest gateway.
fn gateway_url(cluster: &ClusterHandle) -> String {
    format!("rtmp://{}:{GATEWAY_NODE_PORT}", cluster.node_ip)
}

/// The shared cluster, with the operator installed once (watching every namespace) with
/// its ingest gateway on a node port.
fn cluster() -> &'static ClusterHandle {
    static OPERATOR: OnceLock<()> = OnceLock::new();
    let cluster = tokio::task::block_in_place(Cluster::shared);
    OPERATOR.get_or_init(|| {
        let home = cluster.dir.join("helm-faults");
        let values = [
            "gateway.enabled=true".to_string(),
            format!("gateway.url={}", gateway_url(cluster)),
            "gateway.service.type=NodePort".to_string(),
            format!("gateway.service.nodePort={GATEWAY_NODE_PORT}"),
            "gateway.resources.requests.cpu=20m".to_string(),
        ];
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        tokio::task::block_in_place(|| {
            helm::install_operator(cluster.kube.kubeconfig(), &home, RELEASE, OPERATOR_NAMESPACE, &values)
        })
        .unwrap_or_else(|e| panic!("install the operator: {e}\n{}", cluster.logs_tail()));
    });
    cluster
}

/// A live stream under test, with its encoder and playlist watch running.
struct LiveRun {
    stream: StreamRef,
    minio: MinioServer,
    ingest_url: String,
    playback_url: String,
    watch: PlaylistWatch,
    encoder: Encoder,
    key: String,
    logs: tempfile::TempDir,
}

/// Sets up `namespace` with MinIO and a stream with its own ingest NodePort, pushes to
/// it, and returns once its playlists name a few segments.
async fn go_live(namespace: &str, push: Duration) -> LiveRun {
    go_live_with(namespace, push, &StreamSpec::default()).await
}

/// [`go_live`] with a stream as `spec` says.
async fn go_live_with(namespace: &str, push: Duration, spec: &StreamSpec<'_>) -> LiveRun {
    let cluster = cluster();
    let client = cluster.kube.client().await;
    let minio = MinioServer::start_on(cluster.node_ip).await;
    minio.create_bucket(BUCKET, true).await;
    tokio::task::block_in_place(|| create_namespace_with_credentials(cluster, namespace, &minio));
    let stream = StreamRef {
        cluster: cluster.clone(),
        client,
        namespace: namespace.into(),
        name: "stream".into(),
        operator_namespace: OPERATOR_NAMESPACE.into(),
    };
    kubectl_apply(cluster.kubectl(), &stream_yaml(namespace, &stream.name, &minio, spec));
    let ready = stream.wait_for("condition Ready", Duration::from_secs(90), |s| condition_is_true(s, "Ready")).await;
    let status = ready.status.expect("a status");
    let ingest_url = status.ingest_url.expect("status.ingestUrl");
    let playback_url = status.playback_url.expect("status.playbackUrl");
    let key = stream.stream_key().await;
    let logs = tempfile::tempdir().expect("log dir");
    tokio::task::block_in_place(|| wait_until_reachable(&ingest_url, Duration::from_secs(30)));
    let watch = PlaylistWatch::start(&playback_url);
    let encoder = Encoder::start(format!("{ingest_url}/{key}"), push, logs.path());
    stream.wait_for("phase Live", Duration::from_secs(30), |s| phase(s) == Some(Phase::Live)).await;
    stream
        .wait_playlists("four segments in the playlist", Duration::from_secs(30), &playback_url, |p| {
            p.iter().all(|(_, m)| m.segments.len() >= 4)
        })
        .await;
    LiveRun { stream, minio, ingest_url, playback_url, watch, encoder, key, logs }
}

/// Lets the push finish; waits for Ended and ENDLIST; returns what the encoder and the
/// watch saw.
async fn finish(run: LiveRun) -> (StreamRef, MinioServer, Vec<Connection>, WatchReport, Instant) {
    let LiveRun { stream, minio, playback_url, watch, encoder, key, logs, .. } = run;
    let connections = tokio::task::block_in_place(|| encoder.finish());
    let push_ended = Instant::now();
    let seconds: Vec<String> = connections.iter().map(|c| format!("{:.1}s", c.seconds())).collect();
    eprintln!(
        "{}: encoder connections {seconds:?}; its log:\n{}",
        stream.namespace,
        redacted_log(&logs.path().join("encoder.log"), &key)
    );
    stream.wait_for("phase Ended", Duration::from_secs(60), |s| phase(s) == Some(Phase::Ended)).await;
    stream
        .wait_playlists("ENDLIST in every media playlist", Duration::from_secs(30), &playback_url, |p| {
            p.iter().all(|(_, m)| m.ended)
        })
        .await;
    let report = watch.finish();
    (stream, minio, connections, report, push_ended)
}

/// What a fault may do to the playlists.
struct Expect {
    discontinuities: usize,
    /// The moment from which on every pushed second must reach storage: the fault's end, or
    /// for a fault that breaks the push the moment the media of the encoder's last
    /// connection began to flow.
    recovered_at: Instant,
    /// Whether the writer of the playlists may change (once).
    writer_may_change: bool,
    /// Whether every playlist must carry a writer marker.
    writer_marker_required: bool,
    /// Whether the window may slide past segments between two readings: when storage
    /// comes back, the backlog drains faster than a player reloads.
    window_may_jump: bool,
}

impl Expect {
    /// A fault the worker does not see: no discontinuity, the same writer.
    fn worker_spared(recovered_at: Instant) -> Self {
        Self {
            discontinuities: 0,
            recovered_at,
            writer_may_change: false,
            writer_marker_required: false,
            window_may_jump: false,
        }
    }

    /// A fault that breaks the encoder's connection only: it reconnects within the grace
    /// window, and the same worker goes on with one discontinuity.
    fn encoder_reconnected(recovered_at: Instant) -> Self {
        Self { discontinuities: 1, ..Self::worker_spared(recovered_at) }
    }

    /// A fault that costs the worker its run: one discontinuity where the next run (or the
    /// next worker) takes over the playlists.
    fn worker_replaced(recovered_at: Instant, writer_marker_required: bool) -> Self {
        Self {
            discontinuities: 1,
            recovered_at,
            writer_may_change: true,
            writer_marker_required,
            window_may_jump: false,
        }
    }
}

/// The continuity checks every fault test makes; panics with everything seen.
async fn assert_continuity(stream: &StreamRef, report: &WatchReport, expect: &Expect, push_ended: Instant) {
    let variants = variants(report);
    assert!(!variants.is_empty(), "the watch saw no media playlist\n{}", stream.report().await);
    assert!(
        report.unreadable.is_empty(),
        "playlists named objects that storage did not serve as announced: {:#?}\n{}",
        report.unreadable,
        stream.report().await
    );
    for variant in variants {
        let history = history(report, &variant);
        let seen: Vec<(u64, bool, f64)> =
            history.segments.iter().map(|(seq, s)| (*seq, s.discontinuity, s.duration)).collect();
        let context =
            format!("{variant}: segments (seq, discontinuity, seconds) {seen:?}, writers {:?}", history.writers);
        assert!(history.problems.is_empty(), "{context}\nproblems: {:#?}\n{}", history.problems, stream.report().await);
        assert!(history.ended, "{context}: no ENDLIST seen");
        if !expect.window_may_jump {
            assert!(history.gaps().is_empty(), "{context}: holes in the sequence at {:?}", history.gaps());
        }
        let discontinuities = history.discontinuities();
        assert_eq!(
            discontinuities.len(),
            expect.discontinuities,
            "{context}: discontinuities at {discontinuities:?}\n{}",
            stream.report().await
        );
        let wanted = (push_ended - expect.recovered_at).as_secs_f64() - TOLERANCE_SECONDS;
        let announced = history.seconds_announced_after(expect.recovered_at);
        assert!(
            announced >= wanted,
            "{context}: {announced:.1}s of media announced after the recovery, {wanted:.1}s expected\n{}",
            stream.report().await
        );
        eprintln!(
            "{}: {variant}: {} segments, discontinuities at {discontinuities:?}, {announced:.1}s announced after \
             the recovery ({wanted:.1}s wanted), writers {:?}",
            stream.namespace,
            history.segments.len(),
            history.writers
        );
        let turns = history.writer_turns().unwrap_or_else(|e| panic!("{context}: two writers took turns: {e}"));
        let allowed = if expect.writer_may_change { 2 } else { 1 };
        assert!(turns.len() <= allowed, "{context}: the playlists had {} writers: {turns:?}", turns.len());
        if expect.writer_marker_required {
            let unmarked = report.snapshots.iter().filter(|s| s.variant == variant && s.writer.is_none()).count();
            assert_eq!(unmarked, 0, "{context}: {unmarked} readings without a writer marker line");
        }
    }
}

/// A fault that spares the worker: one uninterrupted push, the same pod, no restart (its
/// probes allow for the fault).
async fn assert_worker_untouched(stream: &StreamRef, before: &Pod, connections: &[Connection]) {
    assert_eq!(connections.len(), 1, "the push was never interrupted: {connections:?}");
    let after = worker(stream).await;
    assert_eq!(after.uid(), before.uid(), "the worker pod was not replaced");
    assert_eq!(restarts(&after), 0, "the worker was not restarted");
}

/// The stream's (single) worker pod.
/// Ends a run whose fault (at `fault_at`) the worker should not have noticed: the same
/// pod and connections as `before`, and the playlists continuous.
async fn finish_with_the_worker_spared(run: LiveRun, before: &Pod, fault_at: Instant) {
    let (stream, _minio, connections, report, push_ended) = finish(run).await;
    assert_worker_untouched(&stream, before, &connections).await;
    assert_continuity(&stream, &report, &Expect::worker_spared(fault_at), push_ended).await;
}

async fn worker(stream: &StreamRef) -> Pod {
    let pods = stream.worker_pods().await;
    assert_eq!(pods.len(), 1, "one worker pod: {:?}", pods.iter().map(|p| p.name_any()).collect::<Vec<_>>());
    pods.into_iter().next().expect("a pod")
}

fn container_id(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.container_id.clone())
        .expect("a running container")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_worker_container_is_restarted_and_the_stream_continues() {
    let _serial = SERIAL.lock().await;
    let run = go_live("fault-container", PUSH).await;
    let before = worker(&run.stream).await;
    let id = container_id(&before);
    run.stream.cluster.with_cluster(|c| c.kill_container(&id)).unwrap_or_else(|e| panic!("{e}"));
    let uid = before.uid();
    let restarted = run
        .stream
        .wait_pods("the kubelet to restart the worker container", Duration::from_secs(60), |pods| {
            pods.len() == 1 && pods[0].uid() == uid && restarts(&pods[0]) >= 1 && pod_ready(&pods[0])
        })
        .await;
    assert_eq!(restarts(&restarted[0]), 1, "restarted once");
    let (stream, _minio, connections, report, push_ended) = finish(run).await;
    assert!(connections.len() >= 2, "the encoder reconnected: {connections:?}");
    let recovered_at = connections.last().expect("a connection").media_started();
    let expect = Expect::worker_replaced(recovered_at, false);
    assert_continuity(&stream, &report, &expect, push_ended).await;
}

/// How a test has a stream's worker pod replaced.
enum Replacement {
    /// The pod is deleted; its Deployment makes another.
    DeletePod,
    /// `kubectl rollout restart` of the worker Deployment.
    RolloutRestart,
}

/// A stream as `spec` says, live, whose worker pod is replaced: the encoder reconnects
/// (to the stream's own address, or through the gateway to the stream's Service, which
/// leads to the new pod once it is ready), and the new worker takes the playlists over.
async fn the_stream_continues_on_a_new_worker(namespace: &str, spec: &StreamSpec<'_>, replacement: Replacement) {
    let run = go_live_with(namespace, PUSH, spec).await;
    if spec.ingest_service.is_none() {
        let gateway = format!("{}/live", gateway_url(&run.stream.cluster));
        assert_eq!(run.ingest_url, gateway, "the stream is behind the gateway");
    }
    let before = worker(&run.stream).await;
    match replacement {
        Replacement::DeletePod => {
            let pods: Api<Pod> = Api::namespaced(run.stream.client.clone(), &run.stream.namespace);
            pods.delete(&before.name_any(), &DeleteParams::default()).await.expect("delete the worker pod");
        }
        Replacement::RolloutRestart => {
            let deployment = format!("deployment/{}-worker", run.stream.name);
            let rolled = tokio::task::block_in_place(|| {
                run.stream.cluster.kubectl().args(["rollout", "restart", "-n", namespace, &deployment]).output()
            })
            .expect("kubectl rollout restart");
            assert!(rolled.status.success(), "{}", String::from_utf8_lossy(&rolled.stderr));
        }
    }
    let uid = before.uid();
    run.stream
        .wait_pods("a new worker pod to be Ready", Duration::from_secs(90), |pods| {
            pods.iter().any(|p| p.uid() != uid && pod_ready(p))
        })
        .await;
    let (stream, _minio, connections, report, push_ended) = finish(run).await;
    assert!(connections.len() >= 2, "the encoder reconnected: {connections:?}");
    let recovered_at = connections.last().expect("a connection").media_started();
    let expect = Expect::worker_replaced(recovered_at, true);
    assert_continuity(&stream, &report, &expect, push_ended).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_worker_pod_is_replaced_and_only_one_worker_writes() {
    let _serial = SERIAL.lock().await;
    the_stream_continues_on_a_new_worker("fault-pod", &StreamSpec::default(), Replacement::DeletePod).await;
}

/// Behind the ingest gateway, a rolled worker: the gateway's route is the stream's
/// Service, which leads to the new pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolled_worker_is_reached_through_the_gateway_at_its_new_pod() {
    let _serial = SERIAL.lock().await;
    let behind_the_gateway = StreamSpec { ingest_service: None, ..StreamSpec::default() };
    the_stream_continues_on_a_new_worker("fault-roll", &behind_the_gateway, Replacement::RolloutRestart).await;
}

/// The holder of the operator's leader Lease.
async fn lease_holder(client: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let name = format!("{RELEASE}-livestream-operator");
    leases.get_opt(&name).await.ok().flatten()?.spec?.holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_operator_replica_takes_over_when_the_leader_is_killed() {
    let _serial = SERIAL.lock().await;
    let run = go_live("fault-leader", PUSH).await;
    let client = run.stream.client.clone();
    let leader = lease_holder(&client).await.expect("a leader holds the Lease");
    let operators: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let standby: Vec<String> = operators
        .list(&ListParams::default().labels("app.kubernetes.io/name=livestream-operator"))
        .await
        .expect("list operator pods")
        .items
        .iter()
        .map(|p| p.name_any())
        .filter(|n| *n != leader)
        .collect();
    assert_eq!(standby.len(), 1, "one standby replica besides the leader {leader}");
    // Either the standby or the Deployment's replacement for the killed pod may win the
    // Lease once it expires: both wait for it.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &run.stream.namespace);
    let worker_deployment = format!("{}-worker", run.stream.name);
    let generation = deployments.get(&worker_deployment).await.expect("the worker Deployment").metadata.generation;
    let worker_before = worker(&run.stream).await;

    // Killed (SIGKILL: no chance to hand the Lease back), and its pod removed before the
    // kubelet could restart the container under the same identity.
    let leader_pod = operators.get(&leader).await.expect("the leader pod");
    let killed_at = Instant::now();
    let id = container_id(&leader_pod);
    run.stream.cluster.with_cluster(|c| c.kill_container(&id)).unwrap_or_else(|e| panic!("{e}"));
    let force = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() };
    operators.delete(&leader, &force).await.expect("remove the leader pod");
    let deadline = Instant::now() + Duration::from_secs(40);
    let new_leader = loop {
        if let Some(holder) = lease_holder(&client).await.filter(|h| *h != leader) {
            break holder;
        }
        assert!(
            Instant::now() < deadline,
            "no replica took the Lease over from {leader} within 40s\n{}",
            run.stream.report().await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let took = killed_at.elapsed();
    eprintln!(
        "leader: {new_leader} took over {:.1}s after {leader} was killed (standby: {standby:?})",
        took.as_secs_f64()
    );
    let live: Vec<String> = operators
        .list(&ListParams::default().labels("app.kubernetes.io/name=livestream-operator"))
        .await
        .expect("list operator pods")
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert!(live.contains(&new_leader), "the new leader {new_leader} is a running replica: {live:?}");
    // The Lease lasts 15 s after its last renewal (every 5 s); candidates retry every few
    // seconds.
    assert!(took <= Duration::from_secs(25), "the takeover took {took:?}, longer than the lease time allows");

    let (stream, _minio, connections, report, push_ended) = finish(run).await;
    assert_worker_untouched(&stream, &worker_before, &connections).await;
    let after = deployments.get(&worker_deployment).await.expect("the worker Deployment").metadata.generation;
    assert_eq!(after, generation, "the new leader did not rewrite the worker Deployment");
    let expect = Expect::worker_spared(killed_at);
    assert_continuity(&stream, &report, &expect, push_ended).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_api_server_does_not_interrupt_the_stream() {
    let _serial = SERIAL.lock().await;
    let run = go_live("fault-apiserver", PUSH).await;
    let worker_before = worker(&run.stream).await;
    let restarted_at = Instant::now();
    tokio::task::block_in_place(|| run.stream.cluster.with_cluster(|c| c.restart_apiserver()));
    eprintln!("apiserver: back after {:.1}s", restarted_at.elapsed().as_secs_f64());
    finish_with_the_worker_spared(run, &worker_before, restarted_at).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storage_outage_of_30_seconds_delays_but_never_breaks_the_playlists() {
    let _serial = SERIAL.lock().await;
    let mut run = go_live("fault-minio", PUSH + OUTAGE).await;
    let worker_before = worker(&run.stream).await;
    run.minio.stop();
    let stopped_at = Instant::now();
    run.stream
        .wait_for("the Degraded condition during the outage", Duration::from_secs(25), |s| {
            condition_is_true(s, "Degraded")
        })
        .await;
    // The outage itself: its length is what is under test, not a wait for an event.
    tokio::time::sleep(OUTAGE.saturating_sub(stopped_at.elapsed())).await;
    run.minio.restart().await;
    let restarted_at = Instant::now();
    let (stream, _minio, connections, report, push_ended) = finish(run).await;
    assert_worker_untouched(&stream, &worker_before, &connections).await;
    let ended = stream.api().get(&stream.name).await.expect("the LiveStream");
    assert!(!condition_is_true(&ended, "Degraded"), "Degraded clears once storage is back: {:?}", ended.status);
    let expect = Expect { window_may_jump: true, ..Expect::worker_spared(restarted_at) };
    assert_continuity(&stream, &report, &expect, push_ended).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_kubelet_leaves_the_running_worker_alone() {
    let _serial = SERIAL.lock().await;
    let run = go_live("fault-kubelet", PUSH).await;
    let worker_before = worker(&run.stream).await;
    let restarted_at = Instant::now();
    tokio::task::block_in_place(|| run.stream.cluster.with_cluster(|c| c.restart_kubelet()))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("kubelet: node Ready again after {:.1}s", restarted_at.elapsed().as_secs_f64());
    finish_with_the_worker_spared(run, &worker_before, restarted_at).await;
}

/// The gateway pods, and the one whose log says it routed a publish of `stream`.
async fn gateway_pods(stream: &StreamRef) -> (Vec<Pod>, Option<String>) {
    let pods: Api<Pod> = Api::namespaced(stream.client.clone(), OPERATOR_NAMESPACE);
    let selector = format!("app.kubernetes.io/name=livestream-gateway,app.kubernetes.io/instance={RELEASE}");
    let list = pods.list(&ListParams::default().labels(&selector)).await.expect("list gateway pods").items;
    let routed = format!("{}/{}", stream.namespace, stream.name);
    let mut serving = None;
    for pod in &list {
        let log = pods.logs(&pod.name_any(), &Default::default()).await.unwrap_or_default();
        if log.lines().any(|line| line.contains("publish routed") && line.contains(&routed)) {
            serving = Some(pod.name_any());
        }
    }
    (list, serving)
}

/// Two streams behind one address: the gateway's NodePort, the same `status.ingestUrl`
/// for both, each key reaching its own worker; the gateway pod that relays the first is
/// deleted, and its encoder reconnects through the other pod to the same worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_gateway_pod_drops_its_encoders_which_reconnect_through_another() {
    let _serial = SERIAL.lock().await;
    let behind_the_gateway = StreamSpec { ingest_service: None, ..StreamSpec::default() };
    // The first push lasts while the second stream is set up, and past the fault.
    let first = go_live_with("gateway-first", PUSH + Duration::from_secs(45), &behind_the_gateway).await;
    let second = go_live_with("gateway-second", PUSH, &behind_the_gateway).await;
    let cluster = &first.stream.cluster;
    let address = format!("{}/live", gateway_url(cluster));
    assert_eq!((first.ingest_url.as_str(), second.ingest_url.as_str()), (address.as_str(), address.as_str()));
    for run in [&first, &second] {
        let service = format!("{}-ingest", run.stream.name);
        let type_ = jsonpath(cluster, &["service", "-n", &run.stream.namespace, &service], "{.spec.type}");
        assert_eq!(type_, "ClusterIP", "no address of its own for {}", run.stream.namespace);
    }
    let (pods, serving) = gateway_pods(&first.stream).await;
    assert_eq!(pods.len(), 2, "two gateway pods");
    let serving = serving.unwrap_or_else(|| panic!("no gateway pod logged the first stream's publish"));
    let second_serving = gateway_pods(&second.stream).await.1.expect("a gateway pod relays the second stream");

    let keys = [first.key.clone(), second.key.clone()];
    let gateways: Api<Pod> = Api::namespaced(first.stream.client.clone(), OPERATOR_NAMESPACE);
    let deleted_at = Instant::now();
    gateways.delete(&serving, &DeleteParams::default()).await.expect("delete the gateway pod");
    // Each run finishes on its own task, so that each push's end is seen when it comes.
    let second = tokio::spawn(finish(second));
    let (first_stream, _minio, connections, report, push_ended) = finish(first).await;
    assert!(connections.len() >= 2, "the first encoder reconnected: {connections:?}");
    let recovered_at = connections.last().expect("a connection").media_started();
    assert!(recovered_at > deleted_at);
    assert_continuity(&first_stream, &report, &Expect::encoder_reconnected(recovered_at), push_ended).await;
    let (second_stream, _minio, connections, report, push_ended) = second.await.expect("the second run finished");
    if second_serving == serving {
        assert!(connections.len() >= 2, "the second encoder, on the same pod, reconnected: {connections:?}");
        let recovered_at = connections.last().expect("a connection").media_started();
        assert_continuity(&second_stream, &report, &Expect::encoder_reconnected(recovered_at), push_ended).await;
    } else {
        assert_eq!(connections.len(), 1, "the other gateway pod's encoder was left alone: {connections:?}");
        assert_continuity(&second_stream, &report, &Expect::worker_spared(deleted_at), push_ended).await;
    }
    let (pods, _) = gateway_pods(&first_stream).await;
    assert!(pods.iter().all(|p| p.name_any() != serving), "the deleted gateway pod is gone");
    for pod in &pods {
        let log = gateways.logs(&pod.name_any(), &Default::default()).await.unwrap_or_default();
        assert!(keys.iter().all(|key| !log.contains(key.as_str())), "a stream key in the gateway's log");
    }
}
