#!/usr/bin/env bash
# Benchmarks ratelimitd: decisions per second and latency of pipelined clients against
# ratelimitd backed by a private redis-server, and with Redis away (local buckets).
# Each scenario runs 3 times; the table shows the median run (by decisions per second).
#
#   tools/bench-ratelimitd.sh [TOTAL]      TOTAL checks per pipelined run (default 200000)
#
# Builds its own ratelimitd and tests/load/rl_bench.c into a temporary folder and stops
# everything it started on exit. Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
total=${1:-200000}
tmp=$(mktemp -d /tmp/bench-ratelimitd-XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

echo "building ratelimitd and rl_bench in $tmp"
make --no-print-directory -s BUILD="$tmp/build" BIN="$tmp/bin" "$tmp/bin/ratelimitd" >/dev/null
cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -o "$tmp/rl_bench" tests/load/rl_bench.c

. tools/lib.sh

port=$(free_port)
/usr/bin/redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >"$tmp/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
wait_until "redis-cli -p $port ping >/dev/null 2>&1"

cat >"$tmp/bench.rules" <<'RULES'
# Large enough that every check is allowed: the benchmark measures the decision path.
bench 1000000/1s burst=1000000
# Small: most checks are refused, as under a flood.
tight 10/1s burst=10
RULES

start_rld() { # $1: REDIS_URL
    RATELIMITD_SOCKET="$tmp/rl.sock" REDIS_URL="$1" RATELIMIT_RULES="$tmp/bench.rules" LOG_LEVEL=warn \
        "$tmp/bin/ratelimitd" >>"$tmp/ratelimitd.log" 2>&1 &
    rld_pid=$!
    pids+=("$rld_pid")
    wait_until "[ -S $tmp/rl.sock ]"
    sleep 0.3 # let it reach Redis
}
stop_rld() { kill "$rld_pid"; wait "$rld_pid" 2>/dev/null || true; }

results=()
scenario() { # name total depth conns rule keys
    local name=$1 runs=()
    shift
    for _ in 1 2 3; do
        runs+=("$("$tmp/rl_bench" "$tmp/rl.sock" "$@")")
    done
    # Median by decisions per second.
    local med
    med=$(printf '%s\n' "${runs[@]}" | sort -t= -k2 -n | sed -n 2p)
    results+=("$name|$med")
}

start_rld "redis://127.0.0.1:$port/0"
redis-cli -p "$port" flushall >/dev/null
scenario "redis  1 conn  depth 1" $((total / 10)) 1 1 bench 10000
scenario "redis  1 conn  depth 64" "$total" 64 1 bench 10000
scenario "redis  8 conns depth 32" "$total" 32 8 bench 10000
scenario "redis  8 conns depth 32 tight" "$total" 32 8 tight 100
stop_rld
# The same script by raw EVALSHA, one decision per call, 64 in flight on one connection:
# what ratelimitd's one connection at depth 64 is measured against.
script=$(python3 -c '
import ast, sys
lines = open("ratelimitd/redis_store.c").read().split("const char rld_redis_script[] =", 1)[1].split(";\n", 1)[0]
sys.stdout.write("".join(ast.literal_eval(l.strip()) for l in lines.splitlines() if l.strip()))')
sha=$(redis-cli -p "$port" script load "$script")
raw_runs=()
for _ in 1 2 3; do
    raw_runs+=("$(redis-benchmark -p "$port" -c 1 -P 64 -n "$total" -r 10000 -q --csv \
        evalsha "$sha" 1 "rl:bench:__rand_int__" 1 1000000 1 1 | awk -F, 'NR > 1 || !/rps/ { gsub(/"/, "", $2); print int($2) }' | tail -n 1)")
done
raw_rps=$(printf '%s\n' "${raw_runs[@]}" | median)
# Redis address with nothing listening: every decision comes from local buckets.
start_rld "redis://127.0.0.1:$(free_port)/0"
scenario "local  1 conn  depth 64" "$total" 64 1 bench 10000
scenario "local  8 conns depth 32" "$total" 32 8 bench 10000
stop_rld

get() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"$2"; }
printf '\n%-32s %12s %9s %9s %9s\n' "scenario (median of 3)" "decisions/s" "p50 us" "p99 us" "max us"
for r in "${results[@]}"; do
    name=${r%%|*}
    line=${r#*|}
    printf '%-32s %12s %9s %9s %9s\n' "$name" "$(get decisions_per_s "$line")" "$(get p50_us "$line")" \
        "$(get p99_us "$line")" "$(get max_us "$line")"
done
printf '%-32s %12s\n' "raw EVALSHA 1 conn depth 64" "$raw_rps"
rld_rps=$(get decisions_per_s "$(printf '%s\n' "${results[@]}" | sed -n 's/^redis  1 conn  depth 64|//p')")
awk -v a="$rld_rps" -v b="$raw_rps" 'BEGIN { printf "ratelimitd / raw EVALSHA, one connection, depth 64: %.2f\n", a / b }'
echo
echo "($(nproc) CPUs; ratelimitd, redis-server and the client share them; $root)"
