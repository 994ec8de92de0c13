# shellcheck shell=bash
# Sourced by infra/local/install.sh (all): the Kubernetes cluster the kubernetes executor is tested against.
# etcd, the control plane and the kubelet and kube-proxy of the real node (install.d/node.sh adds its container
# runtime and DNS) are built from source (no prebuilt binary can be downloaded here), pinned, into $IBS_BIN; kwok
# simulates a second node for the tests that need a pod lifecycle a real node cannot produce on demand.
KUBERNETES_VERSION=v1.36.3
# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging folders that a module
# download does not have; the published staging modules carry the matching v0.<minor>.<patch> tags.
KUBE_STAGING_VERSION=v0.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0

kube_tool_current() { [ -x "$IBS_BIN/$1" ] && [ "$(cat "$IBS_BIN/.$1.version" 2>/dev/null)" = "$2" ]; }

# Prints one `replace k8s.io/X => k8s.io/X <staging version>` line per staging module of k8s.io/kubernetes, read from
# its own go.mod so that a new minor's new staging modules are not missed.
kube_staging_replaces() {
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod" |
    while read -r m; do echo "replace $m => $m $KUBE_STAGING_VERSION"; done
}

# The commands of k8s.io/kubernetes the local cluster runs, all built in one wrapper module.
KUBE_COMMANDS=(kube-apiserver kube-scheduler kube-controller-manager kubelet kube-proxy)

# Builds one command of k8s.io/kubernetes in the shared wrapper module, so the later ones reuse the first one's
# download and compile cache. Its tools.go imports every command of KUBE_COMMANDS, so that go.sum covers them all;
# a command added to the list updates a wrapper made before.
install_kube_command() {
  local cmd=$1 version="$KUBERNETES_VERSION+$KUBE_STAGING_VERSION"
  kube_tool_current "$cmd" "$version" && return 0
  log "building $cmd $KUBERNETES_VERSION from source (first time only; the first one takes 10+ minutes on 2 cores)"
  local dir="$IBS_CACHE/src/kube-apiserver-$KUBERNETES_VERSION"
  mkdir -p "$dir"
  (
    cd "$dir"
    if [ ! -f go.sum ]; then
      { echo "module ibs.local/tools/kube-apiserver"; echo; echo "go 1.26.0"; echo
        echo "require k8s.io/kubernetes $KUBERNETES_VERSION"; kube_staging_replaces; } >go.mod
    fi
    { printf '//go:build tools\n\npackage tools\n\nimport (\n'
      printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "${KUBE_COMMANDS[@]}"; printf ')\n'; } >tools.go.new
    if [ ! -f go.sum ] || ! cmp -s tools.go.new tools.go; then
      mv tools.go.new tools.go
      GOFLAGS=-mod=mod go mod tidy >/dev/null
    fi
    rm -f tools.go.new
    local pkg=k8s.io/component-base/version
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$IBS_BIN/$cmd.tmp.$$" \
      -ldflags="-s -w -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=36" \
      "k8s.io/kubernetes/cmd/$cmd"
  )
  mv "$IBS_BIN/$cmd.tmp.$$" "$IBS_BIN/$cmd"
  echo "$version" >"$IBS_BIN/.$cmd.version"
}

# etcd's server module has `replace` lines for its sibling modules, and its main package lives in the root module;
# a wrapper with a two-line main that calls etcdmain builds the same server.
install_etcd() {
  kube_tool_current etcd "$ETCD_VERSION" && return 0
  log "building etcd $ETCD_VERSION from source (first time only)"
  local dir="$IBS_CACHE/src/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  (
    cd "$dir"
    printf 'module ibs.local/tools/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >go.mod
    cat >main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    GOFLAGS=-mod=mod go mod tidy >/dev/null
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$IBS_BIN/etcd.tmp.$$" .
  )
  mv "$IBS_BIN/etcd.tmp.$$" "$IBS_BIN/etcd"
  echo "$ETCD_VERSION" >"$IBS_BIN/.etcd.version"
}

# What infra/images/build.sh needs to make the image-builder: libseccomp's static library for runc, Debian's
# newuidmap/newgidmap and setcap for the rootless tools.
install_image_builder_packages() {
  apt_install 'for infra/images' libseccomp-dev uidmap libcap2-bin
}
install_image_builder_packages

# One Go build at a time (the machines have two cores), and one install of these at a time even when several
# scripts source this file at once: they would write the same binaries. The lock is released when the subshell ends.
(
  flock 9
  install_etcd
  go_tool kwok sigs.k8s.io/kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION"
  for cmd in "${KUBE_COMMANDS[@]}"; do install_kube_command "$cmd"; done
) 9>"$IBS_CACHE/.kubernetes-install.lock"
