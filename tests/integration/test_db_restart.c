/* PostgreSQL going away under a running shopd, and coming back: while it is
 * away requests answer 503 with a message (never a crash, never a hang past
 * the request timeout), and each worker reconnects by itself afterwards;
 * nothing committed is lost. A private server, so that stopping it disturbs
 * no other suite. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/clock.h"
#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/pg_server.h"
#include "tests/support/shop.h"
#include "tests/support/shop_client.h"
#include "tests/support/test_database.h"

static struct pg_server *pg;
static struct shop_server *shop;
static struct http_client *client;

static void teardown(void)
{
    http_client_free(client);
    shop_stop(shop);
    pg_server_free(pg);
}

TestSuite(db_restart, .fini = teardown, .timeout = 120);

static int checkout_once(int64_t product, const char *key)
{
    char body[96];
    snprintf(body, sizeof(body), "{\"product_id\":%lld,\"quantity\":1}", (long long)product);
    struct http_resp *r = shop_send_json(shop, client, "POST", "/cart/items", body);
    int status = r->status;
    http_resp_free(r);
    if (status != 201)
        return status;
    char header[64];
    snprintf(header, sizeof(header), "Idempotency-Key: %s", key);
    const char *headers[] = {header, NULL};
    r = http_request(client, "POST", shop_url(shop, "/checkout"), NULL, NULL, headers);
    status = r->status;
    http_resp_free(r);
    return status;
}

Test(db_restart, requests_answer_503_while_the_server_is_away_and_recover)
{
    pg = pg_server_start();
    char *url = pg_test_database(pg, "restart");
    char *env_url = xasprintf("DATABASE_URL=%s", url);
    const char *env[] = {env_url, "SHOPD_WORKERS=2", NULL};
    shop = shop_start(env);
    client = http_client_new();
    shop_register_login(shop, client, "restart@example.com", "correct horse battery");
    pid_t master = harness_pid(shop->proc);

    char key[32];
    int placed = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "before-%d", i);
        cr_assert_eq(checkout_once(1, key), 201, "checkout %d before the restart", i);
        placed++;
    }

    pg_server_stop(pg);
    /* Every request while the server is away: 503 with a JSON message, in
       well under the request timeout, from both workers (several requests on
       new connections land on either). */
    for (int i = 0; i < 8; i++) {
        http_client_free(client);
        client = http_client_new();
        uint64_t t0 = clock_mono_ms();
        struct http_resp *r = http_json(client, "GET", shop_url(shop, "/products"), NULL);
        uint64_t took = clock_mono_ms() - t0;
        cr_assert_eq(r->status, 503, "GET /products with the database away: %d %s", r->status, r->body);
        cr_assert_not_null(strstr(r->body, "\"message\""), "%s", r->body);
        cr_assert_lt(took, 10000, "the answer took %llu ms", (unsigned long long)took);
        http_resp_free(r);
    }
    cr_assert_eq(kill(master, 0), 0, "shopd died while the database was away");

    pg_server_resume(pg);
    /* Each worker reconnects by itself: within a few seconds every request
       passes again, on fresh connections (so on both workers). */
    int ok = 0;
    uint64_t deadline = clock_mono_ms() + 15000;
    while (ok < 8 && clock_mono_ms() < deadline) {
        http_client_free(client);
        client = http_client_new();
        struct http_resp *r = http_json(client, "GET", shop_url(shop, "/products"), NULL);
        ok = r->status == 200 ? ok + 1 : 0;
        http_resp_free(r);
        if (ok == 0)
            harness_sleep_ms(100);
    }
    cr_assert_eq(ok, 8, "shopd did not recover after the database came back");

    /* The session and the orders made before are all there. */
    shop_register_login(shop, client, "after@example.com", "correct horse battery");
    cr_assert_eq(checkout_once(2, "after-0"), 201, "checkout after the restart");
    const char *none[] = {NULL};
    char *count = test_database_value(url, "SELECT count(*) FROM orders", none);
    cr_assert_not_null(count);
    cr_assert_eq(atoi(count), placed + 1, "orders in the database: %s", count);
    free(count);
    free(env_url);
    free(url);
}
