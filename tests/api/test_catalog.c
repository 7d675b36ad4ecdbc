/* The catalog over real HTTP against a real shopd: searching, sorting and
 * paging GET /products (by page number and by cursor, the cursor staying right
 * while products come and go), ids that are never handed out twice (also in a
 * database written by the previous schema), deleted products leaving orders
 * intact and carts with a note, and prices that changed after a line was put
 * in the cart; and the browser side of each: the product page, the inventory's
 * search form and pages, the notes, and the checkout's review step. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/password.h"
#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/shop.h"
#include "tests/support/shop_client.h"
#include "tests/support/test_database.h"

#define PASSWORD "password123"

static struct shop_server *srv;
static struct http_client *client; /* a shopper */
static struct http_client *admin;  /* admin@example.com */

static void start(void)
{
    srv = shop_start(NULL);
    client = http_client_new();
    admin = http_client_new();
}

static void stop(void)
{
    http_client_free(client);
    http_client_free(admin);
    const char *bad[] = {"AddressSanitizer",   "LeakSanitizer",    "runtime error:",
                         "exited with status", "killed by signal", "did not reply"};
    for (size_t i = 0; srv && i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect(!shop_log_contains(srv->log_path, bad[i]), "shopd's log reports '%s'", bad[i]);
    shop_stop(srv);
}

TestSuite(catalog, .init = start, .fini = stop, .timeout = 90);

/* --- helpers -------------------------------------------------------------- */

static void expect_json_status(struct http_client *c, const char *method, const char *path, const char *body,
                               long status)
{
    struct http_resp *r = shop_send_json(srv, c, method, path, body);
    cr_expect_eq(r->status, status, "%s %s %s: got %ld %s", method, path, body ? body : "", r->status,
                 r->body);
    http_resp_free(r);
}

static void login_admin(void)
{
    shop_register_login(srv, admin, "admin@example.com", PASSWORD);
}

/* Creates a product as the admin and returns its id. */
static int64_t create_product(const char *name, const char *description, int64_t price_cents, int64_t stock)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"description\":\"%s\",\"price_cents\":%lld,\"stock\":%lld}", name,
             description, (long long)price_cents, (long long)stock);
    struct http_resp *r = shop_send_json(srv, admin, "POST", "/products", body);
    cr_assert_eq(r->status, 201, "create %s: %ld %s", name, r->status, r->body);
    int64_t id = json_integer_value(json_object_get(r->json, "id"));
    http_resp_free(r);
    return id;
}

static void set_price(int64_t id, int64_t cents)
{
    char path[64], body[64];
    snprintf(path, sizeof(path), "/products/%lld", (long long)id);
    snprintf(body, sizeof(body), "{\"price_cents\":%lld}", (long long)cents);
    expect_json_status(admin, "PUT", path, body, 200);
}

static void delete_product(int64_t id)
{
    char path[64];
    snprintf(path, sizeof(path), "/products/%lld", (long long)id);
    expect_json_status(admin, "DELETE", path, NULL, 200);
}

/* GETs path (a /products query) and asserts 200 and a JSON array. */
static struct http_resp *list(const char *path)
{
    struct http_resp *r = shop_get(srv, client, path);
    cr_assert_eq(r->status, 200, "GET %s: %ld %s", path, r->status, r->body);
    cr_assert(json_is_array(r->json), "GET %s: not a list: %s", path, r->body);
    return r;
}

/* The ids of a product list, comma-separated, into buf. */
static const char *ids_of(json_t *products, char *buf, size_t len)
{
    size_t i, n = 0;
    json_t *p;
    buf[0] = '\0';
    json_array_foreach(products, i, p)
    {
        n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? "," : "",
                              (long long)json_integer_value(json_object_get(p, "id")));
        if (n >= len)
            break;
    }
    return buf;
}

/* The target of the Link header's rel="next" into buf; false when there is none. */
static bool next_link(struct http_resp *r, char *buf, size_t len)
{
    const char *link = http_resp_header(r, "Link");
    const char *rel = link ? strstr(link, "rel=\"next\"") : NULL;
    if (!rel)
        return false;
    const char *open = rel;
    while (open > link && *open != '<')
        open--;
    const char *close = strchr(open, '>');
    cr_assert(*open == '<' && close && close < rel, "malformed Link: %s", link);
    snprintf(buf, len, "%.*s", (int)(close - open - 1), open + 1);
    return true;
}

static void expect_bad(const char *query, const char *words)
{
    char path[512];
    snprintf(path, sizeof(path), "/products?%s", query);
    struct http_resp *r = shop_get(srv, client, path);
    cr_expect_eq(r->status, 400, "GET %s: %ld %s", path, r->status, r->body);
    const char *m = shop_message(r);
    cr_expect(m && strstr(m, words), "GET %s: message '%s' should name '%s'", path, m ? m : "(none)", words);
    http_resp_free(r);
}

/* Position of text in the page body, or -1. */
static long where(struct http_resp *r, const char *text)
{
    const char *p = r->body ? strstr(r->body, text) : NULL;
    return p ? (long)(p - r->body) : -1;
}

static void expect_html(struct http_resp *r, long status)
{
    cr_expect_eq(r->status, status, "status %ld, expected %ld", r->status, status);
    const char *type = http_resp_header(r, "Content-Type");
    cr_expect(type && strstr(type, "text/html"), "Content-Type %s", type ? type : "(none)");
    shop_expect_contains(r, "</html>");
}

/* --- GET /products ---------------------------------------------------------- */

Test(catalog, products_without_parameters_answer_as_before)
{
    struct http_resp *r = list("/products");
    cr_expect_eq(json_array_size(r->json), 8, "the whole seeded catalog");
    cr_expect_null(http_resp_header(r, "Link"), "no paging without parameters");
    cr_expect_null(http_resp_header(r, "X-Total-Count"));
    char ids[256];
    cr_expect_str_eq(ids_of(r->json, ids, sizeof(ids)), "1,2,3,4,5,6,7,8");
    json_t *p = json_array_get(r->json, 0);
    cr_expect_eq(json_object_size(p), 7, "id, name, description, price, price_cents, stock, image_url");
    http_resp_free(r);
}

Test(catalog, search_matches_name_and_description_in_any_case)
{
    login_admin();
    int64_t id = create_product("Mango", "Tropical and sweet", 250, 5);
    struct http_resp *r = list("/products?q=TROPICAL");
    cr_expect_eq(json_array_size(r->json), 1, "%s", r->body);
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(r->json, 0), "id")), id);
    cr_expect_str_eq(http_resp_header(r, "X-Total-Count"), "1");
    http_resp_free(r);
    r = list("/products?q=aPpLe");
    char ids[256];
    cr_expect_str_eq(ids_of(r->json, ids, sizeof(ids)), "1,6", "Apple and Pineapple by name: %s", r->body);
    http_resp_free(r);
    /* "an" is in Banana, Orange and Mango by name and in Lemon's and Strawberries' descriptions. */
    r = list("/products?q=an&sort=name");
    cr_expect_str_eq(ids_of(r->json, ids, sizeof(ids)), "2,8,9,3,4", "%s", r->body);
    http_resp_free(r);
    /* A form sends spaces as '+'. */
    r = list("/products?q=red+apples");
    cr_expect_str_eq(ids_of(r->json, ids, sizeof(ids)), "1", "%s", r->body);
    http_resp_free(r);
    /* Spaces around the text are not part of it; an empty one matches everything. */
    r = list("/products?q=%20%20mango%20");
    cr_expect_eq(json_array_size(r->json), 1);
    http_resp_free(r);
    r = list("/products?q=");
    cr_expect_eq(json_array_size(r->json), 9);
    http_resp_free(r);
    r = list("/products?q=nothing-like-this");
    cr_expect_eq(json_array_size(r->json), 0);
    cr_expect_str_eq(http_resp_header(r, "X-Total-Count"), "0");
    http_resp_free(r);
    /* LIKE wildcards are plain characters. */
    r = list("/products?q=%25");
    cr_expect_eq(json_array_size(r->json), 0, "%s", r->body);
    http_resp_free(r);
}

Test(catalog, every_sort_order)
{
    login_admin();
    /* Same price as Apple (50) and same name as Banana in other case: ties go by id. */
    create_product("banana", "a second banana", 50, 3);
    const struct {
        const char *sort, *ids;
    } cases[] = {
        {"id", "1,2,3,4,5,6,7,8,9"},    {"-id", "9,8,7,6,5,4,3,2,1"},   {"name", "1,2,9,5,8,3,6,4,7"},
        {"-name", "7,4,6,3,8,5,9,2,1"}, {"price", "2,8,1,9,3,5,4,6,7"}, {"-price", "7,6,4,5,3,9,1,8,2"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[64], ids[256];
        snprintf(path, sizeof(path), "/products?sort=%s", cases[i].sort);
        struct http_resp *r = list(path);
        cr_expect_str_eq(ids_of(r->json, ids, sizeof(ids)), cases[i].ids, "sort=%s", cases[i].sort);
        http_resp_free(r);
    }
}

Test(catalog, pages_by_number_with_links)
{
    struct http_resp *r = list("/products?limit=3&page=2");
    char ids[256];
    cr_expect_str_eq(ids_of(r->json, ids, sizeof(ids)), "4,5,6");
    cr_expect_str_eq(http_resp_header(r, "X-Total-Count"), "8");
    const char *link = http_resp_header(r, "Link");
    cr_assert_not_null(link);
    cr_expect(strstr(link, "</products?limit=3&page=1>; rel=\"first\""), "%s", link);
    cr_expect(strstr(link, "</products?limit=3&page=1>; rel=\"prev\""), "%s", link);
    cr_expect(strstr(link, "</products?limit=3&page=3>; rel=\"next\""), "%s", link);
    cr_expect(strstr(link, "</products?limit=3&page=3>; rel=\"last\""), "%s", link);
    http_resp_free(r);
    r = list("/products?limit=3&page=3");
    cr_expect_str_eq(ids_of(r->json, ids, sizeof(ids)), "7,8");
    cr_expect(!strstr(http_resp_header(r, "Link"), "rel=\"next\""), "the last page has no next");
    http_resp_free(r);
    r = list("/products?limit=3&page=9");
    cr_expect_eq(json_array_size(r->json), 0, "past the end: an empty page");
    http_resp_free(r);
    /* A page without a limit has the default size; the search and sort go into the links. */
    r = list("/products?page=1&sort=-price&q=e");
    cr_expect_eq(json_array_size(r->json), 8);
    link = http_resp_header(r, "Link");
    cr_expect(link && strstr(link, "</products?q=e&sort=-price&limit=20&page=1>; rel=\"first\""), "%s",
              link ? link : "(none)");
    http_resp_free(r);
}

/* Walks every page of /products?<query> by cursor into ids (comma-separated). */
static void walk(const char *first, char *ids, size_t len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s", first);
    size_t n = 0;
    ids[0] = '\0';
    for (int pages = 0; pages < 50; pages++) {
        struct http_resp *r = list(path);
        char part[512];
        ids_of(r->json, part, sizeof(part));
        if (*part)
            n += (size_t)snprintf(ids + n, len - n, "%s%s", n ? "," : "", part);
        bool more = next_link(r, path, sizeof(path));
        if (more) {
            const char *cursor = http_resp_header(r, "X-Next-Cursor");
            cr_expect(cursor && strstr(path, cursor), "X-Next-Cursor is the link's cursor");
        } else {
            cr_expect_null(http_resp_header(r, "X-Next-Cursor"));
        }
        http_resp_free(r);
        if (!more)
            return;
    }
    cr_assert_fail("more than 50 pages");
}

Test(catalog, cursor_walks_every_sort)
{
    const struct {
        const char *query, *ids;
    } cases[] = {
        {"/products?limit=3", "1,2,3,4,5,6,7,8"},
        {"/products?limit=3&sort=-id", "8,7,6,5,4,3,2,1"},
        {"/products?limit=2&sort=name", "1,2,5,8,3,6,4,7"},
        {"/products?limit=3&sort=-name", "7,4,6,3,8,5,2,1"},
        {"/products?limit=3&sort=price", "2,8,1,3,5,4,6,7"},
        {"/products?limit=1&sort=-price", "7,6,4,5,3,1,8,2"},
        {"/products?limit=2&sort=price&q=an", "2,8,3,4"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char ids[512];
        walk(cases[i].query, ids, sizeof(ids));
        cr_expect_str_eq(ids, cases[i].ids, "%s", cases[i].query);
    }
}

Test(catalog, cursor_is_stable_while_products_come_and_go)
{
    login_admin();
    struct http_resp *r = list("/products?sort=price&limit=3");
    char ids[256], next[1024];
    cr_expect_str_eq(ids_of(r->json, ids, sizeof(ids)), "2,8,1");
    cr_assert(next_link(r, next, sizeof(next)));
    http_resp_free(r);
    /* Meanwhile: two cheap products appear before the cursor, the cursor's own
       product and the next one are deleted, one appears after the cursor. */
    create_product("Cheap plum", "", 10, 5);
    create_product("Cheap sloe", "", 15, 5);
    delete_product(1);
    delete_product(3);
    int64_t late = create_product("Late lime", "", 60, 5);
    cr_assert_eq(late, 11);
    r = list(next);
    cr_expect_str_eq(ids_of(r->json, ids, sizeof(ids)), "11,5,4", "%s: %s", next, r->body);
    cr_assert(next_link(r, next, sizeof(next)));
    http_resp_free(r);
    r = list(next);
    cr_expect_str_eq(ids_of(r->json, ids, sizeof(ids)), "6,7");
    cr_expect(!next_link(r, next, sizeof(next)));
    http_resp_free(r);
    /* A page number shifts instead: page 2 now shows Lemon (8) a second time. */
    r = list("/products?sort=price&limit=3&page=2");
    cr_expect_str_eq(ids_of(r->json, ids, sizeof(ids)), "8,11,5");
    http_resp_free(r);
}

Test(catalog, bad_parameters_answer_400_with_a_message)
{
    expect_bad("sort=cheapest", "sort must be one of");
    expect_bad("sort=", "sort");
    expect_bad("sort=NAME", "sort");
    expect_bad("limit=0", "limit must be an integer from 1 to 100");
    expect_bad("limit=101", "limit");
    expect_bad("limit=-1", "limit");
    expect_bad("limit=2.5", "limit");
    expect_bad("limit=ten", "limit");
    expect_bad("limit=", "limit");
    expect_bad("page=0", "page must be");
    expect_bad("page=-2", "page");
    expect_bad("page=1e3", "page");
    expect_bad("page=99999999999999999999", "page");
    expect_bad("cursor=zz", "cursor is not valid");
    expect_bad("cursor=", "cursor");
    expect_bad("cursor=633120696420312078", "cursor"); /* "c1 id 1 x": an id cursor has no other key */
    expect_bad("cursor=633920696420312078", "cursor"); /* "c9 id 1 x": not a version we make */
    expect_bad("page=1&cursor=abcd", "page or cursor");
    char q[260];
    memset(q, 'x', 201);
    q[201] = '\0';
    char query[300];
    snprintf(query, sizeof(query), "q=%s", q);
    expect_bad(query, "q must be at most 200");
    expect_bad("q=a%01b", "control");
    /* A cursor made for one sort is not taken for another. */
    struct http_resp *r = list("/products?sort=price&limit=2");
    const char *cursor = http_resp_header(r, "X-Next-Cursor");
    cr_assert_not_null(cursor);
    snprintf(query, sizeof(query), "sort=name&cursor=%s", cursor);
    expect_bad(query, "sort=price");
    /* With its own sort or none, it continues. */
    snprintf(query, sizeof(query), "/products?cursor=%s&limit=2", cursor);
    http_resp_free(r);
    r = list(query);
    char ids[64];
    cr_expect_str_eq(ids_of(r->json, ids, sizeof(ids)), "1,3");
    http_resp_free(r);
}

/* --- ids ---------------------------------------------------------------------- */

Test(catalog, a_deleted_products_id_is_never_reused)
{
    login_admin();
    int64_t highest = create_product("Quince", "", 120, 4);
    cr_assert_eq(highest, 9);
    delete_product(highest);
    int64_t next = create_product("Medlar", "", 130, 4);
    cr_expect_eq(next, 10, "a new id after deleting the highest one, got %lld", (long long)next);
    struct http_resp *r = shop_get(srv, client, "/products/9");
    cr_expect_eq(r->status, 404, "the old id names nothing");
    http_resp_free(r);
}

/* A database as the previous release (schema version 2) left it. */
static const char *const V2_SCHEMA =
    "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    "  password_hash TEXT NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE sessions (token_hash TEXT PRIMARY KEY, user_id INTEGER REFERENCES users(id) ON DELETE "
    "CASCADE,"
    "  csrf TEXT NOT NULL, flash TEXT, created_at INTEGER NOT NULL, last_seen INTEGER NOT NULL);"
    "CREATE INDEX sessions_user ON sessions(user_id);"
    "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',"
    "  price_cents INTEGER NOT NULL CHECK (price_cents >= 0), stock INTEGER NOT NULL CHECK (stock >= 0),"
    "  image_url TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE TABLE cart_items (user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  product_id INTEGER NOT NULL REFERENCES products(id) ON DELETE CASCADE,"
    "  quantity INTEGER NOT NULL CHECK (quantity > 0), added_at INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, product_id)) WITHOUT ROWID;"
    "CREATE TABLE orders (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
    "  user_id INTEGER NOT NULL REFERENCES users(id), user_email TEXT NOT NULL, total_cents INTEGER NOT NULL,"
    "  currency TEXT NOT NULL DEFAULT 'USD',"
    "  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),"
    "  idempotency_key TEXT, created_at TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER NOT NULL DEFAULT 0, lease_owner TEXT, lease_until INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT, sent_at TEXT, UNIQUE (user_id, idempotency_key));"
    "CREATE INDEX orders_user ON orders(user_id, seq);"
    "CREATE INDEX orders_pending ON orders(next_attempt_at) WHERE status = 'pending';"
    "CREATE TABLE order_lines (order_id TEXT NOT NULL REFERENCES orders(id) ON DELETE CASCADE,"
    "  product_id INTEGER NOT NULL, name TEXT NOT NULL, unit_price_cents INTEGER NOT NULL,"
    "  quantity INTEGER NOT NULL, PRIMARY KEY (order_id, product_id)) WITHOUT ROWID;"
    "CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), checked_at INTEGER NOT NULL);"
    "INSERT INTO health VALUES (1, 0);"
    "PRAGMA user_version = 2;";

Test(catalog, migration_keeps_the_data_and_never_reuses_old_ids)
{
    TEST_DATABASE_ONLY_SQLITE("version 2 was a SQLite file; PostgreSQL starts at the current schema");
    char *dir = harness_tempdir("shop-migrate");
    char *path = xasprintf("%s/shop.db", dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    char *hash = password_hash(PASSWORD);
    char *data = xasprintf(
        "INSERT INTO users VALUES (3, 'old@example.com', '%s', 0);"
        "INSERT INTO products VALUES (1, 'Fig', 'Purple figs', 180, 9, '/static/img/placeholder.svg', 0, 0);"
        "INSERT INTO products VALUES (2, 'Date', 'Sticky dates', 420, 4, '', 0, 0);"
        /* Product 6 and user 5 were deleted; an order still names both. */
        "INSERT INTO cart_items VALUES (3, 2, 2, 0);"
        "INSERT INTO orders (id, user_id, user_email, total_cents, created_at, status)"
        "  VALUES ('00000000-0000-4000-8000-000000000001', 5, 'gone@example.com', 300, "
        "'2024-01-01T00:00:00Z', 'sent');"
        "INSERT INTO order_lines VALUES ('00000000-0000-4000-8000-000000000001', 6, 'Kumquat', 150, 2);"
        "INSERT INTO orders (id, user_id, user_email, total_cents, created_at, status)"
        "  VALUES ('00000000-0000-4000-8000-000000000002', 3, 'old@example.com', 180, "
        "'2024-01-02T00:00:00Z', 'sent');"
        "INSERT INTO order_lines VALUES ('00000000-0000-4000-8000-000000000002', 1, 'Fig', 180, 1);",
        hash);
    free(hash);
    char *err = NULL;
    cr_assert_eq(sqlite3_exec(db, V2_SCHEMA, NULL, NULL, &err), SQLITE_OK, "%s", err ? err : "");
    cr_assert_eq(sqlite3_exec(db, data, NULL, NULL, &err), SQLITE_OK, "%s", err ? err : "");
    free(data);
    sqlite3_close(db);

    shop_stop(srv);
    char *url = xasprintf("DATABASE_URL=sqlite:///%s", path);
    const char *env[] = {url, NULL};
    srv = shop_start(env);

    struct http_resp *r = list("/products");
    char ids[64];
    cr_expect_str_eq(ids_of(r->json, ids, sizeof(ids)), "1,2", "the products are kept and not reseeded");
    json_t *fig = json_array_get(r->json, 0);
    cr_expect_str_eq(json_string_value(json_object_get(fig, "name")), "Fig");
    cr_expect_str_eq(json_string_value(json_object_get(fig, "description")), "Purple figs");
    cr_expect_eq(json_integer_value(json_object_get(fig, "price_cents")), 180);
    cr_expect_eq(json_integer_value(json_object_get(fig, "stock")), 9);
    http_resp_free(r);

    /* The old account logs in and finds its cart (at the price it had) and its order. */
    shop_register_login(srv, client, "old@example.com", PASSWORD);
    r = shop_get(srv, client, "/cart");
    cr_assert_eq(r->status, 200, "%s", r->body);
    json_t *line = json_array_get(json_object_get(r->json, "items"), 0);
    cr_expect_eq(json_integer_value(json_object_get(line, "product_id")), 2, "%s", r->body);
    cr_expect_eq(json_integer_value(json_object_get(line, "quantity")), 2);
    cr_expect_eq(json_integer_value(json_object_get(line, "added_price_cents")), 420);
    cr_expect(json_is_false(json_object_get(line, "price_changed")));
    http_resp_free(r);
    r = shop_get(srv, client, "/orders");
    cr_expect_eq(json_array_size(r->json), 1, "%s", r->body);
    http_resp_free(r);

    /* New ids start above every id an order still names. */
    r = shop_send_json(srv, admin, "POST", "/register",
                       "{\"email\":\"admin@example.com\",\"password\":\"" PASSWORD "\"}");
    cr_assert_eq(r->status, 201, "%s", r->body);
    cr_expect_eq(json_integer_value(json_object_get(r->json, "id")), 6, "user ids continue after 5: %s",
                 r->body);
    http_resp_free(r);
    login_admin();
    cr_expect_eq(create_product("Loquat", "", 90, 3), 7, "product ids continue after 6");

    /* Foreign keys are on again after the migration: deleting a product empties carts. */
    delete_product(2);
    r = shop_get(srv, client, "/cart");
    cr_expect_eq(json_array_size(json_object_get(r->json, "items")), 0, "%s", r->body);
    http_resp_free(r);

    shop_stop(srv);
    srv = shop_start(env); /* and a second start migrates nothing twice */
    r = list("/products");
    cr_expect_str_eq(ids_of(r->json, ids, sizeof(ids)), "1,7");
    http_resp_free(r);
    free(url);
    free(path);
    harness_rmrf(dir);
    free(dir);
}

/* --- deleting products ------------------------------------------------------- */

Test(catalog, deleting_a_product_keeps_orders_and_tells_carts)
{
    login_admin();
    int64_t id = create_product("Passion fruit", "wrinkly when ripe", 95, 20);
    shop_register_login(srv, client, "buyer@example.com", PASSWORD);
    char body[128];
    snprintf(body, sizeof(body), "{\"product_id\":%lld,\"quantity\":2}", (long long)id);
    expect_json_status(client, "POST", "/cart/items", body, 201);
    expect_json_status(client, "POST", "/checkout", NULL, 201);

    struct http_client *other = http_client_new();
    shop_register_login(srv, other, "other@example.com", PASSWORD);
    expect_json_status(other, "POST", "/cart/items", body, 201);
    expect_json_status(other, "POST", "/cart/items", "{\"product_id\":1,\"quantity\":1}", 201);

    delete_product(id);

    struct http_resp *r = shop_get(srv, client, "/orders");
    json_t *items = json_object_get(json_array_get(r->json, 0), "items");
    cr_assert_eq(json_array_size(items), 1, "%s", r->body);
    json_t *line = json_array_get(items, 0);
    cr_expect_str_eq(json_string_value(json_object_get(line, "name")), "Passion fruit");
    cr_expect_eq(json_integer_value(json_object_get(line, "unit_price_cents")), 95);
    cr_expect_eq(json_integer_value(json_object_get(line, "quantity")), 2);
    http_resp_free(r);

    r = shop_get(srv, other, "/cart");
    cr_assert_eq(r->status, 200);
    items = json_object_get(r->json, "items");
    cr_expect_eq(json_array_size(items), 1, "only the deleted product left the cart: %s", r->body);
    json_t *removed = json_object_get(r->json, "removed");
    cr_assert_eq(json_array_size(removed), 1, "%s", r->body);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(removed, 0), "name")), "Passion fruit");
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(removed, 0), "message")),
                     "Passion fruit is no longer sold and was removed from your cart.");
    http_resp_free(r);
    r = shop_get(srv, other, "/cart");
    cr_expect_eq(json_array_size(json_object_get(r->json, "removed")), 0, "said once");
    http_resp_free(r);
    /* The buyer's cart was empty: nothing to tell them. */
    r = shop_get(srv, client, "/cart");
    cr_expect_eq(json_array_size(json_object_get(r->json, "removed")), 0);
    http_resp_free(r);
    http_client_free(other);
}

/* --- price changes --------------------------------------------------------------- */

Test(catalog, cart_marks_changed_prices_and_checkout_asks)
{
    login_admin();
    shop_register_login(srv, client, "prices@example.com", PASSWORD);
    expect_json_status(client, "POST", "/cart/items", "{\"product_id\":1,\"quantity\":2}", 201); /* 50 */
    expect_json_status(client, "POST", "/cart/items", "{\"product_id\":2,\"quantity\":1}", 201); /* 25 */
    set_price(1, 75);

    struct http_resp *r = shop_get(srv, client, "/cart");
    cr_expect(json_is_true(json_object_get(r->json, "prices_changed")), "%s", r->body);
    json_t *apple = json_array_get(json_object_get(r->json, "items"), 0);
    cr_expect_eq(json_integer_value(json_object_get(apple, "price_cents")), 75, "the current price");
    cr_expect_eq(json_integer_value(json_object_get(apple, "added_price_cents")), 50,
                 "the price at add time");
    cr_expect(json_is_true(json_object_get(apple, "price_changed")));
    cr_expect_eq(json_integer_value(json_object_get(apple, "line_total_cents")), 150);
    json_t *banana = json_array_get(json_object_get(r->json, "items"), 1);
    cr_expect(json_is_false(json_object_get(banana, "price_changed")));
    cr_expect_eq(json_integer_value(json_object_get(r->json, "total_cents")), 175);
    http_resp_free(r);

    /* Adding more of the line does not accept the new price on the way. */
    expect_json_status(client, "POST", "/cart/items", "{\"product_id\":1,\"quantity\":1}", 201);
    r = shop_send_json(srv, client, "POST", "/checkout", NULL);
    cr_assert_eq(r->status, 409, "%s", r->body);
    cr_expect(shop_message(r) && strstr(shop_message(r), "Prices changed"), "%s", r->body);
    cr_expect_eq(json_integer_value(json_object_get(r->json, "total_cents")), 250);
    cr_expect(json_real_value(json_object_get(r->json, "total")) == 2.5, "%s", r->body);
    json_t *changed = json_object_get(r->json, "changed");
    cr_assert_eq(json_array_size(changed), 1, "%s", r->body);
    json_t *c = json_array_get(changed, 0);
    cr_expect_eq(json_integer_value(json_object_get(c, "product_id")), 1);
    cr_expect_eq(json_integer_value(json_object_get(c, "old_price_cents")), 50);
    cr_expect_eq(json_integer_value(json_object_get(c, "price_cents")), 75);
    cr_expect_eq(json_integer_value(json_object_get(c, "quantity")), 3);
    http_resp_free(r);
    r = shop_send_json(srv, client, "POST", "/checkout", "{\"accept_price_changes\":false}");
    cr_expect_eq(r->status, 409);
    http_resp_free(r);
    r = shop_send_json(srv, client, "POST", "/checkout", "{\"accept_price_changes\":\"yes\"}");
    cr_expect_eq(r->status, 400, "%s", r->body);
    cr_expect(shop_message(r) && strstr(shop_message(r), "accept_price_changes"));
    http_resp_free(r);
    r = shop_get(srv, client, "/cart");
    cr_expect_eq(json_array_size(json_object_get(r->json, "items")), 2, "the cart is kept");
    http_resp_free(r);
    r = shop_get(srv, client, "/products/1");
    cr_expect_eq(json_integer_value(json_object_get(r->json, "stock")), 100, "no stock taken");
    http_resp_free(r);

    r = shop_send_json(srv, client, "POST", "/checkout", "{\"accept_price_changes\":true}");
    cr_assert_eq(r->status, 201, "%s", r->body);
    cr_expect_eq(json_integer_value(json_object_get(r->json, "total_cents")), 250,
                 "charged at today's prices");
    http_resp_free(r);
    r = shop_get(srv, client, "/orders");
    json_t *line = json_array_get(json_object_get(json_array_get(r->json, 0), "items"), 0);
    cr_expect_eq(json_integer_value(json_object_get(line, "unit_price_cents")), 75);
    http_resp_free(r);
}

Test(catalog, accepted_prices_are_not_asked_again)
{
    login_admin();
    shop_register_login(srv, client, "again@example.com", PASSWORD);
    expect_json_status(client, "POST", "/cart/items", "{\"product_id\":4,\"quantity\":3}", 201);
    set_price(4, 400);
    expect_json_status(admin, "PUT", "/products/4", "{\"stock\":2}", 200);
    /* Accepted, but the stock is short: refused, and the acceptance stays. */
    struct http_resp *r = shop_send_json(srv, client, "POST", "/checkout", "{\"accept_price_changes\":true}");
    cr_expect_eq(r->status, 409);
    cr_expect(shop_message(r) && strstr(shop_message(r), "stock"), "%s", r->body);
    http_resp_free(r);
    r = shop_get(srv, client, "/cart");
    cr_expect(json_is_false(json_object_get(r->json, "prices_changed")), "%s", r->body);
    http_resp_free(r);
    expect_json_status(admin, "PUT", "/products/4", "{\"stock\":10}", 200);
    r = shop_send_json(srv, client, "POST", "/checkout", NULL);
    cr_expect_eq(r->status, 201, "%s", r->body);
    cr_expect_eq(json_integer_value(json_object_get(r->json, "total_cents")), 1200);
    http_resp_free(r);
}

Test(catalog, a_price_back_where_it_was_is_no_change)
{
    login_admin();
    shop_register_login(srv, client, "same@example.com", PASSWORD);
    expect_json_status(client, "POST", "/cart/items", "{\"product_id\":3,\"quantity\":1}", 201);
    set_price(3, 80);
    set_price(3, 75);
    expect_json_status(client, "POST", "/checkout", NULL, 201);
}

/* --- pages ------------------------------------------------------------------------ */

Test(catalog, product_page_shows_the_product_with_an_add_form)
{
    struct http_resp *r = shop_get(srv, client, "/browser/inventory");
    shop_expect_contains(r, "href=\"/browser/products/3\"");
    http_resp_free(r);
    r = shop_get(srv, client, "/browser/products/3");
    expect_html(r, 200);
    shop_expect_contains(r, "<h1 class=\"product-name\">Orange</h1>");
    shop_expect_contains(r, "Juicy oranges, full of vitamin C.");
    shop_expect_contains(r, "$0.75");
    shop_expect_contains(r, "80 in stock");
    shop_expect_contains(r, "src=\"/static/img/orange.svg\"");
    shop_expect_contains(r, "action=\"/browser/cart/add\"");
    shop_expect_contains(r, "<title>Orange");
    char *csrf = shop_field_value(r->body, "csrf_token");
    cr_assert_not_null(csrf);
    cr_expect_eq(strlen(csrf), 64);
    http_resp_free(r);

    /* Adding from it leads back to it, with the outcome. */
    shop_register_login(srv, client, "page@example.com", PASSWORD);
    r = shop_get(srv, client, "/browser/products/3");
    free(csrf);
    csrf = shop_field_value(r->body, "csrf_token");
    http_resp_free(r);
    char *body = xasprintf("csrf_token=%s&product_id=3&quantity=2&return_to=product", csrf);
    r = shop_post_form(srv, client, "/browser/cart/add", body);
    cr_expect_eq(r->status, 303);
    cr_expect_str_eq(http_resp_header(r, "Location"), "/browser/products/3");
    http_resp_free(r);
    free(body);
    r = shop_get(srv, client, "/browser/products/3");
    shop_expect_contains(r, "Added 2");
    http_resp_free(r);
    /* Anything else in return_to goes to the inventory, never elsewhere. */
    body = xasprintf("csrf_token=%s&product_id=3&quantity=1&return_to=https://evil.example/", csrf);
    r = shop_post_form(srv, client, "/browser/cart/add", body);
    cr_expect_str_eq(http_resp_header(r, "Location"), "/browser/inventory#product-3");
    http_resp_free(r);
    free(body);
    free(csrf);

    /* Sold out: no form, and it says so. */
    login_admin();
    expect_json_status(admin, "PUT", "/products/5", "{\"stock\":0}", 200);
    r = shop_get(srv, client, "/browser/products/5");
    expect_html(r, 200);
    shop_expect_contains(r, "Out of stock");
    shop_expect_lacks(r, "action=\"/browser/cart/add\"");
    http_resp_free(r);
}

Test(catalog, unknown_product_page_is_an_html_404)
{
    const char *paths[] = {"/browser/products/999", "/browser/products/0", "/browser/products/abc"};
    for (size_t i = 0; i < 3; i++) {
        struct http_resp *r = shop_get(srv, client, paths[i]);
        expect_html(r, 404);
        shop_expect_contains(r, "Page not found");
        http_resp_free(r);
    }
    login_admin();
    delete_product(8);
    struct http_resp *r = shop_get(srv, client, "/browser/products/8");
    expect_html(r, 404);
    shop_expect_contains(r, "no such product");
    http_resp_free(r);
}

Test(catalog, hostile_product_text_is_escaped_on_its_page)
{
    login_admin();
    int64_t id = create_product("<script>alert(1)</script>", "\\\"><img src=x onerror=alert(2)>", 100, 2);
    char path[64];
    snprintf(path, sizeof(path), "/browser/products/%lld", (long long)id);
    struct http_resp *r = shop_get(srv, client, path);
    expect_html(r, 200);
    shop_expect_lacks(r, "<script>alert");
    shop_expect_lacks(r, "<img src=x");
    shop_expect_contains(r, "&lt;script&gt;alert(1)&lt;/script&gt;");
    http_resp_free(r);
    r = shop_get(srv, client, "/browser/inventory?q=%3Cscript%3E");
    shop_expect_lacks(r, "<script>alert");
    shop_expect_contains(r, "value=\"&lt;script&gt;\"");
    http_resp_free(r);
}

Test(catalog, inventory_searches_sorts_and_pages)
{
    struct http_resp *r = shop_get(srv, client, "/browser/inventory?q=an&sort=price");
    expect_html(r, 200);
    shop_expect_contains(r, "value=\"an\"");
    shop_expect_contains(r, "<option value=\"price\" selected>");
    shop_expect_contains(r, "4 products match");
    /* Banana 0.25, Lemon 0.40, Orange 0.75, Strawberries 3.50; nothing else. */
    long banana = where(r, "id=\"product-2\""), lemon = where(r, "id=\"product-8\""),
         orange = where(r, "id=\"product-3\""), straw = where(r, "id=\"product-4\"");
    cr_expect(banana > 0 && banana < lemon && lemon < orange && orange < straw, "ordered by price");
    shop_expect_lacks(r, "id=\"product-1\"");
    shop_expect_lacks(r, "class=\"pagination\"");
    http_resp_free(r);

    r = shop_get(srv, client, "/browser/inventory?q=durian");
    expect_html(r, 200);
    shop_expect_contains(r, "No product matches &ldquo;durian&rdquo;");
    shop_expect_contains(r, "href=\"/browser/inventory\"");
    shop_expect_lacks(r, "class=\"product\"");
    http_resp_free(r);

    /* 26 products: two pages of 24. */
    login_admin();
    for (int i = 0; i < 18; i++) {
        char name[32];
        snprintf(name, sizeof(name), "Berry %d", i);
        create_product(name, "a berry", 100 + i, 10);
    }
    r = shop_get(srv, client, "/browser/inventory?sort=-id");
    expect_html(r, 200);
    shop_expect_contains(r, "Page 1 of 2");
    shop_expect_contains(r, "href=\"/browser/inventory?sort=-id&amp;page=2\"");
    shop_expect_lacks(r, "rel=\"prev\"");
    shop_expect_contains(r, "id=\"product-26\"");
    shop_expect_lacks(r, "id=\"product-2\"");
    http_resp_free(r);
    r = shop_get(srv, client, "/browser/inventory?sort=-id&page=2");
    expect_html(r, 200);
    shop_expect_contains(r, "Page 2 of 2");
    shop_expect_contains(r, "id=\"product-2\"");
    shop_expect_contains(r, "id=\"product-1\"");
    shop_expect_lacks(r, "id=\"product-3\"");
    shop_expect_contains(r, "href=\"/browser/inventory?sort=-id&amp;page=1\"");
    shop_expect_lacks(r, "rel=\"next\"");
    http_resp_free(r);
    r = shop_get(srv, client, "/browser/inventory?q=berry&page=1");
    shop_expect_contains(r, "18 products match");
    shop_expect_lacks(r, "class=\"pagination\"");
    http_resp_free(r);
    r = shop_get(srv, client, "/browser/inventory?page=3");
    expect_html(r, 404);
    http_resp_free(r);
}

Test(catalog, inventory_refuses_bad_parameters_with_an_html_page)
{
    const char *paths[] = {"/browser/inventory?sort=cheapest", "/browser/inventory?page=0",
                           "/browser/inventory?page=two", "/browser/inventory?q=a%01"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct http_resp *r = shop_get(srv, client, paths[i]);
        expect_html(r, 400);
        shop_expect_contains(r, "cannot be shown that way");
        http_resp_free(r);
    }
    /* The form's empty choices are no error. */
    struct http_resp *r = shop_get(srv, client, "/browser/inventory?q=&sort=");
    expect_html(r, 200);
    shop_expect_contains(r, "id=\"product-8\"");
    http_resp_free(r);
}

Test(catalog, removed_products_are_told_once_on_the_next_page)
{
    login_admin();
    shop_register_login(srv, client, "told@example.com", PASSWORD);
    expect_json_status(client, "POST", "/cart/items", "{\"product_id\":6,\"quantity\":1}", 201);
    expect_json_status(client, "POST", "/cart/items", "{\"product_id\":7,\"quantity\":1}", 201);
    delete_product(6);
    struct http_resp *r = shop_get(srv, client, "/browser/inventory");
    expect_html(r, 200);
    shop_expect_contains(r, "Pineapple is no longer sold and was removed from your cart.");
    http_resp_free(r);
    r = shop_get(srv, client, "/browser/cart");
    shop_expect_lacks(r, "Pineapple");
    shop_expect_contains(r, "Watermelon");
    http_resp_free(r);
    delete_product(7);
    r = shop_get(srv, client, "/browser/cart");
    shop_expect_contains(r, "Watermelon is no longer sold and was removed from your cart.");
    shop_expect_contains(r, "Your cart is empty");
    http_resp_free(r);
    r = shop_get(srv, client, "/browser/cart");
    shop_expect_lacks(r, "no longer sold");
    http_resp_free(r);
}

Test(catalog, browser_checkout_confirms_changed_prices_first)
{
    login_admin();
    shop_register_login(srv, client, "review@example.com", PASSWORD);
    expect_json_status(client, "POST", "/cart/items", "{\"product_id\":5,\"quantity\":2}", 201); /* 2.99 */
    set_price(5, 349);
    struct http_resp *r = shop_get(srv, client, "/browser/cart");
    expect_html(r, 200);
    shop_expect_contains(r, "<del class=\"old-price\">$2.99</del>");
    shop_expect_contains(r, "<strong class=\"new-price\">$3.49</strong>");
    shop_expect_contains(r, "id=\"prices-changed\"");
    shop_expect_contains(r, "$6.98");
    char *csrf = shop_field_value(r->body, "csrf_token");
    char *token = shop_field_value(r->body, "checkout_token");
    cr_assert(csrf && token);
    http_resp_free(r);

    char *body = xasprintf("csrf_token=%s&checkout_token=%s", csrf, token);
    r = shop_post_form(srv, client, "/browser/checkout", body);
    cr_expect_eq(r->status, 303);
    cr_expect_str_eq(http_resp_header(r, "Location"), "/browser/checkout/review");
    http_resp_free(r);
    free(body);
    r = shop_get(srv, client, "/browser/orders");
    shop_expect_contains(r, "You have not ordered anything yet");
    http_resp_free(r);

    r = shop_get(srv, client, "/browser/checkout/review");
    expect_html(r, 200);
    shop_expect_contains(r, "Prices changed");
    shop_expect_contains(r, "<del>$2.99</del>");
    shop_expect_contains(r, "<strong>$3.49</strong>");
    shop_expect_contains(r, "price went up");
    shop_expect_contains(r, "Confirm and check out · $6.98");
    char *review_token = shop_field_value(r->body, "checkout_token");
    char *total = shop_field_value(r->body, "accept_total_cents");
    cr_assert(review_token && total);
    cr_expect_str_eq(total, "698");
    http_resp_free(r);

    /* The price moves again before the button is pressed: asked again. */
    set_price(5, 399);
    body = xasprintf("csrf_token=%s&checkout_token=%s&accept_total_cents=%s", csrf, review_token, total);
    r = shop_post_form(srv, client, "/browser/checkout", body);
    cr_expect_eq(r->status, 303);
    cr_expect_str_eq(http_resp_header(r, "Location"), "/browser/checkout/review");
    http_resp_free(r);
    free(body);
    r = shop_get(srv, client, "/browser/checkout/review");
    shop_expect_contains(r, "Prices changed again");
    shop_expect_contains(r, "$7.98");
    free(total);
    free(review_token);
    review_token = shop_field_value(r->body, "checkout_token");
    total = shop_field_value(r->body, "accept_total_cents");
    http_resp_free(r);

    body = xasprintf("csrf_token=%s&checkout_token=%s&accept_total_cents=bogus", csrf, review_token);
    r = shop_post_form(srv, client, "/browser/checkout", body);
    cr_expect_str_eq(http_resp_header(r, "Location"), "/browser/checkout/review");
    http_resp_free(r);
    free(body);

    body = xasprintf("csrf_token=%s&checkout_token=%s&accept_total_cents=%s", csrf, review_token, total);
    r = shop_post_form(srv, client, "/browser/checkout", body);
    cr_expect_eq(r->status, 303);
    const char *loc = http_resp_header(r, "Location");
    cr_assert(loc && strncmp(loc, "/browser/checkout?order=", 24) == 0, "%s", loc ? loc : "(none)");
    char *loc_copy = strdup(loc);
    http_resp_free(r);
    /* A second click on the button names the same order. */
    r = shop_post_form(srv, client, "/browser/checkout", body);
    cr_expect_eq(r->status, 303);
    cr_expect_str_eq(http_resp_header(r, "Location"), loc_copy);
    http_resp_free(r);
    free(body);
    free(loc_copy);
    r = shop_get(srv, client, "/orders");
    cr_assert_eq(json_array_size(r->json), 1, "%s", r->body);
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(r->json, 0), "total_cents")), 798);
    http_resp_free(r);
    /* Nothing left to review. */
    r = shop_get(srv, client, "/browser/checkout/review");
    cr_expect_eq(r->status, 303);
    cr_expect_str_eq(http_resp_header(r, "Location"), "/browser/cart");
    http_resp_free(r);
    free(total);
    free(review_token);
    free(token);
    free(csrf);
}
