//! The documentation against the real components it describes.
//!
//! - Every LiveStream and Secret in a `yaml` block of `docs/*.md` is applied to a real
//!   kube-apiserver with the CRD installed, by server-side apply with strict field
//!   validation, so that a renamed, misspelt or invalid field fails here. A block that is
//!   only `spec:` is applied as the spec of a minimal LiveStream.
//! - A `# status.FIELD: URL` comment in a block is the URL the operator computes for the
//!   block's LiveStream (`playbackUrl`, `lowLatencyPlaybackUrl`, `posterUrl`).
//! - Every `json` block parses; a block under a `<!-- check: KIND -->` line has the shape
//!   that KIND's provider takes (S3, R2 and GCS CORS documents, IAM and bucket policies).
//! - The MinIO bucket policies of the docs are set on a real MinIO, which then serves the
//!   playback prefix to anonymous GETs and refuses what the docs say it refuses; MinIO's
//!   CORS and conditional writes behave as the docs say.
//! - Links between the docs and to their headings resolve.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams, ValidationDirective};
use kube::core::ApiResource;
use livestream::api::LiveStream;
use livestream::controller::status::{low_latency_playback_url, playback_url, poster_url};
use livestream::storage::{Expect, ObjectKind, SegmentFormat, Store, StoreError};
use serde_json::{Map, Value, json};
use support::kube::KubeEnv;
use support::minio::MinioServer;

/// The document that must hold a manifest for each provider it covers.
const STORAGE_DOC: &str = "storage-and-cdn.md";

/// A fenced code block of a document.
struct Block {
    /// `docs/FILE.md:LINE` of the opening fence, for failure messages.
    place: String,
    file: String,
    /// The first word of the info string (`yaml`, `json`, `sh`).
    lang: String,
    /// KIND of a `<!-- check: KIND -->` line right above the fence.
    check: Option<String>,
    text: String,
}

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files of `docs/`, by name.
fn doc_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repository().join("docs"))
        .expect("read docs/")
        .map(|entry| entry.expect("a docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The fenced code blocks of every document in `docs/`.
fn doc_blocks() -> Vec<Block> {
    doc_files().iter().flat_map(|path| blocks_of(&path.file_name().unwrap().to_string_lossy(), &read(path))).collect()
}

fn blocks_of(file: &str, markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    let mut previous = "";
    for (index, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, Some(info)) => {
                let check = previous
                    .trim()
                    .strip_prefix("<!-- check:")
                    .and_then(|rest| rest.strip_suffix("-->"))
                    .map(|kind| kind.trim().to_string());
                open = Some(Block {
                    place: format!("docs/{file}:{}", index + 1),
                    file: file.to_string(),
                    lang: info.split_whitespace().next().unwrap_or_default().to_string(),
                    check,
                    text: String::new(),
                });
            }
            (None, None) => {}
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    assert!(open.is_none(), "docs/{file}: a code block is never closed");
    blocks
}

fn crd() -> CustomResourceDefinition {
    serde_yaml::from_str(include_str!("../crds/livestream.yaml")).expect("parse crds/livestream.yaml")
}

/// The `# status.FIELD: VALUE` comments of a block.
fn status_comments(block: &Block) -> Vec<(String, String)> {
    block
        .text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("# status."))
        .map(|rest| {
            let (field, value) =
                rest.split_once(':').unwrap_or_else(|| panic!("{}: `# status.{rest}` has no `: VALUE`", block.place));
            (field.trim().to_string(), value.trim().to_string())
        })
        .collect()
}

/// A document without `kind` must be a spec fragment (`spec:` and nothing else): it
/// becomes the spec of a LiveStream, with a bucket when the fragment names none.
fn fragment_as_live_stream(place: &str, fragment: Value) -> Value {
    let Some(Value::Object(spec)) = fragment.as_object().filter(|o| o.len() == 1).and_then(|o| o.get("spec")).cloned()
    else {
        panic!("{place}: a YAML document without kind that is not a `spec:` fragment: {fragment}");
    };
    let mut spec = spec;
    spec.entry("storage").or_insert_with(|| json!({"bucket": "docs-fragment"}));
    json!({
        "apiVersion": "livestream.dev/v1alpha1",
        "kind": "LiveStream",
        "metadata": {"name": "fragment"},
        "spec": spec,
    })
}

#[tokio::test]
async fn every_manifest_in_the_docs_is_accepted_as_written() {
    let env = KubeEnv::shared();
    let client = env.client().await;
    env.install_crd(&client, &crd()).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());

    let mut streams_in_storage_doc = 0;
    let yaml_blocks: Vec<Block> = doc_blocks().into_iter().filter(|b| b.lang == "yaml").collect();
    for (index, block) in yaml_blocks.iter().enumerate() {
        // A namespace per block: the docs reuse names from one setup to the next.
        let namespace = format!("docs-{index}");
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("namespace");
        namespaces.create(&PostParams::default(), &ns).await.expect("create a namespace");
        let stream = apply_block(&client, &namespace, block).await;
        if stream.is_some() && block.file == STORAGE_DOC {
            streams_in_storage_doc += 1;
        }
        let expected = status_comments(block);
        if !expected.is_empty() {
            let name = stream.unwrap_or_else(|| panic!("{}: status comments without a LiveStream", block.place));
            check_urls(&client, &namespace, &name, block, expected).await;
        }
    }
    assert!(
        streams_in_storage_doc >= 5,
        "docs/{STORAGE_DOC} should hold a LiveStream for AWS, MinIO (two), R2 and GCS; found {streams_in_storage_doc}"
    );
}

/// Applies the manifests of a block as written; returns the name of its LiveStream.
async fn apply_block(client: &Client, namespace: &str, block: &Block) -> Option<String> {
    let params = PatchParams::apply("livestream-docs").validation(ValidationDirective::Strict);
    let mut stream = None;
    for document in serde_yaml::Deserializer::from_str(&block.text) {
        let value: Value = serde::Deserialize::deserialize(document)
            .unwrap_or_else(|e| panic!("{}: not a YAML document: {e}", block.place));
        let value = match value.get("kind") {
            Some(_) => value,
            None => fragment_as_live_stream(&block.place, value),
        };
        let kind = value["kind"].as_str().unwrap_or_default();
        let name = value["metadata"]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: a {kind} without metadata.name", block.place))
            .to_string();
        let applied = match kind {
            "LiveStream" => {
                assert!(
                    stream.is_none(),
                    "{}: one LiveStream per block, so that its comments are its own",
                    block.place
                );
                stream = Some(name.clone());
                let resource = ApiResource::erase::<LiveStream>(&());
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
                api.patch(&name, &params, &Patch::Apply(&value)).await.map(drop)
            }
            "Secret" => {
                let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
                api.patch(&name, &params, &Patch::Apply(&value)).await.map(drop)
            }
            other => panic!("{}: a {other}, which this test does not apply yet: teach it", block.place),
        };
        applied.unwrap_or_else(|e| panic!("{}: the API server refuses {kind} {name}: {e}", block.place));
    }
    stream
}

/// The URLs of the `# status.FIELD: URL` comments are the ones the operator computes for
/// the stored LiveStream, with the defaults the API server applied.
async fn check_urls(client: &Client, namespace: &str, name: &str, block: &Block, expected: Vec<(String, String)>) {
    let stored = Api::<LiveStream>::namespaced(client.clone(), namespace).get(name).await.expect("get LiveStream");
    for (field, url) in expected {
        let computed = match field.as_str() {
            "playbackUrl" => Some(playback_url(&stored)),
            "posterUrl" => Some(poster_url(&stored)),
            // Without a Service: the docs can only promise the CDN's URL.
            "lowLatencyPlaybackUrl" => low_latency_playback_url(&stored, None, None),
            other => panic!("{}: `# status.{other}` is not a URL this test computes", block.place),
        };
        assert_eq!(computed.as_deref(), Some(url.as_str()), "{}: status.{field} of LiveStream {name}", block.place);
    }
}

// ----- JSON documents -----

/// The object `value`, with only `allowed` keys and every `required` one.
fn object<'a>(
    value: &'a Value,
    what: &str,
    allowed: &[&str],
    required: &[&str],
) -> Result<&'a Map<String, Value>, String> {
    let object = value.as_object().ok_or_else(|| format!("{what} is not an object: {value}"))?;
    if let Some(unknown) = object.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(format!("{what} has the field {unknown:?}, which is none of {allowed:?}"));
    }
    if let Some(missing) = required.iter().find(|key| !object.contains_key(**key)) {
        return Err(format!("{what} lacks {missing:?}"));
    }
    Ok(object)
}

fn array<'a>(value: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
    match value.as_array() {
        Some(items) if !items.is_empty() => Ok(items),
        _ => Err(format!("{what} is not a non-empty array: {value}")),
    }
}

/// A non-empty array of strings, each one of `allowed` unless that is empty.
fn strings<'a>(value: Option<&'a Value>, what: &str, allowed: &[&str]) -> Result<Vec<&'a str>, String> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let items = array(value, what)?
        .iter()
        .map(|item| item.as_str().ok_or_else(|| format!("{what} holds a non-string: {item}")))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(bad) = items.iter().find(|item| !allowed.is_empty() && !allowed.contains(item)) {
        return Err(format!("{what} holds {bad:?}, which is none of {allowed:?}"));
    }
    Ok(items)
}

fn seconds(value: Option<&Value>, what: &str) -> Result<(), String> {
    match value {
        None => Ok(()),
        Some(v) if v.as_u64().is_some() => Ok(()),
        Some(v) => Err(format!("{what} is not a whole number of seconds: {v}")),
    }
}

/// Browsers fetch playlists and media with GET.
fn allows_get(methods: &[&str], what: &str) -> Result<(), String> {
    if methods.contains(&"GET") { Ok(()) } else { Err(format!("{what} does not allow GET, which players use")) }
}

const S3_METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "HEAD"];

/// `aws s3api put-bucket-cors --cors-configuration`: `{"CORSRules": [...]}`.
fn s3_cors(value: &Value) -> Result<(), String> {
    let document = object(value, "the CORS configuration", &["CORSRules"], &["CORSRules"])?;
    for rule in array(&document["CORSRules"], "CORSRules")? {
        let fields = ["ID", "AllowedOrigins", "AllowedMethods", "AllowedHeaders", "ExposeHeaders", "MaxAgeSeconds"];
        let rule = object(rule, "a CORS rule", &fields, &["AllowedOrigins", "AllowedMethods"])?;
        strings(rule.get("AllowedOrigins"), "AllowedOrigins", &[])?;
        allows_get(&strings(rule.get("AllowedMethods"), "AllowedMethods", S3_METHODS)?, "AllowedMethods")?;
        strings(rule.get("AllowedHeaders"), "AllowedHeaders", &[])?;
        strings(rule.get("ExposeHeaders"), "ExposeHeaders", &[])?;
        seconds(rule.get("MaxAgeSeconds"), "MaxAgeSeconds")?;
    }
    Ok(())
}

/// `wrangler r2 bucket cors set --file` (the R2 API's form): `{"rules": [...]}`.
fn r2_cors(value: &Value) -> Result<(), String> {
    let document = object(value, "the CORS policy", &["rules"], &["rules"])?;
    for rule in array(&document["rules"], "rules")? {
        let rule = object(rule, "a rule", &["id", "allowed", "exposeHeaders", "maxAgeSeconds"], &["allowed"])?;
        let allowed = object(&rule["allowed"], "allowed", &["origins", "methods", "headers"], &["origins", "methods"])?;
        strings(allowed.get("origins"), "allowed.origins", &[])?;
        allows_get(&strings(allowed.get("methods"), "allowed.methods", S3_METHODS)?, "allowed.methods")?;
        strings(allowed.get("headers"), "allowed.headers", &[])?;
        strings(rule.get("exposeHeaders"), "exposeHeaders", &[])?;
        seconds(rule.get("maxAgeSeconds"), "maxAgeSeconds")?;
    }
    Ok(())
}

/// `gcloud storage buckets update --cors-file` (the JSON API's `cors`): a list of rules.
fn gcs_cors(value: &Value) -> Result<(), String> {
    for rule in array(value, "the CORS configuration")? {
        let rule =
            object(rule, "a rule", &["origin", "method", "responseHeader", "maxAgeSeconds"], &["origin", "method"])?;
        strings(rule.get("origin"), "origin", &[])?;
        allows_get(&strings(rule.get("method"), "method", &[])?, "method")?;
        strings(rule.get("responseHeader"), "responseHeader", &[])?;
        seconds(rule.get("maxAgeSeconds"), "maxAgeSeconds")?;
    }
    Ok(())
}

/// An IAM or bucket policy of S3 actions.
fn policy(value: &Value) -> Result<(), String> {
    let document = object(value, "the policy", &["Version", "Id", "Statement"], &["Version", "Statement"])?;
    if document["Version"] != "2012-10-17" {
        return Err(format!("Version is {}, not \"2012-10-17\"", document["Version"]));
    }
    for statement in array(&document["Statement"], "Statement")? {
        let fields = ["Sid", "Effect", "Principal", "Action", "Resource", "Condition"];
        let statement = object(statement, "a statement", &fields, &["Effect", "Action", "Resource"])?;
        strings(Some(&json!([statement["Effect"]])), "Effect", &["Allow", "Deny"])?;
        for field in ["Action", "Resource"] {
            let one_or_many = match &statement[field] {
                Value::String(_) => json!([statement[field]]),
                other => other.clone(),
            };
            let items = strings(Some(&one_or_many), field, &[])?;
            let prefix = if field == "Action" { "s3:" } else { "arn:aws:s3:::" };
            if let Some(bad) = items.iter().find(|item| !item.starts_with(prefix)) {
                return Err(format!("{field} {bad:?} does not start with {prefix:?}"));
            }
        }
    }
    Ok(())
}

/// A check of a JSON document: `Err` says what is wrong with it.
type Check = fn(&Value) -> Result<(), String>;

const CHECKS: &[(&str, Check)] = &[
    ("s3-cors", s3_cors),
    ("r2-cors", r2_cors),
    ("gcs-cors", gcs_cors),
    ("iam-policy", policy),
    ("s3-bucket-policy", policy),
    ("minio-policy-mc-download", policy),
    ("minio-policy-get-only", policy),
];

#[test]
fn every_json_block_parses_and_has_the_shape_its_provider_takes() {
    let mut seen = BTreeSet::new();
    for block in doc_blocks().iter().filter(|b| b.lang == "json") {
        let value: Value =
            serde_json::from_str(&block.text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", block.place));
        let Some(kind) = &block.check else { continue };
        let (_, check) = CHECKS
            .iter()
            .find(|(name, _)| name == kind)
            .unwrap_or_else(|| panic!("{}: no check is called {kind:?}", block.place));
        check(&value).unwrap_or_else(|problem| panic!("{}: {problem}", block.place));
        seen.insert(kind.clone());
    }
    for (kind, _) in CHECKS {
        assert!(seen.contains(*kind), "no block of docs/ is marked `<!-- check: {kind} -->`");
    }
    // The checks catch what they should.
    assert!(s3_cors(&json!({"CORSRules": [{"AllowedOrigin": ["*"], "AllowedMethods": ["GET"]}]})).is_err());
    assert!(r2_cors(&json!([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}])).is_err());
    assert!(gcs_cors(&json!([{"origin": ["*"], "methods": ["GET"]}])).is_err());
    assert!(policy(&json!({"Version": "2008-10-17", "Statement": []})).is_err());
}

/// The text of the one block marked `<!-- check: KIND -->`.
fn checked_block(kind: &str) -> String {
    let mut blocks = doc_blocks().into_iter().filter(|b| b.check.as_deref() == Some(kind));
    let block = blocks.next().unwrap_or_else(|| panic!("no block of docs/ is marked {kind}"));
    assert!(blocks.next().is_none(), "more than one block of docs/ is marked {kind}");
    block.text
}

// ----- MinIO -----

async fn anonymous_get(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

#[tokio::test]
async fn the_minio_policies_of_the_docs_open_the_playback_prefix() {
    let minio = MinioServer::start().await;
    minio.create_bucket("live-video", false).await;
    let store = minio.store("live-video");
    let objects = [
        ("live/launch/master.m3u8", ObjectKind::MasterPlaylist),
        ("live/launch/720p/42.m4s", ObjectKind::Segment(SegmentFormat::Fmp4)),
        ("live-archive/launch/master.m3u8", ObjectKind::VodPlaylist),
        ("private/notes.m3u8", ObjectKind::MediaPlaylist),
    ];
    for (key, kind) in objects {
        store.put(key, Bytes::from_static(b"#EXTM3U\n"), kind).await.unwrap_or_else(|e| panic!("put {key}: {e}"));
    }
    let bucket = format!("{}/live-video", minio.endpoint());
    let status = |path: &'static str| {
        let url = format!("{bucket}/{path}");
        async move { anonymous_get(&url).await.status().as_u16() }
    };

    // Nothing is public before a policy says so.
    assert_eq!(status("live/launch/master.m3u8").await, 403);

    // What `mc anonymous set download myminio/live-video/live` sets, as the docs show it.
    let set_policy = |kind: &'static str| {
        let client = store.client().clone();
        async move {
            client.put_bucket_policy().bucket("live-video").policy(checked_block(kind)).send().await.unwrap_or_else(
                |e| panic!("MinIO refuses the policy marked {kind}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)),
            );
        }
    };
    set_policy("minio-policy-mc-download").await;
    let response = anonymous_get(&format!("{bucket}/live/launch/master.m3u8")).await;
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    assert_eq!(header("content-type").as_deref(), Some("application/vnd.apple.mpegurl"));
    assert_eq!(header("cache-control").as_deref(), Some("max-age=1"));
    assert_eq!(status("live/launch/720p/42.m4s").await, 200);
    assert_eq!(status("live-archive/launch/master.m3u8").await, 200, "the docs warn that `live*` opens this too");
    assert_eq!(status("private/notes.m3u8").await, 403);
    assert_eq!(status("?list-type=2&prefix=live").await, 200, "the docs warn that anyone may list the prefix");

    // The tighter policy the docs recommend: the playback prefix, read-only, not listable.
    set_policy("minio-policy-get-only").await;
    assert_eq!(status("live/launch/master.m3u8").await, 200);
    assert_eq!(status("live/launch/720p/42.m4s").await, 200);
    assert_eq!(status("live-archive/launch/master.m3u8").await, 403);
    assert_eq!(status("private/notes.m3u8").await, 403);
    assert_eq!(status("?list-type=2&prefix=live").await, 403);
}

#[tokio::test]
async fn minio_cors_is_server_wide_as_the_docs_say() {
    let minio = MinioServer::start().await;
    minio.create_bucket("live-video", true).await;
    let store = minio.store("live-video");
    store.put("live/launch/master.m3u8", Bytes::from_static(b"#EXTM3U\n"), ObjectKind::MasterPlaylist).await.unwrap();

    // The default `cors_allow_origin` is `*`: any player's origin is allowed.
    let response = reqwest::Client::new()
        .get(format!("{}/live-video/live/launch/master.m3u8", minio.endpoint()))
        .header("Origin", "https://player.example.com")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    let allowed = response.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok());
    assert!(matches!(allowed, Some("*" | "https://player.example.com")), "{:?}", response.headers());

    // No per-bucket CORS on this MinIO: when this fails, MinIO has learnt it, and the docs'
    // MinIO CORS section should say how to use it.
    let rule = aws_sdk_s3::types::CorsRule::builder()
        .allowed_origins("https://player.example.com")
        .allowed_methods("GET")
        .build()
        .expect("CORS rule");
    let configuration =
        aws_sdk_s3::types::CorsConfiguration::builder().cors_rules(rule).build().expect("CORS configuration");
    let refused = store
        .client()
        .put_bucket_cors()
        .bucket("live-video")
        .cors_configuration(configuration)
        .send()
        .await
        .expect_err("MinIO took a bucket CORS configuration");
    let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&refused).map(str::to_string);
    assert_eq!(code.as_deref(), Some("NotImplemented"), "{}", aws_sdk_s3::error::DisplayErrorContext(&refused));
}

#[tokio::test]
async fn minio_refuses_conditional_writes_that_do_not_hold() {
    let minio = MinioServer::start().await;
    minio.create_bucket("live-video", false).await;
    let store = minio.store("live-video");
    let key = "live/launch/720p/index.m3u8";
    let kind = ObjectKind::MediaPlaylist;
    let first = store.put_if(key, Bytes::from_static(b"#EXTM3U\n1"), kind, &Expect::Absent).await.expect("create");
    let conflict = store.put_if(key, Bytes::from_static(b"#EXTM3U\nx"), kind, &Expect::Absent).await;
    assert!(matches!(conflict, Err(StoreError::Conflict { .. })), "If-None-Match: * over an object: {conflict:?}");
    store.put_if(key, Bytes::from_static(b"#EXTM3U\n2"), kind, &Expect::Version(first.clone())).await.expect("update");
    let stale = store.put_if(key, Bytes::from_static(b"#EXTM3U\n3"), kind, &Expect::Version(first)).await;
    assert!(matches!(stale, Err(StoreError::Conflict { .. })), "If-Match with a stale ETag: {stale:?}");
}

// ----- links -----

/// GitHub's anchor of a heading: lowercase, punctuation dropped, spaces as dashes.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a document's headings (outside code blocks).
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && let Some(heading) = line.strip_prefix('#') {
            let base = anchor(heading.trim_start_matches('#'));
            let mut name = base.clone();
            let mut n = 0;
            while !anchors.insert(name.clone()) {
                n += 1;
                name = format!("{base}-{n}");
            }
        }
    }
    anchors
}

/// The targets of the Markdown links `[text](target)` of a document, outside code blocks
/// and code spans.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut prose = String::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code {
            // Every other piece between backticks is a code span.
            prose.extend(line.split('`').step_by(2).flat_map(|piece| [piece, " "]));
            prose.push('\n');
        }
    }
    prose
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(target, _)| target.to_string()))
        .filter(|target| !target.contains(char::is_whitespace))
        .collect()
}

#[test]
fn links_between_the_docs_reach_their_headings() {
    let mut files = doc_files();
    files.push(repository().join("README.md"));
    for file in files {
        let markdown = read(&file);
        for target in link_targets(&markdown) {
            if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let linked = if path.is_empty() { file.clone() } else { file.parent().unwrap().join(path) };
            assert!(linked.exists(), "{}: the link {target} names a missing file", file.display());
            if !fragment.is_empty() {
                let headings = anchors(&read(&linked));
                assert!(
                    headings.contains(fragment),
                    "{}: the link {target} names no heading of {}; its headings: {headings:?}",
                    file.display(),
                    linked.display()
                );
            }
        }
    }
}
