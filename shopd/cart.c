#include "shopd/cart.h"
#include "shopd/catalog.h"
#include "shared/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

static const char SQL_VIEW[] = "SELECT p.id, p.name, p.price_cents, c.quantity, p.image_url, p.stock,"
                               " coalesce(c.unit_price_cents, p.price_cents)"
                               " FROM cart_items c JOIN products p ON p.id = c.product_id"
                               " WHERE c.user_id = $1 ORDER BY c.added_at, p.id";
static const char SQL_COUNT[] = "SELECT coalesce(sum(quantity), 0) FROM cart_items WHERE user_id = $1";
static const char SQL_PRODUCT_STOCK[] = "SELECT stock, name, price_cents FROM products WHERE id = $1";
/* PostgreSQL: the row stays locked to the end of the transaction, so that two
   adds of the same product cannot both pass the stock check. */
static const char SQL_PRODUCT_STOCK_PG[] =
    "SELECT stock, name, price_cents FROM products WHERE id = $1 FOR UPDATE";
static const char SQL_LINE_QTY[] = "SELECT quantity FROM cart_items WHERE user_id = $1 AND product_id = $2";
/* A line keeps the price it was first added at until the shopper accepts a
   change (cart_accept_prices): adding more of it does not silently accept one. */
static const char SQL_UPSERT[] =
    "INSERT INTO cart_items (user_id, product_id, quantity, added_at, unit_price_cents)"
    " VALUES ($1, $2, $3, $4, $5)"
    " ON CONFLICT (user_id, product_id) DO UPDATE SET quantity = excluded.quantity";
/* Adding in one statement: the line is made, or grows, only while it fits the
   stock, and returns its new quantity; no row back means the product is
   unknown or short (add_refused tells which). ON CONFLICT DO UPDATE adds to the
   line's latest version, so two adds of the shopper's at once both count, and
   it locks only that line: shoppers adding the same product do not wait for
   each other. The stock here is a courtesy check at the moment of adding;
   checkout takes stock under a guard (checkout.c), which is what stops an
   oversell. On PostgreSQL it is one round trip, and its commit another that
   does not wait for the disk (db_begin_write_unsynced: a cart line lost in a
   crash of the database server costs the shopper a click). */
static const char SQL_ADD[] =
    "INSERT INTO cart_items (user_id, product_id, quantity, added_at, unit_price_cents)"
    " SELECT $1, id, $3, $4, price_cents FROM products WHERE id = $2 AND stock >= $3"
    " ON CONFLICT (user_id, product_id) DO UPDATE SET quantity = cart_items.quantity + excluded.quantity"
    " WHERE cart_items.quantity + excluded.quantity <="
    " (SELECT stock FROM products p WHERE p.id = cart_items.product_id)"
    " RETURNING quantity";
static const char SQL_CHANGED_TOTALS[] =
    "SELECT coalesce(sum(p.price_cents * c.quantity), 0)"
    " FROM cart_items c JOIN products p ON p.id = c.product_id WHERE c.user_id = $1";
static const char SQL_ACCEPT_PRICES[] =
    "UPDATE cart_items SET unit_price_cents = (SELECT price_cents FROM products p WHERE p.id = product_id)"
    " WHERE user_id = $1";
static const char SQL_NOTICES[] = "SELECT product_id, name FROM cart_notices WHERE user_id = $1 ORDER BY id";
static const char SQL_CLEAR_NOTICES[] = "DELETE FROM cart_notices WHERE user_id = $1";
static const char SQL_DELETE_LINE[] = "DELETE FROM cart_items WHERE user_id = $1 AND product_id = $2";

json_t *cart_view(struct db *db, int64_t user_id)
{
    struct db_stmt *st = db_stmt(db, SQL_VIEW);
    db_bind_int64(st, 1, user_id);
    json_t *items = json_array();
    int64_t total = 0, count = 0, changed = 0;
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        int64_t price = db_column_int64(st, 2), qty = db_column_int64(st, 3);
        int64_t added = db_column_int64(st, 6);
        int64_t line = price * qty;
        total += line;
        count += qty;
        if (added != price)
            changed++;
        json_array_append_new(
            items, json_pack("{s:I, s:s, s:o, s:I, s:I, s:I, s:o, s:s, s:I, s:o, s:I, s:b}", "product_id",
                             (json_int_t)db_column_int64(st, 0), "name", db_column_text(st, 1), "price",
                             catalog_price_json(price), "price_cents", (json_int_t)price, "quantity",
                             (json_int_t)qty, "line_total_cents", (json_int_t)line, "line_total",
                             catalog_price_json(line), "image_url", db_column_text(st, 4), "stock",
                             (json_int_t)db_column_int64(st, 5), "added_price", catalog_price_json(added),
                             "added_price_cents", (json_int_t)added, "price_changed", added != price));
    }
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "cart: view failed");
        json_decref(items);
        return NULL;
    }
    return json_pack("{s:o, s:I, s:o, s:I, s:b}", "items", items, "total_cents", (json_int_t)total, "total",
                     catalog_price_json(total), "count", (json_int_t)count, "prices_changed", changed > 0);
}

int64_t cart_count(struct db *db, int64_t user_id)
{
    struct db_stmt *st = db_stmt(db, SQL_COUNT);
    db_bind_int64(st, 1, user_id);
    int64_t n = db_step(st) == DB_ROW ? db_column_int64(st, 0) : -1;
    db_done(st);
    return n;
}

/* Reads a product's stock; OUT_NOT_FOUND when it does not exist. */
static enum outcome product_stock(struct db *db, int64_t product_id, int64_t *stock, int64_t *price,
                                  char *name, size_t namelen)
{
    struct db_stmt *st = db_stmt_for(db, SQL_PRODUCT_STOCK, SQL_PRODUCT_STOCK_PG);
    db_bind_int64(st, 1, product_id);
    int rc = db_step(st);
    enum outcome o = OUT_NOT_FOUND;
    if (rc == DB_ROW) {
        *stock = db_column_int64(st, 0);
        snprintf(name, namelen, "%s", db_column_text(st, 1));
        *price = db_column_int64(st, 2);
        o = OUT_OK;
    } else if (rc != DB_DONE) {
        db_log_error(db, "cart: product lookup failed");
        o = OUT_ERROR;
    }
    db_done(st);
    return o;
}

/* Quantity of the line in the cart; 0 when absent, -1 on error. */
static int64_t line_quantity(struct db *db, int64_t user_id, int64_t product_id)
{
    struct db_stmt *st = db_stmt(db, SQL_LINE_QTY);
    db_bind_int64(st, 1, user_id);
    db_bind_int64(st, 2, product_id);
    int rc = db_step(st);
    int64_t q = rc == DB_ROW ? db_column_int64(st, 0) : rc == DB_DONE ? 0 : -1;
    db_done(st);
    return q;
}

/* Starts a cart change's transaction (db_begin_write_unsynced); false with
   msg set when the database cannot. */
static bool begin_cart_write(struct db *db, char *msg, size_t msglen)
{
    if (db_begin_write_unsynced(db) == 0)
        return true;
    db_log_error(db, "cart: begin failed");
    snprintf(msg, msglen, "database busy");
    return false;
}

static enum outcome write_line(struct db *db, int64_t user_id, int64_t product_id, int64_t quantity,
                               int64_t price_cents)
{
    struct db_stmt *st = db_stmt(db, SQL_UPSERT);
    db_bind_int64(st, 1, user_id);
    db_bind_int64(st, 2, product_id);
    db_bind_int64(st, 3, quantity);
    db_bind_int64(st, 4, (int64_t)time(NULL));
    db_bind_int64(st, 5, price_cents);
    int rc = db_step(st);
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "cart: write failed");
        return OUT_ERROR;
    }
    return OUT_OK;
}

/* Setting a line: read, check and write in one write transaction (on
   PostgreSQL with the product row locked). The last set wins over an add at
   the same moment, as a shopper who typed a quantity expects; like SQL_ADD's,
   its stock check is a courtesy and checkout's is the guard. */
static enum outcome set_line(struct db *db, int64_t user_id, int64_t product_id, int64_t quantity, char *msg,
                             size_t msglen)
{
    if (quantity < 0 || quantity > CART_MAX_QUANTITY) {
        snprintf(msg, msglen, "quantity must be a positive integer");
        return OUT_INVALID;
    }
    if (!begin_cart_write(db, msg, msglen))
        return OUT_ERROR;
    int64_t stock = 0, price = 0;
    char name[256];
    enum outcome o = product_stock(db, product_id, &stock, &price, name, sizeof(name));
    if (o != OUT_OK) {
        snprintf(msg, msglen, o == OUT_NOT_FOUND ? "Product not found" : "database error");
        goto done;
    }
    int64_t have = line_quantity(db, user_id, product_id);
    if (have < 0) {
        o = OUT_ERROR;
        snprintf(msg, msglen, "database error");
        goto done;
    }
    if (have == 0) {
        o = OUT_NOT_FOUND;
        snprintf(msg, msglen, "Product not in cart");
        goto done;
    }
    int64_t want = quantity;
    if (want == 0) {
        o = cart_remove(db, user_id, product_id);
        goto done;
    }
    if (want > stock) {
        o = OUT_CONFLICT;
        snprintf(msg, msglen, "Only %" PRId64 " of %s in stock", stock, name);
        goto done;
    }
    o = write_line(db, user_id, product_id, want, price);
    if (o != OUT_OK)
        snprintf(msg, msglen, "database error");
done:
    if (o == OUT_OK && db_commit(db) < 0) {
        db_log_error(db, "cart: commit failed");
        o = OUT_ERROR;
        snprintf(msg, msglen, "database error");
    }
    db_rollback(db);
    return o;
}

/* Why SQL_ADD wrote nothing: the product is unknown, or short of stock. */
static enum outcome add_refused(struct db *db, int64_t product_id, char *msg, size_t msglen)
{
    int64_t stock = 0;
    char name[256];
    struct db_stmt *st = db_stmt(db, SQL_PRODUCT_STOCK);
    db_bind_int64(st, 1, product_id);
    int rc = db_step(st);
    if (rc == DB_ROW) {
        stock = db_column_int64(st, 0);
        snprintf(name, sizeof(name), "%s", db_column_text(st, 1));
    }
    db_done(st);
    if (rc == DB_ROW) {
        snprintf(msg, msglen, "Only %" PRId64 " of %s in stock", stock, name);
        return OUT_CONFLICT;
    }
    if (rc == DB_DONE) {
        snprintf(msg, msglen, "Product not found");
        return OUT_NOT_FOUND;
    }
    db_log_error(db, "cart: product lookup failed");
    snprintf(msg, msglen, "database error");
    return OUT_ERROR;
}

enum outcome cart_add(struct db *db, int64_t user_id, int64_t product_id, int64_t quantity, char *msg,
                      size_t msglen)
{
    if (quantity < 1 || quantity > CART_MAX_QUANTITY) {
        snprintf(msg, msglen, "quantity must be a positive integer");
        return OUT_INVALID;
    }
    if (!begin_cart_write(db, msg, msglen))
        return OUT_ERROR;
    struct db_stmt *st = db_stmt(db, SQL_ADD);
    db_bind_int64(st, 1, user_id);
    db_bind_int64(st, 2, product_id);
    db_bind_int64(st, 3, quantity);
    db_bind_int64(st, 4, (int64_t)time(NULL));
    int rc = db_step(st);
    bool added = rc == DB_ROW;
    while (rc == DB_ROW)
        rc = db_step(st); /* written only once done (db_step) */
    db_done(st);
    if (rc == DB_DONE && added && db_commit(db) == 0)
        return OUT_OK;
    if (rc != DB_DONE || added) {
        db_log_error(db, "cart: add failed");
        db_rollback(db);
        snprintf(msg, msglen, "database error");
        return OUT_ERROR;
    }
    db_rollback(db);
    return add_refused(db, product_id, msg, msglen);
}

enum outcome cart_set(struct db *db, int64_t user_id, int64_t product_id, int64_t quantity, char *msg,
                      size_t msglen)
{
    return set_line(db, user_id, product_id, quantity, msg, msglen);
}

enum outcome cart_remove(struct db *db, int64_t user_id, int64_t product_id)
{
    struct db_stmt *st = db_stmt(db, SQL_DELETE_LINE);
    db_bind_int64(st, 1, user_id);
    db_bind_int64(st, 2, product_id);
    int rc = db_step(st);
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "cart: remove failed");
        return OUT_ERROR;
    }
    return db_changes(db) ? OUT_OK : OUT_NOT_FOUND;
}

enum outcome cart_accept_prices(struct db *db, int64_t user_id, int64_t expected_total_cents, char *msg,
                                size_t msglen)
{
    if (!begin_cart_write(db, msg, msglen))
        return OUT_ERROR;
    enum outcome o = OUT_ERROR;
    snprintf(msg, msglen, "database error");
    struct db_stmt *st = db_stmt(db, SQL_CHANGED_TOTALS);
    db_bind_int64(st, 1, user_id);
    int rc = db_step(st);
    int64_t total = rc == DB_ROW ? db_column_int64(st, 0) : -1;
    db_done(st);
    if (rc != DB_ROW) {
        db_log_error(db, "cart: totals failed");
        goto done;
    }
    if (expected_total_cents >= 0 && total != expected_total_cents) {
        snprintf(msg, msglen, "Prices changed again");
        o = OUT_CONFLICT;
        goto done;
    }
    st = db_stmt(db, SQL_ACCEPT_PRICES);
    db_bind_int64(st, 1, user_id);
    rc = db_step(st);
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "cart: accepting prices failed");
        goto done;
    }
    o = db_commit(db) == 0 ? OUT_OK : OUT_ERROR;
    if (o == OUT_OK)
        msg[0] = '\0';
done:
    db_rollback(db);
    return o;
}

json_t *cart_take_notices(struct db *db, int64_t user_id)
{
    struct db_stmt *st = db_stmt(db, SQL_NOTICES);
    db_bind_int64(st, 1, user_id);
    json_t *list = json_array();
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        const char *name = db_column_text(st, 1);
        char message[512];
        snprintf(message, sizeof(message), "%s is no longer sold and was removed from your cart.", name);
        json_array_append_new(list,
                              json_pack("{s:I, s:s, s:s}", "product_id", (json_int_t)db_column_int64(st, 0),
                                        "name", name, "message", message));
    }
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "cart: notices failed");
        json_decref(list);
        return NULL;
    }
    if (json_array_size(list) == 0)
        return list;
    st = db_stmt(db, SQL_CLEAR_NOTICES);
    db_bind_int64(st, 1, user_id);
    rc = db_step(st);
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "cart: clearing notices failed");
        json_decref(list);
        return NULL;
    }
    return list;
}
