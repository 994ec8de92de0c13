# shellcheck shell=bash
# Sourced by infra/local/start.sh: a Kubernetes control plane on loopback for the kubernetes executor's tests.
# etcd (127.0.0.1:23790, clear of the 2379 default), kube-apiserver (https://127.0.0.1:6443), kube-scheduler and
# kube-controller-manager (scheduling, the default service account, owner-reference garbage collection), and kwok,
# which plays the kubelet of one fake node and moves pods through phases by the Stage rules in
# test/kubernetes/support/kwok-stages.yaml (only on its own node: start.d/node.sh runs a real one beside it). The
# admin kubeconfig is $IBS_RUN/kube/kubeconfig. Health checks and PID files as for the other components.
KUBE_DIR=$IBS_RUN/kube
KUBE_API=https://127.0.0.1:6443
KUBE_NODE=ibs-kwok-node
# The address the API server advertises: the real node's bridge gateway (NODE_IP of start.d/node.sh). The API server
# publishes it as the endpoint of the `kubernetes` Service (10.96.0.1:443), so pods on the real node reach it through
# kube-proxy, as in any cluster. It listens on every address for that, and IBS-KUBE-API (kube_guard_api_port) lets
# only loopback and the pod bridge in, so the stack's promise of "nothing on the machine's network" holds.
KUBE_ADVERTISE_ADDRESS=10.244.0.1
KUBE_API_SANS="IP:127.0.0.1,IP:10.96.0.1,IP:$KUBE_ADVERTISE_ADDRESS,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"

# A CA, the API server's serving certificate, one admin client certificate (system:masters) shared by the local
# components and the tests, and the service-account signing key pair. Made once per $IBS_RUN (the serving
# certificate again when its names change).
kube_make_certs() {
  local d=$KUBE_DIR/pki
  kube_make_serving_cert
  [ -f "$d/admin.crt" ] && return 0
  (
    cd "$d"
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=ibs-admin" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 3650 -extfile admin.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

# The CA (made once) and the API server's serving certificate, made again whenever its names (KUBE_API_SANS) change,
# under the same CA: kubeconfigs, service-account tokens and the pods' kube-root-ca.crt stay valid.
kube_make_serving_cert() {
  local d=$KUBE_DIR/pki ext
  mkdir -p "$d"; chmod 700 "$d"
  ext=$(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$KUBE_API_SANS")
  [ -f "$d/ca.crt" ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" -days 3650 -subj "/CN=ibs-local-kube-ca" 2>/dev/null
  [ -f "$d/apiserver.crt" ] && [ "$(cat "$d/apiserver.ext" 2>/dev/null)" = "$ext" ] && return 0
  (
    cd "$d"
    printf '%s\n' "$ext" >apiserver.ext
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 3650 -extfile apiserver.ext 2>/dev/null
  )
}

# The API server listens on every address (see KUBE_ADVERTISE_ADDRESS); only loopback and the pod bridge may connect.
kube_guard_api_port() {
  iptables -N IBS-KUBE-API 2>/dev/null || iptables -F IBS-KUBE-API
  iptables -A IBS-KUBE-API -i lo -j RETURN
  iptables -A IBS-KUBE-API -i ibs-cni0 -j RETURN
  iptables -A IBS-KUBE-API -j DROP
  iptables -C INPUT -p tcp --dport 6443 -j IBS-KUBE-API 2>/dev/null || iptables -I INPUT -p tcp --dport 6443 -j IBS-KUBE-API
}

kube_write_kubeconfig() {
  local d=$KUBE_DIR/pki
  cat >"$KUBE_DIR/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: ibs-local
  cluster:
    server: $KUBE_API
    certificate-authority: $d/ca.crt
users:
- name: ibs-admin
  user:
    client-certificate: $d/admin.crt
    client-key: $d/admin.key
contexts:
- name: ibs-local
  context: { cluster: ibs-local, user: ibs-admin }
current-context: ibs-local
YAML
  chmod 600 "$KUBE_DIR/kubeconfig"
}

kube_ready() { curl -fsS --max-time 2 --cacert "$KUBE_DIR/pki/ca.crt" "$KUBE_API/readyz" >/dev/null; }

# kubectl-free helper for the few writes this script needs: applies a JSON object with server-side apply.
kube_apply() {
  local path=$1 body=$2 d=$KUBE_DIR/pki
  curl -fsS --max-time 10 --cacert "$d/ca.crt" --cert "$d/admin.crt" --key "$d/admin.key" -X PATCH \
    -H 'Content-Type: application/apply-patch+yaml' --data "$body" \
    "$KUBE_API$path?fieldManager=ibs-local&force=true" >/dev/null
}

start_kubernetes() {
  mkdir -p "$KUBE_DIR"
  kube_make_certs
  kube_write_kubeconfig
  local d=$KUBE_DIR/pki
  start_process kube-etcd "http_ok http://127.0.0.1:23790/health" \
    "$IBS_BIN/etcd" --name ibs-kube --data-dir "$KUBE_DIR/etcd" \
      --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
      --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
      --initial-cluster ibs-kube=http://127.0.0.1:23800 --listen-metrics-urls "" --log-level warn
  kube_guard_api_port
  # A running API server started with other flags or before its certificate changed is restarted (a few seconds; its
  # clients reconnect).
  local flags="--bind-address 0.0.0.0 --advertise-address $KUBE_ADVERTISE_ADDRESS"
  if pid_alive "$IBS_RUN/pids/kube-apiserver.pid" &&
     { [ "$d/apiserver.crt" -nt "$IBS_RUN/pids/kube-apiserver.pid" ] ||
       ! grep -qF -- "$flags " <<<"$(tr '\0' ' ' <"/proc/$(cat "$IBS_RUN/pids/kube-apiserver.pid")/cmdline")"; }; then
    stop_process kube-apiserver
  fi
  start_process kube-apiserver kube_ready \
    "$IBS_BIN/kube-apiserver" --etcd-servers http://127.0.0.1:23790 \
      $flags --secure-port 6443 \
      --tls-cert-file "$d/apiserver.crt" --tls-private-key-file "$d/apiserver.key" --client-ca-file "$d/ca.crt" \
      --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$d/sa.pub" \
      --service-account-signing-key-file "$d/sa.key" --service-cluster-ip-range 10.96.0.0/16 \
      --authorization-mode Node,RBAC --kubelet-client-certificate "$d/admin.crt" --kubelet-client-key "$d/admin.key" \
      --kubelet-preferred-address-types InternalIP --v 1
  start_process kube-scheduler "curl -fsSk --max-time 2 https://127.0.0.1:10259/healthz" \
    "$IBS_BIN/kube-scheduler" --kubeconfig "$KUBE_DIR/kubeconfig" --authentication-kubeconfig "$KUBE_DIR/kubeconfig" \
      --authorization-kubeconfig "$KUBE_DIR/kubeconfig" --authentication-skip-lookup --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false
  start_process kube-controller-manager "curl -fsSk --max-time 2 https://127.0.0.1:10257/healthz" \
    "$IBS_BIN/kube-controller-manager" --kubeconfig "$KUBE_DIR/kubeconfig" \
      --authentication-kubeconfig "$KUBE_DIR/kubeconfig" --authorization-kubeconfig "$KUBE_DIR/kubeconfig" --authentication-skip-lookup \
      --bind-address 127.0.0.1 --secure-port 10257 --leader-elect=false \
      --service-account-private-key-file "$d/sa.key" --root-ca-file "$d/ca.crt" --use-service-account-credentials=false \
      --controllers '*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle'
  # kwok plays the kubelet of one node: the node's and the pods' phases from the project's Stage rules, and every
  # container's log served from one file (CRI log format) that the tests write.
  local stages
  stages=$(cd "$here/../.." && pwd)/test/kubernetes/support/kwok-stages.yaml
  [ -f "$KUBE_DIR/builder.log" ] || printf '%s stdout F simulated builder log\n' "$(date -u +%Y-%m-%dT%H:%M:%S.000000000Z)" >"$KUBE_DIR/builder.log"
  { cat "$stages"; printf -- '---\napiVersion: kwok.x-k8s.io/v1alpha1\nkind: ClusterLogs\nmetadata: { name: ibs-builder-logs }\nspec:\n  selector: {}\n  logs:\n  - logsFile: %s\n    follow: false\n' "$KUBE_DIR/builder.log"; } >"$KUBE_DIR/kwok.yaml"
  # No node lease (--node-lease-duration-seconds): with one, kwok waits a lease period (40 s) before it plays the
  # node; the node's heartbeat is its Ready condition, refreshed by the ibs-node-heartbeat stage.
  local kwok=("$IBS_BIN/kwok" --kubeconfig "$KUBE_DIR/kubeconfig" --config "$KUBE_DIR/kwok.yaml"
    --manage-single-node "$KUBE_NODE" --node-ip 127.0.0.1 --node-port 10250 --server-address 127.0.0.1:10250
    --tls-cert-file "$d/apiserver.crt" --tls-private-key-file "$d/apiserver.key")
  # kwok reads its Stage rules once: a running kwok whose rules changed (a new outcome the tests use) starts again.
  restart_if_changed kwok "${kwok[*]}" "$KUBE_DIR/kwok.yaml"
  start_process kwok "curl -fsSk --max-time 2 https://127.0.0.1:10250/healthz" "${kwok[@]}"
  kube_apply "/api/v1/nodes/$KUBE_NODE" "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"$KUBE_NODE\",\"labels\":{\"type\":\"kwok\",\"kubernetes.io/hostname\":\"$KUBE_NODE\",\"kubernetes.io/os\":\"linux\",\"kubernetes.io/arch\":\"amd64\"},\"annotations\":{\"kwok.x-k8s.io/node\":\"fake\"}}}"
  # kwok keeps a node's own capacity; ephemeral-storage must be there for pods that request it to be scheduled.
  local capacity='{"cpu":"64","memory":"256Gi","ephemeral-storage":"2Ti","pods":"250"}'
  curl -fsS --max-time 10 --cacert "$d/ca.crt" --cert "$d/admin.crt" --key "$d/admin.key" -X PATCH \
    -H 'Content-Type: application/merge-patch+json' --data "{\"status\":{\"allocatable\":$capacity,\"capacity\":$capacity}}" \
    "$KUBE_API/api/v1/nodes/$KUBE_NODE/status" >/dev/null
}

start_kubernetes
