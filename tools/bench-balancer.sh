#!/usr/bin/env bash
# Benchmarks bin/balancer against HAProxy (one thread) and nginx (one worker) as
# reverse proxies, each keeping connections to the same backends alive, in the
# same run.
#
#   tools/bench-balancer.sh [DURATION]      (default 10s; BIN=... for another build)
#
# Backends (BENCH_BACKENDS): static (default) is two tests/load/bench_backend.c,
# built here, answering every request at once with the same small JSON, so that
# the proxies are what is measured; shopd is two bin/shopd with one worker each
# (GET /products, POST /logout), where the workers bound the rate and the ratios
# say how much CPU each proxy leaves them. Scenarios: GET and a small POST
# (tests/load/balancer_post.lua) at 64 and 256 connections, wrk -t2; balancer,
# HAProxy and nginx runs take turns, RUNS rounds (default 5).
# Prints the median requests/s, p99 latency and CPU per request of each and the
# ratios balancer/HAProxy and balancer/nginx (target: requests/s ratio >= 1.2, p99
# ratio <= 1), and writes them to $OUT (default test-output/bench-balancer.txt)
# and $JSON (default test-output/bench-balancer.json).
# Like with like: HAProxy and nginx are told to do the header work the balancer
# always does (X-Forwarded-For, X-Forwarded-Proto, an X-Request-Id on request and
# answer); HAProxy checks health as often (nginx's open-source build has no
# active checks). Neither logs, so ACCESS_LOG=0 (default) turns the balancer's
# access log off too (ACCESS_LOG=1 writes it to a file anyway).
# The ratios are medians of per-round ratios: each balancer run is paired with
# the peers' runs right after it, so a slow minute of the shared machine hits all.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/bin}
DURATION=${1:-10s}
RUNS=${RUNS:-5}
ACCESS_LOG=${ACCESS_LOG:-0}
BACKENDS_KIND=${BENCH_BACKENDS:-static}
OUT=${OUT:-$ROOT/test-output/bench-balancer.txt}
JSON=${JSON:-$ROOT/test-output/bench-balancer.json}
mkdir -p "$(dirname "$OUT")" "$(dirname "$JSON")"
WORK=$(mktemp -d /tmp/bench-balancer-XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in wrk /usr/sbin/haproxy /usr/sbin/nginx; do
    command -v "$tool" >/dev/null || { echo "bench-balancer: $tool is not installed (make deps)" >&2; exit 1; }
done
[ -x "$BIN/balancer" ] || { echo "bench-balancer: $BIN/balancer not built (make)" >&2; exit 1; }
case $BACKENDS_KIND in
static) ;;
shopd) [ -x "$BIN/shopd" ] || { echo "bench-balancer: $BIN/shopd not built (make)" >&2; exit 1; } ;;
*) echo "bench-balancer: BENCH_BACKENDS is static or shopd, not $BACKENDS_KIND" >&2; exit 1 ;;
esac

. tools/lib.sh

NB=2
BACKENDS=()
if [ "$BACKENDS_KIND" = shopd ]; then
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
LB_PID=$!
PIDS+=($LB_PID)

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
HA_PID=$!
PIDS+=($HA_PID)

NGX_PORT=$(free_port)
chmod 755 "$WORK" # nginx's worker runs as another user when started by root
mkdir -p "$WORK/tmp"
{
    echo "worker_processes 1;"
    echo "pid $WORK/nginx.pid;"
    echo "error_log $WORK/nginx.err warn;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    echo "    access_log off;"
    echo "    keepalive_requests 1000000;"
    echo "    client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;"
    echo "    uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;"
    echo "    upstream be {"
    for b in "${BACKENDS[@]}"; do echo "        server $b;"; done
    echo "        keepalive 512;"
    echo "        keepalive_requests 1000000;"
    echo "    }"
    echo "    server {"
    echo "        listen 127.0.0.1:$NGX_PORT;"
    echo "        location / {"
    echo "            proxy_pass http://be;"
    echo "            proxy_http_version 1.1;"
    echo "            proxy_set_header Connection \"\";"
    echo "            proxy_set_header Host \$host;"
    echo "            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;"
    echo "            proxy_set_header X-Forwarded-Proto http;"
    echo "            proxy_set_header X-Request-Id \$request_id;"
    echo "            add_header X-Request-Id \$request_id always;"
    echo "        }"
    echo "    }"
    echo "}"
} >"$WORK/nginx.conf"
/usr/sbin/nginx -c "$WORK/nginx.conf" -g 'daemon on;' 2>"$WORK/nginx.start" ||
    { cat "$WORK/nginx.start" >&2; exit 1; }
wait_port "$LB_PORT" || { cat "$WORK/balancer.err" >&2; exit 1; }
wait_port "$HA_PORT" || { cat "$WORK/haproxy.log" >&2; exit 1; }
wait_port "$NGX_PORT" || { cat "$WORK/nginx.start" "$WORK/nginx.err" >&2; exit 1; }
NGX_PID=$(cat "$WORK/nginx.pid")
declare -A PORT_OF=([lb]=$LB_PORT [ha]=$HA_PORT [ngx]=$NGX_PORT) PID_OF=([lb]=$LB_PID [ha]=$HA_PID [ngx]=$NGX_PID)

run_wrk() { # port conns scenario -> "rps p99ms requests"
    local args=(-t2 -c"$2" -d"$DURATION" --latency)
    local path=$PATH_GET
    [ "$3" = POST ] && args+=(-s tests/load/balancer_post.lua) && path=$PATH_POST
    local out
    out=$(wrk "${args[@]}" "http://127.0.0.1:$1$path")
    local rps p99 errs n
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    n=$(awk '/ requests in / { print $1 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    errs=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    [ -z "$errs" ] || echo "   note ($3 c$2 port $1): $errs" >&2
    echo "$rps $(to_ms "$p99") $n"
}

# run_cpu PROXY conns scenario -> "rps p99ms cpu_us_per_request" (the proxy's CPU,
# nginx's worker included, from /proc).
run_cpu() {
    local pid=${PID_OF[$1]} t0 t1 r
    t0=$(cpu_ticks "$pid")
    r=$(run_wrk "${PORT_OF[$1]}" "$2" "$3")
    t1=$(cpu_ticks "$pid")
    awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" '{ printf "%s %s %.1f\n", $1, $2, ($3 > 0 ? t * 1e6 / hz / $3 : 0) }' <<<"$r"
}

# Warm all three up (connections to backends, caches).
for proxy in lb ha ngx; do wrk -t2 -c64 -d2s "http://127.0.0.1:${PORT_OF[$proxy]}$PATH_GET" >/dev/null; done

ha_version=$(/usr/sbin/haproxy -v | head -n 1 | awk '{ print $3 }')
ngx_version=$(/usr/sbin/nginx -v 2>&1 | sed 's|.*/||')
row() { printf "%-5s %5s | %9s %7s %6s | %9s %7s %6s | %9s %7s %6s | %6s %6s | %6s %6s\n" "$@"; }
{
    echo "balancer vs HAProxy $ha_version (nbthread 1) and nginx $ngx_version (1 worker), $NB backends ($( [ "$BACKENDS_KIND" = shopd ] && echo shopd, 1 worker each || echo bench_backend, static)), wrk -t2 -d$DURATION, median of $RUNS rounds, balancer access log $( [ "$ACCESS_LOG" = 1 ] && echo on || echo off)"
    row scen conns "lb req/s" "p99 ms" "cpu" "ha req/s" "p99 ms" "cpu" "ngx req/s" "p99 ms" "cpu" "lb/ha" "p99" "lb/ngx" "p99"
    echo "(cpu: microseconds of the proxy's CPU per request; ratios: medians of the rounds' ratios, rate and p99)"
} | tee "$OUT"

echo "{" >"$JSON"
first=1
for conns in 64 256; do
    for scen in GET POST; do
        : >"$WORK/lb" && : >"$WORK/ha" && : >"$WORK/ngx"
        for _ in $(seq "$RUNS"); do
            for proxy in lb ha ngx; do run_cpu "$proxy" "$conns" "$scen" >>"$WORK/$proxy"; done
        done
        declare -A R=() P=() C=()
        for proxy in lb ha ngx; do
            R[$proxy]=$(column_median 1 "$WORK/$proxy") P[$proxy]=$(column_median 2 "$WORK/$proxy")
            C[$proxy]=$(column_median 3 "$WORK/$proxy")
        done
        ha_r=$(pair_ratio "$WORK/lb" "$WORK/ha" 1) ha_p=$(pair_ratio "$WORK/lb" "$WORK/ha" 2)
        ngx_r=$(pair_ratio "$WORK/lb" "$WORK/ngx" 1) ngx_p=$(pair_ratio "$WORK/lb" "$WORK/ngx" 2)
        row "$scen" "$conns" "${R[lb]}" "${P[lb]}" "${C[lb]}" "${R[ha]}" "${P[ha]}" "${C[ha]}" "${R[ngx]}" "${P[ngx]}" \
            "${C[ngx]}" "$ha_r" "$ha_p" "$ngx_r" "$ngx_p" | tee -a "$OUT"
        [ $first = 1 ] || echo "," >>"$JSON"
        first=0
        printf '  "%s_c%s": {"balancer_per_s": %s, "haproxy_per_s": %s, "nginx_per_s": %s, "balancer_p99_ms": %s, "haproxy_p99_ms": %s, "nginx_p99_ms": %s, "balancer_cpu_us": %s, "haproxy_cpu_us": %s, "nginx_cpu_us": %s, "over_haproxy": %s, "p99_over_haproxy": %s, "over_nginx": %s, "p99_over_nginx": %s}' \
            "$scen" "$conns" "${R[lb]:-0}" "${R[ha]:-0}" "${R[ngx]:-0}" "${P[lb]:-0}" "${P[ha]:-0}" "${P[ngx]:-0}" \
            "${C[lb]:-0}" "${C[ha]:-0}" "${C[ngx]:-0}" "${ha_r:-null}" "${ha_p:-null}" "${ngx_r:-null}" "${ngx_p:-null}" >>"$JSON"
    done
done
printf '\n}\n' >>"$JSON"
