# shellcheck shell=bash
# Sourced by infra/local/install.sh (all): the OpenTelemetry Collector the tracing tests export to
# (start.d/otelcol.sh runs it).
#
# The core distribution, otelcorecol, is not published as a module of its own (the module proxy answers 404 for
# go.opentelemetry.io/collector/cmd/otelcorecol): upstream generates it with the collector builder (ocb) from the
# manifest kept in the builder itself. So we build the pinned builder from the module proxy and let it generate and
# compile otelcorecol from that same manifest (the components below), every module pinned to one release. The one
# component of that manifest left out is memorylimiterextension: the module proxy refuses its v0.165.0 (403).
OTELCOL_VERSION=v0.165.0
OTELCOL_CONFMAP_VERSION=v1.71.0   # the confmap providers are versioned 1.x alongside 0.165

install_otelcol() {
  local version="$OTELCOL_VERSION"
  if [ -x "$IBS_BIN/otelcorecol" ] && [ "$(cat "$IBS_BIN/.otelcorecol.version" 2>/dev/null)" = "$version" ]; then return 0; fi
  log "building otelcorecol $version with the collector builder (first time only, takes minutes)"
  local dir="$IBS_CACHE/src/otelcorecol-$version"
  mkdir -p "$dir"
  (
    cd "$dir"
    if [ ! -x "$dir/ocb" ]; then
      GOBIN="$dir" GOFLAGS=-mod=mod go install "go.opentelemetry.io/collector/cmd/builder@$version"
      mv "$dir/builder" "$dir/ocb"
    fi
    local v=$version c=$OTELCOL_CONFMAP_VERSION m=go.opentelemetry.io/collector
    cat >manifest.yaml <<YAML
dist:
  module: go.opentelemetry.io/collector/cmd/otelcorecol
  name: otelcorecol
  description: Local OpenTelemetry Collector binary, testing only.
  version: ${v#v}
  output_path: $dir/dist
receivers:
  - gomod: $m/receiver/nopreceiver $v
  - gomod: $m/receiver/otlpreceiver $v
exporters:
  - gomod: $m/exporter/debugexporter $v
  - gomod: $m/exporter/nopexporter $v
  - gomod: $m/exporter/otlpexporter $v
  - gomod: $m/exporter/otlphttpexporter $v
extensions:
  - gomod: $m/extension/zpagesextension $v
processors:
  - gomod: $m/processor/batchprocessor $v
  - gomod: $m/processor/memorylimiterprocessor $v
connectors:
  - gomod: $m/connector/forwardconnector $v
providers:
  - gomod: $m/confmap/provider/envprovider $c
  - gomod: $m/confmap/provider/fileprovider $c
  - gomod: $m/confmap/provider/yamlprovider $c
telemetry:
  gomod: $m/service $v
  import: $m/service/telemetry/otelconftelemetry
YAML
    CGO_ENABLED=0 "$dir/ocb" --config manifest.yaml --ldflags='-s -w' >"$dir/build.log" 2>&1 ||
      { tail -n 30 "$dir/build.log" >&2; exit 1; }
  ) || return 1
  cp "$dir/dist/otelcorecol" "$IBS_BIN/otelcorecol.tmp"
  mv "$IBS_BIN/otelcorecol.tmp" "$IBS_BIN/otelcorecol"
  echo "$version" >"$IBS_BIN/.otelcorecol.version"
}
install_otelcol
