//! Helm against a test API server: the helm binary of scripts/testenv.sh with its cache,
//! configuration and data in a directory of the caller's (never the user's home), and the
//! project's chart installed the way users install it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cluster::IMAGE;
use super::process::testenv_bin;

/// The project's chart.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/livestream-operator")
}

/// `helm` with `kubeconfig` and its homes under `home`.
pub fn helm(kubeconfig: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(testenv_bin("helm"));
    cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    cmd
}

/// Runs a helm command; its output, or an error with what helm said.
pub fn run(mut cmd: Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("run helm: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The `--set` values that make the chart run the image loaded into the cluster's node.
pub fn image_values() -> Vec<String> {
    let (repository, tag) = IMAGE.rsplit_once(':').expect("the image has a tag");
    vec!["--set".into(), format!("image.repository={repository}"), "--set".into(), format!("image.tag={tag}")]
}

/// `helm install RELEASE CHART -n NAMESPACE --create-namespace --wait` with the cluster's
/// image and `values` (`KEY=VALUE`, as `--set`).
pub fn install_operator(
    kubeconfig: &Path,
    home: &Path,
    release: &str,
    namespace: &str,
    values: &[&str],
) -> Result<String, String> {
    let mut cmd = helm(kubeconfig, home);
    cmd.args(["install", release])
        .arg(chart_dir())
        .args(["--namespace", namespace, "--create-namespace", "--wait", "--timeout", "180s"])
        .args(image_values());
    for value in values {
        cmd.args(["--set", value]);
    }
    run(cmd)
}
