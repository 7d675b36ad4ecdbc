#!/usr/bin/env bash
# Dispatcher throughput: a backlog of N orders is written straight into a fresh
# shop database, then a real shopd delivers it to a local DynamoDB (dynalite on
# a free loopback port). The rate is timed between the first and the last
# "sent to DynamoDB" line of the dispatcher's log, so start-up and the poll
# interval do not count. Prints each run and the median.
#
#   tools/bench-dispatcher.sh [N=300] [RUNS=3]     (SHOP_BIN: folder of shopd, default bin/)
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${SHOP_BIN:-$root/bin}
n=${1:-300}
runs=${2:-3}
[[ $n =~ ^[0-9]+$ && $n -ge 2 && $runs =~ ^[0-9]+$ && $runs -ge 1 ]] || {
    echo "usage: $0 [N>=2] [RUNS>=1]" >&2
    exit 2
}
for tool in node sqlite3 python3; do
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

run_once() {
    local dir=$tmp/run$1
    mkdir -p "$dir"
    local dport sport
    dport=$(free_port)
    sport=$(free_port)
    node "$root/tools/dynalite.js" --port "$dport" --create-table-ms 50 >"$dir/dynalite.log" 2>&1 &
    local dpid=$!
    echo "$dpid" >>"$tmp/pids"
    wait_port "$dport" 300

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

    (cd "$dir" && DISPATCHER_ENABLED=1 exec "$bin/shopd") >"$dir/shopd.log" 2>&1 &
    spid=$!
    echo "$spid" >>"$tmp/pids"
    local waited=0
    while [[ $(grep -c 'sent to DynamoDB' "$dir/shopd.log" || true) -lt $n ]]; do
        sleep 0.1
        waited=$((waited + 1))
        if ((waited > 1200)); then
            echo "$0: run $1: not delivered within 120 s" >&2
            tail -5 "$dir/shopd.log" >&2
            return 1
        fi
    done
    local first last
    first=$(line_ms "$(grep -m1 'sent to DynamoDB' "$dir/shopd.log")")
    last=$(line_ms "$(grep 'sent to DynamoDB' "$dir/shopd.log" | tail -1)")
    stop "$spid"
    stop "$dpid"
    local sent
    sent=$(sqlite3 "$dir/shop.db" "SELECT count(*) FROM orders WHERE status = 'sent'")
    [[ $sent -eq $n ]] || { echo "$0: run $1: $sent of $n marked sent" >&2; return 1; }
    python3 -c 'import sys; n, ms = int(sys.argv[1]), max(int(sys.argv[2]), 1); print("%.0f" % ((n - 1) * 1000 / ms))' \
        "$n" "$((last - first))"
}

rates=()
for i in $(seq 1 "$runs"); do
    rate=$(run_once "$i")
    echo "run $i: $n orders, $rate orders/s delivered"
    rates+=("$rate")
done
median=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
echo "dispatcher throughput: median $median orders/s over $runs runs of $n orders"
