/* order_item: an order as a DynamoDB item (attribute-value JSON).
 *
 * The format is the contract with the consumers of the Orders table
 * (DESIGN.md): order_id (S), user_id (N), user_email (S), items (L of M with
 * product_id N, name S, unit_price N, quantity N), total (N, dollars),
 * total_cents (N), currency (S), created_at (S, RFC 3339 UTC). Money is
 * formatted from integer cents, never through floating point. */
#ifndef SHOPD_ORDER_ITEM_H
#define SHOPD_ORDER_ITEM_H

#include "shopd/outbox.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Writes cents as a decimal number of dollars with two decimals ("12.99",
 * "0.05", "-1.50") into buf (at least 24 bytes for any int64). */
void order_item_dollars(int64_t cents, char *buf, size_t len);

/* Returns a new item for order o (new reference, caller decrefs), or NULL when
 * a text field is not valid UTF-8 (jansson refuses it; such an order cannot be
 * represented in DynamoDB's JSON protocol). */
json_t *order_item_build(const struct outbox_order *o);

#endif
