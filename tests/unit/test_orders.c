/* Reading orders back against a real SQLite file with the shop's schema: one
 * order only for its owner, the newest first with their lines, what a shopper
 * may see of a failed order, and sending a failed order again. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/xalloc.h"
#include "shopd/db.h"
#include "shopd/orders.h"
#include "tests/support/harness.h"
#include "tests/support/test_db.h"

#define A "6730f698-5aef-447a-b91e-fd8e1582bbc7"
#define B "0b8e4f4e-7d1c-4a43-9c55-2f1f3e0d9a10"
#define C "9d2c1b7a-3e4f-4a5b-8c6d-7e8f9a0b1c2d"

static struct test_db tdb;
static struct db *db;

static void add_order(const char *id, int64_t user, const char *status, const char *error)
{
    char *sql =
        xasprintf("INSERT INTO orders (id, user_id, user_email, total_cents, created_at, status, last_error,"
                  " attempts, next_attempt_at, sent_at)"
                  " VALUES ('%s', %lld, 'u%lld@example.com', 1625, '2026-11-26T21:40:00.123Z', '%s', %s,"
                  " 3, 999, %s);"
                  "INSERT INTO order_lines VALUES ('%s', 2, 'Banana', 25, 5);"
                  "INSERT INTO order_lines VALUES ('%s', 1, 'Apple', 50, 30);",
                  id, (long long)user, (long long)user, status, error ? error : "NULL",
                  strcmp(status, "sent") == 0 ? "'2026-11-26T21:40:01.000Z'" : "NULL", id, id);
    cr_assert_eq(db_exec(db, sql), 0);
    free(sql);
}

static void setup(void)
{
    test_db_open(&tdb, "orders");
    db = tdb.db;
    test_db_add_users(db);
    add_order(A, 7, "sent", NULL);
    add_order(B, 7, "failed", "'ValidationException: too big'");
    add_order(C, 8, "pending", NULL);
}

static void teardown(void)
{
    test_db_close(&tdb);
}

TestSuite(orders, .init = setup, .fini = teardown);

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

Test(orders, ids_are_lowercase_uuids)
{
    cr_assert(orders_id_valid(A));
    cr_assert_not(orders_id_valid("6730F698-5AEF-447A-B91E-FD8E1582BBC7"));
    cr_assert_not(orders_id_valid("6730f698-5aef-447a-b91e-fd8e1582bbc"));
    cr_assert_not(orders_id_valid("6730f698x5aef-447a-b91e-fd8e1582bbc7"));
    cr_assert_not(orders_id_valid("' OR 1=1 --"));
    cr_assert_not(orders_id_valid(NULL));
}

Test(orders, one_order_with_its_lines_for_its_owner_only)
{
    json_t *o = NULL;
    cr_assert_eq(orders_get(db, 7, A, &o), OUT_OK);
    cr_assert_str_eq(str(o, "order_id"), A);
    cr_assert_str_eq(str(o, "status"), "sent");
    cr_assert_str_eq(str(o, "sent_at"), "2026-11-26T21:40:01.000Z");
    cr_assert_eq(json_integer_value(json_object_get(o, "total_cents")), 1625);
    json_t *items = json_object_get(o, "items");
    cr_assert_eq(json_array_size(items), 2);
    cr_assert_str_eq(str(json_array_get(items, 0), "name"), "Apple", "lines by product id");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(items, 0), "line_total_cents")), 1500);
    json_decref(o);

    cr_assert_eq(orders_get(db, 8, A, &o), OUT_NOT_FOUND, "another user's order");
    cr_assert_null(o);
    cr_assert_eq(orders_get(db, 7, "00000000-0000-4000-8000-000000000000", &o), OUT_NOT_FOUND);
    cr_assert_eq(orders_get(db, 7, "not-an-id", &o), OUT_NOT_FOUND);
    cr_assert_eq(orders_get(db, 0, C, &o), OUT_OK, "user 0: any user's order (admins)");
    cr_assert_str_eq(str(o, "user_email"), "u8@example.com");
    json_decref(o);
}

Test(orders, lists_are_newest_first_and_limited)
{
    json_t *mine = orders_list(db, 7, 10);
    cr_assert_eq(json_array_size(mine), 2);
    cr_assert_str_eq(str(json_array_get(mine, 0), "order_id"), B);
    cr_assert_eq(json_array_size(json_object_get(json_array_get(mine, 0), "items")), 2,
                 "the limit is on orders");
    json_decref(mine);
    json_t *all = orders_list(db, 0, 2);
    cr_assert_eq(json_array_size(all), 2);
    cr_assert_str_eq(str(json_array_get(all, 0), "order_id"), C);
    cr_assert_str_eq(str(json_array_get(all, 1), "error"), "ValidationException: too big");
    json_decref(all);
}

Test(orders, a_shopper_sees_a_notice_not_the_stored_error)
{
    json_t *o = NULL;
    cr_assert_eq(orders_get(db, 7, B, &o), OUT_OK);
    cr_assert_str_eq(str(o, "error"), "ValidationException: too big", "admins read it");
    orders_for_shopper(o);
    cr_assert(json_is_null(json_object_get(o, "error")));
    cr_assert_str_eq(str(o, "notice"), ORDERS_FAILED_NOTICE);
    cr_assert_null(json_object_get(o, "user_email"));
    cr_assert_null(json_object_get(o, "attempts"));
    json_decref(o);
    cr_assert_eq(orders_get(db, 7, A, &o), OUT_OK);
    orders_for_shopper(o);
    cr_assert_null(json_object_get(o, "notice"), "a sent order has no notice");
    json_decref(o);
}

Test(orders, only_a_failed_order_is_sent_again)
{
    cr_assert_eq(orders_retry(db, B), OUT_OK);
    json_t *o = NULL;
    cr_assert_eq(orders_get(db, 0, B, &o), OUT_OK);
    cr_assert_str_eq(str(o, "status"), "pending");
    cr_assert_eq(json_integer_value(json_object_get(o, "attempts")), 0);
    cr_assert_str_eq(str(o, "error"), "ValidationException: too big", "kept for the admins until sent");
    json_decref(o);
    cr_assert_eq(test_db_int(db, "SELECT next_attempt_at FROM orders WHERE id = '" B "'"), 0, "due at once");

    cr_assert_eq(orders_retry(db, B), OUT_CONFLICT, "pending now");
    cr_assert_eq(orders_retry(db, A), OUT_CONFLICT, "sent");
    cr_assert_eq(orders_retry(db, C), OUT_CONFLICT, "pending");
    cr_assert_eq(orders_retry(db, "00000000-0000-4000-8000-000000000000"), OUT_NOT_FOUND);
    cr_assert_eq(orders_retry(db, "nonsense"), OUT_NOT_FOUND);
}
