#!/usr/bin/env bash
# Runs a command with the local components installed and started, and their settings in the environment.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
bash "$here/install.sh" all
use_cached_node   # a first run has just installed Node.js 24
bash "$here/start.sh"
load_stack_env
exec "$@"
