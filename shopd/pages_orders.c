/* The order pages: the history, one order, the checkout confirmation. A
 * shopper reads only their own orders and never the dispatcher's error text. */
#include "shopd/orders.h"
#include "shopd/pages.h"
#include "shopd/render.h"
#include "shopd/request.h"

#include <stdio.h>
#include <string.h>

static const char *status_label(const char *status)
{
    if (strcmp(status, "pending") == 0)
        return "Received, being processed";
    if (strcmp(status, "sent") == 0)
        return "Confirmed";
    if (strcmp(status, "failed") == 0)
        return "Needs attention";
    return status;
}

static void set_money(json_t *obj, const char *key, const char *cents_key)
{
    json_object_set_new(obj, key, render_money(json_integer_value(json_object_get(obj, cents_key))));
}

/* 2024-05-01T12:34:56.789Z reads as 2024-05-01 12:34 UTC. */
static void set_time(json_t *obj, const char *key, const char *rfc3339_key)
{
    const char *t = json_string_value(json_object_get(obj, rfc3339_key));
    if (t && strlen(t) >= 16) {
        char when[32];
        snprintf(when, sizeof(when), "%.10s %.5s UTC", t, t + 11);
        json_object_set_new(obj, key, json_string(when));
    }
}

void pages_decorate_order(json_t *order)
{
    set_money(order, "total_display", "total_cents");
    const char *status = json_string_value(json_object_get(order, "status"));
    json_object_set_new(order, "status_label", json_string(status_label(status ? status : "")));
    json_object_set_new(order, "is_failed", json_boolean(status && strcmp(status, "failed") == 0));
    set_time(order, "created_display", "created_at");
    set_time(order, "sent_display", "sent_at");
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(order, "items"), i, item)
    {
        set_money(item, "unit_price_display", "unit_price_cents");
        set_money(item, "line_total_display", "line_total_cents");
    }
}

/* The shopper's own order, ready for the templates, or NULL after answering 404 or 500. */
static json_t *own_order(struct request *r, const char *id)
{
    json_t *order = NULL;
    enum outcome o = orders_get(r->db, r->session.user_id, id, &order);
    if (o == OUT_NOT_FOUND) {
        pages_error(r, 404, "There is no such order in your account.");
        return NULL;
    }
    if (o != OUT_OK) {
        pages_error(r, 500, "Your order could not be read. Please try again.");
        return NULL;
    }
    pages_decorate_order(orders_for_shopper(order));
    return order;
}

void pages_confirmation(struct request *r)
{
    const char *id = request_query(r, "order");
    if (!id || !*id) {
        reply_redirect(r, "/browser/orders");
        return;
    }
    json_t *order = own_order(r, id);
    if (order)
        render_page(r, 200, "confirmation", "Order placed", "orders", json_pack("{s:o}", "order", order));
}

void pages_order(struct request *r)
{
    json_t *order = own_order(r, r->param_text);
    if (order)
        render_page(r, 200, "order_page", "Your order", "orders", json_pack("{s:o}", "order", order));
}

/* Far more than a shopper's history; a bound on one page's size all the same. */
#define ORDERS_PAGE_LIMIT 1000

void pages_orders(struct request *r)
{
    json_t *orders = orders_list(r->db, r->session.user_id, ORDERS_PAGE_LIMIT);
    if (!orders) {
        pages_error(r, 500, "Your orders could not be read. Please try again.");
        return;
    }
    size_t i;
    json_t *order;
    json_array_foreach(orders, i, order) pages_decorate_order(orders_for_shopper(order));
    json_t *ctx = json_pack("{s:o, s:b}", "orders", orders, "empty", json_array_size(orders) == 0);
    render_page(r, 200, "orders", "Your orders", "orders", ctx);
}
