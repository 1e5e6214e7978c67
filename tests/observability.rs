//! What operators look at, against what the product really emits: the chart's Grafana
//! dashboard, its alerting rules and the operations guide.
//!
//! One real run feeds every check: `livestream serve` (on MinIO) takes a refused key, a
//! publish whose ffmpeg is killed and whose storage goes away for a while, and a publish
//! whose source clock leaps, while its `/metrics` is scraped; `livestream controller` runs
//! against a real API server with a stream it cannot apply, one whose Secret is missing and
//! one without a worker, while its `/metrics` is scraped; `livestream gateway` is scraped
//! once. Then: every metric and label the
//! dashboard and the rules name is in those scrapes; every dashboard query returns data
//! over the scraped series, and each alert fires and stays quiet where it should, both
//! evaluated by the real `promtool test rules` on series whose names and labels are the
//! scraped ones; `docs/operations.md` documents every metric the scrapes declare. The
//! few series a short run cannot reach (UNREACHED) are recorded by the worker's own
//! metrics code in this process and encoded as `/metrics` encodes them. Without
//! the run: the chart renders the dashboard, the PodMonitor and the rules only when asked,
//! its schema refuses wrong values, and the guide has a section for each alert and names
//! every condition and event reason the code sets.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};
use support::media::{self, Push, Serve, http_get, push, wait_exit};
use support::minio::MinioServer;
use support::process::{ManagedProcess, free_port, testenv_bin, wait_for};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/livestream-operator");
const DASHBOARD: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/charts/livestream-operator/files/dashboards/livestream.json");
const GUIDE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md");
const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Labels that Prometheus, not the process, puts on every series of a target: `job` and
/// `instance` always, the rest from Kubernetes discovery through the chart's PodMonitor
/// and ServiceMonitor.
const TARGET_LABELS: [&str; 7] = ["job", "instance", "namespace", "pod", "container", "endpoint", "service"];

/// The target labels of a worker as the chart's PodMonitor scrapes it (instance is
/// relabelled to the pod's name).
const WORKER_TARGET: [(&str, &str); 6] = [
    ("job", "livestream/demo-livestream-operator-workers"),
    ("namespace", "media"),
    ("pod", "demo-worker-5c7d9f8b6d-x7k2p"),
    ("instance", "demo-worker-5c7d9f8b6d-x7k2p"),
    ("container", "worker"),
    ("endpoint", "http"),
];

/// The target labels of the operator's leader as the chart's ServiceMonitor scrapes it.
const OPERATOR_TARGET: [(&str, &str); 7] = [
    ("job", "demo-livestream-operator-metrics"),
    ("namespace", "livestream"),
    ("service", "demo-livestream-operator-metrics"),
    ("pod", "demo-livestream-operator-6f9c7b5d4-q2w8e"),
    ("instance", "10.244.0.12:8080"),
    ("container", "operator"),
    ("endpoint", "http"),
];

/// Families whose series a short run does not reach (a labelled family appears in
/// `/metrics` with its first series), with what it would take. Their names and labels
/// come from [`recorded`].
const UNREACHED: [(&str, &str); 3] = [
    ("livestream_segments_dropped", "about ten minutes of storage outage"),
    ("livestream_transcoder_presets_lowered", "a ladder the machine cannot encode in real time (tests/serve_hls.rs)"),
    ("livestream_transcoder_behind", "such a ladder too: its series appears when ffmpeg first falls behind"),
];

/// The UNREACHED families as the worker's metrics code records and encodes them.
fn recorded() -> Exposition {
    let metrics = livestream::worker::metrics::WorkerMetrics::new();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    metrics.segment_dropped("live/demo");
    metrics.preset_lowered("live/demo");
    metrics.set_transcoder_behind("live/demo", true);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    let all = Exposition::parse(&text);
    let unreached = |name: &str| UNREACHED.iter().any(|(family, _)| name.starts_with(family));
    let recorded = Exposition {
        families: all.families.into_iter().filter(|(family, _)| unreached(family)).collect(),
        samples: all.samples.into_iter().filter(|sample| unreached(&sample.name)).collect(),
    };
    for (family, _) in UNREACHED {
        assert!(recorded.families.contains_key(family), "the worker's metrics code has no family {family}");
    }
    recorded
}

// ---------------------------------------------------------------------------------------
// The OpenMetrics text a process serves.

/// One series' value in one scrape.
#[derive(Clone, Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// One scrape of `/metrics`.
#[derive(Clone, Debug, Default)]
struct Exposition {
    /// Declared families (`# TYPE`), with their type.
    families: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut scrape = Self::default();
        for line in text.lines() {
            if let Some(declared) = line.strip_prefix("# TYPE ") {
                let (name, kind) = declared.split_once(' ').unwrap_or_else(|| panic!("TYPE line {line:?}"));
                scrape.families.insert(name.to_string(), kind.to_string());
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                scrape.samples.push(parse_sample(line));
            }
        }
        scrape
    }

    fn fetch(url: &str) -> Self {
        let (status, _, _, body) = http_get(url);
        assert_eq!(status, 200, "GET {url}");
        Self::parse(&String::from_utf8(body).expect("UTF-8 metrics"))
    }

    /// The value of the series `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .map(|s| s.value)
    }
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("sample line {line:?}"));
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, after) = inner.split_once("=\"").unwrap_or_else(|| panic!("labels of {line:?}"));
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => value.push(chars.next().map(|(_, c)| if c == 'n' { '\n' } else { c }).unwrap()),
                    Some((i, '"')) => break i,
                    Some((_, c)) => value.push(c),
                    None => panic!("unterminated label value in {line:?}"),
                }
            };
            labels.insert(label.trim_start_matches(',').trim().to_string(), value);
            inner = after[end + 1..].trim_start_matches(',');
        }
    }
    let value = rest.split_whitespace().next().unwrap_or_else(|| panic!("value of {line:?}"));
    let value = value.parse().unwrap_or_else(|_| panic!("value of {line:?}"));
    Sample { name, labels, value }
}

/// The names a family's samples carry.
fn sample_names(family: &str, kind: &str) -> Vec<String> {
    match kind {
        "counter" => vec![format!("{family}_total")],
        "histogram" => ["_bucket", "_sum", "_count"].iter().map(|s| format!("{family}{s}")).collect(),
        _ => vec![family.to_string()],
    }
}

/// `/metrics` fetched in the background until finished.
struct Scraper {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<Vec<Exposition>>,
}

impl Scraper {
    fn start(url: String, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicUsize::new(0));
        let (stopped, counted) = (stop.clone(), count.clone());
        let thread = std::thread::spawn(move || {
            let mut scrapes = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                scrapes.push(Exposition::fetch(&url));
                counted.store(scrapes.len(), Ordering::Relaxed);
                std::thread::sleep(every); // the scrape interval itself
            }
            scrapes.push(Exposition::fetch(&url));
            scrapes
        });
        Self { stop, count, thread }
    }

    /// Waits until `count` scrapes are taken: enough to replay them as a time series.
    fn wait_for_scrapes(&self, count: usize) {
        wait_for(&format!("{count} scrapes"), Duration::from_secs(60), || {
            (self.count.load(Ordering::Relaxed) >= count).then_some(())
        });
    }

    fn finish(self) -> Vec<Exposition> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the scraper")
    }
}

// ---------------------------------------------------------------------------------------
// The real run.

struct RealRun {
    worker: Vec<Exposition>,
    operator: Vec<Exposition>,
    /// One scrape of the ingest gateway.
    gateway: Exposition,
    /// The UNREACHED families, from [`recorded`].
    recorded: Exposition,
}

impl RealRun {
    /// Every family either process declared, with its type.
    fn families(&self) -> BTreeMap<String, String> {
        self.worker
            .iter()
            .chain(&self.operator)
            .chain([&self.gateway, &self.recorded])
            .flat_map(|s| s.families.clone())
            .collect()
    }

    /// Sample name -> label name -> values seen, over every scrape of both processes.
    fn labels(&self) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
        let mut seen: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for sample in self.worker.iter().chain(&self.operator).chain([&self.recorded]).flat_map(|s| &s.samples) {
            let labels = seen.entry(sample.name.clone()).or_default();
            for (label, value) in &sample.labels {
                labels.entry(label.clone()).or_default().insert(value.clone());
            }
        }
        seen
    }

    /// The labels of a worker series named `name` whose labels include `with`: from the
    /// run's last scrape, or for an UNREACHED family as its code records it.
    fn worker_labels(&self, name: &str, with: &[(&str, &str)]) -> BTreeMap<String, String> {
        let last = self.worker.last().expect("worker scrapes");
        let scrape = if last.samples.iter().any(|s| s.name == name) { last } else { &self.recorded };
        real_labels(scrape, name, with)
    }

    fn last_worker(&self) -> &Exposition {
        self.worker.last().expect("worker scrapes")
    }

    fn last_operator(&self) -> &Exposition {
        self.operator.last().expect("operator scrapes")
    }
}

/// The one real run of this test binary, made by the first test that needs it.
fn real_run() -> &'static RealRun {
    static RUN: OnceLock<Result<RealRun, String>> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        let run =
            || RealRun { operator: operator_run(), worker: worker_run(), gateway: gateway_run(), recorded: recorded() };
        std::panic::catch_unwind(run).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    });
    run.as_ref().unwrap_or_else(|e| panic!("the real run failed: {e}"))
}

/// `livestream gateway` with no route yet: what it declares.
fn gateway_run() -> Exposition {
    let dir = tempfile::tempdir().expect("a directory for the gateway");
    let gateway = support::gateway::Gateway::start(dir.path(), &[]);
    Exposition::fetch(&format!("http://127.0.0.1:{}/metrics", gateway.http_port))
}

const KEY: &str = "k3y-0f-the-d3mo";
const LEAP_KEY: &str = "k3y-0f-the-l3ap";

/// `livestream serve` through what the worker alerts are about.
fn worker_run() -> Vec<Exposition> {
    use support::rtmp_publisher;
    let _serial = media::serial();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut minio = runtime.block_on(MinioServer::start());
    runtime.block_on(minio.create_bucket("live", true));
    let endpoint = format!("--s3-endpoint={}", minio.endpoint());
    let demo_key = format!("demo={KEY}");
    let leap_key = format!("leap={LEAP_KEY}");
    let args = [
        "--rendition",
        "180p:320x180:300",
        "--rendition",
        "90p:160x90:100",
        "--segment-duration",
        "1",
        "--reconnect-grace",
        "1",
        "--stream-key",
        &demo_key,
        "--stream-key",
        &leap_key,
        "--s3-bucket",
        "live",
        "--s3-path-style",
        &endpoint,
    ];
    let serve = Serve::start(
        &args,
        &[("AWS_ACCESS_KEY_ID", minio.access_key()), ("AWS_SECRET_ACCESS_KEY", minio.secret_key())],
    );
    let logs = tempfile::tempdir().unwrap();
    // The leaping source is encoded before the scrapes start: ffmpeg takes the CPU meanwhile.
    let tags = rtmp_publisher::encoded_tags(logs.path(), 5);
    let leaping = rtmp_publisher::leaping(tags, Duration::from_secs(2), Duration::from_secs(3600));
    let metrics = serve.http_url("metrics");
    let now = |name: &str, labels: &[(&str, &str)]| Exposition::fetch(&metrics).value(name, labels);
    let demo = [("stream", "live/demo")];
    let scraper = Scraper::start(metrics.clone(), Duration::from_millis(500));

    let mut wrong = push(&serve.rtmp_url("live", "not-a-key"), &Push::default(), &logs.path().join("wrong.log"));
    assert!(!wait_exit(&mut wrong, Duration::from_secs(20)), "a wrong key must be refused");

    let source = Push { seconds: 16.0, ..Push::default() };
    let mut pusher = push(&serve.rtmp_url("live", KEY), &source, &logs.path().join("push.log"));
    wait_for("segments in storage", Duration::from_secs(20), || {
        pusher.assert_running();
        now("livestream_segments_uploaded_total", &demo).filter(|n| *n >= 2.0)
    });
    let ffmpeg = Command::new("pgrep").args(["-P", &serve.process.pid().unwrap().to_string(), "ffmpeg"]).output();
    let ffmpeg = String::from_utf8_lossy(&ffmpeg.unwrap().stdout).into_owned();
    assert!(!ffmpeg.trim().is_empty(), "no ffmpeg child of serve");
    Command::new("kill").arg("-9").args(ffmpeg.split_whitespace()).status().unwrap();
    wait_for("the ffmpeg restart to be counted", Duration::from_secs(20), || {
        now("livestream_ffmpeg_restarts_total", &demo).filter(|n| *n >= 1.0)
    });

    let uploaded = now("livestream_segments_uploaded_total", &demo).unwrap_or_default();
    minio.stop();
    wait_for("failed uploads to be counted", Duration::from_secs(20), || {
        let scrape = Exposition::fetch(&metrics);
        scrape
            .samples
            .iter()
            .any(|s| s.name == "livestream_storage_upload_failures_total" && s.value > 0.0)
            .then_some(())
    });
    runtime.block_on(minio.restart());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while now("livestream_segments_uploaded_total", &demo).is_none_or(|n| n <= uploaded) {
        assert!(std::time::Instant::now() < deadline, "no upload within 30 s of the outage's end:\n{}", serve.log());
        std::thread::sleep(Duration::from_millis(100));
    }

    let port = serve.rtmp_port;
    let leap = std::thread::spawn(move || rtmp_publisher::publish(port, "live", LEAP_KEY, &leaping));
    leap.join().expect("the leaping publisher").expect("the leaping publish goes through");
    assert!(wait_exit(&mut pusher, Duration::from_secs(40)), "the push ends well: {}", pusher.log_tail(2000));
    wait_for("both streams to end", Duration::from_secs(30), || {
        let scrape = Exposition::fetch(&metrics);
        let ended = ["live/demo", "live/leap"]
            .iter()
            .all(|stream| scrape.value("livestream_live", &[("stream", stream)]) == Some(0.0));
        let leapt = scrape.value("livestream_source_timestamp_leaps_total", &[("stream", "live/leap")]).is_some();
        (ended && leapt).then_some(())
    });
    scraper.wait_for_scrapes(REPLAYED_SCRAPES);
    let scrapes = scraper.finish();
    assert!(!serve.log().contains(KEY), "the key appears in the log");
    scrapes
}

/// `livestream controller` against a real API server, with a stream it cannot apply (its
/// worker ConfigMap exists, immutable, with other data), one whose stream-key Secret is
/// missing (Failed) and one without a worker (Pending: this API server has no node).
fn operator_run() -> Vec<Exposition> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let env = support::kube::KubeEnv::shared();
    let client = runtime.block_on(env.client());
    let crd: CustomResourceDefinition =
        serde_yaml::from_str(include_str!("../crds/livestream.yaml")).expect("parse crds/livestream.yaml");
    runtime.block_on(env.install_crd(&client, &crd));
    let ns = "observability";
    support::stream::kubectl_apply(
        env.kubectl(),
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
             apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: default, namespace: {ns}}}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: broken-worker, namespace: {ns}}}\n\
             immutable: true\ndata: {{worker.yaml: \"written by someone else\"}}\n"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(media::livestream_bin());
    cmd.args(["controller", "--worker-image=livestream:test", "--leader-election=false"])
        .arg(format!("--namespace={ns}"))
        .arg(format!("--listen=127.0.0.1:{port}"))
        .env("KUBECONFIG", env.kubeconfig())
        .env("RUST_LOG", "info");
    let mut operator = ManagedProcess::spawn("livestream controller", cmd, &dir.path().join("controller.log"));
    let base = format!("http://127.0.0.1:{port}");
    wait_for("the operator to be ready", Duration::from_secs(30), || {
        operator.assert_running();
        (http_get(&format!("{base}/readyz")).0 == 200).then_some(())
    });
    let scraper = Scraper::start(format!("{base}/metrics"), Duration::from_millis(250));
    let stream = |name: &str, spec: &str| {
        format!(
            "apiVersion: livestream.dev/v1alpha1\nkind: LiveStream\nmetadata: {{name: {name}, namespace: {ns}}}\n\
             spec: {spec}\n---\n"
        )
    };
    support::stream::kubectl_apply(
        env.kubectl(),
        &[
            stream("demo", "{storage: {bucket: live-video}}"),
            stream("broken", "{storage: {bucket: live-video}}"),
            stream(
                "keyless",
                "{storage: {bucket: live-video}, ingest: {streamKeySecretRef: {name: publisher-keys, key: demo}}}",
            ),
        ]
        .concat(),
    );
    wait_for("a reconcile error, a Failed and a Pending stream", Duration::from_secs(60), || {
        operator.assert_running();
        let scrape = Exposition::fetch(&format!("{base}/metrics"));
        let errors = scrape.value("livestream_controller_reconcile_errors_total", &[("reason", "ApplyChild")]);
        let failed = scrape.value("livestream_controller_streams", &[("phase", "Failed")]);
        let pending = scrape.value("livestream_controller_streams", &[("phase", "Pending")]);
        (errors >= Some(2.0) && failed == Some(1.0) && pending >= Some(1.0)).then_some(())
    });
    scraper.wait_for_scrapes(REPLAYED_SCRAPES);
    let scrapes = scraper.finish();
    operator.terminate(Duration::from_secs(10));
    scrapes
}

// ---------------------------------------------------------------------------------------
// What the dashboard and the rules name.

/// One PromQL expression of the dashboard or the rules.
#[derive(Clone, Debug)]
struct Query {
    /// Where it is, for messages.
    origin: String,
    /// The expression, with Grafana's variables replaced by what matches everything.
    expr: String,
    /// Labels named outside the expression: an alert's `$labels.X`, the label a
    /// template variable lists.
    named_labels: Vec<String>,
}

fn dashboard() -> Value {
    serde_json::from_str(&std::fs::read_to_string(DASHBOARD).expect("read the dashboard")).expect("dashboard JSON")
}

/// Grafana's variables as a query sees them with everything selected.
fn substitute_variables(expr: &str) -> String {
    let expr = expr
        .replace("$__rate_interval", "1m")
        .replace("$namespace", ".*")
        .replace("$stream", ".*")
        .replace("$instance", ".*");
    assert!(!expr.contains('$'), "a variable the dashboard does not define: {expr}");
    expr
}

fn dashboard_queries() -> Vec<Query> {
    let dashboard = dashboard();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(Query {
                origin: format!("panel {:?} target {}", panel["title"], target["refId"]),
                expr: substitute_variables(target["expr"].as_str().expect("a target has an expr")),
                named_labels: Vec::new(),
            });
        }
    }
    for variable in dashboard["templating"]["list"].as_array().expect("templating") {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"].as_str().expect("a query variable has a query");
        let inner = query.strip_prefix("label_values(").and_then(|q| q.strip_suffix(')')).expect("label_values()");
        let (selector, label) = inner.rsplit_once(',').expect("label_values(selector, label)");
        queries.push(Query {
            origin: format!("variable {}", variable["name"]),
            expr: substitute_variables(selector),
            named_labels: vec![label.trim().to_string()],
        });
    }
    queries
}

/// `helm template` of the chart with `args`; the documents it renders.
fn helm_template(args: &[&str]) -> Result<Vec<Value>, String> {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(testenv_bin("helm"))
        .args(["template", "demo", CHART, "--namespace", "livestream"])
        .args(args)
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .expect("run helm");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).expect("UTF-8 helm output");
    Ok(serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("rendered YAML: {e}\n{text}")))
        .filter(|doc: &Value| !doc.is_null())
        .collect())
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The rule groups the chart renders with prometheusRule.enabled and `args`.
fn rule_groups(args: &[&str]) -> Value {
    let docs = helm_template(&[&["--set", "prometheusRule.enabled=true"], args].concat()).expect("helm template");
    let rules = find(&docs, "PrometheusRule");
    assert_eq!(rules.len(), 1, "one PrometheusRule");
    rules[0]["spec"]["groups"].clone()
}

/// Every alerting rule of `groups`.
fn alerts(groups: &Value) -> Vec<&Value> {
    groups.as_array().expect("groups").iter().flat_map(|g| g["rules"].as_array().expect("rules")).collect()
}

fn rule_queries() -> Vec<Query> {
    let groups = rule_groups(&[]);
    alerts(&groups)
        .into_iter()
        .map(|rule| {
            let annotations: String =
                rule["annotations"].as_object().expect("annotations").values().filter_map(Value::as_str).collect();
            Query {
                origin: format!("alert {}", rule["alert"]),
                expr: rule["expr"].as_str().expect("expr").to_string(),
                named_labels: template_labels(&annotations),
            }
        })
        .collect()
}

/// The labels `{{ $labels.X }}` of a Prometheus template names.
fn template_labels(text: &str) -> Vec<String> {
    text.split("$labels.")
        .skip(1)
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .collect()
}

/// A label matcher: label, operator, value.
type Matcher = (String, String, String);

/// What one PromQL expression names.
#[derive(Debug, Default)]
struct Names {
    /// Metric names, each with the label matchers on it.
    selectors: Vec<(String, Vec<Matcher>)>,
    /// Labels of `by`, `without`, `on`, `ignoring`, `group_left` and `group_right`.
    grouping: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Number(String),
    Punct(String),
}

fn tokenize(expr: &str) -> Vec<Token> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            tokens.push(Token::Number(chars[start..i].iter().collect()));
        } else if c == '"' || c == '\'' {
            i += 1;
            let mut value = String::new();
            while chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
            i += 1;
            tokens.push(Token::Str(value));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = if ["=~", "!~", "!=", "==", ">=", "<="].contains(&two.as_str()) { two } else { c.to_string() };
            i += op.chars().count();
            tokens.push(Token::Punct(op));
        }
    }
    tokens
}

/// Words of PromQL that are neither metrics nor functions.
const KEYWORDS: [&str; 9] = ["and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN"];
/// Aggregation operators, which a grouping clause may separate from their `(`.
const AGGREGATIONS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const GROUPING: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];

fn names(expr: &str) -> Names {
    let tokens = tokenize(expr);
    let punct = |i: usize, p: &str| matches!(tokens.get(i), Some(Token::Punct(q)) if q == p);
    let mut names = Names::default();
    let mut i = 0;
    while i < tokens.len() {
        let Token::Ident(word) = &tokens[i] else {
            assert!(!punct(i, "{"), "a selector without a metric name in {expr}");
            i += 1;
            continue;
        };
        i += 1;
        if GROUPING.contains(&word.as_str()) {
            if punct(i, "(") {
                i += 1;
                while !punct(i, ")") {
                    if let Some(Token::Ident(label)) = tokens.get(i) {
                        names.grouping.insert(label.clone());
                    }
                    i += 1;
                }
            }
        } else if punct(i, "(") || KEYWORDS.contains(&word.as_str()) || AGGREGATIONS.contains(&word.as_str()) {
            // A function or an aggregation, or a keyword.
        } else {
            let mut matchers = Vec::new();
            if punct(i, "{") {
                i += 1;
                while !punct(i, "}") {
                    match (&tokens[i], &tokens[i + 1], &tokens[i + 2]) {
                        (Token::Ident(label), Token::Punct(op), Token::Str(value)) => {
                            matchers.push((label.clone(), op.clone(), value.clone()))
                        }
                        other => panic!("a label matcher in {expr}: {other:?}"),
                    }
                    i += 3;
                    if punct(i, ",") {
                        i += 1;
                    }
                }
            }
            names.selectors.push((word.clone(), matchers));
        }
    }
    names
}

/// What is wrong with `query` against what the run emitted.
fn problems(query: &Query, families: &BTreeMap<String, String>, labels: &SeenLabels) -> Vec<String> {
    let mut problems = Vec::new();
    let names = names(&query.expr);
    if names.selectors.is_empty() {
        problems.push(format!("{}: names no metric: {}", query.origin, query.expr));
    }
    let declared: BTreeMap<String, String> = families
        .iter()
        .flat_map(|(family, kind)| sample_names(family, kind).into_iter().map(move |name| (name, family.clone())))
        .collect();
    let mut expression_labels: BTreeSet<String> = TARGET_LABELS.iter().map(|l| l.to_string()).collect();
    for (metric, matchers) in &names.selectors {
        let Some(family) = declared.get(metric) else {
            problems.push(format!("{}: {metric} is not a metric the run declared", query.origin));
            continue;
        };
        let Some(carried) = labels.get(metric) else {
            problems.push(format!("{}: {metric} ({family}) has no series in the run", query.origin));
            continue;
        };
        expression_labels.extend(carried.keys().cloned());
        for (label, op, value) in matchers {
            if TARGET_LABELS.contains(&label.as_str()) {
                continue;
            }
            match carried.get(label) {
                None => problems.push(format!("{}: {metric} carries no label {label}", query.origin)),
                Some(values) if op == "=" && !values.contains(value) => problems.push(format!(
                    "{}: {metric}{{{label}=\"{value}\"}} never occurred; it took {values:?}",
                    query.origin
                )),
                Some(_) => {}
            }
        }
    }
    for label in names.grouping.iter().chain(&query.named_labels) {
        if !expression_labels.contains(label) && label != "le" {
            problems
                .push(format!("{}: no metric of the expression carries label {label}: {}", query.origin, query.expr));
        }
    }
    problems
}

type SeenLabels = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

#[test]
fn the_query_checker_finds_what_is_wrong() {
    let families: BTreeMap<String, String> =
        [("livestream_live", "gauge"), ("livestream_segments_uploaded", "counter")]
            .map(|(n, k)| (n.to_string(), k.to_string()))
            .into();
    let mut labels = SeenLabels::new();
    for name in ["livestream_live", "livestream_segments_uploaded_total"] {
        labels.entry(name.into()).or_default().entry("stream".into()).or_default().insert("live/demo".into());
    }
    let check = |expr: &str, named: &[&str]| {
        let query = Query {
            origin: "q".into(),
            expr: expr.into(),
            named_labels: named.iter().map(|l| l.to_string()).collect(),
        };
        problems(&query, &families, &labels)
    };
    assert!(check("sum by (stream) (rate(livestream_segments_uploaded_total{stream=~\".*\"}[1m]))", &[]).is_empty());
    assert!(
        check("livestream_live == 1 unless increase(livestream_segments_uploaded_total[1m]) > 0", &["pod"]).is_empty()
    );
    assert_eq!(check("livestream_segments_uploaded", &[]).len(), 1, "a counter's samples end in _total");
    assert_eq!(check("livestream_lve", &[]).len(), 1);
    assert_eq!(check("livestream_live{strem=\"x\"}", &[]).len(), 1);
    assert_eq!(check("livestream_live{stream=\"live/other\"}", &[]).len(), 1);
    assert_eq!(check("sum by (phase) (livestream_live)", &[]).len(), 1);
    assert_eq!(check("livestream_live", &["reason"]).len(), 1);
}

#[test]
fn dashboard_and_alerts_name_only_metrics_and_labels_a_real_run_emits() {
    let run = real_run();
    let (families, labels) = (run.families(), run.labels());
    let mut wrong = Vec::new();
    let queries: Vec<Query> = dashboard_queries().into_iter().chain(rule_queries()).collect();
    assert!(queries.len() > 30, "the dashboard and the rules have queries: {}", queries.len());
    for query in &queries {
        wrong.extend(problems(query, &families, &labels));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------------------
// promtool.

fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new(testenv_bin("promtool")).args(args).current_dir(dir).output().expect("run promtool");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {} failed:\n{text}", args.join(" "));
    text
}

/// `name{labels}` as promtool reads a series.
fn series(name: &str, labels: &BTreeMap<String, String>) -> String {
    let labels: Vec<String> =
        labels.iter().map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))).collect();
    format!("{name}{{{}}}", labels.join(", "))
}

fn with_target(labels: &BTreeMap<String, String>, target: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut all = labels.clone();
    all.extend(target.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    all
}

fn target(target: &[(&str, &str)]) -> BTreeMap<String, String> {
    with_target(&BTreeMap::new(), target)
}

/// Scrapes of each process replayed as a time series, 15 s apart.
const REPLAYED_SCRAPES: usize = 24;

/// Every series of the run, with each process's target labels, as promtool input: one
/// value per scrape, `count` scrapes evenly spaced over the run, 15 s apart.
fn replayed_series(run: &RealRun, count: usize) -> Vec<Value> {
    let mut input = Vec::new();
    for (scrapes, target) in [(&run.worker, &WORKER_TARGET[..]), (&run.operator, &OPERATOR_TARGET[..])] {
        assert!(scrapes.len() >= count, "{} scrapes, want {count}", scrapes.len());
        let picked: Vec<&Exposition> = (0..count).map(|j| &scrapes[j * (scrapes.len() - 1) / (count - 1)]).collect();
        let mut values: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
        for (j, scrape) in picked.iter().enumerate() {
            for sample in &scrape.samples {
                let key = series(&sample.name, &with_target(&sample.labels, target));
                values.entry(key).or_insert_with(|| vec![None; count])[j] = Some(sample.value);
            }
        }
        for (key, values) in values {
            let values: Vec<String> = values.iter().map(|v| v.map_or("_".to_string(), |v| v.to_string())).collect();
            input.push(json!({"series": key, "values": values.join(" ")}));
        }
    }
    input
}

#[test]
fn every_dashboard_query_returns_data_over_the_real_series() {
    let run = real_run();
    let count = REPLAYED_SCRAPES;
    let eval_time = format!("{}s", (count - 1) * 15);
    let sampled_only = |query: &Query| {
        let names = names(&query.expr);
        let unreached = names.selectors.iter().find_map(|(metric, _)| {
            UNREACHED.iter().find(|(family, _)| metric.starts_with(family)).map(|(family, why)| (family, why))
        });
        if let Some((family, why)) = unreached {
            eprintln!("not evaluated: {} ({family} would need {why})", query.origin);
        }
        unreached.is_none()
    };
    let queries: Vec<Query> = dashboard_queries().into_iter().filter(sampled_only).collect();
    assert!(queries.len() > 25, "{} queries", queries.len());
    let tests: Vec<Value> = queries
        .iter()
        .map(|query| {
            json!({"expr": format!("group({})", query.expr), "eval_time": eval_time,
                   "exp_samples": [{"labels": "{}", "value": 1}]})
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("none.yaml"), "groups: []\n").unwrap();
    let file = json!({
        "rule_files": ["none.yaml"],
        "evaluation_interval": "15s",
        "tests": [{"interval": "15s", "input_series": replayed_series(run, count), "promql_expr_test": tests}],
    });
    std::fs::write(dir.path().join("panels.test.yaml"), serde_yaml::to_string(&file).unwrap()).unwrap();
    let out = promtool(&["test", "rules", "panels.test.yaml"], dir.path());
    assert!(out.contains("SUCCESS"), "{out}");
}

/// At an evaluation time, the label sets of the alerts of one name expected firing.
type Check = (&'static str, &'static str, Vec<BTreeMap<String, String>>);

/// One promtool test: input series and the alerts expected at given times.
struct Scenario {
    name: &'static str,
    input: Vec<(String, String)>,
    checks: Vec<Check>,
}

/// The alert's annotations for `labels`, as Prometheus expands `{{ $labels.X }}`.
fn expanded_annotations(rule: &Value, labels: &BTreeMap<String, String>) -> Value {
    let mut annotations = serde_json::Map::new();
    for (name, text) in rule["annotations"].as_object().expect("annotations") {
        let mut text = text.as_str().expect("annotation text").to_string();
        for (label, value) in labels {
            text = text.replace(&format!("{{{{ $labels.{label} }}}}"), value);
        }
        assert!(!text.contains("{{"), "{}: a template this test does not expand: {text}", rule["alert"]);
        annotations.insert(name.clone(), Value::String(text));
    }
    Value::Object(annotations)
}

/// The labels of the first series named `name` in `scrape` whose labels include `with`.
fn real_labels(scrape: &Exposition, name: &str, with: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut found = scrape.samples.iter().filter(|s| s.name == name);
    let sample = found
        .find(|s| with.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .unwrap_or_else(|| panic!("the run has no series {name} with {with:?}"));
    sample.labels.clone()
}

fn every_real_labels(scrape: &Exposition, name: &str) -> Vec<BTreeMap<String, String>> {
    let all: Vec<_> = scrape.samples.iter().filter(|s| s.name == name).map(|s| s.labels.clone()).collect();
    assert!(!all.is_empty(), "the run has no series {name}");
    all
}

fn scenarios(run: &RealRun) -> Vec<Scenario> {
    let worker = run.last_worker();
    let operator = run.last_operator();
    let demo = [("stream", "live/demo")];
    let w = |labels: BTreeMap<String, String>| with_target(&labels, &WORKER_TARGET);
    let o = |labels: BTreeMap<String, String>| with_target(&labels, &OPERATOR_TARGET);
    let live = w(real_labels(worker, "livestream_live", &demo));
    let uploaded = w(real_labels(worker, "livestream_segments_uploaded_total", &demo));
    let restarts = w(real_labels(worker, "livestream_ffmpeg_restarts_total", &demo));
    let behind = w(run.worker_labels("livestream_transcoder_behind", &demo));
    let dropped = w(run.worker_labels("livestream_segments_dropped_total", &demo));
    let uploads: Vec<_> = every_real_labels(worker, "livestream_storage_uploads_total").into_iter().map(w).collect();
    let failures: Vec<_> =
        every_real_labels(worker, "livestream_storage_upload_failures_total").into_iter().map(w).collect();
    let errors = o(real_labels(operator, "livestream_controller_reconcile_errors_total", &[("reason", "ApplyChild")]));
    let failed = o(real_labels(operator, "livestream_controller_streams", &[("phase", "Failed")]));
    let pending = o(real_labels(operator, "livestream_controller_streams", &[("phase", "Pending")]));
    // The standby replica: same series from another pod, 0 in every phase.
    let standby = |labels: &BTreeMap<String, String>| {
        let mut labels = labels.clone();
        labels.insert("pod".into(), "demo-livestream-operator-6f9c7b5d4-z8x4c".into());
        labels.insert("instance".into(), "10.244.0.13:8080".into());
        labels
    };
    let s = |name: &str, labels: &BTreeMap<String, String>, values: &str| (series(name, labels), values.to_string());
    let each = |name: &str, all: &[BTreeMap<String, String>], values: &str| -> Vec<(String, String)> {
        all.iter().map(|labels| s(name, labels, values)).collect()
    };
    let stream_alert = |labels: &BTreeMap<String, String>| {
        let mut labels = labels.clone();
        labels.retain(|k, _| k != "__name__");
        vec![labels]
    };
    let worker_alert = vec![target(&WORKER_TARGET)];
    let operator_alert = |extra: &[(&str, &str)]| {
        // What `by (namespace, job ...)` keeps of the operator's target labels.
        let labels: BTreeMap<String, String> = OPERATOR_TARGET
            .iter()
            .filter(|(k, _)| ["namespace", "job"].contains(k))
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vec![labels]
    };
    let reason = errors["reason"].clone();
    vec![
        Scenario {
            name: "segments stop while the encoder publishes",
            input: vec![
                s("livestream_live", &live, "1x60"),
                s("livestream_segments_uploaded_total", &uploaded, "0+4x20 80x40"),
            ],
            checks: vec![
                ("5m", "LiveStreamNoSegments", vec![]),
                ("6m30s", "LiveStreamNoSegments", vec![]),
                ("9m", "LiveStreamNoSegments", stream_alert(&live)),
            ],
        },
        Scenario {
            name: "segments stop because the publish ended",
            input: vec![
                s("livestream_live", &live, "1x20 0x40"),
                s("livestream_segments_uploaded_total", &uploaded, "0+4x20 80x40"),
            ],
            checks: vec![("9m", "LiveStreamNoSegments", vec![])],
        },
        Scenario {
            name: "storage goes away",
            input: [
                each("livestream_storage_uploads_total", &uploads, "0+40x20 800x60"),
                each("livestream_storage_upload_failures_total", &failures, "0x20 0+2x60"),
            ]
            .concat(),
            checks: vec![
                ("4m", "LiveStreamStorageUploadsFailing", vec![]),
                ("7m", "LiveStreamStorageUploadsFailing", vec![]),
                ("12m", "LiveStreamStorageUploadsFailing", worker_alert.clone()),
            ],
        },
        Scenario {
            name: "storage refuses every upload from the start",
            input: each("livestream_storage_upload_failures_total", &failures, "0+2x80"),
            checks: vec![("14m", "LiveStreamStorageUploadsFailing", worker_alert.clone())],
        },
        Scenario {
            name: "an upload fails now and then",
            input: [
                each("livestream_storage_uploads_total", &uploads, "0+40x80"),
                each("livestream_storage_upload_failures_total", &failures, "0x20 1x30 2x30"),
            ]
            .concat(),
            checks: vec![("14m", "LiveStreamStorageUploadsFailing", vec![])],
        },
        Scenario {
            name: "the first media is dropped",
            input: vec![s("livestream_segments_dropped_total", &dropped, "_x20 1x60")],
            checks: vec![
                ("4m", "LiveStreamMediaDropped", vec![]),
                ("6m", "LiveStreamMediaDropped", stream_alert(&dropped)),
                ("16m", "LiveStreamMediaDropped", vec![]),
            ],
        },
        Scenario {
            name: "media is dropped again",
            input: vec![s("livestream_segments_dropped_total", &dropped, "1x48 2x32")],
            checks: vec![
                ("11m", "LiveStreamMediaDropped", vec![]),
                ("13m", "LiveStreamMediaDropped", stream_alert(&dropped)),
            ],
        },
        Scenario {
            name: "ffmpeg dies three times",
            input: vec![s("livestream_ffmpeg_restarts_total", &restarts, "_x8 1x8 2x8 3x100")],
            checks: vec![
                ("5m", "LiveStreamFfmpegRestarting", vec![]),
                ("7m", "LiveStreamFfmpegRestarting", stream_alert(&restarts)),
                ("25m", "LiveStreamFfmpegRestarting", vec![]),
            ],
        },
        Scenario {
            name: "ffmpeg dies twice",
            input: vec![s("livestream_ffmpeg_restarts_total", &restarts, "_x8 1x8 2x60")],
            checks: vec![("10m", "LiveStreamFfmpegRestarting", vec![])],
        },
        Scenario {
            name: "the transcoder stays behind",
            input: vec![s("livestream_transcoder_behind", &behind, "0x20 1x60")],
            checks: vec![
                ("9m", "LiveStreamTranscoderBehind", vec![]),
                ("12m", "LiveStreamTranscoderBehind", stream_alert(&behind)),
            ],
        },
        Scenario {
            name: "the transcoder falls behind once and a faster preset catches up",
            input: vec![s("livestream_transcoder_behind", &behind, "0x20 1x4 0x56")],
            checks: vec![("7m", "LiveStreamTranscoderBehind", vec![]), ("12m", "LiveStreamTranscoderBehind", vec![])],
        },
        Scenario {
            name: "reconciles keep failing, retried every 5 minutes",
            input: vec![s("livestream_controller_reconcile_errors_total", &errors, "0x19 1x20 2x20 3x20 4x20 5x20")],
            checks: vec![
                ("18m", "LiveStreamOperatorReconcileErrors", vec![]),
                ("22m", "LiveStreamOperatorReconcileErrors", operator_alert(&[("reason", &reason)])),
            ],
        },
        Scenario {
            name: "reconciles fail for a moment",
            input: vec![s("livestream_controller_reconcile_errors_total", &errors, "0x19 3x100")],
            checks: vec![
                ("16m", "LiveStreamOperatorReconcileErrors", vec![]),
                ("22m", "LiveStreamOperatorReconcileErrors", vec![]),
            ],
        },
        Scenario {
            name: "a stream stays Failed",
            input: vec![
                s("livestream_controller_streams", &failed, "0x8 1x60"),
                s("livestream_controller_streams", &standby(&failed), "0x68"),
            ],
            checks: vec![("11m", "LiveStreamsFailed", vec![]), ("13m", "LiveStreamsFailed", operator_alert(&[]))],
        },
        Scenario {
            name: "a Failed stream is fixed",
            input: vec![
                s("livestream_controller_streams", &failed, "0x8 1x20 0x40"),
                s("livestream_controller_streams", &standby(&failed), "0x68"),
            ],
            checks: vec![("13m", "LiveStreamsFailed", vec![])],
        },
        Scenario {
            name: "a stream stays Pending",
            input: vec![
                s("livestream_controller_streams", &pending, "1x80"),
                s("livestream_controller_streams", &standby(&pending), "0x80"),
            ],
            checks: vec![("14m", "LiveStreamsPending", vec![]), ("16m", "LiveStreamsPending", operator_alert(&[]))],
        },
        Scenario {
            name: "a worker rolls out",
            input: vec![
                s("livestream_controller_streams", &pending, "1x4 0x76"),
                s("livestream_controller_streams", &standby(&pending), "0x80"),
            ],
            checks: vec![("16m", "LiveStreamsPending", vec![])],
        },
    ]
}

#[test]
fn each_alert_fires_and_stays_quiet_where_it_should() {
    let run = real_run();
    let groups = rule_groups(&[]);
    let rules: BTreeMap<String, &Value> =
        alerts(&groups).into_iter().map(|r| (r["alert"].as_str().unwrap().to_string(), r)).collect();
    let scenarios = scenarios(run);
    let mut tried: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    let tests: Vec<Value> = scenarios
        .iter()
        .map(|scenario| {
            let checks: Vec<Value> = scenario
                .checks
                .iter()
                .map(|(at, alert, firing)| {
                    let rule = rules.get(*alert).unwrap_or_else(|| panic!("the chart has no alert {alert}"));
                    let seen = tried.entry(*alert).or_default();
                    if firing.is_empty() {
                        seen.1 = true
                    } else {
                        seen.0 = true
                    }
                    let expected: Vec<Value> = firing
                        .iter()
                        .map(|labels| {
                            let mut all = labels.clone();
                            for (k, v) in rule["labels"].as_object().expect("labels") {
                                all.insert(k.clone(), v.as_str().unwrap().to_string());
                            }
                            json!({"exp_labels": all, "exp_annotations": expanded_annotations(rule, labels)})
                        })
                        .collect();
                    json!({"eval_time": at, "alertname": alert, "exp_alerts": expected})
                })
                .collect();
            let input: Vec<Value> =
                scenario.input.iter().map(|(series, values)| json!({"series": series, "values": values})).collect();
            json!({"name": scenario.name, "interval": "15s", "input_series": input, "alert_rule_test": checks})
        })
        .collect();
    for alert in rules.keys() {
        assert_eq!(tried.get(alert.as_str()), Some(&(true, true)), "{alert} is seen both firing and quiet");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), serde_yaml::to_string(&json!({"groups": groups})).unwrap()).unwrap();
    let out = promtool(&["check", "rules", "rules.yaml"], dir.path());
    assert!(out.contains(&format!("{} rules found", rules.len())), "{out}");
    let file = json!({"rule_files": ["rules.yaml"], "evaluation_interval": "15s", "tests": tests});
    std::fs::write(dir.path().join("alerts.test.yaml"), serde_yaml::to_string(&file).unwrap()).unwrap();
    let out = promtool(&["test", "rules", "alerts.test.yaml"], dir.path());
    assert!(out.contains("SUCCESS"), "{out}");
}

// ---------------------------------------------------------------------------------------
// The chart.

#[test]
fn the_chart_renders_the_dashboard_monitors_and_rules_only_when_asked() {
    let defaults = helm_template(&[]).expect("helm template");
    for kind in ["PrometheusRule", "PodMonitor", "ServiceMonitor"] {
        assert!(find(&defaults, kind).is_empty(), "no {kind} by default");
    }
    let dashboards = |docs: &[Value]| -> Vec<Value> {
        find(docs, "ConfigMap").into_iter().filter(|c| !c["data"]["livestream.json"].is_null()).cloned().collect()
    };
    assert!(dashboards(&defaults).is_empty(), "no dashboard by default");

    let on = helm_template(&[
        "--set",
        "grafanaDashboard.enabled=true,metrics.workerPodMonitor.enabled=true,prometheusRule.enabled=true",
    ])
    .expect("helm template");
    let dashboard_maps = dashboards(&on);
    assert_eq!(dashboard_maps.len(), 1);
    let map = &dashboard_maps[0];
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1", "the sidecar's default label");
    assert_eq!(map["metadata"]["namespace"], "livestream");
    let shipped: Value = serde_json::from_str(map["data"]["livestream.json"].as_str().unwrap()).expect("JSON");
    assert_eq!(shipped, dashboard(), "the ConfigMap carries the chart's dashboard file");
    assert!(map["data"]["livestream.json"].as_str().unwrap().len() < 900 * 1024, "a ConfigMap holds at most 1 MiB");

    let monitor = find(&on, "PodMonitor")[0];
    assert_eq!(monitor["spec"]["namespaceSelector"], json!({"any": true}));
    assert_eq!(monitor["spec"]["podMetricsEndpoints"][0]["port"], "http");
    assert_eq!(monitor["spec"]["podMetricsEndpoints"][0]["interval"], "15s");
    let selector = monitor["spec"]["selector"]["matchLabels"].as_object().unwrap();
    let worker_labels =
        livestream::controller::children::labels("demo", livestream::controller::children::Component::Worker);
    for (key, value) in selector {
        assert_eq!(
            worker_labels.get(key).map(String::as_str),
            value.as_str(),
            "the PodMonitor selects worker pods by {key}"
        );
    }
    let rule = find(&on, "PrometheusRule")[0];
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    for alert in alerts(&rule["spec"]["groups"]) {
        let name = alert["alert"].as_str().unwrap();
        for annotation in ["summary", "description", "runbook_url"] {
            let text = alert["annotations"][annotation].as_str().unwrap_or_default();
            assert!(text.len() > 10, "{name} has a {annotation}");
        }
        assert!(["warning", "critical"].contains(&alert["labels"]["severity"].as_str().unwrap()), "{name} severity");
    }

    let custom = helm_template(&[
        "--set",
        "grafanaDashboard.enabled=true,grafanaDashboard.label=dashboards,grafanaDashboard.labelValue=livestream",
        "--set",
        "grafanaDashboard.namespace=monitoring,grafanaDashboard.annotations.grafana_folder=Streaming",
        "--set",
        "metrics.workerPodMonitor.enabled=true,metrics.workerPodMonitor.labels.release=prometheus,watchNamespace=media",
        "--set",
        "prometheusRule.enabled=true,prometheusRule.labels.release=prometheus,prometheusRule.alertLabels.team=media",
        "--set",
        "prometheusRule.noSegmentsFor=20s,prometheusRule.runbookBaseUrl=https://wiki.example.com/livestream",
        "--set",
        "prometheusRule.disabledAlerts={LiveStreamsPending,LiveStreamFfmpegRestarting}",
    ])
    .expect("helm template");
    let map = &dashboards(&custom)[0];
    assert_eq!(map["metadata"]["labels"]["dashboards"], "livestream");
    assert!(map["metadata"]["labels"].get("grafana_dashboard").is_none());
    assert_eq!(map["metadata"]["namespace"], "monitoring");
    assert_eq!(map["metadata"]["annotations"]["grafana_folder"], "Streaming");
    let monitor = find(&custom, "PodMonitor")[0];
    assert_eq!(monitor["spec"]["namespaceSelector"], json!({"matchNames": ["media"]}));
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let rule = find(&custom, "PrometheusRule")[0];
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let rules = alerts(&rule["spec"]["groups"]);
    let names: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    assert!(!names.contains(&"LiveStreamsPending") && !names.contains(&"LiveStreamFfmpegRestarting"), "{names:?}");
    assert_eq!(names.len(), alerts(&rule_groups(&[])).len() - 2);
    for alert in &rules {
        assert_eq!(alert["labels"]["team"], "media");
        let runbook = alert["annotations"]["runbook_url"].as_str().unwrap();
        assert!(runbook.starts_with("https://wiki.example.com/livestream#"), "{runbook}");
    }
    let stall = rules.iter().find(|r| r["alert"] == "LiveStreamNoSegments").unwrap();
    assert!(stall["expr"].as_str().unwrap().contains("[20s]") && stall["for"] == "20s", "{stall}");
}

#[test]
fn wrong_observability_values_fail_naming_the_value() {
    let cases: &[(&str, &str)] = &[
        ("grafanaDashboard.enabled=yes", "/grafanaDashboard/enabled"),
        ("grafanaDashboard.labelValue=1", "/grafanaDashboard/labelValue"),
        ("grafanaDashboard.label=not a label", "/grafanaDashboard/label"),
        ("grafanaDashboard.namespace=Monitoring", "/grafanaDashboard/namespace"),
        ("grafanaDashboard.folder=Streaming", "'folder'"),
        ("metrics.workerPodMonitor.interval=often", "/metrics/workerPodMonitor/interval"),
        ("metrics.workerPodMonitor.port=8080", "'port'"),
        ("prometheusRule.enabled=1", "/prometheusRule/enabled"),
        ("prometheusRule.noSegmentsFor=3", "/prometheusRule/noSegmentsFor"),
        ("prometheusRule.runbookBaseUrl=docs/operations.md", "/prometheusRule/runbookBaseUrl"),
        ("prometheusRule.disabledAlerts={LiveStreamNoSegment}", "/prometheusRule/disabledAlerts/0"),
        ("prometheusRule.alertLabels.team=1", "/prometheusRule/alertLabels/team"),
        ("prometheusRule.severity=page", "'severity'"),
    ];
    let mut wrong = Vec::new();
    for (value, named) in cases {
        match helm_template(&["--set", value]) {
            Ok(_) => wrong.push(format!("{value} rendered")),
            Err(message) if !message.contains(named) => {
                wrong.push(format!("{value} failed without {named}: {message}"))
            }
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_dashboard_is_laid_out_for_grafana() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "livestream-operator");
    let panels = dashboard["panels"].as_array().unwrap();
    let ids: BTreeSet<i64> = panels.iter().map(|p| p["id"].as_i64().expect("an id")).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    let mut cells = BTreeSet::new();
    for panel in panels {
        let grid = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| grid[k].as_u64().expect("gridPos"));
        assert!(x + w <= 24, "{} fits the 24 columns", panel["title"]);
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(cells.insert(cell), "{} overlaps another panel at {cell:?}", panel["title"]);
        }
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{} uses the chosen data source", panel["title"]);
            assert!(
                panel["description"].as_str().is_some_and(|d| d.len() > 20),
                "{} says what it shows",
                panel["title"]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// The operations guide.

fn guide() -> String {
    std::fs::read_to_string(GUIDE).expect("read docs/operations.md")
}

#[test]
fn the_guide_documents_every_metric_the_run_declares_and_no_other() {
    let run = real_run();
    let guide = guide();
    let families = run.families();
    let mut wrong = Vec::new();
    let mut known = BTreeSet::new();
    for (family, kind) in &families {
        let names = sample_names(family, kind);
        let documented = if kind == "histogram" { family.clone() } else { names[0].clone() };
        if !guide.contains(&format!("`{documented}`")) {
            wrong.push(format!("{documented} ({kind}) is not documented"));
        }
        known.insert(family.clone());
        known.extend(names);
    }
    for word in guide.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if (word.starts_with("livestream_") || word.starts_with("rtmp_")) && !known.contains(word) {
            wrong.push(format!("the guide names {word}, which no process declares"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The text of `path` under src/ before its tests.
fn source(path: &str) -> String {
    let text = std::fs::read_to_string(Path::new(SRC).join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"));
    text.split("#[cfg(test)]").next().unwrap().to_string()
}

/// The string literals that follow each `opening` in `text`, at argument `index`.
fn literal_arguments(text: &str, opening: &str, index: usize) -> Vec<String> {
    text.split(opening)
        .skip(1)
        .filter_map(|call| {
            let argument = call.split(',').nth(index)?.trim();
            let literal = argument.strip_prefix('"')?.split('"').next()?;
            Some(literal.to_string())
        })
        .collect()
}

#[test]
fn the_guide_has_a_section_for_each_alert_and_names_every_reason() {
    let guide = guide();
    let headings: BTreeSet<&str> =
        guide.lines().filter_map(|l| l.strip_prefix("### ").or_else(|| l.strip_prefix("#### "))).collect();
    let groups = rule_groups(&[]);
    for alert in alerts(&groups) {
        let name = alert["alert"].as_str().unwrap();
        assert!(headings.contains(name), "docs/operations.md has no section {name}");
        let runbook = alert["annotations"]["runbook_url"].as_str().unwrap();
        assert!(runbook.ends_with(&format!("docs/operations.md#{}", name.to_lowercase())), "{name}: {runbook}");
    }

    let mut reasons = BTreeSet::new();
    // ProblemKind::reason's arms.
    for call in source("worker/status.rs").split("=> \"").skip(1) {
        reasons.insert(call.split('"').next().unwrap().to_string());
    }
    for call in source("controller/validate.rs").split("reason: \"").skip(1) {
        reasons.insert(call.split('"').next().unwrap().to_string());
    }
    let status = source("controller/status/mod.rs");
    reasons.extend(literal_arguments(&status, "Desired::new(", 2));
    reasons.extend(literal_arguments(&status, "not_live(", 0));
    for file in ["controller/events.rs", "controller/reconcile/mod.rs"] {
        let text = source(file);
        reasons.extend(literal_arguments(&text, "Notice::normal(", 0));
        reasons.extend(literal_arguments(&text, "Notice::warning(", 0));
    }
    reasons.retain(|r| !r.is_empty());
    for expected in [
        "SourceUnsupported",
        "TlsCertificateInvalid",
        "WorkerNotAvailable",
        "PublishStarted",
        "StorageCleanupAbandoned",
    ] {
        assert!(reasons.contains(expected), "the source scan finds {expected}: {reasons:?}");
    }
    let missing: Vec<&String> = reasons.iter().filter(|r| !guide.contains(&format!("`{r}`"))).collect();
    assert!(missing.is_empty(), "reasons the guide does not name: {missing:?}");
}
