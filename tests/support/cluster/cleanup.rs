//! What a cluster leaves on the machine, and its removal: one sweep serves the end of a
//! run (passed or failed), the start of the next one (after a run that died hard: SIGKILL,
//! a panic in a static, a lost terminal) and `scripts/cluster down`.
//!
//! Every file of a cluster lives in its run directory under [`clusters_root`], named by
//! the process that owns it (`owner`: pid and start time). Everything else the node
//! changes is found by what it is: processes whose command line names the run directory
//! (containerd, its shims, the kubelet), the processes in the `kubepods` cgroups (the
//! containers, which the shims started and nobody else reaps), mounts under the run
//! directory (rootfs overlays, /dev/shm of sandboxes, network namespaces, volumes), the
//! bridge and its veths, kube-proxy's nftables tables, `KUBE-`/`CNI-` iptables chains,
//! symlinks in /var/log/containers, and the sysctls saved before the node started.
//! One cluster runs on a machine at a time: the global parts are not told apart by run.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::network::{BRIDGE, CNI_NETWORK, restore_sysctls};

/// The file in a run directory that names its owner.
const OWNER_FILE: &str = "owner";

/// Where run directories live: beside the test components, on disk (containerd's image
/// store does not belong in a tmpfs).
pub fn clusters_root() -> PathBuf {
    let bin = super::super::process::testenv_bin_dir();
    bin.parent().map(|p| p.join("clusters")).unwrap_or_else(|| PathBuf::from("/var/tmp/livestream-clusters"))
}

/// A process, as pid and start time (pids are reused; the pair is not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    start_time: u64,
}

impl Owner {
    pub fn current() -> Self {
        let pid = std::process::id();
        Self { pid, start_time: start_time(pid).unwrap_or(0) }
    }

    fn parse(text: &str) -> Option<Self> {
        let mut words = text.split_whitespace();
        Some(Self { pid: words.next()?.parse().ok()?, start_time: words.next()?.parse().ok()? })
    }

    pub fn is_alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }
}

/// Field 22 of /proc/PID/stat: the start time in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; it ends at the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A run directory and its owner.
#[derive(Debug)]
pub struct RunDir {
    pub path: PathBuf,
    pub owner: Option<Owner>,
}

/// The run directories on this machine.
pub fn run_dirs() -> Vec<RunDir> {
    let Ok(entries) = fs::read_dir(clusters_root()) else { return Vec::new() };
    let mut dirs: Vec<RunDir> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let owner = fs::read_to_string(e.path().join(OWNER_FILE)).ok().and_then(|t| Owner::parse(&t));
            RunDir { path: e.path(), owner }
        })
        .collect();
    dirs.sort_by(|a, b| a.path.cmp(&b.path));
    dirs
}

/// Creates the run directory of a new cluster owned by this process, after removing what
/// dead runs left behind. Fails when a live cluster (of another process) is running.
pub fn claim_run_dir() -> Result<PathBuf, String> {
    let me = Owner::current();
    for dir in run_dirs() {
        match dir.owner {
            Some(owner) if owner.is_alive() && owner != me => {
                return Err(format!(
                    "another cluster is running on this machine (process {}, {}): stop it first \
                     (scripts/cluster down stops every cluster)",
                    owner.pid,
                    dir.path.display()
                ));
            }
            _ => {
                eprintln!("cluster: removing what an earlier run left behind in {}", dir.path.display());
                sweep(&dir.path);
            }
        }
    }
    // The global parts, also after a run whose directory is already gone.
    sweep_machine();
    let path = clusters_root().join(format!("{}-{:08x}", me.pid, rand::random::<u32>()));
    fs::create_dir_all(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
    fs::write(path.join(OWNER_FILE), format!("{} {}\n", me.pid, me.start_time))
        .map_err(|e| format!("write the owner of {}: {e}", path.display()))?;
    Ok(path)
}

/// Stops every cluster on the machine, live or dead: its owner gets SIGTERM (and tears
/// down itself), then everything is swept. The clean-up command.
pub fn sweep_all(grace: Duration) {
    for dir in run_dirs() {
        if let Some(owner) = dir.owner.filter(|o| o.is_alive() && *o != Owner::current()) {
            eprintln!("cluster: stopping the cluster of process {}", owner.pid);
            // SAFETY: kill(2) with a pid read from the owner file, checked alive just now.
            unsafe {
                libc::kill(owner.pid as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + grace;
            while owner.is_alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if owner.is_alive() {
                // SAFETY: as above.
                unsafe {
                    libc::kill(owner.pid as libc::pid_t, libc::SIGKILL);
                }
            }
        }
        sweep(&dir.path);
    }
    sweep_machine();
}

/// Removes one run: its processes, containers, mounts, saved sysctls, then its files.
pub fn sweep(dir: &Path) {
    timed("killing the run's processes", || kill_run_processes(dir));
    timed("killing the containers", kill_pod_processes);
    timed("unmounting", || unmount_under(dir));
    restore_sysctls(dir);
    timed("the machine's parts", sweep_machine);
    let removed = timed("removing the files", || fs::remove_dir_all(dir));
    if let Err(e) = removed
        && e.kind() != io::ErrorKind::NotFound
    {
        eprintln!("cluster: cannot remove {}: {e}", dir.display());
    }
}

/// The parts of a node that are not under its run directory.
pub fn sweep_machine() {
    kill_pod_processes();
    delete_links();
    delete_nftables();
    delete_iptables_chains();
    remove_pod_cgroups();
    remove_log_links();
    remove_cni_cache();
    remove_shim_sockets();
    remove_kubelet_fixed_dirs();
}

/// Runs a step of the sweep; says so when it was slow, so that a slow teardown explains
/// itself in the log.
fn timed<T>(what: &str, step: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = step();
    if started.elapsed() > Duration::from_secs(2) {
        eprintln!("cluster: clean-up: {what} took {:.1}s", started.elapsed().as_secs_f64());
    }
    out
}

/// The pids of every process but this one.
fn all_pids() -> Vec<u32> {
    let me = std::process::id();
    fs::read_dir("/proc")
        .map(|entries| {
            entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).filter(|p| *p != me).collect()
        })
        .unwrap_or_default()
}

fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline")).map(|b| String::from_utf8_lossy(&b).replace('\0', " ")).unwrap_or_default()
}

fn kill_pids(pids: &[u32]) {
    for pid in pids {
        // SAFETY: kill(2); a pid that exited meanwhile gets ESRCH.
        unsafe {
            libc::kill(*pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

/// Kills the processes whose command line names `dir` (containerd, shims, the node's
/// components, the control plane of the run), until none is left.
fn kill_run_processes(dir: &Path) {
    let needle = dir.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids: Vec<u32> = all_pids().into_iter().filter(|p| cmdline(*p).contains(&needle)).collect();
        if pids.is_empty() || Instant::now() > deadline {
            if !pids.is_empty() {
                eprintln!("cluster: processes of {needle} survive SIGKILL: {pids:?}");
            }
            return;
        }
        kill_pids(&pids);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The cgroup v1 controllers' and the unified hierarchy's directories.
fn cgroup_roots() -> Vec<PathBuf> {
    fs::read_dir("/sys/fs/cgroup")
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default()
}

/// Every directory under `dir`, children before parents.
fn dirs_depth_first(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs_depth_first(&entry.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

/// The pod cgroups (`kubepods`, as the kubelet's cgroupfs driver names them).
fn pod_cgroups() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for root in cgroup_roots() {
        let pods = root.join("kubepods");
        if pods.is_dir() {
            dirs_depth_first(&pods, &mut out);
        }
    }
    out
}

/// Kills every process in the pod cgroups: containers outlive their shims.
fn kill_pod_processes() {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut pids: Vec<u32> = pod_cgroups()
            .iter()
            .filter_map(|dir| fs::read_to_string(dir.join("cgroup.procs")).ok())
            .flat_map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect::<Vec<u32>>())
            .collect();
        pids.sort_unstable();
        pids.dedup();
        if pids.is_empty() || Instant::now() > deadline {
            if !pids.is_empty() {
                eprintln!("cluster: pod processes survive SIGKILL: {pids:?}");
            }
            return;
        }
        kill_pids(&pids);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn remove_pod_cgroups() {
    for dir in pod_cgroups() {
        // rmdir of a cgroup with no process and no child removes it.
        let _ = fs::remove_dir(&dir);
    }
}

/// Mount points under `dir`, deepest first (from /proc/self/mountinfo, octal escapes
/// decoded).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let prefix = dir.display().to_string();
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .map(PathBuf::from)
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts
}

fn unescape_mount_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&raw[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts (lazily, so that a busy mount goes too) everything under `dir`, repeatedly:
/// a mount may be stacked several times (the kubelet's rshared root directory).
fn unmount_under(dir: &Path) {
    for _ in 0..10 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        for mount in mounts {
            let Ok(path) = std::ffi::CString::new(mount.display().to_string()) else { continue };
            // SAFETY: umount2(2) with a NUL-terminated path.
            unsafe {
                libc::umount2(path.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
    let left = mounts_under(dir);
    if !left.is_empty() {
        eprintln!("cluster: mounts under {} survive unmounting: {left:?}", dir.display());
    }
}

fn run_quiet(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The bridge and any veth still attached to it (a veth goes with its network namespace,
/// which goes with its last process and mount).
fn delete_links() {
    if let Some(text) = run_quiet("ip", &["-o", "link", "show", "master", BRIDGE]) {
        for line in text.lines() {
            if let Some(name) = line.split(':').nth(1).map(|n| n.trim().split('@').next().unwrap_or("").to_string()) {
                let _ = run_quiet("ip", &["link", "delete", &name]);
            }
        }
    }
    if run_quiet("ip", &["link", "show", BRIDGE]).is_some() {
        let _ = run_quiet("ip", &["link", "delete", BRIDGE]);
    }
}

/// kube-proxy's nftables tables (its nftables mode keeps every rule in them).
fn delete_nftables() {
    for family in ["ip", "ip6"] {
        if run_quiet("nft", &["list", "table", family, "kube-proxy"]).is_some() {
            let _ = run_quiet("nft", &["delete", "table", family, "kube-proxy"]);
        }
    }
}

/// The chains that the kubelet (KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY, KUBE-FIREWALL)
/// and CNI plugins add, with every rule that jumps to them; other rules stay untouched.
fn delete_iptables_chains() {
    for (save, restore) in [("iptables-save", "iptables-restore"), ("ip6tables-save", "ip6tables-restore")] {
        let Some(rules) = run_quiet(save, &[]) else { continue };
        if !rules.lines().any(is_node_rule) {
            continue;
        }
        let kept: String = rules.lines().filter(|l| !is_node_rule(l)).map(|l| format!("{l}\n")).collect();
        let child = Command::new(restore)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else { continue };
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            let _ = stdin.write_all(kept.as_bytes());
        }
        match child.wait_with_output() {
            Ok(out) if !out.status.success() => {
                eprintln!("cluster: {restore} failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            _ => {}
        }
    }
}

fn is_node_rule(line: &str) -> bool {
    line.starts_with(":KUBE-")
        || line.starts_with(":CNI-")
        || (line.starts_with("-A ") && (line.contains("KUBE-") || line.contains("CNI-")))
}

/// The kubelet links each container's log into /var/log/containers, a fixed path.
fn remove_log_links() {
    let dir = Path::new("/var/log/containers");
    let root = clusters_root();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let target = fs::read_link(entry.path()).ok();
            // A link into a run directory, or dangling (its run is gone).
            if target.is_some_and(|t| t.starts_with(&root) || !t.exists()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// libcni caches each attachment's result (ours and the CRI plugin's loopback) under
/// /var/lib/cni, a fixed path; a result of ours names our network or a network namespace
/// in a run directory.
fn remove_cni_cache() {
    let root = clusters_root().display().to_string();
    if let Ok(entries) = fs::read_dir("/var/lib/cni/results") {
        for entry in entries.flatten() {
            let ours = entry.file_name().to_string_lossy().starts_with(&format!("{CNI_NETWORK}-"))
                || fs::read_to_string(entry.path()).is_ok_and(|text| text.contains(&root));
            if ours {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    for dir in ["/var/lib/cni/results", "/var/lib/cni"] {
        let _ = fs::remove_dir(dir);
    }
}

/// containerd's shims put their sockets in /run/containerd/s whatever containerd's state
/// directory: the sockets that no process listens on any more go.
fn remove_shim_sockets() {
    let dir = Path::new("/run/containerd/s");
    let listening = fs::read_to_string("/proc/net/unix").unwrap_or_default();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path().display().to_string();
            if !listening.contains(&path) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    for dir in ["/run/containerd/s", "/run/containerd"] {
        let _ = fs::remove_dir(dir);
    }
}

/// The kubelet's device plugin manager keeps its socket at a fixed path, whatever the
/// root directory: the directory goes when nothing else is in it.
fn remove_kubelet_fixed_dirs() {
    let dir = Path::new("/var/lib/kubelet/device-plugins");
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == "kubelet.sock" || name == "kubelet_internal_checkpoint" {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    for dir in ["/var/lib/kubelet/device-plugins", "/var/lib/kubelet"] {
        let _ = fs::remove_dir(dir);
    }
}
