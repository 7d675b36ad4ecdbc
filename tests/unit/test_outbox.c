/* The outbox queries against a real SQLite file with the shop's schema: claim
 * with a lease, lease expiry and takeover, renew, sent, retry, park, release. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/xalloc.h"
#include "shopd/db.h"
#include "shopd/outbox.h"
#include "tests/support/harness.h"
#include "tests/support/test_database.h"
#include "tests/support/test_db.h"

#define NOW 1800000000
#define LEASE 30

static struct test_db tdb;
static struct db *db;

static void setup(void)
{
    test_db_open(&tdb, "outbox");
    db = tdb.db;
    cr_assert_eq(db_exec(db, "INSERT INTO users (id, email, password_hash, created_at)"
                             " VALUES (7, 'buyer@example.com', 'x', 0)"),
                 0);
}

static void teardown(void)
{
    test_db_close(&tdb);
}

TestSuite(outbox, .init = setup, .fini = teardown);

/* An order with two lines, due at next_attempt_at. */
static void add_order(const char *id, int64_t next_attempt_at)
{
    char *sql =
        xasprintf("INSERT INTO orders (id, user_id, user_email, total_cents, created_at, next_attempt_at)"
                  " VALUES ('%s', 7, 'buyer@example.com', 1625, '2026-11-26T21:40:00.123Z', %lld);"
                  "INSERT INTO order_lines VALUES ('%s', 2, 'Banana', 25, 5);"
                  "INSERT INTO order_lines VALUES ('%s', 1, 'Apple', 50, 30);",
                  id, (long long)next_attempt_at, id, id);
    cr_assert_eq(db_exec(db, sql), 0);
    free(sql);
}

/* One text column of order id (caller frees), "(null)" for NULL. */
static char *column(const char *id, const char *col)
{
    char *sql = xasprintf("SELECT %s FROM orders WHERE id = '%s'", col, id);
    char *out = test_db_text(db, sql);
    free(sql);
    return out;
}

static void assert_column(const char *id, const char *col, const char *want)
{
    char *got = column(id, col);
    cr_assert_str_eq(got, want, "order %s: %s is %s, expected %s", id, col, got, want);
    free(got);
}

static int claim(const char *owner, int64_t now, size_t max, struct outbox_order **out)
{
    int n = outbox_claim(db, owner, now, LEASE, max, out);
    cr_assert_geq(n, 0);
    return n;
}

Test(outbox, claim_returns_due_orders_with_lines_and_sets_the_lease)
{
    add_order("order-a", 0);
    struct outbox_order *o;
    cr_assert_eq(claim("A", NOW, 10, &o), 1);
    cr_assert_str_eq(o[0].id, "order-a");
    cr_assert_eq(o[0].user_id, 7);
    cr_assert_str_eq(o[0].user_email, "buyer@example.com");
    cr_assert_eq(o[0].total_cents, 1625);
    cr_assert_str_eq(o[0].currency, "USD");
    cr_assert_str_eq(o[0].created_at, "2026-11-26T21:40:00.123Z");
    cr_assert_eq(o[0].attempts, 0);
    cr_assert_eq(o[0].lease_until, NOW + LEASE);
    cr_assert_eq(o[0].nlines, 2);
    /* Lines come by product id, whatever the insertion order. */
    cr_assert_eq(o[0].lines[0].product_id, 1);
    cr_assert_str_eq(o[0].lines[0].name, "Apple");
    cr_assert_eq(o[0].lines[0].unit_price_cents, 50);
    cr_assert_eq(o[0].lines[0].quantity, 30);
    cr_assert_eq(o[0].lines[1].product_id, 2);
    cr_assert_eq(o[0].lines[1].quantity, 5);
    outbox_orders_free(o, 1);
    assert_column("order-a", "lease_owner", "A");
    assert_column("order-a", "status", "pending");
}

Test(outbox, a_leased_order_is_not_claimed_twice_until_the_lease_expires)
{
    add_order("order-a", 0);
    struct outbox_order *o;
    cr_assert_eq(claim("A", NOW, 10, &o), 1);
    outbox_orders_free(o, 1);
    cr_assert_eq(claim("B", NOW, 10, &o), 0);
    cr_assert_null(o);
    cr_assert_eq(claim("B", NOW + LEASE - 1, 10, &o), 0, "lease still running one second before expiry");
    /* The owner died: once the lease has run out another dispatcher takes over. */
    cr_assert_eq(claim("B", NOW + LEASE + 1, 10, &o), 1);
    outbox_orders_free(o, 1);
    assert_column("order-a", "lease_owner", "B");
    /* The old owner can no longer renew, retry, park or release it. */
    cr_assert_eq(outbox_renew(db, "order-a", "A", NOW + 100), 0);
    cr_assert_eq(outbox_schedule_retry(db, "order-a", "A", NOW + 100, "late"), 0);
    cr_assert_eq(outbox_mark_failed(db, "order-a", "A", "late"), 0);
    cr_assert_eq(outbox_release(db, "order-a", "A"), 0);
    assert_column("order-a", "lease_owner", "B");
    assert_column("order-a", "status", "pending");
    assert_column("order-a", "attempts", "0");
}

Test(outbox, claim_respects_the_batch_size_and_age_order)
{
    char id[32];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "order-%d", i);
        add_order(id, 0);
    }
    struct outbox_order *o;
    cr_assert_eq(claim("A", NOW, 3, &o), 3);
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof(id), "order-%d", i);
        cr_assert_str_eq(o[i].id, id, "oldest first");
    }
    outbox_orders_free(o, 3);
    cr_assert_eq(claim("B", NOW, 10, &o), 2, "the rest goes to the next claimer");
    cr_assert_str_eq(o[0].id, "order-3");
    outbox_orders_free(o, 2);
    cr_assert_eq(claim("C", NOW, 0, &o), 0, "max 0 claims nothing");
    cr_assert_null(o);
}

Test(outbox, orders_not_yet_due_wait)
{
    add_order("later", NOW + 10);
    struct outbox_order *o;
    cr_assert_eq(claim("A", NOW, 10, &o), 0);
    cr_assert_eq(claim("A", NOW + 10, 10, &o), 1);
    outbox_orders_free(o, 1);
}

Test(outbox, sent_orders_are_never_claimed_again)
{
    add_order("order-a", 0);
    struct outbox_order *o;
    cr_assert_eq(claim("A", NOW, 10, &o), 1);
    outbox_orders_free(o, 1);
    cr_assert_eq(outbox_mark_sent(db, "order-a", NOW), 1);
    assert_column("order-a", "status", "sent");
    assert_column("order-a", "sent_at", "2027-01-15T08:00:00Z");
    assert_column("order-a", "lease_owner", "(null)");
    cr_assert_eq(outbox_mark_sent(db, "order-a", NOW), 0, "a second mark changes nothing");
    cr_assert_eq(claim("B", NOW + 1000, 10, &o), 0);
    cr_assert_eq(outbox_pending_count(db), 0);
}

Test(outbox, a_send_after_the_lease_ran_out_is_still_recorded)
{
    /* A took too long, B took over; A's write did reach DynamoDB, so it counts
     * (B's own send will then meet the condition and find it there). */
    add_order("order-a", 0);
    struct outbox_order *o;
    cr_assert_eq(claim("A", NOW, 10, &o), 1);
    outbox_orders_free(o, 1);
    cr_assert_eq(claim("B", NOW + LEASE + 1, 10, &o), 1);
    outbox_orders_free(o, 1);
    cr_assert_eq(outbox_mark_sent(db, "order-a", NOW + LEASE + 2), 1);
    assert_column("order-a", "status", "sent");
    cr_assert_eq(outbox_schedule_retry(db, "order-a", "B", NOW + 100, "x"), 0, "B cannot undo a delivery");
    assert_column("order-a", "status", "sent");
}

Test(outbox, retry_counts_the_attempt_keeps_the_error_and_waits)
{
    add_order("order-a", 0);
    struct outbox_order *o;
    cr_assert_eq(claim("A", NOW, 10, &o), 1);
    outbox_orders_free(o, 1);
    cr_assert_eq(outbox_schedule_retry(db, "order-a", "A", NOW + 8, "ThrottlingException: slow down"), 1);
    assert_column("order-a", "status", "pending");
    assert_column("order-a", "attempts", "1");
    assert_column("order-a", "next_attempt_at", "1800000008");
    assert_column("order-a", "last_error", "ThrottlingException: slow down");
    assert_column("order-a", "lease_owner", "(null)");
    cr_assert_eq(claim("B", NOW + 7, 10, &o), 0, "not before next_attempt_at");
    cr_assert_eq(claim("B", NOW + 8, 10, &o), 1);
    cr_assert_eq(o[0].attempts, 1);
    outbox_orders_free(o, 1);
    /* The next success clears the error shown in /orders. */
    cr_assert_eq(outbox_mark_sent(db, "order-a", NOW + 9), 1);
    assert_column("order-a", "last_error", "(null)");
}

Test(outbox, parked_orders_keep_the_error_and_are_never_claimed)
{
    add_order("order-a", 0);
    struct outbox_order *o;
    cr_assert_eq(claim("A", NOW, 10, &o), 1);
    outbox_orders_free(o, 1);
    cr_assert_eq(outbox_mark_failed(db, "order-a", "A", "ValidationException: Item size has exceeded"), 1);
    assert_column("order-a", "status", "failed");
    assert_column("order-a", "last_error", "ValidationException: Item size has exceeded");
    assert_column("order-a", "lease_owner", "(null)");
    cr_assert_eq(claim("A", NOW + 100000, 10, &o), 0);
    cr_assert_eq(outbox_mark_sent(db, "order-a", NOW), 0, "a parked order stays parked");
    cr_assert_eq(outbox_pending_count(db), 0);
}

Test(outbox, release_gives_the_order_back_without_counting_an_attempt)
{
    add_order("order-a", 0);
    add_order("order-b", 0);
    struct outbox_order *o;
    cr_assert_eq(claim("A", NOW, 10, &o), 2);
    outbox_orders_free(o, 2);
    cr_assert_eq(outbox_release(db, "order-a", "A"), 1);
    assert_column("order-a", "attempts", "0");
    cr_assert_eq(claim("B", NOW, 10, &o), 1, "released at once, not after the lease");
    cr_assert_str_eq(o[0].id, "order-a");
    outbox_orders_free(o, 1);
    cr_assert_eq(outbox_release_all(db, "A"), 1, "only A's remaining lease (order-b)");
    cr_assert_eq(outbox_release_all(db, "A"), 0);
    assert_column("order-b", "lease_owner", "(null)");
    assert_column("order-a", "lease_owner", "B");
}

Test(outbox, renew_extends_only_the_owners_lease)
{
    add_order("order-a", 0);
    struct outbox_order *o;
    cr_assert_eq(claim("A", NOW, 10, &o), 1);
    outbox_orders_free(o, 1);
    cr_assert_eq(outbox_renew(db, "order-a", "A", NOW + 100), 1);
    cr_assert_eq(claim("B", NOW + LEASE + 1, 10, &o), 0, "renewed lease still runs");
    cr_assert_eq(outbox_renew(db, "order-a", "B", NOW + 200), 0);
    cr_assert_eq(outbox_renew(db, "no-such-order", "A", NOW + 200), 0);
    cr_assert_eq(claim("B", NOW + 101, 10, &o), 1);
    outbox_orders_free(o, 1);
}

Test(outbox, an_order_without_lines_is_claimed_with_none)
{
    cr_assert_eq(db_exec(db, "INSERT INTO orders (id, user_id, user_email, total_cents, created_at)"
                             " VALUES ('empty', 7, 'buyer@example.com', 0, '2026-11-26T21:40:00Z')"),
                 0);
    struct outbox_order *o;
    cr_assert_eq(claim("A", NOW, 10, &o), 1);
    cr_assert_eq(o[0].nlines, 0);
    cr_assert_null(o[0].lines);
    outbox_orders_free(o, 1);
    outbox_orders_free(NULL, 0);
}

Test(outbox, claim_fails_cleanly_when_the_database_is_locked)
{
    TEST_DATABASE_ONLY_SQLITE("PostgreSQL has no database-wide write lock: claims skip locked rows instead");
    add_order("order-a", 0);
    /* Another connection holds SQLite's write lock for longer than the claim
       waits for it (DB_BUSY_TIMEOUT_MS). */
    char err[256];
    struct db *other = db_open(&tdb.target, err, sizeof(err));
    cr_assert_not_null(other, "%s", err);
    cr_assert_eq(db_begin_write(other), 0);
    struct outbox_order *o = (struct outbox_order *)1;
    cr_assert_eq(outbox_claim(db, "A", NOW, LEASE, 10, &o), -1);
    cr_assert_null(o);
    cr_assert_eq(db_error(db), DB_ERR_BUSY);
    db_rollback(other);
    db_close(other);
    cr_assert_eq(claim("A", NOW, 10, &o), 1, "nothing was claimed by the failed attempt");
    outbox_orders_free(o, 1);
}
