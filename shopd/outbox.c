#include "shopd/outbox.h"
#include "shared/log.h"
#include "shared/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The subquery picks the rows so that LIMIT works without SQLite's optional
 * UPDATE ... LIMIT; the partial index orders_pending serves its WHERE. */
static const char SQL_CLAIM[] =
    "UPDATE orders SET lease_owner = $1, lease_until = $2"
    " WHERE seq IN (SELECT seq FROM orders WHERE status = 'pending' AND next_attempt_at <= $3"
    "               AND lease_until < $3 ORDER BY seq LIMIT $4)"
    " RETURNING seq, id, user_id, user_email, total_cents, currency, created_at, attempts, lease_until";
/* PostgreSQL: dispatchers of several hosts claim at once; each skips the rows
 * another is claiming right now instead of waiting for them (and then finding
 * them leased). */
static const char SQL_CLAIM_PG[] =
    "UPDATE orders SET lease_owner = $1, lease_until = $2"
    " WHERE seq IN (SELECT seq FROM orders WHERE status = 'pending' AND next_attempt_at <= $3"
    "               AND lease_until < $3 ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED)"
    " RETURNING seq, id, user_id, user_email, total_cents, currency, created_at, attempts, lease_until";
static const char SQL_LINES[] = "SELECT product_id, name, unit_price_cents, quantity FROM order_lines"
                                " WHERE order_id = $1 ORDER BY product_id";
static const char SQL_RENEW[] =
    "UPDATE orders SET lease_until = $3 WHERE id = $1 AND lease_owner = $2 AND status = 'pending'";
static const char SQL_SENT[] = "UPDATE orders SET status = 'sent', sent_at = $2, lease_owner = NULL,"
                               " lease_until = 0, last_error = NULL WHERE id = $1 AND status = 'pending'";
static const char SQL_RETRY[] =
    "UPDATE orders SET attempts = attempts + 1, next_attempt_at = $3, last_error = $4, lease_owner = NULL,"
    " lease_until = 0 WHERE id = $1 AND lease_owner = $2 AND status = 'pending'";
static const char SQL_FAILED[] =
    "UPDATE orders SET status = 'failed', attempts = attempts + 1, last_error = $3, lease_owner = NULL,"
    " lease_until = 0 WHERE id = $1 AND lease_owner = $2 AND status = 'pending'";
static const char SQL_RELEASE[] = "UPDATE orders SET lease_owner = NULL, lease_until = 0"
                                  " WHERE id = $1 AND lease_owner = $2 AND status = 'pending'";
static const char SQL_RELEASE_ALL[] = "UPDATE orders SET lease_owner = NULL, lease_until = 0"
                                      " WHERE lease_owner = $1 AND status = 'pending'";
static const char SQL_OWNERS[] = "SELECT DISTINCT lease_owner FROM orders WHERE status = 'pending'"
                                 " AND lease_until >= $1 AND lease_owner IS NOT NULL";
static const char SQL_PENDING[] = "SELECT count(*) FROM orders WHERE status = 'pending'";

static char *column_dup(struct db_stmt *st, int col)
{
    const char *s = db_column_text(st, col);
    return xstrdup(s ? s : "");
}

struct claimed {
    int64_t seq;
    struct outbox_order order;
};

static int by_seq(const void *a, const void *b)
{
    int64_t x = ((const struct claimed *)a)->seq, y = ((const struct claimed *)b)->seq;
    return (x > y) - (x < y);
}

static int read_lines(struct db *db, struct outbox_order *o)
{
    struct db_stmt *st = db_stmt(db, SQL_LINES);
    db_bind_text(st, 1, o->id);
    size_t cap = 0;
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        if (o->nlines == cap) {
            cap = cap ? cap * 2 : 4;
            o->lines = xrealloc(o->lines, cap * sizeof(*o->lines));
        }
        struct outbox_line *l = &o->lines[o->nlines++];
        l->product_id = db_column_int64(st, 0);
        l->name = column_dup(st, 1);
        l->unit_price_cents = db_column_int64(st, 2);
        l->quantity = db_column_int64(st, 3);
    }
    db_done(st);
    return rc == DB_DONE ? 0 : -1;
}

int outbox_claim(struct db *db, const char *owner, int64_t now, int lease_seconds, size_t max,
                 struct outbox_order **out)
{
    *out = NULL;
    if (max == 0)
        return 0;
    if (db_begin_write(db) < 0) {
        db_log_error(db, "outbox: cannot begin claim");
        return -1;
    }
    struct claimed *c = xcalloc(max, sizeof(*c));
    size_t n = 0;
    struct db_stmt *st = db_stmt_for(db, SQL_CLAIM, SQL_CLAIM_PG);
    db_bind_text(st, 1, owner);
    db_bind_int64(st, 2, now + lease_seconds);
    db_bind_int64(st, 3, now);
    db_bind_int64(st, 4, (int64_t)max);
    int rc;
    /* RETURNING yields at most max rows; the bound check only guards the array. */
    while ((rc = db_step(st)) == DB_ROW && n < max) {
        struct claimed *x = &c[n++];
        x->seq = db_column_int64(st, 0);
        x->order.id = column_dup(st, 1);
        x->order.user_id = db_column_int64(st, 2);
        x->order.user_email = column_dup(st, 3);
        x->order.total_cents = db_column_int64(st, 4);
        x->order.currency = column_dup(st, 5);
        x->order.created_at = column_dup(st, 6);
        x->order.attempts = db_column_int64(st, 7);
        x->order.lease_until = db_column_int64(st, 8);
    }
    db_done(st);
    bool ok = rc == DB_DONE;
    for (size_t i = 0; ok && i < n; i++)
        ok = read_lines(db, &c[i].order) == 0;
    if (!ok || db_commit(db) < 0) {
        db_log_error(db, "outbox: claim failed");
        db_rollback(db);
        for (size_t i = 0; i < n; i++)
            outbox_orders_free(&c[i].order, 1);
        free(c);
        return -1;
    }
    /* RETURNING promises no order; deliver oldest first. */
    qsort(c, n, sizeof(*c), by_seq);
    struct outbox_order *orders = n ? xcalloc(n, sizeof(*orders)) : NULL;
    for (size_t i = 0; i < n; i++)
        orders[i] = c[i].order;
    free(c);
    *out = orders;
    return (int)n;
}

void outbox_order_cleanup(struct outbox_order *o)
{
    free(o->id);
    free(o->user_email);
    free(o->currency);
    free(o->created_at);
    for (size_t j = 0; j < o->nlines; j++)
        free(o->lines[j].name);
    free(o->lines);
    *o = (struct outbox_order){0};
}

void outbox_orders_free(struct outbox_order *orders, size_t n)
{
    if (!orders)
        return;
    for (size_t i = 0; i < n; i++)
        outbox_order_cleanup(&orders[i]);
    free(orders);
}

/* Steps a single-row UPDATE: 1 when a row changed, 0 when none, -1 on error. */
static int step_update(struct db *db, struct db_stmt *st, const char *what)
{
    int rc = db_step(st);
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "outbox: %s failed", what);
        return -1;
    }
    return db_changes(db) > 0 ? 1 : 0;
}

int outbox_renew(struct db *db, const char *id, const char *owner, int64_t until)
{
    struct db_stmt *st = db_stmt(db, SQL_RENEW);
    db_bind_text(st, 1, id);
    db_bind_text(st, 2, owner);
    db_bind_int64(st, 3, until);
    return step_update(db, st, "lease renewal");
}

int outbox_mark_sent(struct db *db, const char *id, int64_t now)
{
    time_t t = (time_t)now;
    struct tm tm;
    char stamp[32];
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    struct db_stmt *st = db_stmt(db, SQL_SENT);
    db_bind_text(st, 1, id);
    db_bind_text(st, 2, stamp);
    return step_update(db, st, "mark sent");
}

int outbox_schedule_retry(struct db *db, const char *id, const char *owner, int64_t next_attempt_at,
                          const char *error)
{
    struct db_stmt *st = db_stmt(db, SQL_RETRY);
    db_bind_text(st, 1, id);
    db_bind_text(st, 2, owner);
    db_bind_int64(st, 3, next_attempt_at);
    db_bind_text(st, 4, error);
    return step_update(db, st, "schedule retry");
}

int outbox_mark_failed(struct db *db, const char *id, const char *owner, const char *error)
{
    struct db_stmt *st = db_stmt(db, SQL_FAILED);
    db_bind_text(st, 1, id);
    db_bind_text(st, 2, owner);
    db_bind_text(st, 3, error);
    return step_update(db, st, "mark failed");
}

int outbox_release(struct db *db, const char *id, const char *owner)
{
    struct db_stmt *st = db_stmt(db, SQL_RELEASE);
    db_bind_text(st, 1, id);
    db_bind_text(st, 2, owner);
    return step_update(db, st, "release");
}

int outbox_release_all(struct db *db, const char *owner)
{
    struct db_stmt *st = db_stmt(db, SQL_RELEASE_ALL);
    db_bind_text(st, 1, owner);
    int rc = db_step(st);
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "outbox: release failed");
        return -1;
    }
    return db_changes(db);
}

int outbox_each_lease_owner(struct db *db, int64_t now, void (*fn)(const char *owner, void *arg), void *arg)
{
    struct db_stmt *st = db_stmt(db, SQL_OWNERS);
    db_bind_int64(st, 1, now);
    int rc;
    while ((rc = db_step(st)) == DB_ROW)
        fn(db_column_text(st, 0), arg);
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "outbox: reading lease owners failed");
        return -1;
    }
    return 0;
}

int64_t outbox_pending_count(struct db *db)
{
    struct db_stmt *st = db_stmt(db, SQL_PENDING);
    int64_t n = db_step(st) == DB_ROW ? db_column_int64(st, 0) : -1;
    db_done(st);
    return n;
}
