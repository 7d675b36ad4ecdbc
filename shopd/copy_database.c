/* copy_database: the rows of a shop, table by table in foreign-key order. */
#include "shopd/copy_database.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

enum column_kind { COL_INT, COL_TEXT };

/* One table: how to read its rows from the source and write them to the
 * target, with the column kinds in the order of both statements. */
struct copied_table {
    const char *name;
    const char *select_sql;
    const char *insert_sql;
    int columns;
    enum column_kind kinds[16];
};

static const struct copied_table copied_tables[] = {
    {"users",
     "SELECT id, email, password_hash, created_at FROM users ORDER BY id",
     "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
     4,
     {COL_INT, COL_TEXT, COL_TEXT, COL_INT}},
    {"products",
     "SELECT id, name, description, price_cents, stock, image_url, created_at, updated_at FROM products "
     "ORDER BY id",
     "INSERT INTO products (id, name, description, price_cents, stock, image_url, created_at, updated_at) "
     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
     8,
     {COL_INT, COL_TEXT, COL_TEXT, COL_INT, COL_INT, COL_TEXT, COL_INT, COL_INT}},
    {"sessions",
     "SELECT token_hash, user_id, csrf, flash, created_at, last_seen FROM sessions",
     "INSERT INTO sessions (token_hash, user_id, csrf, flash, created_at, last_seen) "
     "VALUES ($1, $2, $3, $4, $5, $6)",
     6,
     {COL_TEXT, COL_INT, COL_TEXT, COL_TEXT, COL_INT, COL_INT}},
    {"cart_items",
     "SELECT user_id, product_id, quantity, added_at, unit_price_cents FROM cart_items",
     "INSERT INTO cart_items (user_id, product_id, quantity, added_at, unit_price_cents) "
     "VALUES ($1, $2, $3, $4, $5)",
     5,
     {COL_INT, COL_INT, COL_INT, COL_INT, COL_INT}},
    {"cart_notices",
     "SELECT id, user_id, product_id, name, created_at FROM cart_notices ORDER BY id",
     "INSERT INTO cart_notices (id, user_id, product_id, name, created_at) VALUES ($1, $2, $3, $4, $5)",
     5,
     {COL_INT, COL_INT, COL_INT, COL_TEXT, COL_INT}},
    /* No dispatcher holds a lease on the target yet: lease_owner and
     * lease_until start empty so the first dispatcher there takes them. */
    {"orders",
     "SELECT seq, id, user_id, user_email, total_cents, currency, status, idempotency_key, created_at, "
     "attempts, next_attempt_at, last_error, sent_at FROM orders ORDER BY seq",
     "INSERT INTO orders (seq, id, user_id, user_email, total_cents, currency, status, idempotency_key, "
     "created_at, attempts, next_attempt_at, last_error, sent_at, lease_owner, lease_until) "
     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, 0)",
     13,
     {COL_INT, COL_TEXT, COL_INT, COL_TEXT, COL_INT, COL_TEXT, COL_TEXT, COL_TEXT, COL_TEXT, COL_INT, COL_INT,
      COL_TEXT, COL_TEXT}},
    {"order_lines",
     "SELECT order_id, product_id, name, unit_price_cents, quantity FROM order_lines",
     "INSERT INTO order_lines (order_id, product_id, name, unit_price_cents, quantity) "
     "VALUES ($1, $2, $3, $4, $5)",
     5,
     {COL_TEXT, COL_INT, COL_TEXT, COL_INT, COL_INT}},
};

#define NTABLES (sizeof(copied_tables) / sizeof(copied_tables[0]))

static const char SQL_TARGET_USED[] =
    "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM products) + "
    "(SELECT count(*) FROM orders) + (SELECT count(*) FROM sessions) + (SELECT count(*) FROM cart_items)";

/* The highest id the source ever handed out: ids of deleted rows live on in
 * SQLite's sqlite_sequence and PostgreSQL's identity sequences; orders and
 * order lines still name users and products deleted since. */
static const char SQL_SQLITE_HIGH_USER[] =
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'users'), 0), "
    "coalesce((SELECT max(id) FROM users), 0), coalesce((SELECT max(user_id) FROM orders), 0))";
static const char SQL_POSTGRES_HIGH_USER[] =
    "SELECT greatest(coalesce((SELECT max(id) FROM users), 0), "
    "coalesce((SELECT max(user_id) FROM orders), 0), "
    "coalesce((SELECT max(last_value) FROM pg_sequences WHERE schemaname = current_schema() "
    "AND sequencename = 'users_id_seq'), 0))";
static const char SQL_SQLITE_HIGH_PRODUCT[] =
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'products'), 0), "
    "coalesce((SELECT max(id) FROM products), 0), coalesce((SELECT max(product_id) FROM order_lines), 0))";
static const char SQL_POSTGRES_HIGH_PRODUCT[] =
    "SELECT greatest(coalesce((SELECT max(id) FROM products), 0), "
    "coalesce((SELECT max(product_id) FROM order_lines), 0), "
    "coalesce((SELECT max(last_value) FROM pg_sequences WHERE schemaname = current_schema() "
    "AND sequencename = 'products_id_seq'), 0))";

static const char SQL_SQLITE_SET_SEQ[] =
    "INSERT OR REPLACE INTO sqlite_sequence (rowid, name, seq) "
    "VALUES ((SELECT rowid FROM sqlite_sequence WHERE name = $1), $1, $2)";
static const char SQL_POSTGRES_SET_SEQ[] = "SELECT setval(pg_get_serial_sequence($1, 'id'), $2)";
/* Only PostgreSQL's orders.seq is an identity column (SQLite's is a rowid). */
static const char SQL_POSTGRES_SET_ORDER_SEQ[] = "SELECT setval(pg_get_serial_sequence($1, 'seq'), $2)";
static const char SQL_MAX_ORDER_SEQ[] = "SELECT coalesce(max(seq), 0) FROM orders";
static const char SQL_MAX_NOTICE[] = "SELECT coalesce(max(id), 0) FROM cart_notices";

static const char SQL_BUMP_CATALOG[] = "UPDATE catalog_version SET version = version + 1000 WHERE id = 1";

static int scalar_for(struct db *db, const char *sqlite_sql, const char *postgres_sql, int64_t *out)
{
    struct db_stmt *st = db_stmt_for(db, sqlite_sql, postgres_sql);
    int rc = db_step(st);
    if (rc == DB_ROW)
        *out = db_column_int64(st, 0);
    db_done(st);
    return rc == DB_ROW ? 0 : -1;
}

static int scalar(struct db *db, const char *sql, int64_t *out)
{
    return scalar_for(db, sql, sql, out);
}

static int copy_table(struct db *from, struct db *to, const struct copied_table *t, int64_t *rows)
{
    struct db_stmt *src = db_stmt(from, t->select_sql);
    int rc;
    *rows = 0;
    while ((rc = db_step(src)) == DB_ROW) {
        struct db_stmt *dst = db_stmt(to, t->insert_sql);
        for (int c = 0; c < t->columns; c++) {
            if (db_column_is_null(src, c))
                db_bind_null(dst, c + 1);
            else if (t->kinds[c] == COL_INT)
                db_bind_int64(dst, c + 1, db_column_int64(src, c));
            else
                db_bind_text(dst, c + 1, db_column_text(src, c));
        }
        int wrote = db_step(dst);
        db_done(dst);
        if (wrote != DB_DONE) {
            fprintf(stderr, "shopd: copying %s: %s\n", t->name, db_errmsg(to));
            db_done(src);
            return -1;
        }
        (*rows)++;
    }
    db_done(src);
    if (rc != DB_DONE) {
        fprintf(stderr, "shopd: reading %s: %s\n", t->name, db_errmsg(from));
        return -1;
    }
    return 0;
}

static int set_sequence(struct db *to, const char *table, const char *sqlite_sql, const char *postgres_sql,
                        int64_t above)
{
    if (above <= 0)
        return 0; /* nothing handed out yet: the sequence starts at 1 anyway */
    struct db_stmt *st = db_stmt_for(to, sqlite_sql, postgres_sql);
    db_bind_text(st, 1, table);
    db_bind_int64(st, 2, above);
    int rc;
    while ((rc = db_step(st)) == DB_ROW)
        ;
    db_done(st);
    if (rc != DB_DONE) {
        fprintf(stderr, "shopd: setting the %s id sequence: %s\n", table, db_errmsg(to));
        return -1;
    }
    return 0;
}

static int set_sequences(struct db *from, struct db *to)
{
    int64_t users = 0, products = 0, seq = 0, notices = 0;
    if (scalar_for(from, SQL_SQLITE_HIGH_USER, SQL_POSTGRES_HIGH_USER, &users) < 0 ||
        scalar_for(from, SQL_SQLITE_HIGH_PRODUCT, SQL_POSTGRES_HIGH_PRODUCT, &products) < 0 ||
        scalar(from, SQL_MAX_ORDER_SEQ, &seq) < 0 || scalar(from, SQL_MAX_NOTICE, &notices) < 0) {
        fprintf(stderr, "shopd: reading the highest ids: %s\n", db_errmsg(from));
        return -1;
    }
    if (set_sequence(to, "users", SQL_SQLITE_SET_SEQ, SQL_POSTGRES_SET_SEQ, users) < 0 ||
        set_sequence(to, "products", SQL_SQLITE_SET_SEQ, SQL_POSTGRES_SET_SEQ, products) < 0)
        return -1;
    /* SQLite's orders.seq and cart_notices.id are plain rowids: only
     * PostgreSQL's identity columns need telling. */
    if (db_engine(to) != DB_SQLITE &&
        (set_sequence(to, "orders", SQL_SQLITE_SET_SEQ, SQL_POSTGRES_SET_ORDER_SEQ, seq) < 0 ||
         set_sequence(to, "cart_notices", SQL_SQLITE_SET_SEQ, SQL_POSTGRES_SET_SEQ, notices) < 0))
        return -1;
    return 0;
}

int copy_database_run(const struct db_target *from_target, const struct db_target *to_target)
{
    char err[512];
    if (db_target_same(from_target, to_target)) {
        fprintf(stderr, "shopd: --from and --to name the same database (%s)\n", to_target->display);
        return 2;
    }
    struct db *from = db_open(from_target, err, sizeof(err));
    if (!from) {
        fprintf(stderr, "shopd: --from: %s\n", err);
        return 2;
    }
    struct db *to = db_open(to_target, err, sizeof(err));
    if (!to) {
        fprintf(stderr, "shopd: --to: %s\n", err);
        db_close(from);
        return 2;
    }
    int status = 2;
    int64_t used = 0;
    if (scalar(to, SQL_TARGET_USED, &used) < 0) {
        fprintf(stderr, "shopd: reading %s: %s\n", to_target->display, db_errmsg(to));
        goto out;
    }
    if (used > 0) {
        fprintf(stderr,
                "shopd: %s is not empty (it has users, products, orders, sessions or carts): "
                "copying only into an empty database\n",
                to_target->display);
        goto out;
    }
    if (db_begin_write(to) < 0) {
        fprintf(stderr, "shopd: starting a transaction on %s: %s\n", to_target->display, db_errmsg(to));
        goto out;
    }
    int64_t rows[NTABLES];
    for (size_t i = 0; i < NTABLES; i++) {
        if (copy_table(from, to, &copied_tables[i], &rows[i]) < 0)
            goto rollback;
    }
    if (set_sequences(from, to) < 0)
        goto rollback;
    /* Caches and ETags made from the old database must never match the new. */
    struct db_stmt *bump = db_stmt(to, SQL_BUMP_CATALOG);
    int bumped = db_step(bump);
    db_done(bump);
    if (bumped != DB_DONE) {
        fprintf(stderr, "shopd: bumping the catalog version: %s\n", db_errmsg(to));
        goto rollback;
    }
    if (db_commit(to) < 0) {
        fprintf(stderr, "shopd: committing on %s: %s\n", to_target->display, db_errmsg(to));
        goto rollback;
    }
    for (size_t i = 0; i < NTABLES; i++)
        printf("%-13s %lld rows copied\n", copied_tables[i].name, (long long)rows[i]);
    printf("copied %s to %s\n", from_target->display, to_target->display);
    status = 0;
    goto out;
rollback:
    db_rollback(to);
out:
    db_close(to);
    db_close(from);
    return status;
}
