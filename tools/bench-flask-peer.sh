#!/usr/bin/env bash
# shopd against the Flask app it replaces, side by side in one run: the speed-up the
# rewrite was for.
#
#   tools/bench-flask-peer.sh [DURATION]      (default 3s; BIN=... for another build)
#
# One shopd (SHOPD_WORKERS=2, a SQLite file with 20 products, rate limiting and the
# dispatcher off) and tools/flask-peer/app.py under gunicorn with 2 sync workers
# (Debian's python3-flask, python3-flask-sqlalchemy and gunicorn) reading the very same
# file through SQLAlchemy, as the Flask app did: GET /products
# (JSON) and GET /browser/inventory (the product cards, anonymous: each visitor gets a
# CSRF token). wrk -t2 at 32 and 256 connections, shopd and Flask alternating, RUNS
# pairs (default 3); the ratio is the median of the per-pair ratios. Target (issue
# "speed"): shopd directly at least 40x the Flask app. Writes a table to $OUT and the
# figures to $JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/bin}
DURATION=${1:-3s}
RUNS=${RUNS:-3}
OUT=${OUT:-$ROOT/test-output/bench-flask-peer.txt}
JSON=${JSON:-$ROOT/test-output/bench-flask-peer.json}
mkdir -p "$(dirname "$OUT")" "$(dirname "$JSON")"

die() {
    echo "bench-flask-peer: $*" >&2
    exit 1
}
for tool in wrk curl sqlite3 openssl; do
    command -v "$tool" >/dev/null || die "$tool is not installed (make deps)"
done
# Debian's python3 (not a pyenv's on the PATH) has Debian's Flask.
PY=/usr/bin/python3
"$PY" -c 'import flask, flask_sqlalchemy, gunicorn' 2>/dev/null ||
    die "Flask, Flask-SQLAlchemy or gunicorn is missing (make deps: python3-flask python3-flask-sqlalchemy gunicorn)"
[ -x "$BIN/shopd" ] || die "build first (make)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"
. tools/lib.sh

WORK=$(mktemp -d /tmp/bench-flask-XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SECRET=$(openssl rand -hex 32)
SHOP_PORT=$(free_port)
SHOPD_LISTEN=127.0.0.1:$SHOP_PORT SHOPD_WORKERS=2 DATABASE_URL="sqlite:///$WORK/shop.db" SHOP_ENV=development \
    SECRET_KEY=$SECRET RATELIMIT_ENABLED=0 DISPATCHER_ENABLED=0 LOG_LEVEL=warn TEMPLATES_DIR=$ROOT/templates \
    STATIC_DIR=$ROOT/templates/static "$BIN/shopd" --env /dev/null >"$WORK/shopd.log" 2>&1 &
PIDS+=($!)
wait_port "$SHOP_PORT" 200 || { cat "$WORK/shopd.log" >&2; exit 1; }
wait_until "curl -sf http://127.0.0.1:$SHOP_PORT/healthz >/dev/null" 200
# 20 products, as in the figures the target was set against.
seed_products "$WORK/shop.db" 20

FLASK_PORT=$(free_port)
SHOP_DB=$WORK/shop.db SECRET_KEY=$SECRET "$PY" -m gunicorn --workers 2 --bind "127.0.0.1:$FLASK_PORT" \
    --chdir "$ROOT/tools/flask-peer" --log-level warning app:app >"$WORK/gunicorn.log" 2>&1 &
FLASK_PID=$!
PIDS+=($!)
wait_until "curl -sf http://127.0.0.1:$FLASK_PORT/healthz >/dev/null" 200 || { cat "$WORK/gunicorn.log" >&2; exit 1; }

# When wrk stops, gunicorn's sync workers still answer the connections queued in its
# backlog (up to 2048 at c256): waits until the master and its workers have used no CPU
# for 200 ms (at most 10 s), so that this work does not land in shopd's next run.
wait_flask_idle() {
    local before after
    for _ in $(seq 50); do
        before=$(cpu_ticks "$FLASK_PID")
        sleep 0.2
        after=$(cpu_ticks "$FLASK_PID")
        [ "$before" != "$after" ] || return 0
    done
}
for path in /products /browser/inventory; do
    for port in "$SHOP_PORT" "$FLASK_PORT"; do
        code=$(curl -s -o "$WORK/body" -w '%{http_code}' "http://127.0.0.1:$port$path")
        [ "$code" = 200 ] || die "GET $path on port $port answered $code"
    done
done
size() { curl -s "http://127.0.0.1:$1$2" | wc -c; }

for p in "$SHOP_PORT" "$FLASK_PORT"; do
    wrk -t2 -c32 -d1s "http://127.0.0.1:$p/products" >/dev/null
done
wait_flask_idle

{
    echo "shopd (2 workers) vs Flask $("$PY" -c 'import importlib.metadata as m; print(m.version("flask"))') under gunicorn $("$PY" -c 'import gunicorn; print(gunicorn.__version__)') (2 sync workers), one SQLite file; wrk -t2 -d$DURATION, median of $RUNS pairs"
    printf "%-19s %5s %7s %7s | %10s %8s | %10s %8s | %7s %7s\n" path conns "bytes" "flask b" "shop rps" "p99ms" "flask rps" "p99ms" ratio "p99 r"
} | tee "$OUT"
echo "[" >"$JSON"
first=1
for path in /products /browser/inventory; do
    ours_size=$(size "$SHOP_PORT" "$path")
    peer_size=$(size "$FLASK_PORT" "$path")
    for conns in 32 256; do
        : >"$WORK/a" && : >"$WORK/b"
        for _ in $(seq "$RUNS"); do
            wrk_get "$SHOP_PORT" "$conns" "$path" >>"$WORK/a"
            wrk_get "$FLASK_PORT" "$conns" "$path" >>"$WORK/b"
            wait_flask_idle
        done
        ar=$(column_median 1 "$WORK/a") ap=$(column_median 2 "$WORK/a")
        br=$(column_median 1 "$WORK/b") bp=$(column_median 2 "$WORK/b")
        ratio=$(pair_ratio "$WORK/a" "$WORK/b" 1 1)
        p99r=$(pair_ratio "$WORK/a" "$WORK/b" 2)
        printf "%-19s %5s %7s %7s | %10s %8s | %10s %8s | %7s %7s\n" "$path" "$conns" "$ours_size" "$peer_size" "$ar" "$ap" "$br" "$bp" "$ratio" "$p99r" | tee -a "$OUT"
        [ $first = 1 ] || echo "," >>"$JSON"
        first=0
        printf '{"path": "%s", "connections": %s, "shop_bytes": %s, "flask_bytes": %s, "shop_rps": %s, "shop_p99_ms": %s, "flask_rps": %s, "flask_p99_ms": %s, "rps_ratio": %s, "p99_ratio": %s, "target": 40}' \
            "$path" "$conns" "$ours_size" "$peer_size" "$ar" "$ap" "$br" "$bp" "$ratio" "$p99r" >>"$JSON"
    done
done
echo "]" >>"$JSON"
echo "ratio: shopd / Flask requests/s, median of the pairs (target >= 40); bytes: the answer's size on each" | tee -a "$OUT"
