#!/usr/bin/env bash
# Stops everything infra/local started, by PID (every PID file under $IBS_RUN/pids, the service first).
# Data stays in $IBS_RUN; `down.sh --purge` removes it too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
for name in api worker; do stop_process "$name"; done

# The real node's containers would outlive containerd (each runs under its own shim): stop the kubelet first, so it
# restarts nothing, kill and delete every container, then unmount what the kubelet mounted for the pods.
stop_node_pods() {
  local node_dir=$IBS_RUN/node id
  pid_alive "$IBS_RUN/pids/containerd.pid" || return 0
  stop_process kubelet
  local ctr=("$IBS_BIN/ctr" --address "$node_dir/containerd/containerd.sock" -n k8s.io)
  for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks kill -s SIGKILL "$id" 2>/dev/null || true; done
  for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks delete -f "$id" >/dev/null 2>&1 || true; done
  local mnt
  for mnt in $(findmnt -rn -o TARGET | grep "^$node_dir/" | sort -r); do umount "$mnt" 2>/dev/null || true; done
}
stop_node_pods
for pidfile in "$IBS_RUN"/pids/*.pid; do
  [ -e "$pidfile" ] && stop_process "$(basename "$pidfile" .pid)"
done
if [ "${1:-}" = "--purge" ]; then rm -rf "$IBS_RUN"; log "removed $IBS_RUN"; fi
