# shellcheck shell=bash
# Sourced by infra/local/start.sh: the forward proxy that builds go through in the tests, on the bridge of the build
# network (infra/local/build-network.sh, whose rules let RUN steps reach it and nothing else of this host).
#
#   tinyproxy    10.89.0.1:3128 the proxy builds use (Basic auth; access log $IBS_RUN/logs/tinyproxy.log)
#
# The proxy connects from the host, where the bridge's rules do not apply, so it runs as the tinyproxy user and
# iptables chains IBS-BUILD-PROXY (OUTPUT) and its ip6tables twin refuse that user what a RUN step may not reach:
# any address of this host (the API, PostgreSQL, Temporal, MinIO), link-local, the cluster's ranges and
# IBS_BUILD_EGRESS_DENY. Otherwise `curl -x <proxy> http://127.0.0.1:8080/` from a RUN step would reach the API.
# Settings for the tests and a stack that uses them: $IBS_RUN/egress/egress.env.

egress_proxy_rules() {
  local chain=$EGRESS_CHAIN-PROXY cidr
  iptables -N "$chain" 2>/dev/null || iptables -F "$chain"
  iptables -C OUTPUT -m owner --uid-owner tinyproxy -j "$chain" 2>/dev/null || iptables -I OUTPUT 1 -m owner --uid-owner tinyproxy -j "$chain"
  # Its answers to the builds that call it.
  iptables -A "$chain" -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
  iptables -A "$chain" -m addrtype --dst-type LOCAL -j REJECT --reject-with icmp-admin-prohibited
  for cidr in $EGRESS_DENY_DEFAULT ${IBS_BUILD_EGRESS_DENY:-}; do
    iptables -A "$chain" -d "$cidr" -j REJECT --reject-with icmp-admin-prohibited
  done
  if command -v ip6tables >/dev/null; then
    ip6tables -N "$chain" 2>/dev/null || ip6tables -F "$chain"
    ip6tables -C OUTPUT -m owner --uid-owner tinyproxy -j "$chain" 2>/dev/null || ip6tables -I OUTPUT 1 -m owner --uid-owner tinyproxy -j "$chain"
    ip6tables -A "$chain" -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
    ip6tables -A "$chain" -m addrtype --dst-type LOCAL -j REJECT
    for cidr in fe80::/10 fd00:ec2::254/128 fc00::/7; do ip6tables -A "$chain" -d "$cidr" -j REJECT; done
  fi
}

# The local node's pods (start.d/node.sh) use the proxy too, at the same address: builder pods of dependency builds.
EGRESS_NODE_PODS=10.244.0.0/16

egress_proxy() {
  local d=$IBS_RUN/egress
  mkdir -p "$d"; chmod 700 "$d"
  [ -s "$d/proxy.password" ] || (umask 077; openssl rand -hex 16 >"$d/proxy.password")
  # tinyproxy opens its log after it became the tinyproxy user.
  mkdir -p "$IBS_RUN/logs"; touch "$IBS_RUN/logs/tinyproxy.log"; chown tinyproxy: "$IBS_RUN/logs/tinyproxy.log"
  cat >"$d/tinyproxy.conf" <<CONF
User tinyproxy
Group tinyproxy
Port $EGRESS_PROXY_PORT
Listen $EGRESS_GATEWAY
Timeout 600
LogFile "$IBS_RUN/logs/tinyproxy.log"
LogLevel Info
MaxClients 100
Allow 127.0.0.1
Allow $EGRESS_SUBNET
Allow $EGRESS_NODE_PODS
BasicAuth ibs-proxy $(cat "$d/proxy.password")
ConnectPort 443
ConnectPort 80
DisableViaHeader Yes
CONF
  chmod 600 "$d/tinyproxy.conf"
  restart_if_changed tinyproxy /usr/bin/tinyproxy "$d/tinyproxy.conf"
  start_process tinyproxy "bash -c '</dev/tcp/$EGRESS_GATEWAY/$EGRESS_PROXY_PORT'" /usr/bin/tinyproxy -d -c "$d/tinyproxy.conf"
  cat >"$d/egress.env" <<ENV
EGRESS_GATEWAY=$EGRESS_GATEWAY
EGRESS_SUBNET=$EGRESS_SUBNET
CUSTOM_MODEL_DEPENDENCIES_HTTP_PROXY=http://ibs-proxy:$(cat "$d/proxy.password")@$EGRESS_GATEWAY:$EGRESS_PROXY_PORT
TINYPROXY_LOG=$IBS_RUN/logs/tinyproxy.log
ENV
  chmod 600 "$d/egress.env"
}

egress_proxy_rules
egress_proxy
