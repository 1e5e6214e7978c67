//! A real single-node Kubernetes cluster for tests and for `scripts/cluster`: etcd,
//! kube-apiserver and kube-controller-manager (`support::kube`), kube-scheduler, containerd
//! with runc, a bridge CNI network, the kubelet and kube-proxy, all from the pinned builds of
//! scripts/testenv.sh, on free ports and in one run directory. Pods are scheduled, run the
//! project's image (built from its Dockerfile and loaded into containerd: no registry),
//! are probed by the kubelet and reached through kube-proxy. There is no cluster DNS:
//! ClusterIPs work, Service names do not resolve.
//!
//! Stopping the cluster (dropping it, or the exit of a test binary for the shared one)
//! removes everything it started or changed; so does the start of the next cluster after a
//! run that died hard, and `scripts/cluster down` (see `cleanup`).

pub mod cleanup;
pub mod containerd;
pub mod image;
pub mod kubelet;
pub mod network;
pub mod proxy;
pub mod scheduler;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::kube::{KubeEnv, KubeEnvOptions, KubeHandle, NodeAccess};
use super::process::{ManagedProcess, wait_for};
use containerd::Containerd;
use kubelet::{Kubelet, KubeletSettings};

/// The node's name.
pub const NODE_NAME: &str = "livestream-node";
/// The image every pod of the project runs.
pub use image::IMAGE;

/// How long the node may take to turn Ready once its components run.
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(90);

/// What to start the cluster with.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The `livestream` binary that the image carries (`CARGO_BIN_EXE_livestream` in tests).
    pub binary: PathBuf,
}

/// A running cluster. Dropping it stops everything and leaves the machine as it was.
pub struct Cluster {
    dir: PathBuf,
    node_ip: Ipv4Addr,
    kube: Option<KubeEnv>,
    containerd: Option<Containerd>,
    kubelet: Option<Kubelet>,
    proxy: Option<ManagedProcess>,
    scheduler: Option<ManagedProcess>,
    timings: Vec<(&'static str, Duration)>,
}

/// What a test needs to reach a running cluster.
#[derive(Clone, Debug)]
pub struct ClusterHandle {
    pub kube: KubeHandle,
    pub node_ip: Ipv4Addr,
    pub dir: PathBuf,
}

impl Cluster {
    /// Starts the cluster and waits until the node is Ready with the image loaded.
    pub fn start(options: &ClusterOptions) -> Result<Self, String> {
        assert!(
            // SAFETY: geteuid(2) has no failure mode.
            unsafe { libc::geteuid() } == 0,
            "the cluster runs pods with runc, network namespaces and cgroups: run the tests as root"
        );
        let started = Instant::now();
        let dir = cleanup::claim_run_dir()?;
        let node_ip = network::node_ip()?;
        let mut cluster = Self {
            dir: dir.clone(),
            node_ip,
            kube: None,
            containerd: None,
            kubelet: None,
            proxy: None,
            scheduler: None,
            timings: Vec::new(),
        };
        network::save_sysctls(&dir);

        // The control plane comes up while containerd loads the images.
        let kube_dir = tempfile::Builder::new().prefix("kube-").tempdir_in(&dir).map_err(|e| e.to_string())?;
        let control_plane = std::thread::spawn(move || {
            let started = Instant::now();
            // Issuer discovery: MinIO's STS verifies the projected tokens of worker pods.
            let options = KubeEnvOptions {
                controller_manager: true,
                node: Some(NodeAccess { name: NODE_NAME, ip: node_ip }),
                issuer_discovery: true,
            };
            (KubeEnv::start_in(kube_dir, options), started.elapsed())
        });

        let step = Instant::now();
        let cni_conf_dir = dir.join("cni/net.d");
        network::write_cni_config(&cni_conf_dir, &dir.join("cni/ipam"));
        let containerd = Containerd::start(&dir.join("containerd"), &cni_conf_dir);
        containerd.import(&image::pause_archive())?;
        cluster.timings.push(("containerd with the pause image", step.elapsed()));
        let step = Instant::now();
        let loaded = image::build_and_load(&options.binary, &dir, &containerd);
        cluster.containerd = Some(containerd);
        loaded?;
        cluster.timings.push(("image built and loaded", step.elapsed()));

        let (kube, kube_took) = control_plane.join().map_err(|_| "the control plane failed to start".to_string())?;
        cluster.timings.push(("control plane (in parallel)", kube_took));
        let step = Instant::now();
        let node_kubeconfig = kube.node_kubeconfig().expect("a node kubeconfig");
        let serving_cert = kube.node_serving_cert().expect("a node serving certificate");
        let containerd = cluster.containerd.as_ref().expect("containerd");
        cluster.kubelet = Some(Kubelet::start(&KubeletSettings {
            dir: &dir.join("kubelet"),
            node_name: NODE_NAME,
            node_ip,
            kubeconfig: &node_kubeconfig,
            ca_cert: kube.ca_cert(),
            serving_cert,
            runtime_endpoint: &containerd.endpoint(),
        }));
        cluster.proxy = Some(proxy::start(&dir.join("kube-proxy"), kube.kubeconfig(), NODE_NAME, node_ip));
        cluster.scheduler = Some(scheduler::start(&dir.join("kube-scheduler"), kube.kubeconfig()));
        cluster.kube = Some(kube);
        cluster.wait_node_ready()?;
        cluster.timings.push(("node Ready", step.elapsed()));
        cluster.timings.push(("cluster start in all", started.elapsed()));
        eprintln!("cluster: {}", cluster.timings_text());
        Ok(cluster)
    }

    /// One cluster shared by every test of a test binary, started on first use with the
    /// binary's own `livestream` and stopped when the binary exits. Tests that share it
    /// work in namespaces of their own.
    pub fn shared() -> &'static ClusterHandle {
        static HANDLE: OnceLock<ClusterHandle> = OnceLock::new();
        HANDLE.get_or_init(|| {
            let options = ClusterOptions { binary: super::media::livestream_bin() };
            let cluster = Self::start(&options).unwrap_or_else(|e| panic!("start the cluster: {e}"));
            let handle = cluster.handle();
            *shared_slot() = Some(cluster);
            // Statics are never dropped: stop the cluster when the binary exits.
            extern "C" fn stop_shared() {
                if let Ok(mut slot) = SHARED.lock() {
                    slot.take();
                }
            }
            // SAFETY: registers a plain function without arguments.
            unsafe {
                libc::atexit(stop_shared);
            }
            handle
        })
    }

    pub fn handle(&self) -> ClusterHandle {
        ClusterHandle {
            kube: self.kube.as_ref().expect("the control plane").handle(),
            node_ip: self.node_ip,
            dir: self.dir.clone(),
        }
    }

    pub fn kube(&self) -> &KubeEnv {
        self.kube.as_ref().expect("the control plane")
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the kubelet (SIGTERM) and starts it again; waits until the new kubelet has
    /// renewed the node's Lease and the node is Ready.
    pub fn restart_kubelet(&mut self) -> Result<(), String> {
        let restarted = jiff::Timestamp::now();
        self.kubelet.as_mut().expect("the kubelet").restart();
        let renew_time = ["get", "lease", "-n", "kube-node-lease", NODE_NAME, "-o", "jsonpath={.spec.renewTime}"];
        self.poll_node("the restarted kubelet to renew the node's Lease", &renew_time, |renewed| {
            renewed.parse::<jiff::Timestamp>().is_ok_and(|renewed| renewed > restarted)
        })?;
        self.wait_node_ready()
    }

    /// Stops kube-apiserver (SIGTERM) and starts it again on the same port and data.
    pub fn restart_apiserver(&mut self) {
        self.kube.as_mut().expect("the control plane").restart_apiserver();
    }

    /// Kills a container's processes (SIGKILL through containerd), as an OOM kill or a
    /// crash would: the kubelet sees it exit and restarts it per the pod's policy.
    /// `container_id` is the pod status' `containerID` (`containerd://ID`) or the bare ID.
    pub fn kill_container(&self, container_id: &str) -> Result<(), String> {
        let id = container_id.strip_prefix("containerd://").unwrap_or(container_id);
        let containerd = self.containerd.as_ref().expect("containerd");
        let out = containerd
            .ctr()
            .args(["tasks", "kill", "--all", "--signal", "SIGKILL", id])
            .output()
            .map_err(|e| format!("run ctr: {e}"))?;
        if !out.status.success() {
            return Err(format!("ctr tasks kill {id}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(())
    }

    /// The start-up durations, for the log.
    pub fn timings_text(&self) -> String {
        self.timings
            .iter()
            .map(|(what, took)| format!("{what} {:.1}s", took.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The resident memory of the cluster's processes and of its pods, in MiB, by name.
    pub fn memory_mib(&self) -> Vec<(String, u64)> {
        let needle = self.dir.display().to_string();
        let mut out: Vec<(String, u64)> = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else { return out };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if !String::from_utf8_lossy(&cmdline).contains(&needle) {
                continue;
            }
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let name = status.lines().find_map(|l| l.strip_prefix("Name:")).unwrap_or("?").trim().to_string();
            let rss_kib: u64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
            match out.iter_mut().find(|(n, _)| *n == name) {
                Some((_, total)) => *total += rss_kib / 1024,
                None => out.push((name, rss_kib / 1024)),
            }
        }
        let pods = std::fs::read_to_string("/sys/fs/cgroup/memory/kubepods/memory.usage_in_bytes")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        out.push(("pods (kubepods cgroup)".into(), pods / (1024 * 1024)));
        out.sort_by_key(|entry| std::cmp::Reverse(entry.1));
        out
    }

    /// The ends of the node's logs, for failure messages.
    pub fn logs_tail(&self) -> String {
        let kubelet = self.kubelet.as_ref().map(Kubelet::log_tail).unwrap_or_default();
        let containerd = self.containerd.as_ref().map(Containerd::log_tail).unwrap_or_default();
        format!("--- kubelet log:\n{kubelet}\n--- containerd log:\n{containerd}")
    }

    fn wait_node_ready(&mut self) -> Result<(), String> {
        let ready = ["get", "node", NODE_NAME, "-o", r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#];
        self.poll_node("the node to be Ready", &ready, |status| status == "True")
    }

    /// Polls `kubectl ARGS` until `accept` takes its output, while the kubelet runs.
    fn poll_node(&mut self, what: &str, args: &[&str], accept: impl Fn(&str) -> bool) -> Result<(), String> {
        let kube = self.kube().handle();
        let deadline = Instant::now() + NODE_READY_TIMEOUT;
        loop {
            if let Some(kubelet) = self.kubelet.as_mut() {
                kubelet.assert_running();
            }
            let out = kube.kubectl().args(args).output();
            if out.is_ok_and(|o| o.status.success() && accept(String::from_utf8_lossy(&o.stdout).trim())) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("timed out after {NODE_READY_TIMEOUT:?} waiting for {what}\n{}", self.logs_tail()));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stops the cluster the way a killed owner does (for the test of the clean-up): its own
    /// processes die at once, as the parent-death signal kills them, and nothing else is
    /// removed: shims, containers, mounts, the bridge, rules, cgroups and files stay.
    /// Returns the run directory.
    pub fn die_hard(mut self) -> PathBuf {
        self.kubelet = None;
        self.proxy = None;
        self.scheduler = None;
        self.kube = None;
        self.containerd = None;
        let dir = self.dir.clone();
        std::mem::forget(self);
        dir
    }

    fn teardown(&mut self) {
        let memory: Vec<String> = self.memory_mib().iter().map(|(name, mib)| format!("{name} {mib}")).collect();
        eprintln!("cluster: resident memory in MiB at the end: {}", memory.join(", "));
        let started = Instant::now();
        // The node first (nothing restarts pods), then the control plane, then containerd;
        // the sweep kills what is left (shims, containers) and removes every trace.
        if let Some(mut kubelet) = self.kubelet.take() {
            kubelet.kill();
        }
        self.proxy = None;
        self.scheduler = None;
        self.kube = None;
        self.containerd = None;
        cleanup::sweep(&self.dir);
        eprintln!("cluster: stopped and removed in {:.1}s", started.elapsed().as_secs_f64());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.teardown();
    }
}

static SHARED: Mutex<Option<Cluster>> = Mutex::new(None);

fn shared_slot() -> MutexGuard<'static, Option<Cluster>> {
    SHARED.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ClusterHandle {
    /// Runs `f` on the shared cluster itself (faults: restarting its components).
    pub fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        let mut slot = shared_slot();
        f(slot.as_mut().expect("the shared cluster is running"))
    }

    /// `kubectl` with the admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        self.kube.kubectl()
    }

    /// The ends of the node's logs, for failure messages.
    pub fn logs_tail(&self) -> String {
        self.with_cluster(|c| c.logs_tail())
    }

    /// Waits (bounded) for the default ServiceAccount of `namespace`: pods are refused
    /// until kube-controller-manager created it.
    pub fn wait_default_service_account(&self, namespace: &str) {
        wait_for(&format!("the default service account of {namespace}"), Duration::from_secs(30), || {
            let out = self.kubectl().args(["get", "serviceaccount", "default", "-n", namespace]).output().ok()?;
            out.status.success().then_some(())
        });
    }
}
