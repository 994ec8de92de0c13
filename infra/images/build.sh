#!/usr/bin/env bash
# Builds the builder images with the project's own tooling, offline: no registry but the local one is reachable,
# so the BuildKit image-builder is made FROM scratch out of pinned binaries (BuildKit from infra/local's cache, runc
# and rootless helpers compiled here, a static busybox from Debian) by the local BuildKit daemon, and pushed to the
# local registry. The Kaniko and QEMU variants start FROM upstream images that cannot be pulled here, so they are
# only linted (BuildKit's own Dockerfile checks); build them where their bases are reachable.
#
#   bash infra/images/build.sh [build|lint [DIR...]|all]      (default: all)
# Environment: IMAGE_BUILDER_REPOSITORY (default 127.0.0.1:5000/ibs), IMAGE_BUILDER_NAME (image-builder),
# IMAGE_BUILDER_VERSION (default: the BuildKit version), BUILDKIT_HOST (infra/local's daemon).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../local/lib.sh"
load_stack_env

RUNC_VERSION=v1.5.2          # >= 1.1.12: the 2024 "Leaky Vessels" fixes and later advisories
ROOTLESSKIT_VERSION=v2.3.6
# Image-only tools live apart from $IBS_BIN, so that they never change what the host's own commands find.
IMAGE_BIN=$IBS_CACHE/image-bin
BUILDKIT_VERSION=$(cat "$IBS_BIN/.buildkitd.version")   # pinned by infra/local/install.sh (>= 0.28.1)
REPOSITORY=${IMAGE_BUILDER_REPOSITORY:-127.0.0.1:5000/ibs}
NAME=${IMAGE_BUILDER_NAME:-image-builder}
VERSION=${IMAGE_BUILDER_VERSION:-${BUILDKIT_VERSION#v}}

# infra/local/install.sh (install.d/kubernetes.sh) installs these; stop with the fix rather than install here.
require_package() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' && return 0
  log "Debian package $1 is missing: run bash infra/local/install.sh all"; exit 1
}

buildctl_() { "$IBS_BIN/buildctl" --addr "$BUILDKIT_HOST" "$@"; }

# runc is linked statically so it runs in a FROM scratch image; seccomp support needs libseccomp's static library.
install_static_runc() {
  local out=$IBS_BIN/runc-static
  if [ -x "$out" ] && [ "$(cat "$IBS_BIN/.runc-static.version" 2>/dev/null)" = "$RUNC_VERSION" ]; then return 0; fi
  require_package libseccomp-dev
  log "building runc $RUNC_VERSION (static)"
  local dir=$IBS_CACHE/src/runc-$RUNC_VERSION
  mkdir -p "$dir"
  (
    cd "$dir"
    [ -f go.mod ] || printf 'module ibs.local/tools/runc\n\ngo 1.26.0\n\nrequire github.com/opencontainers/runc %s\n' "$RUNC_VERSION" >go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/opencontainers/runc"\n' >tools.go
    GOFLAGS=-mod=mod go mod tidy >/dev/null
    CGO_ENABLED=1 GOFLAGS=-mod=mod go build -trimpath -tags 'seccomp netgo osusergo urfave_cli_no_docs' \
      -ldflags "-s -w -X main.version=${RUNC_VERSION#v} -extldflags -static" -o "$out.tmp.$$" github.com/opencontainers/runc
  )
  mv "$out.tmp.$$" "$out"
  echo "$RUNC_VERSION" >"$IBS_BIN/.runc-static.version"
}

# rootlesskit runs buildkitd in a user namespace of its own (rootless BuildKit); it is pure Go, so static.
install_rootlesskit() {
  mkdir -p "$IMAGE_BIN"
  if [ -x "$IMAGE_BIN/rootlesskit" ] && [ "$(cat "$IMAGE_BIN/.rootlesskit.version" 2>/dev/null)" = "$ROOTLESSKIT_VERSION" ]; then return 0; fi
  log "building rootlesskit $ROOTLESSKIT_VERSION"
  local dir=$IBS_CACHE/src/rootlesskit-$ROOTLESSKIT_VERSION
  mkdir -p "$dir"
  (
    cd "$dir"
    [ -f go.mod ] || printf 'module ibs.local/tools/rootlesskit\n\ngo 1.26.0\n\nrequire github.com/rootless-containers/rootlesskit/v2 %s\n' "$ROOTLESSKIT_VERSION" >go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/rootless-containers/rootlesskit/v2/cmd/rootlesskit"\n' >tools.go
    GOFLAGS=-mod=mod go mod tidy >/dev/null
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags '-s -w' -o "$IMAGE_BIN/rootlesskit.tmp.$$" github.com/rootless-containers/rootlesskit/v2/cmd/rootlesskit
  )
  mv "$IMAGE_BIN/rootlesskit.tmp.$$" "$IMAGE_BIN/rootlesskit"
  echo "$ROOTLESSKIT_VERSION" >"$IMAGE_BIN/.rootlesskit.version"
}

# newuidmap/newgidmap (Debian's uidmap) map the subordinate ids of /etc/subuid into rootlesskit's user namespace.
# They get file capabilities instead of Debian's set-user-ID root: run as uid 1000 they stay the owner of the
# /proc files they write, which a set-user-ID root process without CAP_DAC_OVERRIDE (dropped in the pod) may not
# open. They are dynamically linked, so their libraries come along.
copy_uid_map_helpers() {
  local rootfs=$1 bin lib
  require_package uidmap
  require_package libcap2-bin
  mkdir -p "$rootfs/usr/bin"
  for bin in /usr/bin/newuidmap /usr/bin/newgidmap; do
    cp "$bin" "$rootfs/usr/bin/"; chmod 0755 "$rootfs$bin"
    for lib in $(ldd "$bin" | grep -o '/[^ ]*\.so[^ ]*'); do
      mkdir -p "$rootfs$(dirname "$lib")"; cp -L "$lib" "$rootfs$lib"
    done
  done
  # The build context does not carry file capabilities into the image, so the Dockerfile sets them with this
  # setcap (and removes it again).
  mkdir -p "$rootfs/ibs-tools"
  cp /usr/sbin/setcap "$rootfs/ibs-tools/"
  cp -L "$(ldd /usr/sbin/setcap | grep -o '/[^ ]*libcap\.so[^ ]*')" "$rootfs/ibs-tools/"
}

# The image's root filesystem: busybox (sh, wget, tar, base64 for the entrypoints), BuildKit, runc, rootlesskit
# with the uid-mapping helpers, the scripts.
assemble_rootfs() {
  local ctx=$1
  rm -rf "$ctx"; mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc" "$ctx/rootfs/tmp"
  cp /bin/busybox "$ctx/rootfs/bin/busybox"
  for applet in sh wget tar gzip base64 sed grep cat mkdir rm sleep dirname basename head tail printf cut tr id env kill; do
    ln -s busybox "$ctx/rootfs/bin/$applet"
  done
  cp "$IBS_BIN/buildkitd" "$IBS_BIN/buildctl" "$ctx/rootfs/usr/local/bin/"
  cp "$IBS_BIN/runc-static" "$ctx/rootfs/usr/local/bin/runc"
  cp "$IMAGE_BIN/rootlesskit" "$ctx/rootfs/usr/local/bin/rootlesskit"
  cp "$here/image-builder/ibs-fetch-context" "$here/image-builder/ibs-build" "$ctx/rootfs/usr/local/bin/"
  chmod 755 "$ctx/rootfs/usr/local/bin/"*
  # /run: buildkitd's sockets (rootless, it runs as the mapped root of its user namespace, not as uid 0).
  mkdir -p "$ctx/rootfs/run" && chmod 1777 "$ctx/rootfs/tmp" "$ctx/rootfs/run"
  mkdir -p "$ctx/home/user/.local/share/buildkit"
  printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n' >"$ctx/rootfs/etc/passwd"
  printf 'root:x:0:\nuser:x:1000:\n' >"$ctx/rootfs/etc/group"
  printf 'user:100000:65536\n' >"$ctx/rootfs/etc/subuid"; cp "$ctx/rootfs/etc/subuid" "$ctx/rootfs/etc/subgid"
  copy_uid_map_helpers "$ctx/rootfs"
  cp "$here/image-builder/Dockerfile" "$ctx/Dockerfile"
}

build_image_builder() {
  install_static_runc
  install_rootlesskit
  local ctx; ctx=$(mktemp -d)
  assemble_rootfs "$ctx"
  local image="$REPOSITORY/$NAME:$VERSION"
  log "building $image with BuildKit $BUILDKIT_VERSION and runc $RUNC_VERSION"
  buildctl_ build --frontend dockerfile.v0 --local context="$ctx" --local dockerfile="$ctx" \
    --opt build-arg:BUILDKIT_VERSION="$BUILDKIT_VERSION" --opt build-arg:RUNC_VERSION="$RUNC_VERSION" \
    --output "type=image,name=$image,push=true,registry.insecure=true" --metadata-file "$ctx/metadata.json"
  log "pushed $image ($(sed -n 's/.*"containerimage.digest": *"\([^"]*\)".*/\1/p' "$ctx/metadata.json"))"
  rm -rf "$ctx"
}

# BuildKit's built-in Dockerfile checks (the frontend's lint subrequest); any warning fails. They work offline:
# the base images' metadata cannot be loaded here, which the checks report but do not count as a warning.
lint_dockerfile() {
  local dir=$1 out
  out=$(buildctl_ build --frontend dockerfile.v0 --local context="$here" --local dockerfile="$dir" --opt requestid=frontend.lint 2>&1)
  if grep -q '^WARNING:' <<<"$out"; then
    log "Dockerfile checks failed for $dir:"; grep -A8 '^WARNING:' <<<"$out" >&2; return 1
  fi
  log "Dockerfile checks passed: ${dir#"$here/"}/Dockerfile"
}

lint_all() {
  local status=0 dir
  for dir in "$@"; do lint_dockerfile "$dir" || status=1; done
  return $status
}
all_dockerfiles=("$here/image-builder" "$here/kaniko" "$here/qemu")

case "${1:-all}" in
  build) build_image_builder ;;
  lint) shift; if [ $# -gt 0 ]; then lint_all "$@"; else lint_all "${all_dockerfiles[@]}"; fi ;;
  all) lint_all "${all_dockerfiles[@]}"; build_image_builder ;;
  *) echo "usage: $0 [build|lint|all]" >&2; exit 2 ;;
esac
