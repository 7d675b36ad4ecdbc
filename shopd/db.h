/* db: the shop's database, one small interface over two engines.
 *
 * SQLite (the embedded default: one host, tests, `make run`) and PostgreSQL
 * through libpq (several shop hosts sharing one catalog, carts and stock). The
 * domain modules (accounts, sessions, catalog, cart, checkout, outbox, ...) call
 * only this interface: prepared statements with bound parameters, rows out,
 * transactions, and three kinds of failure they may react to. The SQL text lives
 * in the module that owns the tables, written once in the dialect both engines
 * accept ($1, $2 ... parameters; RETURNING; ON CONFLICT), with engine-specific
 * text only where they differ (db_stmt_for).
 *
 * One connection per process (each worker, the dispatcher). The schema is
 * versioned and migrated forward at open, under a lock, so that several shopd
 * starting at once on one database migrate it once. The engines' code is in
 * db_sqlite.c and db_postgres.c behind db_engine.h; nothing else includes
 * sqlite3.h or libpq-fe.h. */
#ifndef SHOPD_DB_H
#define SHOPD_DB_H

#include "shopd/db_failures.h"
#include "shopd/db_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct db_stmt;

/* --- where the database is: DATABASE_URL ----------------------------------- */

struct db_target {
    enum db_engine engine;
    char *path;     /* SQLite: the file (for :memory:, set by the master); else NULL */
    bool memory;    /* SQLite: DATABASE_URL=sqlite:///:memory: */
    char *conninfo; /* PostgreSQL: the URL as libpq reads it (no driver suffix) */
    char *display;  /* for log lines and --check: the password replaced by "***" */
};

/* Reads a DATABASE_URL: sqlite:///relative.db, sqlite:////absolute.db,
 * sqlite:///:memory:, a plain path; postgresql://user:pass@host:port/db?...,
 * postgres://..., SQLAlchemy's postgresql+<driver>://... (the driver is
 * ignored) and postgresql:///db?host=/run/postgresql. Returns 0, or -1 with a
 * reason in err that never contains the password. */
int db_target_parse(const char *url, struct db_target *t, char *err, size_t errlen);
void db_target_free(struct db_target *t);
/* A copy of t (caller frees with db_target_free). */
void db_target_copy(struct db_target *dst, const struct db_target *src);
/* True when a and b name the same database. */
bool db_target_same(const struct db_target *a, const struct db_target *b);

/* --- connections -------------------------------------------------------------- */

/* Connects (SQLite: creating the file if needed), and migrates the schema.
 * Returns the handle (free with db_close), or NULL with one line in err: the
 * server cannot be reached, the credentials are refused, the schema is newer
 * than this binary, ... (never the password). */
struct db *db_open(const struct db_target *t, char *err, size_t errlen);
void db_close(struct db *db);
enum db_engine db_engine(const struct db *db);

/* Reads the schema version of the database without changing anything (for
 * --check): 0 for a database not made yet (SQLite: the file does not exist).
 * Returns 0, or -1 with a reason in err. */
int db_schema_version(const struct db_target *t, int *version, char *err, size_t errlen);

/* --- statements ------------------------------------------------------------- */

/* The cached prepared statement for sql (a string constant: the pointer is the
 * cache key), reset, with no bindings. Owned by db: callers end it with
 * db_done and never free it. Aborts on SQL that does not compile (a
 * programming error). */
struct db_stmt *db_stmt(struct db *db, const char *sql);
/* The same, where the engines need different text. */
struct db_stmt *db_stmt_for(struct db *db, const char *sqlite_sql, const char *postgres_sql);

/* Parameters are numbered from 1 ($1 in the SQL). Text is copied. */
void db_bind_int64(struct db_stmt *st, int index, int64_t value);
void db_bind_text(struct db_stmt *st, int index, const char *text);
void db_bind_null(struct db_stmt *st, int index);

/* Runs a write of the open write transaction whose rows and change count
 * nobody reads (ends the statement: no db_done). On PostgreSQL it waits in the
 * connection and travels with the next statement whose answer is read, or
 * with db_commit: a transaction's writes cost one round trip together. So its
 * failure may show only there; db_commit then rolls back and fails, and
 * db_error tells why. Returns -1 when it has failed already. */
int db_send(struct db_stmt *st);

/* Sends a statement whose rows are read later: on PostgreSQL it goes now, and
 * its answer comes back with the next statement read or db_commit, so several
 * statements queued one after another cost one round trip together. Step the
 * queued statements in the order they were queued, each to its end (db_done),
 * before db_commit: SQLite runs each at its first db_step, PostgreSQL ran them
 * in queue order, and the two agree only then. A statement queued after one
 * that failed is not run (db_step: DB_ERROR). Returns -1 when it failed
 * already; db_step then says so too. */
int db_queue(struct db_stmt *st);

/* Results of db_step (db_types.h): DB_ROW, DB_DONE, DB_ERROR. */
/* Runs the statement on its first call and returns DB_ROW while rows remain,
 * then DB_DONE; DB_ERROR when it failed (db_error tells why). A write with
 * RETURNING has written only when db_step has returned DB_DONE: on SQLite it
 * can still fail (a full disk) after its rows. */
int db_step(struct db_stmt *st);

/* Columns of the current row, numbered from 0. A NULL reads as 0, 0.0 or NULL
 * text; text stays valid until the next db_step or db_done. */
int64_t db_column_int64(struct db_stmt *st, int col);
double db_column_double(struct db_stmt *st, int col);
const char *db_column_text(struct db_stmt *st, int col);
bool db_column_is_null(struct db_stmt *st, int col);

/* Ends the statement (releases its locks and results early). */
void db_done(struct db_stmt *st);
/* Rows changed by the last INSERT, UPDATE or DELETE of this connection. */
int64_t db_changes(struct db *db);

/* --- transactions --------------------------------------------------------------
 * db_begin_write starts a transaction that will write, whose commit waits for
 * the disk on both engines. On SQLite it takes the
 * write lock up front (BEGIN IMMEDIATE), so a read-then-write cannot fail half
 * way; on PostgreSQL it is a READ COMMITTED transaction: modules that read
 * then write take row locks (db_stmt_for with FOR UPDATE) or write with a
 * guard in the WHERE clause. */
int db_begin_write(struct db *db);
/* The same for a transaction whose loss in a crash of the database server
 * costs nothing that matters (a cart's line): its commit does not wait for the
 * disk. It stays all or nothing, and in order with the others; only the last
 * moments before such a crash can be lost. On PostgreSQL synchronous_commit is
 * off for it alone (a flush of the disk is most of a small write's time); on
 * SQLite it keeps the connection's synchronous=NORMAL (WAL), where
 * db_begin_write's transaction commits with synchronous=FULL. Orders, accounts
 * and the catalog use db_begin_write. */
int db_begin_write_unsynced(struct db *db);
int db_commit(struct db *db);
/* Rolls back when a transaction is open; harmless otherwise. */
void db_rollback(struct db *db);

/* Runs one or more statements without parameters or results (schema, tests).
 * Returns 0 or -1 (logged). */
int db_exec(struct db *db, const char *sql);

/* --- failures ------------------------------------------------------------------ */

/* What the last failing statement of db ran into. */
enum db_error db_error(struct db *db);
/* The engine's text for the last failure of db. */
const char *db_errmsg(struct db *db);

/* Logs "<what>: <the engine's message>" for a statement that failed on db: at
 * error level, or at debug level when the database is busy or unavailable
 * (db_failures.h logged the cause was logged once already; one line per request would flood). */
void db_log_error(struct db *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes the health row (waiting at most a quarter second for the lock) and
 * returns why the database cannot take writes now, or DB_FAIL_NONE. */
enum db_failure db_check_writable(struct db *db);

/* --- noticing other connections' writes cheaply (struct db_mark: db_types.h) --- */
void db_mark_take(struct db *db, struct db_mark *mark);
bool db_unchanged_since(struct db *db, const struct db_mark *mark);

/* --- sqlite:///:memory: across processes (db_memory.c) ----------------------
 *
 * An in-memory SQLite database belongs to one connection, but every worker of
 * a shopd must see the same one (a session made on one worker is read on the
 * next). So :memory: is a file on tmpfs (/dev/shm, else /tmp) named after the
 * process that made it. */

/* Makes a fresh, empty path for this process's shared in-memory database
 * (caller frees), first removing the files of processes that no longer run. */
char *db_memory_create(void);
/* Removes the database file at path and its -wal, -shm and -journal files. */
void db_memory_remove(const char *path);

#endif
