#include "shopd/catalog.h"
#include "shared/log.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char SQL_LIST[] =
    "SELECT id, name, description, price_cents, stock, image_url FROM products ORDER BY id";
static const char SQL_GET[] =
    "SELECT id, name, description, price_cents, stock, image_url FROM products WHERE id = $1";
static const char SQL_INSERT[] = "INSERT INTO products (name, description, price_cents, stock, image_url, "
                                 "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id";
static const char SQL_UPDATE[] = "UPDATE products SET"
                                 " name = coalesce($2, name),"
                                 " description = coalesce($3, description),"
                                 " price_cents = coalesce($4, price_cents),"
                                 " stock = coalesce($5, stock),"
                                 " image_url = coalesce($6, image_url),"
                                 " updated_at = $7 WHERE id = $1";
static const char SQL_DELETE[] = "DELETE FROM products WHERE id = $1";
static const char SQL_COUNT[] = "SELECT count(*) FROM products";

/* Search and pages: $1 the search text (NULL: all), $2 and $3 the id and sort
   key of the cursor's product (NULL: from the start), $4 the row limit (-1:
   all), $5 the offset. lower() folds ASCII letters only: SQLite without ICU
   knows no other case mapping. One statement per sort, so each is planned once. */
#define SEARCH_WHERE                                                                                         \
    " WHERE ($1 IS NULL OR instr(lower(name), lower($1)) > 0 OR instr(lower(description), lower($1)) > 0)"
#define SEARCH_SQL(key, cmp, dir)                                                                            \
    "SELECT id, name, description, price_cents, stock, image_url FROM products" SEARCH_WHERE                 \
    " AND ($2 IS NULL OR (" key ", id) " cmp " ($3, $2))"                                                    \
    " ORDER BY " key " " dir ", id " dir " LIMIT $4 OFFSET $5"
static const char *const SQL_SEARCH[] = {
    [CATALOG_SORT_ID] = SEARCH_SQL("id", ">", "ASC"),
    [CATALOG_SORT_ID_DESC] = SEARCH_SQL("id", "<", "DESC"),
    [CATALOG_SORT_NAME] = SEARCH_SQL("name COLLATE NOCASE", ">", "ASC"),
    [CATALOG_SORT_NAME_DESC] = SEARCH_SQL("name COLLATE NOCASE", "<", "DESC"),
    [CATALOG_SORT_PRICE] = SEARCH_SQL("price_cents", ">", "ASC"),
    [CATALOG_SORT_PRICE_DESC] = SEARCH_SQL("price_cents", "<", "DESC"),
};
static const char SQL_SEARCH_COUNT[] = "SELECT count(*) FROM products" SEARCH_WHERE;

/* PostgreSQL has strpos for instr; NOCASE becomes lower() in byte order (the
   "C" collation), as SQLite compares; "all rows" is LIMIT NULL, not -1; and a
   parameter first met in "IS NULL" needs its type said. */
#define SEARCH_WHERE_PG                                                                                      \
    " WHERE (CAST($1 AS TEXT) IS NULL OR strpos(lower(name), lower(CAST($1 AS TEXT))) > 0"                   \
    " OR strpos(lower(description), lower(CAST($1 AS TEXT))) > 0)"
#define SEARCH_SQL_PG(key, cursor_key, cmp, dir)                                                             \
    "SELECT id, name, description, price_cents, stock, image_url FROM products" SEARCH_WHERE_PG              \
    " AND (CAST($2 AS BIGINT) IS NULL OR (" key ", id) " cmp " (" cursor_key ", CAST($2 AS BIGINT)))"        \
    " ORDER BY " key " " dir ", id " dir " LIMIT nullif(CAST($4 AS BIGINT), -1) OFFSET $5"
#define CURSOR_NUMBER "CAST($3 AS BIGINT)"
#define CURSOR_NAME "lower(CAST($3 AS TEXT))"
static const char *const SQL_SEARCH_PG[] = {
    [CATALOG_SORT_ID] = SEARCH_SQL_PG("id", CURSOR_NUMBER, ">", "ASC"),
    [CATALOG_SORT_ID_DESC] = SEARCH_SQL_PG("id", CURSOR_NUMBER, "<", "DESC"),
    [CATALOG_SORT_NAME] = SEARCH_SQL_PG("lower(name) COLLATE \"C\"", CURSOR_NAME, ">", "ASC"),
    [CATALOG_SORT_NAME_DESC] = SEARCH_SQL_PG("lower(name) COLLATE \"C\"", CURSOR_NAME, "<", "DESC"),
    [CATALOG_SORT_PRICE] = SEARCH_SQL_PG("price_cents", CURSOR_NUMBER, ">", "ASC"),
    [CATALOG_SORT_PRICE_DESC] = SEARCH_SQL_PG("price_cents", CURSOR_NUMBER, "<", "DESC"),
};
static const char SQL_SEARCH_COUNT_PG[] = "SELECT count(*) FROM products" SEARCH_WHERE_PG;

void catalog_format_price(int64_t cents, char *buf, size_t len)
{
    int64_t a = cents < 0 ? -cents : cents;
    snprintf(buf, len, "%s%" PRId64 ".%02" PRId64, cents < 0 ? "-" : "", a / 100, a % 100);
}

json_t *catalog_price_json(int64_t cents)
{
    return json_real((double)cents / 100.0);
}

static json_t *row_to_json(struct db_stmt *st)
{
    int64_t cents = db_column_int64(st, 3);
    return json_pack("{s:I, s:s, s:s, s:o, s:I, s:I, s:s}", "id", (json_int_t)db_column_int64(st, 0), "name",
                     db_column_text(st, 1), "description", db_column_text(st, 2), "price",
                     catalog_price_json(cents), "price_cents", (json_int_t)cents, "stock",
                     (json_int_t)db_column_int64(st, 4), "image_url", db_column_text(st, 5));
}

json_t *catalog_list(struct db *db)
{
    struct db_stmt *st = db_stmt(db, SQL_LIST);
    json_t *list = json_array();
    int rc;
    while ((rc = db_step(st)) == DB_ROW)
        json_array_append_new(list, row_to_json(st));
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "catalog: list failed");
        json_decref(list);
        return NULL;
    }
    return list;
}

static void bind_search_text(struct db_stmt *st, const struct catalog_query *q)
{
    if (q->q[0])
        db_bind_text(st, 1, q->q);
}

enum outcome catalog_search(struct db *db, const struct catalog_query *q, struct catalog_results *out)
{
    memset(out, 0, sizeof(*out));
    struct db_stmt *st = db_stmt_for(db, SQL_SEARCH_COUNT, SQL_SEARCH_COUNT_PG);
    bind_search_text(st, q);
    int rc = db_step(st);
    if (rc == DB_ROW)
        out->total = db_column_int64(st, 0);
    db_done(st);
    if (rc != DB_ROW) {
        db_log_error(db, "catalog: count failed");
        return OUT_ERROR;
    }
    st = db_stmt_for(db, SQL_SEARCH[q->sort], SQL_SEARCH_PG[q->sort]);
    bind_search_text(st, q);
    if (q->has_cursor) {
        db_bind_int64(st, 2, q->after_id);
        if (q->sort == CATALOG_SORT_NAME || q->sort == CATALOG_SORT_NAME_DESC)
            db_bind_text(st, 3, q->after_name);
        else if (q->sort == CATALOG_SORT_PRICE || q->sort == CATALOG_SORT_PRICE_DESC)
            db_bind_int64(st, 3, q->after_price_cents);
        else
            db_bind_int64(st, 3, q->after_id);
    }
    /* One row more than the page holds tells whether a next page exists. */
    db_bind_int64(st, 4, q->limit ? q->limit + 1 : -1);
    db_bind_int64(st, 5, q->page > 1 ? (q->page - 1) * q->limit : 0);
    out->items = json_array();
    while ((rc = db_step(st)) == DB_ROW) {
        if (q->limit && (int64_t)json_array_size(out->items) == q->limit) {
            out->has_more = true;
            break;
        }
        json_array_append_new(out->items, row_to_json(st));
    }
    db_done(st);
    if (rc != DB_ROW && rc != DB_DONE) {
        db_log_error(db, "catalog: search failed");
        json_decref(out->items);
        out->items = NULL;
        return OUT_ERROR;
    }
    size_t n = json_array_size(out->items);
    if (out->has_more && n > 0) {
        json_t *last = json_array_get(out->items, n - 1);
        catalog_cursor_encode(q->sort, json_integer_value(json_object_get(last, "id")),
                              json_integer_value(json_object_get(last, "price_cents")),
                              json_string_value(json_object_get(last, "name")), out->next_cursor,
                              sizeof(out->next_cursor));
    }
    return OUT_OK;
}

enum outcome catalog_get(struct db *db, int64_t id, json_t **out)
{
    struct db_stmt *st = db_stmt(db, SQL_GET);
    db_bind_int64(st, 1, id);
    int rc = db_step(st);
    enum outcome o = OUT_NOT_FOUND;
    if (rc == DB_ROW) {
        *out = row_to_json(st);
        o = OUT_OK;
    } else if (rc != DB_DONE) {
        db_log_error(db, "catalog: get %" PRId64 " failed", id);
        o = OUT_ERROR;
    }
    db_done(st);
    return o;
}

/* Copies a trimmed string field; rejects wrong types, control characters and overlong text. */
static enum outcome take_string(json_t *body, const char *key, bool required, bool allow_empty, char *dst,
                                size_t cap, bool *has, char *msg, size_t msglen)
{
    json_t *v = json_object_get(body, key);
    *has = false;
    if (!v || json_is_null(v)) {
        if (required) {
            snprintf(msg, msglen, "%s is required", key);
            return OUT_INVALID;
        }
        return OUT_OK;
    }
    if (!json_is_string(v)) {
        snprintf(msg, msglen, "%s must be a string", key);
        return OUT_INVALID;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (!allow_empty && n == 0) {
        snprintf(msg, msglen, "%s must not be empty", key);
        return OUT_INVALID;
    }
    if (n >= cap) {
        snprintf(msg, msglen, "%s is longer than %zu characters", key, cap - 1);
        return OUT_INVALID;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\n' && s[i] != '\t') {
            snprintf(msg, msglen, "%s contains control characters", key);
            return OUT_INVALID;
        }
    memcpy(dst, s, n);
    dst[n] = '\0';
    *has = true;
    return OUT_OK;
}

/* Largest price and stock we accept: far above any real shop, far below overflow. */
#define MAX_PRICE_CENTS 100000000000LL
#define MAX_STOCK 1000000000LL

static enum outcome take_price(json_t *body, bool required, struct product_input *out, char *msg,
                               size_t msglen)
{
    json_t *cents = json_object_get(body, "price_cents");
    json_t *price = json_object_get(body, "price");
    out->has_price = false;
    if (cents && !json_is_null(cents)) {
        if (!json_is_integer(cents) || json_integer_value(cents) < 0 ||
            json_integer_value(cents) > MAX_PRICE_CENTS) {
            snprintf(msg, msglen, "price_cents must be a non-negative integer");
            return OUT_INVALID;
        }
        out->price_cents = json_integer_value(cents);
        out->has_price = true;
        return OUT_OK;
    }
    if (!price || json_is_null(price)) {
        if (required) {
            snprintf(msg, msglen, "price is required");
            return OUT_INVALID;
        }
        return OUT_OK;
    }
    if (!json_is_number(price)) {
        snprintf(msg, msglen, "price must be a number");
        return OUT_INVALID;
    }
    double dollars = json_number_value(price);
    if (!isfinite(dollars) || dollars < 0) {
        snprintf(msg, msglen, "price must be a non-negative number");
        return OUT_INVALID;
    }
    double c = dollars * 100.0;
    if (c > (double)MAX_PRICE_CENTS) {
        snprintf(msg, msglen, "price is too large");
        return OUT_INVALID;
    }
    double rounded = round(c);
    if (fabs(c - rounded) > 1e-6 * (1 + c)) {
        snprintf(msg, msglen, "price must not have more than two decimals");
        return OUT_INVALID;
    }
    out->price_cents = (int64_t)rounded;
    out->has_price = true;
    return OUT_OK;
}

static enum outcome take_stock(json_t *body, bool required, struct product_input *out, char *msg,
                               size_t msglen)
{
    json_t *v = json_object_get(body, "stock");
    out->has_stock = false;
    if (!v || json_is_null(v)) {
        if (required) {
            snprintf(msg, msglen, "stock is required");
            return OUT_INVALID;
        }
        return OUT_OK;
    }
    /* A whole-valued real (3.0) is accepted: some clients send every number as a float. */
    double d = json_is_real(v) ? json_real_value(v) : 0;
    if (!(json_is_integer(v) || (json_is_real(v) && d == floor(d) && fabs(d) <= (double)MAX_STOCK))) {
        snprintf(msg, msglen, "stock must be a non-negative integer");
        return OUT_INVALID;
    }
    int64_t n = json_is_integer(v) ? json_integer_value(v) : (int64_t)d;
    if (n < 0 || n > MAX_STOCK) {
        snprintf(msg, msglen, "stock must be a non-negative integer");
        return OUT_INVALID;
    }
    out->stock = n;
    out->has_stock = true;
    return OUT_OK;
}

enum outcome catalog_parse_input(json_t *body, bool require_all, struct product_input *out, char *msg,
                                 size_t msglen)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(body)) {
        snprintf(msg, msglen, "expected a JSON object");
        return OUT_INVALID;
    }
    enum outcome o;
    if ((o = take_string(body, "name", require_all, false, out->name, sizeof(out->name), &out->has_name, msg,
                         msglen)) != OUT_OK ||
        (o = take_price(body, require_all, out, msg, msglen)) != OUT_OK ||
        (o = take_stock(body, require_all, out, msg, msglen)) != OUT_OK ||
        (o = take_string(body, "description", false, true, out->description, sizeof(out->description),
                         &out->has_description, msg, msglen)) != OUT_OK ||
        (o = take_string(body, "image_url", false, true, out->image_url, sizeof(out->image_url),
                         &out->has_image_url, msg, msglen)) != OUT_OK)
        return o;
    /* Only site-relative or http(s) images: a javascript: URL must never reach an <img src>. */
    if (out->has_image_url && out->image_url[0] && out->image_url[0] != '/' &&
        strncmp(out->image_url, "https://", 8) != 0 && strncmp(out->image_url, "http://", 7) != 0) {
        snprintf(msg, msglen, "image_url must start with / or http(s)://");
        return OUT_INVALID;
    }
    if (out->has_image_url && strncmp(out->image_url, "//", 2) == 0) {
        snprintf(msg, msglen, "image_url must start with / or http(s)://");
        return OUT_INVALID;
    }
    if (!require_all && !out->has_name && !out->has_price && !out->has_stock && !out->has_description &&
        !out->has_image_url) {
        snprintf(msg, msglen, "nothing to change: give name, description, price, stock or image_url");
        return OUT_INVALID;
    }
    return OUT_OK;
}

enum outcome catalog_create(struct db *db, const struct product_input *in, int64_t *id)
{
    struct db_stmt *st = db_stmt(db, SQL_INSERT);
    db_bind_text(st, 1, in->name);
    db_bind_text(st, 2, in->has_description ? in->description : "");
    db_bind_int64(st, 3, in->price_cents);
    db_bind_int64(st, 4, in->stock);
    db_bind_text(st, 5, in->has_image_url ? in->image_url : "");
    db_bind_int64(st, 6, (int64_t)time(NULL));
    int rc = db_step(st);
    if (rc == DB_ROW) {
        *id = db_column_int64(st, 0);
        rc = db_step(st); /* the write is done (and may still fail) only then */
    }
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "catalog: insert failed");
        return OUT_ERROR;
    }
    return OUT_OK;
}

enum outcome catalog_update(struct db *db, int64_t id, const struct product_input *in)
{
    struct db_stmt *st = db_stmt(db, SQL_UPDATE);
    db_bind_int64(st, 1, id);
    if (in->has_name)
        db_bind_text(st, 2, in->name);
    if (in->has_description)
        db_bind_text(st, 3, in->description);
    if (in->has_price)
        db_bind_int64(st, 4, in->price_cents);
    if (in->has_stock)
        db_bind_int64(st, 5, in->stock);
    if (in->has_image_url)
        db_bind_text(st, 6, in->image_url);
    db_bind_int64(st, 7, (int64_t)time(NULL));
    int rc = db_step(st);
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "catalog: update %" PRId64 " failed", id);
        return OUT_ERROR;
    }
    return db_changes(db) ? OUT_OK : OUT_NOT_FOUND;
}

enum outcome catalog_delete(struct db *db, int64_t id)
{
    struct db_stmt *st = db_stmt(db, SQL_DELETE);
    db_bind_int64(st, 1, id);
    int rc = db_step(st);
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "catalog: delete %" PRId64 " failed", id);
        return OUT_ERROR;
    }
    return db_changes(db) ? OUT_OK : OUT_NOT_FOUND;
}

static const struct {
    const char *name, *description, *image;
    int64_t price_cents, stock;
} default_inventory[] = {
    {"Apple", "Crisp red apples, picked this week.", "/static/img/apple.svg", 50, 100},
    {"Banana", "Sweet ripe bananas, sold by the piece.", "/static/img/banana.svg", 25, 150},
    {"Orange", "Juicy oranges, full of vitamin C.", "/static/img/orange.svg", 75, 80},
    {"Strawberries", "A punnet of fragrant strawberries.", "/static/img/strawberry.svg", 350, 40},
    {"Grapes", "Seedless green grapes, one bunch.", "/static/img/grapes.svg", 299, 50},
    {"Pineapple", "A whole golden pineapple.", "/static/img/pineapple.svg", 399, 25},
    {"Watermelon", "A big summer watermelon.", "/static/img/watermelon.svg", 599, 15},
    {"Lemon", "Bright yellow lemons for tea and cakes.", "/static/img/lemon.svg", 40, 120},
};

int catalog_seed_if_empty(struct db *db)
{
    if (db_begin_write(db) < 0) {
        db_log_error(db, "catalog: cannot seed");
        return -1;
    }
    struct db_stmt *st = db_stmt(db, SQL_COUNT);
    int64_t n = db_step(st) == DB_ROW ? db_column_int64(st, 0) : -1;
    db_done(st);
    if (n != 0) {
        db_rollback(db);
        return n < 0 ? -1 : 0;
    }
    for (size_t i = 0; i < sizeof(default_inventory) / sizeof(default_inventory[0]); i++) {
        struct product_input in = {.has_description = true, .has_image_url = true};
        snprintf(in.name, sizeof(in.name), "%s", default_inventory[i].name);
        snprintf(in.description, sizeof(in.description), "%s", default_inventory[i].description);
        snprintf(in.image_url, sizeof(in.image_url), "%s", default_inventory[i].image);
        in.price_cents = default_inventory[i].price_cents;
        in.stock = default_inventory[i].stock;
        int64_t id;
        if (catalog_create(db, &in, &id) != OUT_OK) {
            db_rollback(db);
            return -1;
        }
    }
    if (db_commit(db) < 0) {
        db_rollback(db);
        return -1;
    }
    log_info("catalog: seeded the default inventory");
    return 0;
}
