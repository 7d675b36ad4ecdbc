/* Strict HTTP/1.1 framing (RFC 9112) on both listeners: shopd's own port and
 * the balancer in front of it. Each probe is sent on a raw socket with a second
 * request hidden behind it; the listener must answer 400 (or the status given)
 * as JSON, close, and never answer the hidden request. Also: a client that
 * writes a whole 2 MiB body before reading still receives the 413. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/shop.h"
#include "tests/support/balancer_proc.h"
#include "tests/support/raw_socket.h"

static struct shop_server *shop;
static struct test_balancer *lb;

static void teardown(void)
{
    test_balancer_stop(lb);
    lb = NULL;
    shop_stop(shop);
    shop = NULL;
}

TestSuite(http_strict, .fini = teardown, .timeout = 60);

/* shopd, and the balancer in front of it once it sends requests through. */
static void start(void)
{
    shop = shop_start(NULL);
    char backend[64];
    snprintf(backend, sizeof(backend), "127.0.0.1:%d", shop->port);
    lb = test_balancer_start("strict", backend, NULL);
    struct http_client *c = http_client_new();
    char *url = test_balancer_url(lb, false, "/healthz");
    long status = 0;
    for (int i = 0; i < 100 && status != 200; i++) {
        struct http_resp *r = http_request(c, "GET", url, NULL, NULL, NULL);
        status = r->status;
        http_resp_free(r);
        if (status != 200)
            harness_sleep_ms(50);
    }
    free(url);
    http_client_free(c);
    cr_assert_eq(status, 200, "the balancer never reached shopd");
}

static char *exchange(int port, const char *data, size_t len)
{
    int fd = test_raw_connect(port);
    cr_assert_geq(fd, 0);
    char *out = test_raw_exchange(fd, data, len, 3000, NULL);
    close(fd);
    return out;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

#define SMUGGLED "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

struct probe {
    const char *name;
    const char *bytes;
    size_t len; /* 0: strlen */
    int status;
};

static const struct probe probes[] = {
    {"two different Content-Length",
     "POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\nab" SMUGGLED, 0, 400},
    {"Content-Length with a sign", "POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\nab" SMUGGLED,
     0, 400},
    {"Content-Length list", "POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\nab" SMUGGLED, 0,
     400},
    {"space before the colon of Transfer-Encoding",
     "POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: "
     "4\r\n\r\n0\r\n\r\n" SMUGGLED,
     0, 400},
    {"Transfer-Encoding with Content-Length",
     "POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: "
     "4\r\n\r\n0\r\n\r\n" SMUGGLED,
     0, 400},
    {"Transfer-Encoding not ending in chunked",
     "POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" SMUGGLED, 0,
     400},
    {"chunked twice",
     "POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
     "chunked\r\n\r\n0\r\n\r\n" SMUGGLED,
     0, 400},
    {"chunk size '2 x'",
     "POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2 x\r\nab\r\n0\r\n\r\n" SMUGGLED,
     0, 400},
    {"chunk size not hex",
     "POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n" SMUGGLED, 0,
     400},
    {"chunk line ending in a bare LF",
     "POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n0\r\n\r\n" SMUGGLED, 0,
     400},
    {"chunk longer than its size",
     "POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n" SMUGGLED,
     0, 400},
    {"NUL in a field value", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n" SMUGGLED,
     41 + sizeof(SMUGGLED) - 1, 400},
    {"control character in a field value", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\033b\r\n\r\n" SMUGGLED,
     0, 400},
    {"space in a field name", "GET /healthz HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n" SMUGGLED, 0, 400},
    {"folded field line", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n" SMUGGLED, 0, 400},
    {"HTTP/1.1 without Host", "GET /healthz HTTP/1.1\r\n\r\n" SMUGGLED, 0, 400},
    {"two Host fields", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" SMUGGLED, 0, 400},
    {"version HTTX/1.1", "GET /healthz HTTX/1.1\r\nHost: x\r\n\r\n" SMUGGLED, 0, 400},
    {"version HTTP/1.10", "GET /healthz HTTP/1.10\r\nHost: x\r\n\r\n" SMUGGLED, 0, 400},
    {"version HTTP/2.0", "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n" SMUGGLED, 0, 505},
    {"unsupported transfer coding",
     "POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" SMUGGLED, 0, 501},
};

static void refuses_every_probe(int port, const char *listener)
{
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        const struct probe *p = &probes[i];
        size_t len = p->len ? p->len : strlen(p->bytes);
        char *out = exchange(port, p->bytes, len);
        char want[32];
        snprintf(want, sizeof(want), "HTTP/1.1 %d ", p->status);
        cr_expect(strncmp(out, want, strlen(want)) == 0, "%s, %s: got %.60s", listener, p->name, out);
        cr_expect_eq(count(out, "HTTP/1."), 1, "%s, %s: the hidden request was answered:\n%s", listener,
                     p->name, out);
        cr_expect(strstr(out, "Content-Type: application/json\r\n") && strstr(out, "{\"message\":"),
                  "%s, %s: not a JSON error:\n%s", listener, p->name, out);
        cr_expect(strstr(out, "Connection: close\r\n") && strstr(out, "X-Request-Id: ") &&
                      strstr(out, "X-Content-Type-Options: nosniff\r\n"),
                  "%s, %s: headers:\n%s", listener, p->name, out);
        free(out);
    }
}

Test(http_strict, shopd_refuses_ambiguous_requests)
{
    start();
    refuses_every_probe(shop->port, "shopd");
}

Test(http_strict, balancer_refuses_ambiguous_requests)
{
    start();
    refuses_every_probe(lb->port, "balancer");
}

/* Strictness must not cost what is valid: pipelined requests, identical
 * Content-Length fields, chunk extensions and trailers. */
static void accepts_valid_requests(int port, const char *listener)
{
    static const char valid[] =
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        "POST /logout HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"
        "POST /logout HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "2;ext=\"v\"\r\n{}\r\n0\r\nX-Trailer: t\r\n\r\n"
        "GET /healthz HTTP/1.0\r\n\r\n";
    char *out = exchange(port, valid, sizeof(valid) - 1);
    cr_expect_eq(count(out, "HTTP/1."), 5, "%s answered:\n%s", listener, out);
    cr_expect_eq(count(out, "HTTP/1.1 400"), 0, "%s answered:\n%s", listener, out);
    free(out);
}

Test(http_strict, valid_requests_pass_both)
{
    start();
    accepts_valid_requests(shop->port, "shopd");
    accepts_valid_requests(lb->port, "balancer");
}

/* A refused request after an answered one on the same connection is still
 * answered with its error, after the first answer, instead of a close that
 * loses both, and in the order of the requests. */
static void refuses_a_second_request(int port, const char *listener)
{
    static const char two[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /healthz HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n";
    char *out = exchange(port, two, sizeof(two) - 1);
    cr_expect(strncmp(out, "HTTP/1.1 200 ", 13) == 0, "%s: got %.60s", listener, out);
    const char *second = strstr(out + 1, "HTTP/1.1 ");
    cr_expect(second && strncmp(second, "HTTP/1.1 400 ", 13) == 0, "%s: no 400 for the second request:\n%s",
              listener, out);
    cr_expect(second && strstr(second, "{\"message\":") != NULL, "%s: not a JSON error:\n%s", listener, out);
    free(out);
}

Test(http_strict, a_bad_request_after_a_good_one_gets_its_400)
{
    start();
    refuses_a_second_request(lb->port, "balancer");
    refuses_a_second_request(shop->port, "shopd");
}

/* The first answer takes a while (a login hashes its password on a thread):
 * the refusal of the request pipelined behind it must still come second. */
Test(http_strict, shopd_answers_pipelined_requests_in_order)
{
    start();
    static const char two[] =
        "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 52\r\n\r\n{\"email\":\"nobody@example.com\",\"password\":\"xxxxxxxx\"}"
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n";
    char *out = exchange(shop->port, two, sizeof(two) - 1);
    cr_expect(strncmp(out, "HTTP/1.1 401 ", 13) == 0, "the login's answer is not first:\n%s", out);
    const char *second = strstr(out + 1, "HTTP/1.1 ");
    cr_expect(second && strncmp(second, "HTTP/1.1 400 ", 13) == 0, "no 400 after it:\n%s", out);
    free(out);
}

/* Each connection's refusal waits for the answers before it on that connection
 * alone: with many connections open, the answer of one must release the refusal
 * held on that one, whichever was opened first. */
Test(http_strict, held_refusals_follow_their_own_connections_answers)
{
    start();
    enum { CONNECTIONS = 48 };
    static const char two[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /healthz HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n";
    int fds[CONNECTIONS];
    for (int i = 0; i < CONNECTIONS; i++) {
        fds[i] = test_raw_connect(shop->port);
        cr_assert_geq(fds[i], 0, "connection %d", i);
    }
    for (int i = CONNECTIONS - 1; i >= 0; i--) {
        char *out = test_raw_exchange(fds[i], two, sizeof(two) - 1, 3000, NULL);
        close(fds[i]);
        cr_expect(strncmp(out, "HTTP/1.1 200 ", 13) == 0, "connection %d: the first answer is not first:\n%s",
                  i, out);
        const char *second = strstr(out + 1, "HTTP/1.1 ");
        cr_expect(second && strncmp(second, "HTTP/1.1 400 ", 13) == 0, "connection %d: no 400 after it:\n%s",
                  i, out);
        free(out);
    }
}

/* Python's urllib and many SDKs send the whole body before they read. */
static void big_body_gets_413(int port, const char *listener)
{
    size_t body = 2u << 20;
    char head[160];
    int hlen = snprintf(head, sizeof(head),
                        "POST /products HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\n\r\n",
                        body);
    char *req = xmalloc((size_t)hlen + body);
    memcpy(req, head, (size_t)hlen);
    memset(req + hlen, 'x', body);
    char *out = exchange(port, req, (size_t)hlen + body);
    cr_expect(strncmp(out, "HTTP/1.1 413 Content Too Large\r\n", 32) == 0, "%s: got %.80s", listener, out);
    cr_expect(strstr(out, "{\"message\":") != NULL, "%s: %s", listener, out);
    free(out);
    free(req);
}

Test(http_strict, a_client_that_writes_first_still_reads_413)
{
    start();
    big_body_gets_413(shop->port, "shopd");
    big_body_gets_413(lb->port, "balancer");
}

/* A method shopd does not serve gets a JSON 501 (evhttp's own is an HTML page);
 * the balancer's parser knows no BREW either and refuses it as JSON too. */
Test(http_strict, unknown_methods_get_json)
{
    start();
    static const char brew[] = "BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n";
    char *out = exchange(shop->port, brew, sizeof(brew) - 1);
    cr_expect(strncmp(out, "HTTP/1.1 501 Not Implemented\r\n", 30) == 0, "shopd: %.60s", out);
    cr_expect(strstr(out, "Content-Type: application/json\r\n") != NULL, "shopd: %s", out);
    free(out);
    out = exchange(lb->port, brew, sizeof(brew) - 1);
    cr_expect(strncmp(out, "HTTP/1.1 4", 10) == 0 || strncmp(out, "HTTP/1.1 501", 12) == 0, "balancer: %.60s",
              out);
    cr_expect(strstr(out, "Content-Type: application/json\r\n") != NULL, "balancer: %s", out);
    free(out);
}
