# shellcheck shell=bash
# Sourced by infra/local/install.sh (all): trivy, the scanner the scanner-gate tests run (`--scanners secret` needs no
# vulnerability database, so it works offline). Built once from the Go module proxy; takes many minutes cold.
# Uses go_tool, $IBS_BIN from install.sh.
IBS_TRIVY_VERSION=v0.74.0
# trivy v0.74 imports encoding/json/v2, which Go 1.25/1.26 build only with the jsonv2 experiment.
GOEXPERIMENT=jsonv2 go_tool trivy github.com/aquasecurity/trivy github.com/aquasecurity/trivy/cmd/trivy "$IBS_TRIVY_VERSION"
