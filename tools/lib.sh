# Helpers the tools' scripts share (benchmarks, make run, the test server); source it, do not run it.

# The newest PostgreSQL server of Debian's packages (/usr/lib/postgresql/N/bin), or nothing.
pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# The words that run a PostgreSQL program: as root, as the postgres user of Debian's
# package (initdb and postgres refuse root), else as this user. Sets the array AS_POSTGRES.
as_postgres_words() {
    AS_POSTGRES=()
    [ "$(id -u)" -ne 0 ] || AS_POSTGRES=(setpriv --reuid=postgres --regid=postgres --init-groups --)
}

# A free TCP port on 127.0.0.1 (the kernel's choice).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT [TRIES]: until something accepts on 127.0.0.1:PORT, 50 ms apart (default 100 tries).
wait_port() {
    for _ in $(seq "${2:-100}"); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "$0: nothing listens on 127.0.0.1:$1" >&2
    return 1
}

# wait_until 'SHELL TEST' [TRIES]: until the test succeeds, 50 ms apart (default 100 tries); exits when it never does.
wait_until() {
    for _ in $(seq "${2:-100}"); do eval "$1" && return 0; sleep 0.05; done
    echo "timed out: $1" >&2
    exit 1
}

# seed_products DB COUNT: tops the products table of SQLite file DB up to COUNT rows
# (a shop starts with a few), in one transaction: the catalog the benchmarks' targets
# were set against.
seed_products() {
    local n i sql="BEGIN;"
    n=$(sqlite3 "$1" 'SELECT count(*) FROM products')
    for ((i = n + 1; i <= $2; i++)); do
        sql+="INSERT INTO products (name, description, price_cents, stock, created_at, updated_at) VALUES ('Product $i', 'A product for the benchmark', $((i * 10)), 1000000, 0, 0);"
    done
    sqlite3 "$1" "$sql COMMIT;"
}

# cpu_ticks PID: the CPU time (utime + stime, clock ticks: getconf CLK_TCK) that PID and
# its children (a server's workers) have used so far; the fields are counted after the
# ")" that ends the command name, which may hold spaces.
cpu_ticks() {
    local p
    for p in "$1" $(pgrep -P "$1" || true); do cat "/proc/$p/stat" 2>/dev/null; done |
        sed 's/.*) //' | awk '{ t += $12 + $13 } END { print t + 0 }'
}

# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# The benchmarks that compare two servers write one line per run to a file per server,
# taking turns, so that line k of both files was measured in the same minute.
#
# column_median N FILE: the median of column N of FILE.
column_median() { awk -v c="$1" '{ print $c }' "$2" | median; }

# pair_ratio A B N [DECIMALS]: the median, over the runs, of column N of A divided by
# column N of B, run by run (default 3 decimals); runs where B's figure is 0 are left out.
# A median of per-run ratios, not a ratio of medians: a slow minute hits both sides of a run.
pair_ratio() {
    local width
    width=$(awk '{ print NF; exit }' "$1")
    paste -d' ' "$1" "$2" |
        awk -v c="$3" -v w="$width" -v f="%.${4:-3}f\n" '$(w + c) > 0 { printf f, $c / $(w + c) }' | median
}

# wrk's latency with its unit ("850.12us", "12.5ms", "1.2s") in milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

# wrk_get PORT CONNS PATH [HEADER]: GET http://127.0.0.1:PORT/PATH for $DURATION with
# wrk -t2 at CONNS connections (with HEADER, "Name: value", on every request); prints
# "requests/s p99-ms", and a note on stderr for socket errors or answers other than 2xx.
wrk_get() {
    local out rps p99 errs
    local header=()
    [ -z "${4:-}" ] || header=(-H "$4")
    out=$(wrk -t2 -c"$2" -d"$DURATION" --latency "${header[@]}" "http://127.0.0.1:$1$3")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    errs=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    [ -z "$errs" ] || echo "   note (c$2 port $1 $3): $errs" >&2
    echo "$rps $(to_ms "$p99")"
}
