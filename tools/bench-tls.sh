#!/usr/bin/env bash
# Benchmarks the balancer's TLS termination against HAProxy's, side by side in one run.
#
#   tools/bench-tls.sh [DURATION]       (default 3s per figure; RUNS=5; BIN=... for another build)
#
# Both in front of the same two shopd (keep-alive to them), one thread each, the same
# certificates (tools/make-dev-cert.sh: ECDSA P-256 and RSA 2048), the same TLS 1.2
# cipher list and TLS 1.3 suites (the balancer's, Mozilla intermediate); TLS 1.3 is used.
# Cells:
#   full-ec, full-rsa   new connections per second, each a full handshake, one GET with
#                       "Connection: close" and the answer (tests/load/tls_handshake_bench.c,
#                       built here: wrk resumes its last session on reconnect, so it cannot)
#   resumed             the same, each connection resuming the latest session (ticket)
#   GET/POST c64, c256  requests per second over kept-alive TLS (wrk -t2; POST: 1 KiB body)
# Each cell alternates balancer and HAProxy runs; ratios are medians of the per-pair
# ratios (balancer/HAProxy: target >= 1 for rate, <= 1 for p99). The host is shared, so
# the rate also depends on what else runs; each run also records the CPU time the server
# process spent per request (utime + stime from /proc), whose ratio ("cpu ratio", <= 1 is
# better) hardly does. Writes the table to $OUT (default test-output/bench-tls.txt) and
# the cells to $JSON (default test-output/bench-tls.json), which tools/bench.sh puts into
# bench/results/latest.json under "tls".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/bin}
DURATION=${1:-3s}
RUNS=${RUNS:-5}
OUT=${OUT:-$ROOT/test-output/bench-tls.txt}
JSON=${JSON:-$ROOT/test-output/bench-tls.json}
mkdir -p "$(dirname "$OUT")" "$(dirname "$JSON")"
WORK=$(mktemp -d /tmp/bench-tls-XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap "exit 1" INT TERM HUP PIPE # the EXIT trap then stops what was started
for tool in wrk /usr/sbin/haproxy openssl python3 cc pkg-config; do
    command -v "$tool" >/dev/null || { echo "bench-tls: $tool is not installed (make deps)" >&2; exit 1; }
done
for b in balancer shopd; do [ -x "$BIN/$b" ] || { echo "bench-tls: $BIN/$b not built (make)" >&2; exit 1; }; done
. tools/lib.sh
cc -std=c11 -D_GNU_SOURCE -O2 -o "$WORK/tls_handshake_bench" tests/load/tls_handshake_bench.c \
    $(pkg-config --cflags --libs openssl) -lpthread

tools/make-dev-cert.sh "$WORK" ec ec localhost 127.0.0.1 >/dev/null
tools/make-dev-cert.sh "$WORK" rsa rsa localhost 127.0.0.1 >/dev/null
cat "$WORK/ec.pem" "$WORK/ec-key.pem" >"$WORK/ha-ec.pem"
cat "$WORK/rsa.pem" "$WORK/rsa-key.pem" >"$WORK/ha-rsa.pem"
# The balancer's default (BALANCER_TLS_CIPHERS, Mozilla intermediate), given to both.
# Its TLS 1.3 suites, in its order (AES-128-GCM first: not OpenSSL's default order).
SUITES=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
CIPHERS=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305

BACKENDS=()
for i in 1 2; do
    p=$(free_port)
    SHOPD_LISTEN=127.0.0.1:$p SHOPD_WORKERS=1 DATABASE_URL="sqlite:///$WORK/shop$i.db" SHOP_ENV=development \
        RATELIMIT_ENABLED=0 LOG_LEVEL=warn "$BIN/shopd" >"$WORK/shopd$i.log" 2>&1 &
    PIDS+=($!)
    BACKENDS+=("127.0.0.1:$p")
done
for b in "${BACKENDS[@]}"; do wait_port "${b##*:}" || { echo "bench-tls: backend $b did not start" >&2; exit 1; }; done

# One balancer per certificate type (the same settings otherwise); HAProxy binds both.
declare -A LB HA LBPID
for t in ec rsa; do
    LB[$t]=$(free_port)
    BALANCER_LISTEN=127.0.0.1:$(free_port) BALANCER_ADMIN_LISTEN= BALANCER_TLS_LISTEN=127.0.0.1:${LB[$t]} \
        BALANCER_TLS_CERT="$WORK/$t.pem" BALANCER_TLS_KEY="$WORK/$t-key.pem" BALANCER_TLS_CIPHERS="$CIPHERS" \
        BALANCER_BACKENDS=$(IFS=,; echo "${BACKENDS[*]}") BALANCER_ACCESS_LOG=0 LOG_FILE="$WORK/balancer-$t.log" \
        "$BIN/balancer" --env /dev/null 2>"$WORK/balancer-$t.err" &
    PIDS+=($!)
    LBPID[$t]=$!
    HA[$t]=$(free_port)
done
{
    echo "global"
    echo "    nbthread 1"
    echo "    maxconn 4096"
    echo "    tune.ssl.default-dh-param 2048"
    echo "    ssl-default-bind-ciphers $CIPHERS"
    echo "    ssl-default-bind-ciphersuites $SUITES"
    echo "    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets"
    echo "defaults"
    echo "    mode http"
    echo "    option http-keep-alive"
    echo "    http-reuse always"
    echo "    timeout connect 2s"
    echo "    timeout client 60s"
    echo "    timeout server 30s"
    echo "frontend fe"
    echo "    bind 127.0.0.1:${HA[ec]} ssl crt $WORK/ha-ec.pem alpn http/1.1"
    echo "    bind 127.0.0.1:${HA[rsa]} ssl crt $WORK/ha-rsa.pem alpn http/1.1"
    echo "    option forwardfor"
    echo "    http-request set-header X-Forwarded-Proto https"
    echo "    unique-id-format %{+X}o%Ts%pid-%rt"
    echo "    unique-id-header X-Request-Id"
    echo "    http-response set-header X-Request-Id %[unique-id]"
    echo "    default_backend be"
    echo "backend be"
    echo "    balance roundrobin"
    echo "    option httpchk GET /healthz"
    i=0
    for b in "${BACKENDS[@]}"; do i=$((i + 1)); echo "    server s$i $b check inter 2s"; done
} >"$WORK/haproxy.cfg"
# Tickets: HAProxy's are on by default; "no-tls-tickets" above is removed so both resume the same ways.
sed -i 's/ no-tls-tickets//' "$WORK/haproxy.cfg"
/usr/sbin/haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
HAPID=$!
for t in ec rsa; do
    wait_port "${LB[$t]}" || { cat "$WORK/balancer-$t.err" >&2; exit 1; }
    wait_port "${HA[$t]}" || { cat "$WORK/haproxy.log" >&2; exit 1; }
done

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime + stime of a process

run_wrk() { # port conns scenario -> "rate p99ms requests"
    local args=(-t2 -c"$2" -d"$DURATION" --latency)
    [ "$3" = POST ] && args+=(-s tests/load/tls_post_1k.lua)
    local path=/products
    [ "$3" = POST ] && path=/logout
    local out
    out=$(wrk "${args[@]}" "https://127.0.0.1:$1$path")
    local rps p99 n errs
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    n=$(awk '/requests in/ { print $1 }' <<<"$out")
    errs=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    [ -z "$errs" ] || echo "   note ($3 c$2 port $1): $errs" >&2
    echo "$rps $(to_ms "$p99") $n"
}

run_hs() { # port conns full|resumed -> "rate p99ms connections"
    local out counts
    out=$("$WORK/tls_handshake_bench" 127.0.0.1 "$1" "$3" "$2" 2 "${DURATION%s}" /products 2>"$WORK/hs.err") ||
        echo "   note ($3 c$2 port $1): $(cat "$WORK/hs.err")" >&2
    counts=$(cat "$WORK/hs.err")
    [ "$3" = full ] || [[ $counts =~ resumed\ ([0-9]+) && ${BASH_REMATCH[1]} -gt 0 ]] ||
        echo "   note ($3 c$2 port $1): nothing resumed ($counts)" >&2
    echo "$out $(awk '{ print $2 + $4 }' <<<"$counts")"
}

run_cpu() { # pid kind args... -> "rate p99ms cpu_us_per_request"
    local pid=$1 kind=$2 t0 t1
    shift 2
    t0=$(cpu_ticks "$pid")
    local r
    if [ "$kind" = hs ]; then r=$(run_hs "$@"); else r=$(run_wrk "$@"); fi
    t1=$(cpu_ticks "$pid")
    awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" '{ printf "%s %s %.1f\n", $1, $2, ($3 > 0 ? t * 1e6 / hz / $3 : 0) }' <<<"$r"
}

wrk -t2 -c64 -d1s "https://127.0.0.1:${LB[ec]}/products" >/dev/null
wrk -t2 -c64 -d1s "https://127.0.0.1:${HA[ec]}/products" >/dev/null

{
    echo "TLS: balancer vs HAProxy $(/usr/sbin/haproxy -v | head -n 1 | awk '{ print $3 }') (nbthread 1), OpenSSL $(openssl version | awk '{ print $2 }'), 2 shopd, $DURATION per run, median of $RUNS runs"
    printf "%-9s %5s | %10s %9s %7s | %10s %9s %7s | %7s %9s %9s\n" cell conns "lb /s" "lb p99ms" "lb cpu" \
        "ha /s" "ha p99ms" "ha cpu" "ratio" "p99 ratio" "cpu ratio"
    echo "(cpu: microseconds of the server's CPU per request or connection)"
} | tee "$OUT"
echo "{" >"$JSON"
first=1
cell() { # name conns kind lbpid lbport hapid haport
    : >"$WORK/lb" && : >"$WORK/ha"
    local kind=wrk
    [ "$3" = full ] || [ "$3" = resumed ] && kind=hs
    for _ in $(seq "$RUNS"); do
        run_cpu "$4" "$kind" "$5" "$2" "$3" >>"$WORK/lb"
        run_cpu "$6" "$kind" "$7" "$2" "$3" >>"$WORK/ha"
    done
    local lr lp lc hr hp hc ratio p99r cpur
    lr=$(column_median 1 "$WORK/lb") lp=$(column_median 2 "$WORK/lb") lc=$(column_median 3 "$WORK/lb")
    hr=$(column_median 1 "$WORK/ha") hp=$(column_median 2 "$WORK/ha") hc=$(column_median 3 "$WORK/ha")
    ratio=$(pair_ratio "$WORK/lb" "$WORK/ha" 1)
    p99r=$(pair_ratio "$WORK/lb" "$WORK/ha" 2)
    cpur=$(pair_ratio "$WORK/lb" "$WORK/ha" 3)
    printf "%-9s %5s | %10s %9s %7s | %10s %9s %7s | %7s %9s %9s\n" "$1" "$2" "$lr" "$lp" "$lc" "$hr" "$hp" "$hc" \
        "${ratio:-}" "${p99r:-}" "${cpur:-}" | tee -a "$OUT"
    [ $first = 1 ] || echo "," >>"$JSON"
    first=0
    printf '  "%s_c%s": {"balancer_per_s": %s, "haproxy_per_s": %s, "ratio": %s, "balancer_p99_ms": %s, "haproxy_p99_ms": %s, "p99_ratio": %s, "balancer_cpu_us": %s, "haproxy_cpu_us": %s, "cpu_ratio": %s}' \
        "$1" "$2" "${lr:-0}" "${hr:-0}" "${ratio:-null}" "${lp:-0}" "${hp:-0}" "${p99r:-null}" "${lc:-0}" "${hc:-0}" "${cpur:-null}" >>"$JSON"
}
cell full-ec 64 full "${LBPID[ec]}" "${LB[ec]}" "$HAPID" "${HA[ec]}"
cell full-rsa 64 full "${LBPID[rsa]}" "${LB[rsa]}" "$HAPID" "${HA[rsa]}"
cell resumed 64 resumed "${LBPID[ec]}" "${LB[ec]}" "$HAPID" "${HA[ec]}"
for conns in 64 256; do
    cell GET "$conns" GET "${LBPID[ec]}" "${LB[ec]}" "$HAPID" "${HA[ec]}"
    cell POST "$conns" POST "${LBPID[ec]}" "${LB[ec]}" "$HAPID" "${HA[ec]}"
done
printf '\n}\n' >>"$JSON"
