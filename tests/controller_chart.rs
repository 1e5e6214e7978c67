//! The Helm chart. Rendered: it lints and packages, renders valid objects with the defaults
//! and with every option on (checked by the real API server in dry-run), and refuses
//! mistyped values naming the value. Installed into a real API server: it installs the
//! CRD with the keep policy, its rights run the controller (as the chart's ServiceAccount,
//! through impersonation) on the Lease the chart made, an upgrade changes the Deployment,
//! and an uninstall removes the release's objects, the Lease included, while the CRD and
//! the LiveStreams stay.

mod support;

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config, Resource};
use livestream::api::{LiveStream, Phase};
use livestream::controller::leader::LeaseSettings;
use livestream::controller::{
    CleanupError, Metrics, OperatorConfig, PrefixCleaner, RunError, RunSettings, StorageTarget,
};
use livestream::telemetry::Health;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use support::kube::{KubeEnv, KubeHandle};
use support::process::testenv_bin;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/livestream-operator");
const CRD_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/livestream.yaml");
const CRD_NAME: &str = "livestreams.livestream.dev";
const KEEP: &str = "helm.sh/resource-policy";
/// The full name of release `demo`, which names every object of the chart and the Lease.
const FULLNAME: &str = "demo-livestream-operator";

/// The helm binary with a home of its own and, for commands that talk to a cluster, a
/// kubeconfig.
struct Helm {
    home: tempfile::TempDir,
    kubeconfig: Option<PathBuf>,
}

impl Helm {
    fn offline() -> Self {
        Self { home: tempfile::tempdir().expect("helm home"), kubeconfig: None }
    }

    fn against(kubeconfig: &Path) -> Self {
        Self { kubeconfig: Some(kubeconfig.to_path_buf()), ..Self::offline() }
    }

    /// Runs helm; its stdout when it succeeds, its stderr when it fails.
    fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<String, String> {
        let mut cmd = Command::new(testenv_bin("helm"));
        if let Some(kubeconfig) = &self.kubeconfig {
            cmd.arg(format!("--kubeconfig={}", kubeconfig.display()));
        }
        let home = self.home.path();
        cmd.args(args)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"));
        let out = cmd.output().expect("run helm");
        if out.status.success() {
            Ok(String::from_utf8(out.stdout).expect("UTF-8 helm output"))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn must(&self, args: &[&str]) -> String {
        self.run(args).unwrap_or_else(|e| panic!("helm {} failed: {e}", args.join(" ")))
    }

    /// `helm template demo` in namespace `ops` with `extra` arguments.
    fn render(&self, extra: &[&str]) -> Result<Rendered, String> {
        let mut args = vec!["template", "demo", CHART, "--namespace", "ops"];
        args.extend_from_slice(extra);
        self.run(&args).map(|text| Rendered::parse(&text))
    }

    fn file(&self, name: &str, content: &str) -> String {
        let path = self.home.path().join(name);
        std::fs::write(&path, content).expect("write file for helm");
        path.display().to_string()
    }
}

/// The objects of a rendered chart.
struct Rendered {
    text: String,
    docs: Vec<Value>,
}

impl Rendered {
    fn parse(text: &str) -> Self {
        let docs = serde_yaml::Deserializer::from_str(text)
            .map(|doc| serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("rendered YAML: {e}\n{text}")))
            .filter(|doc: &Value| !doc.is_null())
            .collect();
        Self { text: text.to_string(), docs }
    }

    fn kinds(&self) -> BTreeSet<String> {
        self.docs.iter().map(|d| d["kind"].as_str().expect("every object has a kind").to_string()).collect()
    }

    /// The one object of `kind` named `name`.
    fn object(&self, kind: &str, name: &str) -> &Value {
        let found: Vec<&Value> =
            self.docs.iter().filter(|d| d["kind"] == kind && d["metadata"]["name"] == name).collect();
        assert_eq!(found.len(), 1, "want one {kind} {name} in:\n{}", self.text);
        found[0]
    }

    /// The one object of `kind` named `name`, as its typed API struct (which refuses
    /// fields of the wrong type).
    fn typed<K: DeserializeOwned>(&self, kind: &str, name: &str) -> K {
        serde_json::from_value(self.object(kind, name).clone()).unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
    }

    fn has(&self, kind: &str) -> bool {
        self.docs.iter().any(|d| d["kind"] == kind)
    }
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

fn chart_app_version() -> String {
    let chart: Value =
        serde_yaml::from_str(&std::fs::read_to_string(format!("{CHART}/Chart.yaml")).expect("read Chart.yaml"))
            .expect("parse Chart.yaml");
    chart["appVersion"].as_str().expect("appVersion").to_string()
}

fn operator_container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"].as_array().expect("containers");
    containers.iter().find(|c| c["name"] == "controller").expect("the controller container")
}

/// The rules the operator is granted must stay least-privilege.
fn assert_least_privilege(rules: &Value) {
    for rule in rules.as_array().expect("rules") {
        for field in ["apiGroups", "resources", "verbs"] {
            assert!(!strings(&rule[field]).contains(&"*"), "no wildcard {field}: {rule}");
        }
        let verbs = strings(&rule["verbs"]);
        for verb in ["delete", "deletecollection", "escalate", "bind", "impersonate"] {
            assert!(!verbs.contains(&verb), "no {verb} right: {rule}");
        }
        if verbs.contains(&"update") {
            assert_eq!(strings(&rule["resources"]), ["livestreams/finalizers"], "update only where needed: {rule}");
        }
    }
}

#[test]
fn chart_lints_and_packages_on_its_own() {
    let helm = Helm::offline();
    helm.must(&["lint", "--strict", CHART]);
    helm.must(&["lint", "--strict", CHART, "--set", "metrics.serviceMonitor.enabled=true,watchNamespace=media"]);
    // The package must carry the CRD: rendered from the archive alone, it is there.
    let out = tempfile::tempdir().expect("package dir");
    let packaged = helm.must(&["package", CHART, "--destination", &out.path().display().to_string()]);
    let archive = packaged.split_whitespace().last().expect("helm package names the archive");
    let rendered = Rendered::parse(&helm.must(&["template", "demo", archive]));
    rendered.object("CustomResourceDefinition", CRD_NAME);
}

#[test]
fn defaults_render_restricted_least_privilege_objects() {
    let rendered = Helm::offline().render(&[]).expect("helm template with the defaults");
    let want: BTreeSet<String> = [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Lease",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    .map(String::from)
    .into();
    assert_eq!(rendered.kinds(), want, "the default objects (no ServiceMonitor)");

    let deployment = rendered.object("Deployment", FULLNAME);
    let _: Deployment = rendered.typed("Deployment", FULLNAME);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let container = operator_container(deployment);
    assert_eq!(container["image"], format!("ghcr.io/livestream-operator/livestream:{}", chart_app_version()));
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    let args = strings(&container["args"]);
    for arg in ["--leader-election=true", "--listen=0.0.0.0:8080", &format!("--lease-name={FULLNAME}")] {
        assert!(args.contains(&arg), "{arg} in {args:?}");
    }
    assert!(!args.iter().any(|a| a.starts_with("--namespace")), "every namespace by default: {args:?}");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(container["startupProbe"]["httpGet"], json!({"path": "/healthz", "port": "http"}));
    assert_eq!(container["startupProbe"]["failureThreshold"], 30);
    assert_eq!(container["livenessProbe"]["httpGet"], json!({"path": "/healthz", "port": "http"}));
    assert_eq!(container["readinessProbe"]["httpGet"], json!({"path": "/readyz", "port": "http"}));
    assert_eq!(container["resources"]["requests"]["cpu"], "50m");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];

    let cluster_role = rendered.object("ClusterRole", FULLNAME);
    assert_least_privilege(&cluster_role["rules"]);
    let binding = rendered.object("ClusterRoleBinding", FULLNAME);
    assert_eq!(binding["subjects"][0], json!({"kind": "ServiceAccount", "name": FULLNAME, "namespace": "ops"}));

    // The Lease is the chart's; the operator may only read and renew that one.
    let lease = rendered.object("Lease", FULLNAME);
    assert_eq!(lease["metadata"]["namespace"], "ops");
    assert!(lease.get("spec").is_none(), "the chart leaves the Lease's spec to the operator: {lease}");
    let role = rendered.object("Role", &format!("{FULLNAME}-leader-election"));
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [FULLNAME], "verbs": ["get", "update"]}])
    );

    let service: Service = rendered.typed("Service", &format!("{FULLNAME}-metrics"));
    let spec = service.spec.expect("service spec");
    assert_eq!(spec.ports.as_ref().map(|p| p[0].port), Some(8080));
    assert!(selects(&json!(spec.selector), pod_labels), "the metrics Service selects the operator pods");

    let pdb = rendered.object("PodDisruptionBudget", FULLNAME);
    let _: PodDisruptionBudget = rendered.typed("PodDisruptionBudget", FULLNAME);
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"], pod_labels), "the budget covers the operator pods");

    let crd = rendered.object("CustomResourceDefinition", CRD_NAME);
    assert_eq!(crd["metadata"]["annotations"][KEEP], "keep");
}

/// Whether every label of `selector` is among `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("selector");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn the_chart_crd_is_the_generated_crd_with_the_chart_metadata() {
    let rendered = Helm::offline().render(&[]).expect("helm template");
    let mut crd = rendered.object("CustomResourceDefinition", CRD_NAME).clone();
    let metadata = crd["metadata"].as_object_mut().expect("metadata");
    assert_eq!(metadata.remove("labels").expect("chart labels")["app.kubernetes.io/managed-by"], "Helm");
    let annotations = metadata.remove("annotations").expect("annotations");
    assert_eq!(annotations, json!({KEEP: "keep"}), "the chart adds only the keep policy");
    let generated: Value =
        serde_yaml::from_str(&std::fs::read_to_string(CRD_FILE).expect("read crds/livestream.yaml")).expect("CRD");
    assert!(crd == generated, "the chart's CRD differs from crds/livestream.yaml beyond its metadata");

    let without = Helm::offline().render(&["--set", "crds.install=false"]).expect("helm template without the CRD");
    assert!(!without.has("CustomResourceDefinition"), "crds.install=false leaves the CRD out");
}

#[test]
fn leader_election_and_the_budget_follow_the_replica_count() {
    let helm = Helm::offline();
    let single = helm.render(&["--set", "replicaCount=1"]).expect("one replica");
    assert!(!single.has("PodDisruptionBudget"), "no budget for a single replica: it would block drains");
    assert!(single.has("Lease"));
    let alone = helm.render(&["--set", "replicaCount=1,leaderElection=false"]).expect("no leader election");
    assert!(!alone.has("Lease") && !alone.has("Role"), "no Lease and no Lease rights without leader election");
    let args = strings(&operator_container(alone.object("Deployment", FULLNAME))["args"]).join(" ");
    assert!(args.contains("--leader-election=false"), "{args}");
    let no_budget = helm.render(&["--set", "podDisruptionBudget.enabled=false"]).expect("budget off");
    assert!(!no_budget.has("PodDisruptionBudget"));
}

#[test]
fn one_watched_namespace_gets_a_role_there_and_no_cluster_rights() {
    let rendered = Helm::offline().render(&["--set", "watchNamespace=media"]).expect("helm template");
    assert!(!rendered.has("ClusterRole") && !rendered.has("ClusterRoleBinding"), "no cluster-wide rights");
    let role = rendered.object("Role", FULLNAME);
    assert_eq!(role["metadata"]["namespace"], "media");
    assert_least_privilege(&role["rules"]);
    let defaults = Helm::offline().render(&[]).expect("helm template");
    assert_eq!(role["rules"], defaults.object("ClusterRole", FULLNAME)["rules"], "the same rights, in one namespace");
    let binding = rendered.object("RoleBinding", FULLNAME);
    assert_eq!(binding["metadata"]["namespace"], "media");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["subjects"][0]["namespace"], "ops");
    let args = strings(&operator_container(rendered.object("Deployment", FULLNAME))["args"]).join(" ");
    assert!(args.contains("--namespace=media"), "{args}");
}

const EVERY_OPTION: &str = r#"
image:
  repository: registry.example.com:5000/media/livestream
  digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  pullPolicy: Always
imagePullSecrets: [{name: regcred}]
workerImage: registry.example.com:5000/media/livestream-worker:1.2.3
workerServiceAccount: live-worker
replicaCount: 3
storageCleanupTimeoutSeconds: 90
probes:
  startup: {enabled: false}
  liveness: {initialDelaySeconds: 3, periodSeconds: 20, timeoutSeconds: 5, failureThreshold: 6}
  readiness: {successThreshold: 2}
podDisruptionBudget: {maxUnavailable: "50%"}
podAnnotations: {example.com/team: media}
podLabels: {team: media, app.kubernetes.io/name: not-the-selector}
priorityClassName: system-cluster-critical
nodeSelector: {kubernetes.io/arch: amd64}
tolerations: [{key: dedicated, operator: Equal, value: control, effect: NoSchedule}]
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector: {matchLabels: {app.kubernetes.io/name: livestream-operator}}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector: {matchLabels: {app.kubernetes.io/name: livestream-operator}}
serviceAccount:
  name: streaming-operator
  annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/livestream"}
metrics:
  port: 9090
  service:
    annotations: {prometheus.io/scrape: "true"}
  serviceMonitor:
    enabled: true
    interval: 15s
    scrapeTimeout: 5s
    labels: {release: prometheus}
gateway:
  enabled: true
  url: rtmp://ingest.example.com:1935
  secureUrl: rtmps://ingest.example.com:443
  replicas: 3
  service: {type: NodePort, port: 1935, nodePort: 31950, tlsPort: 443, tlsNodePort: 31951, annotations: {example.com/lb: internal}}
  tls: {secretName: ingest-tls}
  maxConnections: 2048
"#;

#[tokio::test]
async fn every_option_renders_objects_the_api_server_accepts() {
    let helm = Helm::offline();
    let values = helm.file("every-option.yaml", EVERY_OPTION);
    let rendered = helm.render(&["--namespace", "chart-render", "-f", &values]).expect("helm template");

    let deployment = rendered.object("Deployment", FULLNAME);
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod = &deployment["spec"]["template"];
    assert_eq!(pod["metadata"]["annotations"]["example.com/team"], "media");
    assert_eq!(pod["metadata"]["labels"]["team"], "media");
    assert_eq!(pod["metadata"]["labels"]["app.kubernetes.io/name"], "livestream-operator", "the selector wins");
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"], "streaming-operator");
    assert_eq!(spec["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(spec["priorityClassName"], "system-cluster-critical");
    assert_eq!(spec["nodeSelector"]["kubernetes.io/arch"], "amd64");
    assert_eq!(spec["tolerations"][0]["value"], "control");
    assert_eq!(
        spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"],
        100
    );
    assert_eq!(spec["topologySpreadConstraints"][0]["topologyKey"], "topology.kubernetes.io/zone");
    let container = operator_container(deployment);
    assert_eq!(
        container["image"],
        "registry.example.com:5000/media/livestream@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(container["imagePullPolicy"], "Always");
    let args = strings(&container["args"]);
    for arg in [
        "--worker-image=registry.example.com:5000/media/livestream-worker:1.2.3",
        "--listen=0.0.0.0:9090",
        "--storage-cleanup-timeout-seconds=90",
        "--worker-service-account=live-worker",
    ] {
        assert!(args.contains(&arg), "{arg} in {args:?}");
    }
    assert_eq!(container["ports"][0]["containerPort"], 9090);
    assert!(container.get("startupProbe").is_none(), "startup probe off");
    assert_eq!(
        container["livenessProbe"],
        json!({"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 3, "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 6})
    );
    assert_eq!(container["readinessProbe"]["successThreshold"], 2);
    assert_eq!(container["readinessProbe"]["periodSeconds"], 5, "unset timings keep their defaults");

    let account = rendered.object("ServiceAccount", "streaming-operator");
    assert_eq!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/livestream"
    );
    assert_eq!(rendered.object("ClusterRoleBinding", FULLNAME)["subjects"][0]["name"], "streaming-operator");
    assert_eq!(rendered.object("PodDisruptionBudget", FULLNAME)["spec"]["maxUnavailable"], "50%");

    // The ingest gateway: its own account with the one Secret it reads, the operator's
    // rights to write that Secret, its pods and its one Service.
    let gateway_name = format!("{FULLNAME}-gateway");
    let routes = format!("{FULLNAME}-gateway-routes");
    for arg in [
        "--gateway-url=rtmp://ingest.example.com:1935",
        "--gateway-secure-url=rtmps://ingest.example.com:443",
        &format!("--gateway-routes-secret={routes}"),
    ] {
        assert!(args.contains(&arg), "{arg} in {args:?}");
    }
    let gateway = rendered.object("Deployment", &gateway_name);
    assert_eq!(gateway["spec"]["replicas"], 3);
    let pod = &gateway["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], gateway_name.as_str());
    let gateway_args = strings(&pod["containers"][0]["args"]);
    for arg in [
        "gateway",
        &format!("--routes-secret=chart-render/{routes}"),
        "--max-connections=2048",
        "--tls-cert=/etc/livestream-tls/tls.crt",
    ] {
        assert!(gateway_args.contains(&arg), "{arg} in {gateway_args:?}");
    }
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "ingest-tls");
    let reads = rendered.object("Role", &gateway_name);
    assert_eq!(
        reads["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [routes], "verbs": ["get", "list", "watch"]}])
    );
    let writes = rendered.object("Role", &format!("{gateway_name}-routes"));
    assert_eq!(writes["rules"][1]["resourceNames"], json!([routes]));
    assert_eq!(
        rendered.object("RoleBinding", &format!("{gateway_name}-routes"))["subjects"][0]["name"],
        "streaming-operator"
    );
    let ingest = rendered.object("Service", &gateway_name);
    assert_eq!(ingest["spec"]["type"], "NodePort");
    let ports: Vec<(i64, i64)> = ingest["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_i64().unwrap(), p["nodePort"].as_i64().unwrap()))
        .collect();
    assert_eq!(ports, [(1935, 31950), (443, 31951)]);
    assert_eq!(rendered.object("PodDisruptionBudget", &gateway_name)["spec"]["maxUnavailable"], 1);

    let service = rendered.object("Service", &format!("{FULLNAME}-metrics"));
    assert_eq!(service["spec"]["ports"][0]["port"], 9090);
    assert_eq!(service["metadata"]["annotations"]["prometheus.io/scrape"], "true");
    let monitor = rendered.object("ServiceMonitor", FULLNAME);
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert!(
        selects(&monitor["spec"]["selector"]["matchLabels"], &service["metadata"]["labels"]),
        "it selects the Service"
    );
    assert_eq!(monitor["spec"]["namespaceSelector"]["matchNames"], json!(["chart-render"]));
    assert_eq!(
        monitor["spec"]["endpoints"],
        json!([{"port": "http", "path": "/metrics", "interval": "15s", "scrapeTimeout": "5s"}])
    );

    // The API server checks every object strictly (unknown fields included), without
    // storing it. It has no ServiceMonitor CRD; that object was checked above.
    let env = KubeEnv::shared();
    let client = env.client().await;
    create_namespace(&client, "chart-render").await;
    let checked: Vec<&Value> = rendered.docs.iter().filter(|d| d["kind"] != "ServiceMonitor").collect();
    let manifest: String = checked.iter().map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap())).collect();
    let path = helm.file("every-option-rendered.yaml", &manifest);
    let out = env
        .kubectl()
        .args(["apply", "--server-side", "--dry-run=server", "--force-conflicts", "--validate=strict"])
        .args(["--field-manager=chart-test", "-f", &path])
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "the API server refused the rendered chart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), checked.len(), "every object was checked");
}

#[test]
fn mistyped_values_fail_naming_the_value() {
    let helm = Helm::offline();
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "replicaCount=-1"], "/replicaCount"),
        (&["--set", "replicaCount=two"], "/replicaCount"),
        (&["--set", "replicas=3"], "'replicas'"),
        (&["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (&["--set", "image.tag=1.0:beta"], "/image/tag"),
        (&["--set", "image.tag=1"], "/image/tag"),
        (&["--set", "image.digest=sha256:abc"], "/image/digest"),
        (&["--set", "image.repository=Registry/Image"], "/image/repository"),
        (&["--set", "workerImage=worker image"], "/workerImage"),
        (&["--set", "workerServiceAccount=Worker_SA"], "/workerServiceAccount"),
        (&["--set", "watchNamespace=Media"], "/watchNamespace"),
        (&["--set", "crds.install=maybe"], "/crds/install"),
        (&["--set", "crds.upgrade=true"], "'upgrade'"),
        (&["--set", "metrics.port=70000"], "/metrics/port"),
        (&["--set", "metrics.serviceMonitor.interval=often"], "/metrics/serviceMonitor/interval"),
        (&["--set", "probes.liveness.periodSeconds=0"], "/probes/liveness/periodSeconds"),
        (&["--set", "probes.liveness.successThreshold=2"], "/probes/liveness/successThreshold"),
        (&["--set", "probes.liveness.period=2"], "'period'"),
        (&["--set", "podDisruptionBudget.maxUnavailable=0"], "/podDisruptionBudget/maxUnavailable"),
        (&["--set", "resources.limits.memory=lots"], "/resources/limits/memory"),
        (&["--set", "tolerations[0].effect=Sometimes"], "/tolerations/0/effect"),
        (&["--set", "storageCleanupTimeoutSeconds=-5"], "/storageCleanupTimeoutSeconds"),
        (&["--set", "replicaCount=2,leaderElection=false"], "needs leaderElection=true"),
        (&["--set", "gateway.enabled=true"], "needs gateway.url"),
        (&["--set", "gateway.enabled=true,gateway.url=http://ingest:1935"], "/gateway/url"),
        (
            &["--set", "gateway.enabled=true,gateway.url=rtmp://i:1935,gateway.tls.secretName=t"],
            "needs gateway.secureUrl",
        ),
        (&["--set", "gateway.service.type=ExternalName"], "/gateway/service/type"),
        (&["--set", "gateway.replicas=0"], "/gateway/replicas"),
    ];
    let mut wrong = Vec::new();
    for (args, named) in cases {
        match helm.render(args) {
            Ok(_) => wrong.push(format!("{args:?} rendered")),
            Err(message) if !message.contains(named) => {
                wrong.push(format!("{args:?} failed without {named:?}: {message}"))
            }
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "mistyped values:\n{}", wrong.join("\n"));
}

/// The NOTES name fields of the LiveStream that its schema has.
#[test]
fn notes_name_status_fields_the_crd_has() {
    let notes = std::fs::read_to_string(format!("{CHART}/templates/NOTES.txt")).expect("read NOTES.txt");
    let crd: Value = serde_yaml::from_str(&std::fs::read_to_string(CRD_FILE).expect("read CRD")).expect("CRD");
    let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    let fields: Vec<&str> = notes.split("{.status.").skip(1).filter_map(|rest| rest.split('}').next()).collect();
    assert!(fields.len() >= 2, "the NOTES say where to push and where to watch");
    for field in fields {
        let mut schema = status;
        for part in field.split('.') {
            schema = &schema[part];
            assert!(!schema.is_null(), "NOTES.txt reads .status.{field}, which the CRD does not have");
            schema = if schema["properties"].is_null() { schema } else { &schema["properties"] };
        }
    }
    assert!(strings(&crd["spec"]["names"]["shortNames"]).contains(&"ls"), "NOTES.txt uses `kubectl get ls`");
}

/// Resolves `future`, or fails the test saying what did not happen in time.
async fn within<T>(seconds: u64, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(seconds), future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {seconds}s waiting for {what}"))
}

async fn wait_until<K>(api: &Api<K>, name: &str, what: &str, condition: impl Condition<K>) -> K
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    within(60, what, await_condition(api.clone(), name, condition))
        .await
        .unwrap_or_else(|e| panic!("watch while waiting for {what}: {e}"))
        .unwrap_or_else(|| panic!("{name} is gone while waiting for {what}"))
}

fn held_by(identity: &str) -> impl Condition<Lease> + '_ {
    move |lease: Option<&Lease>| {
        lease.and_then(|l| l.spec.as_ref()).and_then(|s| s.holder_identity.as_deref()) == Some(identity)
    }
}

async fn create_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    match namespaces.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("create namespace {name}: {e}"),
    }
}

async fn assert_absent<K>(api: Api<K>, name: &str, what: &str)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let found = api.get_opt(name).await.unwrap_or_else(|e| panic!("read {what}: {e}"));
    assert!(found.is_none(), "{what} {name} is still there after helm uninstall");
}

struct NoCleaner;
impl PrefixCleaner for NoCleaner {
    fn delete_prefix<'a>(&'a self, _: &'a StorageTarget) -> BoxFuture<'a, Result<u64, CleanupError>> {
        Box::pin(futures::future::ready(Ok(0)))
    }
}

/// The controller, run in this process as the chart's ServiceAccount, on the chart's Lease.
struct Operator {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
}

impl Operator {
    async fn start(env: &KubeHandle, namespace: Option<&str>, identity: &str) -> Self {
        let kubeconfig = Kubeconfig::read_from(env.kubeconfig()).unwrap();
        let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
        config.auth_info.impersonate = Some(format!("system:serviceaccount:ops:{FULLNAME}"));
        config.auth_info.impersonate_groups =
            Some(vec!["system:serviceaccounts".into(), "system:serviceaccounts:ops".into()]);
        let client = Client::try_from(config).unwrap();
        let settings = RunSettings {
            operator: OperatorConfig { idle_resync: Duration::from_secs(2), ..OperatorConfig::default() },
            namespace: namespace.map(String::from),
            leader_election: Some(LeaseSettings::new(FULLNAME, "ops", identity)),
            identity: identity.into(),
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(livestream::controller::run_controller(
            client,
            settings,
            Arc::new(NoCleaner),
            Metrics::default(),
            Health::new(),
            stop.clone(),
        ));
        Self { stop, task }
    }

    async fn stop(self) -> Result<(), RunError> {
        self.stop.cancel();
        within(30, "the controller to stop", self.task).await.expect("controller task")
    }
}

/// The LiveStream of the chart's NOTES, which users copy: the API server must accept it.
fn notes_stream(notes: &str) -> LiveStream {
    let start = notes.find("<<'YAML'\n").expect("NOTES hold a LiveStream") + "<<'YAML'\n".len();
    let end = start + notes[start..].find("\nYAML\n").expect("end of the NOTES LiveStream");
    serde_yaml::from_str(&notes[start..end]).unwrap_or_else(|e| panic!("the NOTES LiveStream: {e}\n{notes}"))
}

#[tokio::test]
async fn chart_installs_runs_the_controller_upgrades_and_uninstalls_cleanly() {
    let env = KubeEnv::shared();
    let admin = env.client().await;
    let helm = Helm::against(env.kubeconfig());
    let installed = helm.must(&["install", "demo", CHART, "--namespace", "ops", "--create-namespace"]);

    // The CRD is the release's, kept on uninstall.
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let crd = wait_until(&crds, CRD_NAME, "the CRD to be established", conditions::is_crd_established()).await;
    assert_eq!(crd.metadata.annotations.as_ref().and_then(|a| a.get(KEEP)).map(String::as_str), Some("keep"));
    let crd_uid = crd.metadata.uid.clone();
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "ops");
    let lease = leases.get(FULLNAME).await.expect("the chart's Lease");
    assert!(lease.spec.as_ref().and_then(|s| s.holder_identity.as_ref()).is_none(), "a free Lease");
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "ops");
    assert_eq!(deployments.get(FULLNAME).await.expect("deployment").spec.replicas, Some(2));

    // The stream the NOTES suggest, and one whose storage Secret is missing.
    create_namespace(&admin, "chart-streams").await;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "chart-streams");
    let storage: Secret = serde_json::from_value(json!({
        "metadata": {"name": "demo-storage"},
        "stringData": {"accessKeyId": "id", "secretAccessKey": "secret"},
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &storage).await.expect("storage Secret");
    let streams: Api<LiveStream> = Api::namespaced(admin.clone(), "chart-streams");
    let demo = notes_stream(&installed);
    streams.create(&PostParams::default(), &demo).await.expect("the API server accepts the NOTES LiveStream");
    let out = env.kubectl().args(["get", "ls", "demo", "-n", "chart-streams"]).output().expect("run kubectl");
    assert!(out.status.success(), "kubectl get ls: {}", String::from_utf8_lossy(&out.stderr));
    let broken: LiveStream = serde_json::from_value(json!({
        "apiVersion": "livestream.dev/v1alpha1", "kind": "LiveStream", "metadata": {"name": "broken"},
        "spec": {"storage": {"bucket": "live-video", "credentialsSecretRef": {"name": "missing"}}},
    }))
    .unwrap();
    streams.create(&PostParams::default(), &broken).await.expect("second LiveStream");

    // With only the chart's rights, the controller takes the chart's empty Lease,
    // reconciles, reports events, and finalizes a deleted stream.
    let events: Api<Event> = Api::namespaced(admin.clone(), "chart-streams");
    let mut event_watch = std::pin::pin!(watcher(events, watcher::Config::default()).applied_objects());
    let operator = Operator::start(env, None, "chart-test").await;
    wait_until(&leases, FULLNAME, "the controller to hold the chart's Lease", held_by("chart-test")).await;
    let pending =
        |s: Option<&LiveStream>| s.and_then(|s| s.status.as_ref()).and_then(|s| s.phase) == Some(Phase::Pending);
    wait_until(&streams, "demo", "the NOTES stream to be Pending", pending).await;
    Api::<Deployment>::namespaced(admin.clone(), "chart-streams").get("demo-worker").await.expect("worker Deployment");
    secrets.get("demo-stream-key").await.expect("the generated stream key of NOTES");
    within(60, "a Warning event about the stream with the missing Secret", async {
        while let Some(event) = event_watch.try_next().await.expect("watch events") {
            let about = event.regarding.as_ref().and_then(|r| r.name.as_deref());
            if about == Some("broken") && event.type_.as_deref() == Some("Warning") {
                return;
            }
        }
        panic!("the event watch ended");
    })
    .await;
    let uid = streams.get("broken").await.unwrap().metadata.uid.unwrap();
    streams.delete("broken", &DeleteParams::default()).await.expect("delete a stream");
    within(
        60,
        "the controller to finalize the deleted stream",
        await_condition(streams.clone(), "broken", conditions::is_deleted(&uid)),
    )
    .await
    .expect("watch the deleted stream");
    operator.stop().await.expect("the controller stops cleanly");
    let released = leases.get(FULLNAME).await.expect("Lease");
    assert!(released.spec.as_ref().and_then(|s| s.holder_identity.as_ref()).is_none(), "released: {released:?}");

    // An upgrade with other values changes the Deployment and moves the rights into the
    // watched namespace; it leaves the operator's Lease as it is.
    create_namespace(&admin, "media").await;
    helm.must(&[
        "upgrade",
        "demo",
        CHART,
        "--namespace",
        "ops",
        "--set",
        "replicaCount=3,watchNamespace=media,image.tag=v0.2.0",
    ]);
    let deployment = deployments.get(FULLNAME).await.expect("deployment");
    let spec = deployment.spec;
    assert_eq!(spec.replicas, Some(3));
    let container = &spec.template.spec.expect("pod spec").containers[0];
    assert_eq!(container.image.as_deref(), Some("ghcr.io/livestream-operator/livestream:v0.2.0"));
    assert!(container.args.as_ref().is_some_and(|a| a.contains(&"--namespace=media".to_string())), "{container:?}");
    Api::<Role>::namespaced(admin.clone(), "media").get(FULLNAME).await.expect("the Role in the watched namespace");
    assert_absent(Api::<ClusterRole>::all(admin.clone()), FULLNAME, "ClusterRole").await;
    let upgraded = leases.get(FULLNAME).await.expect("Lease after the upgrade");
    assert_eq!(upgraded.metadata.uid, released.metadata.uid, "the same Lease");
    assert_eq!(upgraded.spec, released.spec, "helm upgrade leaves the Lease's spec to the operator");

    // helm uninstall while the leader runs: its rights go before the pod would stop, and
    // the Lease goes with the release instead of keeping a holder.
    let operator = Operator::start(env, Some("media"), "chart-test-2").await;
    wait_until(&leases, FULLNAME, "the upgraded controller to hold the Lease", held_by("chart-test-2")).await;
    let media: Api<LiveStream> = Api::namespaced(admin.clone(), "media");
    let stream: LiveStream = serde_json::from_value(json!({
        "apiVersion": "livestream.dev/v1alpha1", "kind": "LiveStream", "metadata": {"name": "news"},
        "spec": {"storage": {"bucket": "live-video"}},
    }))
    .unwrap();
    media.create(&PostParams::default(), &stream).await.expect("a stream in the watched namespace");
    wait_until(&media, "news", "the controller with the upgraded rights to reconcile", pending).await;
    let uninstalled = helm.must(&["uninstall", "demo", "--namespace", "ops"]);
    assert!(uninstalled.contains(CRD_NAME), "helm reports the kept CRD: {uninstalled}");
    let _ = operator.stop().await;
    assert_absent(leases.clone(), FULLNAME, "Lease").await;
    assert_absent(deployments.clone(), FULLNAME, "Deployment").await;
    assert_absent(Api::<ServiceAccount>::namespaced(admin.clone(), "ops"), FULLNAME, "ServiceAccount").await;
    assert_absent(Api::<Service>::namespaced(admin.clone(), "ops"), &format!("{FULLNAME}-metrics"), "Service").await;
    assert_absent(Api::<PodDisruptionBudget>::namespaced(admin.clone(), "ops"), FULLNAME, "PodDisruptionBudget").await;
    let leader_role = format!("{FULLNAME}-leader-election");
    assert_absent(Api::<Role>::namespaced(admin.clone(), "ops"), &leader_role, "Role").await;
    assert_absent(Api::<RoleBinding>::namespaced(admin.clone(), "ops"), &leader_role, "RoleBinding").await;
    assert_absent(Api::<Role>::namespaced(admin.clone(), "media"), FULLNAME, "Role").await;
    assert_absent(Api::<RoleBinding>::namespaced(admin.clone(), "media"), FULLNAME, "RoleBinding").await;
    assert_absent(Api::<ClusterRoleBinding>::all(admin.clone()), FULLNAME, "ClusterRoleBinding").await;
    let kept = crds.get(CRD_NAME).await.expect("helm uninstall keeps the CRD");
    assert_eq!(kept.metadata.uid, crd_uid);
    streams.get("demo").await.expect("helm uninstall keeps the LiveStreams");

    // The same release installs again over the kept CRD, which it adopts unchanged.
    helm.must(&["install", "demo", CHART, "--namespace", "ops"]);
    assert_eq!(crds.get(CRD_NAME).await.expect("CRD").metadata.uid, crd_uid, "the kept CRD, not a new one");
    streams.get("demo").await.expect("the LiveStream survives the reinstall");
}
