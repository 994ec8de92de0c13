#!/usr/bin/env bash
# Runs a command with the local components installed and started, and their settings in the environment.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
bash "$here/install.sh" all
bash "$here/start.sh"
load_stack_env
exec "$@"
