#!/usr/bin/env bash
# make bench: wrk scenarios against the whole shop, through the balancer and directly
# to one shopd, at 64 and 256 connections; then the balancer against HAProxy.
#
#   tools/bench.sh                      (make bench builds bin/ first; BIN=... for another build)
#
# The stack, on free loopback ports and a temporary folder, stopped on exit:
#   redis-server (unix socket), ratelimitd (rules generated from deploy/ratelimit.rules
#   with budgets of a million a second: every request is still checked, none refused;
#   metrics on a free port to show it), a local DynamoDB (dynalite) with the Orders
#   table, two shopd (default workers: one per CPU; one SQLite file; dispatchers on),
#   the balancer in front of both (access log on, as deployed). Every log goes to a file.
#
# Scenarios (tests/load/*.lua): GET /products (JSON); GET /browser/inventory (HTML);
# cart: logged-in POST /cart/items and GET /cart alternately; login: POST /login, which
# verifies a scrypt hash (about 0.1-0.5 s of CPU each, by design), so it runs only
# BENCH_LOGIN_DURATION and at BENCH_LOGIN_CONNECTIONS (default 8: with 64 or 256, minutes
# of hashing stay queued in shopd after wrk stops and the p99 is only the queue);
# checkout: POST /cart/items then POST /checkout per connection
# (wrk with one thread per connection). Users are registered and logged in beforehand;
# products get a stock of a billion so adds and checkouts never run out.
#
# Settings (environment):
#   BENCH_DURATION=10s        each wrk run            BENCH_RUNS=3           runs per cell (median)
#   BENCH_LOGIN_DURATION=6s   each login run          BENCH_CONNECTIONS="64 256"
#   BENCH_LOGIN_CONNECTIONS=8
#   BENCH_SCENARIOS="products inventory cart login checkout"
#   BENCH_TARGETS="balancer direct"                   BENCH_WARMUP=3s
#   BENCH_BALANCER=1          also run tools/bench-balancer.sh (balancer vs HAProxy and nginx over
#                             static backends), each run BENCH_BALANCER_DURATION=5s
#   BENCH_RATELIMITD=1        ratelimitd against raw EVALSHA on one connection (tools/bench-ratelimitd.sh)
#                             and what the checks cost GET /products (tools/bench-ratelimit-cost.sh,
#                             BENCH_RATELIMIT_DURATION=4s per run); ratios into latest.json
#   BENCH_TLS=1            also run tools/bench-tls.sh (TLS vs HAProxy), BENCH_TLS_DURATION=3s per run
#   BENCH_STATIC_PEER=1       also run tools/bench-static-peer.sh (GET /products and the inventory page
#                             against nginx serving the same bytes, direct and through balancer/HAProxy),
#                             BENCH_STATIC_PEER_DURATION=5s per run
#   BENCH_FLASK=1             also run tools/bench-flask-peer.sh (shopd against the Flask app it
#                             replaces, under gunicorn: GET /products and the inventory page; target
#                             40x), BENCH_FLASK_DURATION=3s per run
#   BENCH_DISPATCHER=1        also run tools/bench-dispatcher.sh (orders/s to a local DynamoDB behind
#                             a proxy adding BENCH_DISPATCHER_LATENCY_MS=10 to every answer, backlog of
#                             BENCH_DISPATCHER_ORDERS=3000, BENCH_RUNS runs; target 1000 orders/s)
#   BENCH_DATABASE=1          also run tools/bench-database.sh (one shopd on SQLite and one on a private
#                             PostgreSQL, side by side: the catalog pages, add-to-cart, checkout),
#                             BENCH_DATABASE_DURATION=3s per run, BENCH_DATABASE_CONNECTIONS=32;
#                             targets PostgreSQL / SQLite: reads >= 0.70, checkout >= 0.50
#   BENCH_SHOPD_WORKERS=      workers per shopd (empty: shopd's default, one per CPU)
#   BENCH_RESULTS=bench/results    BENCH_KEEP=1 keeps the temporary folder (logs)
#
# Output: one table at the end (median requests/s of the runs, median p50 and p99, and
# socket errors and non-2xx answers summed over the runs), bench/results/latest.json,
# bench/results/latest.svg (gnuplot: requests/s and p99 per scenario and target), and the
# peak RSS (VmHWM) of every process of the stack, each worker's RSS 10 s after the login runs,
# and the dispatcher's orders/s. Not part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$(cd "${BIN:-bin}" 2>/dev/null && pwd) || { echo "bench: no ${BIN:-bin}/ (run make)" >&2; exit 1; }
DURATION=${BENCH_DURATION:-10s}
LOGIN_DURATION=${BENCH_LOGIN_DURATION:-6s}
LOGIN_CONNS=${BENCH_LOGIN_CONNECTIONS:-8}
RUNS=${BENCH_RUNS:-3}
CONNS=${BENCH_CONNECTIONS:-64 256}
SCENARIOS=${BENCH_SCENARIOS:-products inventory cart login checkout}
TARGETS=${BENCH_TARGETS:-balancer direct}
WARMUP=${BENCH_WARMUP:-3s}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/results}
LUA=$ROOT/tests/load
export BENCH_LUA_DIR=$LUA

die() {
    echo "bench: $*" >&2
    exit 1
}
for b in shopd balancer ratelimitd; do [ -x "$BIN/$b" ] || die "$BIN/$b is missing (run make)"; done
for t in wrk redis-server node curl sqlite3 gnuplot python3 openssl; do
    command -v "$t" >/dev/null || die "$t is not installed (make deps)"
done
[ -d tools/node_modules/dynalite ] || die "dynalite is missing in tools/node_modules (make deps)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive number"
MAX_CONNS=0
for c in $CONNS; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNECTIONS: '$c' is not a number"
    if ((c > MAX_CONNS)); then MAX_CONNS=$c; fi
done
for c in $LOGIN_CONNS; do [[ $c =~ ^[1-9][0-9]*$ ]] || die "BENCH_LOGIN_CONNECTIONS: '$c' is not a number"; done

WORK=$(mktemp -d /tmp/shop-bench.XXXXXX)
mkdir -p "$RESULTS"
NAMES=()
declare -A PID

stop_stack() {
    local i name pid t
    for ((i = ${#NAMES[@]} - 1; i >= 0; i--)); do
        name=${NAMES[i]}
        pid=${PID[$name]}
        kill -TERM "$pid" 2>/dev/null || continue
        for ((t = 0; t < 100; t++)); do
            kill -0 -- "-$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    NAMES=()
}
cleanup() {
    stop_stack
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench: logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

. tools/lib.sh
# start NAME CMD...: runs CMD with its output appended to $WORK/NAME.log.
start() {
    local name=$1
    shift
    # Its own process group, so that stopping it also stops what it forked (shopd's workers).
    setsid "$@" </dev/null >>"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
    NAMES+=("$name")
}
# wait_for NAME CHECK...: until CHECK succeeds (20 s); fails with the log if NAME dies.
wait_for() {
    local name=$1 i
    shift
    for ((i = 0; i < 200; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        if ! kill -0 "${PID[$name]}" 2>/dev/null; then
            tail -n 20 "$WORK/$name.log" >&2
            die "$name exited while starting"
        fi
        sleep 0.1
    done
    tail -n 20 "$WORK/$name.log" >&2
    die "$name did not become ready"
}
http_ok() { [ "$(curl -s -o /dev/null -m "${2:-2}" -w '%{http_code}' "$1")" = 200 ]; }
http_any() { [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1")" != 000 ]; }
say() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*"; }

# --- the stack ------------------------------------------------------------------------

say "starting the stack in $WORK (binaries from $BIN)"
REDIS_SOCK=$WORK/redis.sock
start redis redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 --save '' --appendonly no \
    --dir "$WORK"
wait_for redis test -S "$REDIS_SOCK"

# The deployed rule names with budgets no benchmark reaches: shopd asks for every request
# exactly as in production, ratelimitd runs the Redis script, and nothing is refused.
awk '!/^[[:space:]]*(#|$)/ { print $1, "1000000/1s burst=1000000" }' deploy/ratelimit.rules >"$WORK/bench.rules"
RL_METRICS=$(free_port)
start ratelimitd env RATELIMITD_SOCKET="$WORK/rl.sock" REDIS_URL="unix://$REDIS_SOCK" \
    RATELIMIT_RULES="$WORK/bench.rules" RATELIMITD_METRICS_LISTEN="127.0.0.1:$RL_METRICS" \
    "$BIN/ratelimitd" --env /dev/null
wait_for ratelimitd test -S "$WORK/rl.sock"

DYNAMO_PORT=$(free_port)
start dynalite node tools/dynalite.js --port "$DYNAMO_PORT" --create-table-ms 0
wait_for dynalite http_any "http://127.0.0.1:$DYNAMO_PORT/"

export DATABASE_URL="sqlite:///$WORK/shop.db" SHOP_ENV=production SECRET_KEY=$(openssl rand -hex 32)
export TEMPLATES_DIR=$ROOT/templates STATIC_DIR=$ROOT/templates/static RATELIMITD_SOCKET=$WORK/rl.sock
export ADMIN_EMAILS=bench-admin@example.com DYNAMODB_ENDPOINT=http://127.0.0.1:$DYNAMO_PORT
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1 LOG_LEVEL=info
[ -z "${BENCH_SHOPD_WORKERS:-}" ] || export SHOPD_WORKERS=$BENCH_SHOPD_WORKERS
"$BIN/shopd" --env /dev/null --create-table >>"$WORK/create-table.log" 2>&1 ||
    { cat "$WORK/create-table.log" >&2; die "could not create the Orders table"; }

SHOPD_PORTS=()
for n in 1 2; do
    p=$(free_port)
    SHOPD_PORTS+=("$p")
    start "shopd-$n" env SHOPD_LISTEN="127.0.0.1:$p" "$BIN/shopd" --env /dev/null
    wait_for "shopd-$n" http_ok "http://127.0.0.1:$p/healthz"
done

LB_PORT=$(free_port)
LB_ADMIN=$(free_port)
start balancer env BALANCER_LISTEN="127.0.0.1:$LB_PORT" BALANCER_ADMIN_LISTEN="127.0.0.1:$LB_ADMIN" \
    BALANCER_BACKENDS="127.0.0.1:${SHOPD_PORTS[0]},127.0.0.1:${SHOPD_PORTS[1]}" BALANCER_ACCESS_LOG=1 \
    "$BIN/balancer" --env /dev/null
wait_for balancer http_ok "http://127.0.0.1:$LB_PORT/healthz"

declare -A TARGET_PORT=([balancer]=$LB_PORT [direct]=${SHOPD_PORTS[0]})
B=http://127.0.0.1:$LB_PORT
J='Content-Type: application/json'

# --- data: an admin, products with a huge stock, users with sessions ---------------------

PASSWORD=bench-password-1
say "creating products and $((2 * MAX_CONNS)) logged-in users"
code=$(curl -s -o "$WORK/r.json" -w '%{http_code}' -X POST "$B/register" -H "$J" \
    -d "{\"email\":\"bench-admin@example.com\",\"password\":\"$PASSWORD\"}")
[ "$code" = 201 ] || die "registering the admin: $code $(cat "$WORK/r.json")"
code=$(curl -s -o "$WORK/r.json" -c "$WORK/admin.jar" -w '%{http_code}' -X POST "$B/login" -H "$J" \
    -d "{\"email\":\"bench-admin@example.com\",\"password\":\"$PASSWORD\"}")
[ "$code" = 200 ] || die "admin login: $code $(cat "$WORK/r.json")"
PRODUCTS=()
for name in Apple Banana Cherry; do
    code=$(curl -s -o "$WORK/r.json" -b "$WORK/admin.jar" -w '%{http_code}' -X POST "$B/products" -H "$J" \
        -d "{\"name\":\"Bench $name\",\"description\":\"benchmark product\",\"price\":1.25,\"stock\":1000000000}")
    [ "$code" = 201 ] || die "creating a product: $code $(cat "$WORK/r.json")"
    PRODUCTS+=("$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/r.json")")
done
export BENCH_PRODUCTS=$(IFS=,; echo "${PRODUCTS[*]}")

# One user per connection of the largest run (checkout needs a cart per connection) and a
# few more for the login scenario. One is registered and logged in through the API; the
# others get a copy of its password hash, and sessions minted the way shopd stores them
# (HMAC-SHA256 of the token under SECRET_KEY), straight in SQLite: each API login costs
# about a second of scrypt on this kind of machine. If a minted session does not work,
# every user is logged in through the API instead.
# Twice as many session users as connections: consecutive checkout runs take alternate
# halves, so a checkout the previous run left in flight (wrk stops mid-request) cannot
# empty a cart of the next run.
SESSION_USERS=$((2 * MAX_CONNS))
LOGIN_USERS=16
NUSERS=$((SESSION_USERS + LOGIN_USERS))
code=$(curl -s -o "$WORK/r.json" -w '%{http_code}' -X POST "$B/register" -H "$J" \
    -d "{\"email\":\"bench-user-1@example.com\",\"password\":\"$PASSWORD\"}")
[ "$code" = 201 ] || die "registering a user: $code $(cat "$WORK/r.json")"
sqlite3 "$WORK/shop.db" >/dev/null <<SQL
PRAGMA busy_timeout = 5000;
WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < $NUSERS)
INSERT INTO users (email, password_hash, created_at)
SELECT 'bench-user-' || i || '@example.com',
       (SELECT password_hash FROM users WHERE email = 'bench-user-1@example.com'), strftime('%s', 'now')
FROM n;
SQL
for ((i = SESSION_USERS + 1; i <= NUSERS; i++)); do echo "bench-user-$i@example.com $PASSWORD"; done >"$WORK/users"
login_one() { # base-url email password -> prints the session cookie's value
    curl -s -D - -o /dev/null -X POST "$1/login" -H 'Content-Type: application/json' \
        -d "{\"email\":\"$2\",\"password\":\"$3\"}" |
        sed -n 's/^[Ss]et-[Cc]ookie: session=\([^;]*\).*/\1/p'
}
login_one "$B" bench-user-1@example.com "$PASSWORD" >"$WORK/sessions"
[ -s "$WORK/sessions" ] || die "bench-user-1 could not log in"
python3 - "$WORK/shop.db" "$SESSION_USERS" >>"$WORK/sessions" <<'PY'
import hashlib, hmac, os, secrets, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=10)
key = os.environ["SECRET_KEY"].encode()
now = int(time.time())
for i in range(2, int(sys.argv[2]) + 1):
    token = secrets.token_hex(32)
    (uid,) = db.execute("SELECT id FROM users WHERE email = ?", ("bench-user-%d@example.com" % i,)).fetchone()
    db.execute("INSERT INTO sessions (token_hash, user_id, csrf, created_at, last_seen) VALUES (?, ?, ?, ?, ?)",
               (hmac.new(key, token.encode(), hashlib.sha256).hexdigest(), uid, secrets.token_hex(32), now, now))
    print(token)
db.commit()
PY
if [ "$(curl -s -o /dev/null -w '%{http_code}' -b "session=$(tail -n 1 "$WORK/sessions")" "$B/cart")" != 200 ]; then
    say "minted sessions are not accepted: logging in $SESSION_USERS users through the API (slow)"
    export -f login_one
    seq 1 "$SESSION_USERS" | xargs -P 8 -I{} bash -c 'login_one "$0" "bench-user-{}@example.com" "$1"' "$B" \
        "$PASSWORD" >"$WORK/sessions"
fi
[ "$(grep -c . "$WORK/sessions")" -eq "$SESSION_USERS" ] ||
    die "only $(grep -c . "$WORK/sessions") of $SESSION_USERS sessions work"
export BENCH_SESSIONS=$WORK/sessions BENCH_USERS=$WORK/users

# Waits until every shopd answers /healthz quickly three times in a row (at most 120 s):
# requests a finished wrk run left queued (logins above all) must not slow the next run.
wait_idle() {
    local ok=0 i p
    for ((i = 0; i < 600 && ok < 3; i++)); do
        ok=$((ok + 1))
        for p in "${SHOPD_PORTS[@]}"; do
            http_ok "http://127.0.0.1:$p/healthz" 0.3 || { ok=0; break; }
        done
        sleep 0.2
    done
}

# --- wrk ------------------------------------------------------------------------------

say "warming up ($WARMUP per target and page)"
for t in $TARGETS; do
    for path in /products /browser/inventory; do
        wrk -t2 -c64 -d"$WARMUP" "http://127.0.0.1:${TARGET_PORT[$t]}$path" >/dev/null
    done
done

# run_wrk SCENARIO TARGET CONNS RUN: one wrk run, one line appended to $WORK/runs.tsv.
run_wrk() {
    local scen=$1 target=$2 conns=$3 run=$4 threads=2 dur=$DURATION timeout=10s script path out line
    case $scen in
    products) script=get.lua path=/products ;;
    inventory) script=get.lua path=/browser/inventory ;;
    cart) script=cart.lua path=/cart ;;
    login) script=login.lua path=/login dur=$LOGIN_DURATION timeout=60s ;;
    checkout) script=checkout.lua path=/checkout threads=$conns ;;
    *) die "unknown scenario $scen" ;;
    esac
    ((threads <= conns)) || threads=$conns
    RUN_SEQ=$((RUN_SEQ + 1))
    out=$(BENCH_THREADS=$threads BENCH_SESSION_OFFSET=$(((RUN_SEQ % 2) * MAX_CONNS)) wrk -t"$threads" -c"$conns" -d"$dur" --timeout "$timeout" -s "$LUA/$script" \
        "http://127.0.0.1:${TARGET_PORT[$target]}$path" 2>&1) || true
    line=$(grep '^BENCH ' <<<"$out" || true)
    if [ -z "$line" ]; then
        echo "$out" | tail -n 5 >&2
        line="BENCH requests=0 duration_us=1 rps=0 p50_us=0 p99_us=0 max_us=0 connect=0 read=0 write=0 timeout=0 status=0 failed=1"
    fi
    wait_idle
    printf '%s\t%s\t%s\t%s\t%s\n' "$scen" "$target" "$conns" "$run" "${line#BENCH }" >>"$WORK/runs.tsv"
    get() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<" ${line#BENCH }"; }
    printf '   %-9s %-8s c%-4s run %s: %10s req/s  p99 %8.1f ms  errors %s  non-2xx %s\n' "$scen" "$target" \
        "$conns" "$run" "$(get rps)" "$(awk -v u="$(get p99_us)" 'BEGIN { print u / 1000 }')" \
        "$(($(get connect) + $(get read) + $(get write) + $(get timeout)))" "$(get status)"
}

# Each login runs scrypt with a 32 MiB buffer (N=2^15, r=8) on a worker's offload threads:
# that memory must go back to the system once the burst is over, not stay with the worker.
# 10 s after the last login run, each worker's RSS (VmRSS) and peak (VmHWM), one line each.
workers_rss_after_logins() {
    sleep 10
    local name pid child
    for name in "${NAMES[@]}"; do
        [[ $name == shopd-* ]] || continue
        pid=${PID[$name]}
        for child in $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do
            grep -q dispatch "/proc/$child/comm" 2>/dev/null && continue
            printf '%s\t%s\t%s\t%s\n' "$name" "$child" \
                "$(awk '/^VmRSS:/ { print $2 }' "/proc/$child/status" 2>/dev/null || echo 0)" \
                "$(awk '/^VmHWM:/ { print $2 }' "/proc/$child/status" 2>/dev/null || echo 0)"
        done
    done >"$WORK/rss-after-login.tsv"
    say "worker RSS 10 s after the logins: $(awk '{ printf "%s%.1f MiB (peak %.1f)", (NR > 1 ? ", " : ""), $3 / 1024, $4 / 1024 }' "$WORK/rss-after-login.tsv")"
}

: >"$WORK/runs.tsv"
RUN_SEQ=0
START=$(date +%s)
for scen in $SCENARIOS; do
    case $scen in
    login) say "login: $LOGIN_DURATION per run: every request is a scrypt verification, slow by design" ;;
    checkout) say "checkout: wrk runs one thread per connection (a cart per connection)" ;;
    *) say "$scen" ;;
    esac
    for target in $TARGETS; do
        conns_list=$CONNS
        [ "$scen" != login ] || conns_list=$LOGIN_CONNS
        for conns in $conns_list; do
            for ((run = 1; run <= RUNS; run++)); do run_wrk "$scen" "$target" "$conns" "$run"; done
        done
    done
    [ "$scen" != login ] || workers_rss_after_logins
    # Access logs grow by ~150 bytes a request: keep only the other lines (warnings, restarts)
    # and the access lines of answers >= 400.
    for f in "$WORK"/shopd-*.log "$WORK"/balancer.log; do
        awk -v p="$(basename "$f" .log): " '$4 != "access" || ($8 ~ /^[0-9]+$/ && $8 >= 400) { print p $0 }' \
            "$f" >>"$WORK/events.log"
        : >"$f"
    done
done
ELAPSED=$(($(date +%s) - START))

# --- what the stack did ---------------------------------------------------------------

# Peak RSS (VmHWM) of each process, shopd's master with its children (workers, dispatcher).
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
: >"$WORK/rss.tsv"
for name in "${NAMES[@]}"; do
    pid=${PID[$name]}
    case $name in
    shopd-*)
        printf '%s\tmaster\t%s\t%s\n' "$name" "$pid" "$(hwm "$pid")" >>"$WORK/rss.tsv"
        for child in $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do
            role=worker
            grep -q dispatch "/proc/$child/comm" 2>/dev/null && role=dispatcher
            printf '%s\t%s\t%s\t%s\n' "$name" "$role" "$child" "$(hwm "$child")" >>"$WORK/rss.tsv"
        done
        ;;
    *) printf '%s\tmain\t%s\t%s\n' "$name" "$pid" "$(hwm "$pid")" >>"$WORK/rss.tsv" ;;
    esac
done
curl -s "http://127.0.0.1:$RL_METRICS/metrics" >"$WORK/rl.metrics" || true
sqlite3 "$WORK/shop.db" "PRAGMA busy_timeout = 5000; SELECT status, count(*) FROM orders GROUP BY status" \
    >"$WORK/orders.txt" 2>/dev/null || true
stop_stack
unset DATABASE_URL SHOP_ENV SECRET_KEY TEMPLATES_DIR STATIC_DIR RATELIMITD_SOCKET ADMIN_EMAILS DYNAMODB_ENDPOINT \
    AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION LOG_LEVEL SHOPD_WORKERS

# --- balancer against HAProxy ------------------------------------------------------------

# Results of an earlier run are removed first, so that a part left out is not reported from then.
rm -f "$RESULTS/balancer-vs-peers.txt" "$RESULTS/balancer-vs-peers.json"
if [ "${BENCH_BALANCER:-1}" = 1 ]; then
    say "balancer vs HAProxy and nginx (tools/bench-balancer.sh, ${BENCH_BALANCER_DURATION:-5s} per run)"
    if command -v /usr/sbin/haproxy >/dev/null && command -v /usr/sbin/nginx >/dev/null; then
        BIN=$BIN RUNS=$RUNS OUT=$RESULTS/balancer-vs-peers.txt JSON=$RESULTS/balancer-vs-peers.json \
            tools/bench-balancer.sh "${BENCH_BALANCER_DURATION:-5s}" >/dev/null ||
            echo "bench: tools/bench-balancer.sh failed" >&2
    else
        echo "bench: haproxy or nginx is not installed; skipping the balancer's peers" >&2
    fi
fi

# ratelimitd side by side with raw EVALSHA, and the checks' cost to shopd.
rm -f "$RESULTS/ratelimitd.txt" "$RESULTS/ratelimit-cost.txt"
if [ "${BENCH_RATELIMITD:-1}" = 1 ]; then
    say "ratelimitd vs raw EVALSHA (tools/bench-ratelimitd.sh)"
    tools/bench-ratelimitd.sh 100000 | tee "$RESULTS/ratelimitd.txt" || echo "bench: tools/bench-ratelimitd.sh failed" >&2
    say "budget checks on vs off for GET /products (tools/bench-ratelimit-cost.sh)"
    BIN=$BIN tools/bench-ratelimit-cost.sh "${BENCH_RATELIMIT_DURATION:-4s}" "$RUNS" | tee "$RESULTS/ratelimit-cost.txt" ||
        echo "bench: tools/bench-ratelimit-cost.sh failed" >&2
fi

# TLS termination against HAProxy's (full and resumed handshakes, kept-alive requests).
rm -f "$RESULTS/tls-vs-haproxy.txt" "$RESULTS/tls-vs-haproxy.json"
[ "${BENCH_TLS:-1}" = 1 ] && { BIN=$BIN RUNS=$RUNS OUT=$RESULTS/tls-vs-haproxy.txt JSON=$RESULTS/tls-vs-haproxy.json tools/bench-tls.sh "${BENCH_TLS_DURATION:-3s}" >/dev/null || echo "bench: tools/bench-tls.sh failed" >&2; }

# shopd's pages against nginx serving the same bytes statically, directly and through
# the balancer / HAProxy.
rm -f "$RESULTS/static-peer.txt" "$RESULTS/static-peer.json"
if [ "${BENCH_STATIC_PEER:-1}" = 1 ]; then
    say "shopd vs nginx serving the same bytes (tools/bench-static-peer.sh, ${BENCH_STATIC_PEER_DURATION:-5s} per run)"
    BIN=$BIN RUNS=$RUNS OUT=$RESULTS/static-peer.txt JSON=$RESULTS/static-peer.json \
        tools/bench-static-peer.sh "${BENCH_STATIC_PEER_DURATION:-5s}" >/dev/null ||
        echo "bench: tools/bench-static-peer.sh failed" >&2
fi

# shopd against the Flask app it replaces.
rm -f "$RESULTS/flask-peer.txt" "$RESULTS/flask-peer.json"
if [ "${BENCH_FLASK:-1}" = 1 ]; then
    say "shopd vs the Flask app under gunicorn (tools/bench-flask-peer.sh, ${BENCH_FLASK_DURATION:-3s} per run)"
    BIN=$BIN RUNS=$RUNS OUT=$RESULTS/flask-peer.txt JSON=$RESULTS/flask-peer.json \
        tools/bench-flask-peer.sh "${BENCH_FLASK_DURATION:-3s}" >/dev/null ||
        echo "bench: tools/bench-flask-peer.sh failed" >&2
fi

# The dispatcher's orders per second to dynalite at DynamoDB's latency.
rm -f "$RESULTS/dispatcher.txt"
if [ "${BENCH_DISPATCHER:-1}" = 1 ]; then
    say "dispatcher to a local DynamoDB behind a ${BENCH_DISPATCHER_LATENCY_MS:-10} ms proxy (tools/bench-dispatcher.sh)"
    SHOP_BIN=$BIN tools/bench-dispatcher.sh "${BENCH_DISPATCHER_ORDERS:-3000}" "$RUNS" \
        "${BENCH_DISPATCHER_LATENCY_MS:-10}" | tee "$RESULTS/dispatcher.txt" ||
        echo "bench: tools/bench-dispatcher.sh failed" >&2
fi

# The same shop on SQLite and on PostgreSQL (skipped without a PostgreSQL server).
rm -f "$RESULTS/database.txt" "$RESULTS/database.json"
if [ "${BENCH_DATABASE:-1}" = 1 ]; then
    say "shopd on SQLite vs PostgreSQL (tools/bench-database.sh, ${BENCH_DATABASE_DURATION:-3s} per run)"
    if compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
        BIN=$BIN RUNS=$RUNS CONNS=${BENCH_DATABASE_CONNECTIONS:-32} OUT=$RESULTS/database.txt \
            JSON=$RESULTS/database.json tools/bench-database.sh "${BENCH_DATABASE_DURATION:-3s}" >/dev/null ||
            echo "bench: tools/bench-database.sh failed" >&2
    else
        echo "bench: no PostgreSQL server installed; skipping SQLite vs PostgreSQL" >&2
    fi
fi

# --- results --------------------------------------------------------------------------

export BENCH_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) BENCH_ELAPSED=$ELAPSED BENCH_DURATION=$DURATION
export BENCH_LOGIN_DURATION=$LOGIN_DURATION BENCH_LOGIN_CONNECTIONS=$LOGIN_CONNS BENCH_RUNS=$RUNS BENCH_WORKERS=${SHOPD_WORKERS:-$(nproc)}
python3 - "$WORK" "$RESULTS" <<'PY'
import json, os, platform, statistics, sys

work, results = sys.argv[1], sys.argv[2]

def kv(text):
    return {k: float(v) for k, v in (p.split("=") for p in text.split())}

cells, order = {}, []
for line in open(os.path.join(work, "runs.tsv")):
    scen, target, conns, run, rest = line.rstrip("\n").split("\t")
    key = (scen, target, int(conns))
    if key not in cells:
        cells[key] = []
        order.append(key)
    cells[key].append(kv(rest))

rows = []
for key in order:
    runs = cells[key]
    med = lambda f: statistics.median(f(r) for r in runs)
    rows.append({
        "scenario": key[0], "target": key[1], "connections": key[2],
        "requests_per_second": round(med(lambda r: r["rps"]), 1),
        "p50_ms": round(med(lambda r: r["p50_us"]) / 1000, 2),
        "p99_ms": round(med(lambda r: r["p99_us"]) / 1000, 2),
        "errors": int(sum(r["connect"] + r["read"] + r["write"] + r["timeout"] for r in runs)),
        "non_2xx": int(sum(r["status"] for r in runs)),
        "requests": int(sum(r["requests"] for r in runs)),
        "failed_runs": int(sum(r.get("failed", 0) for r in runs)),
        "runs": [{"requests_per_second": r["rps"], "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
                  "max_ms": r["max_us"] / 1000, "requests": int(r["requests"])} for r in runs],
    })

after_login = []
try:
    for line in open(os.path.join(work, "rss-after-login.tsv")):
        name, pid, kb, hwm = line.split()
        after_login.append({"process": name, "pid": int(pid), "rss_kb": int(kb or 0), "peak_rss_kb": int(hwm or 0)})
except (OSError, ValueError):
    pass

rss = []
for line in open(os.path.join(work, "rss.tsv")):
    name, role, pid, kb = line.split()
    rss.append({"process": name, "role": role, "pid": int(pid), "peak_rss_kb": int(kb or 0)})

metrics = {}
try:
    for line in open(os.path.join(work, "rl.metrics")):
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        base = name.split("{")[0]
        metrics[base] = metrics.get(base, 0) + float(value)
except OSError:
    pass
orders = {}
try:
    for line in open(os.path.join(work, "orders.txt")):
        if "|" in line:  # the PRAGMA prints its value first
            status, count = line.strip().split("|")
            orders[status] = int(count)
except (OSError, ValueError):
    pass
events = []
try:
    events = open(os.path.join(work, "events.log")).read().splitlines()
except OSError:
    pass
restarts = [e for e in events if "replacing it" in e]
refusals = [e for e in events if " access " in e]
warnings = [e for e in events if " warn " in e or " error " in e]
def ratio_after(name, prefix):
    try:
        for line in open(os.path.join(results, name)):
            if line.startswith(prefix):
                return float(line[len(prefix):].split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return None

dispatcher = None
try:
    lines = open(os.path.join(results, "dispatcher.txt")).read().splitlines()
    last = [l for l in lines if l.startswith("dispatcher throughput: median ")]
    if last:
        words = last[-1].split()
        dispatcher = {"median_orders_per_second": float(words[3]), "latency_ms": int(words[12]),
                      "target_met": "NOT met" not in last[-1], "lines": lines}
except (OSError, ValueError, IndexError):
    pass

side_by_side = {
    "ratelimitd_over_raw_evalsha_1conn_depth64": ratio_after(
        "ratelimitd.txt", "ratelimitd / raw EVALSHA, one connection, depth 64:"),
    "products_checks_on_over_off": ratio_after("ratelimit-cost.txt", "ratio on/off:"),
}
comparison = None
try:
    comparison = open(os.path.join(results, "balancer-vs-peers.txt")).read().splitlines()
except OSError:
    pass
balancer_peers = None
try:
    balancer_peers = json.load(open(os.path.join(results, "balancer-vs-peers.json")))
except (OSError, ValueError):
    pass

tls = None
try:
    tls = json.load(open(os.path.join(results, "tls-vs-haproxy.json")))
except (OSError, ValueError):
    pass

static_peer = None
try:
    static_peer = json.load(open(os.path.join(results, "static-peer.json")))
except (OSError, ValueError):
    pass

flask_peer = None
try:
    flask_peer = json.load(open(os.path.join(results, "flask-peer.json")))
    for c in flask_peer:
        side_by_side["shopd_over_flask_%s_c%d" % (c["path"].strip("/").replace("/", "_"), c["connections"])] = c["rps_ratio"]
except (OSError, ValueError, KeyError):
    flask_peer = None

database = None
try:
    database = {"cells": json.load(open(os.path.join(results, "database.json"))),
                "lines": open(os.path.join(results, "database.txt")).read().splitlines()}
    for c in database["cells"]:
        side_by_side["%s_postgres_over_sqlite" % c["cell"].replace("-", "_")] = c["rps_ratio"]
except (OSError, ValueError, KeyError):
    database = None

cpu = ""
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass
mem_kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
doc = {
    "date": os.environ["BENCH_DATE"],
    "machine": {"cpus": os.cpu_count(), "cpu": cpu, "memory_gb": round(mem_kb / 1048576, 1),
                "kernel": platform.release()},
    "settings": {"duration": os.environ["BENCH_DURATION"], "login_duration": os.environ["BENCH_LOGIN_DURATION"],
                 "login_connections": os.environ["BENCH_LOGIN_CONNECTIONS"],
                 "runs": int(os.environ["BENCH_RUNS"]), "shopd_instances": 2,
                 "shopd_workers": int(os.environ["BENCH_WORKERS"]), "balancer_access_log": True,
                 "shopd_access_log": True, "rate_limit": "checked on every request, budgets 1e6/s",
                 "wrk_threads": "2 (checkout: one per connection)"},
    "seconds_of_wrk": int(os.environ["BENCH_ELAPSED"]),
    "results": rows,
    "peak_rss": rss,
    "worker_rss_10s_after_logins": after_login,
    "ratelimitd": {"decisions": int(metrics.get("ratelimitd_decisions_total", 0)),
                   "denied": int(metrics.get("ratelimitd_denied_total", 0)),
                   "lease_tokens": int(metrics.get("ratelimitd_lease_tokens_total", 0)),
                   "degraded": int(metrics.get("ratelimitd_degraded_decisions_total", 0))},
    "orders": orders,
    "shopd_child_restarts": restarts,
    "warnings_logged": len(warnings),
    "balancer_vs_peers": balancer_peers,
    "balancer_vs_peers_table": comparison,
    "side_by_side": side_by_side,
    "tls": tls,
    "shopd_vs_static_nginx": static_peer,
    "shopd_vs_flask": flask_peer,
    "dispatcher": dispatcher,
    "postgres_vs_sqlite": database,
}
with open(os.path.join(results, "latest.json"), "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")

# gnuplot data: one row per scenario, one column per target and connection count
# (columns without a single measurement are left out: gnuplot refuses an empty one).
series = []
for r in rows:
    s = (r["target"], r["connections"])
    if s not in series and any(x["requests_per_second"] > 0 and x["p99_ms"] > 0 for x in rows
                               if (x["target"], x["connections"]) == s):
        series.append(s)
scens = []
for r in rows:
    if r["scenario"] not in scens:
        scens.append(r["scenario"])
by = {(r["scenario"], r["target"], r["connections"]): r for r in rows}
with open(os.path.join(work, "chart.dat"), "w") as f:
    for field in ("requests_per_second", "p99_ms"):
        f.write("scenario " + " ".join("%s-c%d" % s for s in series) + "\n")
        for sc in scens:
            vals = [by.get((sc, t, c), {}).get(field) for t, c in series]
            f.write(sc + " " + " ".join("NaN" if v is None or v <= 0 else str(v) for v in vals) + "\n")
        f.write("\n\n")
with open(os.path.join(work, "chart.cols"), "w") as f:
    f.write(str(len(series)))

# The table.
print()
print("Shop benchmark, %s, %d CPUs (%s); wrk %s per run (login %s), median of %s runs; "
      "2 shopd x %s workers, balancer and shopd access logs on, every request rate-limit checked"
      % (doc["date"], doc["machine"]["cpus"], cpu, doc["settings"]["duration"], doc["settings"]["login_duration"],
         doc["settings"]["runs"], doc["settings"]["shopd_workers"]))
print("%-10s %-9s %5s | %10s %9s %9s | %7s %8s" % ("scenario", "target", "conns", "req/s", "p50 ms", "p99 ms",
                                                 "errors", "non-2xx"))
print("-" * 78)
for r in rows:
    print("%-10s %-9s %5d | %10.1f %9.2f %9.2f | %7d %8d%s" % (
        r["scenario"], r["target"], r["connections"], r["requests_per_second"], r["p50_ms"], r["p99_ms"],
        r["errors"], r["non_2xx"], "  (%d runs failed)" % r["failed_runs"] if r["failed_runs"] else ""))
print()
print("login: every request verifies a scrypt hash (0.1-0.5 s of CPU): slow by design; its runs last %s"
      " at %s connections." % (doc["settings"]["login_duration"], os.environ["BENCH_LOGIN_CONNECTIONS"]))
print("errors: wrk socket errors (connect, read, write, timeout) summed over the runs; non-2xx: answers >= 400.")
print()
print("Peak RSS (VmHWM):")
for p in rss:
    print("  %-10s %-10s pid %-7d %8.1f MiB" % (p["process"], p["role"], p["pid"], p["peak_rss_kb"] / 1024))
if after_login:
    print()
    print("Worker RSS 10 s after the login runs (each login's 32 MiB scrypt buffer goes back to the system):")
    for p in after_login:
        print("  %-10s worker     pid %-7d %8.1f MiB (peak %.1f MiB)" % (p["process"], p["pid"], p["rss_kb"] / 1024,
                                                                   p["peak_rss_kb"] / 1024))
rl = doc["ratelimitd"]
print()
print("ratelimitd: %d decisions (%d tokens granted to workers' leases), %d denied, %d degraded"
      " (budgets set high: every request checked, none refused)"
      % (rl["decisions"], rl["lease_tokens"], rl["denied"], rl["degraded"]))
if orders:
    print("orders: " + ", ".join("%d %s" % (v, k) for k, v in sorted(orders.items()))
          + " (the dispatchers deliver to the local DynamoDB while the benchmark runs)")
print("warnings and errors logged by shopd and the balancer: %d (in the run's events.log)" % len(warnings))
for r in restarts:
    print("  " + r)
if refusals:
    print("answers >= 400 in the access logs: %d, e.g.:" % len(refusals))
    for r in refusals[:5]:
        print("  " + r)
if comparison:
    print()
    print("\n".join(comparison))
if dispatcher:
    print()
    print("\n".join(dispatcher["lines"]))
if database:
    print()
    print("\n".join(database["lines"]))
print()
print("side by side (ratios measured in one run; targets: ratelimitd >= 1.0, checks on/off >= 0.90,"
      " postgres/sqlite reads >= 0.70, checkout >= 0.50):")
for k, v in side_by_side.items():
    print("  %-45s %s" % (k, "not measured" if v is None else "%.2f" % v))
PY

cols=$(cat "$WORK/chart.cols")
cat >"$WORK/chart.gp" <<GP
set multiplot layout 2,1 title "Shop benchmark $(date -u +%Y-%m-%d), $(nproc) CPUs, median of $RUNS runs (login at $LOGIN_CONNS connections)"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key outside right top
set grid ytics
set logscale y
set format y '%g'
set title 'requests per second (log scale)'
plot for [i=2:$((cols + 1))] '$WORK/chart.dat' index 0 using i:xtic(1) title columnheader(i)
set title 'p99 latency, ms (log scale)'
plot for [i=2:$((cols + 1))] '$WORK/chart.dat' index 1 using i:xtic(1) title columnheader(i)
unset multiplot
GP
# SVG for the repository's readers, PNG for viewers without SVG.
{ echo "set terminal svg size 1100,900 dynamic enhanced font 'Helvetica,12' background rgb 'white'"
  echo "set output '$RESULTS/latest.svg'"; cat "$WORK/chart.gp"; } | gnuplot || echo "bench: gnuplot failed (svg)" >&2
{ echo "set terminal pngcairo size 1100,900 font 'Helvetica,10' background rgb 'white'"
  echo "set output '$RESULTS/latest.png'"; cat "$WORK/chart.gp"; } | gnuplot 2>/dev/null || rm -f "$RESULTS/latest.png"
echo
echo "results: $RESULTS/latest.json, chart: $RESULTS/latest.svg$([ -f "$RESULTS/latest.png" ] && echo " and latest.png")"
