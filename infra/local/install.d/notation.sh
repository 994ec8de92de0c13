# shellcheck shell=bash
# Sourced by infra/local/install.sh (all): the notation CLI the signing step runs, and the AWS Signer notation plugin.
# Uses go_tool, log, $IBS_BIN from install.sh.
IBS_NOTATION_VERSION=v1.3.2
IBS_AWS_SIGNER_PLUGIN_VERSION=v1.0.350
go_tool notation github.com/notaryproject/notation github.com/notaryproject/notation/cmd/notation "$IBS_NOTATION_VERSION"

# The plugin's main package is cmd/, so the binary is renamed to the name notation looks for
# (notation-<plugin name>) and goes under $IBS_BIN/notation-plugins/<plugin name>/.
install_aws_signer_plugin() {
  local name=com.amazonaws.signer.notation.plugin
  local dir=$IBS_BIN/notation-plugins/$name
  if [ -x "$dir/notation-$name" ] && [ "$(cat "$dir/.version" 2>/dev/null)" = "$IBS_AWS_SIGNER_PLUGIN_VERSION" ]; then return 0; fi
  # At the time of writing the Go module proxy this workplace reaches refuses this module at every version
  # ("not available"), so a refusal is reported and skipped: the signing tests then run with notation's own
  # test keys, and the AWS Signer path is covered up to the plugin by the worker's profile check.
  # One look-up first: go_tool's own failure would be hidden by the `if` around it (errexit is off there).
  if ! (cd "$IBS_CACHE/src" && GOFLAGS=-mod=mod go list -m "github.com/aws/aws-signer-notation-plugin@$IBS_AWS_SIGNER_PLUGIN_VERSION" >/dev/null 2>&1); then
    log "the Go module proxy refused github.com/aws/aws-signer-notation-plugin@$IBS_AWS_SIGNER_PLUGIN_VERSION; skipping the AWS Signer plugin"
    return 0
  fi
  go_tool "notation-$name" github.com/aws/aws-signer-notation-plugin github.com/aws/aws-signer-notation-plugin/cmd "$IBS_AWS_SIGNER_PLUGIN_VERSION"
  mkdir -p "$dir"
  mv "$IBS_BIN/notation-$name" "$dir/notation-$name"
  rm -f "$IBS_BIN/.notation-$name.version"
  echo "$IBS_AWS_SIGNER_PLUGIN_VERSION" >"$dir/.version"
}
install_aws_signer_plugin
