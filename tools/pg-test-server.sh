#!/usr/bin/env bash
# A PostgreSQL server for one test run, the shell side of tests/support/pg_server.c.
#   tools/pg-test-server.sh start DIR   creates a cluster in DIR (new or empty), starts it on a
#                                       unix socket in DIR and prints SHOP_TEST_PG_HOST=... and
#                                       SHOP_TEST_PG_PORT=... lines for the suites
#   tools/pg-test-server.sh stop DIR    fast shutdown, then removes DIR
# No TCP, no durability (tests only). As root the server runs as the postgres user of
# Debian's package: initdb and postgres refuse root.
set -euo pipefail

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2

. "$(dirname "$0")/lib.sh"
bindir=$(pg_bindir)
[ -x "$bindir/postgres" ] || {
    echo "pg-test-server: no PostgreSQL server in /usr/lib/postgresql/*/bin (Debian package postgresql)" >&2
    exit 1
}
as_postgres_words
as_server() { "${AS_POSTGRES[@]}" "$@"; }

case "$cmd" in
start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
        as_server test -x "$dir" || {
            echo "pg-test-server: the postgres user cannot enter $dir (a parent folder is closed to it)" >&2
            exit 1
        }
    fi
    # The number only names the socket: the folder is private, so any number is free in it.
    port=$((20000 + RANDOM % 40000))
    as_server "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C --no-sync \
        >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    # mmap for dynamic shared memory: a chroot may have no usable /dev/shm.
    cat >>"$dir/data/postgresql.conf" <<CONF

# tests only: no TCP, no durability
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
fsync = off
synchronous_commit = off
full_page_writes = off
dynamic_shared_memory_type = mmap
max_connections = 200
password_encryption = 'scram-sha-256'
CONF
    printf 'local all shop_pw scram-sha-256\nlocal all all trust\n' >"$dir/data/pg_hba.conf"
    as_server "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null || {
        tail -n 30 "$dir/postgres.log" >&2
        exit 1
    }
    # The role of the wrong-credentials tests (PG_TEST_PASSWORD_ROLE in tests/support/pg_server.h).
    psql -X -q -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE shop_pw LOGIN PASSWORD 'shop-pw-secret'" >/dev/null
    echo "SHOP_TEST_PG_HOST=$dir"
    echo "SHOP_TEST_PG_PORT=$port"
    ;;
stop)
    [ -d "$dir" ] || exit 0
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_server "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            as_server "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
*) usage ;;
esac
