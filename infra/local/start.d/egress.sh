# shellcheck shell=bash
# Sourced by infra/local/start.sh: the egress-filtered build network and the forward proxy builds go through.
#
#   ibs-build0   10.89.0.1/24   bridge of BuildKit's CNI network (Debian's bridge + host-local plugins, NAT out)
#   buildkitd-egress            a BuildKit daemon whose RUN steps get a network namespace on that bridge
#                               (socket $IBS_RUN/buildkit-egress/buildkitd.sock)
#   tinyproxy    10.89.0.1:3128 the proxy builds use (Basic auth; access log $IBS_RUN/logs/tinyproxy.log)
#
# Egress rules (iptables chains IBS-BUILD-EGRESS on FORWARD and IBS-BUILD-HOST on INPUT, rebuilt on each start):
# a RUN step reaches the internet and the proxy, and never the link-local range (cloud metadata), loopback, this
# host's own addresses (where the API, PostgreSQL, Temporal and object storage listen) or the cluster's pod and
# service ranges; refused connections fail at once with "No route to host" (icmp-admin-prohibited) instead of
# hanging. IBS_BUILD_EGRESS_DENY adds CIDRs (remote database, storage, internal mirrors you do not want reached).
# Settings for the tests and a stack that uses them: $IBS_RUN/egress/egress.env.
EGRESS_BRIDGE=ibs-build0
EGRESS_SUBNET=10.89.0.0/24
EGRESS_GATEWAY=10.89.0.1
EGRESS_PROXY_PORT=3128
EGRESS_DIR=$IBS_RUN/buildkit-egress
# Link-local (cloud metadata 169.254.169.254), loopback, and the local cluster's pod and service ranges.
EGRESS_DENY_DEFAULT="169.254.0.0/16 127.0.0.0/8 10.244.0.0/16 10.96.0.0/12"

egress_bridge() {
  # Created up front with its address so that tinyproxy can listen on it before the first build; the CNI bridge
  # plugin adopts it.
  ip link show "$EGRESS_BRIDGE" >/dev/null 2>&1 || ip link add "$EGRESS_BRIDGE" type bridge
  ip addr show dev "$EGRESS_BRIDGE" | grep -q "inet $EGRESS_GATEWAY/" || ip addr add "$EGRESS_GATEWAY/24" dev "$EGRESS_BRIDGE"
  ip link set "$EGRESS_BRIDGE" up
}

egress_rules() {
  local cidr
  iptables -N IBS-BUILD-EGRESS 2>/dev/null || iptables -F IBS-BUILD-EGRESS
  iptables -N IBS-BUILD-HOST 2>/dev/null || iptables -F IBS-BUILD-HOST
  iptables -C FORWARD -i "$EGRESS_BRIDGE" -j IBS-BUILD-EGRESS 2>/dev/null || iptables -I FORWARD 1 -i "$EGRESS_BRIDGE" -j IBS-BUILD-EGRESS
  iptables -C INPUT -i "$EGRESS_BRIDGE" -j IBS-BUILD-HOST 2>/dev/null || iptables -I INPUT 1 -i "$EGRESS_BRIDGE" -j IBS-BUILD-HOST
  iptables -A IBS-BUILD-EGRESS -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
  for cidr in $EGRESS_DENY_DEFAULT ${IBS_BUILD_EGRESS_DENY:-}; do
    iptables -A IBS-BUILD-EGRESS -d "$cidr" -j REJECT --reject-with icmp-admin-prohibited
  done
  # This host's other addresses, reached through the bridge (eth0's address, other bridges).
  for cidr in $(ip -4 -o addr show | awk '{print $4}' | cut -d/ -f1 | grep -v "^$EGRESS_GATEWAY\$"); do
    iptables -A IBS-BUILD-EGRESS -d "$cidr" -j REJECT --reject-with icmp-admin-prohibited
  done
  iptables -A IBS-BUILD-EGRESS -j ACCEPT
  # To the host itself: the proxy and nothing else.
  iptables -A IBS-BUILD-HOST -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
  iptables -A IBS-BUILD-HOST -p tcp -d "$EGRESS_GATEWAY" --dport "$EGRESS_PROXY_PORT" -j ACCEPT
  iptables -A IBS-BUILD-HOST -p tcp -j REJECT --reject-with icmp-admin-prohibited
  iptables -A IBS-BUILD-HOST -j DROP
  # The bridge has no IPv6 address, so a RUN step has no IPv6 route; refuse the IPv6 metadata address anyway, for a
  # host where it has one.
  if command -v ip6tables >/dev/null; then
    ip6tables -C FORWARD -i "$EGRESS_BRIDGE" -d fd00:ec2::254 -j REJECT 2>/dev/null || ip6tables -I FORWARD 1 -i "$EGRESS_BRIDGE" -d fd00:ec2::254 -j REJECT
    ip6tables -C FORWARD -i "$EGRESS_BRIDGE" -d fe80::/10 -j REJECT 2>/dev/null || ip6tables -I FORWARD 1 -i "$EGRESS_BRIDGE" -d fe80::/10 -j REJECT
  fi
}

egress_cni_config() {
  mkdir -p "$EGRESS_DIR/cni"
  cat >"$EGRESS_DIR/cni/ibs-build.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "ibs-build",
  "plugins": [
    {
      "type": "bridge", "bridge": "$EGRESS_BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": false,
      "ipam": { "type": "host-local", "dataDir": "$EGRESS_DIR/cni/ipam", "ranges": [[{ "subnet": "$EGRESS_SUBNET", "gateway": "$EGRESS_GATEWAY" }]], "routes": [{ "dst": "0.0.0.0/0" }] }
    }
  ]
}
JSON
}

egress_proxy() {
  local d=$IBS_RUN/egress
  mkdir -p "$d"; chmod 700 "$d"
  [ -s "$d/proxy.password" ] || (umask 077; openssl rand -hex 16 >"$d/proxy.password")
  cat >"$d/tinyproxy.conf" <<CONF
Port $EGRESS_PROXY_PORT
Listen $EGRESS_GATEWAY
Timeout 600
LogFile "$IBS_RUN/logs/tinyproxy.log"
LogLevel Info
PidFile "$d/tinyproxy.pid"
MaxClients 100
Allow 127.0.0.1
Allow $EGRESS_SUBNET
BasicAuth ibs-proxy $(cat "$d/proxy.password")
ConnectPort 443
ConnectPort 80
DisableViaHeader Yes
CONF
  chmod 600 "$d/tinyproxy.conf"
  start_process tinyproxy "bash -c '</dev/tcp/$EGRESS_GATEWAY/$EGRESS_PROXY_PORT'" /usr/bin/tinyproxy -d -c "$d/tinyproxy.conf"
  cat >"$d/egress.env" <<ENV
BUILDKIT_EGRESS_HOST=unix://$EGRESS_DIR/buildkitd.sock
EGRESS_GATEWAY=$EGRESS_GATEWAY
EGRESS_SUBNET=$EGRESS_SUBNET
CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY=http://ibs-proxy:$(cat "$d/proxy.password")@$EGRESS_GATEWAY:$EGRESS_PROXY_PORT
TINYPROXY_LOG=$IBS_RUN/logs/tinyproxy.log
ENV
  chmod 600 "$d/egress.env"
}

egress_buildkitd() {
  egress_cni_config
  # The stack's buildkitd settings (registries, snapshotter, runc) plus the CNI network.
  sed "s|^\[worker.oci\]|[worker.oci]\n  networkMode = \"cni\"\n  cniConfigPath = \"$EGRESS_DIR/cni/ibs-build.conflist\"\n  cniBinaryPath = \"/usr/lib/cni\"\n  cniPoolSize = 4|" \
    "$IBS_RUN/buildkit/buildkitd.toml" >"$EGRESS_DIR/buildkitd.toml"
  start_process buildkitd-egress "$IBS_BIN/buildctl --addr unix://$EGRESS_DIR/buildkitd.sock debug workers" \
    "$IBS_BIN/buildkitd" --config "$EGRESS_DIR/buildkitd.toml" --root "$EGRESS_DIR/root" \
      --addr "unix://$EGRESS_DIR/buildkitd.sock"
}

egress_bridge
egress_rules
egress_proxy
egress_buildkitd
