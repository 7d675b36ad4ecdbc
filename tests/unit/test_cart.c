/* The cart against a real SQLite file with the shop's schema: adding, setting
 * and removing lines, the limits on quantities and stock, the price a line was
 * added at beside today's, accepting changed prices, and the notes a deleted
 * product leaves in the carts it was in, and adds of one shopper's on several
 * connections at once, each counted, never past the stock. Products are made
 * and changed through catalog.h, as the admin pages do. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/xalloc.h"
#include "shopd/cart.h"
#include "shopd/catalog.h"
#include "shopd/db.h"
#include "tests/support/harness.h"
#include "tests/support/test_db.h"

static struct test_db tdb;
static struct db *db;
static int64_t apple, pear;
static char msg[256];

static void setup(void)
{
    test_db_open(&tdb, "cart");
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

TestSuite(cart, .init = setup, .fini = teardown);

static json_t *line(json_t *view, size_t i)
{
    return json_array_get(json_object_get(view, "items"), i);
}

static json_int_t num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_integer(v), "%s is not an integer", key);
    return json_integer_value(v);
}

Test(cart, a_new_cart_is_empty)
{
    json_t *v = cart_view(db, 7);
    cr_assert_not_null(v);
    cr_assert_eq(json_array_size(json_object_get(v, "items")), 0);
    cr_assert_eq(num(v, "total_cents"), 0);
    cr_assert_eq(num(v, "count"), 0);
    cr_assert(json_is_false(json_object_get(v, "prices_changed")));
    cr_assert_eq(cart_count(db, 7), 0);
    json_decref(v);
}

Test(cart, lines_show_prices_quantities_and_totals)
{
    cr_assert_eq(cart_add(db, 7, apple, 3, msg, sizeof(msg)), OUT_OK, "%s", msg);
    cr_assert_eq(cart_add(db, 7, pear, 2, msg, sizeof(msg)), OUT_OK, "%s", msg);
    json_t *v = cart_view(db, 7);
    cr_assert_eq(json_array_size(json_object_get(v, "items")), 2);
    json_t *a = line(v, 0), *p = line(v, 1);
    cr_assert_eq(num(a, "product_id"), apple);
    cr_assert_str_eq(json_string_value(json_object_get(a, "name")), "Apple");
    cr_assert_eq(num(a, "price_cents"), 50);
    cr_assert_eq(num(a, "quantity"), 3);
    cr_assert_eq(num(a, "line_total_cents"), 150);
    cr_assert_eq(num(a, "stock"), 10);
    cr_assert_eq(num(p, "line_total_cents"), 250);
    cr_assert_eq(json_real_value(json_object_get(p, "price")), 1.25);
    cr_assert_eq(num(v, "total_cents"), 400);
    cr_assert_eq(json_real_value(json_object_get(v, "total")), 4.0);
    cr_assert_eq(num(v, "count"), 5);
    cr_assert_eq(cart_count(db, 7), 5);
    json_decref(v);
}

Test(cart, carts_are_per_user)
{
    cr_assert_eq(cart_add(db, 7, apple, 3, msg, sizeof(msg)), OUT_OK);
    cr_assert_eq(cart_count(db, 8), 0);
    cr_assert_eq(cart_set(db, 8, apple, 1, msg, sizeof(msg)), OUT_NOT_FOUND);
    cr_assert_eq(cart_remove(db, 8, apple), OUT_NOT_FOUND);
    cr_assert_eq(cart_count(db, 7), 3);
}

Test(cart, adding_again_adds_to_the_line)
{
    cr_assert_eq(cart_add(db, 7, apple, 3, msg, sizeof(msg)), OUT_OK);
    cr_assert_eq(cart_add(db, 7, apple, 4, msg, sizeof(msg)), OUT_OK);
    json_t *v = cart_view(db, 7);
    cr_assert_eq(json_array_size(json_object_get(v, "items")), 1);
    cr_assert_eq(num(line(v, 0), "quantity"), 7);
    json_decref(v);
}

Test(cart, bad_quantities_are_refused_with_a_message)
{
    cr_assert_eq(cart_add(db, 7, apple, 0, msg, sizeof(msg)), OUT_INVALID);
    cr_assert_str_eq(msg, "quantity must be a positive integer");
    cr_assert_eq(cart_add(db, 7, apple, -1, msg, sizeof(msg)), OUT_INVALID);
    cr_assert_eq(cart_add(db, 7, apple, CART_MAX_QUANTITY + 1, msg, sizeof(msg)), OUT_INVALID);
    cr_assert_eq(cart_add(db, 7, apple, INT64_MAX, msg, sizeof(msg)), OUT_INVALID);
    cr_assert_eq(cart_add(db, 7, apple, 2, msg, sizeof(msg)), OUT_OK);
    cr_assert_eq(cart_set(db, 7, apple, -1, msg, sizeof(msg)), OUT_INVALID);
    cr_assert_eq(cart_set(db, 7, apple, CART_MAX_QUANTITY + 1, msg, sizeof(msg)), OUT_INVALID);
    cr_assert_eq(cart_count(db, 7), 2);
}

Test(cart, unknown_products_are_not_found)
{
    cr_assert_eq(cart_add(db, 7, 9999, 1, msg, sizeof(msg)), OUT_NOT_FOUND);
    cr_assert_str_eq(msg, "Product not found");
    cr_assert_eq(cart_add(db, 7, 0, 1, msg, sizeof(msg)), OUT_NOT_FOUND);
    cr_assert_eq(cart_add(db, 7, -5, 1, msg, sizeof(msg)), OUT_NOT_FOUND);
    cr_assert_eq(cart_set(db, 7, 9999, 1, msg, sizeof(msg)), OUT_NOT_FOUND);
    cr_assert_eq(cart_count(db, 7), 0);
}

Test(cart, no_more_than_in_stock)
{
    cr_assert_eq(cart_add(db, 7, pear, 4, msg, sizeof(msg)), OUT_CONFLICT);
    cr_assert_str_eq(msg, "Only 3 of Pear in stock");
    cr_assert_eq(cart_add(db, 7, pear, 3, msg, sizeof(msg)), OUT_OK);
    /* What the cart already holds counts. */
    cr_assert_eq(cart_add(db, 7, pear, 1, msg, sizeof(msg)), OUT_CONFLICT);
    cr_assert_eq(cart_set(db, 7, pear, 4, msg, sizeof(msg)), OUT_CONFLICT);
    cr_assert_eq(cart_count(db, 7), 3);
    /* Another shopper's cart does not reserve stock. */
    cr_assert_eq(cart_add(db, 8, pear, 3, msg, sizeof(msg)), OUT_OK);
}

Test(cart, set_changes_a_line_and_zero_removes_it)
{
    cr_assert_eq(cart_set(db, 7, apple, 2, msg, sizeof(msg)), OUT_NOT_FOUND);
    cr_assert_str_eq(msg, "Product not in cart");
    cr_assert_eq(cart_add(db, 7, apple, 5, msg, sizeof(msg)), OUT_OK);
    cr_assert_eq(cart_set(db, 7, apple, 2, msg, sizeof(msg)), OUT_OK);
    cr_assert_eq(cart_count(db, 7), 2);
    cr_assert_eq(cart_set(db, 7, apple, 0, msg, sizeof(msg)), OUT_OK);
    cr_assert_eq(cart_count(db, 7), 0);
    cr_assert_eq(cart_set(db, 7, apple, 0, msg, sizeof(msg)), OUT_NOT_FOUND);
}

Test(cart, remove_takes_one_line)
{
    cr_assert_eq(cart_add(db, 7, apple, 1, msg, sizeof(msg)), OUT_OK);
    cr_assert_eq(cart_add(db, 7, pear, 1, msg, sizeof(msg)), OUT_OK);
    cr_assert_eq(cart_remove(db, 7, apple), OUT_OK);
    cr_assert_eq(cart_remove(db, 7, apple), OUT_NOT_FOUND);
    json_t *v = cart_view(db, 7);
    cr_assert_eq(json_array_size(json_object_get(v, "items")), 1);
    cr_assert_eq(num(line(v, 0), "product_id"), pear);
    json_decref(v);
}

Test(cart, a_line_keeps_the_price_it_was_added_at)
{
    cr_assert_eq(cart_add(db, 7, apple, 2, msg, sizeof(msg)), OUT_OK);
    test_db_set_price(db, apple, 80);
    /* Adding more does not silently accept the new price. */
    cr_assert_eq(cart_add(db, 7, apple, 1, msg, sizeof(msg)), OUT_OK);
    json_t *v = cart_view(db, 7);
    json_t *a = line(v, 0);
    cr_assert_eq(num(a, "price_cents"), 80);
    cr_assert_eq(num(a, "added_price_cents"), 50);
    cr_assert(json_is_true(json_object_get(a, "price_changed")));
    cr_assert(json_is_true(json_object_get(v, "prices_changed")));
    /* The total is what checkout charges: today's price. */
    cr_assert_eq(num(v, "total_cents"), 240);
    json_decref(v);
}

Test(cart, accepting_prices_stores_todays)
{
    cr_assert_eq(cart_add(db, 7, apple, 2, msg, sizeof(msg)), OUT_OK);
    cr_assert_eq(cart_add(db, 8, apple, 1, msg, sizeof(msg)), OUT_OK);
    test_db_set_price(db, apple, 80);
    cr_assert_eq(cart_accept_prices(db, 7, -1, msg, sizeof(msg)), OUT_OK, "%s", msg);
    json_t *v = cart_view(db, 7);
    cr_assert_eq(num(line(v, 0), "added_price_cents"), 80);
    cr_assert(json_is_false(json_object_get(line(v, 0), "price_changed")));
    cr_assert(json_is_false(json_object_get(v, "prices_changed")));
    json_decref(v);
    /* Only that shopper's cart. */
    v = cart_view(db, 8);
    cr_assert_eq(num(line(v, 0), "added_price_cents"), 50);
    json_decref(v);
}

Test(cart, accepting_at_a_total_that_changed_again_changes_nothing)
{
    cr_assert_eq(cart_add(db, 7, apple, 2, msg, sizeof(msg)), OUT_OK);
    test_db_set_price(db, apple, 80);
    /* The shopper saw 160, then the price moved on to 90. */
    test_db_set_price(db, apple, 90);
    cr_assert_eq(cart_accept_prices(db, 7, 160, msg, sizeof(msg)), OUT_CONFLICT);
    cr_assert_str_eq(msg, "Prices changed again");
    json_t *v = cart_view(db, 7);
    cr_assert_eq(num(line(v, 0), "added_price_cents"), 50);
    json_decref(v);
    cr_assert_eq(cart_accept_prices(db, 7, 180, msg, sizeof(msg)), OUT_OK, "%s", msg);
    v = cart_view(db, 7);
    cr_assert_eq(num(line(v, 0), "added_price_cents"), 90);
    json_decref(v);
}

Test(cart, a_deleted_product_leaves_its_carts_with_one_note_each)
{
    cr_assert_eq(cart_add(db, 7, pear, 1, msg, sizeof(msg)), OUT_OK);
    cr_assert_eq(cart_add(db, 7, apple, 1, msg, sizeof(msg)), OUT_OK);
    cr_assert_eq(cart_add(db, 8, pear, 2, msg, sizeof(msg)), OUT_OK);
    json_t *n = cart_take_notices(db, 7);
    cr_assert_eq(json_array_size(n), 0);
    json_decref(n);
    cr_assert_eq(catalog_delete(db, pear), OUT_OK);
    json_t *v = cart_view(db, 7);
    cr_assert_eq(json_array_size(json_object_get(v, "items")), 1);
    cr_assert_eq(num(line(v, 0), "product_id"), apple);
    json_decref(v);
    cr_assert_eq(cart_count(db, 8), 0);
    n = cart_take_notices(db, 7);
    cr_assert_eq(json_array_size(n), 1);
    json_t *note = json_array_get(n, 0);
    cr_assert_eq(num(note, "product_id"), pear);
    cr_assert_str_eq(json_string_value(json_object_get(note, "name")), "Pear");
    cr_assert_str_eq(json_string_value(json_object_get(note, "message")),
                     "Pear is no longer sold and was removed from your cart.");
    json_decref(n);
    /* Each note is shown once. */
    n = cart_take_notices(db, 7);
    cr_assert_eq(json_array_size(n), 0);
    json_decref(n);
    n = cart_take_notices(db, 8);
    cr_assert_eq(json_array_size(n), 1);
    json_decref(n);
}

Test(cart, a_product_in_no_cart_leaves_no_note)
{
    cr_assert_eq(cart_add(db, 7, apple, 1, msg, sizeof(msg)), OUT_OK);
    cr_assert_eq(catalog_delete(db, pear), OUT_OK);
    json_t *n = cart_take_notices(db, 7);
    cr_assert_eq(json_array_size(n), 0);
    json_decref(n);
}

/* Each child adds one unit ROUNDS times on its own connection, as each worker
   does, and exits with how many adds were accepted (255: a failure). */
static int child_adds(int64_t product, int rounds)
{
    char err[256], m[256];
    struct db *own = db_open(&tdb.target, err, sizeof(err));
    if (!own)
        return 255;
    int accepted = 0;
    for (int i = 0; i < rounds; i++) {
        enum outcome o = cart_add(own, 7, product, 1, m, sizeof(m));
        if (o == OUT_OK)
            accepted++;
        else if (o != OUT_CONFLICT)
            accepted = 255 - rounds; /* an error, whatever else happens */
    }
    db_close(own);
    return accepted > rounds ? 255 : accepted;
}

/* Sums what CHILDREN children adding ROUNDS units each had accepted. */
static int concurrent_adds(int64_t product, int children, int rounds)
{
    pid_t pids[16];
    cr_assert(children <= 16);
    for (int i = 0; i < children; i++) {
        pids[i] = fork();
        cr_assert_neq(pids[i], -1);
        if (pids[i] == 0)
            _exit(child_adds(product, rounds));
    }
    int accepted = 0;
    for (int i = 0; i < children; i++) {
        int status = 0;
        cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
        cr_assert(WIFEXITED(status));
        cr_assert_neq(WEXITSTATUS(status), 255, "child %d failed", i);
        accepted += WEXITSTATUS(status);
    }
    return accepted;
}

Test(cart, adds_at_once_on_several_connections_all_count)
{
    int64_t plenty = test_db_product(db, "Plenty", 10, 1000);
    cr_assert_eq(concurrent_adds(plenty, 6, 20), 120);
    cr_assert_eq(cart_count(db, 7), 120, "no add was lost to another");
}

Test(cart, adds_at_once_never_pass_the_stock)
{
    int64_t few = test_db_product(db, "Few", 10, 7);
    cr_assert_eq(concurrent_adds(few, 6, 5), 7);
    cr_assert_eq(cart_count(db, 7), 7);
}
