#!/usr/bin/env bash
# setup-server.sh -- what the server tests need (run by .ci/run): Node.js and npm,
# Debian's Chromium for the page test, HAProxy for the scale-out test, and tests/server/node_modules (the openai
# client and playwright-core, pinned by package-lock.json; no browser download).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v haproxy >/dev/null || missing+=(haproxy)    # tests/scaleout_test.sh
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${missing[@]}"
fi
cd tests/server
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if ! npm ci --no-audit --no-fund --loglevel=error; then
    npm install --no-audit --no-fund --loglevel=error
fi
