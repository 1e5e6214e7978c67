//! The LiveStream API against a real kube-apiserver: the CRD installs, the examples are
//! accepted with their defaults, invalid manifests are refused with messages that name
//! the field, and the status subresource and printer columns work.

mod support;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams, ValidationDirective};
use kube::core::ApiResource;
use kube::{Client, Resource};
use livestream::api::{
    AudioSpec, EncoderPreset, HlsSpec, IngestServiceSpec, IngestSpec, LadderSpec, LiveStream, LiveStreamStatus, Phase,
    Retention, SampleRate, SegmentContainer, StorageSpec, WorkerSpec,
};
use serde_json::{Value, json};
use support::kube::KubeEnv;

fn crd() -> CustomResourceDefinition {
    serde_yaml::from_str(include_str!("../crds/livestream.yaml")).expect("parse crds/livestream.yaml")
}

/// A client, with the CRD installed and a fresh namespace for the test.
async fn setup(namespace: &str) -> Client {
    let env = KubeEnv::shared();
    let client = env.client().await;
    env.install_crd(&client, &crd()).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("namespace");
    namespaces.create(&PostParams::default(), &ns).await.expect("create namespace");
    client
}

fn dynamic_api(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<LiveStream>(&());
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// Applies raw YAML documents (so that invalid values reach the server as written).
async fn apply_yaml(client: &Client, namespace: &str, yaml: &str) -> Result<(), kube::Error> {
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value: Value = serde::Deserialize::deserialize(doc).expect("YAML document");
        let kind = value["kind"].as_str().expect("kind").to_string();
        let name = value["metadata"]["name"].as_str().expect("name").to_string();
        let params = PatchParams::apply("livestream-tests").validation(ValidationDirective::Strict);
        match kind.as_str() {
            "LiveStream" => {
                dynamic_api(client, namespace).patch(&name, &params, &Patch::Apply(&value)).await?;
            }
            "Secret" => {
                let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), namespace);
                api.patch(&name, &params, &Patch::Apply(&value)).await?;
            }
            other => panic!("unexpected kind {other} in example"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn crd_installs_and_becomes_established() {
    let client = setup("crd-established").await;
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let crd = crds.get("livestreams.livestream.dev").await.expect("get CRD");
    let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(
        conditions.iter().any(|c| c.type_ == "Established" && c.status == "True"),
        "CRD not Established: {conditions:?}"
    );
    assert!(
        conditions.iter().any(|c| c.type_ == "NamesAccepted" && c.status == "True"),
        "CRD names not accepted: {conditions:?}"
    );
}

#[tokio::test]
async fn minimal_example_is_accepted_with_documented_defaults() {
    let ns = "minimal-example";
    let client = setup(ns).await;
    apply_yaml(&client, ns, include_str!("../examples/minimal.yaml")).await.expect("minimal example is accepted");

    // The API server itself stored the defaults (not only our deserializer).
    let raw = dynamic_api(&client, ns).get("demo").await.expect("get demo");
    let spec = &raw.data["spec"];
    assert_eq!(spec["ingest"]["app"], json!("live"), "{spec:#}");
    // The operator decides the type: LoadBalancer, or ClusterIP behind its ingest gateway.
    assert_eq!(spec["ingest"]["service"].get("type"), None, "{spec:#}");
    assert_eq!(spec["ingest"]["service"]["port"], json!(1935), "{spec:#}");
    assert_eq!(spec["ingest"]["service"]["port"], json!(1935), "{spec:#}");
    assert_eq!(spec["hls"]["segmentDurationSeconds"], json!(2), "{spec:#}");
    assert_eq!(spec["hls"]["windowSegments"], json!(6), "{spec:#}");
    assert_eq!(spec["hls"]["container"], json!("fmp4"), "{spec:#}");
    assert_eq!(spec["hls"]["lowLatency"], json!(true), "{spec:#}");
    assert_eq!(spec["hls"]["partDurationMilliseconds"], json!(400), "{spec:#}");
    assert_eq!(spec["ladder"]["keyframeIntervalSeconds"], json!(2), "{spec:#}");
    assert_eq!(spec["ladder"]["audio"]["bitrateKbps"], json!(128), "{spec:#}");
    assert_eq!(spec["storage"]["region"], json!("us-east-1"), "{spec:#}");
    assert_eq!(spec["storage"]["retention"], json!("Retain"), "{spec:#}");
    assert_eq!(spec["suspend"], json!(false), "{spec:#}");

    let typed: Api<LiveStream> = Api::namespaced(client, ns);
    let demo = typed.get("demo").await.expect("get typed demo");
    let expected = livestream::api::LiveStreamSpec {
        ingest: IngestSpec {
            stream_key_secret_ref: None,
            app: "live".into(),
            service: IngestServiceSpec { type_: None, port: 1935, ..Default::default() },
            tls: None,
            srt: None,
        },
        ladder: LadderSpec {
            renditions: vec![],
            allow_upscale: false,
            audio: AudioSpec { bitrate_kbps: 128, sample_rate: SampleRate::Hz48000, channels: 2 },
            preset: EncoderPreset::Veryfast,
            keyframe_interval_seconds: 2,
            when_behind: livestream::api::BehindPolicy::FasterPreset,
        },
        hls: HlsSpec {
            segment_duration_seconds: 2,
            window_segments: 6,
            container: SegmentContainer::Fmp4,
            recording: false,
            low_latency: true,
            part_duration_milliseconds: 400,
        },
        storage: StorageSpec {
            bucket: "live-video".into(),
            prefix: None,
            region: "us-east-1".into(),
            endpoint: None,
            force_path_style: false,
            credentials_secret_ref: None,
            web_identity: None,
            retention: Retention::Retain,
        },
        cdn: None,
        origin: livestream::api::OriginSpec::default(),
        worker: WorkerSpec::default(),
        suspend: false,
    };
    assert_eq!(demo.spec, expected);
}

#[tokio::test]
async fn full_example_is_accepted_and_kept_whole() {
    let ns = "full-example";
    let client = setup(ns).await;
    let yaml = include_str!("../examples/full.yaml");
    apply_yaml(&client, ns, yaml).await.expect("full example is accepted");
    let written: LiveStream = serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|doc| {
            let value: Value = serde::Deserialize::deserialize(doc).ok()?;
            (value["kind"] == "LiveStream").then(|| serde_json::from_value(value).expect("typed example"))
        })
        .next()
        .expect("a LiveStream in the full example");
    let stored = Api::<LiveStream>::namespaced(client, ns).get("keynote").await.expect("get keynote");
    // Nothing pruned, nothing changed.
    assert_eq!(stored.spec, written.spec);
}

/// (what is wrong, the change to the minimal manifest's spec, text the error must contain)
fn invalid_cases() -> Vec<(&'static str, Value, &'static [&'static str])> {
    let rendition = |name: &str, width: u32, height: u32, kbps: u32| json!({"name": name, "width": width, "height": height, "videoBitrateKbps": kbps});
    vec![
        (
            "RTMPS on the RTMP port",
            json!({"ingest": {"service": {"port": 1935}, "tls": {"secretName": "ingest-tls", "port": 1935}}}),
            &["spec.ingest.tls.port", "the RTMPS port must differ from the RTMP port"],
        ),
        ("RTMPS without a Secret", json!({"ingest": {"tls": {"port": 443}}}), &["spec.ingest.tls.secretName"]),
        (
            "a credentials Secret and a web identity",
            json!({"storage": {"credentialsSecretRef": {"name": "s3"}, "webIdentity": {"roleArn": "arn:aws:iam::1:role/x"}}}),
            &["spec.storage.webIdentity", "set one"],
        ),
        (
            "a web identity without a role",
            json!({"storage": {"webIdentity": {"roleArn": "not-an-arn"}}}),
            &["spec.storage.webIdentity.roleArn"],
        ),
        (
            "duplicate rendition names",
            json!({"ladder": {"renditions": [rendition("hd", 1280, 720, 3000), rendition("hd", 640, 360, 800)]}}),
            &["spec.ladder.renditions", "rendition names must be unique"],
        ),
        (
            "two passthrough renditions",
            json!({"ladder": {"renditions": [{"name": "a", "passthrough": true}, {"name": "b", "passthrough": true}]}}),
            &["spec.ladder.renditions", "at most one rendition may be a passthrough"],
        ),
        (
            "zero bitrate",
            json!({"ladder": {"renditions": [rendition("hd", 1280, 720, 0)]}}),
            &["spec.ladder.renditions[0].videoBitrateKbps"],
        ),
        (
            "odd width",
            json!({"ladder": {"renditions": [rendition("hd", 1279, 720, 3000)]}}),
            &["spec.ladder.renditions[0].width", "multiple of 2"],
        ),
        (
            "odd height",
            json!({"ladder": {"renditions": [rendition("hd", 1280, 721, 3000)]}}),
            &["spec.ladder.renditions[0].height", "multiple of 2"],
        ),
        (
            "encoded rendition without a size",
            json!({"ladder": {"renditions": [{"name": "hd", "videoBitrateKbps": 3000}]}}),
            &["spec.ladder.renditions[0]", "needs width, height and videoBitrateKbps"],
        ),
        (
            "passthrough with encoding settings",
            json!({"ladder": {"renditions": [{"name": "src", "passthrough": true, "width": 1280}]}}),
            &["spec.ladder.renditions[0]", "takes no encoding settings"],
        ),
        (
            "max bitrate below target",
            json!({"ladder": {"renditions": [{"name": "hd", "width": 1280, "height": 720, "videoBitrateKbps": 3000, "maxBitrateKbps": 1000}]}}),
            &["spec.ladder.renditions[0].maxBitrateKbps", "at least videoBitrateKbps"],
        ),
        (
            "rendition name with spaces",
            json!({"ladder": {"renditions": [rendition("HD 720", 1280, 720, 3000)]}}),
            &["spec.ladder.renditions[0].name"],
        ),
        ("segment duration zero", json!({"hls": {"segmentDurationSeconds": 0}}), &["spec.hls.segmentDurationSeconds"]),
        (
            "segment duration above 10",
            json!({"hls": {"segmentDurationSeconds": 11}}),
            &["spec.hls.segmentDurationSeconds"],
        ),
        (
            "segment duration not a multiple of the keyframe interval",
            json!({"hls": {"segmentDurationSeconds": 3}, "ladder": {"keyframeIntervalSeconds": 2}}),
            &["spec.hls.segmentDurationSeconds", "multiple of ladder.keyframeIntervalSeconds"],
        ),
        ("window of two segments", json!({"hls": {"windowSegments": 2}}), &["spec.hls.windowSegments"]),
        (
            "parts longer than half a segment",
            json!({"hls": {"segmentDurationSeconds": 2, "partDurationMilliseconds": 1500}}),
            &["spec.hls.partDurationMilliseconds", "at most half of hls.segmentDurationSeconds"],
        ),
        (
            "parts under 100 ms",
            json!({"hls": {"partDurationMilliseconds": 50}}),
            &["spec.hls.partDurationMilliseconds"],
        ),
        ("unknown container", json!({"hls": {"container": "webm"}}), &["spec.hls.container", "Unsupported value"]),
        ("bucket name with capitals", json!({"storage": {"bucket": "My_Bucket"}}), &["spec.storage.bucket"]),
        (
            "endpoint without a scheme",
            json!({"storage": {"bucket": "live-video", "endpoint": "minio.local:9000"}}),
            &["spec.storage.endpoint"],
        ),
        (
            "prefix that climbs out",
            json!({"storage": {"bucket": "live-video", "prefix": "events/../other"}}),
            &["spec.storage.prefix"],
        ),
        (
            "unknown retention",
            json!({"storage": {"bucket": "live-video", "retention": "Forever"}}),
            &["spec.storage.retention", "Unsupported value"],
        ),
        (
            "node port on a ClusterIP service",
            json!({"ingest": {"service": {"type": "ClusterIP", "nodePort": 31000}}}),
            &["spec.ingest.service.nodePort", "needs service type NodePort or LoadBalancer"],
        ),
        (
            "a node port without a type",
            json!({"ingest": {"service": {"nodePort": 31000}}}),
            &["spec.ingest.service.nodePort", "needs service type NodePort or LoadBalancer"],
        ),
        ("CDN URL without a scheme", json!({"cdn": {"baseUrl": "cdn.example.com"}}), &["spec.cdn.baseUrl"]),
        (
            "misspelt field",
            json!({"hls": {"segmentDuration": 4}}),
            &["spec.hls.segmentDuration", "field not declared in schema"],
        ),
    ]
}

fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (k, v) in patch {
                merge(base.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

#[tokio::test]
async fn invalid_manifests_are_refused_naming_the_field() {
    let ns = "invalid-manifests";
    let client = setup(ns).await;
    let api = dynamic_api(&client, ns);
    let cases = invalid_cases();
    assert!(cases.len() >= 10);
    let mut failures = Vec::new();
    for (i, (what, patch, expected)) in cases.iter().enumerate() {
        let mut manifest = json!({
            "apiVersion": "livestream.dev/v1alpha1",
            "kind": "LiveStream",
            "metadata": {"name": format!("invalid-{i}")},
            "spec": {"storage": {"bucket": "live-video"}},
        });
        merge(&mut manifest["spec"], patch);
        let params = PatchParams::apply("livestream-tests").validation(ValidationDirective::Strict);
        match api.patch(&format!("invalid-{i}"), &params, &Patch::Apply(&manifest)).await {
            Ok(_) => failures.push(format!("{what}: accepted, expected a refusal")),
            Err(kube::Error::Api(status)) => {
                let message = status.message.clone();
                if let Some(missing) = expected.iter().find(|text| !message.contains(**text)) {
                    failures.push(format!("{what}: message lacks {missing:?}: {message}"));
                }
                if status.code < 400 {
                    failures.push(format!("{what}: HTTP {} is not an error status: {message}", status.code));
                }
            }
            Err(e) => failures.push(format!("{what}: unexpected error {e}")),
        }
    }
    // Storage is required.
    let missing_storage = json!({
        "apiVersion": "livestream.dev/v1alpha1", "kind": "LiveStream",
        "metadata": {"name": "no-storage"}, "spec": {},
    });
    match api.patch("no-storage", &PatchParams::apply("livestream-tests"), &Patch::Apply(&missing_storage)).await {
        Err(kube::Error::Api(status)) if status.message.contains("spec.storage") => {}
        other => failures.push(format!("missing storage: expected a refusal naming spec.storage, got {other:?}")),
    }
    assert!(
        failures.is_empty(),
        "{} of {} invalid manifests misjudged:\n{}",
        failures.len(),
        cases.len() + 1,
        failures.join("\n")
    );
}

#[tokio::test]
async fn status_subresource_and_printer_columns() {
    let ns = "status-columns";
    let client = setup(ns).await;
    apply_yaml(&client, ns, include_str!("../examples/minimal.yaml")).await.expect("apply minimal");
    let api: Api<LiveStream> = Api::namespaced(client.clone(), ns);
    let generation = api.get("demo").await.expect("get").meta().generation.expect("generation");

    let now = Time(jiff::Timestamp::now());
    let condition = |type_: &str, status: &str, reason: &str| Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: format!("{type_} is {status}"),
        last_transition_time: now.clone(),
        observed_generation: Some(generation),
    };
    let status = LiveStreamStatus {
        phase: Some(Phase::Live),
        conditions: vec![
            condition("Ready", "True", "WorkerReady"),
            condition("Live", "True", "Publishing"),
            condition("Degraded", "False", "Healthy"),
        ],
        observed_generation: Some(generation),
        ingest_url: Some("rtmp://203.0.113.7:1935/live".into()),
        secure_ingest_url: Some("rtmps://203.0.113.7:1936/live".into()),
        srt_ingest_url: Some("srt://203.0.113.7:9000".into()),
        playback_url: Some("https://cdn.example.com/status-columns/demo/master.m3u8".into()),
        low_latency_playback_url: Some("https://live.example.com/status-columns/demo/master.m3u8".into()),
        poster_url: Some("https://cdn.example.com/status-columns/demo/poster.jpg".into()),
        live: None,
    };
    api.patch_status(
        "demo",
        &PatchParams::apply("livestream-tests").force(),
        &Patch::Apply(json!({
            "apiVersion": "livestream.dev/v1alpha1", "kind": "LiveStream", "status": status,
        })),
    )
    .await
    .expect("patch status");

    let env = KubeEnv::shared();
    // `kubectl wait --for=condition=Ready` works on the conditions.
    let out = env
        .kubectl()
        .args(["wait", "--for=condition=Ready", "--timeout=20s", "-n", ns, "livestream/demo"])
        .output()
        .expect("kubectl wait");
    assert!(out.status.success(), "kubectl wait failed: {}", String::from_utf8_lossy(&out.stderr));

    // A spec change bumps the generation and leaves the status alone; the main resource
    // ignores status.
    api.patch(
        "demo",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": true}, "status": {"phase": "Failed"}})),
    )
    .await
    .expect("patch spec");
    let demo = api.get("demo").await.expect("get");
    assert_eq!(demo.meta().generation, Some(generation + 1));
    let stored = demo.status.expect("status kept");
    assert_eq!(stored.phase, Some(Phase::Live), "status must only change through the subresource");
    assert_eq!(stored.playback_url, status.playback_url);

    let out = env.kubectl().args(["get", "livestreams", "-n", ns]).output().expect("kubectl get");
    assert!(out.status.success(), "kubectl get failed: {}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "PHASE", "READY", "LIVE", "PLAYBACK", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(
        &row[..5],
        ["demo", "Live", "True", "True", "https://cdn.example.com/status-columns/demo/master.m3u8"],
        "{table}"
    );

    // The short name and the category reach the same objects.
    for name in ["ls", "streaming"] {
        let out = env.kubectl().args(["get", name, "-n", ns, "-o", "name"]).output().expect("kubectl get");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "livestream.livestream.dev/demo", "kubectl get {name}");
    }

    // Conditions computed for an older generation do not satisfy `kubectl wait`.
    let out = env
        .kubectl()
        .args(["wait", "--for=condition=Ready", "--timeout=1s", "-n", ns, "livestream/demo"])
        .output()
        .expect("kubectl wait");
    assert!(!out.status.success(), "kubectl wait accepted a Ready condition of an older generation");
}
