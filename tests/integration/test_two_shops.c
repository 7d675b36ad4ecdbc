/* Two shopd on one database, as two hosts behind the balancer: repeats of one
 * checkout and a race for the last items, spread over both at once, still give
 * one order per checkout and never sell more than the stock. Runs on the
 * engine the pass names (SHOP_TEST_DATABASE): a shared SQLite file, or one
 * PostgreSQL database. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/shop.h"
#include "tests/support/shop_client.h"
#include "tests/support/test_database.h"

#define PASSWORD "correct horse battery"

static char *dir, *database_url;
static struct shop_server *shops[2];

static void setup(void)
{
    dir = harness_tempdir("two_shops");
    database_url = test_database_url(dir);
    char *env_url = xasprintf("DATABASE_URL=%s", database_url);
    const char *env[] = {env_url, NULL};
    for (int i = 0; i < 2; i++)
        shops[i] = shop_start(env);
    free(env_url);
}

static void teardown(void)
{
    for (int i = 0; i < 2; i++)
        shop_stop(shops[i]);
    harness_rmrf(dir);
    free(dir);
    free(database_url);
}

TestSuite(two_shops, .init = setup, .fini = teardown, .timeout = 120);

/* One request of a burst, sent from its own thread and connection. */
struct shot {
    char url[128];
    char cookie[160];
    const char *content_type, *body;
    char extra[96]; /* one more header line, or "" */
    long status;
    char answer[512];
};

static void *fire(void *arg)
{
    struct shot *s = arg;
    struct http_client *c = http_client_new();
    const char *headers[] = {s->cookie, s->extra[0] ? s->extra : NULL, NULL};
    struct http_resp *r = http_request(c, "POST", s->url, s->content_type, s->body, headers);
    s->status = r->status;
    const char *loc = http_resp_header(r, "Location");
    snprintf(s->answer, sizeof(s->answer), "%s", loc ? loc : r->body ? r->body : "");
    http_resp_free(r);
    http_client_free(c);
    return NULL;
}

static void fire_all(struct shot *shots, int n)
{
    pthread_t *t = xcalloc((size_t)n, sizeof(*t));
    for (int i = 0; i < n; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, fire, &shots[i]), 0);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    free(t);
}

static void session_cookie(struct http_client *c, char *out, size_t outlen)
{
    char *session = http_client_cookie(c, "session");
    cr_assert_not_null(session, "no session cookie");
    snprintf(out, outlen, "Cookie: session=%s", session);
    free(session);
}

static void add_to_cart(struct shop_server *s, struct http_client *c, int64_t product, int quantity)
{
    char body[80];
    snprintf(body, sizeof(body), "{\"product_id\":%lld,\"quantity\":%d}", (long long)product, quantity);
    struct http_resp *r = shop_send_json(s, c, "POST", "/cart/items", body);
    cr_assert_eq(r->status, 201, "add to cart: %d %s", r->status, r->body);
    http_resp_free(r);
}

static long long count_orders(void)
{
    const char *none[] = {NULL};
    char *v = test_database_value(database_url, "SELECT count(*) FROM orders", none);
    cr_assert_not_null(v);
    long long n = atoll(v);
    free(v);
    return n;
}

Test(two_shops, one_idempotency_key_sent_to_both_at_once_makes_one_order)
{
    struct http_client *c = http_client_new();
    shop_register_login(shops[0], c, "repeat@example.com", PASSWORD);
    add_to_cart(shops[1], c, 2, 3);
    enum { REPEATS = 10 };
    struct shot shots[REPEATS];
    memset(shots, 0, sizeof(shots));
    for (int i = 0; i < REPEATS; i++) {
        snprintf(shots[i].url, sizeof(shots[i].url), "%s/checkout", shops[i % 2]->base);
        session_cookie(c, shots[i].cookie, sizeof(shots[i].cookie));
        snprintf(shots[i].extra, sizeof(shots[i].extra), "Idempotency-Key: the-same-order");
    }
    fire_all(shots, REPEATS);
    json_error_t e;
    char first[64] = "";
    for (int i = 0; i < REPEATS; i++) {
        cr_assert_eq(shots[i].status, 201, "repeat %d on shopd %d: %ld %s", i, i % 2, shots[i].status,
                     shots[i].answer);
        json_t *j = json_loads(shots[i].answer, 0, &e);
        cr_assert_not_null(j, "%s", shots[i].answer);
        const char *id = json_string_value(json_object_get(j, "order_id"));
        cr_assert_not_null(id);
        if (!first[0])
            snprintf(first, sizeof(first), "%s", id);
        cr_assert_str_eq(id, first, "every repeat names the first order");
        json_decref(j);
    }
    cr_assert_eq(count_orders(), 1);
    http_client_free(c);
}

Test(two_shops, a_double_submitted_checkout_form_on_both_makes_one_order)
{
    struct http_client *c = http_client_new();
    shop_register_login(shops[0], c, "double@example.com", PASSWORD);
    add_to_cart(shops[0], c, 3, 1);
    char *csrf = shop_csrf(shops[1], c, "/browser/inventory");
    struct http_resp *r = shop_get(shops[1], c, "/browser/cart");
    char *token = shop_field_value(r->body, "checkout_token");
    http_resp_free(r);
    cr_assert_not_null(token);
    char *body = xasprintf("csrf_token=%s&checkout_token=%s", csrf, token);
    struct shot shots[4];
    memset(shots, 0, sizeof(shots));
    for (int i = 0; i < 4; i++) {
        snprintf(shots[i].url, sizeof(shots[i].url), "%s/browser/checkout", shops[i % 2]->base);
        session_cookie(c, shots[i].cookie, sizeof(shots[i].cookie));
        shots[i].content_type = "application/x-www-form-urlencoded";
        shots[i].body = body;
    }
    fire_all(shots, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(shots[i].status, 303, "submission %d: %ld %s", i, shots[i].status, shots[i].answer);
        cr_assert(strncmp(shots[i].answer, "/browser/checkout?order=", 24) == 0, "%s", shots[i].answer);
        cr_assert_str_eq(shots[i].answer, shots[0].answer, "every submission names the same order");
    }
    cr_assert_eq(count_orders(), 1);
    free(body);
    free(token);
    free(csrf);
    http_client_free(c);
}

Test(two_shops, twenty_buyers_on_both_race_for_five_items)
{
    struct http_client *admin = http_client_new();
    shop_register_login(shops[0], admin, "admin@example.com", PASSWORD);
    struct http_resp *r = shop_send_json(shops[0], admin, "POST", "/products",
                                         "{\"name\":\"Last five\",\"price\":2.5,\"stock\":5}");
    cr_assert_eq(r->status, 201, "%s", r->body);
    int64_t product = json_integer_value(json_object_get(r->json, "id"));
    http_resp_free(r);
    http_client_free(admin);

    enum { BUYERS = 20 };
    struct shot shots[BUYERS];
    memset(shots, 0, sizeof(shots));
    for (int i = 0; i < BUYERS; i++) {
        struct http_client *c = http_client_new();
        char email[64];
        snprintf(email, sizeof(email), "buyer%d@example.com", i);
        shop_register_login(shops[i % 2], c, email, PASSWORD);
        add_to_cart(shops[(i + 1) % 2], c, product, 1);
        session_cookie(c, shots[i].cookie, sizeof(shots[i].cookie));
        snprintf(shots[i].url, sizeof(shots[i].url), "%s/checkout", shops[i % 2]->base);
        http_client_free(c);
    }
    fire_all(shots, BUYERS);
    int sold = 0, refused = 0;
    for (int i = 0; i < BUYERS; i++) {
        if (shots[i].status == 201)
            sold++;
        else if (shots[i].status == 409 && strstr(shots[i].answer, "Not enough stock"))
            refused++;
        else
            cr_assert_fail("buyer %d: %ld %s", i, shots[i].status, shots[i].answer);
    }
    cr_assert_eq(sold, 5, "%d sold, %d refused", sold, refused);
    cr_assert_eq(refused, BUYERS - 5);
    char sql[96];
    snprintf(sql, sizeof(sql), "SELECT stock FROM products WHERE id = %lld", (long long)product);
    const char *none[] = {NULL};
    char *stock = test_database_value(database_url, sql, none);
    cr_assert_not_null(stock);
    cr_assert_str_eq(stock, "0");
    free(stock);
    cr_assert_eq(count_orders(), 5);
}
