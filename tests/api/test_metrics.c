/* GET /metrics: Prometheus text summed over every worker of one shopd. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/harness.h"
#include "tests/support/shop.h"
#include "tests/support/shop_client.h"

TestSuite(metrics, .timeout = 60);

/* The value of the first sample line that starts with prefix, or -1. */
static double sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, prefix, n) == 0 && line[n] == ' ')
            return atof(line + n + 1);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -1;
}

static char *scrape(struct shop_server *s, struct http_client *c)
{
    struct http_resp *r = shop_get(s, c, "/metrics");
    cr_assert_eq(r->status, 200);
    cr_assert(strncmp(http_resp_header(r, "Content-Type"), "text/plain", 10) == 0);
    char *text = strdup(r->body);
    http_resp_free(r);
    return text;
}

Test(metrics, counts_requests_of_every_worker)
{
    struct shop_server *s = shop_start(NULL);
    /* A fresh connection per request spreads them over both workers. */
    for (int i = 0; i < 12; i++) {
        struct http_client *c = http_client_new();
        struct http_resp *r = shop_get(s, c, "/products");
        cr_assert_eq(r->status, 200);
        http_resp_free(r);
        r = shop_get(s, c, "/no-such-page");
        http_resp_free(r);
        http_client_free(c);
    }
    struct http_client *c = http_client_new();
    char *text = scrape(s, c);
    cr_expect_eq(sample(text, "shopd_http_requests_total{route=\"products\",method=\"GET\",code=\"200\"}"),
                 12, "%s", text);
    cr_expect_eq(sample(text, "shopd_http_requests_total{route=\"none\",method=\"any\",code=\"404\"}"), 12);
    cr_expect_eq(sample(text, "shopd_http_request_duration_seconds_count{route=\"products\",method=\"GET\"}"),
                 12);
    cr_expect(strstr(text, "# TYPE shopd_http_request_duration_seconds histogram") != NULL);
    cr_expect_eq(sample(text, "shopd_orders{status=\"pending\"}"), 0);
    cr_expect_eq(sample(text, "shopd_worker_restarts_total"), 0);
    /* At least the scraping connection itself is open. */
    cr_expect_geq(sample(text, "shopd_connections"), 1);
    free(text);

    /* A checkout shows up as a created checkout and a pending order. */
    shop_register_login(s, c, "metrics@example.com", "password123");
    struct http_resp *r = shop_send_json(s, c, "POST", "/cart/items", "{\"product_id\":1,\"quantity\":1}");
    http_resp_free(r);
    r = shop_send_json(s, c, "POST", "/checkout", NULL);
    cr_assert_eq(r->status, 201);
    http_resp_free(r);
    r = shop_send_json(s, c, "POST", "/checkout", NULL);
    cr_assert_eq(r->status, 409);
    http_resp_free(r);
    text = scrape(s, c);
    cr_expect_eq(sample(text, "shopd_checkouts_total{result=\"created\"}"), 1);
    cr_expect_eq(sample(text, "shopd_checkouts_total{result=\"refused\"}"), 1);
    cr_expect_eq(sample(text, "shopd_orders{status=\"pending\"}"), 1);
    free(text);
    http_client_free(c);
    shop_stop(s);
}

Test(metrics, counts_worker_restarts_and_refuses_remote_clients)
{
    struct shop_server *s = shop_start(NULL);
    struct http_client *c = http_client_new();
    /* A client that the (trusted, local) proxy says is remote does not get the metrics. */
    const char *remote[] = {"X-Forwarded-For: 203.0.113.9", NULL};
    struct http_resp *r = http_request(c, "GET", shop_url(s, "/metrics"), NULL, NULL, remote);
    cr_expect_eq(r->status, 403);
    http_resp_free(r);

    char cmd[128], out[64] = "";
    snprintf(cmd, sizeof(cmd), "pgrep -P %d | head -n 1", (int)harness_pid(s->proc));
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    cr_assert_not_null(fgets(out, sizeof(out), p));
    pclose(p);
    kill(atoi(out), SIGKILL);
    double restarts = 0;
    for (int i = 0; i < 100 && restarts < 1; i++) {
        harness_sleep_ms(20);
        char *text = scrape(s, c);
        restarts = sample(text, "shopd_worker_restarts_total");
        free(text);
    }
    cr_expect_eq(restarts, 1);
    http_client_free(c);
    shop_stop(s);
}
