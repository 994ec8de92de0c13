# shellcheck shell=bash
# Sourced by infra/local/start.sh: olareg on 127.0.0.1:5010, in memory, a registry that implements the OCI referrers
# API (install.d/olareg.sh says why not zot), so the signing tests see signatures stored as referrers as well as
# under the referrers tag scheme of distribution on 5000. Loopback: BuildKit talks plain HTTP to it.
start_process olareg "curl -fsS -o /dev/null http://127.0.0.1:5010/v2/" \
  "$IBS_BIN/olareg" serve --addr 127.0.0.1 --port 5010 --store-type mem
