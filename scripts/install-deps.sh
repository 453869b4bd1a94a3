#!/usr/bin/env bash
# install-deps.sh -- the Debian packages glmv builds and tests with.
# Run as root (or with sudo available). Idempotent. Generic names (libjpeg-dev, libclang-rt-dev,
# which follows the default clang) so that the list installs on Debian and Ubuntu alike.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
PKGS=(build-essential pkg-config clang libclang-rt-dev
      libcjson-dev libpcre2-dev libmicrohttpd-dev libcurl4-openssl-dev
      libjpeg-dev libpng-dev libdeflate-dev libwebp-dev libgif-dev libexif-dev
      libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
      libpoppler-glib-dev libcairo2-dev fonts-dejavu-core
      libedit-dev jq)
missing=()
for p in "${PKGS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${missing[@]}"
fi
