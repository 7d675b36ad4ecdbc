#include "shopd/order_item.h"

#include <inttypes.h>
#include <stdio.h>

void order_item_dollars(int64_t cents, char *buf, size_t len)
{
    /* Unsigned magnitude, so INT64_MIN does not overflow on negation. */
    uint64_t mag = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    snprintf(buf, len, "%s%" PRIu64 ".%02" PRIu64, cents < 0 ? "-" : "", mag / 100, mag % 100);
}

static json_t *attr_n(int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    return json_pack("{s:s}", "N", buf);
}

static json_t *attr_dollars(int64_t cents)
{
    char buf[32];
    order_item_dollars(cents, buf, sizeof(buf));
    return json_pack("{s:s}", "N", buf);
}

/* NULL when s is not UTF-8: json_pack refuses it. */
static json_t *attr_s(const char *s)
{
    return json_pack("{s:s}", "S", s ? s : "");
}

json_t *order_item_build(const struct outbox_order *o)
{
    json_t *items = json_array();
    for (size_t i = 0; i < o->nlines; i++) {
        const struct outbox_line *l = &o->lines[i];
        json_t *name = attr_s(l->name);
        if (!name) {
            json_decref(items);
            return NULL;
        }
        json_t *m =
            json_pack("{s:o, s:o, s:o, s:o}", "product_id", attr_n(l->product_id), "name", name, "unit_price",
                      attr_dollars(l->unit_price_cents), "quantity", attr_n(l->quantity));
        json_array_append_new(items, json_pack("{s:o}", "M", m));
    }
    json_t *id = attr_s(o->id), *email = attr_s(o->user_email), *currency = attr_s(o->currency),
           *created = attr_s(o->created_at);
    if (!id || !email || !currency || !created) {
        json_decref(id);
        json_decref(email);
        json_decref(currency);
        json_decref(created);
        json_decref(items);
        return NULL;
    }
    return json_pack("{s:o, s:o, s:o, s:{s:o}, s:o, s:o, s:o, s:o}", "order_id", id, "user_id",
                     attr_n(o->user_id), "user_email", email, "items", "L", items, "total",
                     attr_dollars(o->total_cents), "total_cents", attr_n(o->total_cents), "currency",
                     currency, "created_at", created);
}
