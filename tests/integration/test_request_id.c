/* One request id from the client to shopd: an id the balancer accepts is the id
 * shopd answers and logs, and an id the balancer replaces is replaced once, so
 * the two access logs always name the same request. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/shop.h"
#include "tests/support/balancer_proc.h"

static struct shop_server *shop;
static struct test_balancer *lb;
static struct http_client *client;

static void setup(void)
{
    shop = shop_start(NULL);
    char *backends = xasprintf("127.0.0.1:%d", shop->port);
    lb = test_balancer_start("request_id", backends, NULL);
    free(backends);
    client = http_client_new();
}

static void teardown(void)
{
    http_client_free(client);
    test_balancer_stop(lb);
    shop_stop(shop);
}

TestSuite(request_id_contract, .init = setup, .fini = teardown, .timeout = 60);

/* GET /products through the balancer with the given X-Request-Id header line
 * (NULL for none); returns the id the answer names (caller frees). */
static char *id_through_balancer(const char *header)
{
    const char *headers[] = {header, NULL};
    char *url = test_balancer_url(lb, false, "/products");
    struct http_resp *r = http_request(client, "GET", url, NULL, NULL, header ? headers : NULL);
    free(url);
    cr_assert_eq(r->status, 200);
    const char *id = http_resp_header(r, "X-Request-Id");
    cr_assert_not_null(id, "no X-Request-Id in the answer");
    char *copy = xstrdup(id);
    http_resp_free(r);
    return copy;
}

/* Both logs name id (shopd's access log and the balancer's), waiting briefly
 * for the lines to be written. */
static void expect_both_logs_name(const char *id)
{
    char *needle = xasprintf("request_id=%s", id);
    int in_shopd = 0, in_balancer = 0;
    for (int i = 0; i < 50 && (in_shopd == 0 || in_balancer == 0); i++) {
        in_shopd = harness_count_in_file(shop->log_path, needle);
        in_balancer = test_balancer_log_count(lb, needle);
        if (in_shopd == 0 || in_balancer == 0)
            harness_sleep_ms(20);
    }
    cr_expect_eq(in_shopd, 1, "shopd's log names %s %d times", needle, in_shopd);
    cr_expect_eq(in_balancer, 1, "the balancer's log names %s %d times", needle, in_balancer);
    free(needle);
}

Test(request_id_contract, ids_the_balancer_keeps_reach_shopd_unchanged)
{
    /* shopd used to accept only [A-Za-z0-9._-] under 64 characters and replace
     * the rest, so these came back as other ids. */
    char long_id[129];
    memset(long_id, 'z', 128);
    long_id[128] = '\0';
    const char *ids[] = {"trace:42", "dGVzdA==", "a/b+c", long_id};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char *header = xasprintf("X-Request-Id: %s", ids[i]);
        char *got = id_through_balancer(header);
        cr_expect_str_eq(got, ids[i]);
        expect_both_logs_name(ids[i]);
        free(got);
        free(header);
    }
}

Test(request_id_contract, an_id_the_balancer_replaces_is_the_id_shopd_logs)
{
    char too_long[130];
    memset(too_long, 'y', 129);
    too_long[129] = '\0';
    const char *bad[] = {"X-Request-Id: a b", "X-Request-Id: <script>", NULL};
    char *long_header = xasprintf("X-Request-Id: %s", too_long);
    bad[2] = long_header;
    for (size_t i = 0; i < 3; i++) {
        char *got = id_through_balancer(bad[i]);
        cr_expect(strcmp(got, too_long) != 0 && strchr(got, ' ') == NULL && strchr(got, '<') == NULL,
                  "kept a bad id: %s", got);
        expect_both_logs_name(got);
        free(got);
    }
    free(long_header);
    char *made = id_through_balancer(NULL);
    expect_both_logs_name(made);
    free(made);
}
