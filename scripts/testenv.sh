#!/usr/bin/env bash
# Installs the real components that the tests run against, at pinned versions, into a
# cache directory, reusing whatever an earlier run built there.
#
#   scripts/testenv.sh            install or reuse everything, print the bin directory
#   scripts/testenv.sh --print    print the bin directory only
#
# Components:
#   libsrt-gnutls-dev, pkg-config         Debian packages: to build livestream (SRT ingest links
#                                         libsrt, the GnuTLS build Debian's ffmpeg uses)
#   ffmpeg, ffprobe, curl, pgrep          Debian packages
#   chromium, node and npm                Debian packages (node and npm only when missing)
#   nginx                                 Debian's package, unpacked into the cache (no service)
#   hls.js, puppeteer-core                npm, from tests/player/package-lock.json
#   etcd, kube-apiserver,                 built from the Kubernetes Go modules as dependencies of
#   kube-controller-manager, kubectl      a small wrapper module (their replace directives keep
#                                         `go install` from building them directly)
#   kubelet, kube-scheduler, kube-proxy   the node: the same wrapper module, the same version
#   containerd, runc, CNI plugins         Debian packages: the node's container runtime and
#   (bridge, host-local, portmap),        network, and the tools that build the project's image
#   buildah, debootstrap, iptables,
#   nftables, conntrack
#   pause image                           the pod sandbox image, built from the C source in the
#                                         Kubernetes module (build/pause), FROM scratch
#   debian:bookworm-slim                  the Dockerfile's base: `debootstrap --variant=minbase`
#                                         from Debian's mirror, imported FROM scratch into
#                                         buildah's storage under the cache (nothing is pulled)
#   minio                                 its Go module
#   helm                                  its Go module
#   promtool                              the Prometheus Go module: checks and unit-tests the
#                                         chart's alerting rules (`promtool test rules`)
#
# The node and the images need Linux and root (pods run under runc); elsewhere they are
# skipped with a message, and the cluster tests fail saying what is missing.
set -euo pipefail

K8S_VERSION=v1.37.2
ETCD_VERSION=v3.7.0
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
HELM_VERSION=v4.3.1
# Prometheus 3.x publishes its Go module as v0.3MM.P for release 3.MM.P.
PROMETHEUS_VERSION=v0.316.0
PAUSE_TAG=3.10.2
DEBIAN_SUITE=bookworm

CACHE=${LIVESTREAM_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/livestream-testenv}
BIN="$CACHE/bin"
# buildah's own storage: the debootstrapped base and the cached layers of the image.
BUILDAH_ROOT="$CACHE/buildah/root"
BUILDAH_RUNROOT="$CACHE/buildah/runroot"

if [[ "${1:-}" == "--print" ]]; then
  echo "$BIN"
  exit 0
fi

log() { echo "testenv: $*" >&2; }
mkdir -p "$BIN"

# A component is rebuilt only when its stamp (the pinned version) is missing or different.
fresh() { [[ -f "$CACHE/stamps/$1" && "$(cat "$CACHE/stamps/$1")" == "$2" ]]; }
stamp() { mkdir -p "$CACHE/stamps"; echo "$2" >"$CACHE/stamps/$1"; }

install_ffmpeg() {
  if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null && command -v curl >/dev/null &&
    command -v pgrep >/dev/null; then
    return
  fi
  log "installing ffmpeg, curl and procps from Debian"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -o=Dpkg::Use-Pty=0 \
    --no-install-recommends ffmpeg curl procps >/dev/null
}

install_build_deps() {
  if command -v pkg-config >/dev/null && pkg-config --exists srt; then
    return
  fi
  log "installing libsrt-gnutls-dev and pkg-config from Debian (to build livestream)"
  apt_install libsrt-gnutls-dev pkg-config
}

build_kube() {
  local want="$K8S_VERSION etcd=$ETCD_VERSION"
  if fresh kube "$want" && [[ -x "$BIN/kube-apiserver" && -x "$BIN/etcd" ]]; then
    return
  fi
  log "building etcd $ETCD_VERSION and Kubernetes $K8S_VERSION (first run only; takes a while)"
  local src="$CACHE/src/kube-$K8S_VERSION"
  rm -rf "$src"
  write_kube_module "$src"
  local ldflags
  ldflags=$(kube_ldflags)
  (
    cd "$src"
    export GOFLAGS=-mod=mod
    go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" ./etcd
    for cmd in kube-apiserver kube-controller-manager kubectl; do
      log "building $cmd"
      go build -trimpath -ldflags "$ldflags" -o "$BIN/$cmd" "k8s.io/kubernetes/cmd/$cmd"
    done
  )
  stamp kube "$want"
}

# The wrapper module whose dependencies are the Kubernetes commands and etcd.
write_kube_module() {
  local src=$1
  local staging=v0${K8S_VERSION#v1}
  mkdir -p "$src/etcd"
  # The Kubernetes module replaces its staging modules with local paths; a consumer
  # module must point them at the published versions instead.
  local gomod
  gomod=$(cd "$src" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module livestream.dev/testenv/kube"
    echo
    echo "go 1.26"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $K8S_VERSION"
    echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo ")"
    echo
    echo "replace ("
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" |
      awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >"$src/go.mod"
  cat >"$src/etcd/main.go" <<'GO'
// Command etcd runs the etcd server, as the upstream etcd binary does.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
}

# The version the Kubernetes commands report, as a release build sets it.
kube_ldflags() {
  local minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  echo "$ldflags"
}

build_minio() {
  if fresh minio "$MINIO_VERSION" && [[ -x "$BIN/minio" ]]; then
    return
  fi
  log "building minio $MINIO_VERSION"
  GOBIN="$BIN" GOFLAGS= go install -trimpath -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION"
  stamp minio "$MINIO_VERSION"
}

build_helm() {
  if fresh helm "$HELM_VERSION" && [[ -x "$BIN/helm" ]]; then
    return
  fi
  log "building helm $HELM_VERSION"
  GOBIN="$BIN" GOFLAGS= go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  stamp helm "$HELM_VERSION"
}

build_promtool() {
  if fresh promtool "$PROMETHEUS_VERSION" && [[ -x "$BIN/promtool" ]]; then
    return
  fi
  log "building promtool $PROMETHEUS_VERSION"
  GOBIN="$BIN" GOFLAGS= go install -trimpath -ldflags "-s -w" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
  stamp promtool "$PROMETHEUS_VERSION"
}

# --- The player tests: Chromium, nginx as the CDN, hls.js and puppeteer-core ----------------
PLAYER_DIR="$CACHE/player"
PLAYER_SRC="$(cd "$(dirname "$0")/.." && pwd)/tests/player"

apt_install() {
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -o=Dpkg::Use-Pty=0 --no-install-recommends "$@" >/dev/null
}

# Two RTMP clients besides ffmpeg's own for the ingest tests: GStreamer's rtmp2sink and
# its rtmpsink on librtmp (the rtmpdump library that OBS's RTMP output descends from).
install_gstreamer() {
  if command -v gst-launch-1.0 >/dev/null && gst-inspect-1.0 rtmp2sink >/dev/null 2>&1 &&
    gst-inspect-1.0 rtmpsink >/dev/null 2>&1 && gst-inspect-1.0 flvdemux >/dev/null 2>&1; then
    return
  fi
  log "installing GStreamer (tools, good and bad plugins) from Debian"
  apt_install gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
}

install_chromium() {
  local missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  if ((${#missing[@]})); then
    log "installing ${missing[*]} from Debian"
    apt_install "${missing[@]}"
  fi
  ln -sf "$(command -v chromium)" "$BIN/chromium"
}

# The tests run nginx as their own process with their own configuration; installing the
# package would also install the system service (and start it where services start).
install_nginx() {
  if fresh nginx debian && [[ -x "$BIN/nginx" ]]; then
    return
  fi
  log "unpacking nginx from Debian into the cache"
  local work
  work=$(mktemp -d)
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq >/dev/null
  (cd "$work" && apt-get download nginx >/dev/null 2>&1)
  dpkg-deb -x "$work"/nginx_*.deb "$work/root"
  install -m 0755 "$work/root/usr/sbin/nginx" "$BIN/nginx"
  rm -rf "$work"
  # Its libraries are on most machines already; the package's Depends name them.
  if ldd "$BIN/nginx" | grep -q 'not found'; then
    apt_install libpcre2-8-0 libssl3 zlib1g libcrypt1
  fi
  "$BIN/nginx" -v 2>/dev/null
  stamp nginx debian
}

install_player_modules() {
  local want
  want=$(cat "$PLAYER_SRC/package.json" "$PLAYER_SRC/package-lock.json" | sha256sum | cut -d' ' -f1)
  if fresh player "$want" && [[ -d "$PLAYER_DIR/node_modules" ]]; then
    return
  fi
  log "installing hls.js and puppeteer-core from npm"
  rm -rf "$PLAYER_DIR"
  mkdir -p "$PLAYER_DIR"
  cp "$PLAYER_SRC/package.json" "$PLAYER_SRC/package-lock.json" "$PLAYER_DIR/"
  (cd "$PLAYER_DIR" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
  stamp player "$want"
}
# --- end of the player tests ---------------------------------------------------------------

# The node runs pods with runc in network namespaces and cgroups: Linux, root, Debian's apt.
node_supported() {
  [[ "$(uname -s)" == Linux && $(id -u) -eq 0 ]] && command -v apt-get >/dev/null
}

install_node_packages() {
  if command -v containerd >/dev/null && command -v runc >/dev/null && command -v buildah >/dev/null &&
    command -v debootstrap >/dev/null && command -v nft >/dev/null && command -v iptables-save >/dev/null &&
    command -v conntrack >/dev/null && command -v gcc >/dev/null && [[ -x /usr/lib/cni/bridge ]]; then
    return
  fi
  log "installing containerd, runc, the CNI plugins, buildah and debootstrap from Debian"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o=Dpkg::Use-Pty=0 --no-install-recommends \
    containerd runc containernetworking-plugins buildah debootstrap iptables nftables conntrack \
    iproute2 mount util-linux gcc libc6-dev >/dev/null
}

build_node() {
  if fresh node "$K8S_VERSION" && [[ -x "$BIN/kubelet" && -x "$BIN/kube-scheduler" && -x "$BIN/kube-proxy" ]]; then
    return
  fi
  local src="$CACHE/src/kube-$K8S_VERSION"
  [[ -f "$src/go.mod" ]] || write_kube_module "$src"
  local ldflags
  ldflags=$(kube_ldflags)
  (
    cd "$src"
    export GOFLAGS=-mod=mod
    for cmd in kubelet kube-scheduler kube-proxy; do
      log "building $cmd"
      go build -trimpath -ldflags "$ldflags" -o "$BIN/$cmd" "k8s.io/kubernetes/cmd/$cmd"
    done
  )
  stamp node "$K8S_VERSION"
}

# buildah on its own storage under the cache, never the machine's /var/lib/containers.
buildah_() {
  buildah --root "$BUILDAH_ROOT" --runroot "$BUILDAH_RUNROOT" --storage-driver overlay "$@"
}

# The pod sandbox image, kept as a small docker-archive that each test cluster imports.
build_pause_image() {
  local archive="$CACHE/images/pause.tar"
  if fresh pause "$K8S_VERSION $PAUSE_TAG" && [[ -f "$archive" ]]; then
    return
  fi
  log "building the pause image from Kubernetes $K8S_VERSION"
  local src="$CACHE/src/kube-$K8S_VERSION"
  [[ -f "$src/go.mod" ]] || write_kube_module "$src"
  local module
  module=$(cd "$src" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  local ctx
  ctx=$(mktemp -d)
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_TAG" -o "$ctx/pause" "$module/build/pause/linux/pause.c"
  printf '%s\n' 'FROM scratch' 'COPY pause /pause' 'USER 65535:65535' 'ENTRYPOINT ["/pause"]' >"$ctx/Containerfile"
  local image="localhost/livestream/pause:$PAUSE_TAG"
  mkdir -p "$CACHE/images"
  rm -f "$archive"
  buildah_ build --quiet --pull=never --runtime runc --layers=false -t "$image" -f "$ctx/Containerfile" "$ctx" >/dev/null
  buildah_ push --quiet "$image" "docker-archive:$archive:$image" >/dev/null
  buildah_ rmi "$image" >/dev/null
  rm -rf "$ctx"
  stamp pause "$K8S_VERSION $PAUSE_TAG"
}

# The Dockerfile's base, made here: no image registry is reachable.
build_debian_base() {
  local mirror
  mirror=$(debian_mirror)
  local image=docker.io/library/debian:$DEBIAN_SUITE-slim
  local want="$DEBIAN_SUITE minbase $mirror"
  if fresh debian-base "$want" && buildah_ inspect --type image "$image" >/dev/null 2>&1; then
    return
  fi
  log "making $image with debootstrap from $mirror"
  local work="$CACHE/images/debootstrap"
  rm -rf "$work"
  mkdir -p "$work"
  if ! debootstrap --variant=minbase "$DEBIAN_SUITE" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 20 "$work/debootstrap.log" >&2
    exit 1
  fi
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" --numeric-owner -cf "$work/rootfs.tar" .
  rm -rf "$work/rootfs"
  local container
  container=$(buildah_ from --pull=never scratch)
  buildah_ add "$container" "$work/rootfs.tar" / >/dev/null
  buildah_ config --cmd /bin/bash \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$container"
  buildah_ commit --quiet --rm "$container" "$image" >/dev/null
  rm -rf "$work"
  stamp debian-base "$want"
}

# The Debian mirror this machine's apt uses (deb822 or one-line sources).
debian_mirror() {
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' |
    grep -v security | head -n 1 || true)
  [[ -n "$uri" ]] || uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' |
    grep -v security | head -n 1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

command -v go >/dev/null || { log "Go is required to build the test components"; exit 1; }
install_build_deps
install_ffmpeg
install_gstreamer
install_chromium
install_nginx
install_player_modules
build_kube
build_minio
build_helm
build_promtool
if node_supported; then
  install_node_packages
  build_node
  build_pause_image
  build_debian_base
else
  log "not Linux as root with apt: skipping the node and the images; the cluster tests will fail"
fi
ln -sf "$(command -v ffmpeg)" "$BIN/ffmpeg"
ln -sf "$(command -v ffprobe)" "$BIN/ffprobe"
log "ready: $BIN"
echo "$BIN"
