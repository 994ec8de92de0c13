#!/usr/bin/env bash
# The README's first command: installs what is missing, starts every component, builds the service and runs the
# API (127.0.0.1:8080) and the worker in the background. Safe to run again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
bash "$here/install.sh" service
use_cached_node   # a first run has just installed Node.js 24
bash "$here/start.sh" service
bash "$here/base-image.sh"
load_stack_env
cd "$root"
log "compiling the service"
npm run --silent build
stop_process worker
stop_process api
# Ready once it polls both task queues (its /readyz); the log keeps earlier runs' lines, so it cannot tell.
start_process worker "http_ok http://127.0.0.1:\${WORKER_METRICS_PORT:-9464}/readyz" node dist/worker/main.js
start_process api "http_ok http://127.0.0.1:$API_PORT/readyz" node --max-semi-space-size=4 dist/api/main.js
cat <<MSG

Image Build Service is up.
  API            http://127.0.0.1:$API_PORT   (OpenAPI: http://127.0.0.1:$API_PORT/openapi.json)
  Temporal UI    http://127.0.0.1:8233
  Registry       127.0.0.1:5000 (plain HTTP; base image 127.0.0.1:5000/library/busybox:stable)
  API tokens     $IBS_RUN/tokens.env (curl -H "Authorization: Bearer \$IBS_CONSUMER_TOKEN" …)
  Logs           $IBS_RUN/logs/
  Stop with      bash infra/local/down.sh

MSG
