# shellcheck shell=bash
# Sourced by infra/local/start.sh: the network the stack's BuildKit gives every RUN step (its CNI network), so that a
# build reaches the internet and the configured proxy and mirrors, and nothing of this host or its cluster.
#
#   ibs-build0   10.89.0.1/24   bridge of BuildKit's CNI network (Debian's bridge + host-local plugins, NAT out)
#
# Egress rules (iptables chains IBS-BUILD-EGRESS on FORWARD and IBS-BUILD-HOST on INPUT, rebuilt on each start):
# - IBS-BUILD-EGRESS, what leaves the host: never the link-local range (cloud metadata), loopback, the cluster's pod
#   and service ranges, nor IBS_BUILD_EGRESS_DENY (more CIDRs: a remote database or object storage, internal mirrors
#   you do not want reached); the rest (the internet, the mirrors) is accepted and masqueraded.
# - IBS-BUILD-HOST, what is for the host itself, on any of its addresses (eth0's, the node bridge's 10.244.0.1, the
#   bridge's own, and any added later): the proxy's port on the bridge address and nothing else. The API,
#   PostgreSQL, Temporal, MinIO and the registry all listen on the host.
# Refused connections fail at once with "No route to host" (icmp-admin-prohibited) instead of hanging.
# The base images are pulled by the daemon itself, in the host's namespace, so 127.0.0.1:5000 keeps working.
#
# The names are variables so that a second daemon (a development copy, say) can run on a bridge of its own.
EGRESS_BRIDGE=ibs-build0
EGRESS_SUBNET=10.89.0.0/24
EGRESS_GATEWAY=10.89.0.1
EGRESS_PROXY_PORT=3128
EGRESS_CHAIN=IBS-BUILD
EGRESS_CNI_DIR=$IBS_RUN/buildkit/cni
# Link-local (cloud metadata 169.254.169.254), loopback, and the local cluster's pod and service ranges.
EGRESS_DENY_DEFAULT="169.254.0.0/16 127.0.0.0/8 10.244.0.0/16 10.96.0.0/12"

build_network_bridge() {
  # Created up front with its address so that the proxy can listen on it before the first build; the CNI bridge
  # plugin adopts it.
  ip link show "$EGRESS_BRIDGE" >/dev/null 2>&1 || ip link add "$EGRESS_BRIDGE" type bridge
  # Not `ip addr show | grep -q`: grep stops at the match, ip may then die of SIGPIPE, and pipefail reads that as no match.
  [[ $(ip -4 addr show dev "$EGRESS_BRIDGE") == *"inet $EGRESS_GATEWAY/"* ]] || ip addr add "$EGRESS_GATEWAY/${EGRESS_SUBNET#*/}" dev "$EGRESS_BRIDGE"
  ip link set "$EGRESS_BRIDGE" up
}

build_network_rules() {
  local cidr egress=$EGRESS_CHAIN-EGRESS host=$EGRESS_CHAIN-HOST
  iptables -N "$egress" 2>/dev/null || iptables -F "$egress"
  iptables -N "$host" 2>/dev/null || iptables -F "$host"
  iptables -C FORWARD -i "$EGRESS_BRIDGE" -j "$egress" 2>/dev/null || iptables -I FORWARD 1 -i "$EGRESS_BRIDGE" -j "$egress"
  iptables -C INPUT -i "$EGRESS_BRIDGE" -j "$host" 2>/dev/null || iptables -I INPUT 1 -i "$EGRESS_BRIDGE" -j "$host"
  # Nothing addressed to the host from a build is forwarded elsewhere (the node's DNAT of 10.244.0.1 to loopback,
  # kube-proxy's node ports): it stays local delivery, which IBS-BUILD-HOST refuses.
  iptables -t nat -C PREROUTING -i "$EGRESS_BRIDGE" -m addrtype --dst-type LOCAL -j RETURN 2>/dev/null ||
    iptables -t nat -I PREROUTING 1 -i "$EGRESS_BRIDGE" -m addrtype --dst-type LOCAL -j RETURN
  iptables -A "$egress" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
  for cidr in $EGRESS_DENY_DEFAULT ${IBS_BUILD_EGRESS_DENY:-}; do
    iptables -A "$egress" -d "$cidr" -j REJECT --reject-with icmp-admin-prohibited
  done
  iptables -A "$egress" -j ACCEPT
  # Every address of the host is local delivery (INPUT, not FORWARD), whichever interface carries it.
  iptables -A "$host" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
  iptables -A "$host" -p tcp -d "$EGRESS_GATEWAY" --dport "$EGRESS_PROXY_PORT" -j ACCEPT
  iptables -A "$host" -p tcp -j REJECT --reject-with icmp-admin-prohibited
  iptables -A "$host" -j DROP
  # The bridge has no IPv6 address, so a RUN step has no IPv6 route; refuse the IPv6 metadata address anyway, for a
  # host where it has one.
  if command -v ip6tables >/dev/null; then
    ip6tables -C FORWARD -i "$EGRESS_BRIDGE" -d fd00:ec2::254 -j REJECT 2>/dev/null || ip6tables -I FORWARD 1 -i "$EGRESS_BRIDGE" -d fd00:ec2::254 -j REJECT
    ip6tables -C FORWARD -i "$EGRESS_BRIDGE" -d fe80::/10 -j REJECT 2>/dev/null || ip6tables -I FORWARD 1 -i "$EGRESS_BRIDGE" -d fe80::/10 -j REJECT
  fi
}

# The CNI network's configuration file, for BuildKit's OCI worker.
build_network_cni_config() {
  mkdir -p "$EGRESS_CNI_DIR"
  cat >"$EGRESS_CNI_DIR/ibs-build.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "ibs-build",
  "plugins": [
    {
      "type": "bridge", "bridge": "$EGRESS_BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": false,
      "ipam": { "type": "host-local", "dataDir": "$EGRESS_CNI_DIR/ipam", "ranges": [[{ "subnet": "$EGRESS_SUBNET", "gateway": "$EGRESS_GATEWAY" }]], "routes": [{ "dst": "0.0.0.0/0" }] }
    }
  ]
}
JSON
}

# The bridge, its rules and the CNI configuration. Not in a command substitution: a failed rule must stop start.sh.
build_network() {
  build_network_bridge
  build_network_rules
  build_network_cni_config
}

# The [worker.oci] lines that put RUN steps on the network.
build_network_oci_settings() {
  printf '  networkMode = "cni"\n  cniConfigPath = "%s"\n  cniBinaryPath = "/usr/lib/cni"\n  cniPoolSize = 4\n' "$EGRESS_CNI_DIR/ibs-build.conflist"
}
