#!/usr/bin/env bash
# Stops everything infra/local started, by PID (every PID file under $IBS_RUN/pids, the service first).
# Data stays in $IBS_RUN; `down.sh --purge` removes it too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
for name in api worker; do stop_process "$name"; done
for pidfile in "$IBS_RUN"/pids/*.pid; do
  [ -e "$pidfile" ] && stop_process "$(basename "$pidfile" .pid)"
done
if [ "${1:-}" = "--purge" ]; then rm -rf "$IBS_RUN"; log "removed $IBS_RUN"; fi
