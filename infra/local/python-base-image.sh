#!/usr/bin/env bash
# Pushes a Debian base image with python3 and pip to the local registry as 127.0.0.1:5000/library/python-deps:bookworm-hostca,
# for the dependency-build and egress tests (nothing can be pulled from Docker Hub here). The root filesystem comes
# from debootstrap (minutes, once) and is cached as a tarball in $IBS_CACHE; pushing it again takes seconds.
# The host's CA bundle replaces Debian's: where TLS to the package index is intercepted (as on our machines), pip and
# Python's ssl in the image then trust what the host trusts. Skipped when the registry already has the image. Prints
# the image reference.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
load_stack_env
image=127.0.0.1:5000/library/python-deps:bookworm-hostca
if curl -fs -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
     http://127.0.0.1:5000/v2/library/python-deps/manifests/bookworm-hostca; then
  echo "$image"; exit 0
fi
rootfs_tar=$IBS_CACHE/base/python-bookworm-rootfs.tar
if [ ! -s "$rootfs_tar" ]; then
  mkdir -p "$IBS_CACHE/base"
  root=$(mktemp -d)
  log "debootstrap bookworm with python3 and pip into $root (first time only, takes minutes)"
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates bookworm "$root" http://deb.debian.org/debian >/dev/null
  # pip installs into the system interpreter in a build image; PEP 668's marker would refuse that.
  rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$rootfs_tar.tmp" .
  mv "$rootfs_tar.tmp" "$rootfs_tar"
  rm -rf "$root"
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$rootfs_tar" "$dir/rootfs.tar"
cp /etc/ssl/certs/ca-certificates.crt "$dir/ca-certificates.crt"
printf 'FROM scratch\nADD rootfs.tar /\nCOPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\nCMD ["/usr/bin/python3"]\n' >"$dir/Dockerfile"
log "pushing base image $image"
"$IBS_BIN/buildctl" --addr "$BUILDKIT_HOST" build --frontend dockerfile.v0 --local context="$dir" --local dockerfile="$dir" \
  --output "type=image,name=$image,push=true" >/dev/null 2>&1
echo "$image"
