# shellcheck shell=bash
# Sourced by infra/local/start.sh after start.d/kubernetes.sh (whose KUBE_DIR, KUBE_API and kube_apply it uses): one
# real Kubernetes node, `ibs-node`, next to kwok's simulated one. containerd (its own root, state and socket under
# $IBS_RUN/node), the kubelet, kube-proxy (iptables mode) and CoreDNS run as host processes with health checks, logs
# and PID files like the other components; pods get addresses from a bridge (Debian's CNI plugins).
#
# Addresses:
#   10.244.0.0/24  pods, on the bridge ibs-cni0
#   10.244.0.1     the bridge's gateway: the node's InternalIP (so `status.hostIP` in a pod), the kubelet's
#                  endpoint (10.244.0.1:10250) and the address pods reach the host's services at: the registries
#                  (5000, 5001, 5002, 5443), MinIO (9000), Temporal (7233), PostgreSQL (55432), Azurite (10000)
#                  and fake-gcs (4443). Those keep listening on loopback only; this script forwards the ports
#                  (iptables DNAT to 127.0.0.1, with route_localnet), for pods and for the host alike, so one
#                  address (e.g. a presigned MinIO URL) works from both.
#   10.96.0.10     the cluster DNS Service (kube-system/kube-dns), served by CoreDNS on 10.244.0.1:53
#
# The node is tainted ibs.local/node=real:NoSchedule and labelled ibs.local/node=real: the test/kubernetes suites
# schedule onto kwok's node with no toleration, so the real node never takes their pods; a pod for the real node
# tolerates the taint and selects the label, or lives in a namespace labelled ibs.local/node=real, whose pods get both
# at admission (node_namespace_policy).
NODE_DIR=$IBS_RUN/node
NODE_NAME=ibs-node
NODE_IP=10.244.0.1
NODE_POD_SUBNET=10.244.0.0/24
NODE_BRIDGE=ibs-cni0
# Locally administered, ending in the gateway's address (10.244.0.1).
NODE_BRIDGE_MAC=02:42:0a:f4:00:01
CLUSTER_DNS_IP=10.96.0.10
NODE_CONTAINERD_SOCKET=$NODE_DIR/containerd/containerd.sock
NODE_HOST_PORTS=(5000 5001 5002 5443 9000 7233 55432 10000 4443)

# node_write_file FILE: writes stdin to FILE unless FILE holds that already. A restart rewrites every file, and
# kube-proxy exits when its configuration file changes.
node_write_file() {
  cat >"$1.new"
  if cmp -s "$1.new" "$1"; then rm -f "$1.new"; else mv "$1.new" "$1"; fi
}

# node_restart_on_change NAME FILE...: stops NAME when one of FILES changed after it started, so that start_process
# starts it again with them.
node_restart_on_change() {
  local name=$1 file; shift
  for file in "$@"; do
    if pid_alive "$IBS_RUN/pids/$name.pid" && [ "$file" -nt "$IBS_RUN/pids/$name.pid" ]; then stop_process "$name"; return 0; fi
  done
}

# Kernel and mount settings a kubelet and pod networking need, and the bridge made before the first pod so that
# its address exists for CoreDNS, the kubelet and the forwarded ports from the start (the CNI bridge plugin adopts it).
node_host_setup() {
  [ "$(findmnt -n -o PROPAGATION /)" = shared ] || mount --make-rshared /
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.ipv4.conf.all.route_localnet=1
  if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link add "$NODE_BRIDGE" type bridge
  fi
  [[ $(ip -4 addr show dev "$NODE_BRIDGE") == *"inet $NODE_IP/"* ]] || ip addr add "$NODE_IP/24" dev "$NODE_BRIDGE"
  # A MAC of its own: a bridge without one takes the lowest of its ports', so a pod deleted while the next one starts
  # changed the gateway's MAC under the new pod, whose first connections to the host then timed out on a stale ARP entry.
  ip link set "$NODE_BRIDGE" address "$NODE_BRIDGE_MAC"
  ip link set "$NODE_BRIDGE" up
  # One chain of DNAT rules, rebuilt on every start, entered from PREROUTING (pods) and OUTPUT (the host).
  iptables -t nat -N IBS-HOST-SERVICES 2>/dev/null || iptables -t nat -F IBS-HOST-SERVICES
  local port hook
  for port in "${NODE_HOST_PORTS[@]}"; do
    iptables -t nat -A IBS-HOST-SERVICES -p tcp --dport "$port" -j DNAT --to-destination "127.0.0.1:$port"
  done
  for hook in PREROUTING OUTPUT; do
    iptables -t nat -C "$hook" -d "$NODE_IP/32" -j IBS-HOST-SERVICES 2>/dev/null ||
      iptables -t nat -I "$hook" -d "$NODE_IP/32" -j IBS-HOST-SERVICES
  done
}

# The forwarded ports keep the pod's own address as the source, so PostgreSQL, whose initdb lets in loopback only,
# must also let in the pod network (with a password, as on loopback).
node_allow_pods_in_postgres() {
  local hba=$IBS_RUN/postgres/pg_hba.conf line="host    all             all             $NODE_POD_SUBNET           scram-sha-256"
  [ -f "$hba" ] || return 0
  grep -qxF "$line" "$hba" && return 0
  printf '# pods of the real node (infra/local/start.d/node.sh)\n%s\n' "$line" >>"$hba"
  PGPASSWORD=$POSTGRES_PASSWORD psql -qtA -h 127.0.0.1 -p "$POSTGRES_PORT" -U "$POSTGRES_USER" -d postgres -c 'SELECT pg_reload_conf()' >/dev/null
}

node_write_cni_config() {
  mkdir -p "$NODE_DIR/cni/net.d" "$NODE_DIR/cni/ipam"
  node_write_file "$NODE_DIR/cni/net.d/10-ibs-bridge.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "ibs-pods",
  "plugins": [
    {
      "type": "bridge", "bridge": "$NODE_BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$NODE_DIR/cni/ipam",
        "ranges": [[{ "subnet": "$NODE_POD_SUBNET", "gateway": "$NODE_IP" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
JSON
}

# containerd pulls on the host, so the loopback registries are reachable as 127.0.0.1:<port> as well as by the
# address pods know them by; the plain-HTTP ones must be declared so, the TLS one trusts the local CA.
node_write_registry_hosts() {
  local d=$NODE_DIR/containerd/certs.d host port
  for port in 5000 5001 5002; do
    for host in 127.0.0.1 "$NODE_IP"; do
      mkdir -p "$d/$host:$port"
      printf 'server = "http://%s:%s"\n\n[host."http://%s:%s"]\n  capabilities = ["pull", "resolve"]\n' \
        "$host" "$port" "$host" "$port" >"$d/$host:$port/hosts.toml"
    done
  done
  mkdir -p "$d/127.0.0.1:5443"
  printf 'server = "https://127.0.0.1:5443"\n\n[host."https://127.0.0.1:5443"]\n  capabilities = ["pull", "resolve"]\n  ca = "%s"\n' \
    "$IBS_RUN/registry-auth/ca.crt" >"$d/127.0.0.1:5443/hosts.toml"
}

# The pod sandbox image (Kubernetes' pause, built by install.d/node.sh), pushed to the local registry once, since
# registry.k8s.io cannot be reached.
NODE_PAUSE_IMAGE=127.0.0.1:5000/ibs-local/pause:$(cat "$IBS_BIN/.pause.version" 2>/dev/null)
node_push_pause_image() {
  local tag=${NODE_PAUSE_IMAGE##*:}
  curl -fs -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://127.0.0.1:5000/v2/ibs-local/pause/manifests/$tag" && return 0
  local dir; dir=$(mktemp -d)
  cp "$IBS_BIN/pause" "$dir/pause"
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$dir/Dockerfile"
  log "pushing the pod sandbox image $NODE_PAUSE_IMAGE"
  "$IBS_BIN/buildctl" --addr "$BUILDKIT_HOST" build --frontend dockerfile.v0 --local context="$dir" --local dockerfile="$dir" \
    --output "type=image,name=$NODE_PAUSE_IMAGE,push=true" >/dev/null 2>&1 || { rm -rf "$dir"; return 1; }
  rm -rf "$dir"
}

start_containerd() {
  mkdir -p "$NODE_DIR/containerd"
  node_write_file "$NODE_DIR/containerd/config.toml" <<TOML
version = 4
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"

[plugins.'io.containerd.server.v1.grpc']
  address = "$NODE_CONTAINERD_SOCKET"
[plugins.'io.containerd.server.v1.ttrpc']
  address = "$NODE_CONTAINERD_SOCKET.ttrpc"

[plugins.'io.containerd.cri.v1.runtime']
  # This machine withholds CAP_SYS_RESOURCE even from root, so the kubelet's negative oom_score_adj for sandboxes
  # (-998) cannot be set: runc would fail every pod. Clamp it to containerd's own.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        # runc 1.2+ (install.d/node.sh): containerd offers user namespaces (hostUsers: false) only with a runc
        # that supports idmapped mounts.
        BinaryName = "$IBS_BIN/runc-static"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$NODE_DIR/cni/net.d"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$NODE_PAUSE_IMAGE"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$NODE_DIR/containerd/certs.d"
TOML
  node_restart_on_change containerd "$NODE_DIR/containerd/config.toml"
  start_process containerd "$IBS_BIN/ctr --address $NODE_CONTAINERD_SOCKET version" \
    "$IBS_BIN/containerd" --config "$NODE_DIR/containerd/config.toml"
}

# node_client_cert NAME SUBJECT: a client certificate signed by the cluster's CA, and a kubeconfig using it.
node_client_cert() {
  local name=$1 subject=$2 pki=$KUBE_DIR/pki
  if [ ! -f "$NODE_DIR/pki/$name.crt" ]; then
    mkdir -p "$NODE_DIR/pki"; chmod 700 "$NODE_DIR/pki"
    openssl req -newkey rsa:2048 -nodes -keyout "$NODE_DIR/pki/$name.key" -out "$NODE_DIR/pki/$name.csr" -subj "$subject" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >"$NODE_DIR/pki/client.ext"
    openssl x509 -req -in "$NODE_DIR/pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -out "$NODE_DIR/pki/$name.crt" -days 3650 -extfile "$NODE_DIR/pki/client.ext" 2>/dev/null
  fi
  node_write_file "$NODE_DIR/$name.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: ibs-local
  cluster: { server: $KUBE_API, certificate-authority: $pki/ca.crt }
users:
- name: $name
  user: { client-certificate: $NODE_DIR/pki/$name.crt, client-key: $NODE_DIR/pki/$name.key }
contexts:
- name: ibs-local
  context: { cluster: ibs-local, user: $name }
current-context: ibs-local
YAML
  chmod 600 "$NODE_DIR/$name.kubeconfig"
}

node_ready() {
  local d=$KUBE_DIR/pki
  curl -fsS --max-time 2 --cacert "$d/ca.crt" --cert "$d/admin.crt" --key "$d/admin.key" "$KUBE_API/api/v1/nodes/$NODE_NAME" |
    node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const conditions = JSON.parse(s).status?.conditions ?? [];
      process.exit(conditions.some((c) => c.type === "Ready" && c.status === "True") ? 0 : 1);
    });'
}

start_kubelet() {
  # The kubelet's identity: the Node authorizer lets system:node:<name> in system:nodes manage that node and its pods.
  node_client_cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
  # cgroup v1 (this machine is hybrid) needs failCgroupV1: false from kubelet 1.35 on; kwok already serves
  # 127.0.0.1:10250, so the kubelet listens on the node's own address.
  node_write_file "$NODE_DIR/kubelet-config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: $KUBE_DIR/pki/ca.crt }
authorization: { mode: Webhook }
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: unix://$NODE_CONTAINERD_SOCKET
clusterDNS: [$CLUSTER_DNS_IP]
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
podCIDR: $NODE_POD_SUBNET
podLogsDir: $NODE_DIR/pod-logs
registerWithTaints:
- { key: ibs.local/node, value: real, effect: NoSchedule }
serializeImagePulls: false
# The node shares its disk with the whole machine (Go caches, registries, checkouts): the defaults (evict below 15 %
# free, image GC from 85 % used) tainted it with disk-pressure on a large disk with tens of GiB still free. Evict on
# what builds really need instead.
evictionHard: { memory.available: 100Mi, nodefs.available: 2Gi, imagefs.available: 2Gi, nodefs.inodesFree: 5% }
evictionPressureTransitionPeriod: 30s
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
YAML
  node_restart_on_change kubelet "$NODE_DIR/kubelet-config.yaml" "$NODE_DIR/kubelet.kubeconfig"
  start_process kubelet "curl -fsS --max-time 2 http://127.0.0.1:10248/healthz" \
    "$IBS_BIN/kubelet" --config "$NODE_DIR/kubelet-config.yaml" --kubeconfig "$NODE_DIR/kubelet.kubeconfig" \
      --root-dir "$NODE_DIR/kubelet" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
      --node-labels ibs.local/node=real --v 1
}

start_kube_proxy() {
  # system:kube-proxy is bound to the system:node-proxier role by the API server's default policy.
  node_client_cert kube-proxy "/CN=system:kube-proxy"
  # conntrack 0 values: leave the host's conntrack table size and timeouts as they are.
  node_write_file "$NODE_DIR/kube-proxy-config.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: { kubeconfig: $NODE_DIR/kube-proxy.kubeconfig }
mode: iptables
clusterCIDR: 10.244.0.0/16
hostnameOverride: $NODE_NAME
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s }
nodePortAddresses: [primary]
YAML
  node_restart_on_change kube-proxy "$NODE_DIR/kube-proxy-config.yaml" "$NODE_DIR/kube-proxy.kubeconfig"
  start_process kube-proxy "curl -fsS --max-time 2 http://127.0.0.1:10256/healthz" \
    "$IBS_BIN/kube-proxy" --config "$NODE_DIR/kube-proxy-config.yaml" --v 1
}

# CoreDNS on the host, answering on the node's address; the kube-dns Service points there through an EndpointSlice
# of our own (the Service has no selector, there is no DNS pod).
start_coredns() {
  node_write_file "$NODE_DIR/Corefile" <<COREFILE
.:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:10280
    ready 127.0.0.1:10281
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $KUBE_DIR/kubeconfig ibs-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 30
    loop
    loadbalance
}
COREFILE
  node_restart_on_change coredns "$NODE_DIR/Corefile"
  start_process coredns "http_ok http://127.0.0.1:10281/ready" "$IBS_BIN/coredns" -conf "$NODE_DIR/Corefile"
  kube_apply /api/v1/namespaces/kube-system/services/kube-dns "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"kube-dns\",\"namespace\":\"kube-system\",\"labels\":{\"k8s-app\":\"kube-dns\"}},\"spec\":{\"clusterIP\":\"$CLUSTER_DNS_IP\",\"ports\":[{\"name\":\"dns\",\"port\":53,\"protocol\":\"UDP\"},{\"name\":\"dns-tcp\",\"port\":53,\"protocol\":\"TCP\"}]}}"
  kube_apply /apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices/kube-dns-host "{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\",\"metadata\":{\"name\":\"kube-dns-host\",\"namespace\":\"kube-system\",\"labels\":{\"kubernetes.io/service-name\":\"kube-dns\",\"endpointslice.kubernetes.io/managed-by\":\"ibs-local\"}},\"addressType\":\"IPv4\",\"endpoints\":[{\"addresses\":[\"$NODE_IP\"],\"conditions\":{\"ready\":true},\"nodeName\":\"$NODE_NAME\"}],\"ports\":[{\"name\":\"dns\",\"port\":53,\"protocol\":\"UDP\"},{\"name\":\"dns-tcp\",\"port\":53,\"protocol\":\"TCP\"}]}"
}

# Pods of a namespace labelled ibs.local/node=real get the node's toleration and node selector at admission, so that
# pods whose spec we do not write (the kubernetes executor's builder pods, the chart's) run on the real node.
node_namespace_policy() {
  kube_apply /apis/admissionregistration.k8s.io/v1/mutatingadmissionpolicies/ibs-real-node "$(cat <<'YAML'
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: { name: ibs-real-node }
spec:
  failurePolicy: Fail
  reinvocationPolicy: Never
  matchConstraints:
    resourceRules:
    - { apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods] }
  mutations:
  - patchType: JSONPatch
    jsonPatch:
      expression: >-
        (has(object.spec.tolerations)
          ? [JSONPatch{op: "add", path: "/spec/tolerations/-",
              value: Object.spec.tolerations{key: "ibs.local/node", operator: "Equal", value: "real", effect: "NoSchedule"}}]
          : [JSONPatch{op: "add", path: "/spec/tolerations",
              value: [Object.spec.tolerations{key: "ibs.local/node", operator: "Equal", value: "real", effect: "NoSchedule"}]}])
        + (has(object.spec.nodeSelector)
          ? [JSONPatch{op: "add", path: "/spec/nodeSelector/" + jsonpatch.escapeKey("ibs.local/node"), value: "real"}]
          : [JSONPatch{op: "add", path: "/spec/nodeSelector", value: {"ibs.local/node": "real"}}])
YAML
)"
  kube_apply /apis/admissionregistration.k8s.io/v1/mutatingadmissionpolicybindings/ibs-real-node \
    '{"apiVersion":"admissionregistration.k8s.io/v1","kind":"MutatingAdmissionPolicyBinding","metadata":{"name":"ibs-real-node"},"spec":{"policyName":"ibs-real-node","matchResources":{"namespaceSelector":{"matchLabels":{"ibs.local/node":"real"}}}}}'
}

start_node() {
  mkdir -p "$NODE_DIR"
  node_host_setup
  node_allow_pods_in_postgres
  node_write_cni_config
  node_write_registry_hosts
  node_push_pause_image
  start_containerd
  start_kubelet
  start_kube_proxy
  start_coredns
  node_namespace_policy
  local i
  for i in $(seq 1 120); do node_ready && return 0; sleep 0.5; done
  log "node $NODE_NAME did not become Ready within 60 s; see $IBS_RUN/logs/kubelet.log"
  return 1
}

start_node
