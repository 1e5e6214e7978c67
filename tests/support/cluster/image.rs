//! The project's image, as users build it: the Dockerfile's `prebuilt` target (the
//! `runtime` stage plus a binary built on the host), built with buildah on the
//! debootstrapped base that scripts/testenv.sh made, nothing pulled. buildah keeps its
//! layer cache (the runtime stage) under the test components' cache, so a second build only
//! adds the binary's layer; the finished image streams into containerd as a docker-archive
//! and then leaves buildah's storage: the image is kept once in the cache (its base layers)
//! and once in the cluster's containerd.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::containerd::Containerd;

/// The tag of the image the cluster's pods run.
pub const IMAGE: &str = "localhost/livestream:test";

fn cache_dir() -> PathBuf {
    let bin = super::super::process::testenv_bin_dir();
    bin.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/var/tmp/livestream-testenv"))
}

/// buildah on the storage that scripts/testenv.sh set up.
pub fn buildah() -> Command {
    let cache = cache_dir();
    let mut cmd = Command::new("buildah");
    cmd.arg("--root")
        .arg(cache.join("buildah/root"))
        .arg("--runroot")
        .arg(cache.join("buildah/runroot"))
        .args(["--storage-driver", "overlay"]);
    cmd
}

/// The tag that keeps the Dockerfile's runtime stage (the layer cache) in buildah's storage.
const RUNTIME_CACHE: &str = "localhost/livestream/runtime:cache";

/// The sandbox image's archive, as scripts/testenv.sh left it.
pub fn pause_archive() -> PathBuf {
    cache_dir().join("images/pause.tar")
}

fn run(what: &str, cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Builds the image with `binary` as `/usr/local/bin/livestream` (its build context in
/// `work`) and loads it into `containerd`.
pub fn build_and_load(binary: &Path, work: &Path, containerd: &Containerd) -> Result<(), String> {
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile");
    // The build context holds the binary only; a hard link costs nothing.
    let context = work.join("image-context");
    let _ = std::fs::remove_dir_all(&context);
    std::fs::create_dir_all(&context).map_err(|e| format!("create {}: {e}", context.display()))?;
    let linked = context.join("livestream");
    if std::fs::hard_link(binary, &linked).is_err() {
        std::fs::copy(binary, &linked).map_err(|e| format!("copy {} into the context: {e}", binary.display()))?;
    }

    let started = Instant::now();
    let build = |target: &str, tag: &str| {
        run(
            &format!("buildah build --target {target}"),
            buildah()
                .args(["build", "--quiet", "--layers", "--pull=never", "--runtime", "runc", "--network", "host"])
                .args(["--target", target, "--build-arg", "LIVESTREAM_BINARY=livestream", "-t", tag, "-f"])
                .arg(&dockerfile)
                .arg(&context),
        )
    };
    // The runtime stage gets a tag of its own: removing the finished image would otherwise
    // remove its untagged parents, the layer cache, with it.
    let built = build("runtime", RUNTIME_CACHE).and_then(|_| build("prebuilt", IMAGE));
    let _ = std::fs::remove_dir_all(&context);
    built.map_err(|e| format!("{e}\n(is the base there? scripts/testenv.sh makes it)"))?;
    eprintln!("cluster: built {IMAGE} in {:?}", started.elapsed());

    // The export streams into containerd: the image never lands on disk as an archive.
    let started = Instant::now();
    let loaded = stream_into(containerd);
    // Only the finished image goes: the cached layers below it stay for the next build.
    let _ = run("buildah rmi", buildah().args(["rmi", IMAGE]));
    loaded?;
    eprintln!("cluster: exported {IMAGE} into containerd in {:?}", started.elapsed());
    Ok(())
}

/// `buildah push IMAGE docker-archive:/dev/stdout | ctr images import -`.
fn stream_into(containerd: &Containerd) -> Result<(), String> {
    let mut push = buildah()
        .args(["push", "--quiet", IMAGE])
        .arg(format!("docker-archive:/dev/stdout:{IMAGE}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run buildah push: {e}"))?;
    let archive = push.stdout.take().ok_or("buildah push has no stdout")?;
    let import = containerd
        .ctr()
        .args(["images", "import", "--digests=true", "-"])
        .stdin(archive)
        .output()
        .map_err(|e| format!("run ctr images import: {e}"));
    let pushed = push.wait_with_output().map_err(|e| format!("buildah push: {e}"))?;
    let import = import?;
    if !pushed.status.success() {
        return Err(format!("buildah push failed: {}", String::from_utf8_lossy(&pushed.stderr)));
    }
    if !import.status.success() {
        return Err(format!("ctr images import failed: {}", String::from_utf8_lossy(&import.stderr)));
    }
    Ok(())
}
