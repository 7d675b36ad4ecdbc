/* checkout: turning a cart into an order, and the order history.
 *
 * checkout_place runs one BEGIN IMMEDIATE transaction: it reads the cart, checks
 * and takes the stock, writes the order and its lines with status `pending` (the
 * order row is the dispatcher's outbox entry), and empties the cart. Either all
 * of it happens or none: there is no oversell and no order without its lines. */
#ifndef SHOPD_CHECKOUT_H
#define SHOPD_CHECKOUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "shopd/db.h"
#include "shopd/outcome.h"

#define CHECKOUT_MAX_KEY 128

struct checkout_result {
    char order_id[37];
    int64_t total_cents;
    char status[16];
    bool replayed; /* the idempotency key named an earlier order: nothing new was written */
    /* When prices changed since the lines were added and they were not
       accepted: the changed lines [{product_id, name, old_price_cents,
       old_price, price_cents, price, quantity}] (caller decrefs) and, in
       total_cents, the total at today's prices. NULL otherwise. */
    json_t *changed;
};

/* Places the order of user_id's cart at today's prices. idem_key (may be
 * NULL) makes a repeated call return the first call's order. OUT_CONFLICT for
 * an empty cart, missing stock, or (unless accept_price_changes) a price that
 * changed since its line was added, with out->changed set (the cart is kept in
 * each case), OUT_INVALID for a malformed key, OUT_ERROR. */
enum outcome checkout_place(struct db *db, int64_t user_id, const char *idem_key, bool accept_price_changes,
                            struct checkout_result *out, char *msg, size_t msglen);

/* The order an earlier checkout_place with idem_key placed, into *out (with
 * replayed set): 1 found, 0 none (or a malformed key), -1 database error. */
int checkout_find(struct db *db, int64_t user_id, const char *idem_key, struct checkout_result *out);

/* The user's orders, newest first, as a new JSON array (caller decrefs) of
 * {order_id, created_at, total_cents, total, currency, status, error, items:
 * [{product_id, name, unit_price_cents, unit_price, quantity, line_total_cents}]};
 * NULL on a database error. */
json_t *checkout_orders(struct db *db, int64_t user_id);

#endif
