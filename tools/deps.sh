#!/usr/bin/env bash
# Installs what the shop needs, and only what is missing, so that a second run
# costs nothing and needs no network.
#
#   tools/deps.sh build    what `make` needs: compiler, pkg-config and the -dev
#                          packages of tools/libraries.list
#   tools/deps.sh [all]    that, and what make run, make test and make bench need
#                          (Redis, Node.js, Chromium, wrk, ...) and the npm packages
#                          of tools/package.json in tools/node_modules
#
# Everything comes from Debian's own packages and the npm registry. The npm
# packages are pinned to versions that run on Debian 12's Node.js 18.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
case $what in build | all) ;; *) echo "usage: tools/deps.sh [build|all]" >&2; exit 2 ;; esac

debs=(make gcc libc6-dev pkg-config)
while read -r _ package _; do
    case $package in '' | package) continue ;; esac
    debs+=("$package")
done < <(grep -v '^[[:space:]]*#' tools/libraries.list)
if [ "$what" = all ]; then
    debs+=(clang libclang-rt-dev clang-format python3-botocore
           redis-server postgresql curl chromium wrk haproxy nginx testssl.sh gnuplot-nox systemd prometheus sqlite3 ca-certificates fonts-dejavu-core
           tmux iproute2 jq python3-flask python3-flask-sqlalchemy gunicorn)
    command -v node >/dev/null 2>&1 || debs+=(nodejs)
    command -v npm >/dev/null 2>&1 || debs+=(npm)
fi

missing=()
for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    # Several library lines may name one package.
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
    echo "deps: installing ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "deps: these Debian packages are missing; install them as root: apt-get install ${missing[*]}" >&2
            exit 1
        }
        sudo=sudo
    fi
    $sudo apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
[ "$what" = all ] || exit 0

# The npm packages' pins accept Node.js 18 (Debian 12) and later.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 18 ]; then
    echo "deps: Node.js $(node --version 2>/dev/null || echo '(none)') is too old: the tools need 18 or later" >&2
    exit 1
fi

# npm packages (dynalite, playwright-core) live in tools/node_modules, git-ignored.
if [ -f tools/package.json ]; then
    if [ ! -d tools/node_modules ] || [ tools/package-lock.json -nt tools/node_modules ]; then
        echo "deps: installing npm packages into tools/node_modules"
        (cd tools && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        touch tools/node_modules
    fi
fi
