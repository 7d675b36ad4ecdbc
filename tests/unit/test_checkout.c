/* Checkout against a real SQLite file with the shop's schema: an order from
 * the cart at today's prices with its lines, stock taken and the cart emptied
 * in one transaction, one order per idempotency key, no oversell (also with
 * several processes checking out at once on their own connections), refusing
 * and accepting changed prices, and an empty cart. Carts and products are set
 * up through cart.h and catalog.h, as the routes do. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/xalloc.h"
#include "shopd/cart.h"
#include "shopd/catalog.h"
#include "shopd/checkout.h"
#include "shopd/db.h"
#include "tests/support/harness.h"
#include "tests/support/test_db.h"

static struct test_db tdb;
static struct db *db;
static int64_t apple, pear;
static char msg[256];

static void add(int64_t user, int64_t id, int64_t qty)
{
    cr_assert_eq(cart_add(db, user, id, qty, msg, sizeof(msg)), OUT_OK, "%s", msg);
}

static int64_t stock_of(int64_t id)
{
    json_t *p = NULL;
    cr_assert_eq(catalog_get(db, id, &p), OUT_OK);
    int64_t n = json_integer_value(json_object_get(p, "stock"));
    json_decref(p);
    return n;
}

static int64_t count(const char *sql)
{
    return test_db_int(db, sql);
}

static void setup(void)
{
    test_db_open(&tdb, "checkout");
    db = tdb.db;
    test_db_add_users(db);
    apple = test_db_product(db, "Apple", 50, 10);
    pear = test_db_product(db, "Pear", 125, 3);
    msg[0] = '\0';
}

static void teardown(void)
{
    test_db_close(&tdb);
}

TestSuite(checkout, .init = setup, .fini = teardown);

Test(checkout, an_order_takes_the_cart_and_its_stock)
{
    add(7, apple, 3);
    add(7, pear, 2);
    struct checkout_result r;
    cr_assert_eq(checkout_place(db, 7, NULL, false, &r, msg, sizeof(msg)), OUT_OK, "%s", msg);
    cr_assert_eq(strlen(r.order_id), 36);
    cr_assert_eq(r.total_cents, 400);
    cr_assert_str_eq(r.status, "pending");
    cr_assert_not(r.replayed);
    cr_assert_null(r.changed);
    cr_assert_eq(stock_of(apple), 7);
    cr_assert_eq(stock_of(pear), 1);
    cr_assert_eq(cart_count(db, 7), 0);

    json_t *orders = checkout_orders(db, 7);
    cr_assert_eq(json_array_size(orders), 1);
    json_t *o = json_array_get(orders, 0);
    cr_assert_str_eq(json_string_value(json_object_get(o, "order_id")), r.order_id);
    cr_assert_eq(json_integer_value(json_object_get(o, "total_cents")), 400);
    cr_assert_str_eq(json_string_value(json_object_get(o, "status")), "pending");
    cr_assert_str_eq(json_string_value(json_object_get(o, "currency")), "USD");
    cr_assert(json_is_null(json_object_get(o, "error")));
    json_t *items = json_object_get(o, "items");
    cr_assert_eq(json_array_size(items), 2);
    json_t *a = json_array_get(items, 0);
    cr_assert_eq(json_integer_value(json_object_get(a, "product_id")), apple);
    cr_assert_str_eq(json_string_value(json_object_get(a, "name")), "Apple");
    cr_assert_eq(json_integer_value(json_object_get(a, "unit_price_cents")), 50);
    cr_assert_eq(json_integer_value(json_object_get(a, "quantity")), 3);
    cr_assert_eq(json_integer_value(json_object_get(a, "line_total_cents")), 150);
    json_decref(orders);
    /* Another user's cart and orders are untouched. */
    orders = checkout_orders(db, 8);
    cr_assert_eq(json_array_size(orders), 0);
    json_decref(orders);
}

Test(checkout, orders_come_newest_first)
{
    struct checkout_result first, second;
    add(7, apple, 1);
    cr_assert_eq(checkout_place(db, 7, NULL, false, &first, msg, sizeof(msg)), OUT_OK, "%s", msg);
    add(7, pear, 1);
    cr_assert_eq(checkout_place(db, 7, NULL, false, &second, msg, sizeof(msg)), OUT_OK, "%s", msg);
    cr_assert_str_neq(first.order_id, second.order_id);
    json_t *orders = checkout_orders(db, 7);
    cr_assert_eq(json_array_size(orders), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(orders, 0), "order_id")),
                     second.order_id);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(orders, 1), "order_id")),
                     first.order_id);
    json_decref(orders);
}

Test(checkout, an_empty_cart_places_nothing)
{
    struct checkout_result r;
    cr_assert_eq(checkout_place(db, 7, NULL, false, &r, msg, sizeof(msg)), OUT_CONFLICT);
    cr_assert_str_eq(msg, "Cart is empty");
    cr_assert_eq(count("SELECT count(*) FROM orders"), 0);
    /* An empty cart with a key does not burn the key. */
    cr_assert_eq(checkout_place(db, 7, "k-empty", false, &r, msg, sizeof(msg)), OUT_CONFLICT);
    add(7, apple, 1);
    cr_assert_eq(checkout_place(db, 7, "k-empty", false, &r, msg, sizeof(msg)), OUT_OK, "%s", msg);
    cr_assert_not(r.replayed);
}

Test(checkout, one_order_per_idempotency_key)
{
    add(7, apple, 2);
    struct checkout_result a, b, found;
    cr_assert_eq(checkout_place(db, 7, "order-1", false, &a, msg, sizeof(msg)), OUT_OK, "%s", msg);
    cr_assert_not(a.replayed);
    /* A double submit, even with a new cart meanwhile, answers the first order. */
    add(7, pear, 1);
    cr_assert_eq(checkout_place(db, 7, "order-1", false, &b, msg, sizeof(msg)), OUT_OK, "%s", msg);
    cr_assert(b.replayed);
    cr_assert_str_eq(b.order_id, a.order_id);
    cr_assert_eq(b.total_cents, 100);
    cr_assert_str_eq(b.status, "pending");
    cr_assert_eq(count("SELECT count(*) FROM orders"), 1);
    cr_assert_eq(stock_of(apple), 8);
    cr_assert_eq(stock_of(pear), 3);
    cr_assert_eq(cart_count(db, 7), 1);
    cr_assert_eq(checkout_find(db, 7, "order-1", &found), 1);
    cr_assert_str_eq(found.order_id, a.order_id);
    cr_assert(found.replayed);
    cr_assert_eq(checkout_find(db, 7, "order-2", &found), 0);
}

Test(checkout, keys_belong_to_their_user)
{
    add(7, apple, 1);
    add(8, apple, 1);
    struct checkout_result a, b, found;
    cr_assert_eq(checkout_place(db, 7, "same-key", false, &a, msg, sizeof(msg)), OUT_OK, "%s", msg);
    cr_assert_eq(checkout_find(db, 8, "same-key", &found), 0);
    cr_assert_eq(checkout_place(db, 8, "same-key", false, &b, msg, sizeof(msg)), OUT_OK, "%s", msg);
    cr_assert_not(b.replayed);
    cr_assert_str_neq(a.order_id, b.order_id);
}

Test(checkout, malformed_keys_are_refused_before_anything_happens)
{
    add(7, apple, 1);
    struct checkout_result r;
    char long_key[CHECKOUT_MAX_KEY + 2];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    const char *bad[] = {"", "has space", "tab\tkey", "caf\xc3\xa9", long_key};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(checkout_place(db, 7, bad[i], false, &r, msg, sizeof(msg)), OUT_INVALID, "key %zu", i);
        cr_expect_str_eq(msg, "Idempotency-Key must be 1 to 128 printable characters");
        cr_expect_eq(checkout_find(db, 7, bad[i], &r), 0);
    }
    cr_assert_eq(count("SELECT count(*) FROM orders"), 0);
    cr_assert_eq(cart_count(db, 7), 1);
    long_key[CHECKOUT_MAX_KEY] = '\0';
    cr_assert_eq(checkout_place(db, 7, long_key, false, &r, msg, sizeof(msg)), OUT_OK, "%s", msg);
}

Test(checkout, missing_stock_refuses_the_whole_order)
{
    add(7, apple, 2);
    add(7, pear, 3);
    add(8, pear, 2);
    struct checkout_result r;
    cr_assert_eq(checkout_place(db, 8, NULL, false, &r, msg, sizeof(msg)), OUT_OK, "%s", msg);
    cr_assert_eq(stock_of(pear), 1);
    /* User 7's cart now asks for more pears than are left: nothing is taken,
       not even the apples, and the cart stays for the shopper to fix. */
    cr_assert_eq(checkout_place(db, 7, NULL, false, &r, msg, sizeof(msg)), OUT_CONFLICT);
    cr_assert_str_eq(msg, "Not enough stock for Pear: 1 left");
    cr_assert_eq(stock_of(apple), 10);
    cr_assert_eq(stock_of(pear), 1);
    cr_assert_eq(cart_count(db, 7), 5);
    cr_assert_eq(count("SELECT count(*) FROM orders WHERE user_id = 7"), 0);
    cr_assert_eq(count("SELECT count(*) FROM order_lines"), 1);
}

Test(checkout, a_changed_price_is_refused_until_accepted)
{
    add(7, apple, 2);
    add(7, pear, 1);
    test_db_set_price(db, apple, 80);
    struct checkout_result r;
    cr_assert_eq(checkout_place(db, 7, NULL, false, &r, msg, sizeof(msg)), OUT_CONFLICT);
    cr_assert_str_eq(msg, "Prices changed since you added an item to your cart");
    cr_assert_not_null(r.changed);
    cr_assert_eq(json_array_size(r.changed), 1);
    json_t *c = json_array_get(r.changed, 0);
    cr_assert_eq(json_integer_value(json_object_get(c, "product_id")), apple);
    cr_assert_eq(json_integer_value(json_object_get(c, "old_price_cents")), 50);
    cr_assert_eq(json_integer_value(json_object_get(c, "price_cents")), 80);
    cr_assert_eq(json_integer_value(json_object_get(c, "quantity")), 2);
    cr_assert_eq(r.total_cents, 285);
    json_decref(r.changed);
    cr_assert_eq(stock_of(apple), 10);
    cr_assert_eq(cart_count(db, 7), 3);
    cr_assert_eq(count("SELECT count(*) FROM orders"), 0);

    cr_assert_eq(checkout_place(db, 7, NULL, true, &r, msg, sizeof(msg)), OUT_OK, "%s", msg);
    cr_assert_null(r.changed);
    cr_assert_eq(r.total_cents, 285);
    char *sql =
        xasprintf("SELECT unit_price_cents FROM order_lines WHERE product_id = %lld", (long long)apple);
    cr_assert_eq(count(sql), 80);
    free(sql);
}

Test(checkout, accepted_prices_in_the_cart_let_checkout_through)
{
    add(7, apple, 2);
    add(7, pear, 1);
    test_db_set_price(db, apple, 80);
    test_db_set_price(db, pear, 100);
    struct checkout_result r;
    cr_assert_eq(checkout_place(db, 7, NULL, false, &r, msg, sizeof(msg)), OUT_CONFLICT);
    cr_assert_str_eq(msg, "Prices changed since you added some items to your cart");
    cr_assert_eq(json_array_size(r.changed), 2);
    json_decref(r.changed);
    cr_assert_eq(cart_accept_prices(db, 7, 260, msg, sizeof(msg)), OUT_OK, "%s", msg);
    cr_assert_eq(checkout_place(db, 7, NULL, false, &r, msg, sizeof(msg)), OUT_OK, "%s", msg);
    cr_assert_eq(r.total_cents, 260);
}

Test(checkout, a_cheaper_price_asks_too)
{
    add(7, apple, 2);
    test_db_set_price(db, apple, 40);
    struct checkout_result r;
    cr_assert_eq(checkout_place(db, 7, NULL, false, &r, msg, sizeof(msg)), OUT_CONFLICT);
    cr_assert_eq(r.total_cents, 80);
    json_decref(r.changed);
}

/* Each child opens its own connection, as each worker does, and exits 0 for
   an order, 1 for a refusal, 2 for anything else. */
static int child_checkout(int64_t user)
{
    char err[256], m[256];
    struct db *own = db_open(&tdb.target, err, sizeof(err));
    if (!own)
        return 2;
    struct checkout_result r;
    enum outcome o = checkout_place(own, user, NULL, false, &r, m, sizeof(m));
    db_close(own);
    return o == OUT_OK ? 0 : o == OUT_CONFLICT ? 1 : 2;
}

Test(checkout, concurrent_checkouts_never_oversell)
{
    enum { SHOPPERS = 8 };
    int64_t last = test_db_product(db, "Last ones", 999, 5);
    for (int i = 0; i < SHOPPERS; i++) {
        char *sql = xasprintf("INSERT INTO users (id, email, password_hash, created_at)"
                              " VALUES (%d, 's%d@example.com', 'x', 0)",
                              100 + i, i);
        cr_assert_eq(db_exec(db, sql), 0);
        free(sql);
        add(100 + i, last, 1);
    }
    pid_t pids[SHOPPERS];
    for (int i = 0; i < SHOPPERS; i++) {
        pids[i] = fork();
        cr_assert_neq(pids[i], -1);
        if (pids[i] == 0)
            _exit(child_checkout(100 + i));
    }
    int placed = 0, refused = 0;
    for (int i = 0; i < SHOPPERS; i++) {
        int status = 0;
        cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
        cr_assert(WIFEXITED(status));
        int code = WEXITSTATUS(status);
        cr_assert_neq(code, 2, "shopper %d failed", i);
        placed += code == 0;
        refused += code == 1;
    }
    cr_assert_eq(placed, 5);
    cr_assert_eq(refused, SHOPPERS - 5);
    cr_assert_eq(stock_of(last), 0);
    cr_assert_eq(count("SELECT count(*) FROM orders"), 5);
    cr_assert_eq(count("SELECT coalesce(sum(quantity), 0) FROM order_lines"), 5);
    cr_assert_eq(count("SELECT count(*) FROM cart_items"), SHOPPERS - 5);
}

Test(checkout, a_cart_of_many_lines_is_ordered_whole)
{
    /* More lines than any fixed buffer one might size for a cart: every line
       is ordered and paid, or none; none is emptied from the cart unordered. */
    cr_assert_eq(db_exec(db,
                         "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 600)"
                         " INSERT INTO products (name, price_cents, stock, created_at, updated_at)"
                         " SELECT 'Item ' || x, 1, 1, 0, 0 FROM n;"
                         "INSERT INTO cart_items (user_id, product_id, quantity, added_at, unit_price_cents)"
                         " SELECT 7, id, 1, 0, 1 FROM products WHERE name LIKE 'Item %'"),
                 0);
    cr_assert_eq(cart_count(db, 7), 600);
    struct checkout_result r;
    cr_assert_eq(checkout_place(db, 7, NULL, false, &r, msg, sizeof(msg)), OUT_OK, "%s", msg);
    cr_assert_eq(r.total_cents, 600);
    cr_assert_eq(count("SELECT count(*) FROM order_lines"), 600);
    cr_assert_eq(count("SELECT coalesce(sum(stock), -1) FROM products WHERE name LIKE 'Item %'"), 0);
    cr_assert_eq(cart_count(db, 7), 0);
}
