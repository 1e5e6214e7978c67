//! The kubelet of the node: cgroupfs driver on the cgroup v1 layout of these machines
//! (`failCgroupV1: false`), containerd's CRI endpoint, every directory it writes in the run
//! directory, its serving certificate and client credentials from the cluster's PKI, and
//! eviction and image garbage collection thresholds low enough that a busy CI disk does
//! not evict the pods under test.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::super::process::{ManagedProcess, free_port, testenv_bin};

/// What the kubelet needs from the rest of the cluster.
pub struct KubeletSettings<'a> {
    pub dir: &'a Path,
    pub node_name: &'a str,
    pub node_ip: Ipv4Addr,
    pub kubeconfig: &'a Path,
    pub ca_cert: &'a Path,
    pub serving_cert: (&'a Path, &'a Path),
    pub runtime_endpoint: &'a str,
}

/// A kubelet, restartable on the same directories and configuration.
pub struct Kubelet {
    process: Option<ManagedProcess>,
    args: Vec<String>,
    log: PathBuf,
}

impl Kubelet {
    pub fn start(settings: &KubeletSettings<'_>) -> Self {
        let dir = settings.dir;
        std::fs::create_dir_all(dir.join("root")).expect("create the kubelet root directory");
        let config = dir.join("config.yaml");
        std::fs::write(&config, config_yaml(settings)).expect("write the kubelet configuration");
        let args = vec![
            format!("--config={}", config.display()),
            format!("--kubeconfig={}", settings.kubeconfig.display()),
            format!("--root-dir={}", dir.join("root").display()),
            format!("--cert-dir={}", dir.join("pki").display()),
            format!("--hostname-override={}", settings.node_name),
            format!("--node-ip={}", settings.node_ip),
            "--v=1".into(),
        ];
        let mut kubelet = Self { process: None, args, log: dir.join("kubelet.log") };
        kubelet.spawn();
        kubelet
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(testenv_bin("kubelet"));
        cmd.args(&self.args);
        self.process = Some(ManagedProcess::spawn("kubelet", cmd, &self.log));
    }

    /// Stops the kubelet (SIGTERM) and starts it again; the pods keep running meanwhile.
    pub fn restart(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.terminate(std::time::Duration::from_secs(10));
        }
        self.spawn();
    }

    pub fn assert_running(&mut self) {
        if let Some(process) = self.process.as_mut() {
            process.assert_running();
        }
    }

    pub fn log_tail(&self) -> String {
        self.process.as_ref().map(|p| p.log_tail(6000)).unwrap_or_default()
    }

    /// Stops the kubelet at once (SIGKILL).
    pub fn kill(&mut self) {
        self.process = None;
    }
}

fn config_yaml(s: &KubeletSettings<'_>) -> String {
    let dir = s.dir.display();
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: true
containerRuntimeEndpoint: {endpoint}
address: 0.0.0.0
port: {port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {healthz}
tlsCertFile: {cert}
tlsPrivateKeyFile: {key}
rotateCertificates: false
serverTLSBootstrap: false
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: {ca}
authorization:
  mode: AlwaysAllow
podLogsDir: {dir}/pod-logs
volumePluginDir: {dir}/volume-plugins
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
failSwapOn: false
oomScoreAdj: 0
protectKernelDefaults: false
makeIPTablesUtilChains: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
  imagefs.inodesFree: 1%
evictionPressureTransitionPeriod: 30s
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
fileCheckFrequency: 5s
shutdownGracePeriod: 0s
"#,
        endpoint = s.runtime_endpoint,
        port = free_port(),
        healthz = free_port(),
        cert = s.serving_cert.0.display(),
        key = s.serving_cert.1.display(),
        ca = s.ca_cert.display(),
    )
}
