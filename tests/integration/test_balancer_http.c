/* Header handling and bodies: X-Forwarded-*, X-Request-Id, Host, hop-by-hop
 * headers, Set-Cookie; streamed large and chunked answers, HEAD, uploads. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/test_stack.h"
#include "tests/support/raw_socket.h"

static struct test_stack st;

static void setup(void)
{
    test_stack_start(&st, "http", 1, NULL);
}

static void teardown(void)
{
    test_stack_stop(&st);
}

TestSuite(balancer_http, .init = setup, .fini = teardown, .timeout = 30);

static struct http_resp *req(const char *method, const char *path, const char *body,
                             const char *const headers[])
{
    char *url = test_balancer_url(st.lb, false, path);
    struct http_resp *r = http_request(st.cl, method, url, body ? "text/plain" : NULL, body, headers);
    free(url);
    return r;
}

static const char *echoed(struct http_resp *r, const char *name)
{
    cr_assert_not_null(r->json, "not JSON: %s", r->body);
    return json_string_value(json_object_get(json_object_get(r->json, "headers"), name));
}

/* A client that is not a trusted proxy cannot choose the address or scheme
 * shopd believes: both are replaced. */
Test(balancer_http, forwarded_headers_replaced_from_an_untrusted_peer)
{
    const char *h[] = {"X-Forwarded-For: 203.0.113.7", "Host: shop.example", "X-Forwarded-Proto: https",
                       NULL};
    struct http_resp *r = req("GET", "/echo", NULL, h);
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(echoed(r, "x-forwarded-for"), "127.0.0.1");
    cr_assert_str_eq(echoed(r, "x-forwarded-proto"), "http");
    cr_assert_str_eq(echoed(r, "host"), "shop.example");
    http_resp_free(r);
    r = req("GET", "/echo", NULL, NULL);
    cr_assert_str_eq(echoed(r, "x-forwarded-for"), "127.0.0.1");
    http_resp_free(r);
}

/* Behind a TLS terminator the operator trusts, its headers are kept and appended to. */
Test(balancer_http, forwarded_headers_kept_from_a_trusted_peer)
{
    test_stack_stop(&st);
    const char *extra[] = {"BALANCER_TRUSTED_PROXIES=192.0.2.9, 127.0.0.1", NULL};
    test_stack_start(&st, "http-trusted", 1, extra);
    const char *h[] = {"X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https", NULL};
    struct http_resp *r = req("GET", "/echo", NULL, h);
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(echoed(r, "x-forwarded-for"), "203.0.113.7, 127.0.0.1");
    cr_assert_str_eq(echoed(r, "x-forwarded-proto"), "https");
    http_resp_free(r);
    const char *bogus[] = {"X-Forwarded-Proto: gopher", NULL};
    r = req("GET", "/echo", NULL, bogus);
    cr_assert_str_eq(echoed(r, "x-forwarded-proto"), "http", "only http and https pass");
    http_resp_free(r);
}

Test(balancer_http, request_id_generated_kept_or_replaced)
{
    struct http_resp *r = req("GET", "/echo", NULL, NULL);
    const char *sent = echoed(r, "x-request-id");
    cr_assert_not_null(sent);
    cr_assert_geq(strlen(sent), 10);
    cr_assert_str_eq(http_resp_header(r, "X-Request-Id"), sent, "answer and backend see different ids");
    char *line = xasprintf("request_id=%s", sent);
    http_resp_free(r);
    /* The balancer writes its log after the answer has left (one write per loop pass). */
    for (int t = 0; t < 50 && test_balancer_log_count(st.lb, line) == 0; t++)
        harness_sleep_ms(20);
    cr_assert_eq(test_balancer_log_count(st.lb, line), 1, "not in the access log");
    free(line);

    const char *mine[] = {"X-Request-Id: abc-123", NULL};
    r = req("GET", "/echo", NULL, mine);
    cr_assert_str_eq(echoed(r, "x-request-id"), "abc-123");
    http_resp_free(r);

    const char *evil[] = {"X-Request-Id: a b\"c<script>", NULL};
    r = req("GET", "/echo", NULL, evil);
    cr_assert_str_neq(echoed(r, "x-request-id"), "a b\"c<script>");
    http_resp_free(r);
}

Test(balancer_http, hop_by_hop_headers_are_removed)
{
    const char *h[] = {"Connection: keep-alive, X-Secret",
                       "X-Secret: 1",
                       "Keep-Alive: timeout=5",
                       "TE: trailers",
                       "Upgrade: websocket",
                       "Proxy-Authorization: Basic eA==",
                       "X-Kept: yes",
                       NULL};
    struct http_resp *r = req("GET", "/echo", NULL, h);
    cr_assert_eq(r->status, 200);
    cr_assert_null(echoed(r, "x-secret"));
    cr_assert_null(echoed(r, "keep-alive"));
    cr_assert_null(echoed(r, "te"));
    cr_assert_null(echoed(r, "upgrade"));
    cr_assert_null(echoed(r, "proxy-authorization"));
    cr_assert_str_eq(echoed(r, "x-kept"), "yes");
    http_resp_free(r);
}

Test(balancer_http, set_cookie_headers_stay_separate)
{
    struct http_resp *r = req("GET", "/cookies", NULL, NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_eq(http_resp_header_count(r, "Set-Cookie"), 2, "%s", r->headers);
    cr_assert_not_null(strstr(r->headers, "Set-Cookie: a=1; Path=/\r\n"));
    cr_assert_not_null(strstr(r->headers, "Set-Cookie: b=2; Path=/; HttpOnly\r\n"));
    http_resp_free(r);
}

static long balancer_peak_rss_kb(void)
{
    char *path = xasprintf("/proc/%d/status", (int)harness_pid(st.lb->proc));
    FILE *f = fopen(path, "r");
    free(path);
    cr_assert_not_null(f);
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

Test(balancer_http, large_chunked_answer_is_streamed_not_held)
{
    long before = balancer_peak_rss_kb();
    struct http_resp *r = req("GET", "/big?bytes=30000000", NULL, NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_eq(r->len, 30000000u);
    for (size_t i = 0; i < r->len; i += 4999)
        cr_assert_eq(r->body[i], 'a' + (char)(i % 26), "byte %zu", i);
    cr_assert_not_null(strstr(r->headers, "Transfer-Encoding: chunked"), "%s", r->headers);
    http_resp_free(r);
    long after = balancer_peak_rss_kb();
#ifndef __SANITIZE_ADDRESS__ /* ASan's quarantine keeps freed buffers: peak memory says nothing there */
    cr_assert_lt(after - before, 8 * 1024, "peak memory grew by %ld kB for a 30 MB answer", after - before);
#else
    (void)after;
    (void)before;
#endif

    r = req("GET", "/fixed?bytes=5000000", NULL, NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_eq(r->len, 5000000u);
    cr_assert_eq(r->body[4999999], 'a' + (char)(4999999 % 26));
    http_resp_free(r);
}

/* Reads fd in bursts: everything it can, then a 2 ms pause, until the peer closes.
 * Returns the bytes read, or -1 when nothing came for 3 s. */
static long read_in_bursts(int fd)
{
    long total = 0;
    char buf[65536];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 3000) != 1)
            return -1;
        ssize_t n;
        while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
            total += n;
        if (n == 0)
            return total;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        usleep(2000);
    }
}

/* The balancer stops reading from the backend while the client lags, and the client's
 * write event resumes it. When the client had read everything just before the flush
 * that paused the backend, that flush emptied the buffer, no write event was left to
 * come, and the answer stalled until the client gave up (once in about 40 runs of this
 * suite on a busy machine). A client that reads in bursts meets that moment often. */
Test(balancer_http, answer_to_a_client_reading_in_bursts_never_stalls)
{
    for (int i = 0; i < 6; i++) {
        int fd = test_raw_connect(st.lb->port);
        cr_assert_geq(fd, 0);
        int rcvbuf = 128 * 1024;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
        const char *get = "GET /big?bytes=8000000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        cr_assert_eq(send(fd, get, strlen(get), 0), (ssize_t)strlen(get));
        long got = read_in_bursts(fd);
        close(fd);
        /* The body and its chunk framing: 8 MB in 64 KiB chunks plus the head. */
        cr_assert_gt(got, 8000000, "answer %d stalled or broke after its bytes: %ld read", i, got);
    }
}

Test(balancer_http, head_has_no_body_and_connection_stays_usable)
{
    struct http_resp *r = req("HEAD", "/fixed?bytes=1000", NULL, NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_eq(r->len, 0u);
    cr_assert_str_eq(http_resp_header(r, "X-Backend"), "A");
    http_resp_free(r);
    r = req("GET", "/whoami", NULL, NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(r->body, "A");
    http_resp_free(r);
}

Test(balancer_http, uploads_with_length_and_chunked)
{
    size_t n = 3 * 1024 * 1024;
    char *body = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('0' + i % 10);
    body[n] = '\0';
    struct http_resp *r = req("POST", "/echo", body, NULL);
    cr_assert_eq(r->status, 200, "%ld %s", r->status, r->error);
    cr_assert_eq(json_integer_value(json_object_get(r->json, "body_len")), (json_int_t)n);
    cr_assert_eq(json_integer_value(json_object_get(r->json, "body_sum")),
                 (json_int_t)test_backend_body_sum(body, n));
    http_resp_free(r);
    free(body);

    int fd = test_raw_connect(st.lb->port);
    const char *chunked =
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    char *out = test_raw_exchange(fd, chunked, strlen(chunked), 3000, NULL);
    close(fd);
    cr_assert(strncmp(out, "HTTP/1.1 200", 12) == 0, "%s", out);
    cr_assert_not_null(strstr(out, "\"body\":\"hello world\""), "%s", out);
    free(out);
}

Test(balancer_http, pipelined_requests_answer_in_order)
{
    int fd = test_raw_connect(st.lb->port);
    const char *two = "GET /status?code=201 HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /status?code=202 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char *out = test_raw_exchange(fd, two, strlen(two), 3000, NULL);
    close(fd);
    char *first = strstr(out, "HTTP/1.1 201"), *second = strstr(out, "HTTP/1.1 202");
    cr_assert(first && second && first < second, "%s", out);
    free(out);
}
