#!/usr/bin/env bash
# make test-tls-scan: testssl.sh (offline) against the balancer's HTTPS port, failing on
# any finding above LOW. Too slow for make test (a minute or more); .ci/run may call it.
#
#   tools/tls-scan.sh          (BIN=... for another build; the report goes to test-output/testssl.json)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/bin}
command -v testssl >/dev/null || { echo "tls-scan: testssl is not installed (make deps)" >&2; exit 1; }
. tools/lib.sh
WORK=$(mktemp -d /tmp/tls-scan-XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
tools/make-dev-cert.sh "$WORK" localhost ec localhost 127.0.0.1 >/dev/null
BE=$(free_port)
SHOPD_LISTEN=127.0.0.1:$BE DATABASE_URL=sqlite:///:memory: SHOP_ENV=test SECRET_KEY=$(openssl rand -hex 32) \
    RATELIMIT_ENABLED=0 DISPATCHER_ENABLED=0 SHOPD_WORKERS=1 TEMPLATES_DIR="$ROOT/templates" \
    STATIC_DIR="$ROOT/templates/static" LOG_LEVEL=warn "$BIN/shopd" --env /dev/null >"$WORK/shopd.log" 2>&1 &
PIDS+=($!)
wait_port "$BE" || { cat "$WORK/shopd.log" >&2; exit 1; }
TLS=$(free_port)
BALANCER_LISTEN=127.0.0.1:$(free_port) BALANCER_ADMIN_LISTEN= BALANCER_BACKENDS=127.0.0.1:$BE \
    BALANCER_TLS_LISTEN=127.0.0.1:$TLS BALANCER_TLS_CERT="$WORK/localhost.pem" \
    BALANCER_TLS_KEY="$WORK/localhost-key.pem" BALANCER_HSTS_MAX_AGE=63072000 BALANCER_ACCESS_LOG=0 \
    "$BIN/balancer" --env /dev/null 2>"$WORK/balancer.err" &
PIDS+=($!)
wait_port "$TLS" || { cat "$WORK/balancer.err" >&2; exit 1; }
mkdir -p test-output
rm -f test-output/testssl.json
# The certificate is from a local CA: trust findings about it are expected and not counted.
testssl --quiet --warnings off --color 0 --sneaky --fast --ip one --add-ca "$WORK/ca.pem" \
    --jsonfile test-output/testssl.json "127.0.0.1:$TLS" >"$WORK/testssl.txt" 2>&1 || true
python3 - test-output/testssl.json <<'PY'
import json, sys
ignore = {"cert_trust", "cert_chain_of_trust", "cert_caIssuers", "cert_crlDistributionPoints", "cert_ocspURL",
          "OCSP_stapling", "cert_revocation", "DNS_CAArecord", "cert_mustStapleExtension", "cert_certificatePolicies_EV"}
found = json.load(open(sys.argv[1]))
bad = [f for f in found if f.get("severity") in ("MEDIUM", "HIGH", "CRITICAL") and f.get("id") not in ignore]
for f in bad:
    print(f"{f['severity']} {f['id']}: {f.get('finding')}")
print(f"tls-scan: {len(found)} results, {len(bad)} above LOW")
sys.exit(1 if bad else 0)
PY
