#!/usr/bin/env bash
# Dispatcher throughput at DynamoDB's latency: a backlog of N orders is written
# straight into a fresh shop database, then a real shopd delivers it to a local
# DynamoDB (dynalite on a free loopback port) through tests/load/delay_proxy.c,
# which holds every answer back LATENCY_MS (AWS answers a PutItem in 5-10 ms).
# The rate is timed between the first and the last "sent to DynamoDB" line of
# the dispatcher's log, so start-up and the poll interval do not count. Each run
# checks that every order arrived once: N items in the table, N orders marked
# sent, N distinct orders written by a successful PutItem and none twice. Prints
# each run (with the most requests and connections the proxy saw at once) and
# the median, against the target of 1000 orders/s; then one run without added
# latency, the ceiling of dynalite on this machine.
#
#   tools/bench-dispatcher.sh [N=3000] [RUNS=3] [LATENCY_MS=10]
#
# SHOP_BIN: folder of shopd (default bin/); DISPATCHER_CONCURRENCY: requests in
# flight (default: shopd's own, 32). Exits 1 when a run loses or doubles an order.
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${SHOP_BIN:-$root/bin}
n=${1:-3000}
runs=${2:-3}
latency=${3:-10}
target=1000
[[ $n =~ ^[0-9]+$ && $n -ge 2 && $runs =~ ^[0-9]+$ && $runs -ge 1 && $latency =~ ^[0-9]+$ ]] || {
    echo "usage: $0 [N>=2] [RUNS>=1] [LATENCY_MS>=0]" >&2
    exit 2
}
for tool in node sqlite3 python3 cc pkg-config curl; do
    command -v $tool >/dev/null || { echo "$0: $tool is needed" >&2; exit 2; }
done
[[ -x $bin/shopd ]] || { echo "$0: no $bin/shopd (run make, or set SHOP_BIN)" >&2; exit 2; }
[[ -d $root/tools/node_modules/dynalite ]] || { echo "$0: dynalite missing (run make deps)" >&2; exit 2; }

tmp=$(mktemp -d /tmp/bench-dispatcher.XXXXXX)
# Runs happen in command substitutions (subshells), so the pids of what they
# start go to a file that the exit trap reads.
cleanup() {
    if [[ -f $tmp/pids ]]; then
        while read -r p; do kill "$p" 2>/dev/null || true; done <"$tmp/pids"
    fi
    sleep 0.2
    rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck disable=SC2046 # pkg-config prints several flags
cc -O2 -std=c11 -D_GNU_SOURCE -I"$root" -o "$tmp/delay_proxy" "$root/tests/load/delay_proxy.c" \
    "$root/tests/support/delay_proxy.c" "$root/tests/support/harness.c" "$root/shared/strbuf.c" \
    "$root/shared/xalloc.c" $(pkg-config --cflags --libs libevent libcurl jansson) -lhttp_parser

. "$root/tools/lib.sh"
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
# Milliseconds since the epoch of a log line's leading RFC 3339 time.
line_ms() {
    python3 -c 'import sys, datetime
t = sys.argv[1].split()[0].rstrip("Z")
print(int(datetime.datetime.fromisoformat(t).replace(tzinfo=datetime.timezone.utc).timestamp() * 1000))' "$1"
}
# Items in the Orders table at the local DynamoDB on port $1 (a counting Scan,
# page by page; dynalite checks that a request is signed, not the signature).
count_items() {
    python3 - "$1" <<'PY'
import json, sys, urllib.request
url, total, start = "http://127.0.0.1:%s/" % sys.argv[1], 0, None
while True:
    req = {"TableName": "Orders", "Select": "COUNT"}
    if start:
        req["ExclusiveStartKey"] = start
    r = urllib.request.Request(url, json.dumps(req).encode(), {
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.Scan",
        "X-Amz-Date": "20260101T000000Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/dynamodb/aws4_request, "
                         "SignedHeaders=host;x-amz-date;x-amz-target, Signature=0"})
    page = json.load(urllib.request.urlopen(r, timeout=30))
    total += page["Count"]
    start = page.get("LastEvaluatedKey")
    if not start:
        break
print(total)
PY
}

run_once() {
    local dir=$tmp/run$1
    mkdir -p "$dir"
    local dport pport sport
    dport=$(free_port)
    pport=$(free_port)
    sport=$(free_port)
    node "$root/tools/dynalite.js" --port "$dport" --create-table-ms 50 >"$dir/dynalite.log" 2>&1 &
    local dpid=$!
    echo "$dpid" >>"$tmp/pids"
    "$tmp/delay_proxy" "$pport" "$dport" "$latency" >"$dir/proxy.log" 2>&1 &
    local ppid=$!
    echo "$ppid" >>"$tmp/pids"
    wait_port "$dport" 300
    wait_port "$pport" 300

    export SHOP_ENV=test SECRET_KEY=bench-secret-key-0123456789abcdef RATELIMIT_ENABLED=0 SHOPD_WORKERS=2
    export DATABASE_URL="sqlite:///$dir/shop.db" SHOPD_LISTEN="127.0.0.1:$sport" LOG_LEVEL=info
    export DYNAMODB_ENDPOINT="http://127.0.0.1:$dport" DYNAMODB_TABLE=Orders AWS_REGION=us-east-1
    export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
    export TEMPLATES_DIR="$root/templates" STATIC_DIR="$root/templates/static"
    (cd "$dir" && "$bin/shopd" --create-table) >>"$dir/create-table.log" 2>&1

    # A first start without the dispatcher writes the schema.
    (cd "$dir" && DISPATCHER_ENABLED=0 exec "$bin/shopd") >>"$dir/schema.log" 2>&1 &
    local spid=$!
    echo "$spid" >>"$tmp/pids"
    # It binds before it migrates: wait for the seeded catalog, not the port.
    for _ in $(seq 1 200); do
        sqlite3 "$dir/shop.db" 'SELECT count(*) FROM products' >/dev/null 2>&1 && break
        sleep 0.05
    done
    stop "$spid"

    sqlite3 "$dir/shop.db" >/dev/null <<SQL
.timeout 5000
BEGIN;
INSERT INTO users (id, email, password_hash, created_at) VALUES (1, 'bench@example.com', 'x', 0);
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $n)
INSERT INTO orders (id, user_id, user_email, total_cents, created_at)
  SELECT printf('00000000-0000-4000-8000-%012d', i), 1, 'bench@example.com', 175, '2026-11-26T21:40:00.000Z' FROM k;
INSERT INTO order_lines (order_id, product_id, name, unit_price_cents, quantity)
  SELECT id, 1, 'Apple', 50, 2 FROM orders;
INSERT INTO order_lines (order_id, product_id, name, unit_price_cents, quantity)
  SELECT id, 2, 'Banana', 25, 3 FROM orders;
COMMIT;
SQL

    # Now through the proxy: DynamoDB with a network's latency.
    (cd "$dir" && DISPATCHER_ENABLED=1 DYNAMODB_ENDPOINT="http://127.0.0.1:$pport" exec "$bin/shopd") \
        >"$dir/shopd.log" 2>&1 &
    spid=$!
    echo "$spid" >>"$tmp/pids"
    local waited=0
    while [[ $(grep -c 'sent to DynamoDB\|already in DynamoDB' "$dir/shopd.log" || true) -lt $n ]]; do
        sleep 0.1
        waited=$((waited + 1))
        if ((waited > 1200)); then
            echo "$0: run $1: not delivered within 120 s" >&2
            tail -5 "$dir/shopd.log" >&2
            return 1
        fi
    done
    # The dispatcher's CPU time (user + system) for the whole backlog.
    local dpid_cpu=0 child
    for child in $(cat "/proc/$spid/task/$spid/children" 2>/dev/null); do
        if grep -q dispatch "/proc/$child/comm" 2>/dev/null; then
            dpid_cpu=$(awk '{ print $14 + $15 }' "/proc/$child/stat")
        fi
    done
    local first last stats
    first=$(line_ms "$(grep -m1 'sent to DynamoDB' "$dir/shopd.log")")
    last=$(line_ms "$(grep 'sent to DynamoDB' "$dir/shopd.log" | tail -1)")
    stats=$(curl -s "http://127.0.0.1:$pport/__proxy/stats")
    stop "$spid"

    local sent items written distinct again
    sent=$(sqlite3 "$dir/shop.db" "SELECT count(*) FROM orders WHERE status = 'sent'")
    items=$(count_items "$dport")
    written=$(grep -c 'sent to DynamoDB' "$dir/shopd.log" || true)
    distinct=$(grep -o 'order [0-9a-f-]* sent to DynamoDB' "$dir/shopd.log" | sort -u | wc -l)
    again=$(grep -c 'already in DynamoDB' "$dir/shopd.log" || true)
    stop "$ppid"
    stop "$dpid"
    [[ $sent -eq $n ]] || { echo "$0: run $1: $sent of $n marked sent" >&2; return 1; }
    [[ $items -eq $n ]] || { echo "$0: run $1: $items items in the table for $n orders" >&2; return 1; }
    [[ $written -eq $distinct ]] || { echo "$0: run $1: $written writes of $distinct orders" >&2; return 1; }
    python3 -c 'import json, os, sys
n, ms, stats, again, ticks = int(sys.argv[1]), max(int(sys.argv[2]), 1), json.loads(sys.argv[3]), sys.argv[4], int(sys.argv[5])
cpu_us = ticks * 1e6 / os.sysconf("SC_CLK_TCK") / n
print("%.0f %d %d %s %.0f" % ((n - 1) * 1000 / ms, stats["max_in_flight"], stats["connections"], again, cpu_us))' \
        "$n" "$((last - first))" "$stats" "$again" "$dpid_cpu"
}

echo "dispatcher to dynalite behind a ${latency} ms proxy, $n orders per run," \
    "DISPATCHER_CONCURRENCY=${DISPATCHER_CONCURRENCY:-default}"
rates=()
for i in $(seq 1 "$runs"); do
    read -r rate inflight conns again cpu <<<"$(run_once "$i")"
    echo "run $i: $n orders, $rate orders/s delivered, all $n in the table once;" \
        "at most $inflight requests in flight over $conns connections; $again found already written;" \
        "dispatcher CPU $cpu us per order"
    rates+=("$rate")
done
median=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
verdict=$(awk -v m="$median" -v t="$target" 'BEGIN { print (m >= t) ? "met" : "NOT met" }')
echo "dispatcher throughput: median $median orders/s over $runs runs of $n orders at $latency ms" \
    "(target $target orders/s: $verdict)"

# The same backlog with no added latency: what dynalite and this machine allow
# at all, so that a rate below the target can be told from a slow dispatcher.
if ((latency > 0)); then
    wanted=$latency
    latency=0
    read -r ceiling _ <<<"$(run_once ceiling)"
    latency=$wanted
    echo "without added latency (the local DynamoDB's ceiling on this machine): $ceiling orders/s"
fi
