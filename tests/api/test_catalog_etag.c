/* Conditional GETs of the catalog over real HTTP, and cached answers that
 * follow every change: two shopd on one SQLite file, as two hosts would be. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/shop.h"
#include "tests/support/test_database.h"

static char *dir;
static struct shop_server *a, *b;
static struct http_client *client;

static void start(void)
{
    dir = harness_tempdir("catalog_etag");
    /* Both instances on one database: the tags must agree across them. */
    char *database = test_database_url(dir);
    char *url = xasprintf("DATABASE_URL=%s", database);
    free(database);
    const char *env[] = {url, NULL};
    a = shop_start(env);
    b = shop_start(env);
    free(url);
    client = http_client_new();
}

static void stop(void)
{
    http_client_free(client);
    shop_stop(a);
    shop_stop(b);
    harness_rmrf(dir);
    free(dir);
}

TestSuite(catalog_etag, .init = start, .fini = stop, .timeout = 60);

static struct http_resp *get(struct shop_server *s, const char *path, const char *if_none_match)
{
    char *h = if_none_match ? xasprintf("If-None-Match: %s", if_none_match) : NULL;
    const char *headers[] = {h, NULL};
    struct http_resp *r = http_request(client, "GET", shop_url(s, path), NULL, NULL, h ? headers : NULL);
    free(h);
    return r;
}

static char *etag_of(struct http_resp *r)
{
    const char *e = http_resp_header(r, "ETag");
    cr_assert_not_null(e, "no ETag on %ld answer", r->status);
    return xstrdup(e);
}

static void admin_put(struct shop_server *s, const char *path, const char *body)
{
    struct http_client *admin = http_client_new();
    shop_register_login(s, admin, "admin@example.com", "correct horse battery");
    struct http_resp *r = http_json(admin, "PUT", shop_url(s, path), body);
    cr_assert_eq(r->status, 200, "PUT %s: %ld %s", path, r->status, r->body);
    http_resp_free(r);
    http_client_free(admin);
}

Test(catalog_etag, an_unchanged_catalog_is_answered_304_without_a_body)
{
    const char *paths[] = {"/products", "/products/1", "/products?sort=-price&limit=3"};
    for (size_t i = 0; i < 3; i++) {
        struct http_resp *r = get(a, paths[i], NULL);
        cr_assert_eq(r->status, 200);
        char *etag = etag_of(r);
        cr_expect_str_eq(http_resp_header(r, "Cache-Control"), "no-cache");
        http_resp_free(r);
        r = get(a, paths[i], etag);
        cr_expect_eq(r->status, 304, "%s: %ld", paths[i], r->status);
        cr_expect_eq(r->len, 0, "%s: a 304 with a body", paths[i]);
        cr_expect_str_eq(http_resp_header(r, "ETag"), etag);
        http_resp_free(r);
        /* Another tag, a list holding it, "*", a weak form. */
        char *list = xasprintf("\"nope\", %s", etag);
        char *weak = xasprintf("W/%s", etag);
        const char *hits[] = {list, "*", weak};
        for (size_t k = 0; k < 3; k++) {
            r = get(a, paths[i], hits[k]);
            cr_expect_eq(r->status, 304, "%s If-None-Match %s: %ld", paths[i], hits[k], r->status);
            http_resp_free(r);
        }
        r = get(a, paths[i], "\"nope\"");
        cr_expect_eq(r->status, 200);
        http_resp_free(r);
        free(list);
        free(weak);
        free(etag);
    }
    /* A search and the plain list do not share a tag. */
    struct http_resp *r1 = get(a, "/products", NULL), *r2 = get(a, "/products?q=apple", NULL);
    char *e1 = etag_of(r1), *e2 = etag_of(r2);
    cr_expect_str_neq(e1, e2);
    free(e1);
    free(e2);
    http_resp_free(r1);
    http_resp_free(r2);
}

Test(catalog_etag, a_change_on_another_shopd_is_seen_at_once)
{
    /* Warm a's cache, change the price through b, then ask a. */
    struct http_resp *r = get(a, "/products", NULL);
    char *before = etag_of(r);
    cr_assert(strstr(r->body, "\"price_cents\":50,") != NULL, "%s", r->body);
    http_resp_free(r);
    admin_put(b, "/products/1", "{\"price\": 0.55}");
    r = get(a, "/products", before);
    cr_expect_eq(r->status, 200, "a still says 304 for the old tag");
    cr_expect(r->body && strstr(r->body, "\"price_cents\":55,") != NULL, "a serves the old price: %s",
              r->body);
    char *after = etag_of(r);
    cr_expect_str_neq(before, after);
    http_resp_free(r);
    r = get(a, "/products/1", before);
    cr_expect_eq(r->status, 200);
    http_resp_free(r);
    /* Stock taken by a checkout on b shows on a's next answer. */
    struct http_client *buyer = http_client_new();
    shop_register_login(b, buyer, "buyer@example.com", "correct horse battery");
    r = http_json(buyer, "POST", shop_url(b, "/cart/items"), "{\"product_id\": 2, \"quantity\": 3}");
    cr_assert_eq(r->status, 201, "%ld %s", r->status, r->body);
    http_resp_free(r);
    r = get(a, "/products/2", NULL);
    long stock = (long)json_integer_value(json_object_get(r->json, "stock"));
    http_resp_free(r);
    r = http_json(buyer, "POST", shop_url(b, "/checkout"), NULL);
    cr_assert_eq(r->status, 201, "%ld %s", r->status, r->body);
    http_resp_free(r);
    r = get(a, "/products", after);
    cr_expect_eq(r->status, 200);
    json_t *list = r->json;
    size_t i;
    json_t *p;
    long now = -1;
    json_array_foreach(list, i, p) if (json_integer_value(json_object_get(p, "id")) == 2) now =
        (long)json_integer_value(json_object_get(p, "stock"));
    cr_expect_eq(now, stock - 3, "stock %ld after buying 3 of %ld", now, stock);
    http_resp_free(r);
    http_client_free(buyer);
    free(before);
    free(after);
}

/* The inventory's product cards are kept per catalog version: they still carry
 * each visitor's own CSRF token, and follow a change made on another shopd. */
static char *first_csrf(const char *html)
{
    const char *p = html ? strstr(html, "name=\"csrf_token\" value=\"") : NULL;
    cr_assert_not_null(p, "no CSRF token in the page");
    p += strlen("name=\"csrf_token\" value=\"");
    return strndup(p, 64);
}

static int count_of(const char *html, const char *needle)
{
    int n = 0;
    for (const char *p = html; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

Test(catalog_etag, kept_inventory_cards_carry_each_visitors_token_and_follow_changes)
{
    struct http_client *ann = http_client_new(), *bob = http_client_new();
    shop_register_login(a, ann, "ann@example.com", "correct horse battery");
    shop_register_login(a, bob, "bob@example.com", "correct horse battery");
    char *tokens[2];
    struct http_client *who[2] = {ann, bob};
    for (int i = 0; i < 2; i++) {
        struct http_resp *r =
            http_request(who[i], "GET", shop_url(a, "/browser/inventory"), NULL, NULL, NULL);
        cr_assert_eq(r->status, 200);
        tokens[i] = first_csrf(r->body);
        /* Every form of the page carries this visitor's token, none another's. */
        char *needle = xasprintf("value=\"%s\"", tokens[i]);
        cr_expect_eq(count_of(r->body, needle), count_of(r->body, "name=\"csrf_token\""), "%s", r->body);
        free(needle);
        http_resp_free(r);
    }
    cr_expect_str_neq(tokens[0], tokens[1], "two visitors got the same token from the kept cards");
    /* Ann's token works for Ann and not for Bob. */
    char *body = xasprintf("csrf_token=%s&product_id=1&quantity=1", tokens[0]);
    struct http_resp *r = http_request(ann, "POST", shop_url(a, "/browser/cart/add"),
                                       "application/x-www-form-urlencoded", body, NULL);
    cr_expect_eq(r->status, 303);
    http_resp_free(r);
    r = http_request(bob, "POST", shop_url(a, "/browser/cart/add"), "application/x-www-form-urlencoded", body,
                     NULL);
    cr_expect_eq(r->status, 403);
    http_resp_free(r);
    free(body);
    /* A price changed through the other shopd shows on a's next inventory page. */
    admin_put(b, "/products/1", "{\"price\": 9.75}");
    r = http_request(ann, "GET", shop_url(a, "/browser/inventory"), NULL, NULL, NULL);
    cr_expect(r->body && strstr(r->body, "$9.75") != NULL, "the old price is still shown");
    http_resp_free(r);
    free(tokens[0]);
    free(tokens[1]);
    http_client_free(ann);
    http_client_free(bob);
}
