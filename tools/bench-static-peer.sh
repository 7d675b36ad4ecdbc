#!/usr/bin/env bash
# Benchmarks shopd's two hottest pages against nginx serving the very same bytes
# as static files, side by side in one run: the ceiling an HTTP server on this
# machine reaches when it does no work at all.
#
#   tools/bench-static-peer.sh [DURATION]      (default 5s; BIN=... for another build)
#
# One shopd (SHOPD_WORKERS=2, one SQLite file, 20 products, rate limiting off) and
# nginx (worker_processes 1... 2 to match: NGINX_WORKERS, default 2, access log off,
# keep-alive) serving /products and /browser/inventory as captured from that shopd
# (same body, same Content-Type; the inventory page also as a logged-in shopper sees it,
# requested with the session cookie). Directly, and through a proxy: our balancer in front
# of shopd against HAProxy (nbthread 1) in front of nginx. GET at 64 and 256
# connections, wrk -t2; shopd and nginx runs alternate, RUNS pairs (default 3); the
# ratio is the median of the per-pair ratios, so a slow minute of the shared machine
# hits both. Targets (issue "speed"): through the proxies at least 0.5 of the static
# peer. Writes a table to $OUT and the figures to $JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/bin}
DURATION=${1:-5s}
RUNS=${RUNS:-3}
NGINX_WORKERS=${NGINX_WORKERS:-2}
OUT=${OUT:-$ROOT/test-output/bench-static-peer.txt}
JSON=${JSON:-$ROOT/test-output/bench-static-peer.json}
mkdir -p "$(dirname "$OUT")" "$(dirname "$JSON")"
WORK=$(mktemp -d /tmp/bench-static-XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in wrk curl sqlite3 /usr/sbin/nginx /usr/sbin/haproxy; do
    command -v "$tool" >/dev/null || { echo "bench-static-peer: $tool is not installed (make deps)" >&2; exit 1; }
done
[ -x "$BIN/shopd" ] && [ -x "$BIN/balancer" ] || { echo "bench-static-peer: build first (make)" >&2; exit 1; }
. tools/lib.sh

SHOP_PORT=$(free_port)
SHOPD_LISTEN=127.0.0.1:$SHOP_PORT SHOPD_WORKERS=2 DATABASE_URL="sqlite:///$WORK/shop.db" SHOP_ENV=development \
    RATELIMIT_ENABLED=0 DISPATCHER_ENABLED=0 LOG_LEVEL=warn TEMPLATES_DIR=$ROOT/templates \
    STATIC_DIR=$ROOT/templates/static "$BIN/shopd" >"$WORK/shopd.log" 2>&1 &
PIDS+=($!)
wait_port "$SHOP_PORT" || { cat "$WORK/shopd.log" >&2; exit 1; }
wait_until "curl -sf http://127.0.0.1:$SHOP_PORT/healthz >/dev/null"
# 20 products, as in the figures the targets were set against.
seed_products "$WORK/shop.db" 20

# The bytes nginx serves: what shopd answers (the anonymous inventory page's CSRF
# token is per visitor; a fixed copy is as large).
mkdir -p "$WORK/www/browser"
chmod 755 "$WORK" # nginx workers run as another user when started by root
curl -sf "http://127.0.0.1:$SHOP_PORT/products" -o "$WORK/www/products"
curl -sf "http://127.0.0.1:$SHOP_PORT/browser/inventory" -o "$WORK/www/browser/inventory"
# A logged-in shopper's inventory page (the session looked up, the page with the
# shopper's menu): nginx serves that page's bytes under its own name, and both get the
# session cookie.
curl -sf -o /dev/null -H 'Content-Type: application/json' -d '{"email": "bench@example.com", "password": "bench-password"}' \
    "http://127.0.0.1:$SHOP_PORT/register"
SESSION=$(curl -sf -D - -o /dev/null -H 'Content-Type: application/json' \
    -d '{"email": "bench@example.com", "password": "bench-password"}' "http://127.0.0.1:$SHOP_PORT/login" |
    sed -n 's/^[Ss]et-[Cc]ookie: *\(session=[^;]*\).*/\1/p' | tr -d '\r')
[ -n "$SESSION" ] || { echo "bench-static-peer: could not log in" >&2; exit 1; }
COOKIE="Cookie: $SESSION"
curl -sf -H "$COOKIE" "http://127.0.0.1:$SHOP_PORT/browser/inventory" -o "$WORK/www/browser/inventory-user"
grep -q 'bench@example.com\|Log out\|logout' "$WORK/www/browser/inventory-user" ||
    { echo "bench-static-peer: the session cookie was not taken" >&2; exit 1; }
NGINX_PORT=$(free_port)
cat >"$WORK/nginx.conf" <<NGINX
worker_processes $NGINX_WORKERS;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;
    uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/www;
        location = /products { default_type application/json; }
        location = /browser/inventory { default_type "text/html; charset=utf-8"; }
        location = /browser/inventory-user { default_type "text/html; charset=utf-8"; }
        location = /healthz { return 200 "ok\n"; }
    }
}
NGINX
mkdir -p "$WORK/tmp"
/usr/sbin/nginx -c "$WORK/nginx.conf" -g 'daemon on;' 2>"$WORK/nginx.start"
wait_port "$NGINX_PORT" || { cat "$WORK/nginx.start" "$WORK/nginx.err" >&2; exit 1; }

LB_PORT=$(free_port)
BALANCER_LISTEN=127.0.0.1:$LB_PORT BALANCER_ADMIN_LISTEN= BALANCER_BACKENDS=127.0.0.1:$SHOP_PORT \
    BALANCER_ACCESS_LOG=0 LOG_FILE="$WORK/balancer.log" "$BIN/balancer" --env /dev/null 2>"$WORK/balancer.err" &
PIDS+=($!)
HA_PORT=$(free_port)
cat >"$WORK/haproxy.cfg" <<HAPROXY
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 2s
    timeout client 60s
    timeout server 30s
frontend fe
    bind 127.0.0.1:$HA_PORT
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    default_backend be
backend be
    server s1 127.0.0.1:$NGINX_PORT
HAPROXY
/usr/sbin/haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
wait_port "$LB_PORT" || { cat "$WORK/balancer.err" >&2; exit 1; }
wait_port "$HA_PORT" || { cat "$WORK/haproxy.log" >&2; exit 1; }

for p in "$SHOP_PORT" "$NGINX_PORT" "$LB_PORT" "$HA_PORT"; do
    wrk -t2 -c64 -d1s "http://127.0.0.1:$p/products" >/dev/null
done

{
    echo "shopd vs nginx $(/usr/sbin/nginx -v 2>&1 | sed 's|.*/||') ($NGINX_WORKERS workers) serving the same bytes statically; wrk -t2 -d$DURATION, median of $RUNS pairs"
    printf "%-31s %-8s %5s | %10s %8s | %10s %8s | %7s %7s\n" page route conns "shop rps" "p99ms" "peer rps" "p99ms" ratio "p99 r"
} | tee "$OUT"
echo "[" >"$JSON"
first=1
for cell in products inventory inventory-user; do
    case $cell in
    products) page=/products peer_page=/products header= ;;
    inventory) page=/browser/inventory peer_page=/browser/inventory header= ;;
    inventory-user) page="/browser/inventory (logged in)" peer_page=/browser/inventory-user header=$COOKIE ;;
    esac
    path=${page% (*}
    for route in direct proxied; do
        if [ "$route" = direct ]; then ours=$SHOP_PORT peer=$NGINX_PORT label="shopd|nginx"
        else ours=$LB_PORT peer=$HA_PORT label="balancer>shopd|haproxy>nginx"; fi
        for conns in 64 256; do
            : >"$WORK/a" && : >"$WORK/b"
            for _ in $(seq "$RUNS"); do
                wrk_get "$ours" "$conns" "$path" "$header" >>"$WORK/a"
                wrk_get "$peer" "$conns" "$peer_page" "$header" >>"$WORK/b"
            done
            ar=$(column_median 1 "$WORK/a") ap=$(column_median 2 "$WORK/a")
            br=$(column_median 1 "$WORK/b") bp=$(column_median 2 "$WORK/b")
            ratio=$(pair_ratio "$WORK/a" "$WORK/b" 1)
            p99r=$(pair_ratio "$WORK/a" "$WORK/b" 2)
            printf "%-31s %-8s %5s | %10s %8s | %10s %8s | %7s %7s\n" "$page" "$route" "$conns" "$ar" "$ap" "$br" "$bp" "$ratio" "$p99r" | tee -a "$OUT"
            [ $first = 1 ] || echo "," >>"$JSON"
            first=0
            printf '{"page": "%s", "route": "%s", "pair": "%s", "connections": %s, "shop_rps": %s, "shop_p99_ms": %s, "peer_rps": %s, "peer_p99_ms": %s, "rps_ratio": %s, "p99_ratio": %s}' \
                "$page" "$route" "$label" "$conns" "$ar" "$ap" "$br" "$bp" "$ratio" "$p99r" >>"$JSON"
        done
    done
done
echo "]" >>"$JSON"
