/* The database layer itself (db.h), on the engine SHOP_TEST_DATABASE names:
 * writes sent with db_send inside a write transaction are seen by the next
 * statement and kept by db_commit; one that fails makes db_commit fail and
 * nothing of the transaction stays, and the connection works on afterwards;
 * db_rollback drops sent writes; a transaction longer than any pipeline keeps
 * every write; a statement first prepared in a transaction that failed before
 * it ran is made again when used later; a transaction whose commit need not
 * wait for the disk is whole like any other, and the next one waits again. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shopd/db.h"
#include "tests/support/test_db.h"

static struct test_db tdb;
static struct db *db;

static const char SQL_ADD_PRODUCT[] =
    "INSERT INTO products (name, price_cents, stock, created_at, updated_at)"
    " VALUES ($1, $2, $3, 0, 0)";
static const char SQL_COUNT_NAMED[] = "SELECT count(*) FROM products WHERE name = $1";
/* Used first only in prepared_after_failure, after a write that fails. */
static const char SQL_STOCK_NAMED[] = "SELECT coalesce(sum(stock), -1) FROM products WHERE name = $1";

static void setup(void)
{
    test_db_open(&tdb, "db");
    db = tdb.db;
}

static void teardown(void)
{
    test_db_close(&tdb);
}

TestSuite(db, .init = setup, .fini = teardown);

static int send_product(const char *name, int64_t stock)
{
    struct db_stmt *st = db_stmt(db, SQL_ADD_PRODUCT);
    db_bind_text(st, 1, name);
    db_bind_int64(st, 2, 100);
    db_bind_int64(st, 3, stock);
    return db_send(st);
}

static int64_t named(const char *sql, const char *name)
{
    struct db_stmt *st = db_stmt(db, sql);
    db_bind_text(st, 1, name);
    cr_assert_eq(db_step(st), DB_ROW, "%s: %s", sql, db_errmsg(db));
    int64_t n = db_column_int64(st, 0);
    db_done(st);
    return n;
}

Test(db, sent_writes_are_seen_in_the_transaction_and_kept)
{
    cr_assert_eq(db_begin_write(db), 0, "%s", db_errmsg(db));
    cr_assert_eq(send_product("sent-a", 1), 0);
    cr_assert_eq(send_product("sent-a", 2), 0);
    cr_assert_eq(named(SQL_COUNT_NAMED, "sent-a"), 2, "the next statement sees what was sent");
    cr_assert_eq(send_product("sent-a", 3), 0);
    cr_assert_eq(db_commit(db), 0, "%s", db_errmsg(db));
    cr_assert_eq(test_db_int(db, "SELECT count(*) FROM products WHERE name = 'sent-a'"), 3);
    cr_assert_eq(test_db_int(db, "SELECT sum(stock) FROM products WHERE name = 'sent-a'"), 6);
}

Test(db, a_failed_send_fails_the_commit_and_keeps_nothing)
{
    cr_assert_eq(db_begin_write(db), 0);
    cr_assert_eq(send_product("doomed", 1), 0);
    send_product("doomed", -1); /* CHECK (stock >= 0): may fail now (SQLite) or at commit */
    send_product("doomed", 2);
    cr_assert_eq(db_commit(db), -1, "a transaction with a failed write must not commit");
    cr_assert_neq(db_error(db), DB_ERR_NONE);
    db_rollback(db);
    cr_assert_eq(test_db_int(db, "SELECT count(*) FROM products WHERE name = 'doomed'"), 0);

    /* The connection goes on working. */
    cr_assert_eq(db_begin_write(db), 0, "%s", db_errmsg(db));
    cr_assert_eq(send_product("after", 5), 0);
    cr_assert_eq(db_commit(db), 0, "%s", db_errmsg(db));
    cr_assert_eq(test_db_int(db, "SELECT stock FROM products WHERE name = 'after'"), 5);
}

Test(db, rollback_drops_sent_writes)
{
    cr_assert_eq(db_begin_write(db), 0);
    cr_assert_eq(send_product("dropped", 1), 0);
    cr_assert_eq(send_product("dropped", 2), 0);
    db_rollback(db);
    cr_assert_eq(test_db_int(db, "SELECT count(*) FROM products WHERE name = 'dropped'"), 0);
    cr_assert_eq(named(SQL_COUNT_NAMED, "dropped"), 0, "and statements run again");
}

Test(db, a_long_transaction_keeps_every_write)
{
    cr_assert_eq(db_begin_write(db), 0);
    for (int i = 0; i < 300; i++)
        cr_assert_eq(send_product("many", i), 0, "write %d: %s", i, db_errmsg(db));
    cr_assert_eq(db_commit(db), 0, "%s", db_errmsg(db));
    cr_assert_eq(test_db_int(db, "SELECT count(*) FROM products WHERE name = 'many'"), 300);
    cr_assert_eq(test_db_int(db, "SELECT sum(stock) FROM products WHERE name = 'many'"), 299 * 300 / 2);
}

Test(db, a_statement_skipped_by_a_failure_is_prepared_again)
{
    cr_assert_eq(db_begin_write(db), 0);
    send_product("skip", -1); /* fails */
    struct db_stmt *st = db_stmt(db, SQL_STOCK_NAMED);
    db_bind_text(st, 1, "skip");
    db_step(st); /* PostgreSQL: the transaction is aborted, it does not run; SQLite: it runs */
    db_done(st);
    db_rollback(db);
    cr_assert_eq(named(SQL_STOCK_NAMED, "skip"), -1, "%s", db_errmsg(db));
    cr_assert_eq(db_begin_write(db), 0);
    cr_assert_eq(send_product("skip", 4), 0);
    cr_assert_eq(named(SQL_STOCK_NAMED, "skip"), 4, "%s", db_errmsg(db));
    cr_assert_eq(db_commit(db), 0, "%s", db_errmsg(db));
}

/* PostgreSQL's setting inside the current transaction ("" on SQLite). */
static char *commit_setting(void)
{
    if (db_engine(db) != DB_POSTGRES)
        return test_db_text(db, "SELECT ''");
    struct db_stmt *st = db_stmt(db, "SELECT current_setting('synchronous_commit')");
    cr_assert_eq(db_step(st), DB_ROW, "%s", db_errmsg(db));
    char *v = strdup(db_column_text(st, 0));
    db_done(st);
    return v;
}

Test(db, an_unsynced_transaction_is_whole_and_ends_with_its_commit)
{
    /* The test server itself does not sync: this connection does. */
    if (db_engine(db) == DB_POSTGRES)
        cr_assert_eq(db_exec(db, "SET synchronous_commit = on"), 0);
    char *before = commit_setting();
    cr_assert_eq(db_begin_write_unsynced(db), 0, "%s", db_errmsg(db));
    cr_assert_eq(send_product("unsynced", 1), 0);
    char *inside = commit_setting();
    if (db_engine(db) == DB_POSTGRES)
        cr_assert_str_eq(inside, "off", "the commit does not wait for the disk");
    cr_assert_eq(db_commit(db), 0, "%s", db_errmsg(db));
    char *after = commit_setting();
    cr_assert_str_eq(after, before, "the next transaction waits for the disk again");
    if (db_engine(db) == DB_POSTGRES)
        cr_assert_str_eq(after, "on");

    char err[256];
    struct db *other = db_open(&tdb.target, err, sizeof(err));
    cr_assert_not_null(other, "%s", err);
    struct db_stmt *st = db_stmt(other, SQL_COUNT_NAMED);
    db_bind_text(st, 1, "unsynced");
    cr_assert_eq(db_step(st), DB_ROW);
    cr_assert_eq(db_column_int64(st, 0), 1, "another connection sees the commit");
    db_done(st);
    db_close(other);

    cr_assert_eq(db_begin_write_unsynced(db), 0);
    cr_assert_eq(send_product("unsynced", 2), 0);
    db_rollback(db);
    cr_assert_eq(test_db_int(db, "SELECT count(*) FROM products WHERE name = 'unsynced'"), 1);
    free(before);
    free(inside);
    free(after);
}

/* What the commit of the open transaction waits for: SQLite's PRAGMA
   synchronous (1 NORMAL, 2 FULL), PostgreSQL's synchronous_commit. */
static char *durability(void)
{
    const char *sql =
        db_engine(db) == DB_POSTGRES ? "SELECT current_setting('synchronous_commit')" : "PRAGMA synchronous";
    struct db_stmt *st = db_stmt(db, sql);
    cr_assert_eq(db_step(st), DB_ROW, "%s", db_errmsg(db));
    char *v = strdup(db_column_text(st, 0));
    db_done(st);
    return v;
}

Test(db, a_durable_transaction_waits_for_the_disk_and_a_cart_one_does_not)
{
    bool pg = db_engine(db) == DB_POSTGRES;
    if (pg) /* the test server itself does not sync: this connection does */
        cr_assert_eq(db_exec(db, "SET synchronous_commit = on"), 0);
    cr_assert_eq(db_begin_write(db), 0, "%s", db_errmsg(db));
    char *v = durability();
    cr_expect_str_eq(v, pg ? "on" : "2", "an order's commit must reach the disk");
    free(v);
    cr_assert_eq(send_product("durable", 1), 0);
    cr_assert_eq(db_commit(db), 0, "%s", db_errmsg(db));
    cr_assert_eq(db_begin_write_unsynced(db), 0, "%s", db_errmsg(db));
    v = durability();
    cr_expect_str_eq(v, pg ? "off" : "1", "a cart's commit need not wait");
    free(v);
    db_rollback(db);
    cr_assert_eq(db_begin_write(db), 0, "%s", db_errmsg(db));
    db_rollback(db);
    v = durability();
    cr_expect_str_eq(v, pg ? "on" : "1", "the connection keeps its own setting outside");
    free(v);
}

/* --- queued statements (db_queue) ----------------------------------------- */

static const char SQL_TAKE_NAMED[] = "UPDATE products SET stock = stock - $2 WHERE name = $1 AND stock >= $2"
                                     " RETURNING stock";
static const char SQL_NAMES_LIKE[] = "SELECT name, stock FROM products WHERE name LIKE $1 ORDER BY name";

Test(db, queued_statements_answer_in_order_and_see_each_other)
{
    cr_assert_eq(db_begin_write(db), 0, "%s", db_errmsg(db));
    cr_assert_eq(send_product("queued-a", 5), 0);
    cr_assert_eq(send_product("queued-b", 1), 0);
    struct db_stmt *take = db_stmt(db, SQL_TAKE_NAMED);
    db_bind_text(take, 1, "queued-a");
    db_bind_int64(take, 2, 2);
    cr_assert_eq(db_queue(take), 0, "%s", db_errmsg(db));
    struct db_stmt *list = db_stmt(db, SQL_NAMES_LIKE);
    db_bind_text(list, 1, "queued-%");
    cr_assert_eq(db_queue(list), 0, "%s", db_errmsg(db));
    struct db_stmt *count = db_stmt(db, SQL_COUNT_NAMED);
    db_bind_text(count, 1, "queued-b");
    cr_assert_eq(db_queue(count), 0, "%s", db_errmsg(db));

    cr_assert_eq(db_step(take), DB_ROW, "%s", db_errmsg(db));
    cr_expect_eq(db_column_int64(take, 0), 3);
    cr_assert_eq(db_step(take), DB_DONE);
    db_done(take);
    /* The list was sent after the update: it sees the stock taken. */
    cr_assert_eq(db_step(list), DB_ROW, "%s", db_errmsg(db));
    cr_expect_str_eq(db_column_text(list, 0), "queued-a");
    cr_expect_eq(db_column_int64(list, 1), 3);
    cr_assert_eq(db_step(list), DB_ROW);
    cr_expect_str_eq(db_column_text(list, 0), "queued-b");
    cr_assert_eq(db_step(list), DB_DONE);
    db_done(list);
    cr_assert_eq(db_step(count), DB_ROW);
    cr_expect_eq(db_column_int64(count, 0), 1);
    db_done(count);
    cr_assert_eq(db_commit(db), 0, "%s", db_errmsg(db));
    cr_assert_eq(test_db_int(db, "SELECT stock FROM products WHERE name = 'queued-a'"), 3);
}

Test(db, a_statement_queued_after_a_failure_is_not_run)
{
    cr_assert_eq(db_begin_write(db), 0);
    cr_assert_eq(send_product("queued-doomed", 1), 0);
    struct db_stmt *take = db_stmt(db, SQL_TAKE_NAMED);
    db_bind_text(take, 1, "queued-doomed");
    db_bind_int64(take, 2, -5); /* stock + 5 >= 0 passes the guard ... */
    db_queue(take);
    struct db_stmt *bad = db_stmt(db, SQL_ADD_PRODUCT);
    db_bind_text(bad, 1, "queued-doomed");
    db_bind_int64(bad, 2, 100);
    db_bind_int64(bad, 3, -1); /* ... this breaks CHECK (stock >= 0) */
    db_queue(bad);
    struct db_stmt *count = db_stmt(db, SQL_COUNT_NAMED);
    db_bind_text(count, 1, "queued-doomed");
    db_queue(count);
    cr_assert_eq(db_step(take), DB_ROW, "%s", db_errmsg(db));
    cr_expect_eq(db_column_int64(take, 0), 6);
    while (db_step(take) == DB_ROW)
        ;
    db_done(take);
    cr_expect_eq(db_step(bad), DB_ERROR, "a write that breaks a CHECK did not fail");
    db_done(bad);
    cr_expect_eq(db_step(count), DB_ERROR, "a statement after the failure answered");
    db_done(count);
    cr_assert_eq(db_commit(db), -1, "a transaction with a failed statement committed");
    db_rollback(db);
    cr_assert_eq(test_db_int(db, "SELECT count(*) FROM products WHERE name = 'queued-doomed'"), 0);
    /* The connection works on. */
    cr_assert_eq(named(SQL_COUNT_NAMED, "queued-doomed"), 0);
}

Test(db, a_queued_statement_ended_unread_gives_way_to_its_next_use)
{
    cr_assert_eq(db_begin_write(db), 0);
    cr_assert_eq(send_product("queued-c", 7), 0);
    struct db_stmt *count = db_stmt(db, SQL_COUNT_NAMED);
    db_bind_text(count, 1, "nothing-by-this-name");
    db_queue(count);
    db_done(count); /* never read */
    count = db_stmt(db, SQL_COUNT_NAMED);
    db_bind_text(count, 1, "queued-c");
    db_queue(count);
    cr_assert_eq(db_step(count), DB_ROW, "%s", db_errmsg(db));
    cr_expect_eq(db_column_int64(count, 0), 1, "the answer of the statement's first use was read");
    db_done(count);
    cr_assert_eq(db_commit(db), 0, "%s", db_errmsg(db));
}
