#!/usr/bin/env bash
# Pushes a small base image (Debian's static busybox on scratch) to the local registry as
# 127.0.0.1:5000/library/busybox:stable, so Dockerfiles have something to build FROM on a machine that cannot
# reach any public registry. Skipped when the registry already has it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
load_stack_env
image=127.0.0.1:5000/library/busybox:stable
if curl -fs -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
     http://127.0.0.1:5000/v2/library/busybox/manifests/stable; then
  exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp /bin/busybox "$dir/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nCMD ["/bin/sh"]\n' >"$dir/Dockerfile"
log "pushing base image $image"
"$IBS_BIN/buildctl" --addr "$BUILDKIT_HOST" build --frontend dockerfile.v0 --local context="$dir" --local dockerfile="$dir" \
  --output "type=image,name=$image,push=true" >/dev/null 2>&1
