//! `crds/livestream.yaml` and the Helm chart's copy are what `livestream crd` prints, and
//! `docs/reference.md` what `livestream reference` prints, byte for byte: the Rust types
//! are the one source, the files are generated from them.

use std::process::Command;

/// The generated CRD files, relative to the repository root. The chart carries its own copy
/// so that it is complete on its own (`helm package`); its template adds only metadata.
const CRD_FILES: [&str; 2] = ["crds/livestream.yaml", "charts/livestream-operator/files/crds/livestream.yaml"];

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
}

#[test]
fn crd_files_match_livestream_crd_output() {
    let out = Command::new(env!("CARGO_BIN_EXE_livestream")).arg("crd").output().expect("run livestream crd");
    assert!(out.status.success(), "livestream crd failed: {}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).expect("UTF-8 CRD");
    let stale: Vec<&str> = CRD_FILES.into_iter().filter(|path| read(path) != printed).collect();
    assert!(
        stale.is_empty(),
        "{} out of date: regenerate with `cargo run -- crd | tee {} >/dev/null`",
        stale.join(" and "),
        CRD_FILES.join(" ")
    );
}

#[test]
fn the_field_reference_matches_livestream_reference_output() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_livestream")).arg("reference").output().expect("run livestream reference");
    assert!(out.status.success(), "livestream reference failed: {}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).expect("UTF-8 reference");
    assert!(
        read("docs/reference.md") == printed,
        "docs/reference.md out of date: regenerate with `cargo run -- reference > docs/reference.md`"
    );
}

#[test]
fn crd_file_parses_as_a_crd_for_livestreams() {
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_yaml::from_str(&read(CRD_FILES[0])).expect("parse CRD");
    assert_eq!(crd.metadata.name.as_deref(), Some("livestreams.livestream.dev"));
    assert_eq!(crd.spec.scope, "Namespaced");
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(), "status subresource");
}
