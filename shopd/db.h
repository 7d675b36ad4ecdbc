/* db: the shop's SQLite database: opening, schema, cached prepared statements.
 *
 * One connection per process (each worker, the dispatcher). WAL mode and a busy
 * timeout let the workers of one or several shopd instances share the file. The
 * schema is versioned with PRAGMA user_version and migrated forward at open.
 * SQL text lives in the modules that own the tables (catalog.c, cart.c, ...);
 * this module only caches their prepared statements. */
#ifndef SHOPD_DB_H
#define SHOPD_DB_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;

/* Turns a DATABASE_URL (sqlite:///relative.db, sqlite:////absolute.db,
 * sqlite:///:memory:, or a plain path) into a file path. ":memory:" becomes
 * *is_memory = true and no path. Returns a heap path (caller frees), or NULL with
 * a reason in err. */
char *db_path_from_url(const char *url, bool *is_memory, char *err, size_t errlen);

/* Opens (creating if needed) the database file, applies pragmas and migrates the
 * schema. Returns the handle (free with db_close), or NULL with a reason in err. */
struct db *db_open(const char *path, char *err, size_t errlen);
void db_close(struct db *db);
sqlite3 *db_handle(struct db *db);

/* Returns the cached prepared statement for sql (a string constant: the pointer
 * is the cache key), reset and with its bindings cleared. Owned by db: callers
 * never finalize it; they call sqlite3_reset via db_done when finished. Aborts on
 * SQL that does not compile (a programming error). */
sqlite3_stmt *db_stmt(struct db *db, const char *sql);
/* Resets a statement obtained from db_stmt (releases read locks early). */
void db_done(sqlite3_stmt *stmt);

/* Transactions. begin_immediate takes the write lock up front so that a
 * read-then-write transaction cannot fail half way with SQLITE_BUSY. */
int db_begin_immediate(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);

/* Runs sql without results (schema, pragmas). Returns 0 or -1 (logged). */
int db_exec(struct db *db, const char *sql);
/* The last error text of the connection (owned by SQLite). */
const char *db_errmsg(struct db *db);
/* True when the database answers a trivial query (health checks). */
bool db_ping(struct db *db);

/* The schema version this build writes (PRAGMA user_version). */
#define DB_SCHEMA_VERSION 4

/* How long a statement waits for another process's write lock. */
#define DB_BUSY_TIMEOUT_MS 5000

/* --- availability ------------------------------------------------------------
 * Why writes fail when the fault is the database's, not the request's: the
 * answer is then 503 with Retry-After (never 500), /healthz says so, and the
 * log names the cause once when it starts. */
enum db_failure { DB_FAIL_NONE, DB_FAIL_BUSY, DB_FAIL_FULL, DB_FAIL_READONLY, DB_FAIL_IO };

/* How many statements of this process failed for one of those causes so far:
 * a request compares it before and after to learn whether its failure was one. */
uint64_t db_failure_count(void);
enum db_failure db_last_failure(void);
/* Logs "<what>: <SQLite's message>" for a statement that failed on db: at
 * error level, or at debug level when the failure is one of the causes above
 * (the cause was logged once already; one line per request would flood). */
void db_log_error(struct db *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A sentence for the answer and the log. Static. */
const char *db_failure_text(enum db_failure f);
/* Writes the health row (waiting at most a quarter second for the lock) and
 * returns why the database cannot take writes now, or DB_FAIL_NONE. */
enum db_failure db_check_writable(struct db *db);

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
