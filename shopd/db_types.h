/* db_types: the values that the database interface (db.h) and its engines
 * (db_engine.h) both speak. */
#ifndef SHOPD_DB_TYPES_H
#define SHOPD_DB_TYPES_H

#include <stdint.h>

enum db_engine { DB_SQLITE, DB_POSTGRES };

/* The schema version this build writes. */
#define DB_SCHEMA_VERSION 4

/* How long a statement waits for another connection's lock. */
#define DB_BUSY_TIMEOUT_MS 5000

/* Results of db_step. */
enum { DB_ERROR = -1, DB_ROW = 1, DB_DONE = 0 };

/* What the last failing statement of a connection ran into, for the modules to
 * react to: BUSY (another writer holds the lock, a deadlock or serialization
 * failure: trying again may pass), CONFLICT (a unique or check constraint
 * refused the row), UNAVAILABLE (the database cannot be reached, is read-only
 * or full), OTHER (a bug: bad SQL, wrong types). */
enum db_error { DB_ERR_NONE, DB_ERR_BUSY, DB_ERR_CONFLICT, DB_ERR_UNAVAILABLE, DB_ERR_OTHER };

/* Why writes fail when the fault is the database's, not the request's (see
 * db_failures.h). */
enum db_failure {
    DB_FAIL_NONE,
    DB_FAIL_BUSY,
    DB_FAIL_FULL,
    DB_FAIL_READONLY,
    DB_FAIL_IO,
    DB_FAIL_UNREACHABLE
};

/* A mark of what a connection has seen; db_unchanged_since (db.h) says whether
 * the database certainly has not changed since the mark was taken (SQLite:
 * PRAGMA data_version and the connection's own change count). PostgreSQL has
 * no such counter: it always says "maybe changed" and the caller reads its
 * version row. */
struct db_mark {
    int64_t a, b;
};

#endif
