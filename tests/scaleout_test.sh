#!/usr/bin/env bash
# scaleout_test.sh BUILD_DIR -- tools/scaleout.sh for a short bounded run: three replicas of the
# demo model behind HAProxy, one restarted (drained) mid-load, no request may fail; with every
# replica down the balancer's 503 is JSON in the API's shape. Skips, saying
# why, without haproxy (.ci/setup-server.sh installs it).
set -u
B=${1:-build/release}
cd "$(dirname "$0")/.."
if ! command -v haproxy >/dev/null; then
    echo "SKIP scaleout: haproxy is not installed (apt-get install haproxy)"
    echo "RESULT scaleout passed=0 failed=0 skipped=1"
    exit 0
fi
SECS=12
[ -n "${GLMV_SANITIZE:-}" ] && SECS=20
out=$(bash tools/scaleout.sh $SECS 4 "$B" 2>&1)
rc=$?
echo "$out" | grep -v -E '^\[(NOTICE|WARNING)\]'
# a conversation stays on its replica, but for one whose replica was restarting between its turns
moved=$(echo "$out" | sed -n 's/^second turns on another replica than the first: \([0-9]*\);.*/\1/p')
if [ $rc -eq 0 ] && echo "$out" | grep -q 'scaleout: requests=[1-9][0-9]* failed=0' &&
   echo "$out" | grep -q '^no replica up: 503 application/json "code":"no_replica"' &&
   [ -n "$moved" ] && [ "$moved" -le 4 ]; then
    echo "ok scaleout_drain_and_affinity"
    echo "RESULT scaleout passed=1 failed=0 skipped=0"
else
    echo "not ok scaleout_drain_and_affinity: exit $rc"
    echo "RESULT scaleout passed=0 failed=1 skipped=0"
    exit 1
fi
