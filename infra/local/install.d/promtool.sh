# Sourced by infra/local/install.sh (all): promtool, which the observability tests run to check the chart's
# Prometheus alert rules (`promtool check rules`). Pinned, idempotent: go_tool returns at once when the pinned version
# is in the cache. The Go module versions v0.3xx.y of github.com/prometheus/prometheus are Prometheus 3.xx.y.
# Uses go_tool and $IBS_BIN from install.sh.

IBS_PROMTOOL_VERSION=v0.316.0   # Prometheus 3.16.0

go_tool promtool github.com/prometheus/prometheus github.com/prometheus/prometheus/cmd/promtool "$IBS_PROMTOOL_VERSION"
