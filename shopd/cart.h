/* cart: each user's cart, kept in the database so that any worker of any shopd
 * instance sees the same cart. Quantities are checked against stock when they
 * change; checkout checks again, atomically. */
#ifndef SHOPD_CART_H
#define SHOPD_CART_H

#include <jansson.h>
#include <stdint.h>

#include "shopd/db.h"
#include "shopd/outcome.h"

#define CART_MAX_QUANTITY 1000000

/* The cart as a new JSON object (caller decrefs): {items: [{product_id, name,
 * price, price_cents, quantity, line_total_cents, line_total, image_url, stock,
 * added_price, added_price_cents, price_changed}], total_cents, total, count,
 * prices_changed}; NULL on a database error. price is the current price (what
 * checkout charges), added_price the one the line was added at. */
json_t *cart_view(struct db *db, int64_t user_id);
/* Number of units in the cart (for the navigation badge); -1 on error. */
int64_t cart_count(struct db *db, int64_t user_id);
/* Adds quantity (>= 1) of a product, on top of what the cart holds.
 * OUT_NOT_FOUND for an unknown product, OUT_CONFLICT above stock. */
enum outcome cart_add(struct db *db, int64_t user_id, int64_t product_id, int64_t quantity, char *msg,
                      size_t msglen);
/* Sets the quantity of a line; 0 removes it. OUT_NOT_FOUND when the product is
 * not in the cart (or does not exist), OUT_CONFLICT above stock. */
enum outcome cart_set(struct db *db, int64_t user_id, int64_t product_id, int64_t quantity, char *msg,
                      size_t msglen);
/* Removes a line. OUT_NOT_FOUND when it is not in the cart. */
enum outcome cart_remove(struct db *db, int64_t user_id, int64_t product_id);

/* The shopper accepts the current prices: every line's added price becomes the
 * current one, so checkout stops asking. expected_total_cents (-1: any) is the
 * total the shopper was shown; when the cart's total is another one by now,
 * nothing changes and the result is OUT_CONFLICT. */
enum outcome cart_accept_prices(struct db *db, int64_t user_id, int64_t expected_total_cents, char *msg,
                                size_t msglen);
/* The notes left for user_id by products deleted from their cart, oldest
 * first, as a new JSON array (caller decrefs) of {product_id, name, message};
 * they are deleted as they are read (each is shown once). NULL on a database
 * error. */
json_t *cart_take_notices(struct db *db, int64_t user_id);

#endif
