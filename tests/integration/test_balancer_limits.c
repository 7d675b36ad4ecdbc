/* Limits and timeouts: header and body sizes, malformed requests, slow clients
 * (slowloris), idle keep-alive connections and the connection limit. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/test_stack.h"
#include "tests/support/raw_socket.h"

static struct test_stack st;

static void teardown(void)
{
    test_stack_stop(&st);
}

TestSuite(balancer_limits, .fini = teardown, .timeout = 30);

static void start(const char *const extra[])
{
    test_stack_start(&st, "limits", 1, extra);
}

static char *raw(const char *request, int timeout_ms)
{
    int fd = test_raw_connect(st.lb->port);
    cr_assert_geq(fd, 0);
    char *out = test_raw_exchange(fd, request, strlen(request), timeout_ms, NULL);
    close(fd);
    return out;
}

Test(balancer_limits, oversized_header_gets_431)
{
    const char *extra[] = {"BALANCER_MAX_HEADER_BYTES=2048", NULL};
    start(extra);
    char *big = xmalloc(4000);
    memset(big, 'x', 3999);
    big[3999] = '\0';
    char *line = xasprintf("X-Big: %s", big);
    const char *headers[] = {line, NULL};
    char *url = test_balancer_url(st.lb, false, "/whoami");
    struct http_resp *r = http_request(st.cl, "GET", url, NULL, NULL, headers);
    cr_assert_eq(r->status, 431, "%ld %s", r->status, r->body);
    http_resp_free(r);
    /* Just under the limit passes. */
    big[1500] = '\0';
    free(line);
    line = xasprintf("X-Big: %s", big);
    headers[0] = line;
    r = http_request(st.cl, "GET", url, NULL, NULL, headers);
    cr_assert_eq(r->status, 200, "%ld %s", r->status, r->body);
    http_resp_free(r);
    free(url);
    free(line);
    free(big);
}

Test(balancer_limits, oversized_body_gets_413)
{
    const char *extra[] = {"BALANCER_MAX_BODY_BYTES=1000", NULL};
    start(extra);
    char *body = xmalloc(5001);
    memset(body, 'b', 5000);
    body[5000] = '\0';
    char *url = test_balancer_url(st.lb, false, "/echo");
    struct http_resp *r = http_request(st.cl, "POST", url, "text/plain", body, NULL);
    cr_assert_eq(r->status, 413, "%ld %s", r->status, r->body);
    http_resp_free(r);
    free(url);
    free(body);
    /* A chunked body is counted as it streams. */
    char *out = raw(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3e8\r\n"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
        2000);
    cr_assert(strncmp(out, "HTTP/1.1 413", 12) == 0, "%s", out);
    free(out);
}

Test(balancer_limits, malformed_requests_get_400)
{
    start(NULL);
    static const char *const bad[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n", /* no Host */
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *out = raw(bad[i], 2000);
        cr_assert(strncmp(out, "HTTP/1.1 400", 12) == 0, "request %zu answered: %.80s", i, out);
        free(out);
    }
    /* The balancer is still fine. */
    char *url = test_balancer_url(st.lb, false, "/whoami");
    struct http_resp *r = http_request(st.cl, "GET", url, NULL, NULL, NULL);
    cr_assert_eq(r->status, 200);
    http_resp_free(r);
    free(url);
}

Test(balancer_limits, slowloris_is_cut_off_and_does_not_block_others)
{
    const char *extra[] = {"BALANCER_HEADER_TIMEOUT_MS=1500", NULL};
    start(extra);
    int fd = test_raw_connect(st.lb->port);
    cr_assert_geq(fd, 0);
    const char *slow = "GET /whoami HTTP/1.1\r\nHost: x\r\nX-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    struct timeval t0, t1;
    gettimeofday(&t0, NULL);
    bool cut = false;
    char *url = test_balancer_url(st.lb, false, "/whoami");
    for (size_t i = 0; i < strlen(slow); i++) {
        if (send(fd, slow + i, 1, MSG_NOSIGNAL) != 1) {
            cut = true;
            break;
        }
        /* Others are served at once meanwhile. */
        struct http_resp *r = http_request(st.cl, "GET", url, NULL, NULL, NULL);
        cr_assert_eq(r->status, 200);
        http_resp_free(r);
        harness_sleep_ms(250);
        gettimeofday(&t1, NULL);
        if (t1.tv_sec - t0.tv_sec > 8)
            break;
    }
    char *out = test_raw_exchange(fd, "", 0, 1000, NULL);
    gettimeofday(&t1, NULL);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
    cr_assert(cut || strncmp(out, "HTTP/1.1 408", 12) == 0, "slow client answered: %.60s", out);
    /* The cut comes at the 1.5 s header timeout; four times that still fails a timer that
       each byte re-arms (the client would be kept until the loop gives up after 8 s). */
    cr_assert_lt(ms, 6000, "slow client kept for %ld ms (header timeout 1500 ms)", ms);
    free(out);
    free(url);
    close(fd);
}

Test(balancer_limits, idle_keepalive_connection_is_closed)
{
    const char *extra[] = {"BALANCER_IDLE_TIMEOUT_MS=300", NULL};
    start(extra);
    int fd = test_raw_connect(st.lb->port);
    const char *req = "GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t n;
    char *out = test_raw_exchange(fd, req, strlen(req), 1500, &n);
    /* The answer came, then the connection was closed after the idle time (read returned 0). */
    cr_assert(strncmp(out, "HTTP/1.1 200", 12) == 0, "%s", out);
    cr_assert_not_null(strstr(out, "\r\n\r\nA"));
    free(out);
    char b;
    cr_assert_eq(recv(fd, &b, 1, MSG_DONTWAIT), 0, "connection still open");
    close(fd);
}

Test(balancer_limits, connection_limit_answers_503)
{
    const char *extra[] = {"BALANCER_MAX_CONNECTIONS=2", NULL};
    start(extra);
    harness_sleep_ms(100); /* the start-up probe connection is gone */
    int a = test_raw_connect(st.lb->port), b = test_raw_connect(st.lb->port);
    harness_sleep_ms(100);
    int c = test_raw_connect(st.lb->port);
    char *out = test_raw_exchange(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27, 1000, NULL);
    cr_assert(strncmp(out, "HTTP/1.1 503", 12) == 0, "%s", out);
    free(out);
    close(c);
    close(a);
    close(b);
    harness_sleep_ms(100);
    char *url = test_balancer_url(st.lb, false, "/whoami");
    struct http_resp *r = http_request(st.cl, "GET", url, NULL, NULL, NULL);
    cr_assert_eq(r->status, 200);
    http_resp_free(r);
    free(url);
}

/* Out of descriptors, the balancer stops accepting for a moment, logs it, and
 * serves again once descriptors are free. */
Test(balancer_limits, survives_running_out_of_descriptors)
{
    start(NULL);
    struct rlimit low = {.rlim_cur = 40, .rlim_max = 40};
    cr_assert_eq(prlimit(harness_pid(st.lb->proc), RLIMIT_NOFILE, &low, NULL), 0, "prlimit: %s",
                 strerror(errno));
    enum { N = 60 };
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = test_raw_connect(st.lb->port);
    harness_sleep_ms(700);
    cr_assert(harness_alive(st.lb->proc), "the balancer died out of descriptors");
    cr_assert_geq(test_balancer_log_count(st.lb, "accept: Too many open files"), 1);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    harness_sleep_ms(500);
    char *url = test_balancer_url(st.lb, false, "/whoami");
    struct http_resp *r = http_request(st.cl, "GET", url, NULL, NULL, NULL);
    free(url);
    cr_assert_eq(r->status, 200, "after the descriptors came back: %ld %s", r->status, r->error);
    http_resp_free(r);
    cr_assert(harness_alive(st.lb->proc));
}
