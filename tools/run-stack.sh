#!/usr/bin/env bash
# make run: the whole shop in the foreground, for development.
#
#   tools/run-stack.sh [BIN_DIR]        (make run builds first, then calls this)
#
# Starts, in order, each waiting for the previous one to answer:
#   redis        on the unix socket run/redis.sock (no TCP port, no disk state)
#   dynamodb     a local DynamoDB (dynalite) on 127.0.0.1:RUN_DYNAMODB_PORT (8000), tables
#                kept in run/dynamodb/ (then `shopd --create-table` makes the Orders table)
#   ratelimitd   on run/ratelimitd.sock
#   shopd-1/2    on 127.0.0.1:RUN_SHOPD1_PORT and RUN_SHOPD2_PORT (8081, 8082), sharing the
#                database run/shop.db
#   balancer     on RUN_HOST:RUN_BALANCER_PORT (127.0.0.1:8080), admin on
#                127.0.0.1:RUN_ADMIN_PORT (8090)
# With RUN_DATABASE=postgres (make run RUN_DATABASE=postgres), a local PostgreSQL
# (Debian's postgresql package) with its data in run/postgres/ and only a unix socket
# in run/pg/ comes first, and both shopd share its database "shop" instead of
# run/shop.db: the setup of several shop hosts, on one machine.
# Every line a process prints is shown prefixed with its name. Ctrl-C, SIGTERM or
# closing the terminal (SIGHUP) stops everything this script started, balancer
# first, and waits for it, also when the output goes to a pipe (| tee) that the
# same Ctrl-C ended.
#
# Settings come from .env in the checkout (written from .env_example on the first run,
# with a random SECRET_KEY); the addresses, sockets and the database above are passed
# as environment variables, which override .env, so that the processes find each other.
# The local DynamoDB accepts any credentials: the stack passes dummy ones.
#
# Settings (environment, or make variables: make run RUN_BALANCER_PORT=9080):
#   RUN_HOST=0.0.0.0 makes the balancer reachable from other machines (default 127.0.0.1);
#   the ports in the table below. A busy port stops the run naming the setting to change.
#
# All state lives in run/ (git-ignored): delete it to start from an empty shop.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${1:-${SHOP_BIN:-bin}}
BIN=$(cd "$BIN" 2>/dev/null && pwd) || { echo "run: no binaries in ${1:-bin} (run make first)" >&2; exit 1; }
RUN=$ROOT/run
HOST=${RUN_HOST:-127.0.0.1}

# Output may go to a closed terminal or to a `| tee` that Ctrl-C ended: a failed
# write must not stop the script (stop_all ignores SIGPIPE, and this drops bash's
# complaint about it).
say() { printf '[run]        %s\n' "$*" 2>/dev/null; }
# Where the script's output goes, kept for stop_all: bash runs a signal's trap
# inside the command it was running, with that command's redirections, so a
# Ctrl-C during a readiness check (run with >/dev/null) would send every line
# of the stop there. Daemons and the guard close these.
exec {OUT_FD}>&1 {ERR_FD}>&2
die() {
    printf '[run]        error: %s\n' "$*" >&2
    exit 1
}

# The TCP ports make run listens on: setting, default, what listens there. Redis
# has none (a unix socket). A new listener is one more line here and a use below.
PORT_TABLE="
RUN_BALANCER_PORT  8080  the balancer (the shop)
RUN_TLS_PORT       8443  the balancer's HTTPS
RUN_SHOPD1_PORT    8081  shopd-1
RUN_SHOPD2_PORT    8082  shopd-2
RUN_ADMIN_PORT     8090  the balancer's admin (/status, /metrics)
RUN_DYNAMODB_PORT  8000  the local DynamoDB
"
declare -A PORT PORT_WHAT
PORT_SETTINGS=()
while read -r setting default what; do
    [ -n "$setting" ] || continue
    value=${!setting:-$default}
    [[ $value =~ ^[0-9]{1,5}$ ]] && [ "$value" -ge 1 ] && [ "$value" -le 65535 ] ||
        die "$setting=$value is not a port number (1-65535)"
    for other in "${PORT_SETTINGS[@]}"; do
        [ "${PORT[$other]}" != "$value" ] || die "$setting and $other are both $value: give each its own port"
    done
    PORT[$setting]=$((10#$value))
    PORT_WHAT[$setting]=$what
    PORT_SETTINGS+=("$setting")
done <<<"$PORT_TABLE"
declare -A PORT_OF=([dynamodb]=RUN_DYNAMODB_PORT [shopd-1]=RUN_SHOPD1_PORT [shopd-2]=RUN_SHOPD2_PORT
    [balancer]=RUN_BALANCER_PORT)
DYNAMO_PORT=${PORT[RUN_DYNAMODB_PORT]}
SHOPD_PORTS=("${PORT[RUN_SHOPD1_PORT]}" "${PORT[RUN_SHOPD2_PORT]}")
BALANCER_PORT=${PORT[RUN_BALANCER_PORT]}
TLS_PORT=${PORT[RUN_TLS_PORT]}
ADMIN_PORT=${PORT[RUN_ADMIN_PORT]}

for b in shopd ratelimitd balancer; do
    [ -x "$BIN/$b" ] || die "$BIN/$b is missing (run make first)"
done
command -v redis-server >/dev/null || die "redis-server is not installed (run make deps)"
command -v node >/dev/null || die "node is not installed (run make deps)"
[ -d tools/node_modules/dynalite ] || die "dynalite is not installed in tools/node_modules (run make deps)"
command -v curl >/dev/null || die "curl is not installed (run make deps)"
DATABASE=${RUN_DATABASE:-sqlite}
case $DATABASE in
sqlite) ;;
postgres | postgresql)
    DATABASE=postgres
    . tools/lib.sh
    PG_BIN=$(pg_bindir)
    [ -x "$PG_BIN/initdb" ] || die "RUN_DATABASE=postgres needs PostgreSQL's server (run make deps)"
    ;;
*) die "RUN_DATABASE=$DATABASE: expected sqlite (the default) or postgres" ;;
esac

# --- .env --------------------------------------------------------------------------

# Sets KEY=VALUE in .env: replaces the first "KEY=" line, or appends one.
env_set() {
    local key=$1 value=$2 tmp
    tmp=$(mktemp "$ROOT/.env.XXXXXX")
    awk -v k="$key" -v v="$value" '
        !done && index($0, k "=") == 1 { print k "=" v; done = 1; next }
        { print }
        END { if (!done) print k "=" v }' .env >"$tmp" && mv "$tmp" .env
}

new_secret() { openssl rand -hex 32 2>/dev/null || od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }

if [ ! -f .env ]; then
    [ -f .env_example ] || die ".env_example is missing"
    {
        echo "# Development settings, written by make run (tools/run-stack.sh) from .env_example."
        echo "# AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are dummies for the local DynamoDB at"
        echo "# DYNAMODB_ENDPOINT, which accepts any: they are not AWS credentials."
        echo
        cat .env_example
    } >.env
    chmod 600 .env
    env_set SHOP_ENV development
    env_set SECRET_KEY "$(new_secret)"
    env_set ADMIN_EMAILS admin@example.com
    env_set DATABASE_URL sqlite:///run/shop.db
    env_set RATELIMITD_SOCKET run/ratelimitd.sock
    env_set DYNAMODB_ENDPOINT "http://127.0.0.1:$DYNAMO_PORT"
    # Only for the local DynamoDB, which accepts any credentials. Put real ones
    # (and an empty DYNAMODB_ENDPOINT) only in a production environment file.
    env_set AWS_ACCESS_KEY_ID local-development-only
    env_set AWS_SECRET_ACCESS_KEY local-development-only
    env_set BALANCER_LISTEN "$HOST:$BALANCER_PORT"
    say "wrote a development .env (SHOP_ENV=development, random SECRET_KEY, ADMIN_EMAILS=admin@example.com)"
elif ! grep -Eq '^[[:space:]]*(export[[:space:]]+)?SECRET_KEY=[^[:space:]]' .env && [ -z "${SECRET_KEY:-}" ]; then
    env_set SECRET_KEY "$(new_secret)"
    say ".env had no SECRET_KEY: added a random one"
fi

# --- state of an earlier run ---------------------------------------------------------

mkdir -p "$RUN"
PIDS=$RUN/pids
mkdir -p "$PIDS"

# True when pid runs and is not a zombie (an orphan's zombie may wait long for its reaper).
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^[^ ]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }

# True when pid runs in this checkout or its run/ (redis moves there): a recycled pid is not ours.
ours() {
    local pid=$1 cwd
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null)
    [ "$cwd" = "$ROOT" ] || [ "$cwd" = "$RUN" ]
}

if [ -f "$PIDS/stack" ]; then
    old=$(cat "$PIDS/stack" 2>/dev/null)
    if ours "$old" && grep -qa run-stack "/proc/$old/cmdline" 2>/dev/null; then
        die "another make run is already running here (pid $old); stop it first (Ctrl-C in its terminal, or kill $old)"
    fi
fi
# Processes left by a run that could not clean up (killed with SIGKILL, say).
for n in balancer shopd-2 shopd-1 ratelimitd dynamodb redis; do
    f=$PIDS/$n.pid
    [ -e "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null)
    case $n in shopd-*) prog=shopd ;; dynamodb) prog=dynalite ;; *) prog=$n ;; esac
    if ours "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$prog"; then
        say "stopping $n (pid $pid) left by an earlier run"
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$f"
done
rm -f "$PIDS"/*.pid

# Redis' socket must fit in sun_path (108 bytes); a deep checkout gets one in /tmp.
REDIS_SOCK=$RUN/redis.sock
if [ ${#REDIS_SOCK} -gt 100 ]; then
    REDIS_SOCK=$(mktemp -d /tmp/shop-run.XXXXXX)/redis.sock
fi
RL_SOCK=run/ratelimitd.sock
rm -f "$REDIS_SOCK" "$RL_SOCK"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
busy_message() {
    local setting=$1 p=${PORT[$1]}
    echo "port $p ($setting, for ${PORT_WHAT[$setting]}) is already in use by another program" \
        "(see: ss -ltnp 'sport = :$p'); choose a free one, e.g. make run $setting=$((p + 1000))"
}
for setting in "${PORT_SETTINGS[@]}"; do
    port_busy "${PORT[$setting]}" && die "$(busy_message "$setting")"
done
echo $$ >"$PIDS/stack"

# --- processes -------------------------------------------------------------------------

# The topology, for every daemon (environment beats .env).
export REDIS_URL="unix://$REDIS_SOCK"
export RATELIMITD_SOCKET=$RL_SOCK
export DATABASE_URL=sqlite:///run/shop.db
# PostgreSQL's socket path must fit in sun_path too.
PG_SOCK_DIR=$RUN/pg
[ ${#PG_SOCK_DIR} -le 90 ] || PG_SOCK_DIR=$(mktemp -d /tmp/shop-run-pg.XXXXXX)
export DYNAMODB_ENDPOINT="http://127.0.0.1:$DYNAMO_PORT"
export AWS_ACCESS_KEY_ID=local-development-only
export AWS_SECRET_ACCESS_KEY=local-development-only
unset AWS_SESSION_TOKEN
export BALANCER_LISTEN="$HOST:$BALANCER_PORT"
export BALANCER_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT"
# HTTPS beside HTTP, with a local CA and certificate made once in run/tls/.
"$ROOT/tools/make-dev-cert.sh" "$RUN/tls" localhost ec localhost 127.0.0.1 ::1 | sed 's/^/[run]        /'
export BALANCER_TLS_LISTEN="$HOST:$TLS_PORT" BALANCER_TLS_CERT="$RUN/tls/localhost.pem"
export BALANCER_TLS_KEY="$RUN/tls/localhost-key.pem"
BACKENDS=""
for p in "${SHOPD_PORTS[@]}"; do BACKENDS+="${BACKENDS:+,}127.0.0.1:$p"; done
export BALANCER_BACKENDS=$BACKENDS
export TEMPLATES_DIR=${TEMPLATES_DIR:-templates}
export STATIC_DIR=${STATIC_DIR:-templates/static}
# Product images uploaded by the admin, kept with the rest of the run's state.
export UPLOADS_DIR=${UPLOADS_DIR:-run/uploads}

NAMES=()     # started processes, in order
declare -A PID PREFIXER

# start NAME CMD...: runs CMD in its own session (so a Ctrl-C reaches only this
# script, which then stops the processes in order) with its output prefixed.
start() {
    local name=$1 tag
    shift
    tag=$(printf '%-12s' "[$name]")
    # The prefixer ignores Ctrl-C and hang-ups so that it prints the process' last lines.
    exec {out}> >(trap '' INT TERM HUP; exec sed -u "s/^/$tag /")
    PREFIXER[$name]=$!
    setsid "$@" </dev/null >&$out 2>&1 {out}>&- {OUT_FD}>&- {ERR_FD}>&- &
    PID[$name]=$!
    exec {out}>&-
    NAMES+=("$name")
    echo "${PID[$name]}" >"$PIDS/$name.pid"
}


# wait_for NAME SECONDS CHECK...: until CHECK succeeds; fails if the process dies first.
wait_for() {
    local name=$1 secs=$2 i
    shift 2
    for ((i = 0; i < secs * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        if ! alive "${PID[$name]}"; then
            local hint=""
            [ -z "${PORT_OF[$name]:-}" ] || hint="; if its port was taken meanwhile, choose another with ${PORT_OF[$name]}"
            die "$name exited while starting (its last lines are above)$hint"
        fi
        sleep 0.1
    done
    die "$name did not become ready within $secs s"
}

http_ok() { [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1")" = 200 ]; }
http_any() { [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1")" != 000 ]; }

# Reads /proc/PID/stat into STAT_PPID, STAT_PGRP, STAT_SID (no procps needed).
read_stat() {
    local s
    { s=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
    s=${s##*) }
    read -r STAT_STATE STAT_PPID STAT_PGRP STAT_SID _ <<<"$s"
}

# Live (not zombie) processes of process group $1.
group_alive() {
    local d
    for d in /proc/[0-9]*; do
        read_stat "${d#/proc/}" || continue
        [ "$STAT_PGRP" = "$1" ] && [ "$STAT_STATE" != Z ] && return 0
    done
    return 1
}

# A daemon whose start a signal interrupted (started, but not yet in NAMES):
# every child of this script that leads a session of its own is one of ours.
adopt_strays() {
    local d pid known name
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        read_stat "$pid" || continue
        [ "$STAT_PPID" = $$ ] && [ "$STAT_SID" = "$pid" ] || continue
        known=0
        for name in "${NAMES[@]}"; do [ "${PID[$name]}" != "$pid" ] || known=1; done
        [ "$known" -eq 1 ] && continue
        NAMES+=("pid-$pid")
        PID[pid-$pid]=$pid
    done
}

stopping=0
stop_all() {
    local rc=$?
    [ "$stopping" -eq 0 ] || return
    stopping=1
    # Nothing may interrupt the stop: not a second Ctrl-C, not the hang-up of a
    # closed terminal, not the SIGPIPE of writing to a `| tee` that Ctrl-C ended.
    trap '' INT TERM HUP PIPE
    exec >&"$OUT_FD" 2>&"$ERR_FD"
    adopt_strays
    [ ${#NAMES[@]} -eq 0 ] || say "stopping"
    local i name pid t
    for ((i = ${#NAMES[@]} - 1; i >= 0; i--)); do
        name=${NAMES[i]}
        pid=${PID[$name]}
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
        for ((t = 0; t < 150; t++)); do
            group_alive "$pid" || break
            sleep 0.1
        done
        if group_alive "$pid"; then
            say "$name did not stop within 15 s: killing it"
            kill -KILL -- "-$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
        rm -f "$PIDS/$name.pid"
    done
    # Let the prefixers print the last lines.
    for name in "${NAMES[@]}"; do
        for ((t = 0; t < 20; t++)); do
            kill -0 "${PREFIXER[$name]}" 2>/dev/null || break
            sleep 0.1
        done
    done
    rm -f "$REDIS_SOCK" "$RL_SOCK" "$PIDS/stack"
    [ "$REDIS_SOCK" = "$RUN/redis.sock" ] || rmdir "$(dirname "$REDIS_SOCK")" 2>/dev/null
    [ ${#NAMES[@]} -eq 0 ] || say "stopped everything"
    exit "$rc"
}
# Ctrl-C, SIGTERM and a closed terminal (SIGHUP) all end in stop_all. A closed
# terminal sends SIGHUP twice (the kernel to the foreground group, the shell to
# its jobs), and bash runs a handler for a signal that arrived before it was
# ignored: a second 'exit', run inside the EXIT trap, would end the script
# before stop_all has stopped anything. So only the first signal exits.
signalled=0
on_signal() {
    trap '' INT TERM HUP PIPE
    [ "$signalled" -eq 0 ] || return 0
    signalled=1
    exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP
trap stop_all EXIT

say "state in $RUN"

# A guard that outlives this script: should the script die without stopping
# the stack (a signal bash could not handle, SIGKILL), it stops the process
# groups whose pid files stop_all has not removed yet. After a normal stop it
# finds none and just ends.
(
    trap '' INT TERM HUP PIPE
    exec </dev/null >/dev/null 2>&1 {OUT_FD}>&- {ERR_FD}>&-
    while kill -0 "$$" 2>/dev/null; do sleep 0.2; done
    for sig in TERM KILL; do
        signalled=0
        for f in "$PIDS"/*.pid; do
            [ -e "$f" ] && kill -"$sig" -- "-$(cat "$f")" 2>/dev/null && signalled=1
        done
        # Nothing was left running (the normal case): end now, not 5 s later.
        [ "$signalled" -eq 1 ] || break
        [ "$sig" = KILL ] || sleep 5
    done
    rm -f "$PIDS"/*.pid
) &

start redis redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
    --save '' --appendonly no --dir "$RUN" --bind 127.0.0.1 --logfile '' --loglevel notice
if command -v redis-cli >/dev/null; then
    wait_for redis 10 sh -c '[ "$(redis-cli -s "$1" ping)" = PONG ]' _ "$REDIS_SOCK"
else
    wait_for redis 10 test -S "$REDIS_SOCK"
fi

if [ "$DATABASE" = postgres ]; then
    # PostgreSQL refuses to run as root: then its files and process belong to
    # the postgres user the package made, and shopd connects over the socket.
    [ "$(id -u)" -ne 0 ] || id postgres >/dev/null 2>&1 ||
        die "the postgres user is missing (reinstall Debian's postgresql package)"
    as_postgres_words
    as_pg=("${AS_POSTGRES[@]}")
    mkdir -p "$RUN/postgres" "$PG_SOCK_DIR"
    [ ${#as_pg[@]} -eq 0 ] || chown postgres: "$RUN/postgres" "$PG_SOCK_DIR"
    if [ ! -f "$RUN/postgres/PG_VERSION" ]; then
        say "creating a PostgreSQL cluster in $RUN/postgres"
        "${as_pg[@]}" "$PG_BIN/initdb" -D "$RUN/postgres" -U shop --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$RUN/postgres-initdb.log" 2>&1 || die "initdb failed (see $RUN/postgres-initdb.log)"
    fi
    start postgres "${as_pg[@]}" "$PG_BIN/postgres" -D "$RUN/postgres" -c listen_addresses= \
        -c unix_socket_directories="$PG_SOCK_DIR" -c unix_socket_permissions=0777
    wait_for postgres 20 test -S "$PG_SOCK_DIR/.s.PGSQL.5432"
    wait_for postgres 20 "${as_pg[@]}" "$PG_BIN/psql" -h "$PG_SOCK_DIR" -U shop -d postgres -Atc "SELECT 1"
    if [ "$("${as_pg[@]}" "$PG_BIN/psql" -h "$PG_SOCK_DIR" -U shop -d postgres -Atc \
        "SELECT 1 FROM pg_database WHERE datname = 'shop'")" != 1 ]; then
        "${as_pg[@]}" "$PG_BIN/createdb" -h "$PG_SOCK_DIR" -U shop shop || die "could not create the database shop"
    fi
    export DATABASE_URL="postgresql://shop@/shop?host=$PG_SOCK_DIR"
    say "database: PostgreSQL in $RUN/postgres ($DATABASE_URL)"
fi

mkdir -p "$RUN/dynamodb"
start dynamodb node tools/dynalite.js --port "$DYNAMO_PORT" --path "$RUN/dynamodb" --create-table-ms 0
wait_for dynamodb 20 http_any "http://127.0.0.1:$DYNAMO_PORT/"
"$BIN/shopd" --create-table 2>&1 | sed -u 's/^/[dynamodb]   /'
[ "${PIPESTATUS[0]}" -eq 0 ] || die "could not create the Orders table in the local DynamoDB"

start ratelimitd "$BIN/ratelimitd"
wait_for ratelimitd 10 test -S "$RL_SOCK"

for i in "${!SHOPD_PORTS[@]}"; do
    n=$((i + 1))
    start "shopd-$n" "$BIN/shopd" --shopd-listen "127.0.0.1:${SHOPD_PORTS[i]}"
    wait_for "shopd-$n" 20 http_ok "http://127.0.0.1:${SHOPD_PORTS[i]}/healthz"
done

start balancer "$BIN/balancer"
wait_for balancer 10 http_ok "http://127.0.0.1:$BALANCER_PORT/healthz"

url_host=$HOST
[ "$HOST" = 0.0.0.0 ] && url_host=$(hostname -f 2>/dev/null || echo 127.0.0.1)
echo
say "the shop is running: open http://$url_host:$BALANCER_PORT/ or https://$url_host:$TLS_PORT/"
say "to trust HTTPS, import the local CA $RUN/tls/ca.pem (curl --cacert run/tls/ca.pem; browsers: settings, certificates, authorities)"
say "balancer status: http://127.0.0.1:$ADMIN_PORT/status; press Ctrl-C to stop everything"
echo

# Runs until Ctrl-C, or until one of the processes exits by itself.
while :; do
    for name in "${NAMES[@]}"; do
        if ! alive "${PID[$name]}"; then
            wait "${PID[$name]}" 2>/dev/null
            die "$name exited (status $?); stopping the others"
        fi
    done
    sleep 1 &
    wait $! 2>/dev/null
done
