/* A kept-alive connection gets its second page as fast as its first.
 *
 * An answer written in pieces on a socket without TCP_NODELAY waits for the
 * client's delayed ACK (40 ms on Linux) before its last piece leaves, on every
 * request after the first on a connection: browsers keep connections alive, so
 * every page but the first was 40 ms late. The check takes the fastest of five
 * second requests, so a busy machine does not make it fail, while the 40 ms
 * stall, which happens every time, would. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

TestSuite(keepalive_pages, .fini = teardown, .timeout = 60);

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

/* Sends one GET on fd and reads its whole answer (Content-Length framed).
 * Returns the milliseconds it took, or -1; *bytes gets the body size. */
static double timed_get(int fd, const char *path, size_t *bytes)
{
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: shop.test\r\n\r\n", path);
    double t0 = now_ms();
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return -1;
    static char buf[1 << 20];
    size_t got = 0;
    long want = -1;
    for (;;) {
        ssize_t r = recv(fd, buf + got, sizeof(buf) - got - 1, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end && want < 0) {
            char *cl = strcasestr(buf, "\r\nContent-Length:");
            if (!cl || cl > end)
                return -1;
            want = (long)(end + 4 - buf) + atol(cl + 17);
        }
        if (want >= 0 && (long)got >= want)
            break;
    }
    *bytes = got;
    return now_ms() - t0;
}

/* 12 more products besides the 8 of the seed: a 20 KB inventory page. */
static void fill_catalog(void)
{
    struct http_client *admin = http_client_new();
    shop_register_login(shop, admin, "admin@example.com", "correct horse");
    for (int i = 0; i < 12; i++) {
        char body[200];
        snprintf(body, sizeof(body),
                 "{\"name\":\"Fruit %d\",\"description\":\"A fruit for the keep-alive check, number %d.\","
                 "\"price\":1.5,\"stock\":10}",
                 i, i);
        struct http_resp *r = http_json(admin, "POST", shop_url(shop, "/products"), body);
        cr_assert_eq(r->status, 201, "%ld %s", r->status, r->body);
        http_resp_free(r);
    }
    http_client_free(admin);
}

static void second_page_is_not_delayed(int port, const char *via)
{
    double best_second = 1e9;
    size_t bytes = 0;
    for (int round = 0; round < 5; round++) {
        int fd = test_raw_connect(port);
        cr_assert_geq(fd, 0);
        double first = timed_get(fd, "/browser/inventory", &bytes);
        double second = timed_get(fd, "/browser/inventory", &bytes);
        close(fd);
        cr_assert_geq(first, 0, "%s: first request failed", via);
        cr_assert_geq(second, 0, "%s: second request on the connection failed", via);
        if (second < best_second)
            best_second = second;
    }
    cr_assert_gt(bytes, 15000, "%s: the page is %zu bytes, not the 20 KB the check needs", via, bytes);
    /* The bug (a small write held back by Nagle until the client's delayed ACK) costs the
       40 ms of Linux's delayed ACK on every round; the best of five stays far below on a
       loaded machine. */
    cr_expect_lt(best_second, 25.0, "%s: the fastest second request took %.1f ms (a delayed ACK costs 40 ms)",
                 via, best_second);
}

Test(keepalive_pages, second_request_on_a_connection_is_not_delayed)
{
    shop = shop_start(NULL);
    fill_catalog();
    second_page_is_not_delayed(shop->port, "shopd");
    char backend[64];
    snprintf(backend, sizeof(backend), "127.0.0.1:%d", shop->port);
    lb = test_balancer_start("keepalive", backend, NULL);
    harness_sleep_ms(300); /* the first health check marks shopd up */
    second_page_is_not_delayed(lb->port, "balancer");
}
