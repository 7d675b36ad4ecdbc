/* HTTPS on the balancer: certificates per SNI name, versions, ALPN, resumption,
 * refused renegotiation, stalled handshakes, plain HTTP and garbage on the TLS
 * port, X-Forwarded-Proto and HSTS, and certificate reloads on SIGHUP. The
 * client is OpenSSL in the test; the certificates come from tools/make-dev-cert.sh. */
#include <criterion/criterion.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/test_stack.h"
#include "tests/support/raw_socket.h"

static struct test_stack st;
static char *dir;
static int tls_port;

static void mkcert(const char *name, const char *type, const char *hosts)
{
    char *cmd =
        xasprintf("%s/tools/make-dev-cert.sh %s %s %s %s >/dev/null", harness_root(), dir, name, type, hosts);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
    free(cmd);
}

static void start(const char *const more[])
{
    dir = harness_tempdir("tls");
    mkcert("localhost", "ec", "localhost 127.0.0.1");
    mkcert("shop", "rsa", "shop.example '*.shop.example'");
    tls_port = harness_free_port();
    char *listen = xasprintf("BALANCER_TLS_LISTEN=127.0.0.1:%d", tls_port);
    char *cert = xasprintf("BALANCER_TLS_CERT=%s/localhost.pem", dir);
    char *key = xasprintf("BALANCER_TLS_KEY=%s/localhost-key.pem", dir);
    char *certs = xasprintf("BALANCER_TLS_CERTS=%s/shop.pem:%s/shop-key.pem", dir, dir);
    const char *extra[16] = {
        listen, cert, key, certs, "BALANCER_HEADER_TIMEOUT_MS=1500", "BALANCER_HSTS_MAX_AGE=600"};
    size_t n = 6;
    for (const char *const *m = more; m && *m && n < 15; m++)
        extra[n++] = *m;
    test_stack_start(&st, "tls", 1, extra);
    cr_assert(harness_wait_port(tls_port, 5000), "TLS port not listening");
    free(listen);
    free(cert);
    free(key);
    free(certs);
}

static void setup(void)
{
    start(NULL);
}

static void teardown(void)
{
    test_stack_stop(&st);
    if (dir)
        harness_rmrf(dir);
    free(dir);
    dir = NULL;
}

TestSuite(balancer_tls, .init = setup, .fini = teardown, .timeout = 60);

static SSL_CTX *client_ctx(int min, int max)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, min);
    SSL_CTX_set_max_proto_version(ctx, max);
    char *ca = xasprintf("%s/ca.pem", dir);
    cr_assert_eq(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
    free(ca);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    static const unsigned char alpn[] = "\x02h2\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    return ctx;
}

struct tconn {
    int fd;
    SSL *ssl;
};

/* Connects and handshakes; returns false (and closes) when the handshake fails. */
static bool tls_open(struct tconn *t, SSL_CTX *ctx, const char *sni, SSL_SESSION *resume)
{
    t->fd = test_raw_connect(tls_port);
    cr_assert_geq(t->fd, 0);
    struct timeval tv = {5, 0};
    setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    t->ssl = SSL_new(ctx);
    SSL_set_fd(t->ssl, t->fd);
    if (sni) {
        SSL_set_tlsext_host_name(t->ssl, sni);
        SSL_set1_host(t->ssl, sni);
    }
    if (resume)
        SSL_set_session(t->ssl, resume);
    if (SSL_connect(t->ssl) != 1) {
        ERR_clear_error();
        SSL_free(t->ssl);
        close(t->fd);
        return false;
    }
    return true;
}

static void tls_close(struct tconn *t)
{
    SSL_shutdown(t->ssl);
    SSL_free(t->ssl);
    close(t->fd);
}

/* Sends one request and reads one answer (head and Content-Length body); caller frees. */
static char *tls_get(struct tconn *t, const char *path)
{
    char *req = xasprintf("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
    cr_assert_eq(SSL_write(t->ssl, req, (int)strlen(req)), (int)strlen(req));
    free(req);
    size_t cap = 65536, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        int r = SSL_read(t->ssl, buf + n, (int)(cap - n - 1));
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "content-length:");
        if (end && cl && n >= (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10))
            break;
    }
    buf[n] = '\0';
    return buf;
}

static char *cert_cn(SSL *ssl)
{
    X509 *x = SSL_get1_peer_certificate(ssl);
    char cn[256] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    X509_free(x);
    return xstrdup(cn);
}

static char *metrics(void)
{
    char *url = test_balancer_url(st.lb, true, "/metrics");
    struct http_resp *r = http_request(st.cl, "GET", url, NULL, NULL, NULL);
    free(url);
    char *body = xstrdup(r->body);
    http_resp_free(r);
    return body;
}

Test(balancer_tls, keepalive_forwarded_proto_hsts_alpn)
{
    SSL_CTX *ctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
    struct tconn t;
    cr_assert(tls_open(&t, ctx, "localhost", NULL));
    const unsigned char *proto;
    unsigned plen;
    SSL_get0_alpn_selected(t.ssl, &proto, &plen);
    cr_assert_eq(plen, 8);
    cr_assert_eq(memcmp(proto, "http/1.1", 8), 0);
    for (int i = 0; i < 3; i++) { /* one connection, several requests */
        char *a = tls_get(&t, "/echo");
        cr_assert(strstr(a, "HTTP/1.1 200"), "%s", a);
        cr_assert(strstr(a, "\"x-forwarded-proto\": \"https\"") ||
                      strstr(a, "\"x-forwarded-proto\":\"https\""),
                  "%s", a);
        cr_assert(strstr(a, "Strict-Transport-Security: max-age=600"), "%s", a);
        free(a);
    }
    tls_close(&t);
    SSL_CTX_free(ctx);
    /* The plain port says http and sends no HSTS. */
    char *url = test_balancer_url(st.lb, false, "/echo");
    struct http_resp *r = http_request(st.cl, "GET", url, NULL, NULL, NULL);
    free(url);
    cr_assert(strstr(r->body, "\"http\""), "%s", r->body);
    cr_assert_null(http_resp_header(r, "Strict-Transport-Security"));
    http_resp_free(r);
}

Test(balancer_tls, versions_12_13_only)
{
    int ok[] = {TLS1_2_VERSION, TLS1_3_VERSION}, bad[] = {TLS1_VERSION, TLS1_1_VERSION};
    for (int i = 0; i < 2; i++) {
        SSL_CTX *ctx = client_ctx(ok[i], ok[i]);
        struct tconn t;
        cr_assert(tls_open(&t, ctx, "localhost", NULL), "version %x refused", ok[i]);
        cr_assert_eq(SSL_version(t.ssl), ok[i]);
        tls_close(&t);
        SSL_CTX_free(ctx);
    }
    for (int i = 0; i < 2; i++) {
        SSL_CTX *ctx = client_ctx(bad[i], bad[i]);
        SSL_CTX_set_security_level(ctx, 0);
        struct tconn t;
        cr_assert_not(tls_open(&t, ctx, "localhost", NULL), "version %x accepted", bad[i]);
        SSL_CTX_free(ctx);
    }
    /* A TLS 1.2 cipher outside the list (no forward secrecy) is refused. */
    SSL_CTX *ctx = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx, "AES128-SHA256");
    struct tconn t;
    cr_assert_not(tls_open(&t, ctx, "localhost", NULL), "static-RSA cipher accepted");
    SSL_CTX_free(ctx);
    char *m = metrics();
    cr_assert(strstr(m, "balancer_tls_handshake_failures_total{reason=\"protocol_version\"} 2"), "%s", m);
    cr_assert(strstr(m, "balancer_tls_handshakes_total{kind=\"full\"} 2"), "%s", m);
    cr_assert(strstr(m, "balancer_tls_certificate_expiry_seconds{name=\"shop.example\"}"), "%s", m);
    free(m);
}

Test(balancer_tls, sni_picks_the_certificate)
{
    SSL_CTX *ctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
    const char *names[][2] = {{"shop.example", "shop.example"},
                              {"www.shop.example", "shop.example"},
                              {"localhost", "localhost"},
                              {"unknown.test", "localhost"},
                              {NULL, "localhost"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct tconn t;
        bool verify_name = names[i][0] && strcmp(names[i][0], "unknown.test") != 0;
        cr_assert(tls_open(&t, ctx, verify_name ? names[i][0] : NULL, NULL), "handshake for %s",
                  names[i][0] ? names[i][0] : "(no SNI)");
        if (!verify_name && names[i][0]) { /* unknown name: redo with SNI but without name checking */
            tls_close(&t);
            t.fd = test_raw_connect(tls_port);
            t.ssl = SSL_new(ctx);
            SSL_set_fd(t.ssl, t.fd);
            SSL_set_tlsext_host_name(t.ssl, names[i][0]);
            cr_assert_eq(SSL_connect(t.ssl), 1);
        }
        char *cn = cert_cn(t.ssl);
        cr_assert_str_eq(cn, names[i][1], "SNI %s", names[i][0] ? names[i][0] : "(none)");
        free(cn);
        tls_close(&t);
    }
    SSL_CTX_free(ctx);
}

static void resumption(int version, bool tickets)
{
    SSL_CTX *ctx = client_ctx(version, version);
    if (!tickets)
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
    struct tconn t;
    cr_assert(tls_open(&t, ctx, "localhost", NULL));
    char *a = tls_get(&t, "/whoami"); /* TLS 1.3 tickets arrive after the handshake */
    free(a);
    SSL_SESSION *sess = SSL_get1_session(t.ssl);
    tls_close(&t);
    cr_assert(tls_open(&t, ctx, "localhost", sess));
    cr_assert(SSL_session_reused(t.ssl), "version %x tickets %d: not resumed", version, tickets);
    a = tls_get(&t, "/whoami");
    cr_assert(strstr(a, "200"), "%s", a);
    free(a);
    tls_close(&t);
    SSL_SESSION_free(sess);
    SSL_CTX_free(ctx);
}

Test(balancer_tls, resumption_tickets_and_cache)
{
    resumption(TLS1_3_VERSION, true);
    resumption(TLS1_2_VERSION, true);
    resumption(TLS1_2_VERSION, false); /* session id: the server cache */
    char *m = metrics();
    cr_assert(strstr(m, "balancer_tls_handshakes_total{kind=\"resumed\"} 3"), "%s", m);
    free(m);
}

/* A TLS 1.3 client that keeps only its latest session resumes from a resumed
 * connection again: each resumption hands it a fresh ticket. */
Test(balancer_tls, tls13_resumed_connection_gets_a_new_ticket)
{
    SSL_CTX *ctx = client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
    SSL_SESSION *sess = NULL;
    for (int i = 0; i < 4; i++) {
        struct tconn t;
        cr_assert(tls_open(&t, ctx, "localhost", sess));
        if (i > 0)
            cr_assert(SSL_session_reused(t.ssl), "connection %d, after a resumed one, was a full handshake",
                      i);
        char *a = tls_get(&t, "/whoami"); /* reads the ticket that follows the handshake */
        cr_assert(strstr(a, "200"), "%s", a);
        free(a);
        SSL_SESSION_free(sess);
        sess = SSL_get1_session(t.ssl);
        tls_close(&t);
    }
    SSL_SESSION_free(sess);
    SSL_CTX_free(ctx);
    char *m = metrics();
    cr_assert(strstr(m, "balancer_tls_handshakes_total{kind=\"resumed\"} 3"), "%s", m);
    free(m);
}

Test(balancer_tls, renegotiation_refused)
{
    SSL_CTX *ctx = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    struct tconn t;
    cr_assert(tls_open(&t, ctx, "localhost", NULL));
    cr_assert_eq(SSL_renegotiate(t.ssl), 1);
    int r = SSL_do_handshake(t.ssl);
    char *req = "GET /whoami HTTP/1.1\r\nHost: localhost\r\n\r\n";
    char buf[4096];
    (void)req;
    (void)buf;
    cr_assert_neq(r, 1, "the balancer renegotiated");
    ERR_clear_error();
    SSL_free(t.ssl);
    close(t.fd);
    SSL_CTX_free(ctx);
    cr_assert_eq(test_balancer_log_count(st.lb, "renegotiat"), 0);
    /* The balancer is still serving. */
    ctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
    cr_assert(tls_open(&t, ctx, "localhost", NULL));
    char *a = tls_get(&t, "/whoami");
    cr_assert(strstr(a, "200"), "%s", a);
    free(a);
    tls_close(&t);
    SSL_CTX_free(ctx);
}

Test(balancer_tls, stalled_handshake_closed_at_deadline)
{
    /* Nothing at all, and a ClientHello dribbled a byte at a time: both are cut at the 1.5 s deadline. */
    int idle = test_raw_connect(tls_port);
    int slow = test_raw_connect(tls_port);
    static const unsigned char hello[] = {0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03};
    bool slow_closed = false;
    for (size_t i = 0; i < 40 && !slow_closed; i++) {
        if (send(slow, hello + (i % sizeof(hello)), 1, MSG_NOSIGNAL) < 0)
            slow_closed = true;
        harness_sleep_ms(100);
        char c;
        ssize_t r = recv(slow, &c, 1, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN))
            slow_closed = true;
    }
    cr_assert(slow_closed, "a dribbling handshake held its connection for 4 s");
    size_t n;
    char *got = test_raw_exchange(idle, "", 0, 3000, &n);
    cr_assert_eq(n, 0);
    free(got);
    close(idle);
    close(slow);
    char *m = metrics();
    cr_assert(strstr(m, "balancer_tls_handshake_failures_total{reason=\"incomplete\"} 2"), "%s", m);
    free(m);
}

Test(balancer_tls, plain_http_and_garbage)
{
    int fd = test_raw_connect(tls_port);
    size_t n;
    const char *req = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    char *got = test_raw_exchange(fd, req, strlen(req), 3000, &n);
    cr_assert(strstr(got, "HTTP/1.1 400"), "%s", got);
    cr_assert(strstr(got, "speaks HTTPS"), "%s", got);
    free(got);
    close(fd);
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (unsigned char)(i * 131 + 7);
    junk[0] = 0x16; /* looks like a handshake record */
    fd = test_raw_connect(tls_port);
    got = test_raw_exchange(fd, (const char *)junk, sizeof(junk), 3000, &n);
    free(got);
    close(fd);
    fd = test_raw_connect(tls_port);
    got = test_raw_exchange(fd, (const char *)junk + 1, sizeof(junk) - 1, 3000, &n);
    free(got);
    close(fd);
    /* Still serving. */
    SSL_CTX *ctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
    struct tconn t;
    cr_assert(tls_open(&t, ctx, "localhost", NULL));
    char *a = tls_get(&t, "/whoami");
    cr_assert(strstr(a, "200"), "%s", a);
    free(a);
    tls_close(&t);
    SSL_CTX_free(ctx);
    char *m = metrics();
    cr_assert(strstr(m, "balancer_tls_handshake_failures_total{reason=\"http_request\"} 1"), "%s", m);
    free(m);
}

Test(balancer_tls, sighup_reloads_and_refuses_a_bad_certificate)
{
    SSL_CTX *ctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
    struct tconn kept;
    cr_assert(tls_open(&kept, ctx, "localhost", NULL));
    /* A key that does not match: refused with one line, the old certificate stays. */
    char *cmd = xasprintf("cp %s/shop-key.pem %s/localhost-key.pem", dir, dir);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    harness_signal(st.lb->proc, SIGHUP);
    for (int i = 0; i < 100 && test_balancer_log_count(st.lb, "TLS certificates not reloaded") == 0; i++)
        harness_sleep_ms(20);
    cr_assert_eq(test_balancer_log_count(st.lb, "TLS certificates not reloaded"), 1);
    cr_assert_eq(test_balancer_log_count(st.lb, "does not match"), 1);
    struct tconn t;
    cr_assert(tls_open(&t, ctx, "localhost", NULL), "old certificate lost");
    tls_close(&t);
    /* A new certificate: served after SIGHUP, the open connection goes on. */
    cmd = xasprintf(
        "rm %s/localhost.pem %s/localhost-key.pem && %s/tools/make-dev-cert.sh %s localhost ec localhost "
        "127.0.0.1 >/dev/null",
        dir, dir, harness_root(), dir);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    harness_signal(st.lb->proc, SIGHUP);
    for (int i = 0; i < 100 && test_balancer_log_count(st.lb, "TLS certificates reloaded") == 0; i++)
        harness_sleep_ms(20);
    cr_assert_eq(test_balancer_log_count(st.lb, "TLS certificates reloaded"), 1);
    char *a = tls_get(&kept, "/whoami");
    cr_assert(strstr(a, "200"), "kept connection: %s", a);
    free(a);
    X509 *old = SSL_get1_peer_certificate(kept.ssl);
    cr_assert(tls_open(&t, ctx, "localhost", NULL));
    X509 *now = SSL_get1_peer_certificate(t.ssl);
    cr_assert_neq(X509_cmp(old, now), 0, "still the old certificate");
    X509_free(old);
    X509_free(now);
    tls_close(&t);
    tls_close(&kept);
    SSL_CTX_free(ctx);
}

Test(balancer_tls, check_reports_days_and_bad_keys)
{
    char *cmd = xasprintf("%s/balancer --check --env=%s", getenv("SHOP_BIN"), st.lb->envfile);
    FILE *p = popen(cmd, "r");
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    cr_assert_eq(pclose(p), 0, "%s", out);
    cr_assert(strstr(out, "ok localhost:") && strstr(out, "days left"), "%s", out);
    cr_assert(strstr(out, "ok shop.example:"), "%s", out);
    char *cp = xasprintf("cp %s/shop-key.pem %s/localhost-key.pem", dir, dir);
    cr_assert_eq(system(cp), 0);
    free(cp);
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    cr_assert_neq(pclose(p), 0, "%s", out);
    cr_assert(strstr(out, "does not match"), "%s", out);
    free(cmd);
}

Test(balancer_tls, plain_port_redirects_when_asked)
{
    teardown();
    start((const char *const[]){"BALANCER_HTTPS_REDIRECT=1", NULL});
    int fd = test_raw_connect(st.lb->port);
    size_t n;
    const char *req = "GET /cart?x=1 HTTP/1.1\r\nHost: shop.example:8080\r\n\r\n";
    char *got = test_raw_exchange(fd, req, strlen(req), 3000, &n);
    cr_assert(strstr(got, "HTTP/1.1 308"), "%s", got);
    char *loc = xasprintf("Location: https://shop.example:%d/cart?x=1\r\n", tls_port);
    cr_assert(strstr(got, loc), "%s", got);
    free(loc);
    free(got);
    close(fd);
    fd = test_raw_connect(st.lb->port);
    req = "GET / HTTP/1.1\r\nHost: evil\"<x>\r\n\r\n";
    got = test_raw_exchange(fd, req, strlen(req), 3000, &n);
    cr_assert(strstr(got, "HTTP/1.1 400"), "%s", got);
    free(got);
    close(fd);
}
