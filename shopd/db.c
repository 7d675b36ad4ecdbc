#include "shopd/db.h"
#include "shopd/db_engine.h"
#include "shared/log.h"
#include "shared/xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- DATABASE_URL ----------------------------------------------------------- */

/* The URL with the password of its user-info part replaced by "***". */
static char *redact_password(const char *url)
{
    const char *scheme_end = strstr(url, "://");
    if (!scheme_end)
        return xstrdup(url);
    const char *auth = scheme_end + 3;
    const char *auth_end = auth + strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth_end; p++)
        if (*p == '@')
            at = p; /* the last '@': a password may contain an escaped one only */
    if (!at)
        return xstrdup(url);
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (!colon)
        return xstrdup(url);
    return xasprintf("%.*s***%s", (int)(colon + 1 - url), url, at);
}

static int parse_sqlite(const char *url, struct db_target *t, char *err, size_t errlen)
{
    const char *path = url;
    if (strncmp(url, "sqlite:", 7) == 0) {
        if (strncmp(url, "sqlite:///", 10) != 0) {
            snprintf(err, errlen, "DATABASE_URL=%s: expected sqlite:///relative.db or sqlite:////absolute.db",
                     url);
            return -1;
        }
        path = url + 10; /* "sqlite:////abs" leaves "/abs"; "sqlite:///rel" leaves "rel" */
    }
    if (*path == '\0') {
        snprintf(err, errlen, "DATABASE_URL=%s names no database file", url);
        return -1;
    }
    t->engine = DB_SQLITE;
    t->memory = strcmp(path, ":memory:") == 0;
    t->path = t->memory ? NULL : xstrdup(path);
    t->display = xstrdup(path); /* the file, as the log and --check name it */
    return 0;
}

/* postgresql://, postgres:// and SQLAlchemy's postgresql+<driver>://. libpq
   reads the first two itself; the driver suffix is dropped. */
static int parse_postgres(const char *url, const char *rest, struct db_target *t, char *err, size_t errlen)
{
    t->engine = DB_POSTGRES;
    t->conninfo = xasprintf("postgresql://%s", rest);
    t->display = redact_password(t->conninfo);
    const char *auth = rest;
    const char *path = auth + strcspn(auth, "/?#");
    if (*path != '/' || path[1] == '\0' || path[1] == '?') {
        char *shown = redact_password(url);
        snprintf(err, errlen,
                 "DATABASE_URL=%s names no database (postgresql://user:password@host:port/dbname)", shown);
        free(shown);
        return -1;
    }
    return 0;
}

int db_target_parse(const char *url, struct db_target *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    if (!url || !*url) {
        snprintf(err, errlen, "DATABASE_URL is empty");
        return -1;
    }
    int rc;
    const char *scheme_end = strstr(url, "://");
    if (!scheme_end || strncmp(url, "sqlite:", 7) == 0) {
        rc = parse_sqlite(url, t, err, errlen);
    } else {
        size_t n = (size_t)(scheme_end - url);
        bool postgres = (n == 8 && strncmp(url, "postgres", 8) == 0) ||
                        (n >= 10 && strncmp(url, "postgresql", 10) == 0 && (n == 10 || url[10] == '+'));
        if (postgres) {
            rc = parse_postgres(url, scheme_end + 3, t, err, errlen);
        } else {
            char *shown = redact_password(url);
            snprintf(err, errlen, "DATABASE_URL=%s: expected sqlite:///file.db or postgresql://user@host/db",
                     shown);
            free(shown);
            rc = -1;
        }
    }
    if (rc < 0)
        db_target_free(t);
    return rc;
}

void db_target_free(struct db_target *t)
{
    free(t->path);
    free(t->conninfo);
    free(t->display);
    memset(t, 0, sizeof(*t));
}

void db_target_copy(struct db_target *dst, const struct db_target *src)
{
    *dst = *src;
    dst->path = src->path ? xstrdup(src->path) : NULL;
    dst->conninfo = src->conninfo ? xstrdup(src->conninfo) : NULL;
    dst->display = src->display ? xstrdup(src->display) : NULL;
}

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool db_target_same(const struct db_target *a, const struct db_target *b)
{
    return a->engine == b->engine && a->memory == b->memory && same_text(a->path, b->path) &&
           same_text(a->conninfo, b->conninfo);
}

/* --- connections -------------------------------------------------------------- */

struct db *db_open(const struct db_target *t, char *err, size_t errlen)
{
    if (t->engine == DB_POSTGRES)
        return db_postgres_open(t->conninfo, t->display, err, errlen);
    if (!t->path) {
        snprintf(err, errlen, "the in-memory database has no file yet");
        return NULL;
    }
    return db_sqlite_open(t->path, err, errlen);
}

int db_schema_version(const struct db_target *t, int *version, char *err, size_t errlen)
{
    if (t->engine == DB_POSTGRES)
        return db_postgres_schema_version(t->conninfo, t->display, version, err, errlen);
    if (t->memory) {
        *version = 0;
        return 0;
    }
    return db_sqlite_schema_version(t->path, version, err, errlen);
}

void db_close(struct db *db)
{
    if (db)
        db->ops->close(db);
}

enum db_engine db_engine(const struct db *db)
{
    return db->engine;
}

/* --- statements, transactions: the engine's ----------------------------------- */

static struct db_stmt *fresh(struct db_stmt *st)
{
    st->queued = st->stepped = false;
    return st;
}

struct db_stmt *db_stmt(struct db *db, const char *sql)
{
    return fresh(db->ops->stmt(db, sql));
}

struct db_stmt *db_stmt_for(struct db *db, const char *sqlite_sql, const char *postgres_sql)
{
    return fresh(db->ops->stmt(db, db->engine == DB_POSTGRES ? postgres_sql : sqlite_sql));
}

void db_bind_int64(struct db_stmt *st, int index, int64_t value)
{
    st->db->ops->bind_int64(st, index, value);
}

void db_bind_text(struct db_stmt *st, int index, const char *text)
{
    if (!text)
        st->db->ops->bind_null(st, index);
    else
        st->db->ops->bind_text(st, index, text);
}

void db_bind_null(struct db_stmt *st, int index)
{
    st->db->ops->bind_null(st, index);
}

/* The first failure of the transaction's sent or queued statements: db_commit
   refuses, and db_error tells it, until db_rollback. */
static void keep_send_failure(struct db *db)
{
    if (db->send_failed)
        return;
    db->send_failed = true;
    db->send_error = db->ops->error(db);
    snprintf(db->send_errmsg, sizeof(db->send_errmsg), "%s", db->ops->errmsg(db));
}

int db_send(struct db_stmt *st)
{
    struct db *db = st->db;
    int rc = 0;
    if (db->ops->send) {
        rc = db->ops->send(st);
    } else {
        int step;
        while ((step = db_step(st)) == DB_ROW)
            ;
        db_done(st);
        rc = step == DB_DONE ? 0 : -1;
    }
    if (rc < 0)
        keep_send_failure(db);
    return rc;
}

int db_queue(struct db_stmt *st)
{
    st->queued = true;
    st->stepped = false;
    if (st->db->ops->queue && st->db->ops->queue(st) < 0) {
        keep_send_failure(st->db);
        return -1;
    }
    return 0;
}

int db_step(struct db_stmt *st)
{
    if (!st->queued)
        return st->db->ops->step(st);
    /* After a failure PostgreSQL runs nothing more of the pipeline; SQLite,
       which runs a queued statement only now, is held to the same. */
    if (!st->stepped && st->db->send_failed)
        return DB_ERROR;
    st->stepped = true;
    int rc = st->db->ops->step(st);
    if (rc == DB_ERROR)
        keep_send_failure(st->db);
    return rc;
}

int64_t db_column_int64(struct db_stmt *st, int col)
{
    return st->db->ops->column_int64(st, col);
}

double db_column_double(struct db_stmt *st, int col)
{
    return st->db->ops->column_double(st, col);
}

const char *db_column_text(struct db_stmt *st, int col)
{
    return st->db->ops->column_text(st, col);
}

bool db_column_is_null(struct db_stmt *st, int col)
{
    return st->db->ops->column_is_null(st, col);
}

void db_done(struct db_stmt *st)
{
    st->db->ops->done(st);
    st->queued = st->stepped = false;
}

int64_t db_changes(struct db *db)
{
    return db->ops->changes(db);
}

int db_begin_write(struct db *db)
{
    db->send_failed = false;
    return db->ops->begin_write(db, true);
}

int db_begin_write_unsynced(struct db *db)
{
    db->send_failed = false;
    return db->ops->begin_write(db, false);
}

int db_commit(struct db *db)
{
    if (db->send_failed) {
        /* The engine recorded why, for db_error and db_errmsg. */
        db->ops->rollback(db);
        return -1;
    }
    return db->ops->commit(db);
}

void db_rollback(struct db *db)
{
    db->send_failed = false;
    db->ops->rollback(db);
}

int db_exec(struct db *db, const char *sql)
{
    return db->ops->exec(db, sql);
}

enum db_error db_error(struct db *db)
{
    return db->send_failed ? db->send_error : db->ops->error(db);
}

const char *db_errmsg(struct db *db)
{
    return db->send_failed ? db->send_errmsg : db->ops->errmsg(db);
}

void db_mark_take(struct db *db, struct db_mark *mark)
{
    db->ops->mark_take(db, mark);
}

bool db_unchanged_since(struct db *db, const struct db_mark *mark)
{
    return db->ops->unchanged_since(db, mark);
}

void db_log_error(struct db *db, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    enum db_error e = db_error(db);
    if (e == DB_ERR_BUSY || e == DB_ERR_UNAVAILABLE)
        log_debug("%s: %s", what, db_errmsg(db));
    else
        log_error("%s: %s", what, db_errmsg(db));
}

enum db_failure db_check_writable(struct db *db)
{
    uint64_t before = db_failure_count();
    if (db->ops->probe_write(db) < 0)
        return db_failure_count() != before ? db_last_failure() : DB_FAIL_IO;
    return db_failure_after_probe();
}
