#!/usr/bin/env bash
# Installs what building, testing and running the shop needs, and only what is
# missing, so that a second run costs nothing and needs no network.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(make gcc pkg-config clang libclang-rt-dev
      libevent-dev libsqlite3-dev libjansson-dev libcurl4-openssl-dev libssl-dev libhiredis-dev
      libcriterion-dev libhttp-parser-dev
      redis-server curl chromium wrk haproxy testssl.sh gnuplot-nox systemd sqlite3 ca-certificates fonts-dejavu-core)
command -v node >/dev/null 2>&1 || debs+=(nodejs)
command -v npm >/dev/null 2>&1 || debs+=(npm)

missing=()
for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages (dynalite, playwright-core) live in tools/node_modules, git-ignored.
if [ -f tools/package.json ]; then
    if [ ! -d tools/node_modules ] || [ tools/package-lock.json -nt tools/node_modules ]; then
        echo "deps: installing npm packages into tools/node_modules"
        (cd tools && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        touch tools/node_modules
    fi
fi
