#!/usr/bin/env bash
# Stops everything infra/local started, by PID. Data stays in $IBS_RUN; `down.sh --purge` removes it too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
for name in api worker temporal buildkitd minio registry postgres; do stop_process "$name"; done
if [ "${1:-}" = "--purge" ]; then rm -rf "$IBS_RUN"; log "removed $IBS_RUN"; fi
