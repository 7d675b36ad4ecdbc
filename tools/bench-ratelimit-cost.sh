#!/usr/bin/env bash
# What the budget check costs a shopd request: two shopd on one database, one
# asking ratelimitd (backed by a private redis-server) on every request, one with
# RATELIMIT_ENABLED=0, measured with wrk alternately in the same run.
#
#   tools/bench-ratelimit-cost.sh [DURATION] [RUNS]     defaults: 10s, 3
#
# Prints requests/s and p99 (median of RUNS) for GET /products on each, their ratio
# (the median of the per-pair ratios: each run with checks against the run without
# right after it), and the CPU time per request of each shopd, of ratelimitd and of Redis (from
# /proc: where a check costs). Budgets are set so high that nothing is refused: the full
# check path runs.
# Uses the binaries in ${BIN:-bin}. Stops everything it started. Not part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
BIN=${BIN:-bin}
duration=${1:-10s}
runs=${2:-3}
conns=${BENCH_CONNECTIONS:-64}
tmp=$(mktemp -d /tmp/bench-rlcost-XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
for b in shopd ratelimitd; do [ -x "$BIN/$b" ] || { echo "$BIN/$b is missing (run make)" >&2; exit 1; }; done

. tools/lib.sh

/usr/bin/redis-server --port 0 --unixsocket "$tmp/redis.sock" --save "" --appendonly no >"$tmp/redis.log" 2>&1 &
redis_pid=$!
pids+=($!)
wait_until "[ -S $tmp/redis.sock ]" 200
awk '!/^[[:space:]]*(#|$)/ { print $1, "1000000/1s burst=1000000" }' deploy/ratelimit.rules >"$tmp/bench.rules"
RATELIMITD_SOCKET="$tmp/rl.sock" REDIS_URL="unix://$tmp/redis.sock" RATELIMIT_RULES="$tmp/bench.rules" \
    LOG_LEVEL=warn "$BIN/ratelimitd" --env /dev/null >"$tmp/ratelimitd.log" 2>&1 &
rl_pid=$!
pids+=($!)
wait_until "[ -S $tmp/rl.sock ]" 200

start_shopd() { # port enabled; sets shopd_pid
    SHOPD_LISTEN="127.0.0.1:$1" RATELIMIT_ENABLED="$2" RATELIMITD_SOCKET="$tmp/rl.sock" \
        DATABASE_URL="sqlite:///$tmp/shop.db" SHOP_ENV=test SECRET_KEY=bench-secret-key-0123456789 \
        DISPATCHER_ENABLED=0 LOG_LEVEL=warn TEMPLATES_DIR="$root/templates" STATIC_DIR="$root/templates/static" \
        "$BIN/shopd" --env /dev/null >>"$tmp/shopd-$1.log" 2>&1 &
    shopd_pid=$!
    pids+=($!)
    wait_until "curl -sf -o /dev/null http://127.0.0.1:$1/healthz" 200
}
on=$(free_port)
start_shopd "$on" 1
on_pid=$shopd_pid
off=$(free_port)
start_shopd "$off" 0
off_pid=$shopd_pid
curl -sf -D - -o /dev/null "http://127.0.0.1:$on/products" | grep -qi '^RateLimit-Limit' ||
    { echo "the checked shopd sends no RateLimit headers: checks are not running" >&2; exit 1; }

hz=$(getconf CLK_TCK)

# One wrk run: prints "requests_per_second p99_ms requests".
measure() {
    wrk -t2 -c"$conns" -d"$duration" --latency "http://127.0.0.1:$1/products" 2>&1 | awk '
        / requests in / { n = $1 }
        /Requests\/sec/ { rps = $2 }
        /^ +99%/ { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) }
                   else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 } p99 = v }
        END { printf "%s %s %s\n", rps, p99, n }'
}

# measure PORT SHOPD_PID: one run, and the CPU microseconds per request of that
# shopd, of ratelimitd and of Redis appended: "rps p99 requests shopd_us rl_us redis_us".
measure_cpu() {
    local s0 r0 d0 s1 r1 d1 out
    s0=$(cpu_ticks "$2") r0=$(cpu_ticks "$rl_pid") d0=$(cpu_ticks "$redis_pid")
    out=$(measure "$1")
    s1=$(cpu_ticks "$2") r1=$(cpu_ticks "$rl_pid") d1=$(cpu_ticks "$redis_pid")
    awk -v o="$out" -v hz="$hz" -v s=$((s1 - s0)) -v r=$((r1 - r0)) -v d=$((d1 - d0)) 'BEGIN {
        split(o, f, " "); n = f[3] > 0 ? f[3] : 1; k = 1e6 / hz / n
        printf "%s %.1f %.1f %.1f\n", o, s * k, r * k, d * k }'
}

wrk -t2 -c"$conns" -d2s "http://127.0.0.1:$on/products" >/dev/null 2>&1
wrk -t2 -c"$conns" -d2s "http://127.0.0.1:$off/products" >/dev/null 2>&1
: >"$tmp/on" && : >"$tmp/off"
for i in $(seq "$runs"); do
    measure_cpu "$on" "$on_pid" >>"$tmp/on"
    measure_cpu "$off" "$off_pid" >>"$tmp/off"
done
on_rps=$(column_median 1 "$tmp/on") off_rps=$(column_median 1 "$tmp/off")
on_p99=$(column_median 2 "$tmp/on") off_p99=$(column_median 2 "$tmp/off")
ratio=$(pair_ratio "$tmp/on" "$tmp/off" 1 2)
printf '\nGET /products, %s connections, %s x %s each, median (2 cores, shared machine)\n' "$conns" "$runs" "$duration"
printf '%-22s %12s %10s\n' "shopd" "requests/s" "p99 ms"
printf '%-22s %12.0f %10.2f\n' "checks on" "$on_rps" "$on_p99" "checks off" "$off_rps" "$off_p99"
awk -v r="$ratio" -v a="$on_rps" -v b="$off_rps" 'BEGIN { printf "ratio on/off: %s (the median of the pairs; each check costs about %.1f us of a request)\n", r, (1e6 / a - 1e6 / b) }'
printf 'CPU per request (us, median): shopd %s with checks, %s without; ratelimitd %s, Redis %s\n' \
    "$(column_median 4 "$tmp/on")" "$(column_median 4 "$tmp/off")" "$(column_median 5 "$tmp/on")" "$(column_median 6 "$tmp/on")"
