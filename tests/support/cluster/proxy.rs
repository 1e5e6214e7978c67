//! kube-proxy in nftables mode: Services' ClusterIPs and NodePorts on the node's address,
//! every rule in its own `kube-proxy` tables (one `nft delete table` removes them). It
//! leaves the conntrack sysctls as they are (`maxPerCore: 0`, zero timeouts).

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use super::super::process::{ManagedProcess, free_port, testenv_bin};
use super::network::POD_CIDR;

pub fn start(dir: &Path, kubeconfig: &Path, node_name: &str, node_ip: Ipv4Addr) -> ManagedProcess {
    std::fs::create_dir_all(dir).expect("create the kube-proxy directory");
    let config = dir.join("config.yaml");
    let text = format!(
        r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection:
  kubeconfig: {kubeconfig}
hostnameOverride: {node_name}
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:{healthz}
metricsBindAddress: 127.0.0.1:{metrics}
clusterCIDR: {POD_CIDR}
nodePortAddresses: ["{node_ip}/32"]
oomScoreAdj: 0
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
"#,
        kubeconfig = kubeconfig.display(),
        healthz = free_port(),
        metrics = free_port(),
    );
    std::fs::write(&config, text).expect("write the kube-proxy configuration");
    let mut cmd = Command::new(testenv_bin("kube-proxy"));
    cmd.arg(format!("--config={}", config.display())).arg("--v=0");
    ManagedProcess::spawn("kube-proxy", cmd, &dir.join("kube-proxy.log"))
}
