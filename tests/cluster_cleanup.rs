//! The clean-up of a cluster whose owner died hard (SIGKILL, a panic in a static): the
//! kernel kills the owner's own processes, but containerd's shims, the containers, their
//! mounts and network namespaces, the bridge, kube-proxy's rules, the pod cgroups and the
//! changed sysctls stay. The next cluster's start removes all of it (as does
//! `scripts/cluster down`, with the same code).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::cluster::cleanup::{claim_run_dir, sweep};
use support::cluster::network::BRIDGE;
use support::cluster::{Cluster, ClusterOptions, IMAGE};
use support::stream::kubectl_apply;

/// What a cluster may leave on the machine, as `what_is_left` finds it.
#[derive(Debug, Default, PartialEq)]
struct Traces {
    processes: Vec<String>,
    pod_processes: usize,
    mounts: Vec<String>,
    bridge: bool,
    nftables: bool,
    iptables_rules: usize,
    pod_cgroups: Vec<PathBuf>,
    ip_forward: String,
    dir_exists: bool,
}

fn what_is_left(dir: &Path) -> Traces {
    let needle = dir.display().to_string();
    let mut processes = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            processes.push(cmdline.split(' ').next().unwrap_or_default().to_string());
        }
    }
    let pod_cgroups: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .expect("cgroups")
        .flatten()
        .map(|e| e.path().join("kubepods"))
        .filter(|p| p.exists())
        .collect();
    let pod_processes = pod_cgroups.iter().map(|c| processes_under(c)).sum();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&needle))
        .collect();
    let ok = |program: &str, args: &[&str]| Command::new(program).args(args).output().is_ok_and(|o| o.status.success());
    let iptables = Command::new("iptables-save").output().expect("iptables-save");
    Traces {
        processes,
        pod_processes,
        mounts,
        bridge: ok("ip", &["link", "show", BRIDGE]),
        nftables: ok("nft", &["list", "table", "ip", "kube-proxy"]),
        iptables_rules: String::from_utf8_lossy(&iptables.stdout)
            .lines()
            .filter(|l| l.contains("KUBE-") || l.contains("CNI-"))
            .count(),
        pod_cgroups,
        ip_forward: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("ip_forward").trim().to_string(),
        dir_exists: dir.exists(),
    }
}

/// The processes in a cgroup and its descendants.
fn processes_under(cgroup: &Path) -> usize {
    let own = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default().lines().count();
    let children: usize = std::fs::read_dir(cgroup)
        .map(|entries| {
            entries.flatten().filter(|e| e.path().is_dir()).map(|e| processes_under(&e.path())).sum::<usize>()
        })
        .unwrap_or(0);
    own + children
}

/// Sweeps a run directory when dropped, so that a failed assertion leaves nothing either.
struct SweepOnDrop(PathBuf);

impl Drop for SweepOnDrop {
    fn drop(&mut self) {
        sweep(&self.0);
    }
}

#[test]
fn what_a_killed_cluster_leaves_is_removed_when_the_next_one_starts() {
    let ip_forward_before =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("ip_forward").trim().to_string();
    let options = ClusterOptions { binary: support::media::livestream_bin() };
    let cluster = Cluster::start(&options).unwrap_or_else(|e| panic!("start the cluster: {e}"));
    let handle = cluster.handle();
    kubectl_apply(
        handle.kubectl(),
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sleeper\n  namespace: default\nspec:\n  \
             containers:\n    - name: sleeper\n      image: {IMAGE}\n      command: [sleep, \"3600\"]\n      \
             volumeMounts: [{{name: scratch, mountPath: /scratch}}]\n  volumes: [{{name: scratch, emptyDir: {{}}}}]\n"
        ),
    );
    let wait = handle
        .kubectl()
        .args(["wait", "--for=condition=Ready", "pod/sleeper", "--timeout=90s"])
        .output()
        .expect("kubectl wait");
    assert!(
        wait.status.success(),
        "the pod did not start: {}\n{}",
        String::from_utf8_lossy(&wait.stderr),
        cluster.logs_tail()
    );

    let dir = cluster.die_hard();
    let _sweep = SweepOnDrop(dir.clone());
    let left = what_is_left(&dir);
    assert!(
        left.processes.iter().any(|p| p.contains("containerd-shim")) && left.pod_processes > 0,
        "a hard death leaves the shim and the container running: {left:?}"
    );
    assert!(
        !left.mounts.is_empty() && left.bridge && left.nftables,
        "and the node's mounts, bridge and rules: {left:?}"
    );
    assert_eq!(left.ip_forward, "1", "and the bridge plugin's ip_forward");

    let next = claim_run_dir().unwrap_or_else(|e| panic!("claim a run directory: {e}"));
    let _sweep_next = SweepOnDrop(next.clone());
    let after = what_is_left(&dir);
    sweep(&next);
    let expected = Traces { ip_forward: ip_forward_before, ..Traces::default() };
    assert_eq!(after, expected, "the next start removes every trace of the dead cluster");
    // Nothing of the new, empty run is left either.
    assert!(!next.exists(), "{} is removed", next.display());
}
