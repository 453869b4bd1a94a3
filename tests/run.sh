#!/usr/bin/env bash
# run.sh BUILD_DIR -- runs every test program (BUILD_DIR/tests/test_*) and
# every shell test (tests/*_test.sh, given BUILD_DIR), adds up their
# "RESULT suite passed=N failed=M" lines, and ends with "N passed, N failed".
# A program that crashes or prints no RESULT line counts as one failure.
set -u
B=${1:-build/release}
cd "$(dirname "$0")/.."
pass=0 fail=0 skip=0
run_one() {
    local name=$1; shift
    local log
    log=$(mktemp)
    local t0=$(date +%s)
    "$@" >"$log" 2>&1
    local rc=$?
    local t1=$(date +%s)
    cat "$log"
    local lines
    lines=$(grep -E '^RESULT [^ ]+ passed=[0-9]+ failed=[0-9]+ skipped=[0-9]+$' "$log")
    if [ -z "$lines" ]; then
        echo "not ok $name: exited $rc without a RESULT line"
        fail=$((fail + 1))
    else
        while read -r _ suite p f s; do
            pass=$((pass + ${p#passed=}))
            fail=$((fail + ${f#failed=}))
            skip=$((skip + ${s#skipped=}))
        done <<<"$lines"
        if [ $rc -ne 0 ] && ! grep -qE 'failed=[1-9]' <<<"$lines"; then
            echo "not ok $name: exited $rc"
            fail=$((fail + 1))
        fi
    fi
    echo "# $name: $((t1 - t0)) s"
    rm -f "$log"
}
for t in "$B"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.d|*.o) continue ;; esac
    run_one "$(basename "$t")" "$t"
done
for s in tests/*_test.sh; do
    [ -f "$s" ] || continue
    run_one "$(basename "$s")" bash "$s" "$B"
done
echo
[ "$skip" -gt 0 ] && echo "($skip skipped)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
