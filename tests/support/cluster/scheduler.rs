//! kube-scheduler: pods are placed by the real scheduler, never bound by the tests.

use std::path::Path;
use std::process::Command;

use super::super::process::{ManagedProcess, free_port, testenv_bin};

pub fn start(dir: &Path, kubeconfig: &Path) -> ManagedProcess {
    std::fs::create_dir_all(dir).expect("create the scheduler directory");
    let mut cmd = Command::new(testenv_bin("kube-scheduler"));
    cmd.args([
        &format!("--kubeconfig={}", kubeconfig.display()),
        &format!("--authentication-kubeconfig={}", kubeconfig.display()),
        &format!("--authorization-kubeconfig={}", kubeconfig.display()),
        "--bind-address=127.0.0.1",
        &format!("--secure-port={}", free_port()),
        &format!("--cert-dir={}", dir.join("certs").display()),
        "--leader-elect=false",
        "--v=0",
    ]);
    ManagedProcess::spawn("kube-scheduler", cmd, &dir.join("kube-scheduler.log"))
}
