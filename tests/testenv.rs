//! The test environment itself: the pinned components run, report their versions, and the
//! controller manager reconciles Deployments and collects garbage on the real API server.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;
use support::kube::{KubeEnv, KubeEnvOptions};
use support::process::testenv_bin;

#[tokio::test]
async fn api_server_reports_the_pinned_version() {
    let env = KubeEnv::shared();
    let client = env.client().await;
    let version = client.apiserver_version().await.expect("GET /version");
    assert_eq!(version.git_version, "v1.37.2");
    assert_eq!((version.major.as_str(), version.minor.as_str()), ("1", "37"));
}

#[test]
fn helm_runs() {
    let out = std::process::Command::new(testenv_bin("helm")).args(["version", "--short"]).output().expect("run helm");
    assert!(out.status.success(), "helm version failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("v4.3.1"), "{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test]
async fn controller_manager_reconciles_deployments_and_collects_garbage() {
    let env = tokio::task::spawn_blocking(|| {
        KubeEnv::start(KubeEnvOptions { controller_manager: true, ..KubeEnvOptions::default() })
    })
    .await
    .expect("start control plane");
    let client = env.client().await;
    let ns = "kcm";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns"))
        .await
        .expect("create namespace");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
            },
        },
    }))
    .expect("deployment");
    deployments.create(&PostParams::default(), &deployment).await.expect("create deployment");

    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let has_rs = async {
        loop {
            let list = replicasets.list(&ListParams::default()).await.expect("list replicasets");
            if let Some(rs) = list.items.into_iter().next() {
                return rs;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let rs = tokio::time::timeout(Duration::from_secs(60), has_rs)
        .await
        .expect("the deployment controller created no ReplicaSet within 60s");
    let owner = rs.metadata.owner_references.unwrap_or_default();
    assert_eq!(owner.first().map(|o| o.kind.as_str()), Some("Deployment"));

    // Deleting the Deployment lets the garbage collector remove the ReplicaSet.
    deployments.delete("web", &DeleteParams::foreground()).await.expect("delete deployment");
    let rs_name = rs.metadata.name.expect("rs name");
    let gone = await_condition(replicasets, &rs_name, kube::runtime::wait::conditions::is_deleted(""));
    tokio::time::timeout(Duration::from_secs(60), gone)
        .await
        .expect("the garbage collector did not delete the ReplicaSet within 60s")
        .expect("watch replicaset");
}
