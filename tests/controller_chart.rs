//! The Helm chart: it renders, installs into a real API server, and the rights it grants
//! are enough for the controller: the controller runs as the chart's ServiceAccount
//! (through impersonation) and reconciles a LiveStream.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::Role;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use livestream::api::{LiveStream, Phase};
use livestream::controller::leader::LeaseSettings;
use livestream::controller::{CleanupError, Metrics, OperatorConfig, PrefixCleaner, RunSettings, StorageTarget};
use livestream::telemetry::Health;
use serde_json::json;
use support::kube::KubeEnv;
use support::process::testenv_bin;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/livestream-operator");

fn chart_dir() -> &'static Path {
    Path::new(CHART)
}

struct NoCleaner;
impl PrefixCleaner for NoCleaner {
    fn delete_prefix<'a>(&'a self, _: &'a StorageTarget) -> BoxFuture<'a, Result<u64, CleanupError>> {
        Box::pin(futures::future::ready(Ok(0)))
    }
}

fn helm(kubeconfig: &Path) -> Command {
    let mut cmd = Command::new(testenv_bin("helm"));
    cmd.arg(format!("--kubeconfig={}", kubeconfig.display()));
    let cache = tempfile::tempdir().expect("helm home").keep();
    cmd.env("HELM_CACHE_HOME", cache.join("cache"))
        .env("HELM_CONFIG_HOME", cache.join("config"))
        .env("HELM_DATA_HOME", cache.join("data"));
    cmd
}

#[test]
fn chart_renders_restricted_and_least_privilege() {
    let out = Command::new(testenv_bin("helm"))
        .args(["template", "demo"])
        .arg(chart_dir())
        .args(["--namespace", "ops", "--set", "watchNamespace=media"])
        .output()
        .expect("run helm template");
    assert!(out.status.success(), "helm template failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&text)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .filter(|v: &serde_json::Value| v.is_object())
        .collect();
    let kind = |k: &str| docs.iter().find(|d| d["kind"] == k).unwrap_or_else(|| panic!("no {k} in {text}"));
    let deployment = kind("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
    assert!(args.contains(&"--namespace=media") && args.contains(&"--leader-election=true"), "{args:?}");
    // Watching one namespace, the rights are a Role there (listed before the Lease's Role).
    let role = kind("Role");
    assert_eq!(role["metadata"]["namespace"], "media");
    let rules = role["rules"].as_array().unwrap();
    assert!(rules.iter().all(|r| !r["verbs"].as_array().unwrap().contains(&json!("*"))), "no wildcard verbs");
    assert!(rules.iter().all(|r| !r["verbs"].as_array().unwrap().contains(&json!("delete"))), "no delete rights");
    kind("ServiceAccount");
}

#[tokio::test]
async fn chart_installs_and_its_rights_run_the_controller() {
    let env = KubeEnv::shared();
    let admin = env.client().await;
    // The chart's Role goes into the watched namespace, which must exist first.
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "chart-media"}})).unwrap();
    namespaces.create(&PostParams::default(), &ns).await.unwrap();
    let out = helm(env.kubeconfig())
        .args(["install", "demo"])
        .arg(chart_dir())
        .args(["--namespace", "ops", "--create-namespace", "--set", "watchNamespace=chart-media"])
        .output()
        .expect("run helm install");
    assert!(out.status.success(), "helm install failed: {}", String::from_utf8_lossy(&out.stderr));

    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    crds.get("livestreams.livestream.dev").await.expect("the chart installed the CRD");
    Api::<ServiceAccount>::namespaced(admin.clone(), "ops")
        .get("demo-livestream-operator")
        .await
        .expect("service account");
    Api::<Role>::namespaced(admin.clone(), "chart-media").get("demo-livestream-operator").await.expect("role");
    let deployment =
        Api::<Deployment>::namespaced(admin.clone(), "ops").get("demo-livestream-operator").await.expect("deployment");
    assert_eq!(deployment.spec.replicas, Some(2));
    kube::runtime::wait::await_condition(
        crds,
        "livestreams.livestream.dev",
        kube::runtime::wait::conditions::is_crd_established(),
    )
    .await
    .expect("CRD established");

    // The controller, as the chart's ServiceAccount.
    let kubeconfig = Kubeconfig::read_from(env.kubeconfig()).unwrap();
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    config.auth_info.impersonate = Some("system:serviceaccount:ops:demo-livestream-operator".into());
    config.auth_info.impersonate_groups =
        Some(vec!["system:serviceaccounts".into(), "system:serviceaccounts:ops".into()]);
    let operator_client = Client::try_from(config).unwrap();

    let settings = RunSettings {
        operator: OperatorConfig { idle_resync: Duration::from_secs(2), ..OperatorConfig::default() },
        namespace: Some("chart-media".into()),
        leader_election: Some(LeaseSettings::new("demo-livestream-operator", "ops", "chart-test")),
        identity: "chart-test".into(),
    };
    let metrics = Metrics::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(livestream::controller::run_controller(
        operator_client,
        settings,
        Arc::new(NoCleaner),
        metrics.clone(),
        Health::new(),
        async {
            let _ = stopped.await;
        },
    ));

    let streams: Api<LiveStream> = Api::namespaced(admin.clone(), "chart-media");
    let stream: LiveStream = serde_json::from_value(json!({
        "apiVersion": "livestream.dev/v1alpha1", "kind": "LiveStream",
        "metadata": {"name": "demo"}, "spec": {"storage": {"bucket": "live-video"}},
    }))
    .unwrap();
    streams.create(&PostParams::default(), &stream).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let current = streams.get("demo").await.unwrap();
        if current.status.as_ref().and_then(|s| s.phase) == Some(Phase::Pending) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the controller with the chart's rights did not reach Pending: {:?} (reconciles {})",
            current.status,
            metrics.reconciles()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Api::<Deployment>::namespaced(admin.clone(), "chart-media").get("demo-worker").await.expect("worker deployment");
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
}
