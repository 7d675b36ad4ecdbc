/* orders: reading orders back, one or many, for the shopper who placed them and
 * for the shop's admins, and sending a failed order again.
 *
 * An order renders as {order_id, created_at, total_cents, total, currency,
 * status, sent_at, items: [{product_id, name, unit_price_cents, unit_price,
 * quantity, line_total_cents}]} plus, for admins, user_email, attempts and the
 * dispatcher's stored error. Shoppers never see that error: it is DynamoDB's
 * text, meant for the operator (orders_for_shopper replaces it with a notice).
 * Writing orders is checkout's job; delivering them the dispatcher's. */
#ifndef SHOPD_ORDERS_H
#define SHOPD_ORDERS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shopd/db.h"
#include "shopd/outcome.h"

/* What a shopper reads instead of the error of a failed dispatch. */
#define ORDERS_FAILED_NOTICE "We could not send your order yet; we are on it."

/* True for the form of an order id (a lowercase UUID), so that other text is
 * refused before it reaches the database. */
bool orders_id_valid(const char *id);

/* Order id as a new JSON object in *out (caller decrefs), with the admin
 * fields. user_id > 0 limits the lookup to that user's orders: another user's
 * order is OUT_NOT_FOUND, exactly like an unknown id, so ids cannot be probed.
 * OUT_OK, OUT_NOT_FOUND or OUT_ERROR. */
enum outcome orders_get(struct db *db, int64_t user_id, const char *id, json_t **out);

/* The newest orders (at most limit), of user_id (> 0) or of every user (0), as
 * a new JSON array with the admin fields (caller decrefs); NULL on error. */
json_t *orders_list(struct db *db, int64_t user_id, size_t limit);

/* Turns an order object (from this module or checkout_orders) into what its
 * shopper may see: "error" null whatever was stored, no admin fields, and
 * "notice" (ORDERS_FAILED_NOTICE) on a failed order. Returns order. */
json_t *orders_for_shopper(json_t *order);

/* Puts failed order id back to pending, due at once, with its attempts
 * cleared; its last error stays for the admins until it is sent. OUT_OK,
 * OUT_NOT_FOUND (no such order), OUT_CONFLICT (not failed) or OUT_ERROR. */
enum outcome orders_retry(struct db *db, const char *id);

#endif
