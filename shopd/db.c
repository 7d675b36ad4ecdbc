#include "shopd/db.h"
#include "shared/clock.h"
#include "shared/log.h"
#include "shared/xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DB_STMT_CACHE 96

struct cached_stmt {
    const char *sql;
    sqlite3_stmt *stmt;
};

struct db {
    sqlite3 *handle;
    struct cached_stmt cache[DB_STMT_CACHE];
    size_t ncached;
};

/* Migrations: entry i brings the schema from version i to i + 1. Never edit a
 * released entry; append a new one. */
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

/* --- failures that make the database unavailable ---------------------------- */

/* What SQLite reported last, for this process: every failing statement passes
   through the error log callback, whichever module ran it. */
static struct {
    enum db_failure last;
    uint64_t count;
    uint64_t last_ms;
    enum db_failure logged; /* the cause named in the log, so it is named once */
} failures;

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

/* Every statement ends in db_done, db_exec or a transaction call: each passes
   its result code here, whichever module ran it. */
static void note_result(int code, const char *msg)
{
    enum db_failure f = failure_of(code);
    if (f == DB_FAIL_NONE)
        return;
    failures.last = f;
    failures.count++;
    failures.last_ms = clock_mono_ms();
    if (failures.logged != f) {
        failures.logged = f;
        log_warn("database: %s (%s); answering 503 while it lasts", db_failure_text(f), msg);
    }
}

void db_log_error(struct db *db, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (failure_of(sqlite3_extended_errcode(db->handle)) != DB_FAIL_NONE)
        log_debug("%s: %s", what, sqlite3_errmsg(db->handle));
    else
        log_error("%s: %s", what, sqlite3_errmsg(db->handle));
}

const char *db_failure_text(enum db_failure f)
{
    switch (f) {
    case DB_FAIL_BUSY:
        return "the database is locked by another writer";
    case DB_FAIL_FULL:
        return "the disk holding the database is full";
    case DB_FAIL_READONLY:
        return "the database is read-only";
    case DB_FAIL_IO:
        return "the database cannot be read or written";
    default:
        return "the database is available";
    }
}

uint64_t db_failure_count(void)
{
    return failures.count;
}

enum db_failure db_last_failure(void)
{
    return failures.last;
}

enum db_failure db_check_writable(struct db *db)
{
    enum { RECENT_MS = 10000, PROBE_BUSY_MS = 250 };
    sqlite3_busy_timeout(db->handle, PROBE_BUSY_MS);
    sqlite3_stmt *st = db_stmt(db, "UPDATE health SET checked_at = ? WHERE id = 1");
    sqlite3_bind_int64(st, 1, (sqlite3_int64)time(NULL));
    int rc = sqlite3_step(st);
    db_done(st);
    sqlite3_busy_timeout(db->handle, DB_BUSY_TIMEOUT_MS);
    if (rc != SQLITE_DONE) {
        enum db_failure f = failure_of(sqlite3_extended_errcode(db->handle));
        return f != DB_FAIL_NONE ? f : DB_FAIL_IO;
    }
    /* The probe can pass on a full disk (the WAL reuses its space after a
       checkpoint), so a recent write failure of a request counts too. */
    if (failures.last != DB_FAIL_NONE && failures.last != DB_FAIL_BUSY &&
        clock_mono_ms() - failures.last_ms < RECENT_MS)
        return failures.last;
    if (failures.logged != DB_FAIL_NONE) {
        log_info("database: writable again");
        failures.logged = DB_FAIL_NONE;
    }
    return DB_FAIL_NONE;
}

char *db_path_from_url(const char *url, bool *is_memory, char *err, size_t errlen)
{
    *is_memory = false;
    if (!url || !*url) {
        snprintf(err, errlen, "DATABASE_URL is empty");
        return NULL;
    }
    const char *path = url;
    if (strncmp(url, "sqlite:", 7) == 0) {
        if (strncmp(url, "sqlite:///", 10) != 0) {
            snprintf(err, errlen, "DATABASE_URL=%s: expected sqlite:///relative.db or sqlite:////absolute.db",
                     url);
            return NULL;
        }
        path = url + 10; /* "sqlite:////abs" leaves "/abs"; "sqlite:///rel" leaves "rel" */
    } else if (strstr(url, "://")) {
        snprintf(err, errlen, "DATABASE_URL=%s: only sqlite databases are supported", url);
        return NULL;
    }
    if (strcmp(path, ":memory:") == 0 || *path == '\0') {
        if (*path == '\0') {
            snprintf(err, errlen, "DATABASE_URL=%s names no database file", url);
            return NULL;
        }
        *is_memory = true;
        return NULL;
    }
    return xstrdup(path);
}

sqlite3 *db_handle(struct db *db)
{
    return db->handle;
}

const char *db_errmsg(struct db *db)
{
    return sqlite3_errmsg(db->handle);
}

int db_exec(struct db *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db->handle, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        note_result(sqlite3_extended_errcode(db->handle), msg ? msg : sqlite3_errmsg(db->handle));
        log_error("sqlite: %s", msg ? msg : sqlite3_errmsg(db->handle));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int user_version(struct db *db)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db->handle, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int migrate(struct db *db, char *err, size_t errlen)
{
    /* BEGIN IMMEDIATE serialises migrations when several processes open a new file at once. */
    if (db_exec(db, "BEGIN IMMEDIATE") < 0) {
        snprintf(err, errlen, "cannot lock database for migration: %s", sqlite3_errmsg(db->handle));
        return -1;
    }
    int v = user_version(db);
    int target = (int)(sizeof(migrations) / sizeof(migrations[0]));
    if (v > target) {
        db_exec(db, "ROLLBACK");
        snprintf(err, errlen, "database schema version %d is newer than this shopd (%d)", v, target);
        return -1;
    }
    for (; v < target; v++) {
        if (db_exec(db, migrations[v]) < 0) {
            snprintf(err, errlen, "schema migration %d failed: %s", v + 1, sqlite3_errmsg(db->handle));
            db_exec(db, "ROLLBACK");
            return -1;
        }
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
        db_exec(db, pragma);
    }
    if (db_exec(db, "COMMIT") < 0) {
        snprintf(err, errlen, "schema commit failed: %s", sqlite3_errmsg(db->handle));
        return -1;
    }
    return 0;
}

struct db *db_open(const char *path, char *err, size_t errlen)
{
    struct db *db = xcalloc(1, sizeof(*db));
    int rc = sqlite3_open_v2(path, &db->handle,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path,
                 db->handle ? sqlite3_errmsg(db->handle) : sqlite3_errstr(rc));
        db_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db->handle, DB_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(db->handle, 1);
    if (db_exec(db, "PRAGMA journal_mode = WAL") < 0 || db_exec(db, "PRAGMA synchronous = NORMAL") < 0) {
        snprintf(err, errlen, "cannot configure database %s: %s", path, sqlite3_errmsg(db->handle));
        db_close(db);
        return NULL;
    }
    /* Foreign keys go on after the migrations: a migration that rebuilds a
       table drops the old one, and with foreign keys on that DROP would first
       delete (and cascade to) every row that refers to it. */
    if (migrate(db, err, errlen) < 0) {
        db_close(db);
        return NULL;
    }
    if (db_exec(db, "PRAGMA foreign_keys = ON") < 0) {
        snprintf(err, errlen, "cannot configure database %s: %s", path, sqlite3_errmsg(db->handle));
        db_close(db);
        return NULL;
    }
    return db;
}

void db_close(struct db *db)
{
    if (!db)
        return;
    for (size_t i = 0; i < db->ncached; i++)
        sqlite3_finalize(db->cache[i].stmt);
    sqlite3_close(db->handle);
    free(db);
}

sqlite3_stmt *db_stmt(struct db *db, const char *sql)
{
    for (size_t i = 0; i < db->ncached; i++)
        if (db->cache[i].sql == sql) {
            sqlite3_reset(db->cache[i].stmt);
            sqlite3_clear_bindings(db->cache[i].stmt);
            return db->cache[i].stmt;
        }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v3(db->handle, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        log_error("sqlite: cannot prepare %s: %s", sql, sqlite3_errmsg(db->handle));
        abort();
    }
    if (db->ncached == DB_STMT_CACHE) {
        log_error("sqlite: statement cache full; raise DB_STMT_CACHE");
        abort();
    }
    db->cache[db->ncached].sql = sql;
    db->cache[db->ncached].stmt = st;
    db->ncached++;
    return st;
}

void db_done(sqlite3_stmt *stmt)
{
    /* reset returns the result of the statement's last step */
    int rc = sqlite3_reset(stmt);
    if (rc != SQLITE_OK)
        note_result(rc, sqlite3_errmsg(sqlite3_db_handle(stmt)));
}

int db_begin_immediate(struct db *db)
{
    sqlite3_stmt *st = db_stmt(db, "BEGIN IMMEDIATE");
    int rc = sqlite3_step(st);
    db_done(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int db_commit(struct db *db)
{
    sqlite3_stmt *st = db_stmt(db, "COMMIT");
    int rc = sqlite3_step(st);
    db_done(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

void db_rollback(struct db *db)
{
    if (!sqlite3_get_autocommit(db->handle)) {
        sqlite3_stmt *st = db_stmt(db, "ROLLBACK");
        sqlite3_step(st);
        db_done(st);
    }
}

bool db_ping(struct db *db)
{
    sqlite3_stmt *st = db_stmt(db, "SELECT count(*) FROM products");
    bool ok = sqlite3_step(st) == SQLITE_ROW;
    db_done(st);
    return ok;
}
