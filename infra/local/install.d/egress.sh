# shellcheck shell=bash
# Sourced by infra/local/install.sh (all): what start.d/egress.sh and the tenancy tests need beside the build network
# (whose CNI plugins and iptables install.sh installs for the service): Debian's tinyproxy as the forward proxy
# builds go through (CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY), and debootstrap for the Python base image the tenancy
# tests build from (infra/local/python-base-image.sh).
install_egress_tools() {
  apt_install 'for the proxy of the build network and the Python base image' tinyproxy debootstrap
  # The package starts a system tinyproxy on 0.0.0.0:8888 that we do not use; ours runs from start.d/egress.sh.
  systemctl disable --now tinyproxy >/dev/null 2>&1 || true
}
install_egress_tools
