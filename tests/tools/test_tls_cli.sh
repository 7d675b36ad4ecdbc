#!/usr/bin/env bash
# The balancer's HTTPS port as an operator checks it, with curl and openssl
# s_client: protocol versions, ciphers, ALPN, SNI, resumption, renegotiation,
# deadlines, and what comes back to plain HTTP and to garbage. Each test starts
# its own balancer (certificates from tools/make-dev-cert.sh) in front of a small
# Python backend; the balancer's own counters (/metrics) show that a refusal
# came from the server, not from a client that never tried. A test whose tool is
# missing is skipped with the reason; none passes without having run.
source "$(dirname "$0")/lib.sh"

# The default certificate is for localhost (and 127.0.0.1), the second for shop.test.
HEADER_TIMEOUT_MS=1500

# backend PORT: answers every request with 200 "backend ok" (HTTP/1.1, keep-alive).
backend() {
    python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"backend ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$1" &
    t_cleanup "kill $! 2>/dev/null"
    wait_until 10 port_in_use "$1" || fail "the backend did not start"
}

port_in_use() { ! port_free "$1"; }

# start [SETTING=VALUE...]: a balancer on free ports: $TLS (HTTPS), $PLAIN, $ADMIN.
start() {
    need openssl python3
    tools/make-dev-cert.sh "$T/certs" localhost ec localhost 127.0.0.1 >/dev/null
    tools/make-dev-cert.sh "$T/certs" shop ec shop.test www.shop.test >/dev/null
    local be
    be=$(free_port)
    backend "$be"
    TLS=$(free_port)
    while PLAIN=$(free_port) && [ "$PLAIN" = "$TLS" ]; do :; done
    while ADMIN=$(free_port) && { [ "$ADMIN" = "$TLS" ] || [ "$ADMIN" = "$PLAIN" ]; }; do :; done
    env BALANCER_LISTEN="127.0.0.1:$PLAIN" BALANCER_ADMIN_LISTEN="127.0.0.1:$ADMIN" \
        BALANCER_TLS_LISTEN="127.0.0.1:$TLS" BALANCER_TLS_CERT="$T/certs/localhost.pem" \
        BALANCER_TLS_KEY="$T/certs/localhost-key.pem" \
        BALANCER_TLS_CERTS="$T/certs/shop.pem:$T/certs/shop-key.pem" \
        BALANCER_BACKENDS="127.0.0.1:$be" BALANCER_HEADER_TIMEOUT_MS=$HEADER_TIMEOUT_MS LOG_LEVEL=debug \
        "$@" "$SHOP_BIN/balancer" --env /dev/null >"$T/balancer.log" 2>&1 &
    local pid=$!
    t_cleanup "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
    wait_until 10 port_in_use "$TLS" || { cat "$T/balancer.log"; fail "the balancer did not start"; }
    wait_until 10 port_in_use "$ADMIN" || fail "the admin port did not open"
}

# failures REASON: the balancer's count of handshakes failed for REASON.
failures() {
    curl -s "http://127.0.0.1:$ADMIN/metrics" |
        awk -v r="balancer_tls_handshake_failures_total{reason=\"$1\"}" '$1 == r { print $2 }'
}

# failed_total: failed handshakes for any reason (the start-up probe of the port is one, "closed").
failed_total() {
    curl -s "http://127.0.0.1:$ADMIN/metrics" |
        awk '$1 ~ /^balancer_tls_handshake_failures_total/ { n += $2 } END { print n + 0 }'
}

handshakes() {
    curl -s "http://127.0.0.1:$ADMIN/metrics" |
        awk -v r="balancer_tls_handshakes_total{kind=\"$1\"}" '$1 == r { print $2 }'
}

# s_client ARGS...: one connection that asks for / once (Connection: close) and reads
# the answer to its end; all its output. (With nothing to send, s_client can give up
# before its handshake has finished printing on a busy machine.)
s_client() {
    printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
        timeout 20 openssl s_client -connect "127.0.0.1:$TLS" -ign_eof "$@" 2>&1 || true
}

# get ARGS...: curl against the HTTPS port with the local CA; prints "status version".
get() {
    curl -sS --cacert "$T/certs/ca.pem" -o "$T/body" -w '%{http_code} %{ssl_verify_result}\n' "$@"
}

# still_serving: a normal request still gets its answer from the backend.
still_serving() {
    [ "$(get "https://localhost:$TLS/" --resolve "localhost:$TLS:127.0.0.1")" = "200 0" ] ||
        fail "the balancer no longer serves HTTPS"
    grep -q 'backend ok' "$T/body" || fail "the answer is not the backend's"
}

# --- versions and ciphers --------------------------------------------------------

test_tls12_and_tls13_accepted() {
    need curl
    start
    for v in 1.2 1.3; do
        out=$(get "https://localhost:$TLS/" --resolve "localhost:$TLS:127.0.0.1" --tlsv$v --tls-max $v) ||
            fail "TLS $v refused"
        echo "TLS $v: $out"
        [ "$out" = "200 0" ] || fail "TLS $v: $out"
        grep -q 'backend ok' "$T/body" || fail "TLS $v: not the backend's answer"
    done
    s_client -tls1_2 | grep -q '^New, TLSv1.2,' || fail "s_client -tls1_2 did not get TLS 1.2"
    s_client -tls1_3 | grep -q '^New, TLSv1.3,' || fail "s_client -tls1_3 did not get TLS 1.3"
    [ "$(handshakes full)" -ge 4 ] || fail "the balancer counted $(handshakes full) full handshakes, not 4"
}

test_tls10_and_tls11_refused() {
    start
    # SECLEVEL=0: OpenSSL's client offers TLS 1.0 and 1.1 at all only so.
    for v in tls1 tls1_1; do
        out=$(s_client "-$v" -cipher 'DEFAULT:@SECLEVEL=0')
        echo "$v: $out"
        ! grep -q '^New, TLS' <<<"$out" || fail "-$v: a session was made"
        grep -qi 'alert protocol version\|unsupported protocol' <<<"$out" || fail "-$v: no protocol_version refusal"
    done
    [ "$(failures protocol_version)" = 2 ] || fail "the balancer counted $(failures protocol_version) version refusals, not 2"
    still_serving
}

test_weak_ciphers_refused() {
    start
    # CBC with SHA-1 or SHA-384, no encryption at all, anonymous: none is in the list,
    # though the certificate (ECDSA) would do for all but the anonymous one.
    for c in ECDHE-ECDSA-AES128-SHA ECDHE-ECDSA-AES256-SHA384 ECDHE-ECDSA-NULL-SHA ADH-AES128-SHA; do
        out=$(s_client -tls1_2 -cipher "$c:@SECLEVEL=0")
        echo "$c: $out"
        ! grep -q '^New, TLS' <<<"$out" || fail "$c was accepted"
        grep -qi 'handshake failure\|no shared cipher\|no ciphers available' <<<"$out" || fail "$c: no refusal"
    done
    [ "$(failures no_shared_cipher)" = 4 ] || fail "the balancer counted $(failures no_shared_cipher) cipher refusals, not 4"
    # The strong ones are taken, TLS 1.3 first in Mozilla's order.
    s_client -tls1_2 -cipher ECDHE-ECDSA-AES256-GCM-SHA384 | grep -q 'Cipher *: ECDHE-ECDSA-AES256-GCM-SHA384' ||
        fail "ECDHE-ECDSA-AES256-GCM-SHA384 was not taken"
    s_client -tls1_3 | grep -q '^New, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256' ||
        fail "TLS 1.3 did not choose TLS_AES_128_GCM_SHA256"
}

# --- ALPN and SNI ----------------------------------------------------------------

test_alpn_http11() {
    start
    # Into a file first: grep -q leaving early would end a tee in the pipe with SIGPIPE.
    s_client -alpn h2,http/1.1 >"$T/alpn"
    grep -q 'ALPN protocol: http/1.1' "$T/alpn" || fail "http/1.1 not chosen: $(grep -a -E 'ALPN|^New|rror|HTTP/' "$T/alpn")"
    # A client offering only h2 still connects, without ALPN (the balancer speaks only HTTP/1.1).
    out=$(s_client -alpn h2)
    grep -q 'No ALPN negotiated' <<<"$out" || fail "h2 alone: $out"
    need curl
    curl -sS -v --cacert "$T/certs/ca.pem" --resolve "localhost:$TLS:127.0.0.1" -o /dev/null \
        "https://localhost:$TLS/" 2>"$T/curl" || fail "curl failed"
    cat "$T/curl"
    grep -qi 'ALPN.*accepted.*http/1.1\|ALPN, server accepted to use http/1.1' "$T/curl" ||
        fail "curl did not get http/1.1 by ALPN"
}

subject() { openssl x509 -noout -subject -nameopt RFC2253 2>/dev/null | sed 's/^subject=//'; }

test_sni_picks_the_certificate() {
    start
    for name in shop.test www.shop.test; do
        got=$(s_client -servername "$name" | subject)
        [ "$got" = "CN=shop.test" ] || fail "$name got '$got'"
    done
    for name in localhost unknown.example; do
        got=$(s_client -servername "$name" | subject)
        [ "$got" = "CN=localhost" ] || fail "$name got '$got', not the default"
    done
    got=$(s_client -noservername | subject)
    [ "$got" = "CN=localhost" ] || fail "no SNI got '$got', not the default"
    need curl
    # curl checks the name against the certificate it got: each name verifies.
    for name in localhost shop.test; do
        [ "$(get "https://$name:$TLS/" --resolve "$name:$TLS:127.0.0.1")" = "200 0" ] || fail "curl $name"
    done
    if get "https://unknown.example:$TLS/" --resolve "unknown.example:$TLS:127.0.0.1" 2>"$T/err"; then
        fail "an unknown name verified"
    fi
    grep -qi 'certificate\|SSL' "$T/err" || fail "curl failed for another reason: $(cat "$T/err")"
}

# --- resumption and renegotiation --------------------------------------------------

# resumed chain|same S_CLIENT_ARGS...: a session from one connection resumes the
# next, and then the session of that resumed connection (chain: TLS 1.3, where a
# resumed connection gets a new ticket) or the first one again (same: TLS 1.2,
# where the session stays) resumes a third.
resumed() {
    local req='GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' i in out how=$1
    shift
    rm -f "$T"/s*.sess
    for i in 1 2 3; do
        in=()
        [ "$i" = 1 ] || in=(-sess_in "$T/s$([ "$how" = chain ] && echo $((i - 1)) || echo 1).sess")
        # -ign_eof: read to the end, so that the TLS 1.3 ticket after the handshake is kept.
        out=$(printf "$req" | openssl s_client -connect "127.0.0.1:$TLS" -servername localhost "$@" \
            "${in[@]}" -sess_out "$T/s$i.sess" -ign_eof 2>&1 || true)
        grep -q 'backend ok' <<<"$out" || fail "$* connection $i: no answer: $out"
        if [ "$i" = 1 ]; then
            grep -q '^New,' <<<"$out" || fail "$* connection 1 was not new"
        else
            grep -q '^Reused,' <<<"$out" || fail "$* connection $i was not resumed: $(grep -E '^(New|Reused),' <<<"$out")"
        fi
    done
}

test_resumption_reported_reused() {
    start
    resumed chain -tls1_3
    resumed same -tls1_2
    resumed same -tls1_2 -no_ticket # the session id: the server's cache
    [ "$(handshakes resumed)" = 6 ] || fail "the balancer counted $(handshakes resumed) resumed handshakes, not 6"
}

test_renegotiation_refused() {
    start
    # s_client renegotiates when it reads "R" on a line of its own (TLS 1.2 only).
    out=$( (sleep 1; echo R; sleep 2) | openssl s_client -connect "127.0.0.1:$TLS" -tls1_2 2>&1 || true)
    echo "$out"
    grep -q 'RENEGOTIATING' <<<"$out" || fail "s_client did not try"
    grep -qi 'no renegotiation' <<<"$out" || fail "no refusal (no_renegotiation alert)"
    still_serving
}

# --- deadlines, plain HTTP and garbage -----------------------------------------------

# closed_within FD SECONDS: reads FD until the peer closes; fails after SECONDS.
closed_within() {
    timeout "$2" cat <&"$1" >"$T/got" || fail "still open after $2 s"
}

test_stalled_handshake_closed_at_deadline() {
    start
    local t0 t1
    t0=$(date +%s%N)
    exec 3<>"/dev/tcp/127.0.0.1/$TLS"
    printf '\x16\x03\x01\x00\xc8\x01\x00' >&3 # the start of a ClientHello, and nothing more
    closed_within 3 5
    t1=$(date +%s%N)
    exec 3>&-
    local ms=$(((t1 - t0) / 1000000))
    echo "closed after $ms ms (deadline $HEADER_TIMEOUT_MS ms)"
    [ "$ms" -ge $((HEADER_TIMEOUT_MS - 200)) ] || fail "closed after $ms ms, before the deadline"
    [ ! -s "$T/got" ] || fail "got an answer: $(od -c "$T/got" | head -n 3)"
    wait_until 5 test "$(failures incomplete)" = 1 || fail "counted $(failures incomplete) incomplete handshakes, not 1"
    still_serving
}

test_plain_http_gets_400_and_close() {
    need curl
    start
    code=$(curl -sS -o "$T/body" -D "$T/head" -w '%{http_code}' "http://127.0.0.1:$TLS/products") || true
    cat "$T/head" "$T/body"
    [ "$code" = 400 ] || fail "plain HTTP got '$code', not 400"
    grep -qi '^Connection: close' "$T/head" || fail "no Connection: close"
    grep -q '"message": *"this port speaks HTTPS: use an https:// address here"' "$T/body" || fail "no message"
    # And the balancer closes the connection after it.
    exec 3<>"/dev/tcp/127.0.0.1/$TLS"
    printf 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n' >&3
    closed_within 3 3
    exec 3>&-
    head -n 1 "$T/got" | grep -q '^HTTP/1.1 400 Bad Request' || fail "raw: $(head -c 200 "$T/got")"
    [ "$(failures http_request)" = 2 ] || fail "counted $(failures http_request) plain HTTP requests, not 2"
    still_serving
}

test_garbage_closed_without_an_answer() {
    start
    # Random bytes, and random bytes behind a handshake record header.
    head -c 4096 /dev/urandom >"$T/junk"
    { printf '\x16\x03\x01\x40\x00'; head -c 4096 /dev/urandom; } >"$T/junk2"
    before=$(failed_total)
    for f in junk junk2; do
        exec 3<>"/dev/tcp/127.0.0.1/$TLS"
        cat "$T/$f" >&3 2>/dev/null || true
        closed_within 3 3
        exec 3>&-
        ! grep -qa 'HTTP/' "$T/got" || fail "$f got an HTTP answer"
        # At most a TLS alert record (content type 21).
        [ ! -s "$T/got" ] || [ "$(head -c 1 "$T/got" | od -An -tu1 | tr -d ' ')" = 21 ] ||
            fail "$f got something other than an alert: $(od -An -tx1 "$T/got" | head -n 2)"
    done
    curl -s "http://127.0.0.1:$ADMIN/metrics" | grep handshake_failures
    # Counted as failed handshakes, whatever the reason the bytes gave OpenSSL, never as HTTP.
    total=$(($(failed_total) - before))
    [ "$total" = 2 ] || fail "counted $total failed handshakes, not 2"
    [ "$(failures http_request)" = 0 ] || fail "garbage was taken for plain HTTP"
    still_serving
}

t_main "$@"
