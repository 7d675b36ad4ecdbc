#!/usr/bin/env bash
# shopd on its embedded SQLite file against shopd on PostgreSQL, side by side in one run:
# what moving the shop to a shared database costs one host.
#
#   tools/bench-database.sh [DURATION]      (default 3s; BIN=... for another build)
#
# Two shopd, each SHOPD_WORKERS=2, SHOP_ENV=development, rate limiting and dispatcher off,
# templates from the checkout: one on a SQLite file, one on a fresh PostgreSQL cluster in
# the temporary folder (initdb; PostgreSQL's defaults, fsync and synchronous_commit on,
# except that it listens only on a unix socket there). Both seed the default inventory at
# start; the bench then gives every product a stock of a billion and makes the same users
# and sessions in both (one registered through the API, the others with a copy of its hash
# and sessions minted as shopd stores them). wrk -t2 -c$CONNS on loopback, engines
# alternating run by run (A B A B ...), RUNS runs each (default 3); the ratio is the median
# of the per-pair ratios, so a slow moment of a shared machine hits both.
#
# Cells: GET /products; GET /browser/inventory (anonymous); add-to-cart (POST /cart/items,
# logged in, the same product again: the quantity is set, the cart stays valid); checkout:
# each connection its own session and wrk thread, alternating POST /cart/items and
# POST /checkout, so its requests/s counts both (half of them are checkouts) and its p99
# is over both. Targets (PostgreSQL / SQLite requests/s): reads >= 0.70, checkout >= 0.50.
#
# Where the time goes on PostgreSQL: a statement is a round trip over the unix socket
# (SQLite runs it in the worker's own process), and a worker waits for it. The catalog
# pages check the catalog version row once for all the catalog requests a worker gathered
# in one pass of its loop (SQLite reads PRAGMA data_version, a counter in shared memory);
# a logged-in request also looks its session up; adding to the cart is one upsert,
# committed without waiting for the disk (a cart change lost in a crash of the server
# costs a click); checkout is two round trips (BEGIN, the shopper's lock, the key's order,
# the cart with its products locked and the guarded stock update queued together; the
# order, its lines and the cart's clearing sent with COMMIT). Its COMMIT waits for the WAL
# to reach the disk on both engines (SQLite: synchronous=FULL for the order's transaction).
# Before the runs the script counts the statements of one request of each cell
# (log_statement = 'all' for a moment) and times single requests with curl -w on both
# engines, and prints both.
#
# PG_SYNCHRONOUS_COMMIT=off shows how much of the write cells is that wait.
# Writes a table to $OUT and the figures to $JSON (tools/bench.sh: BENCH_DATABASE=1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/bin}
DURATION=${1:-3s}
RUNS=${RUNS:-3}
CONNS=${CONNS:-32}
PG_SYNC=${PG_SYNCHRONOUS_COMMIT:-on} # off: commits stop waiting for the disk (printed in the table's title)
OUT=${OUT:-$ROOT/test-output/bench-database.txt}
JSON=${JSON:-$ROOT/test-output/bench-database.json}
mkdir -p "$(dirname "$OUT")" "$(dirname "$JSON")"

die() {
    echo "bench-database: $*" >&2
    exit 1
}
for tool in wrk curl sqlite3 psql python3 openssl; do
    command -v "$tool" >/dev/null || die "$tool is not installed (make deps)"
done
[ -x "$BIN/shopd" ] || die "build first (make)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"
[[ $CONNS =~ ^[1-9][0-9]*$ ]] || die "CONNS must be a positive number"
. tools/lib.sh
PGBIN=$(pg_bindir)
[ -x "$PGBIN/postgres" ] || die "no PostgreSQL server in /usr/lib/postgresql/*/bin (Debian package postgresql)"

WORK=$(mktemp -d /tmp/bench-database-XXXXXX)
PG=$WORK/pg
PIDS=()
# initdb and postgres refuse root: as root the cluster belongs to Debian's postgres user.
as_postgres_words
as_pg() { "${AS_POSTGRES[@]}" "$@"; }
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ ! -f "$PG/data/postmaster.pid" ] || as_pg "$PGBIN/pg_ctl" -D "$PG/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- PostgreSQL --------------------------------------------------------------------------

mkdir -p "$PG"
if [ "$(id -u)" -eq 0 ]; then
    chmod 755 "$WORK"
    chown postgres: "$PG"
fi
PG_PORT=$((20000 + RANDOM % 40000)) # names the socket only: the folder is private
as_pg "$PGBIN/initdb" -D "$PG/data" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$WORK/initdb.log" 2>&1 ||
    { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
# mmap for dynamic shared memory: a chroot may have no usable /dev/shm.
cat >>"$PG/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$PG'
port = $PG_PORT
dynamic_shared_memory_type = mmap
synchronous_commit = $PG_SYNC
CONF
as_pg "$PGBIN/pg_ctl" -D "$PG/data" -l "$PG/postgres.log" -w -t 60 start >/dev/null ||
    { tail -n 30 "$PG/postgres.log" >&2; die "PostgreSQL did not start"; }
pg() { psql -X -q -A -t -h "$PG" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 "$@"; }
pg -d postgres -c 'CREATE DATABASE shop'

# --- two shopd ---------------------------------------------------------------------------

SECRET=$(openssl rand -hex 32)
declare -A PORT URL
URL[sqlite]="sqlite:///$WORK/shop.db"
URL[postgres]="postgresql:///shop?host=$PG&port=$PG_PORT&user=postgres"
for e in sqlite postgres; do
    PORT[$e]=$(free_port)
    SHOPD_LISTEN=127.0.0.1:${PORT[$e]} SHOPD_WORKERS=2 DATABASE_URL=${URL[$e]} SHOP_ENV=development \
        SECRET_KEY=$SECRET RATELIMIT_ENABLED=0 DISPATCHER_ENABLED=0 LOG_LEVEL=warn TEMPLATES_DIR=$ROOT/templates \
        STATIC_DIR=$ROOT/templates/static "$BIN/shopd" --env /dev/null >"$WORK/shopd-$e.log" 2>&1 &
    PIDS+=($!)
    wait_port "${PORT[$e]}" 200 || { cat "$WORK/shopd-$e.log" >&2; exit 1; }
    wait_until "curl -sf http://127.0.0.1:${PORT[$e]}/healthz >/dev/null" 200
done

# sql ENGINE: runs stdin's SQL on that engine's database.
sql() {
    if [ "$1" = sqlite ]; then sqlite3 -cmd 'PRAGMA busy_timeout = 5000' "$WORK/shop.db" >/dev/null
    else pg -d shop >/dev/null; fi
}

# --- the same data in both ---------------------------------------------------------------

PASSWORD=bench-password-1
NSESSIONS=$((2 * CONNS)) # checkout: consecutive runs take alternate halves (see run_cell)
python3 - "$SECRET" "$NSESSIONS" "$WORK/sessions" >"$WORK/sessions.sql" <<'PY'
import hashlib, hmac, secrets, sys, time
key, n, path = sys.argv[1].encode(), int(sys.argv[2]), sys.argv[3]
now = int(time.time())
with open(path, "w") as tokens:
    for i in range(2, n + 2):
        token = secrets.token_hex(32)
        tokens.write(token + "\n")
        print("INSERT INTO sessions (token_hash, user_id, csrf, created_at, last_seen) SELECT '%s', id, '%s', %d, %d "
              "FROM users WHERE email = 'bench-user-%d@example.com';"
              % (hmac.new(key, token.encode(), hashlib.sha256).hexdigest(), secrets.token_hex(32), now, now, i))
PY
for e in sqlite postgres; do
    code=$(curl -s -o "$WORK/r.json" -w '%{http_code}' -X POST "http://127.0.0.1:${PORT[$e]}/register" \
        -H 'Content-Type: application/json' -d "{\"email\":\"bench-user-1@example.com\",\"password\":\"$PASSWORD\"}")
    [ "$code" = 201 ] || die "$e: registering a user: $code $(cat "$WORK/r.json")"
    {
        echo "UPDATE products SET stock = 1000000000;"
        for ((i = 2; i <= NSESSIONS + 1; i++)); do
            echo "INSERT INTO users (email, password_hash, created_at) SELECT 'bench-user-$i@example.com', password_hash, created_at FROM users WHERE email = 'bench-user-1@example.com';"
        done
        cat "$WORK/sessions.sql"
    } | sql "$e"
    [ "$(curl -s -o /dev/null -w '%{http_code}' -b "session=$(tail -n 1 "$WORK/sessions")" \
        "http://127.0.0.1:${PORT[$e]}/cart")" = 200 ] || die "$e: the minted sessions are not accepted"
done
PRODUCT=$(sqlite3 "$WORK/shop.db" 'SELECT min(id) FROM products')
NPRODUCTS=$(sqlite3 "$WORK/shop.db" 'SELECT count(*) FROM products')
[ "$NPRODUCTS" = "$(pg -d shop -c 'SELECT count(*) FROM products')" ] || die "the engines seeded different catalogs"
export BENCH_LUA_DIR=$ROOT/tests/load BENCH_SESSIONS=$WORK/sessions BENCH_PRODUCTS=$PRODUCT BENCH_THREADS=2

# BENCH_DB_CELLS="checkout" runs only some of them.
CELLS=${BENCH_DB_CELLS:-"products inventory add-to-cart checkout"}
declare -A PATH_OF=([products]=/products [inventory]=/browser/inventory [add-to-cart]=/cart/items [checkout]=/)
declare -A LUA_OF=([products]=get.lua [inventory]=get.lua [add-to-cart]=add_to_cart.lua [checkout]=checkout.lua)

# --- where the time goes: statements per request, one request's time --------------------

COOKIE="session=$(head -n 1 "$WORK/sessions")"
J='Content-Type: application/json'
one_request() { # engine cell -> the curl -w time_total of one request (s), or of add + checkout
    local b=http://127.0.0.1:${PORT[$1]} t
    case $2 in
    products | inventory) curl -s -o /dev/null -w '%{time_total}\n' "$b${PATH_OF[$2]}" ;;
    add-to-cart)
        curl -s -o /dev/null -w '%{time_total}\n' -b "$COOKIE" -H "$J" -X POST "$b/cart/items" \
            -d "{\"product_id\": $PRODUCT, \"quantity\": 1}"
        ;;
    checkout)
        curl -s -o /dev/null -b "$COOKIE" -H "$J" -X POST "$b/cart/items" -d "{\"product_id\": $PRODUCT, \"quantity\": 1}"
        t=$(curl -s -o /dev/null -w '%{time_total}' -b "$COOKIE" -X POST "$b/checkout")
        echo "$t"
        ;;
    esac
}
declare -A STATEMENTS
pg -d postgres -c "ALTER SYSTEM SET log_statement = 'all'" -c 'SELECT pg_reload_conf()' >/dev/null
sleep 0.5
logged() { grep -cE 'LOG:  (statement|execute)' "$PG/postgres.log" || true; }
for cell in $CELLS; do
    # Four of a kind first, so that both workers have built their caches; then the mean of
    # four (checkout: only the POST /checkout, the add-to-cart before each is not counted).
    for _ in 1 2 3 4; do one_request postgres "$cell" >/dev/null; done
    total=0
    for _ in 1 2 3 4; do
        [ "$cell" != checkout ] || { one_request postgres add-to-cart >/dev/null; sleep 0.2; }
        before=$(logged)
        if [ "$cell" = checkout ]; then
            curl -s -o /dev/null -b "$COOKIE" -X POST "http://127.0.0.1:${PORT[postgres]}/checkout"
        else
            one_request postgres "$cell" >/dev/null
        fi
        sleep 0.2 # the server writes its log line after answering
        total=$((total + $(logged) - before))
    done
    STATEMENTS[$cell]=$(awk -v t="$total" 'BEGIN { printf "%.1f", t / 4 }')
done
pg -d postgres -c 'ALTER SYSTEM RESET log_statement' -c 'SELECT pg_reload_conf()' >/dev/null
declare -A SINGLE
for e in sqlite postgres; do
    for cell in $CELLS; do
        SINGLE[$e.$cell]=$(for _ in $(seq 15); do one_request "$e" "$cell"; done |
            awk '{ printf "%.3f\n", $1 * 1000 }' | median)
    done
done
# The carts are empty again before the runs (the checkouts above).
for e in sqlite postgres; do echo "DELETE FROM cart_items;" | sql "$e"; done

# --- wrk -------------------------------------------------------------------------------

# run_wrk ENGINE CELL RUN -> "rps p99ms non2xx errors"
run_wrk() {
    local e=$1 cell=$2 run=$3 threads=2 out line
    if [ "$cell" = checkout ]; then
        threads=$CONNS
        export BENCH_SESSION_OFFSET=$(((run % 2) * CONNS))
    fi
    out=$(wrk -t"$threads" -c"$CONNS" -d"$DURATION" --timeout 10s -s "$BENCH_LUA_DIR/${LUA_OF[$cell]}" \
        "http://127.0.0.1:${PORT[$e]}${PATH_OF[$cell]}" 2>&1) || { echo "wrk failed: $out" >&2; echo "0 0 0 0"; return; }
    line=$(grep '^BENCH ' <<<"$out" | tail -n 1)
    [ -n "$line" ] || { echo "wrk printed no summary: $out" >&2; echo "0 0 0 0"; return; }
    python3 -c 'import sys
kv = dict(p.split("=") for p in sys.argv[1].split()[1:])
print("%.1f %.3f %d %d" % (float(kv["rps"]), int(kv["p99_us"]) / 1000, int(kv["status"]),
      sum(int(kv[k]) for k in ("connect", "read", "write", "timeout"))))' "$line"
}

for e in sqlite postgres; do
    wrk -t2 -c"$CONNS" -d1s "http://127.0.0.1:${PORT[$e]}/products" >/dev/null
    wrk -t2 -c"$CONNS" -d1s "http://127.0.0.1:${PORT[$e]}/browser/inventory" >/dev/null
done

fsync=$(pg -d postgres -c 'SHOW fsync')
sync=$(pg -d postgres -c 'SHOW synchronous_commit')
{
    echo "shopd on SQLite vs PostgreSQL $("$PGBIN/postgres" --version | awk '{ print $3 }') (unix socket, fsync=$fsync, synchronous_commit=$sync);" \
        "2 workers each, $NPRODUCTS products; wrk -c$CONNS -d$DURATION, engines alternating, median of $RUNS pairs"
    printf "%-12s | %9s %8s | %9s %8s | %7s %7s %6s | %5s %8s %8s\n" cell "sqlite" "p99ms" "postgres" "p99ms" \
        "ratio" target "" "stmts" "pg 1req" "sq 1req"
} | tee "$OUT"
echo "[" >"$JSON"
first=1
for cell in $CELLS; do
    : >"$WORK/a" && : >"$WORK/b"
    for ((run = 1; run <= RUNS; run++)); do
        run_wrk sqlite "$cell" "$run" >>"$WORK/a"
        run_wrk postgres "$cell" "$run" >>"$WORK/b"
    done
    ar=$(column_median 1 "$WORK/a") ap=$(column_median 2 "$WORK/a")
    br=$(column_median 1 "$WORK/b") bp=$(column_median 2 "$WORK/b")
    bad=$(cat "$WORK/a" "$WORK/b" | awk '{ n += $3; s += $4 } END { printf "%d %d", n, s }')
    ratio=$(pair_ratio "$WORK/b" "$WORK/a" 1)
    target=0.70
    [ "$cell" != checkout ] || target=0.50
    verdict=$(awk -v r="$ratio" -v t="$target" 'BEGIN { print (r >= t) ? "met" : "NOT met" }')
    printf "%-12s | %9s %8s | %9s %8s | %7s %7s %6s | %5s %8s %8s\n" "$cell" "$ar" "$ap" "$br" "$bp" "$ratio" \
        ">=$target" "${verdict/NOT met/NOT}" "${STATEMENTS[$cell]}" "${SINGLE[postgres.$cell]}" \
        "${SINGLE[sqlite.$cell]}" | tee -a "$OUT"
    [ "${bad% *}" = 0 ] && [ "${bad#* }" = 0 ] ||
        echo "   note ($cell): ${bad% *} answers >= 400 and ${bad#* } socket errors over the runs" | tee -a "$OUT"
    [ $first = 1 ] || echo "," >>"$JSON"
    first=0
    printf '{"cell": "%s", "connections": %s, "sqlite_rps": %s, "sqlite_p99_ms": %s, "postgres_rps": %s, "postgres_p99_ms": %s, "rps_ratio": %s, "target": %s, "target_met": %s, "postgres_statements_per_request": %s, "single_request_ms": {"sqlite": %s, "postgres": %s}, "non_2xx": %s, "socket_errors": %s}' \
        "$cell" "$CONNS" "$ar" "$ap" "$br" "$bp" "$ratio" "$target" "$([ "$verdict" = met ] && echo true || echo false)" \
        "${STATEMENTS[$cell]:-null}" "${SINGLE[sqlite.$cell]}" "${SINGLE[postgres.$cell]}" "${bad% *}" "${bad#* }" >>"$JSON"
done
echo "]" >>"$JSON"
{
    echo "ratio: PostgreSQL / SQLite requests/s, median of the pairs. stmts: statements PostgreSQL ran for one request"
    echo "(checkout: the POST /checkout alone); pg/sq 1req: ms for one request alone, curl -w time_total, median of 15 (checkout:"
    echo "the POST /checkout). checkout's requests/s counts add-to-cart and checkout requests alternately."
    if [ "$sync" = on ]; then
        echo "Writes: checkout's COMMIT on PostgreSQL waits for its WAL to reach the disk (fsync=$fsync,"
        echo "synchronous_commit=on); cart changes do not wait (synchronous_commit off for their transaction alone)."
        echo "SQLite syncs its WAL at an order's commit too (synchronous=FULL for that transaction), a cart change's not."
    else
        echo "Writes: PostgreSQL ran with synchronous_commit=$sync: its commits do not wait for the disk (a crash loses"
        echo "the last commits), unlike SQLite's order commits (synchronous=FULL); not how the shop is deployed."
    fi
} | tee -a "$OUT"
