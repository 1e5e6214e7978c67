#!/usr/bin/env bash
# Installs the real components that the tests run against, at pinned versions, into a
# cache directory, reusing whatever an earlier run built there.
#
#   scripts/testenv.sh            install or reuse everything, print the bin directory
#   scripts/testenv.sh --print    print the bin directory only
#
# Components:
#   ffmpeg, ffprobe, curl, pgrep          Debian packages
#   chromium, node and npm                Debian packages (node and npm only when missing)
#   nginx                                 Debian's package, unpacked into the cache (no service)
#   hls.js, puppeteer-core                npm, from tests/player/package-lock.json
#   etcd, kube-apiserver,                 built from the Kubernetes Go modules as dependencies of
#   kube-controller-manager, kubectl      a small wrapper module (their replace directives keep
#                                         `go install` from building them directly)
#   minio                                 its Go module
#   helm                                  its Go module
set -euo pipefail

K8S_VERSION=v1.37.2
ETCD_VERSION=v3.7.0
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
HELM_VERSION=v4.3.1

CACHE=${LIVESTREAM_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/livestream-testenv}
BIN="$CACHE/bin"

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

build_kube() {
  local want="$K8S_VERSION etcd=$ETCD_VERSION"
  if fresh kube "$want" && [[ -x "$BIN/kube-apiserver" && -x "$BIN/etcd" ]]; then
    return
  fi
  log "building etcd $ETCD_VERSION and Kubernetes $K8S_VERSION (first run only; takes a while)"
  local staging=v0${K8S_VERSION#v1}
  local src="$CACHE/src/kube-$K8S_VERSION"
  rm -rf "$src"
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
  local minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
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

# --- The player tests: Chromium, nginx as the CDN, hls.js and puppeteer-core ----------------
PLAYER_DIR="$CACHE/player"
PLAYER_SRC="$(cd "$(dirname "$0")/.." && pwd)/tests/player"

apt_install() {
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -o=Dpkg::Use-Pty=0 --no-install-recommends "$@" >/dev/null
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

command -v go >/dev/null || { log "Go is required to build the test components"; exit 1; }
install_ffmpeg
install_chromium
install_nginx
install_player_modules
build_kube
build_minio
build_helm
ln -sf "$(command -v ffmpeg)" "$BIN/ffmpeg"
ln -sf "$(command -v ffprobe)" "$BIN/ffprobe"
log "ready: $BIN"
echo "$BIN"
