#!/usr/bin/env bash
# The shop spread over three machines, played by network namespaces on one
# bridge: `data` runs PostgreSQL, Redis and the local DynamoDB; `shop1` and
# `shop2` each run a ratelimitd (against the shared Redis) and a shopd with its
# dispatcher (against the shared database); the balancer runs in the root
# namespace with both shopd as backends and its health checks on. Every address
# is in a private 10.231.N.0/24 the test picks, every name carries the test's
# pid, so two runs cannot meet. A machine that refuses network namespaces skips
# the tests (they need root).
#
#   bridge mh<pid>br 10.231.N.254 (root namespace: balancer, curl)
#     ├─ veth ─ mh<pid>-data  eth0 10.231.N.1  postgres :5432, redis :6379, dynalite :8000
#     ├─ veth ─ mh<pid>-shop1 eth0 10.231.N.2  ratelimitd (unix socket), shopd :8081
#     └─ veth ─ mh<pid>-shop2 eth0 10.231.N.3  ratelimitd (unix socket), shopd :8081
#
# Each namespace has its own ports, so the daemons in them use fixed ones; only
# the balancer's, in the root namespace, are picked free.
source "$(dirname "$0")/lib.sh"

J='Content-Type: application/json'
SHOPD_PORT=8081
PG_PORT=5432
REDIS_PORT=6379
DYNAMO_PORT=8000
AWS_KEY=local-development-only

# --- the machines ------------------------------------------------------------------

# needs: skips the test when something it drives is not installed here.
needs() {
    command -v ip >/dev/null || t_skip "ip (iproute2) is not installed"
    command -v jq >/dev/null || t_skip "jq is not installed"
    command -v redis-server >/dev/null || t_skip "redis-server is not installed"
    command -v setpriv >/dev/null || t_skip "setpriv (util-linux) is not installed"
    [ -d tools/node_modules/dynalite ] || t_skip "dynalite is not installed in tools/node_modules (make deps)"
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$PG_BIN" ] && [ -x "$PG_BIN/postgres" ] || t_skip "the PostgreSQL server is not installed"
    id postgres >/dev/null 2>&1 || t_skip "there is no postgres user to run PostgreSQL as"
    local b
    for b in shopd ratelimitd balancer; do
        [ -x "$SHOP_BIN/$b" ] || fail "$SHOP_BIN/$b is missing: run make all first"
    done
}

# pick_subnet: sets NET to a 10.231.N that no interface of this machine uses and
# puts .254 of it on the bridge, under a lock so that two runs starting together
# cannot pick the same one.
pick_subnet() {
    local lock=${TMPDIR:-/tmp}/shop-multihost.lock n i
    exec {lockfd}>"$lock"
    flock -w 10 "$lockfd" || fail "could not take $lock"
    for ((i = 0; i < 250; i++)); do
        n=$(((BASHPID + i) % 250 + 1))
        ip -4 -o addr show | grep -q " 10\.231\.$n\." && continue
        NET=10.231.$n
        ip addr add "$NET.254/24" dev "$BRIDGE"
        flock -u "$lockfd"
        exec {lockfd}>&-
        return 0
    done
    fail "every 10.231.N.0/24 is taken on this machine"
}

# host NAME INDEX: a namespace ID-NAME whose eth0 (10.231.N.INDEX) is a veth
# port of the bridge; the root side is named ID + NAME.
host() {
    local ns=$ID-$1 veth=$ID$1
    ip netns add "$ns"
    t_cleanup "ip netns del $ns"
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    t_cleanup "ip link del $veth 2>/dev/null"
    ip link set "$veth" master "$BRIDGE" up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip addr add "$NET.$2/24" dev eth0
    ip netns exec "$ns" ip link set eth0 up
}

network_up() {
    ID=mh$BASHPID
    BRIDGE=${ID}br
    local err
    if ! err=$(ip netns add "$ID-probe" 2>&1); then
        t_skip "this machine refuses network namespaces (ip netns add: $err)"
    fi
    # ip netns exec needs a mount namespace of its own too, which a chroot
    # (whose / is no mount point) refuses.
    if ! err=$(ip netns exec "$ID-probe" true 2>&1); then
        ip netns del "$ID-probe"
        t_skip "this machine cannot enter network namespaces (ip netns exec: $err)"
    fi
    ip netns del "$ID-probe"
    ip link add "$BRIDGE" type bridge
    t_cleanup "ip link del $BRIDGE"
    ip link set "$BRIDGE" up
    pick_subnet
    IP_DATA=$NET.1 IP_SHOP1=$NET.2 IP_SHOP2=$NET.3 IP_ROOT=$NET.254
    host data 1
    host shop1 2
    host shop2 3
    NS_DATA=$ID-data NS_SHOP1=$ID-shop1 NS_SHOP2=$ID-shop2
    echo "network: bridge $BRIDGE $IP_ROOT, data $IP_DATA, shop1 $IP_SHOP1, shop2 $IP_SHOP2"
}

# --- processes -----------------------------------------------------------------------

declare -A PID STOPSIG

# start NAME NAMESPACE CMD...: CMD in NAMESPACE ("" for the root one), in its own
# session (so that stopping it reaches its children), output in LOGS/NAME.log;
# stopped when the test ends.
start() {
    local name=$1 ns=$2
    shift 2
    if [ -n "$ns" ]; then
        (cd "$T" && exec ip netns exec "$ns" setsid "$@") </dev/null >"$LOGS/$name.log" 2>&1 &
    else
        (cd "$T" && exec setsid "$@") </dev/null >"$LOGS/$name.log" 2>&1 &
    fi
    PID[$name]=$!
    t_cleanup "stop $name"
}

# group_alive PGID: a live (not zombie) process is in that process group.
group_alive() {
    local d s rest
    for d in /proc/[0-9]*; do
        { s=$(<"$d/stat"); } 2>/dev/null || continue
        rest=${s##*) }
        read -r state _ pgrp _ <<<"$rest"
        [ "$pgrp" = "$1" ] && [ "$state" != Z ] && return 0
    done
    return 1
}

# stop NAME: its stop signal (TERM, or STOPSIG[NAME]) to the whole session,
# KILL after 3 s.
stop() {
    local pid=${PID[$1]} i
    kill "-${STOPSIG[$1]:-TERM}" -- "-$pid" 2>/dev/null
    for ((i = 0; i < 30; i++)); do
        group_alive "$pid" || break
        sleep 0.1
    done
    if group_alive "$pid"; then
        echo "$1 did not stop within 3 s: killing it"
        kill -KILL -- "-$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}

# wait_up NAME SECONDS CMD...: until CMD succeeds; fails early when NAME died.
wait_up() {
    local name=$1 secs=$2 i
    shift 2
    for ((i = 0; i < secs * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        if ! kill -0 "${PID[$name]}" 2>/dev/null; then
            tail -n 20 "$LOGS/$name.log"
            fail "$name exited while starting"
        fi
        sleep 0.1
    done
    tail -n 20 "$LOGS/$name.log"
    fail "$name was not ready within $secs s"
}

http_ok() { [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1")" = 200 ]; }

# --- the shop on them --------------------------------------------------------------------

start_postgres() {
    # The data folder must be the postgres user's, which cannot enter $T.
    PGD=$(mktemp -d "${TMPDIR:-/tmp}/shop-multihost-pg.XXXXXX")
    t_cleanup "rm -rf $PGD"
    chown postgres: "$PGD"
    (cd / && setpriv --reuid=postgres --regid=postgres --init-groups \
        "$PG_BIN/initdb" -D "$PGD/data" -U shop -A trust -E UTF8 --no-sync) >"$LOGS/initdb.log" 2>&1 ||
        {
            tail -n 20 "$LOGS/initdb.log"
            fail "initdb failed"
        }
    echo "host all all $NET.0/24 trust" >>"$PGD/data/pg_hba.conf"
    # A shop host cut off in the middle of a transaction would hold its row locks
    # until TCP gave up (hours): the server ends such sessions itself.
    STOPSIG[postgres]=INT
    start postgres "$NS_DATA" setpriv --reuid=postgres --regid=postgres --init-groups \
        "$PG_BIN/postgres" -D "$PGD/data" -c listen_addresses="$IP_DATA" -c port=$PG_PORT \
        -c unix_socket_directories="$PGD" -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c idle_in_transaction_session_timeout=2s -c max_connections=100
    wait_up postgres 30 "$PG_BIN/pg_isready" -q -h "$IP_DATA" -p $PG_PORT
    "$PG_BIN/createdb" -h "$IP_DATA" -p $PG_PORT -U shop shop
    DATABASE_URL=postgresql://shop@$IP_DATA:$PG_PORT/shop
    echo "database: $DATABASE_URL"
}

start_data() {
    start_postgres
    mkdir -p "$T/redis"
    start redis "$NS_DATA" redis-server --bind "$IP_DATA" --port $REDIS_PORT --save '' --appendonly no \
        --protected-mode no --dir "$T/redis"
    wait_up redis 10 redis-cli -h "$IP_DATA" -p $REDIS_PORT ping
    start dynamodb "$NS_DATA" node "$ROOT/tools/dynalite.js" --host "$IP_DATA" --port $DYNAMO_PORT \
        --create-table-ms 50
    wait_up dynamodb 20 grep -q '^Listening at' "$LOGS/dynamodb.log"
    (cd "$T" && env AWS_ACCESS_KEY_ID=$AWS_KEY AWS_SECRET_ACCESS_KEY=$AWS_KEY \
        DYNAMODB_ENDPOINT="http://$IP_DATA:$DYNAMO_PORT" "$SHOP_BIN/shopd" --create-table) \
        >"$LOGS/create-table.log" 2>&1 || {
        cat "$LOGS/create-table.log"
        fail "shopd --create-table failed"
    }
}

# Budgets generous enough for a script driving many shoppers from one address.
write_rules() {
    cat >"$T/ratelimit.rules" <<'EOF'
page      100000/1m  burst=10000
api       100000/1m  burst=10000
cart      100000/1m  burst=10000
checkout  100000/1m  burst=10000
login     100000/1m  burst=10000
register  100000/1m  burst=10000
EOF
}

# start_shop NAME NAMESPACE ADDRESS: its ratelimitd and its shopd, dispatcher on.
start_shop() {
    local name=$1 ns=$2 addr=$3
    mkdir -p "$T/$name/uploads"
    start "ratelimitd-$name" "$ns" env RATELIMITD_SOCKET="$T/$name/rl.sock" \
        REDIS_URL="redis://$IP_DATA:$REDIS_PORT/0" RATELIMIT_RULES="$T/ratelimit.rules" "$SHOP_BIN/ratelimitd"
    wait_up "ratelimitd-$name" 10 test -S "$T/$name/rl.sock"
    start "shopd-$name" "$ns" env SHOPD_LISTEN="$addr:$SHOPD_PORT" SHOPD_WORKERS=2 DATABASE_URL="$DATABASE_URL" \
        SECRET_KEY=multihost-test-secret-shared-by-both-hosts SHOP_ENV=development \
        ADMIN_EMAILS=admin@example.com TRUSTED_PROXIES="$IP_ROOT" RATELIMITD_SOCKET="$T/$name/rl.sock" \
        TEMPLATES_DIR="$ROOT/templates" STATIC_DIR="$ROOT/templates/static" UPLOADS_DIR="$T/$name/uploads" \
        AWS_ACCESS_KEY_ID=$AWS_KEY AWS_SECRET_ACCESS_KEY=$AWS_KEY \
        DYNAMODB_ENDPOINT="http://$IP_DATA:$DYNAMO_PORT" DISPATCHER_ENABLED=1 "$SHOP_BIN/shopd"
    wait_up "shopd-$name" 30 http_ok "http://$addr:$SHOPD_PORT/healthz"
}

# backend_state ADDRESS: up or down, as the balancer's /status says.
backend_state() {
    curl -s -m 2 "http://127.0.0.1:$ADMIN_PORT/status" |
        jq -r --arg n "$1:$SHOPD_PORT" '.backends[] | select(.name == $n) | .state'
}

both_up() { [ "$(backend_state "$IP_SHOP1")" = up ] && [ "$(backend_state "$IP_SHOP2")" = up ]; }

start_balancer() {
    BAL_PORT=$(free_port)
    while ADMIN_PORT=$(free_port) && [ "$ADMIN_PORT" = "$BAL_PORT" ]; do :; done
    # Short health intervals and timeouts: a host that vanishes is out within about a second.
    start balancer "" env BALANCER_LISTEN="127.0.0.1:$BAL_PORT" BALANCER_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT" \
        BALANCER_BACKENDS="$IP_SHOP1:$SHOPD_PORT,$IP_SHOP2:$SHOPD_PORT" BALANCER_HEALTH_INTERVAL_MS=200 \
        BALANCER_HEALTH_TIMEOUT_MS=300 BALANCER_HEALTH_FALL=2 BALANCER_HEALTH_RISE=2 \
        BALANCER_CONNECT_TIMEOUT_MS=300 BALANCER_BACKEND_TIMEOUT_MS=2000 "$SHOP_BIN/balancer"
    wait_up balancer 10 both_up
    B=http://127.0.0.1:$BAL_PORT
    S1=http://$IP_SHOP1:$SHOPD_PORT
    S2=http://$IP_SHOP2:$SHOPD_PORT
}

cluster_up() {
    needs
    LOGS=$T_OUT/tools-multihost-$1
    rm -rf "$LOGS"
    mkdir -p "$LOGS"
    network_up
    start_data
    write_rules
    # One after the other: the first migrates the empty database.
    start_shop shop1 "$NS_SHOP1" "$IP_SHOP1"
    start_shop shop2 "$NS_SHOP2" "$IP_SHOP2"
    start_balancer
    echo "cluster up: balancer $B, logs in $LOGS"
}

# --- requests ----------------------------------------------------------------------------

# call METHOD URL [CURL-ARGS...]: one request on a connection of its own; sets
# CODE and BODY. Twenty shoppers registering and logging in at once queue forty
# scrypt hashes on two cores that make test shares with its other lane: 30 s.
call() {
    local method=$1 url=$2 out
    shift 2
    out=$(curl -s -m 30 -X "$method" -w '\n%{http_code}' "$@" "$url") || true
    CODE=${out##*$'\n'}
    BODY=${out%$'\n'*}
    [ -n "$CODE" ] || CODE=000
}

# expect CODE WHAT: the last call answered CODE.
expect() {
    [ "$CODE" = "$1" ] || fail "$2: expected $1, got $CODE: $BODY"
}

# shopper EMAIL BASE: registered and logged in through BASE, cookies in $T/EMAIL.jar.
shopper() {
    call POST "$2/register" -H "$J" -d "{\"email\":\"$1\",\"password\":\"multihost-password\"}"
    [ "$CODE" = 201 ] || [ "$CODE" = 409 ] || fail "register $1: $CODE $BODY"
    call POST "$2/login" -c "$T/$1.jar" -H "$J" -d "{\"email\":\"$1\",\"password\":\"multihost-password\"}"
    expect 200 "login $1"
}

# product STOCK: a new product, made by the admin through shop1; sets PRODUCT.
product() {
    shopper admin@example.com "$S1"
    call POST "$S1/products" -b "$T/admin@example.com.jar" -H "$J" \
        -d "{\"name\":\"Kiwi $RANDOM\",\"description\":\"Green\",\"price\":1.25,\"stock\":$1}"
    expect 201 "creating a product"
    PRODUCT=$(jq -r .id <<<"$BODY")
}

stock_at() {
    call GET "$1/products/$PRODUCT"
    expect 200 "GET /products/$PRODUCT from $1"
    jq -r .stock <<<"$BODY"
}

# dynamo_order_ids: every order_id in the Orders table, one a line, all pages.
dynamo_order_ids() {
    local start=null page
    while :; do
        page=$(curl -s -m 10 "http://$IP_DATA:$DYNAMO_PORT/" --aws-sigv4 aws:amz:us-east-1:dynamodb \
            --user "$AWS_KEY:$AWS_KEY" -H 'Content-Type: application/x-amz-json-1.0' \
            -H 'X-Amz-Target: DynamoDB_20120810.Scan' \
            -d "$(jq -cn --argjson s "$start" '{TableName: "Orders", ProjectionExpression: "order_id"} +
                  (if $s == null then {} else {ExclusiveStartKey: $s} end)')") || return 1
        jq -e '.Items' <<<"$page" >/dev/null || return 1
        jq -r '.Items[].order_id.S' <<<"$page"
        start=$(jq -c '.LastEvaluatedKey // null' <<<"$page")
        [ "$start" != null ] || return 0
    done
}

# all_in_dynamo FILE: every order id listed in FILE is in the table.
all_in_dynamo() {
    dynamo_order_ids | sort >"$T/dynamo.ids" || return 1
    [ -z "$(comm -23 <(sort -u "$1") "$T/dynamo.ids")" ]
}

# db_order_ids: the ids of every order in the shared database.
db_order_ids() {
    psql -q -A -t -h "$IP_DATA" -p $PG_PORT -U shop -d shop -c 'SELECT id FROM orders'
}

# dynamo_matches_db: the table holds exactly the orders of the database.
dynamo_matches_db() {
    dynamo_order_ids | sort >"$T/dynamo.ids" || return 1
    db_order_ids | sort >"$T/db.ids" || return 1
    cmp -s "$T/db.ids" "$T/dynamo.ids"
}

# served_by HOST PREFIX: how many requests whose id starts with PREFIX that shopd logged.
served_by() { grep -c "request_id=$2" "$LOGS/shopd-$1.log" || true; }

# --- tests ---------------------------------------------------------------------------------

# One shopper's whole visit through the balancer, one connection per request:
# round robin sends the steps to both hosts, and a session made on one is good
# on the other because both read the same database.
test_journey_over_both_hosts() {
    cluster_up journey
    product 10
    local jar=$T/ann.jar n=0 rid
    step() {
        n=$((n + 1))
        rid=journey-$n
        call "$@" -H "X-Request-Id: $rid"
    }
    step POST "$B/register" -H "$J" -d '{"email":"ann@example.com","password":"correct horse"}'
    expect 201 "register"
    step POST "$B/login" -c "$jar" -H "$J" -d '{"email":"ann@example.com","password":"correct horse"}'
    expect 200 "login"
    step GET "$B/products" -b "$jar"
    expect 200 "the catalog"
    jq -e --argjson id "$PRODUCT" 'map(select(.id == $id)) | length == 1' <<<"$BODY" >/dev/null ||
        fail "the catalog lacks product $PRODUCT: $BODY"
    step POST "$B/cart/items" -b "$jar" -H "$J" -d "{\"product_id\":$PRODUCT,\"quantity\":2}"
    expect 201 "adding to the cart"
    step GET "$B/cart" -b "$jar"
    expect 200 "the cart"
    [ "$(jq -r .total_cents <<<"$BODY")" = 250 ] || fail "the cart's total is not 250 cents: $BODY"
    step POST "$B/checkout" -b "$jar" -H 'Idempotency-Key: multihost-journey'
    expect 201 "checkout"
    local order
    order=$(jq -r .order_id <<<"$BODY")
    step GET "$B/orders/$order" -b "$jar"
    expect 200 "the order"
    step GET "$B/account" -b "$jar"
    expect 200 "the account"
    [ "$(jq -r .email <<<"$BODY")" = ann@example.com ] || fail "the account is not ann's: $BODY"

    local one two
    one=$(served_by shop1 journey-)
    two=$(served_by shop2 journey-)
    echo "journey: $n requests, shop1 served $one, shop2 $two"
    [ "$one" -ge 2 ] && [ "$two" -ge 2 ] || fail "round robin did not spread the journey: shop1 $one, shop2 $two"
    [ $((one + two)) -eq "$n" ] || fail "the hosts logged $((one + two)) of the journey's $n requests"
    [ "$(stock_at "$S2")" = 8 ] || fail "shop2 does not see the stock shop1's checkout took"

    echo "$order" >"$T/orders"
    wait_until 15 all_in_dynamo "$T/orders" || fail "order $order did not reach DynamoDB within 15 s"
    [ "$(grep -c -x "$order" "$T/dynamo.ids")" = 1 ] || fail "order $order is not in DynamoDB exactly once"
}

# Twenty buyers, ten on each host directly, race for the last five items.
test_stock_race_across_hosts() {
    cluster_up race
    product 5
    local i base pids=()
    for ((i = 1; i <= 20; i++)); do
        if ((i % 2)); then base=$S1; else base=$S2; fi
        (
            shopper "buyer$i@example.com" "$base"
            call POST "$base/cart/items" -b "$T/buyer$i@example.com.jar" -H "$J" \
                -d "{\"product_id\":$PRODUCT,\"quantity\":1}"
            expect 201 "buyer $i adding to the cart"
        ) >"$T/setup.$i" 2>&1 &
        pids+=($!)
    done
    for ((i = 1; i <= 20; i++)); do
        wait "${pids[i - 1]}" || fail "buyer $i could not get ready: $(cat "$T/setup.$i")"
    done
    pids=()
    for ((i = 1; i <= 20; i++)); do
        if ((i % 2)); then base=$S1; else base=$S2; fi
        curl -s -m 20 -o "$T/checkout.$i" -w '%{http_code}' -X POST -b "$T/buyer$i@example.com.jar" \
            -H "X-Request-Id: race-$i" "$base/checkout" >"$T/code.$i" &
        pids+=($!)
    done
    wait "${pids[@]}"
    local ok=0 out=0 code
    for ((i = 1; i <= 20; i++)); do
        code=$(cat "$T/code.$i")
        case $code in
        201) ok=$((ok + 1)) ;;
        409)
            out=$((out + 1))
            jq -r .message "$T/checkout.$i" | grep -q '^Not enough stock for Kiwi' ||
                fail "buyer $i got 409 without the out-of-stock message: $(cat "$T/checkout.$i")"
            ;;
        *) fail "buyer $i's checkout answered $code: $(cat "$T/checkout.$i")" ;;
        esac
    done
    echo "race: $ok orders, $out out of stock; shop1 took $(served_by shop1 race-), shop2 $(served_by shop2 race-)"
    [ "$ok" -eq 5 ] && [ "$out" -eq 15 ] || fail "expected 5 orders and 15 out of stock, got $ok and $out"
    [ "$(stock_at "$S1")" = 0 ] || fail "shop1 reads stock $(stock_at "$S1") after the race"
    [ "$(stock_at "$S2")" = 0 ] || fail "shop2 reads stock $(stock_at "$S2") after the race"
}

# loader K: one shopper adding to the cart and checking out through the
# balancer until $T/stop appears; one line per request in $T/load.K:
# start-time end-time what status order-id.
loader() {
    local k=$1 jar=$T/loader$1@example.com.jar t0
    while [ ! -e "$T/stop" ]; do
        t0=$(date +%s.%N)
        call POST "$B/cart/items" -b "$jar" -H "$J" -d "{\"product_id\":$PRODUCT,\"quantity\":1}"
        echo "$t0 $(date +%s.%N) add $CODE -" >>"$T/load.$k"
        # A lost add leaves the cart empty: its checkout would be a 409 for that.
        [ "$CODE" = 201 ] || continue
        t0=$(date +%s.%N)
        call POST "$B/checkout" -b "$jar"
        echo "$t0 $(date +%s.%N) checkout $CODE $(jq -r '.order_id // "-"' <<<"$BODY" 2>/dev/null || echo -)" \
            >>"$T/load.$k"
    done
}

# shop2's link goes down under load: the balancer's health checks take it out,
# requests keep succeeding on shop1, and every order placed reaches DynamoDB
# exactly once (shop1's dispatcher sends what shop2 could not).
test_network_cut_under_load() {
    cluster_up cut
    product 100000
    local k pids=()
    for k in 1 2 3 4; do shopper "loader$k@example.com" "$B"; done
    for k in 1 2 3 4; do
        loader $k &
        pids+=($!)
    done
    t_cleanup "touch $T/stop; wait ${pids[*]}"
    sleep 2
    local cut down=""
    cut=$(date +%s.%N)
    ip netns exec "$NS_SHOP2" ip link set eth0 down
    echo "cut shop2's link at $cut"
    local i
    for ((i = 0; i < 100; i++)); do
        if [ "$(backend_state "$IP_SHOP2")" = down ]; then
            down=$(date +%s.%N)
            break
        fi
        sleep 0.1
    done
    [ -n "$down" ] || fail "the balancer still had shop2 up 10 s after its link went down"
    echo "the balancer took shop2 out after $(awk -v c="$cut" -v d="$down" 'BEGIN { printf "%.1f", d - c }') s"
    sleep 2
    touch "$T/stop"
    wait "${pids[@]}"

    cat "$T"/load.* | sort -n >"$T/load"
    local before after failed
    # Answered before the cut; started after shop2 was out; neither.
    before=$(awk -v c="$cut" '$2 < c' "$T/load" | wc -l)
    after=$(awk -v d="$down" '$1 > d' "$T/load" | wc -l)
    failed=$(awk '$4 !~ /^2/' "$T/load" | wc -l)
    echo "requests: $(wc -l <"$T/load") in all, $before answered before the cut, $after started after shop2 was out," \
        "$failed not 2xx"
    [ "$before" -ge 8 ] || fail "only $before requests were answered before the cut"
    [ "$after" -ge 8 ] || fail "only $after requests started after shop2 was out"
    awk -v c="$cut" '$2 < c && $4 !~ /^2/' "$T/load" | grep . && fail "requests failed before the cut"
    awk -v d="$down" '$1 > d && $4 !~ /^2/' "$T/load" | grep . && fail "requests failed after shop2 was out"
    # In flight to shop2 at the cut, at most one request of each shopper is lost.
    [ "$failed" -le 4 ] || fail "$failed requests failed around the cut"
    [ "$(served_by shop2 '')" -gt 0 ] || fail "shop2 served nothing before the cut"

    awk -v c="$cut" '$3 == "checkout" && $4 == 201 && $2 < c { print $5 }' "$T/load" >"$T/before.ids"
    awk '$3 == "checkout" && $4 == 201 { print $5 }' "$T/load" >"$T/placed.ids"
    echo "orders: $(wc -l <"$T/before.ids") placed before the cut, $(wc -l <"$T/placed.ids") in all"
    # An order shop2's dispatcher had claimed when its link went down is sent by
    # shop1's once the lease (30 s) runs out.
    wait_until 45 all_in_dynamo "$T/before.ids" || fail "orders placed before the cut are missing in DynamoDB"
    wait_until 45 all_in_dynamo "$T/placed.ids" || fail "orders placed after the cut are missing in DynamoDB"
    # Every order of the database, also one whose answer the cut swallowed,
    # arrives once: the table has exactly the database's orders.
    if ! wait_until 45 dynamo_matches_db; then
        diff "$T/db.ids" "$T/dynamo.ids"
        fail "DynamoDB does not hold exactly the database's orders"
    fi
    [ "$(uniq -d "$T/dynamo.ids")" = "" ] || fail "orders in DynamoDB twice: $(uniq -d "$T/dynamo.ids")"
    echo "DynamoDB holds the $(wc -l <"$T/dynamo.ids") orders of the database, each once"
}

t_main "$@"
