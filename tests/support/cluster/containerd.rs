//! containerd for one node, with its root, state, socket and runc state in the run
//! directory, the CRI plugin set up as these machines need (see `shared/research`): the
//! sandbox image built by scripts/testenv.sh, `restrict_oom_score_adj` (root here lacks
//! CAP_SYS_RESOURCE), cgroupfs (no systemd), network namespaces under its state directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::super::process::{ManagedProcess, wait_for};

/// The sandbox image, as scripts/testenv.sh tags it.
pub const PAUSE_IMAGE: &str = "localhost/livestream/pause:3.10.2";
/// The CRI plugin's namespace.
pub const K8S_NAMESPACE: &str = "k8s.io";

pub struct Containerd {
    process: ManagedProcess,
    socket: PathBuf,
}

impl Containerd {
    /// Starts containerd with `dir` as its home and waits until it answers.
    pub fn start(dir: &Path, cni_conf_dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("create the containerd directory");
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        std::fs::write(&config, config_toml(dir, &socket, cni_conf_dir)).expect("write the containerd configuration");
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(&config);
        let mut process = ManagedProcess::spawn("containerd", cmd, &dir.join("containerd.log"));
        wait_for("containerd to answer on its socket", Duration::from_secs(30), || {
            process.assert_running();
            ctr_at(&socket).args(["version"]).output().ok().filter(|o| o.status.success())
        });
        Self { process, socket }
    }

    /// The CRI endpoint, for the kubelet.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// `ctr` on this containerd, in the CRI namespace.
    pub fn ctr(&self) -> Command {
        ctr_at(&self.socket)
    }

    /// Imports a docker-archive (uncompressed) into the image store and unpacks it.
    pub fn import(&self, archive: &Path) -> Result<(), String> {
        let started = Instant::now();
        let out = self
            .ctr()
            .args(["images", "import", "--no-unpack=false", "--digests=true"])
            .arg(archive)
            .output()
            .map_err(|e| format!("run ctr: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ctr images import {} failed: {}",
                archive.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        eprintln!("cluster: imported {} in {:?}", archive.display(), started.elapsed());
        Ok(())
    }

    /// Whether an image of this name is in the store.
    pub fn has_image(&self, name: &str) -> bool {
        self.ctr()
            .args(["images", "ls", "-q"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == name))
    }

    pub fn assert_running(&mut self) {
        self.process.assert_running();
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail(4000)
    }
}

fn ctr_at(socket: &Path) -> Command {
    let mut cmd = Command::new("ctr");
    cmd.arg("--address").arg(socket).args(["--namespace", K8S_NAMESPACE]);
    cmd
}

fn config_toml(dir: &Path, socket: &Path, cni_conf_dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{d}/containerd.ttrpc.sock"

[debug]
  level = "warn"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
  discard_unpacked_layers = true

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  BinaryName = "runc"
  Root = "{d}/runc"
  SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{cni}"
  max_conf_num = 1
"#,
        socket = socket.display(),
        cni = cni_conf_dir.display(),
    )
}
