# shellcheck shell=bash
# Sourced by infra/local/install.sh (all), after install.d/kubernetes.sh (whose KUBERNETES_VERSION and
# kube_tool_current it uses; that file builds the kubelet and kube-proxy with the control plane): the rest of a real
# Kubernetes node. containerd 2.x with its runc shim and CoreDNS are built from the Go module proxy, the pod
# sandbox's `pause` from the Kubernetes source, runc (static, RUNC_VERSION of lib.sh: Debian 12's 1.1.5 cannot run
# pods with user namespaces) from the Go module proxy; the CNI plugins (bridge, host-local, loopback, portmap, in
# /usr/lib/cni) come from Debian. infra/local/start.d/node.sh runs them.
CONTAINERD_VERSION=v2.4.2   # kubelet 1.36 no longer supports containerd 1.x, so Debian's 1.6 will not do
COREDNS_VERSION=v1.15.0

apt_install 'for the local Kubernetes node' containernetworking-plugins gcc libc6-dev libseccomp-dev

# Writes a wrapper module requiring MODULE@VERSION whose tools.go imports the given packages, so `go build` of each
# finds every dependency in one go.sum. Runs in the current directory.
node_wrapper_module() {
  local name=$1 module=$2 version=$3; shift 3
  [ -f go.sum ] && return 0
  printf 'module ibs.local/tools/%s\n\ngo 1.26.0\n\nrequire %s %s\n' "$name" "$module" "$version" >go.mod
  { printf '//go:build tools\n\npackage tools\n\nimport (\n'; printf '\t_ "%s"\n' "$@"; printf ')\n'; } >tools.go
  GOFLAGS=-mod=mod go mod tidy >/dev/null
}

# containerd, ctr and the runc shim, static (CGO off), as upstream's static release builds them. The btrfs,
# devmapper and zfs snapshotters are left out: the node uses overlayfs.
install_containerd() {
  local bin current=1 pkg=github.com/containerd/containerd/v2
  for bin in containerd ctr containerd-shim-runc-v2; do kube_tool_current "$bin" "$CONTAINERD_VERSION" || current=0; done
  [ "$current" = 1 ] && return 0
  log "building containerd $CONTAINERD_VERSION from the Go module proxy (first time only, takes minutes)"
  local dir="$IBS_CACHE/src/containerd-$CONTAINERD_VERSION"
  mkdir -p "$dir"
  (
    cd "$dir"
    node_wrapper_module containerd "$pkg" "$CONTAINERD_VERSION" \
      "$pkg/cmd/containerd" "$pkg/cmd/ctr" "$pkg/cmd/containerd-shim-runc-v2"
    local ldflags="-s -w -X $pkg/version.Version=$CONTAINERD_VERSION"
    for bin in containerd ctr; do
      CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -tags 'urfave_cli_no_docs no_btrfs no_devmapper no_zfs' \
        -ldflags="$ldflags" -o "$IBS_BIN/$bin.tmp.$$" "$pkg/cmd/$bin"
    done
    # no_grpc: the shim talks ttrpc only, as upstream builds it.
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -tags 'urfave_cli_no_docs no_grpc' \
      -ldflags="$ldflags" -o "$IBS_BIN/containerd-shim-runc-v2.tmp.$$" "$pkg/cmd/containerd-shim-runc-v2"
  )
  for bin in containerd ctr containerd-shim-runc-v2; do
    mv "$IBS_BIN/$bin.tmp.$$" "$IBS_BIN/$bin"
    echo "$CONTAINERD_VERSION" >"$IBS_BIN/.$bin.version"
  done
}

# CoreDNS with only the plugins a cluster DNS uses: upstream's main links every plugin, cloud DNS SDKs included,
# which would make this the longest compile of the node. The directives keep upstream's order (plugin.cfg), which
# decides how the plugins chain.
install_coredns() {
  kube_tool_current coredns "$COREDNS_VERSION" && return 0
  log "building CoreDNS $COREDNS_VERSION from the Go module proxy (first time only, takes minutes)"
  local dir="$IBS_CACHE/src/coredns-$COREDNS_VERSION" plugins=(bind ready health errors log loadbalance cache kubernetes loop forward)
  mkdir -p "$dir"
  (
    cd "$dir"
    if [ ! -f go.sum ]; then
      printf 'module ibs.local/tools/coredns\n\ngo 1.26.0\n\nrequire github.com/coredns/coredns %s\n' "$COREDNS_VERSION" >go.mod
      {
        printf 'package main\n\nimport (\n\t"github.com/coredns/coredns/core/dnsserver"\n\t"github.com/coredns/coredns/coremain"\n\n'
        printf '\t_ "github.com/coredns/coredns/plugin/%s"\n' "${plugins[@]}"
        printf ')\n\nfunc main() {\n\tdnsserver.Directives = []string{'
        printf '"%s", ' "${plugins[@]}" | sed 's/, $//'
        printf '}\n\tcoremain.Run()\n}\n'
      } >main.go
      gofmt -w main.go
      GOFLAGS=-mod=mod go mod tidy >/dev/null
    fi
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$IBS_BIN/coredns.tmp.$$" .
  )
  mv "$IBS_BIN/coredns.tmp.$$" "$IBS_BIN/coredns"
  echo "$COREDNS_VERSION" >"$IBS_BIN/.coredns.version"
}

# The process every pod sandbox runs, from the Kubernetes source as upstream builds the registry.k8s.io/pause image
# (nothing can be pulled from there); start.d/node.sh wraps it in an image.
install_pause() {
  kube_tool_current pause "$KUBERNETES_VERSION" && return 0
  local src
  src=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  gcc -Os -Wall -Werror -static -DVERSION="$KUBERNETES_VERSION" -o "$IBS_BIN/pause.tmp.$$" "$src/build/pause/linux/pause.c"
  mv "$IBS_BIN/pause.tmp.$$" "$IBS_BIN/pause"
  echo "$KUBERNETES_VERSION" >"$IBS_BIN/.pause.version"
}

# Same lock as install.d/kubernetes.sh: one Go build at a time.
(
  flock 9
  install_containerd
  install_coredns
  install_pause
  install_static_runc
) 9>"$IBS_CACHE/.kubernetes-install.lock"
