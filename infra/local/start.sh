#!/usr/bin/env bash
# Starts the components (not the API and worker) as real processes on loopback, each with a health check, a log
# under $IBS_RUN/logs and a PID file; running ones are left alone. Stop them with infra/local/down.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/build-network.sh"
load_stack_env
mkdir -p "$IBS_RUN"
stack_env >"$IBS_RUN/env"
make_api_tokens

start_postgres() {
  # PostgreSQL refuses to run as root; its data lives under /tmp so the postgres user can own it.
  local pgbin; pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  local data=$IBS_RUN/postgres
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"; chown postgres:postgres "$data"; chmod 700 "$data"
    local pwfile; pwfile=$(mktemp); echo "$POSTGRES_PASSWORD" >"$pwfile"; chown postgres "$pwfile"
    runuser -u postgres -- "$pgbin/initdb" -D "$data" -U "$POSTGRES_USER" --pwfile="$pwfile" -A scram-sha-256 >/dev/null
    rm -f "$pwfile"
  fi
  start_process postgres "runuser -u postgres -- $pgbin/pg_isready -h 127.0.0.1 -p $POSTGRES_PORT" \
    runuser -u postgres -- "$pgbin/postgres" -D "$data" -h 127.0.0.1 -p "$POSTGRES_PORT" -k "$data" \
      -c fsync=off -c synchronous_commit=off -c full_page_writes=off
  if ! PGPASSWORD=$POSTGRES_PASSWORD psql -h 127.0.0.1 -p "$POSTGRES_PORT" -U "$POSTGRES_USER" -d postgres -tAc \
       "SELECT 1 FROM pg_database WHERE datname='$POSTGRES_DB'" | grep -q 1; then
    PGPASSWORD=$POSTGRES_PASSWORD psql -q -h 127.0.0.1 -p "$POSTGRES_PORT" -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE $POSTGRES_DB"
  fi
}

start_registry() {
  mkdir -p "$IBS_RUN/registry"
  cat >"$IBS_RUN/registry.yml" <<YML
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $IBS_RUN/registry }
  delete: { enabled: true }
http: { addr: 127.0.0.1:5000 }
YML
  start_process registry "http_ok http://127.0.0.1:5000/v2/" /usr/bin/docker-registry serve "$IBS_RUN/registry.yml"
}

start_buildkit() {
  mkdir -p "$IBS_RUN/buildkit"
  build_network
  cat >"$IBS_RUN/buildkit/buildkitd.toml" <<TOML
[worker.oci]
  enabled = true
  snapshotter = "${BUILDKIT_OCI_WORKER_SNAPSHOTTER:-overlayfs}"
  binary = "/usr/bin/runc"
  gc = true
  gckeepstorage = 10000
  # RUN steps run on the egress-filtered CNI network of build-network.sh.
$(build_network_oci_settings)
[worker.containerd]
  enabled = false
[registry."127.0.0.1:5000"]
  http = true
  insecure = true
# The registry-auth test registries (start.d/registry-auth.sh): loopback means plain HTTP to BuildKit unless
# told otherwise, so the TLS one says so and names the local CA (read when BuildKit first contacts it).
[registry."127.0.0.1:5001"]
  http = true
[registry."127.0.0.1:5002"]
  http = true
[registry."127.0.0.1:5443"]
  http = false
  ca = ["$IBS_RUN/registry-auth/ca.crt"]
TOML
  local command=("$IBS_BIN/buildkitd" --config "$IBS_RUN/buildkit/buildkitd.toml" --root "$IBS_RUN/buildkit/root" --addr "$BUILDKIT_HOST")
  restart_if_changed buildkitd "${command[*]}" "$IBS_RUN/buildkit/buildkitd.toml" "$EGRESS_CNI_DIR/ibs-build.conflist"
  # The second, egress-filtered daemon that earlier stacks ran beside this one: every build has its network now.
  if [ -e "$IBS_RUN/pids/buildkitd-egress.pid" ]; then
    stop_process buildkitd-egress
    grep -q "^$IBS_RUN/buildkit-egress/" <<<"$(findmnt -rn -o TARGET)" || rm -rf "$IBS_RUN/buildkit-egress"
  fi
  start_process buildkitd "$IBS_BIN/buildctl --addr $BUILDKIT_HOST debug workers" "${command[@]}"
}

start_minio() {
  mkdir -p "$IBS_RUN/minio"
  MINIO_ROOT_USER=$MINIO_SERVER_ROOT_USER MINIO_ROOT_PASSWORD=$MINIO_SERVER_ROOT_PASSWORD MINIO_BROWSER=off \
    start_process minio "http_ok http://127.0.0.1:9000/minio/health/ready" \
      "$IBS_BIN/minio" server --quiet --address 127.0.0.1:9000 "$IBS_RUN/minio"
  node "$here/create-bucket.js"
}

start_temporal() {
  start_process temporal "http_ok http://127.0.0.1:8233/ && $IBS_BIN/temporal operator namespace describe -n default --address 127.0.0.1:7233" \
    "$IBS_BIN/temporal" server start-dev --ip 127.0.0.1 --port 7233 --ui-port 8233 \
      --db-filename "$IBS_RUN/temporal.db" --log-level warn \
      --search-attribute IbsConsumer=Keyword --search-attribute IbsImage=Keyword --search-attribute IbsStatus=Keyword
}

start_postgres
start_registry
start_minio
start_buildkit
start_temporal
# `start.sh service` (the README's first command) starts only what the service needs; the test-only components
# (Kubernetes, registry auth, storage emulators) start from start.d/ with `start.sh` or `start.sh all`.
if [ "${1:-all}" = all ]; then
  for script in "$here"/start.d/*.sh; do [ -e "$script" ] && . "$script"; done
fi
log "components up: Temporal 127.0.0.1:7233 (UI http://127.0.0.1:8233), PostgreSQL 127.0.0.1:$POSTGRES_PORT, registry 127.0.0.1:5000, MinIO 127.0.0.1:9000, BuildKit $BUILDKIT_HOST"
