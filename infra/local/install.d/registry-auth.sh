# shellcheck shell=bash
# Sourced by infra/local/install.sh (all): what the authenticated test registries of start.d/registry-auth.sh need.
# The registries themselves are Debian's docker-registry (installed by install.sh) and the TLS material comes from
# openssl; only htpasswd (bcrypt, the one hash distribution accepts) is missing from a fresh Debian.
#
# The token server: cesanta/docker_auth is not served by the Go module proxy this workplace reaches (every version,
# by pseudo-version too, answers 403), so the Bearer flow is tested against a token server that the test suite runs
# itself (test/registry/support/token-server.ts, the documented Docker token protocol) in front of the real registry.
install_registry_auth_tools() {
  apt_install 'htpasswd for the authenticated test registries' apache2-utils
}
install_registry_auth_tools
