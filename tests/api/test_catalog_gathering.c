/* Catalog requests that arrive together are answered after one check of the
 * catalog's version, and that check still sees every change committed before
 * any of them arrived. Two shopd on one database, as two hosts would be: one
 * with a single worker that the test pauses (SIGSTOP) while requests pile up
 * on its connections, one that changes the catalog meanwhile. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/raw_socket.h"
#include "tests/support/shop.h"
#include "tests/support/shop_client.h"
#include "tests/support/test_database.h"

static char *dir;
static struct shop_server *a, *b;
static pid_t paused; /* a worker the test stopped: let go at teardown even when a test fails */

static void start(void)
{
    dir = harness_tempdir("catalog_gathering");
    char *database = test_database_url(dir);
    char *url = xasprintf("DATABASE_URL=%s", database);
    free(database);
    const char *one_worker[] = {url, "SHOPD_WORKERS=1", NULL};
    const char *env[] = {url, NULL};
    a = shop_start(one_worker);
    b = shop_start(env);
    free(url);
}

static void stop(void)
{
    if (paused > 0)
        kill(paused, SIGCONT);
    shop_stop(a);
    shop_stop(b);
    harness_rmrf(dir);
    free(dir);
}

TestSuite(catalog_gathering, .init = start, .fini = stop, .timeout = 60);

/* The value of the sample line that starts with name, or -1. */
static double metric(struct shop_server *s, const char *name)
{
    struct http_client *c = http_client_new();
    struct http_resp *r = shop_get(s, c, "/metrics");
    cr_assert_eq(r->status, 200);
    double v = -1;
    size_t n = strlen(name);
    for (const char *line = r->body; line && *line;) {
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            v = atof(line + n + 1);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    http_resp_free(r);
    http_client_free(c);
    return v;
}

/* shopd's only worker (the master's only child with the dispatcher off). */
static pid_t only_worker(struct shop_server *s)
{
    char path[64];
    pid_t master = harness_pid(s->proc);
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)master, (int)master);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no %s", path);
    int pid = -1, other = -1;
    cr_assert_eq(fscanf(f, "%d", &pid), 1, "shopd has no worker");
    cr_assert_neq(fscanf(f, "%d", &other), 1, "shopd has more than one child");
    fclose(f);
    return (pid_t)pid;
}

static long stock_of(const char *answer, long id)
{
    const char *body = answer ? strstr(answer, "\r\n\r\n") : NULL;
    cr_assert_not_null(body, "no answer: %s", answer ? answer : "(none)");
    cr_assert(strncmp(answer, "HTTP/1.1 200", 12) == 0, "%.200s", answer);
    json_t *list = json_loads(body + 4, 0, NULL);
    cr_assert(json_is_array(list), "%s", body + 4);
    long stock = -1;
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p) if (json_integer_value(json_object_get(p, "id")) == id) stock =
        (long)json_integer_value(json_object_get(p, "stock"));
    json_decref(list);
    return stock;
}

#define WAITING 16

Test(catalog_gathering, requests_that_arrive_together_share_one_fresh_check)
{
    struct http_client *admin = http_client_new();
    shop_register_login(b, admin, "admin@example.com", "correct horse battery");
    struct http_resp *r = http_json(admin, "PUT", shop_url(b, "/products/1"), "{\"stock\": 70}");
    cr_assert_eq(r->status, 200, "%ld %s", r->status, r->body);
    http_resp_free(r);

    int fds[WAITING];
    for (int i = 0; i < WAITING; i++) {
        fds[i] = test_raw_connect(a->port);
        cr_assert_geq(fds[i], 0);
    }
    /* Every connection accepted before the pause: one answer on each. */
    static const char HEALTH[] = "GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n";
    for (int i = 0; i < WAITING; i++) {
        cr_assert_eq(send(fds[i], HEALTH, sizeof(HEALTH) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(HEALTH) - 1);
        char buf[2048];
        ssize_t got = recv(fds[i], buf, sizeof(buf), 0);
        cr_assert_gt(got, 0, "no answer to the health check on connection %d", i);
    }
    double checks = metric(a, "shopd_catalog_version_checks_total");
    double gathered = metric(a, "shopd_catalog_requests_gathered_total");
    cr_assert_geq(checks, 0, "no shopd_catalog_version_checks_total in /metrics");

    pid_t worker = paused = only_worker(a);
    cr_assert_eq(kill(worker, SIGSTOP), 0);
    static const char LIST[] = "GET /products HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < WAITING / 2; i++)
        cr_assert_eq(send(fds[i], LIST, sizeof(LIST) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(LIST) - 1);
    /* Committed on the other shopd after half of them were sent and before
       the other half: the later half must see it. */
    r = http_json(admin, "PUT", shop_url(b, "/products/1"), "{\"stock\": 71}");
    long status = r->status;
    http_resp_free(r);
    for (int i = WAITING / 2; i < WAITING; i++)
        send(fds[i], LIST, sizeof(LIST) - 1, MSG_NOSIGNAL);
    kill(worker, SIGCONT);
    cr_assert_eq(status, 200);

    for (int i = 0; i < WAITING; i++) {
        size_t len;
        char *answer = test_raw_exchange(fds[i], NULL, 0, 10000, &len);
        long stock = stock_of(answer, 1);
        if (i >= WAITING / 2)
            cr_expect_eq(stock, 71, "request %d, sent after the change, saw stock %ld", i, stock);
        else
            cr_expect(stock == 70 || stock == 71, "request %d saw stock %ld", i, stock);
        free(answer);
        close(fds[i]);
    }
    double checks_after = metric(a, "shopd_catalog_version_checks_total");
    double gathered_after = metric(a, "shopd_catalog_requests_gathered_total");
    cr_expect_eq(gathered_after - gathered, WAITING, "%g catalog requests gathered, %d sent",
                 gathered_after - gathered, WAITING);
    /* They all waited in the socket buffers together: one pass, one check
       (two if the loop happened to split them). */
    cr_expect_leq(checks_after - checks, 2, "%g version checks for %d requests that arrived together",
                  checks_after - checks, WAITING);
    http_client_free(admin);
}

Test(catalog_gathering, a_client_gone_while_waiting_is_let_go)
{
    int gone = test_raw_connect(a->port), stays = test_raw_connect(a->port);
    cr_assert_geq(gone, 0);
    cr_assert_geq(stays, 0);
    static const char HEALTH[] = "GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n";
    char buf[2048];
    for (int i = 0; i < 2; i++) {
        int fd = i ? stays : gone;
        cr_assert_eq(send(fd, HEALTH, sizeof(HEALTH) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(HEALTH) - 1);
        cr_assert_gt(recv(fd, buf, sizeof(buf), 0), 0);
    }
    pid_t worker = paused = only_worker(a);
    cr_assert_eq(kill(worker, SIGSTOP), 0);
    static const char LIST[] = "GET /products HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n";
    send(gone, LIST, sizeof(LIST) - 1, MSG_NOSIGNAL);
    send(stays, LIST, sizeof(LIST) - 1, MSG_NOSIGNAL);
    close(gone); /* sent, then gone before the worker ran */
    kill(worker, SIGCONT);
    size_t len;
    char *answer = test_raw_exchange(stays, NULL, 0, 10000, &len);
    cr_expect(stock_of(answer, 1) >= 0, "%s", answer);
    free(answer);
    close(stays);
    /* The worker is alive and serves. */
    struct http_client *c = http_client_new();
    struct http_resp *r = shop_get(a, c, "/products");
    cr_expect_eq(r->status, 200);
    http_resp_free(r);
    http_client_free(c);
}
