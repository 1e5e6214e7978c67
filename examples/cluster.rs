//! The engine of `scripts/cluster`: the tests' single-node cluster (`tests/support/cluster`)
//! with MinIO and the operator installed by its chart, kept running in the background for
//! people to try the operator on.
//!
//!   cluster up --binary PATH   start it (in a background process) and print how to use it
//!   cluster down               stop it and remove everything it left (also after a crash)
//!
//! `up` returns once the cluster is ready; the background process holds it until `down`
//! sends it SIGTERM. Linux, as root.

/// The parts of the tests' support that the cluster needs (the rest is for test binaries).
#[allow(dead_code)]
#[path = "../tests/support"]
mod support {
    pub mod cluster;
    pub mod helm;
    pub mod kube;
    pub mod livestream;
    pub mod media;
    pub mod minio;
    pub mod process;
    pub mod stream;
}

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use support::cluster::cleanup::{clusters_root, run_dirs, sweep_all};
use support::cluster::{Cluster, ClusterOptions};
use support::helm;
use support::livestream::{StreamSpec, stream_yaml};
use support::minio::MinioServer;
use support::stream::kubectl_apply;

/// The release and namespace of the operator.
const RELEASE: &str = "livestream";
const OPERATOR_NAMESPACE: &str = "livestream-system";
/// The bucket the example LiveStream writes to (anonymous read: the playback origin).
const BUCKET: &str = "live";
/// What the background process writes into its run directory once the cluster is ready.
const READY_FILE: &str = "ready.txt";
/// How long `up` waits for the cluster (the first image build can take minutes).
const UP_TIMEOUT: Duration = Duration::from_secs(900);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let binary = args.iter().position(|a| a == "--binary").and_then(|i| args.get(i + 1)).map(PathBuf::from);
    let result = match args.first().map(String::as_str) {
        Some("up") => up(binary),
        Some("run") => run(binary),
        Some("down") => {
            sweep_all(Duration::from_secs(60));
            println!("cluster: stopped; nothing of it is left on this machine");
            Ok(())
        }
        _ => Err("usage: cluster up [--binary PATH] | cluster down".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The `livestream` binary beside this example's directory (target/PROFILE/livestream).
fn default_binary() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = me.parent().and_then(Path::parent).ok_or("no target directory")?;
    Ok(profile_dir.join("livestream"))
}

fn log_path() -> PathBuf {
    clusters_root().with_file_name("cluster.log")
}

/// Starts `run` in a session of its own and waits until its cluster is ready.
fn up(binary: Option<PathBuf>) -> Result<(), String> {
    let binary = match binary {
        Some(b) => b,
        None => default_binary()?,
    };
    if !binary.exists() {
        return Err(format!("{} does not exist: build it first (cargo build --bin livestream)", binary.display()));
    }
    if let Some(dir) = run_dirs().into_iter().find(|d| d.owner.is_some_and(|o| o.is_alive())) {
        if let Ok(info) = std::fs::read_to_string(dir.path.join(READY_FILE)) {
            println!("{info}");
            return Ok(());
        }
        return Err(format!(
            "a cluster is starting or running in {}; scripts/cluster down stops it",
            dir.path.display()
        ));
    }
    std::fs::create_dir_all(clusters_root()).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(log_path()).map_err(|e| format!("create {}: {e}", log_path().display()))?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(me);
    cmd.arg("run")
        .arg("--binary")
        .arg(&binary)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    // SAFETY: setsid(2) in the child before exec: it leaves this terminal's session.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("start the cluster process: {e}"))?;
    eprintln!("cluster: starting (log: {})", log_path().display());
    let deadline = Instant::now() + UP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let log = std::fs::read_to_string(log_path()).unwrap_or_default();
            let tail: String =
                log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            return Err(format!("the cluster process exited ({status}):\n{tail}"));
        }
        let ready = run_dirs()
            .into_iter()
            .filter(|d| d.owner.is_some_and(|o| o.pid == child.id()))
            .find_map(|d| std::fs::read_to_string(d.path.join(READY_FILE)).ok());
        if let Some(info) = ready {
            println!("{info}");
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the cluster was not ready within {UP_TIMEOUT:?}; see {}", log_path().display()));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The background process: starts everything, writes the ready file, waits for SIGTERM.
fn run(binary: Option<PathBuf>) -> Result<(), String> {
    let binary = match binary {
        Some(b) => b,
        None => default_binary()?,
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let cluster = Cluster::start(&ClusterOptions { binary })?;
    let handle = cluster.handle();
    let minio = runtime.block_on(async {
        let minio = MinioServer::start_on(handle.node_ip).await;
        minio.create_bucket(BUCKET, true).await;
        minio
    });
    let home = cluster.dir().join("helm");
    helm::install_operator(handle.kube.kubeconfig(), &home, RELEASE, OPERATOR_NAMESPACE, &[])?;
    // The example's credentials, in the default namespace.
    kubectl_apply(
        handle.kubectl(),
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: storage\n  namespace: default\n\
             stringData:\n  accessKeyId: {}\n  secretAccessKey: {}\n",
            minio.access_key(),
            minio.secret_key()
        ),
    );
    let kubeconfig = cluster.dir().join("kubeconfig");
    std::fs::copy(handle.kube.kubeconfig(), &kubeconfig).map_err(|e| e.to_string())?;
    let example = cluster.dir().join("example-livestream.yaml");
    let spec = StreamSpec {
        renditions: &[("360p", 640, 360, 800), ("180p", 320, 180, 250)],
        bucket: BUCKET,
        ..StreamSpec::default()
    };
    std::fs::write(&example, stream_yaml("default", "demo", &minio, &spec)).map_err(|e| e.to_string())?;
    let info = format!(
        "The cluster is ready (one node, the operator installed by its chart as release {RELEASE} in {OPERATOR_NAMESPACE}).

  export KUBECONFIG={kubeconfig} PATH={bin}:$PATH    # kubectl, helm and ffmpeg
  kubectl apply -f {example}
  kubectl wait --for=condition=Ready livestream/demo
  KEY=$(kubectl get secret demo-stream-key -o jsonpath='{{.data.streamKey}}' | base64 -d)
  ffmpeg -re -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine -c:v libx264 -g 30 -c:a aac \\
    -f flv \"$(kubectl get ls demo -o jsonpath='{{.status.ingestUrl}}')/$KEY\"
  kubectl get ls demo          # PHASE Live; play the PLAYBACK URL with any HLS player

MinIO (S3): {endpoint}, bucket {BUCKET} readable anonymously; its credentials are in the Secret default/storage.
Stop everything: scripts/cluster down",
        kubeconfig = kubeconfig.display(),
        bin = support::process::testenv_bin_dir().display(),
        example = example.display(),
        endpoint = minio.endpoint(),
    );
    std::fs::write(cluster.dir().join(READY_FILE), &info).map_err(|e| e.to_string())?;
    eprintln!("cluster: ready; {}", cluster.timings_text());
    runtime.block_on(async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).map_err(|e| e.to_string())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok::<(), String>(())
    })?;
    eprintln!("cluster: stopping");
    drop(minio);
    drop(cluster);
    Ok(())
}
