/* outbox: the dispatcher's queue, which is the orders table itself.
 *
 * An order row with status 'pending' is an outbox entry. A dispatcher claims a
 * batch of due entries by writing its owner name and a lease expiry into them
 * (one BEGIN IMMEDIATE transaction, so two dispatchers on one database never
 * claim the same row while a lease runs), sends them, and then records the
 * outcome: sent, a retry at a later time, or parked as failed. A dispatcher that
 * dies simply lets its leases run out; the rows become claimable again.
 *
 * Times are unix seconds passed in by the caller, so the module is testable
 * without waiting for the clock. No HTTP here. */
#ifndef SHOPD_OUTBOX_H
#define SHOPD_OUTBOX_H

#include "shopd/db.h"

#include <stddef.h>
#include <stdint.h>

struct outbox_line {
    int64_t product_id;
    char *name;
    int64_t unit_price_cents;
    int64_t quantity;
};

struct outbox_order {
    char *id; /* UUID, the DynamoDB key */
    int64_t user_id;
    char *user_email;
    int64_t total_cents;
    char *currency;
    char *created_at; /* RFC 3339 UTC as written by checkout */
    int64_t attempts; /* failed attempts so far */
    int64_t lease_until;
    struct outbox_line *lines;
    size_t nlines;
};

/* Claims up to max pending orders that are due (next_attempt_at <= now) and not
 * leased by anyone (lease_until < now), oldest first, for owner until
 * now + lease_seconds, and reads them with their lines. On success returns the
 * number claimed (0 when none is due) and sets *out to an array the caller frees
 * with outbox_orders_free; on a database error returns -1 (logged), claims
 * nothing and sets *out to NULL. */
int outbox_claim(struct db *db, const char *owner, int64_t now, int lease_seconds, size_t max,
                 struct outbox_order **out);

/* Frees n orders returned by outbox_claim (NULL is a no-op). */
void outbox_orders_free(struct outbox_order *orders, size_t n);
/* Frees the fields of one order (taken out of a claimed array) and zeroes it. */
void outbox_order_cleanup(struct outbox_order *o);

/* Extends owner's lease on order id to until. Returns 1 when the lease was
 * still owner's (and is extended), 0 when it is no longer (another dispatcher
 * took the order over, or it is no longer pending), -1 on a database error. */
int outbox_renew(struct db *db, const char *id, const char *owner, int64_t until);

/* Marks order id as sent at now (sent_at, RFC 3339) and drops its lease and
 * error. Delivery is a fact about DynamoDB, not about who holds the lease, so
 * this applies to any pending order: a dispatcher whose lease ran out while it
 * sent still records a write that happened. Returns 1 when the row changed, 0
 * when it was not pending any more (already marked by someone), -1 on error. */
int outbox_mark_sent(struct db *db, const char *id, int64_t now);

/* Records a failed attempt of owner's order id: attempts + 1, next attempt at
 * next_attempt_at, error (copied) kept as last_error, lease released. Returns 1,
 * 0 when owner no longer holds the lease (nothing changed), or -1. */
int outbox_schedule_retry(struct db *db, const char *id, const char *owner, int64_t next_attempt_at,
                          const char *error);

/* Parks owner's order id as 'failed' with error (copied) as last_error, lease
 * released; the dispatcher never picks it up again. Returns 1, 0 when owner no
 * longer holds the lease, or -1. */
int outbox_mark_failed(struct db *db, const char *id, const char *owner, const char *error);

/* Gives up owner's lease on order id without counting an attempt (the order
 * was claimed but not sent). Returns 1, 0 when not owner's, or -1. */
int outbox_release(struct db *db, const char *id, const char *owner);

/* Gives up every lease owner holds on pending orders (at shutdown). Returns
 * the number released, or -1. */
int outbox_release_all(struct db *db, const char *owner);

/* Calls fn(owner, arg) for every distinct owner that holds an unexpired lease
 * (lease_until >= now) on a pending order. Returns 0, or -1 on error. fn must
 * not use db (the query is still running); the owner string lives only during
 * the call. */
int outbox_each_lease_owner(struct db *db, int64_t now, void (*fn)(const char *owner, void *arg), void *arg);

/* The number of pending orders, or -1 on error. */
int64_t outbox_pending_count(struct db *db);

#endif
