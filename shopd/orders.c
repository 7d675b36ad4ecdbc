#include "shopd/orders.h"
#include "shopd/catalog.h"

#include <stdio.h>
#include <string.h>

static const char SQL_ONE[] =
    "SELECT o.id, o.created_at, o.total_cents, o.currency, o.status, o.sent_at, o.user_email, o.attempts,"
    " o.last_error, l.product_id, l.name, l.unit_price_cents, l.quantity"
    " FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id"
    " WHERE o.id = $1 AND ($2 = 0 OR o.user_id = $2) ORDER BY l.product_id";
/* The newest orders first, then their lines: the subquery keeps LIMIT on orders, not on lines. */
static const char SQL_LIST[] =
    "SELECT o.id, o.created_at, o.total_cents, o.currency, o.status, o.sent_at, o.user_email, o.attempts,"
    " o.last_error, l.product_id, l.name, l.unit_price_cents, l.quantity"
    " FROM (SELECT * FROM orders WHERE $1 = 0 OR user_id = $1 ORDER BY seq DESC LIMIT $2) o"
    " LEFT JOIN order_lines l ON l.order_id = o.id ORDER BY o.seq DESC, l.product_id";
static const char SQL_STATUS[] = "SELECT status FROM orders WHERE id = $1";
static const char SQL_RETRY[] = "UPDATE orders SET status = 'pending', attempts = 0, next_attempt_at = 0,"
                                " lease_owner = NULL, lease_until = 0 WHERE id = $1 AND status = 'failed'";

bool orders_id_valid(const char *id)
{
    if (!id || strlen(id) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = id[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static json_t *text_or_null(struct db_stmt *st, int col)
{
    const char *s = db_column_text(st, col);
    return s ? json_string(s) : json_null();
}

/* Reads the rows of SQL_ONE or SQL_LIST (one per line) into an array of orders. */
static int read_orders(struct db *db, struct db_stmt *st, json_t *orders)
{
    json_t *current = NULL;
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        const char *id = db_column_text(st, 0);
        if (!current || strcmp(json_string_value(json_object_get(current, "order_id")), id) != 0) {
            int64_t total = db_column_int64(st, 2);
            current = json_pack("{s:s, s:s, s:I, s:o, s:s, s:s, s:o, s:s, s:I, s:o, s:[]}", "order_id", id,
                                "created_at", db_column_text(st, 1), "total_cents", (json_int_t)total,
                                "total", catalog_price_json(total), "currency", db_column_text(st, 3),
                                "status", db_column_text(st, 4), "sent_at", text_or_null(st, 5), "user_email",
                                db_column_text(st, 6), "attempts", (json_int_t)db_column_int64(st, 7),
                                "error", text_or_null(st, 8), "items");
            if (!current) /* stored text that is not UTF-8: skip the order rather than fail the page */
                continue;
            json_array_append_new(orders, current);
        }
        if (db_column_is_null(st, 9))
            continue;
        int64_t price = db_column_int64(st, 11), qty = db_column_int64(st, 12);
        json_t *line =
            json_pack("{s:I, s:s, s:I, s:o, s:I, s:I}", "product_id", (json_int_t)db_column_int64(st, 9),
                      "name", db_column_text(st, 10), "unit_price_cents", (json_int_t)price, "unit_price",
                      catalog_price_json(price), "quantity", (json_int_t)qty, "line_total_cents",
                      (json_int_t)(price * qty));
        if (line)
            json_array_append_new(json_object_get(current, "items"), line);
    }
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "orders: read failed");
        return -1;
    }
    return 0;
}

enum outcome orders_get(struct db *db, int64_t user_id, const char *id, json_t **out)
{
    *out = NULL;
    if (!orders_id_valid(id))
        return OUT_NOT_FOUND;
    struct db_stmt *st = db_stmt(db, SQL_ONE);
    db_bind_text(st, 1, id);
    db_bind_int64(st, 2, user_id);
    json_t *orders = json_array();
    if (read_orders(db, st, orders) < 0) {
        json_decref(orders);
        return OUT_ERROR;
    }
    if (json_array_size(orders) == 0) {
        json_decref(orders);
        return OUT_NOT_FOUND;
    }
    *out = json_incref(json_array_get(orders, 0));
    json_decref(orders);
    return OUT_OK;
}

json_t *orders_list(struct db *db, int64_t user_id, size_t limit)
{
    struct db_stmt *st = db_stmt(db, SQL_LIST);
    db_bind_int64(st, 1, user_id);
    db_bind_int64(st, 2, (int64_t)limit);
    json_t *orders = json_array();
    if (read_orders(db, st, orders) < 0) {
        json_decref(orders);
        return NULL;
    }
    return orders;
}

json_t *orders_for_shopper(json_t *order)
{
    /* "error" stays, always null, for the clients that read it from /orders. */
    json_object_set_new(order, "error", json_null());
    json_object_del(order, "user_email");
    json_object_del(order, "attempts");
    const char *status = json_string_value(json_object_get(order, "status"));
    if (status && strcmp(status, "failed") == 0)
        json_object_set_new(order, "notice", json_string(ORDERS_FAILED_NOTICE));
    return order;
}

enum outcome orders_retry(struct db *db, const char *id)
{
    if (!orders_id_valid(id))
        return OUT_NOT_FOUND;
    struct db_stmt *st = db_stmt(db, SQL_RETRY);
    db_bind_text(st, 1, id);
    int rc = db_step(st);
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "orders: retry of %s failed", id);
        return OUT_ERROR;
    }
    if (db_changes(db) == 1)
        return OUT_OK;
    /* Nothing changed: tell an unknown order from one that is not failed. */
    st = db_stmt(db, SQL_STATUS);
    db_bind_text(st, 1, id);
    rc = db_step(st);
    db_done(st);
    if (rc == DB_ROW)
        return OUT_CONFLICT;
    if (rc == DB_DONE)
        return OUT_NOT_FOUND;
    db_log_error(db, "orders: status of %s failed", id);
    return OUT_ERROR;
}
