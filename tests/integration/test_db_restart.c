/* PostgreSQL going away under a running shopd (idle, and under load), and coming back: while it is
 * away requests answer 503 with a message (never a crash, never a hang past
 * the request timeout), and each worker reconnects by itself afterwards;
 * nothing committed is lost. A private server, so that stopping it disturbs
 * no other suite. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
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

/* A private server with a fresh database, shopd (2 workers) on it and the
   client logged in as email; returns the database's URL (caller frees). */
static char *start_on_own_server(const char *db_prefix, const char *email)
{
    pg = pg_server_start();
    char *url = pg_test_database(pg, db_prefix);
    char *env_url = xasprintf("DATABASE_URL=%s", url);
    const char *env[] = {env_url, "SHOPD_WORKERS=2", NULL};
    shop = shop_start(env);
    free(env_url);
    client = http_client_new();
    shop_register_login(shop, client, email, "correct horse battery");
    return url;
}

/* GET path on a new connection (so on either worker). */
static struct http_resp *get_on_new_connection(const char *path)
{
    http_client_free(client);
    client = http_client_new();
    return http_json(client, "GET", shop_url(shop, path), NULL);
}

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

/* Load beside the restart: shoppers checking out one item at a time, each
   answer either a success or a 503, never anything else, never slow. */
struct load {
    const char *base;
    char cookie[160];
    volatile int stop;
    int orders, unavailable, other, slow;
    char other_text[256];
};

static void *shopper(void *arg)
{
    struct load *l = arg;
    char cart[160], checkout[160];
    snprintf(cart, sizeof(cart), "%s/cart/items", l->base);
    snprintf(checkout, sizeof(checkout), "%s/checkout", l->base);
    const char *headers[] = {l->cookie, NULL};
    while (!l->stop) {
        struct http_client *c = http_client_new();
        uint64_t t0 = clock_mono_ms();
        struct http_resp *r =
            http_request(c, "POST", cart, "application/json", "{\"product_id\":3,\"quantity\":1}", headers);
        long status = r->status;
        if (status == 201) {
            http_resp_free(r);
            r = http_request(c, "POST", checkout, NULL, NULL, headers);
            status = r->status;
            if (status == 201)
                l->orders++;
        }
        if (clock_mono_ms() - t0 > 10000)
            l->slow++;
        if (status == 503) {
            l->unavailable++;
        } else if (status != 201 && status != 409) {
            /* 409: a cart emptied by a checkout whose answer was lost; anything else is wrong */
            if (!l->other++)
                snprintf(l->other_text, sizeof(l->other_text), "%ld %s", status, r->body ? r->body : "");
        }
        http_resp_free(r);
        http_client_free(c);
        harness_sleep_ms(20);
    }
    return NULL;
}

Test(db_restart, checkouts_under_load_survive_a_restart_and_none_is_lost)
{
    char *url = start_on_own_server("restart_load", "load@example.com");
    struct load l = {.base = shop->base};
    char *session = http_client_cookie(client, "session");
    cr_assert_not_null(session);
    snprintf(l.cookie, sizeof(l.cookie), "Cookie: session=%s", session);
    free(session);

    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, shopper, &l), 0);
    harness_sleep_ms(700);
    pg_server_restart(pg);
    /* Until the load has seen the database back for a while. */
    int before = l.orders;
    uint64_t deadline = clock_mono_ms() + 20000;
    while (l.orders < before + 5 && clock_mono_ms() < deadline)
        harness_sleep_ms(50);
    l.stop = 1;
    pthread_join(t, NULL);

    cr_assert_eq(l.other, 0, "%d answers other than 201/409/503, first: %s", l.other, l.other_text);
    cr_assert_eq(l.slow, 0, "%d requests took more than 10 s", l.slow);
    cr_assert_geq(l.orders, before + 5, "checkouts did not resume after the restart");
    const char *none[] = {NULL};
    char *count = test_database_value(url, "SELECT count(*) FROM orders", none);
    cr_assert_not_null(count);
    /* Every order answered 201 is in the database; one more at most, whose
       answer was lost when the server went away after its commit. */
    cr_assert_geq(atoi(count), l.orders, "orders: %s in the database, %d placed", count, l.orders);
    cr_assert_leq(atoi(count), l.orders + 1, "orders: %s in the database, %d placed", count, l.orders);
    free(count);
    cr_log_info("load: %d orders, %d answered 503 during the restart", l.orders, l.unavailable);
    free(url);
}

Test(db_restart, requests_answer_503_while_the_server_is_away_and_recover)
{
    char *url = start_on_own_server("restart", "restart@example.com");
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
        uint64_t t0 = clock_mono_ms();
        struct http_resp *r = get_on_new_connection("/products");
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
        struct http_resp *r = get_on_new_connection("/products");
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
    free(url);
}
