#include "shopd/checkout.h"
#include "shopd/catalog.h"
#include "shared/crypto.h"
#include "shared/log.h"
#include "shared/xalloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* Checkouts of one shopper run one at a time: SQLite's write lock already
   serialises every checkout; on PostgreSQL the shopper's row is locked, so a
   repeated request (same Idempotency-Key, a double click) waits for the first
   and then finds its order or its emptied cart. The same statement reads the
   email the order carries. The order of an Idempotency-Key is looked up by a
   statement of its own, after the lock: in READ COMMITTED a statement that
   waited for a lock still reads the other tables as they were when it began,
   before the first checkout committed its order. */
static const char SQL_LOCK_SHOPPER[] = "SELECT email FROM users WHERE id = $1";
static const char SQL_LOCK_SHOPPER_PG[] = "SELECT email FROM users WHERE id = $1 FOR UPDATE";
static const char SQL_FIND_KEY[] =
    "SELECT id, total_cents, status FROM orders WHERE user_id = $1 AND idempotency_key = $2";
/* On PostgreSQL the products and the cart's lines are locked as they are
   read, in product order: stock, prices and quantities stay what the order is
   made of, and two checkouts of the same products lock them in the same order
   and so never deadlock. */
#define SQL_CART                                                                                             \
    "SELECT p.id, p.name, p.price_cents, c.quantity, p.stock, coalesce(c.unit_price_cents, p.price_cents)"   \
    " FROM cart_items c JOIN products p ON p.id = c.product_id WHERE c.user_id = $1 ORDER BY p.id"
static const char SQL_CART_LINES[] = SQL_CART;
static const char SQL_CART_LINES_PG[] = SQL_CART " FOR UPDATE OF p, c";
/* Every line's stock in one statement, each under its guard: another count of
   rows changed than the cart had lines means one fell short, or a line was
   added since the cart was read. */
static const char SQL_TAKE_STOCK[] =
    "UPDATE products SET stock = products.stock - c.quantity FROM cart_items c"
    " WHERE c.user_id = $1 AND c.product_id = products.id"
    " AND products.stock >= c.quantity";
static const char SQL_INSERT_ORDER[] =
    "INSERT INTO orders (id, user_id, user_email, total_cents, idempotency_key,"
    " created_at) VALUES ($1, $2, $3, $4, $5, $6)";
static const char SQL_INSERT_LINE[] = "INSERT INTO order_lines (order_id, product_id, name, unit_price_cents,"
                                      " quantity) VALUES ($1, $2, $3, $4, $5)";
/* Only the lines ordered: one added meanwhile stays in the cart. */
static const char SQL_CLEAR_CART[] =
    "DELETE FROM cart_items WHERE user_id = $1"
    " AND product_id IN (SELECT product_id FROM order_lines WHERE order_id = $2)";
static const char SQL_ORDERS[] =
    "SELECT o.id, o.created_at, o.total_cents, o.currency, o.status, o.last_error,"
    " l.product_id, l.name, l.unit_price_cents, l.quantity"
    " FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id"
    " WHERE o.user_id = $1 ORDER BY o.seq DESC, l.product_id";

struct line {
    int64_t product_id, price_cents, quantity, stock;
    int64_t added_price_cents; /* what the line cost when it was put in the cart */
    char name[201];
};

static bool key_valid(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > CHECKOUT_MAX_KEY)
        return false;
    for (const char *c = key; *c; c++)
        if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e)
            return false;
    return true;
}

static void rfc3339_now(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000) % 1000);
}

static bool step_done(struct db *db, struct db_stmt *st, const char *what)
{
    int rc = db_step(st);
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "checkout: %s failed", what);
        return false;
    }
    return true;
}

/* Reads an earlier order with this key from st (SQL_FIND_KEY, queued):
   1 found, 0 none, -1 error. */
static int read_by_key(struct db_stmt *st, struct checkout_result *out)
{
    int rc = db_step(st);
    if (rc == DB_ROW) {
        snprintf(out->order_id, sizeof(out->order_id), "%s", db_column_text(st, 0));
        out->total_cents = db_column_int64(st, 1);
        snprintf(out->status, sizeof(out->status), "%s", db_column_text(st, 2));
        out->replayed = true;
    }
    db_done(st);
    return rc == DB_ROW ? 1 : rc == DB_DONE ? 0 : -1;
}

static struct db_stmt *key_lookup(struct db *db, int64_t user_id, const char *key)
{
    struct db_stmt *st = db_stmt(db, SQL_FIND_KEY);
    db_bind_int64(st, 1, user_id);
    db_bind_text(st, 2, key);
    return st;
}

/* Reads the shopper's email from st (the lock, queued): 0, or -1 on an error
   or for a shopper who no longer exists. */
static int read_shopper(struct db *db, struct db_stmt *st, char *email, size_t emaillen)
{
    int rc = db_step(st);
    if (rc == DB_ROW)
        snprintf(email, emaillen, "%s", db_column_text(st, 0));
    else if (rc == DB_ERROR)
        db_log_error(db, "checkout: locking the shopper failed");
    db_done(st);
    return rc == DB_ROW ? 0 : -1;
}

/* Reads every line of the cart from st (SQL_CART_LINES, queued) into *lines
   (a heap array the caller frees, also on error; NULL when the cart is
   empty). A cart is ordered whole: a fixed cap here would empty lines from
   the cart that the order never got. */
static int read_cart(struct db *db, struct db_stmt *st, struct line **lines, size_t *n)
{
    int rc;
    size_t cap = 0;
    *lines = NULL;
    *n = 0;
    while ((rc = db_step(st)) == DB_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *lines = xrealloc(*lines, cap * sizeof(**lines));
        }
        struct line *l = &(*lines)[(*n)++];
        l->product_id = db_column_int64(st, 0);
        snprintf(l->name, sizeof(l->name), "%s", db_column_text(st, 1));
        l->price_cents = db_column_int64(st, 2);
        l->quantity = db_column_int64(st, 3);
        l->stock = db_column_int64(st, 4);
        l->added_price_cents = db_column_int64(st, 5);
    }
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "checkout: reading the cart failed");
        return -1;
    }
    return 0;
}

/* The lines whose price moved since they were added, as a new JSON array. */
static json_t *price_changes(const struct line *lines, size_t n)
{
    json_t *changed = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct line *l = &lines[i];
        if (l->price_cents == l->added_price_cents)
            continue;
        json_array_append_new(
            changed,
            json_pack("{s:I, s:s, s:I, s:o, s:I, s:o, s:I}", "product_id", (json_int_t)l->product_id, "name",
                      l->name, "old_price_cents", (json_int_t)l->added_price_cents, "old_price",
                      catalog_price_json(l->added_price_cents), "price_cents", (json_int_t)l->price_cents,
                      "price", catalog_price_json(l->price_cents), "quantity", (json_int_t)l->quantity));
    }
    return changed;
}

enum outcome checkout_place(struct db *db, int64_t user_id, const char *idem_key, bool accept_price_changes,
                            struct checkout_result *out, char *msg, size_t msglen)
{
    memset(out, 0, sizeof(*out));
    if (idem_key && !key_valid(idem_key)) {
        snprintf(msg, msglen, "Idempotency-Key must be 1 to %d printable characters", CHECKOUT_MAX_KEY);
        return OUT_INVALID;
    }
    if (db_begin_write(db) < 0) {
        db_log_error(db, "checkout: begin failed");
        snprintf(msg, msglen, "database busy, try again");
        return OUT_ERROR;
    }
    struct line *lines = NULL;
    size_t n = 0;
    enum outcome o = OUT_ERROR;
    snprintf(msg, msglen, "database error");
    /* The lock, the key's order, the cart and the stock taken are queued
       together (db_queue): on PostgreSQL one round trip for the four, each
       still a statement of its own that runs after the one before it. When
       the answers refuse the order (an order for the key, an empty or short
       cart, a price changed) the transaction rolls back what ran. */
    struct db_stmt *lock = db_stmt_for(db, SQL_LOCK_SHOPPER, SQL_LOCK_SHOPPER_PG);
    db_bind_int64(lock, 1, user_id);
    db_queue(lock);
    struct db_stmt *key = NULL;
    if (idem_key) {
        key = key_lookup(db, user_id, idem_key);
        db_queue(key);
    }
    struct db_stmt *cart = db_stmt_for(db, SQL_CART_LINES, SQL_CART_LINES_PG);
    db_bind_int64(cart, 1, user_id);
    db_queue(cart);
    struct db_stmt *take = db_stmt(db, SQL_TAKE_STOCK);
    db_bind_int64(take, 1, user_id);
    db_queue(take);
    char email[256] = "";
    if (read_shopper(db, lock, email, sizeof(email)) < 0)
        goto done;
    if (key) {
        int found = read_by_key(key, out);
        if (found != 0) {
            o = found > 0 ? OUT_OK : OUT_ERROR; /* a replay keeps nothing of this transaction */
            goto done;
        }
    }
    if (read_cart(db, cart, &lines, &n) < 0)
        goto done;
    if (n == 0) {
        snprintf(msg, msglen, "Cart is empty");
        o = OUT_CONFLICT;
        goto done;
    }
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (lines[i].quantity > lines[i].stock) {
            snprintf(msg, msglen, "Not enough stock for %s: %" PRId64 " left", lines[i].name, lines[i].stock);
            o = OUT_CONFLICT;
            goto done;
        }
        total += lines[i].price_cents * lines[i].quantity;
    }
    if (!accept_price_changes) {
        json_t *changed = price_changes(lines, n);
        if (json_array_size(changed) > 0) {
            snprintf(msg, msglen, "Prices changed since you added %s to your cart",
                     json_array_size(changed) == 1 ? "an item" : "some items");
            out->changed = changed;
            out->total_cents = total;
            o = OUT_CONFLICT;
            goto done;
        }
        json_decref(changed);
    }
    if (!step_done(db, take, "take stock"))
        goto done;
    if (db_changes(db) != (int64_t)n) {
        /* Under the locks read_cart took, only a line added since: the guard
           has the last word all the same. */
        snprintf(msg, msglen, "Your cart changed during checkout");
        o = OUT_CONFLICT;
        goto done;
    }
    /* The rest only writes: sent together with COMMIT (db_send). */
    crypto_uuid4(out->order_id);
    char created[64];
    rfc3339_now(created, sizeof(created));
    struct db_stmt *st = db_stmt(db, SQL_INSERT_ORDER);
    db_bind_text(st, 1, out->order_id);
    db_bind_int64(st, 2, user_id);
    db_bind_text(st, 3, email);
    db_bind_int64(st, 4, total);
    if (idem_key)
        db_bind_text(st, 5, idem_key);
    db_bind_text(st, 6, created);
    if (db_send(st) < 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        st = db_stmt(db, SQL_INSERT_LINE);
        db_bind_text(st, 1, out->order_id);
        db_bind_int64(st, 2, lines[i].product_id);
        db_bind_text(st, 3, lines[i].name);
        db_bind_int64(st, 4, lines[i].price_cents);
        db_bind_int64(st, 5, lines[i].quantity);
        if (db_send(st) < 0)
            goto done;
    }
    st = db_stmt(db, SQL_CLEAR_CART);
    db_bind_int64(st, 1, user_id);
    db_bind_text(st, 2, out->order_id);
    if (db_send(st) < 0)
        goto done;
    out->total_cents = total;
    snprintf(out->status, sizeof(out->status), "pending");
    o = OUT_OK;
done:
    if (o == OUT_OK && !out->replayed && db_commit(db) < 0) {
        db_log_error(db, "checkout: commit failed");
        snprintf(msg, msglen, "database error");
        o = OUT_ERROR;
    }
    db_rollback(db);
    free(lines);
    if (o == OUT_OK)
        msg[0] = '\0';
    return o;
}

int checkout_find(struct db *db, int64_t user_id, const char *idem_key, struct checkout_result *out)
{
    memset(out, 0, sizeof(*out));
    if (!key_valid(idem_key))
        return 0;
    return read_by_key(key_lookup(db, user_id, idem_key), out);
}

json_t *checkout_orders(struct db *db, int64_t user_id)
{
    struct db_stmt *st = db_stmt(db, SQL_ORDERS);
    db_bind_int64(st, 1, user_id);
    json_t *orders = json_array();
    json_t *current = NULL;
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        const char *id = db_column_text(st, 0);
        if (!current || strcmp(json_string_value(json_object_get(current, "order_id")), id) != 0) {
            int64_t total = db_column_int64(st, 2);
            const char *err = db_column_text(st, 5);
            current = json_pack("{s:s, s:s, s:I, s:o, s:s, s:s, s:[]}", "order_id", id, "created_at",
                                db_column_text(st, 1), "total_cents", (json_int_t)total, "total",
                                catalog_price_json(total), "currency", db_column_text(st, 3), "status",
                                db_column_text(st, 4), "items");
            json_object_set_new(current, "error", err ? json_string(err) : json_null());
            json_array_append_new(orders, current);
        }
        if (db_column_is_null(st, 6))
            continue;
        int64_t price = db_column_int64(st, 8), qty = db_column_int64(st, 9);
        json_array_append_new(json_object_get(current, "items"),
                              json_pack("{s:I, s:s, s:I, s:o, s:I, s:I}", "product_id",
                                        (json_int_t)db_column_int64(st, 6), "name", db_column_text(st, 7),
                                        "unit_price_cents", (json_int_t)price, "unit_price",
                                        catalog_price_json(price), "quantity", (json_int_t)qty,
                                        "line_total_cents", (json_int_t)(price * qty)));
    }
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "checkout: orders failed");
        json_decref(orders);
        return NULL;
    }
    return orders;
}
