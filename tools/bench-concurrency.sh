#!/usr/bin/env bash
# One shopd alone at 32 and 256 connections: does its rate hold as connections grow
# (target: c256 at least 90% of c32), and how do the two workers share them?
#
#   tools/bench-concurrency.sh [DURATION]     (default 3s; RUNS=3, BENCH_PATH=/browser/inventory)
#   BENCH_VIA=balancer tools/bench-concurrency.sh     the same through one balancer
#                                                     in front of that shopd
#
# One shopd (SHOPD_WORKERS=2, a SQLite file with 20 products, rate limiting and the
# dispatcher off), nothing else serving beside it. wrk -t2 at c32 and c256 alternately,
# RUNS pairs; halfway through each run it counts each worker's open descriptors
# (about ten of them are not connections), since both workers accept from one
# listening socket and nothing spreads connections evenly between them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/bin}
DURATION=${1:-3s}
RUNS=${RUNS:-3}
BENCH_PATH=${BENCH_PATH:-/browser/inventory}
BENCH_VIA=${BENCH_VIA:-direct}
die() {
    echo "bench-concurrency: $*" >&2
    exit 1
}
for tool in wrk curl sqlite3 openssl; do
    command -v "$tool" >/dev/null || die "$tool is not installed (make deps)"
done
[ -x "$BIN/shopd" ] || die "build first (make)"
case "$BENCH_VIA" in
direct) ;;
balancer) [ -x "$BIN/balancer" ] || die "build first (make)" ;;
*) die "BENCH_VIA is direct or balancer, not '$BENCH_VIA'" ;;
esac
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"
. tools/lib.sh

WORK=$(mktemp -d /tmp/bench-concurrency-XXXXXX)
SHOPD=
BALANCER=
cleanup() {
    [ -z "$BALANCER" ] || { kill "$BALANCER" 2>/dev/null || true; wait "$BALANCER" 2>/dev/null || true; }
    [ -z "$SHOPD" ] || { kill "$SHOPD" 2>/dev/null || true; wait "$SHOPD" 2>/dev/null || true; }
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT=$(free_port)
SHOPD_LISTEN=127.0.0.1:$PORT SHOPD_WORKERS=2 DATABASE_URL="sqlite:///$WORK/shop.db" SHOP_ENV=development \
    SECRET_KEY=$(openssl rand -hex 32) RATELIMIT_ENABLED=0 DISPATCHER_ENABLED=0 LOG_LEVEL=warn \
    TEMPLATES_DIR=$ROOT/templates STATIC_DIR=$ROOT/templates/static "$BIN/shopd" --env /dev/null >"$WORK/shopd.log" 2>&1 &
SHOPD=$!
wait_port "$PORT" 200 || { cat "$WORK/shopd.log" >&2; exit 1; }
wait_until "curl -sf http://127.0.0.1:$PORT/healthz >/dev/null" 200
seed_products "$WORK/shop.db" 20
TARGET=$PORT
if [ "$BENCH_VIA" = balancer ]; then
    TARGET=$(free_port)
    BALANCER_LISTEN=127.0.0.1:$TARGET BALANCER_ADMIN_LISTEN= BALANCER_BACKENDS=127.0.0.1:$PORT \
        BALANCER_ACCESS_LOG=0 LOG_FILE="$WORK/balancer.log" "$BIN/balancer" --env /dev/null 2>"$WORK/balancer.err" &
    BALANCER=$!
    wait_until "curl -sf http://127.0.0.1:$TARGET/healthz >/dev/null" 200 || { cat "$WORK/balancer.err" >&2; exit 1; }
fi

echo "shopd (2 workers), GET $BENCH_PATH, $BENCH_VIA, wrk -t2 -d$DURATION, $RUNS pairs"
printf "%5s %10s %8s   %s\n" conns "req/s" "p99ms" "open fds per worker"
: >"$WORK/c32" && : >"$WORK/c256"
for _ in $(seq "$RUNS"); do
    for conns in 32 256; do
        (
            sleep "$(awk -v d="${DURATION%s}" 'BEGIN { print d / 2 }')"
            for w in $(pgrep -P "$SHOPD"); do printf '%s ' "$(ls "/proc/$w/fd" | wc -l)"; done
        ) >"$WORK/fds" &
        counter=$!
        result=$(wrk_get "$TARGET" "$conns" "$BENCH_PATH")
        wait "$counter" || true
        echo "$result" >>"$WORK/c$conns"
        printf "%5s %10s %8s   %s\n" "$conns" ${result} "$(cat "$WORK/fds")"
    done
done
ratio=$(pair_ratio "$WORK/c256" "$WORK/c32" 1)
echo "c256 / c32 requests/s, median of the pairs: $ratio (target >= 0.90)"
