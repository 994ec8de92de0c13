#!/usr/bin/env bash
# The README's second command (npm test): installs and starts what the tests need, then runs the type check,
# the lint and dependency rules, and every test suite against the real components.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
bash "$here/install.sh" all
bash "$here/start.sh"
. "$here/lib.sh"
load_stack_env
npm run --silent typecheck
npm run --silent lint
npx vitest run "$@"
