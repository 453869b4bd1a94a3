#!/usr/bin/env bash
# server_test.sh BUILD_DIR -- the end-to-end tests of `glmv serve` (tests/server/*.test.mjs,
# node's test runner): the official openai client, hostile HTTP, concurrency, the page in
# headless Chromium. Servers run on free loopback ports. Prints
# "RESULT server passed=N failed=M skipped=K"; skips, saying why, when node or
# tests/server/node_modules is missing (.ci/setup-server.sh installs them).
# A small real checkpoint (models/demo, or tests/fixtures/tiny*) is also served when present.
set -u
B=${1:-build/release}
cd "$(dirname "$0")/.."
BIN=$PWD/$B/glmv
skip() {
    echo "SKIP server tests: $1"
    echo "RESULT server passed=0 failed=0 skipped=1"
    exit 0
}
command -v node >/dev/null || skip "node is not installed (run .ci/setup-server.sh)"
[ -d tests/server/node_modules/openai ] || skip "tests/server/node_modules is missing (run .ci/setup-server.sh)"
[ -x "$BIN" ] || { echo "no $BIN"; echo "RESULT server passed=0 failed=1 skipped=0"; exit 1; }
[ -x /usr/bin/chromium ] || echo "note: no /usr/bin/chromium: the page tests will be skipped"
if [ -z "${GLMV_REAL_MODEL:-}" ]; then
    for d in models/demo tests/fixtures/tiny*; do
        if [ -f "$d/config.json" ] && [ -f "$d/tokenizer.json" ]; then GLMV_REAL_MODEL=$PWD/$d; break; fi
    done
fi
[ -n "${GLMV_REAL_MODEL:-}" ] && echo "real checkpoint: $GLMV_REAL_MODEL"
log=$(mktemp)
# one file at a time: the machine has 2 cores; each file starts its own servers
GLMV_BIN=$BIN GLMV_REAL_MODEL=${GLMV_REAL_MODEL:-} timeout 900 \
    node --test --test-concurrency=1 --test-reporter=tap tests/server/*.test.mjs >"$log" 2>&1
rc=$?
grep -E '^(not )?ok |^# (Subtest|pass|fail|skipped)|^ +(error|expected|actual|location):' "$log"
grep -qE '^# fail [1-9]' "$log" && sed -n '1,400p' "$log" | grep -vE '^ +duration_ms|^ +\.\.\.$|^ +---$' | tail -120
pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -1)
fail=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log" | tail -1)
skipped=$(sed -n 's/^# skipped \([0-9]*\)$/\1/p' "$log" | tail -1)
rm -f "$log"
if [ -z "$pass" ]; then
    echo "node's test runner printed no summary (exit $rc)"
    echo "RESULT server passed=0 failed=1 skipped=0"
    exit 1
fi
[ "$rc" -ne 0 ] && [ "${fail:-0}" -eq 0 ] && fail=1
echo "RESULT server passed=$pass failed=${fail:-0} skipped=${skipped:-0}"
[ "${fail:-0}" -eq 0 ]
