#!/usr/bin/env bash
# Benchmarks bin/balancer against HAProxy (one thread, keep-alive to the
# backends) in front of the same backends, in the same run.
#
#   tools/bench-balancer.sh [DURATION]      (default 10s; BIN=... for another build)
#
# Backends: bin/shopd when it exists (GET /products), else tests/load/bench_backend.c
# built here. Scenarios: GET and a small POST (tests/load/balancer_post.lua) at 64
# and 256 connections, wrk -t2; balancer and HAProxy runs alternate, 5 runs each (RUNS).
# Prints the median requests/s and p99 latency of each and the ratios
# balancer/HAProxy (target: requests/s ratio >= 1, p99 ratio <= 1), and writes
# them to $OUT (default test-output/bench-balancer.txt).
# Like with like: HAProxy is told to do the header work the balancer always does
# (X-Forwarded-For, X-Forwarded-Proto, an X-Request-Id on request and answer) and
# to check health as often; it logs nothing, so ACCESS_LOG=0 (default) turns the
# balancer's access log off too (ACCESS_LOG=1 writes it to a file anyway).
# The ratios are medians of per-pair ratios: each balancer run is paired with the
# HAProxy run right after it, so a slow minute of the shared machine hits both.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/bin}
DURATION=${1:-10s}
RUNS=${RUNS:-5}
ACCESS_LOG=${ACCESS_LOG:-0}
OUT=${OUT:-$ROOT/test-output/bench-balancer.txt}
mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d /tmp/bench-balancer-XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in wrk /usr/sbin/haproxy; do
    command -v "$tool" >/dev/null || { echo "bench-balancer: $tool is not installed (make deps)" >&2; exit 1; }
done
[ -x "$BIN/balancer" ] || { echo "bench-balancer: $BIN/balancer not built (make)" >&2; exit 1; }

. tools/lib.sh

NB=2
BACKENDS=()
if [ -x "$BIN/shopd" ]; then
    PATH_GET=/products
    # A small JSON POST that shopd accepts without a session (200): the benchmark
    # must measure proxied answers, not refusals.
    PATH_POST=/logout
    for i in $(seq $NB); do
        p=$(free_port)
        SHOPD_LISTEN=127.0.0.1:$p SHOPD_WORKERS=1 DATABASE_URL="sqlite:///$WORK/shop$i.db" SHOP_ENV=development \
            RATELIMIT_ENABLED=0 LOG_LEVEL=warn "$BIN/shopd" >"$WORK/shopd$i.log" 2>&1 &
        PIDS+=($!)
        BACKENDS+=("127.0.0.1:$p")
    done
else
    PATH_GET=/products
    PATH_POST=/products
    cc -O2 -o "$WORK/bench_backend" tests/load/bench_backend.c $(pkg-config --cflags --libs libevent) -lhttp_parser
    for i in $(seq $NB); do
        p=$(free_port)
        "$WORK/bench_backend" "$p" &
        PIDS+=($!)
        BACKENDS+=("127.0.0.1:$p")
    done
fi
for b in "${BACKENDS[@]}"; do wait_port "${b##*:}" || { echo "backend $b did not start" >&2; exit 1; }; done

LB_PORT=$(free_port)
LB_ADMIN=$(free_port)
HA_PORT=$(free_port)
BALANCER_LISTEN=127.0.0.1:$LB_PORT BALANCER_ADMIN_LISTEN=127.0.0.1:$LB_ADMIN \
    BALANCER_BACKENDS=$(IFS=,; echo "${BACKENDS[*]}") LOG_FILE="$WORK/balancer.log" BALANCER_ACCESS_LOG=$ACCESS_LOG \
    "$BIN/balancer" --env /dev/null 2>"$WORK/balancer.err" &
PIDS+=($!)

{
    echo "global"
    echo "    nbthread 1"
    echo "    maxconn 4096"
    echo "defaults"
    echo "    mode http"
    echo "    option http-keep-alive"
    echo "    http-reuse always"
    echo "    timeout connect 2s"
    echo "    timeout client 60s"
    echo "    timeout server 30s"
    echo "frontend fe"
    echo "    bind 127.0.0.1:$HA_PORT"
    echo "    option forwardfor"
    echo "    http-request set-header X-Forwarded-Proto http"
    echo "    unique-id-format %{+X}o%Ts%pid-%rt"
    echo "    unique-id-header X-Request-Id"
    echo "    http-response set-header X-Request-Id %[unique-id]"
    echo "    default_backend be"
    echo "backend be"
    echo "    balance roundrobin"
    echo "    option httpchk GET /healthz"
    i=0
    for b in "${BACKENDS[@]}"; do i=$((i + 1)); echo "    server s$i $b check inter 2s"; done
} >"$WORK/haproxy.cfg"
/usr/sbin/haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
wait_port "$LB_PORT" || { cat "$WORK/balancer.err" >&2; exit 1; }
wait_port "$HA_PORT" || { cat "$WORK/haproxy.log" >&2; exit 1; }

run_wrk() { # port conns scenario -> "rps p99ms"
    local args=(-t2 -c"$2" -d"$DURATION" --latency)
    local path=$PATH_GET
    [ "$3" = POST ] && args+=(-s tests/load/balancer_post.lua) && path=$PATH_POST
    local out
    out=$(wrk "${args[@]}" "http://127.0.0.1:$1$path")
    local rps p99 errs
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    errs=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    [ -z "$errs" ] || echo "   note ($3 c$2 port $1): $errs" >&2
    echo "$rps $(to_ms "$p99")"
}

# Warm both up (connections to backends, caches).
wrk -t2 -c64 -d2s "http://127.0.0.1:$LB_PORT$PATH_GET" >/dev/null
wrk -t2 -c64 -d2s "http://127.0.0.1:$HA_PORT$PATH_GET" >/dev/null

{
    echo "balancer vs HAProxy $(/usr/sbin/haproxy -v | head -n 1 | awk '{ print $3 }') (nbthread 1), $NB backends ($( [ -x "$BIN/shopd" ] && echo shopd || echo bench_backend)), wrk -t2 -d$DURATION, median of $RUNS runs, balancer access log $( [ "$ACCESS_LOG" = 1 ] && echo on || echo off)"
    printf "%-6s %5s | %12s %9s | %12s %9s | %9s %9s\n" scen conns "lb req/s" "lb p99ms" "ha req/s" "ha p99ms" "rps ratio" "p99 ratio"
} | tee "$OUT"
for conns in 64 256; do
    for scen in GET POST; do
        : >"$WORK/lb" && : >"$WORK/ha"
        for _ in $(seq "$RUNS"); do
            run_wrk "$LB_PORT" "$conns" "$scen" >>"$WORK/lb"
            run_wrk "$HA_PORT" "$conns" "$scen" >>"$WORK/ha"
        done
        lr=$(awk '{ print $1 }' "$WORK/lb" | median)
        lp=$(awk '{ print $2 }' "$WORK/lb" | median)
        hr=$(awk '{ print $1 }' "$WORK/ha" | median)
        hp=$(awk '{ print $2 }' "$WORK/ha" | median)
        paste -d' ' "$WORK/lb" "$WORK/ha" >"$WORK/pairs"
        ratio=$(awk '{ printf "%.3f\n", $1 / $3 }' "$WORK/pairs" | median)
        p99r=$(awk '{ printf "%.3f\n", $2 / $4 }' "$WORK/pairs" | median)
        printf "%-6s %5s | %12s %9s | %12s %9s | %9s %9s\n" "$scen" "$conns" "$lr" "$lp" "$hr" "$hp" "$ratio" "$p99r" | tee -a "$OUT"
    done
done
