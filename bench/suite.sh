#!/usr/bin/env bash
# The performance suite (`npm run bench`, issue 13): each benchmark of the hot paths in turn against the running
# stack, each measuring its figure side by side in one run. The full output goes to $IBS_RUN/bench-<time>.log and
# each benchmark's closing figures are printed at the end, for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# The benchmarks run with the project's own tsx, also when the suite is started without npm.
export PATH="$PWD/node_modules/.bin:$PATH"
log=${IBS_RUN:-/tmp/image-build-service}/bench-$(date -u +%Y%m%dT%H%M%SZ).log
benches=(
  "overhead:tsx bench/overhead.ts"                # service vs buildctl for a ~10 s build
  "accept-cpu:tsx bench/accept-cpu.ts"            # 300 accepts from 50 clients: p50/p99 and CPU per component
  "log-follow:tsx bench/log-follow.ts"            # print to follower latency, 1 and 50 followers
  "context-upload:tsx bench/context-upload.ts"    # a 2 GiB context: API memory growth, throughput vs cp
  "queue-burst:tsx bench/queue-burst.ts"          # 100 builds from 4 consumers at once: limits, builds/min, memory
)
summary=()
status=0
for entry in "${benches[@]}"; do
  name=${entry%%:*}; command=${entry#*:}
  echo "== $name ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$log"
  if out=$($command 2>&1 | tee -a "$log"); then
    # The closing figures: lines with key=value pairs or p50/p99/limits (never a log line of the stack).
    summary+=("$name: $(printf '%s\n' "$out" | awk '!/^\[/ && (/=/ || /p50|p99|limit|lost/)' | tail -n 4 | paste -sd ';' -)")
  else
    summary+=("$name: FAILED (see $log)")
    status=1
  fi
done
echo "== summary (full output: $log)"
printf '%s\n' "${summary[@]}"
exit "$status"
