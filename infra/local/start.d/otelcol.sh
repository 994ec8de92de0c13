# shellcheck shell=bash
# Sourced by infra/local/start.sh: the OpenTelemetry Collector (otelcorecol, install.d/otelcol.sh) the tracing tests
# export to. OTLP in on loopback (HTTP 127.0.0.1:4318, gRPC 127.0.0.1:4317); the `debug` exporter prints every span
# it receives in detail through the collector's own logger, which writes JSON lines to $IBS_RUN/otelcol/received.jsonl,
# the file the tests read (test/observability/support/collector.ts). Nothing else is exported anywhere.
# The stack's env file gains IBS_OTELCOL_ENDPOINT and IBS_OTELCOL_OUTPUT; it does NOT set OTEL_EXPORTER_OTLP_ENDPOINT,
# so the service and the other suites export nothing unless a test turns tracing on for itself.
otelcol_dir=$IBS_RUN/otelcol

start_otelcol() {
  mkdir -p "$otelcol_dir"
  cat >"$otelcol_dir/config.yaml" <<YAML
receivers:
  otlp:
    protocols:
      http: { endpoint: 127.0.0.1:4318 }
      grpc: { endpoint: 127.0.0.1:4317 }
exporters:
  debug:
    verbosity: detailed
    sampling_initial: 1000000
    sampling_thereafter: 1
processors:
  batch:
    timeout: 200ms
service:
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [debug] }
  telemetry:
    logs:
      level: info
      encoding: json
      sampling: { enabled: false }
      output_paths: [$otelcol_dir/received.jsonl]
      error_output_paths: [$otelcol_dir/errors.log]
    metrics:
      level: none
YAML
  # The OTLP/HTTP receiver answers a GET of its traces path with 405: listening and routing.
  start_process otelcol "[ \"\$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' http://127.0.0.1:4318/v1/traces)\" = 405 ]" \
    "$IBS_BIN/otelcorecol" --config "$otelcol_dir/config.yaml"
  grep -q '^IBS_OTELCOL_ENDPOINT=' "$IBS_RUN/env" 2>/dev/null ||
    printf 'IBS_OTELCOL_ENDPOINT=http://127.0.0.1:4318\nIBS_OTELCOL_OUTPUT=%s\n' "$otelcol_dir/received.jsonl" >>"$IBS_RUN/env"
}

start_otelcol
