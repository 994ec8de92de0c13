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
# The JSON report gives CI a plain closing line ("N passed, N failed") besides vitest's own summary.
report="$IBS_RUN/vitest-report.json"
rm -f "$report"
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
if [ -f "$report" ]; then
  node -e 'const r = require(process.argv[1]);
    console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);' "$report"
fi
exit "$status"
