#!/usr/bin/env bash
# A local certificate authority and a server certificate signed by it, for make run,
# the tests and the TLS benchmark (never for production: see README, "HTTPS").
#
#   tools/make-dev-cert.sh DIR [NAME [KEYTYPE [HOST...]]]
#
#   DIR      folder for the files (created); files already there are kept, so the CA a
#            browser was told to trust stays the same from one make run to the next
#   NAME     base name of the certificate (default: localhost)
#   KEYTYPE  ec (ECDSA P-256, default) or rsa (RSA 2048)
#   HOST...  DNS names and IP addresses in the certificate (default: localhost 127.0.0.1 ::1)
#
# Writes DIR/ca.pem and DIR/ca-key.pem (the CA, 10 years), DIR/NAME.pem (the server
# certificate followed by the CA: a full chain) and DIR/NAME-key.pem (its key), valid
# 825 days. Prints nothing unless it creates something.
set -euo pipefail
DIR=${1:?usage: make-dev-cert.sh DIR [NAME [KEYTYPE [HOST...]]]}
NAME=${2:-localhost}
TYPE=${3:-ec}
shift $(($# < 3 ? $# : 3))
HOSTS=("$@")
[ ${#HOSTS[@]} -gt 0 ] || HOSTS=(localhost 127.0.0.1 ::1)
command -v openssl >/dev/null || { echo "make-dev-cert: openssl is missing" >&2; exit 1; }
mkdir -p "$DIR"
umask 077

newkey() {
    case "$TYPE" in
    ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null ;;
    rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null ;;
    *) echo "make-dev-cert: KEYTYPE must be ec or rsa, not $TYPE" >&2; exit 2 ;;
    esac
}

if [ ! -s "$DIR/ca.pem" ] || [ ! -s "$DIR/ca-key.pem" ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$DIR/ca-key.pem" 2>/dev/null
    openssl req -x509 -new -key "$DIR/ca-key.pem" -sha256 -days 3650 -subj "/CN=Shop local development CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$DIR/ca.pem" 2>/dev/null
    echo "make-dev-cert: created the local CA $DIR/ca.pem"
fi

if [ ! -s "$DIR/$NAME.pem" ] || [ ! -s "$DIR/$NAME-key.pem" ]; then
    san=""
    for h in "${HOSTS[@]}"; do
        if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then san+="IP:$h,"; else san+="DNS:$h,"; fi
    done
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    newkey "$DIR/$NAME-key.pem"
    openssl req -new -key "$DIR/$NAME-key.pem" -subj "/CN=${HOSTS[0]}" -out "$tmp/req.csr" 2>/dev/null
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
        "${san%,}" >"$tmp/ext.cnf"
    openssl x509 -req -in "$tmp/req.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca-key.pem" -CAcreateserial \
        -CAserial "$tmp/ca.srl" -days 825 -sha256 -extfile "$tmp/ext.cnf" -out "$tmp/leaf.pem" 2>/dev/null
    cat "$tmp/leaf.pem" "$DIR/ca.pem" >"$DIR/$NAME.pem"
    chmod 644 "$DIR/$NAME.pem" "$DIR/ca.pem"
    echo "make-dev-cert: created $DIR/$NAME.pem ($TYPE, for ${HOSTS[*]})"
fi
