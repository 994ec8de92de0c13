# Sourced by infra/local/install.sh (all): the storage emulators the storage contract suite runs against, helm for
# the chart tests, and Debian's docker-compose (v1), whose `config` validates docker-compose.yml without a Docker engine. Pinned, idempotent: each step returns at once when its pinned version is in the cache.
# Uses go_tool, log, $IBS_BIN and $IBS_CACHE from install.sh.

IBS_AZURITE_VERSION=3.37.0          # npm azurite: the Azure Blob emulator
IBS_FAKE_GCS_VERSION=v1.55.1        # github.com/fsouza/fake-gcs-server: the GCS emulator
IBS_HELM_VERSION=v3.19.5            # helm.sh/helm/v3; its go.mod has no replace lines, so go_tool builds it as is

install_azurite() {
  local dir=$IBS_CACHE/azurite
  if [ -x "$dir/node_modules/.bin/azurite-blob" ] && [ "$(cat "$dir/.version" 2>/dev/null)" = "$IBS_AZURITE_VERSION" ]; then
    return 0
  fi
  log "npm install azurite@$IBS_AZURITE_VERSION into $dir (outside the repository)"
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error --no-save "azurite@$IBS_AZURITE_VERSION" >/dev/null
  echo "$IBS_AZURITE_VERSION" >"$dir/.version"
}

install_compose_validator() {
  apt_install 'validates docker-compose.yml offline' docker-compose
}

install_azurite
install_compose_validator
# One Go build at a time: the machines have two cores.
go_tool fake-gcs-server github.com/fsouza/fake-gcs-server github.com/fsouza/fake-gcs-server "$IBS_FAKE_GCS_VERSION"
go_tool helm helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm "$IBS_HELM_VERSION"
