/* db_sqlite: the SQLite engine of db.h.
 *
 * WAL mode and a busy timeout let the workers of one or several shopd on one
 * host share the file. The schema is versioned with PRAGMA user_version. */
#include "shopd/db_engine.h"
#include "shopd/db_failures.h"
#include "shared/log.h"
#include "shared/strbuf.h"
#include "shared/xalloc.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define STMT_CACHE 112

struct sqlite_stmt {
    struct db_stmt base;
    const char *sql; /* the caller's constant: the cache key */
    sqlite3_stmt *stmt;
};

struct sqlite_db {
    struct db base;
    sqlite3 *handle;
    struct sqlite_stmt cache[STMT_CACHE];
    size_t ncached;
    bool full_sync; /* PRAGMA synchronous = FULL for the open transaction */
};

static sqlite3 *handle_of(struct db *db)
{
    return ((struct sqlite_db *)db)->handle;
}

static sqlite3_stmt *stmt_of(struct db_stmt *st)
{
    return ((struct sqlite_stmt *)st)->stmt;
}

/* Migrations: entry i brings the schema from version i to i + 1. Never edit a
 * released entry; append a new one (and its PostgreSQL twin in db_postgres.c). */
static const char *const migrations[] = {
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY,"
    "  email TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    "  password_hash TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE sessions ("
    "  token_hash TEXT PRIMARY KEY,"
    "  user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,"
    "  csrf TEXT NOT NULL,"
    "  flash TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL);"
    "CREATE INDEX sessions_user ON sessions(user_id);"
    "CREATE TABLE products ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  price_cents INTEGER NOT NULL CHECK (price_cents >= 0),"
    "  stock INTEGER NOT NULL CHECK (stock >= 0),"
    "  image_url TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE TABLE cart_items ("
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  product_id INTEGER NOT NULL REFERENCES products(id) ON DELETE CASCADE,"
    "  quantity INTEGER NOT NULL CHECK (quantity > 0),"
    "  added_at INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, product_id)) WITHOUT ROWID;"
    /* An order row is also the outbox entry of the dispatcher: status, attempts,
       the lease and the last error live beside the order itself, so committing
       the checkout and queueing the order for DynamoDB are one transaction. */
    "CREATE TABLE orders ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  user_email TEXT NOT NULL,"
    "  total_cents INTEGER NOT NULL,"
    "  currency TEXT NOT NULL DEFAULT 'USD',"
    "  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),"
    "  idempotency_key TEXT,"
    "  created_at TEXT NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER NOT NULL DEFAULT 0,"
    "  lease_owner TEXT,"
    "  lease_until INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT,"
    "  sent_at TEXT,"
    "  UNIQUE (user_id, idempotency_key));"
    "CREATE INDEX orders_user ON orders(user_id, seq);"
    "CREATE INDEX orders_pending ON orders(next_attempt_at) WHERE status = 'pending';"
    "CREATE TABLE order_lines ("
    "  order_id TEXT NOT NULL REFERENCES orders(id) ON DELETE CASCADE,"
    "  product_id INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  unit_price_cents INTEGER NOT NULL,"
    "  quantity INTEGER NOT NULL,"
    "  PRIMARY KEY (order_id, product_id)) WITHOUT ROWID;",
    /* One row that /healthz rewrites: a real write, so a read-only file or a
       full disk shows in the health check and not only in the next checkout. */
    "CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), checked_at INTEGER NOT NULL);"
    "INSERT INTO health VALUES (1, 0);",
    /* Ids that leave the database are never handed out twice: a deleted
       product's or user's id stays in order lines, DynamoDB items, bookmarks
       and clients' caches, so users and products become AUTOINCREMENT tables.
       SQLite cannot add AUTOINCREMENT to a table, so both are rebuilt with their
       rows and ids unchanged (migrations run with foreign keys off, so the old
       tables' rows referenced by sessions, carts and orders stay where they are);
       the sequences start above every id ever used, including ids only orders
       still name. Orders are named by their UUID; their seq never leaves. */
    "CREATE TABLE users_v3 ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  email TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    "  password_hash TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "INSERT INTO users_v3 (id, email, password_hash, created_at)"
    "  SELECT id, email, password_hash, created_at FROM users;"
    "DROP TABLE users;"
    "ALTER TABLE users_v3 RENAME TO users;"
    "CREATE TABLE products_v3 ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  price_cents INTEGER NOT NULL CHECK (price_cents >= 0),"
    "  stock INTEGER NOT NULL CHECK (stock >= 0),"
    "  image_url TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "INSERT INTO products_v3 (id, name, description, price_cents, stock, image_url, created_at, updated_at)"
    "  SELECT id, name, description, price_cents, stock, image_url, created_at, updated_at FROM products;"
    "DROP TABLE products;"
    "ALTER TABLE products_v3 RENAME TO products;"
    "DELETE FROM sqlite_sequence WHERE name IN ('users', 'products', 'users_v3', 'products_v3');"
    "INSERT INTO sqlite_sequence (name, seq) SELECT 'users', max("
    "  (SELECT coalesce(max(id), 0) FROM users), (SELECT coalesce(max(user_id), 0) FROM orders));"
    "INSERT INTO sqlite_sequence (name, seq) SELECT 'products', max("
    "  (SELECT coalesce(max(id), 0) FROM products), (SELECT coalesce(max(product_id), 0) FROM order_lines));"
    /* The price a line was added at, so that the cart can show a change and
       checkout can ask before charging it. NULL (lines older than this column
       were filled in below) reads as the current price. */
    "ALTER TABLE cart_items ADD COLUMN unit_price_cents INTEGER;"
    "UPDATE cart_items SET unit_price_cents = (SELECT price_cents FROM products WHERE id = product_id);"
    /* A product deleted while it sits in carts leaves a note for each shopper,
       shown once on their next cart or inventory page. A trigger, so that every
       way of deleting a product (API, admin pages, SQL by hand) leaves it. */
    "CREATE TABLE cart_notices ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  product_id INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX cart_notices_user ON cart_notices(user_id, id);"
    "CREATE TRIGGER products_deleted_from_carts BEFORE DELETE ON products BEGIN"
    "  INSERT INTO cart_notices (user_id, product_id, name, created_at)"
    "    SELECT user_id, OLD.id, OLD.name, CAST(strftime('%s', 'now') AS INTEGER)"
    "    FROM cart_items WHERE product_id = OLD.id;"
    "  END;",
    /* Version 4: a version number of the catalog, bumped by triggers in the
       same transaction as any change to products (whoever makes it: this shopd,
       another on the same database, SQL by hand), so that a worker's cached
       catalog answers know when they are stale. The epoch tells databases
       apart, so an entity tag of one never matches another's. A migration that
       rebuilds products must create these triggers again. */
    "CREATE TABLE catalog_version ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  epoch TEXT NOT NULL,"
    "  version INTEGER NOT NULL);"
    "INSERT INTO catalog_version VALUES (1, lower(hex(randomblob(8))), 1);"
    "CREATE TRIGGER catalog_version_insert AFTER INSERT ON products BEGIN"
    "  UPDATE catalog_version SET version = version + 1 WHERE id = 1;"
    "  END;"
    "CREATE TRIGGER catalog_version_update AFTER UPDATE ON products BEGIN"
    "  UPDATE catalog_version SET version = version + 1 WHERE id = 1;"
    "  END;"
    "CREATE TRIGGER catalog_version_delete AFTER DELETE ON products BEGIN"
    "  UPDATE catalog_version SET version = version + 1 WHERE id = 1;"
    "  END;",
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == DB_SCHEMA_VERSION, "DB_SCHEMA_VERSION");

/* --- failures --------------------------------------------------------------- */

static enum db_failure failure_of(int code)
{
    switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return DB_FAIL_BUSY;
    case SQLITE_FULL:
        return DB_FAIL_FULL;
    case SQLITE_READONLY:
        return DB_FAIL_READONLY;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return DB_FAIL_IO;
    default:
        return DB_FAIL_NONE;
    }
}

static void note_result(int code, const char *msg)
{
    db_note_failure(failure_of(code), msg);
}

static enum db_error sqlite_error(struct db *db)
{
    int code = sqlite3_extended_errcode(handle_of(db));
    switch (code & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return DB_ERR_NONE;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return DB_ERR_BUSY;
    case SQLITE_CONSTRAINT:
        return DB_ERR_CONFLICT;
    default:
        return failure_of(code) != DB_FAIL_NONE ? DB_ERR_UNAVAILABLE : DB_ERR_OTHER;
    }
}

static const char *sqlite_errmsg(struct db *db)
{
    return sqlite3_errmsg(handle_of(db));
}

/* --- statements --------------------------------------------------------------- */

/* The shared dialect numbers parameters $1, $2 ...; SQLite reads "$1" as a
   parameter named "$1" and numbers named ones by first appearance, so they
   become ?1, ?2 ... (outside quoted text). */
static char *sqlite_dialect(const char *sql)
{
    struct strbuf out = {0};
    char quote = 0;
    for (const char *p = sql; *p; p++)
        strbuf_addc(&out, db_param_at(p, &quote) ? '?' : *p);
    return strbuf_take(&out, NULL);
}

static struct db_stmt *sqlite_stmt(struct db *db, const char *sql)
{
    struct sqlite_db *s = (struct sqlite_db *)db;
    for (size_t i = 0; i < s->ncached; i++)
        if (s->cache[i].sql == sql) {
            sqlite3_reset(s->cache[i].stmt);
            sqlite3_clear_bindings(s->cache[i].stmt);
            return &s->cache[i].base;
        }
    if (s->ncached == STMT_CACHE) {
        log_error("sqlite: statement cache full; raise STMT_CACHE");
        abort();
    }
    char *text = sqlite_dialect(sql);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v3(s->handle, text, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        log_error("sqlite: cannot prepare %s: %s", text, sqlite3_errmsg(s->handle));
        abort();
    }
    free(text);
    struct sqlite_stmt *c = &s->cache[s->ncached++];
    c->base.db = db;
    c->sql = sql;
    c->stmt = st;
    return &c->base;
}

static void sqlite_bind_int64(struct db_stmt *st, int index, int64_t value)
{
    sqlite3_bind_int64(stmt_of(st), index, value);
}

static void sqlite_bind_text(struct db_stmt *st, int index, const char *text)
{
    sqlite3_bind_text(stmt_of(st), index, text, -1, SQLITE_TRANSIENT);
}

static void sqlite_bind_null(struct db_stmt *st, int index)
{
    sqlite3_bind_null(stmt_of(st), index);
}

static int sqlite_step(struct db_stmt *st)
{
    int rc = sqlite3_step(stmt_of(st));
    if (rc == SQLITE_ROW)
        return DB_ROW;
    if (rc == SQLITE_DONE)
        return DB_DONE;
    return DB_ERROR;
}

static int64_t sqlite_column_int64(struct db_stmt *st, int col)
{
    return sqlite3_column_int64(stmt_of(st), col);
}

static double sqlite_column_double(struct db_stmt *st, int col)
{
    return sqlite3_column_double(stmt_of(st), col);
}

static const char *sqlite_column_text(struct db_stmt *st, int col)
{
    return (const char *)sqlite3_column_text(stmt_of(st), col);
}

static bool sqlite_column_is_null(struct db_stmt *st, int col)
{
    return sqlite3_column_type(stmt_of(st), col) == SQLITE_NULL;
}

static void sqlite_done(struct db_stmt *st)
{
    /* reset returns the result of the statement's last step */
    sqlite3_stmt *stmt = stmt_of(st);
    int rc = sqlite3_reset(stmt);
    if (rc != SQLITE_OK)
        note_result(rc, sqlite3_errmsg(sqlite3_db_handle(stmt)));
}

static int64_t sqlite_changes(struct db *db)
{
    return sqlite3_changes(handle_of(db));
}

static int run_simple(struct db *db, const char *sql)
{
    struct db_stmt *st = sqlite_stmt(db, sql);
    int rc = sqlite_step(st);
    sqlite_done(st);
    return rc == DB_DONE ? 0 : -1;
}

/* In WAL mode with synchronous=NORMAL (the connection's setting) a commit
   does not wait for the disk: the database stays whole in a power loss, but
   the last commits before it can be lost. An order confirmed to a shopper, an
   account or a catalog change must not be, so their transactions commit with
   synchronous=FULL (the WAL synced at commit), as PostgreSQL's do; a cart's
   change keeps NORMAL (db_begin_write_unsynced). The setting is the
   connection's: it goes back to NORMAL when the transaction ends. */
static void end_full_sync(struct db *db)
{
    struct sqlite_db *s = (struct sqlite_db *)db;
    if (s->full_sync && sqlite3_get_autocommit(s->handle)) {
        run_simple(db, "PRAGMA synchronous = NORMAL");
        s->full_sync = false;
    }
}

static int sqlite_begin_write(struct db *db, bool synced)
{
    struct sqlite_db *s = (struct sqlite_db *)db;
    if (!synced)
        end_full_sync(db); /* left by a BEGIN that failed */
    else if (!s->full_sync) {
        if (run_simple(db, "PRAGMA synchronous = FULL") < 0)
            return -1;
        s->full_sync = true;
    }
    /* On failure FULL stays until the next transaction ends: putting it back
       now would overwrite the error the caller is about to read. */
    return run_simple(db, "BEGIN IMMEDIATE");
}

static int sqlite_commit(struct db *db)
{
    int rc = run_simple(db, "COMMIT");
    end_full_sync(db);
    return rc;
}

static void sqlite_rollback(struct db *db)
{
    if (!sqlite3_get_autocommit(handle_of(db)))
        run_simple(db, "ROLLBACK");
    end_full_sync(db);
}

static int sqlite_exec(struct db *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(handle_of(db), sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        const char *text = msg ? msg : sqlite3_errmsg(handle_of(db));
        note_result(sqlite3_extended_errcode(handle_of(db)), text);
        log_error("sqlite: %s", text);
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int sqlite_probe_write(struct db *db)
{
    enum { PROBE_BUSY_MS = 250 };
    sqlite3_busy_timeout(handle_of(db), PROBE_BUSY_MS);
    struct db_stmt *st = sqlite_stmt(db, "UPDATE health SET checked_at = $1 WHERE id = 1");
    sqlite_bind_int64(st, 1, (int64_t)time(NULL));
    int rc = sqlite_step(st);
    sqlite_done(st);
    sqlite3_busy_timeout(handle_of(db), DB_BUSY_TIMEOUT_MS);
    return rc == DB_DONE ? 0 : -1;
}

/* PRAGMA data_version changes when another connection commits; this
   connection's own writes show in its total change count. */
static void sqlite_mark_take(struct db *db, struct db_mark *mark)
{
    struct db_stmt *st = sqlite_stmt(db, "PRAGMA data_version");
    mark->a = sqlite_step(st) == DB_ROW ? sqlite_column_int64(st, 0) : -1;
    sqlite_done(st);
    mark->b = sqlite3_total_changes64(handle_of(db));
}

static bool sqlite_unchanged_since(struct db *db, const struct db_mark *mark)
{
    struct db_mark now;
    sqlite_mark_take(db, &now);
    return now.a >= 0 && now.a == mark->a && now.b == mark->b;
}

static void sqlite_close(struct db *db)
{
    struct sqlite_db *s = (struct sqlite_db *)db;
    for (size_t i = 0; i < s->ncached; i++)
        sqlite3_finalize(s->cache[i].stmt);
    sqlite3_close(s->handle);
    free(s);
}

static const struct db_ops sqlite_ops = {
    .close = sqlite_close,
    .stmt = sqlite_stmt,
    .bind_int64 = sqlite_bind_int64,
    .bind_text = sqlite_bind_text,
    .bind_null = sqlite_bind_null,
    .step = sqlite_step,
    .column_int64 = sqlite_column_int64,
    .column_double = sqlite_column_double,
    .column_text = sqlite_column_text,
    .column_is_null = sqlite_column_is_null,
    .done = sqlite_done,
    .changes = sqlite_changes,
    .begin_write = sqlite_begin_write,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .exec = sqlite_exec,
    .error = sqlite_error,
    .errmsg = sqlite_errmsg,
    .probe_write = sqlite_probe_write,
    .mark_take = sqlite_mark_take,
    .unchanged_since = sqlite_unchanged_since,
};

/* --- opening and migrating ---------------------------------------------------- */

static int user_version(sqlite3 *h)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int migrate(struct db *db, char *err, size_t errlen)
{
    sqlite3 *h = handle_of(db);
    /* BEGIN IMMEDIATE serialises migrations when several processes open a new file at once. */
    if (sqlite_exec(db, "BEGIN IMMEDIATE") < 0) {
        snprintf(err, errlen, "cannot lock database for migration: %s", sqlite3_errmsg(h));
        return -1;
    }
    int v = user_version(h);
    int target = (int)(sizeof(migrations) / sizeof(migrations[0]));
    if (v > target) {
        sqlite_exec(db, "ROLLBACK");
        snprintf(err, errlen, "database schema version %d is newer than this shopd (%d)", v, target);
        return -1;
    }
    for (; v < target; v++) {
        if (sqlite_exec(db, migrations[v]) < 0) {
            snprintf(err, errlen, "schema migration %d failed: %s", v + 1, sqlite3_errmsg(h));
            sqlite_exec(db, "ROLLBACK");
            return -1;
        }
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
        sqlite_exec(db, pragma);
    }
    if (sqlite_exec(db, "COMMIT") < 0) {
        snprintf(err, errlen, "schema commit failed: %s", sqlite3_errmsg(h));
        return -1;
    }
    return 0;
}

struct db *db_sqlite_open(const char *path, char *err, size_t errlen)
{
    struct sqlite_db *s = xcalloc(1, sizeof(*s));
    s->base.ops = &sqlite_ops;
    s->base.engine = DB_SQLITE;
    struct db *db = &s->base;
    int rc = sqlite3_open_v2(path, &s->handle,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path,
                 s->handle ? sqlite3_errmsg(s->handle) : sqlite3_errstr(rc));
        sqlite_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(s->handle, DB_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(s->handle, 1);
    if (sqlite_exec(db, "PRAGMA journal_mode = WAL") < 0 ||
        sqlite_exec(db, "PRAGMA synchronous = NORMAL") < 0) {
        snprintf(err, errlen, "cannot configure database %s: %s", path, sqlite3_errmsg(s->handle));
        sqlite_close(db);
        return NULL;
    }
    /* Foreign keys go on after the migrations: a migration that rebuilds a
       table drops the old one, and with foreign keys on that DROP would first
       delete (and cascade to) every row that refers to it. */
    if (migrate(db, err, errlen) < 0) {
        sqlite_close(db);
        return NULL;
    }
    if (sqlite_exec(db, "PRAGMA foreign_keys = ON") < 0) {
        snprintf(err, errlen, "cannot configure database %s: %s", path, sqlite3_errmsg(s->handle));
        sqlite_close(db);
        return NULL;
    }
    return db;
}

int db_sqlite_schema_version(const char *path, int *version, char *err, size_t errlen)
{
    struct stat sb;
    if (stat(path, &sb) < 0 && errno == ENOENT) {
        *version = 0;
        return 0;
    }
    sqlite3 *h = NULL;
    int rc = sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK) {
        int v = user_version(h);
        if (v >= 0) {
            *version = v;
            sqlite3_close(h);
            return 0;
        }
    }
    snprintf(err, errlen, "database %s cannot be read: %s", path, h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
    sqlite3_close(h);
    return -1;
}
