/* catalog: the products: listing, lookup, validation of admin input, changes,
 * and the default inventory. Serves both the JSON API and the HTML pages.
 *
 * A product renders as a JSON object {id, name, description, price, price_cents,
 * stock, image_url}: price is the decimal dollar amount (what the Flask app's
 * clients and seed data read), price_cents the exact integer. */
#ifndef SHOPD_CATALOG_H
#define SHOPD_CATALOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "shopd/catalog_query.h"
#include "shopd/db.h"
#include "shopd/outcome.h"

/* Validated admin input. A field not given has its has_ flag false. */
struct product_input {
    bool has_name, has_description, has_price, has_stock, has_image_url;
    char name[201];
    char description[2001];
    int64_t price_cents;
    int64_t stock;
    char image_url[501];
};

/* Checks a JSON object from POST (require_all: name, price and stock needed) or
 * PUT (any subset, at least one). Returns OUT_OK or OUT_INVALID with a message
 * such as "price must be a non-negative number". */
enum outcome catalog_parse_input(json_t *body, bool require_all, struct product_input *out, char *msg,
                                 size_t msglen);

/* All products by id, as a new JSON array (caller decrefs); NULL on a database error. */
json_t *catalog_list(struct db *db);
/* One page of a search (catalog_query.h says what q may ask). */
struct catalog_results {
    json_t *items; /* the products, a new JSON array (caller decrefs) */
    int64_t total; /* how many products match q->q, over all pages */
    bool has_more; /* another page follows */
    /* When has_more: the cursor that continues after this page (also for a
       page asked by number); else "". */
    char next_cursor[CATALOG_CURSOR_MAX];
};
/* Runs q. OUT_OK with *out filled, or OUT_ERROR (logged; out->items NULL). */
enum outcome catalog_search(struct db *db, const struct catalog_query *q, struct catalog_results *out);

/* One product as a new JSON object in *out (caller decrefs). OUT_OK, OUT_NOT_FOUND or OUT_ERROR. */
enum outcome catalog_get(struct db *db, int64_t id, json_t **out);
/* Creates a product from complete input; *id receives its id. */
enum outcome catalog_create(struct db *db, const struct product_input *in, int64_t *id);
/* Applies the given fields to product id. OUT_NOT_FOUND when it does not exist. */
enum outcome catalog_update(struct db *db, int64_t id, const struct product_input *in);
/* Deletes product id (its cart lines go with it; past order lines keep their copy). */
enum outcome catalog_delete(struct db *db, int64_t id);
/* Writes the default fruit inventory when the catalog is empty. Returns 0 or -1. */
int catalog_seed_if_empty(struct db *db);

/* Formats cents as a decimal string "12.50" into buf. */
void catalog_format_price(int64_t cents, char *buf, size_t len);
/* The JSON number for a price in cents (1250 -> 12.5). */
json_t *catalog_price_json(int64_t cents);

#endif
