//! `crds/livestream.yaml` is what `livestream crd` prints, byte for byte.

use std::process::Command;

#[test]
fn crd_file_matches_livestream_crd_output() {
    let out = Command::new(env!("CARGO_BIN_EXE_livestream")).arg("crd").output().expect("run livestream crd");
    assert!(out.status.success(), "livestream crd failed: {}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).expect("UTF-8 CRD");
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/livestream.yaml"))
        .expect("read crds/livestream.yaml");
    assert!(
        printed == file,
        "crds/livestream.yaml is out of date: regenerate it with `cargo run -- crd > crds/livestream.yaml`"
    );
}

#[test]
fn crd_file_parses_as_a_crd_for_livestreams() {
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/livestream.yaml"))
        .expect("read crds/livestream.yaml");
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_yaml::from_str(&file).expect("parse CRD");
    assert_eq!(crd.metadata.name.as_deref(), Some("livestreams.livestream.dev"));
    assert_eq!(crd.spec.scope, "Namespaced");
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(), "status subresource");
}

#[test]
fn helm_chart_carries_the_same_crd() {
    let root = env!("CARGO_MANIFEST_DIR");
    let chart = std::fs::read_to_string(format!("{root}/charts/livestream-operator/crds/livestream.yaml"))
        .expect("read the chart's CRD");
    let file = std::fs::read_to_string(format!("{root}/crds/livestream.yaml")).expect("read crds/livestream.yaml");
    assert!(
        chart == file,
        "charts/livestream-operator/crds/livestream.yaml is out of date: copy crds/livestream.yaml over it"
    );
}
