/* db_engine: what an engine (db_sqlite.c, db_postgres.c) provides to db.c.
 *
 * db.c holds what both engines share (DATABASE_URL, the public functions of
 * db.h) and calls an engine through its table of operations. Only db.c and
 * the engines include this header. An engine reports each failing statement
 * to db_failures.h. */
#ifndef SHOPD_DB_ENGINE_H
#define SHOPD_DB_ENGINE_H

#include "shopd/db_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

struct db;
struct db_stmt;

struct db_ops {
    void (*close)(struct db *db);
    struct db_stmt *(*stmt)(struct db *db, const char *sql);
    void (*bind_int64)(struct db_stmt *st, int index, int64_t value);
    void (*bind_text)(struct db_stmt *st, int index, const char *text);
    void (*bind_null)(struct db_stmt *st, int index);
    /* NULL: db.c runs the statement at once. */
    int (*send)(struct db_stmt *st);
    /* NULL: the statement runs at its first step. */
    int (*queue)(struct db_stmt *st);
    int (*step)(struct db_stmt *st);
    int64_t (*column_int64)(struct db_stmt *st, int col);
    double (*column_double)(struct db_stmt *st, int col);
    const char *(*column_text)(struct db_stmt *st, int col);
    bool (*column_is_null)(struct db_stmt *st, int col);
    void (*done)(struct db_stmt *st);
    int64_t (*changes)(struct db *db);
    /* synced false: the commit need not wait for the disk (db_begin_write_unsynced). */
    int (*begin_write)(struct db *db, bool synced);
    int (*commit)(struct db *db);
    void (*rollback)(struct db *db);
    int (*exec)(struct db *db, const char *sql);
    enum db_error (*error)(struct db *db);
    const char *(*errmsg)(struct db *db);
    /* Runs the health write with a short lock wait; returns 0 or -1 (the
       failure is then noted with db_note_failure). */
    int (*probe_write)(struct db *db);
    void (*mark_take)(struct db *db, struct db_mark *mark);
    bool (*unchanged_since)(struct db *db, const struct db_mark *mark);
};

/* The first member of every engine's connection and statement. */
struct db {
    const struct db_ops *ops;
    enum db_engine engine;
    /* A db_send of the open transaction failed: db_commit refuses, and
       db_error tells this failure until db_rollback. */
    bool send_failed;
    enum db_error send_error;
    char send_errmsg[256];
};
struct db_stmt {
    struct db *db;
    /* db_queue'd, and whether its first db_step happened (db.c keeps a
       statement queued after a failed one from running, as PostgreSQL does). */
    bool queued, stepped;
};

/* Walks the shared dialect's SQL: returns N when s starts a parameter $N
 * outside quoted text, else 0, keeping *quote (the open quote character, or
 * 0) up to date. SQLite's engine renames the parameters with it, PostgreSQL's
 * counts them. */
static inline int db_param_at(const char *s, char *quote)
{
    if (*quote) {
        if (*s == *quote)
            *quote = 0;
        return 0;
    }
    if (*s == '\'' || *s == '"') {
        *quote = *s;
        return 0;
    }
    return *s == '$' && s[1] >= '0' && s[1] <= '9' ? atoi(s + 1) : 0;
}

/* Connects and migrates; NULL with one line in err. */
struct db *db_sqlite_open(const char *path, char *err, size_t errlen);
struct db *db_postgres_open(const char *conninfo, const char *display, char *err, size_t errlen);
int db_sqlite_schema_version(const char *path, int *version, char *err, size_t errlen);
int db_postgres_schema_version(const char *conninfo, const char *display, int *version, char *err,
                               size_t errlen);

#endif
