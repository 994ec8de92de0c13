# shellcheck shell=bash
# Sourced by infra/local/start.sh: three more instances of Debian's docker-registry for the registry tests, each with
# its own config and storage, on loopback:
#   127.0.0.1:5001  plain HTTP, htpasswd (Basic)
#   127.0.0.1:5002  plain HTTP, token auth (Bearer); realm http://127.0.0.1:5081/token, served by the test suite
#   127.0.0.1:5443  HTTPS with a certificate of a self-signed local CA, htpasswd; pods reach it as 10.244.0.1:5443
#                   (start.d/node.sh forwards the port), which the certificate names too
# Users (passwords generated once, kept in $IBS_RUN/registry-auth/ for the tests): ibs-push, ibs-pull.
registry_auth_dir=$IBS_RUN/registry-auth
# Where the real node's pods reach the host (start.d/node.sh, NODE_IP); the TLS certificate names it too.
registry_tls_pod_address=${NODE_IP:-10.244.0.1}

registry_auth_material() {
  local d=$registry_auth_dir
  mkdir -p "$d"; chmod 700 "$d"
  local user
  for user in ibs-push ibs-pull; do
    [ -s "$d/$user.password" ] || (umask 077; openssl rand -hex 16 >"$d/$user.password")
  done
  if [ ! -s "$d/htpasswd" ]; then
    htpasswd -Bbn ibs-push "$(cat "$d/ibs-push.password")" >"$d/htpasswd.tmp"
    htpasswd -Bbn ibs-pull "$(cat "$d/ibs-pull.password")" >>"$d/htpasswd.tmp"
    mv "$d/htpasswd.tmp" "$d/htpasswd"
  fi
  if [ ! -s "$d/ca.crt" ] || [ ! -s "$d/ca.key" ]; then
    # A local CA that nobody trusts by default: what buildkitd's ca=[...] and ALLOW_SELF_SIGNED_CERTS are about.
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj '/CN=ibs-local-test-ca' \
      -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    rm -f "$d/tls.crt"
  fi
  # The server certificate, signed by that CA, names every address the registry is reached at: loopback, and the
  # real node's address that pods use (start.d/node.sh forwards it to loopback). Made again when an older one
  # lacks an address, so that a machine set up before keeps working with a plain start.sh.
  if ! openssl x509 -in "$d/tls.crt" -noout -ext subjectAltName 2>/dev/null | grep -q "IP Address:$registry_tls_pod_address\b"; then
    openssl req -newkey rsa:2048 -nodes -subj '/CN=127.0.0.1' -keyout "$d/tls.key" -out "$d/tls.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,IP:%s,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
      "$registry_tls_pod_address" >"$d/tls.ext"
    openssl x509 -req -in "$d/tls.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
      -extfile "$d/tls.ext" -out "$d/tls.crt.tmp" 2>/dev/null
    mv "$d/tls.crt.tmp" "$d/tls.crt"
  fi
  if [ ! -s "$d/token.crt" ]; then
    # The token server signs its JWTs with this key; the registry trusts the certificate (x5c header).
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj '/CN=ibs-test-token-server' \
      -keyout "$d/token.key" -out "$d/token.crt" 2>/dev/null
  fi
}

# registry_auth_instance NAME PORT AUTH-YAML [TLS-YAML]
registry_auth_instance() {
  local name=$1 port=$2 auth=$3 tls=${4:-}
  mkdir -p "$registry_auth_dir/$name"
  cat >"$registry_auth_dir/$name.yml" <<YML
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $registry_auth_dir/$name }
  delete: { enabled: true }
http:
  addr: 127.0.0.1:$port
$tls
auth:
$auth
YML
  local scheme=http; [ -n "$tls" ] && scheme=https
  # Healthy means it answers the API base with its auth challenge.
  start_process "$name" "[ \"\$(curl -ks -o /dev/null -w '%{http_code}' $scheme://127.0.0.1:$port/v2/)\" = 401 ]" \
    /usr/bin/docker-registry serve "$registry_auth_dir/$name.yml"
}

registry_auth_material
registry_auth_instance registry-htpasswd 5001 \
  "  htpasswd: { realm: ibs-test-basic, path: $registry_auth_dir/htpasswd }"
registry_auth_instance registry-token 5002 \
  "  token: { realm: 'http://127.0.0.1:5081/token', service: ibs-test-registry, issuer: ibs-test-token-server, rootcertbundle: $registry_auth_dir/token.crt }"
# A running TLS registry keeps the certificate it started with: restart it when the certificate is newer.
if pid_alive "$IBS_RUN/pids/registry-tls.pid" && [ "$registry_auth_dir/tls.crt" -nt "$IBS_RUN/pids/registry-tls.pid" ]; then
  stop_process registry-tls
fi
registry_auth_instance registry-tls 5443 \
  "  htpasswd: { realm: ibs-test-tls, path: $registry_auth_dir/htpasswd }" \
  "  tls: { certificate: $registry_auth_dir/tls.crt, key: $registry_auth_dir/tls.key }"
log "test registries up: 127.0.0.1:5001 (htpasswd), 127.0.0.1:5002 (token, realm 127.0.0.1:5081), 127.0.0.1:5443 (TLS, also $registry_tls_pod_address:5443 for pods, local CA $registry_auth_dir/ca.crt)"
