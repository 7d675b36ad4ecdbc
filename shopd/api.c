#include "shopd/api.h"
#include "shopd/accounts.h"
#include "shopd/cart.h"
#include "shopd/catalog.h"
#include "shopd/catalog_cache.h"
#include "shopd/etag.h"
#include "shopd/checkout.h"
#include "shopd/metrics.h"
#include "shopd/orders.h"
#include "shopd/request.h"
#include "shared/crypto.h"
#include "shared/log.h"
#include "shared/strbuf.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads the JSON object body or answers the error itself; NULL means "already answered". */
static json_t *json_body_or_reply(struct request *r)
{
    int status;
    char msg[256];
    json_t *body = request_json_body(r, &status, msg, sizeof(msg));
    if (!body)
        reply_message(r, status, "%s", msg);
    return body;
}

static void reply_outcome(struct request *r, enum outcome o, const char *msg)
{
    reply_message(r, outcome_http_status(o), "%s", msg && *msg ? msg : "Internal error");
}

bool api_int_field(json_t *obj, const char *key, int64_t min, int64_t max, int64_t *out, char *msg,
                   size_t msglen)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        snprintf(msg, msglen, "%s is required", key);
        return false;
    }
    double d = json_is_real(v) ? json_real_value(v) : 0;
    if (!json_is_integer(v) && !(json_is_real(v) && d == floor(d) && fabs(d) < 1e15)) {
        snprintf(msg, msglen, "%s must be an integer", key);
        return false;
    }
    int64_t n = json_is_integer(v) ? json_integer_value(v) : (int64_t)d;
    if (n < min || n > max) {
        if (min == 1)
            snprintf(msg, msglen, "%s must be a positive integer", key);
        else
            snprintf(msg, msglen, "%s must be an integer from %lld to %lld", key, (long long)min,
                     (long long)max);
        return false;
    }
    *out = n;
    return true;
}

/* email and password as strings, or an answer already sent. */
static bool credentials(struct request *r, json_t *body, const char **email, const char **password)
{
    json_t *e = json_object_get(body, "email"), *p = json_object_get(body, "password");
    if (!e || !p) {
        reply_message(r, 400, "email and password are required");
        return false;
    }
    if (!json_is_string(e) || !json_is_string(p)) {
        reply_message(r, 400, "email and password must be strings");
        return false;
    }
    if (strlen(json_string_value(e)) != json_string_length(e) ||
        strlen(json_string_value(p)) != json_string_length(p)) {
        reply_message(r, 400, "email and password must not contain NUL characters");
        return false;
    }
    *email = json_string_value(e);
    *password = json_string_value(p);
    return true;
}

static void registered(enum outcome o, int64_t id, const char *msg, void *arg)
{
    struct request *r = arg;
    if (r->cancelled) {
        request_abandon(r);
        return;
    }
    if (o != OUT_OK) {
        reply_outcome(r, o, msg);
        return;
    }
    /* r->json is the body that api_register already parsed and checked. */
    reply_json(r, 201,
               json_pack("{s:s, s:I, s:O}", "message", "User registered successfully", "id", (json_int_t)id,
                         "email", json_object_get(r->json, "email")));
}

void api_register(struct request *r)
{
    json_t *body = json_body_or_reply(r);
    const char *email, *password;
    if (!body || !credentials(r, body, &email, &password))
        return;
    request_hold(r);
    accounts_register_async(r->db, request_offload(r), email, password, registered, r);
}

static void logged_in(enum outcome o, int64_t id, const char *msg, void *arg)
{
    struct request *r = arg;
    if (r->cancelled) {
        request_abandon(r);
        return;
    }
    if (o == OUT_UNAUTHORIZED) {
        reply_message(r, 401, "Invalid credentials");
        return;
    }
    if (o != OUT_OK || request_start_session(r, id) < 0) {
        reply_message(r, 500, "Login failed");
        return;
    }
    reply_json(r, 200,
               json_pack("{s:s, s:I, s:s, s:b}", "message", "Logged in successfully", "id", (json_int_t)id,
                         "email", r->session.email, "is_admin", r->is_admin));
}

void api_login(struct request *r)
{
    json_t *body = json_body_or_reply(r);
    const char *email, *password;
    if (!body || !credentials(r, body, &email, &password))
        return;
    request_hold(r);
    accounts_authenticate_async(r->db, request_offload(r), email, password, logged_in, r);
}

void api_logout(struct request *r)
{
    request_end_session(r);
    reply_message(r, 200, "Logged out successfully");
}

/* The Link header (RFC 8288) of a page: where the next one is, and for pages
   by number the first, previous and last one as well. */
static void add_page_links(struct request *r, const struct catalog_query *q,
                           const struct catalog_results *res)
{
    struct strbuf link = {0};
    char *url;
    if (q->page) {
        int64_t last = res->total ? (res->total + q->limit - 1) / q->limit : 1;
        struct {
            const char *rel;
            int64_t page;
            bool show;
        } rels[] = {{"first", 1, true},
                    {"prev", q->page - 1, q->page > 1 && q->page - 1 <= last},
                    {"next", q->page + 1, res->has_more},
                    {"last", last, true}};
        for (size_t i = 0; i < sizeof(rels) / sizeof(rels[0]); i++) {
            if (!rels[i].show)
                continue;
            url = catalog_query_url(q, "/products", true, rels[i].page, NULL);
            strbuf_adds(&link, link.len ? ", <" : "<");
            strbuf_adds(&link, url);
            strbuf_adds(&link, ">; rel=\"");
            strbuf_adds(&link, rels[i].rel);
            strbuf_adds(&link, "\"");
            free(url);
        }
    } else if (res->has_more) {
        url = catalog_query_url(q, "/products", true, 0, res->next_cursor);
        strbuf_adds(&link, "<");
        strbuf_adds(&link, url);
        strbuf_adds(&link, ">; rel=\"next\"");
        free(url);
    }
    if (link.len)
        reply_add_header(r, "Link", link.p);
    strbuf_free(&link);
}

/* Sends the entity tag with the answer (clients then revalidate each time:
 * Cache-Control: no-cache), and answers 304 with no body when the client's
 * If-None-Match names it. True when it answered. */
static bool reply_not_modified(struct request *r, const char *etag)
{
    reply_add_header(r, "ETag", etag);
    reply_add_header(r, "Cache-Control", "no-cache");
    if (!etag_none_match_hit(request_header(r, "If-None-Match"), etag))
        return false;
    struct evbuffer *empty = evbuffer_new();
    reply_buffer(r, 304, NULL, empty);
    evbuffer_free(empty);
    return true;
}

void api_products_list(struct request *r)
{
    struct catalog_query_params p = {request_query(r, "q"), request_query(r, "sort"),
                                     request_query(r, "limit"), request_query(r, "page"),
                                     request_query(r, "cursor")};
    if (!catalog_query_given(&p)) {
        /* The whole catalog: built once per catalog version (catalog_cache). */
        size_t len;
        char etag[CATALOG_ETAG_MAX];
        const char *text = catalog_cache_list(r->db, &len, etag, sizeof(etag));
        if (!text) {
            reply_message(r, 500, "Could not read the catalog");
            return;
        }
        if (reply_not_modified(r, etag))
            return;
        struct evbuffer *buf = evbuffer_new();
        evbuffer_add(buf, text, len);
        reply_buffer(r, 200, "application/json", buf);
        evbuffer_free(buf);
        return;
    }
    struct catalog_query q;
    char msg[256];
    if (catalog_query_parse(&p, &q, msg, sizeof(msg)) != OUT_OK) {
        reply_message(r, 400, "%s", msg);
        return;
    }
    /* A search's answer depends on the catalog's version and on the query. */
    char version[CATALOG_ETAG_MAX];
    if (catalog_cache_etag(r->db, version, sizeof(version)) == 0) {
        const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(r->ev));
        char hash[CRYPTO_SHA256_HEX_LEN], etag[CATALOG_ETAG_MAX + 20];
        crypto_sha256_hex(query ? query : "", query ? strlen(query) : 0, hash);
        snprintf(etag, sizeof(etag), "%.*s-%.12s\"", (int)strlen(version) - 1, version, hash);
        if (reply_not_modified(r, etag))
            return;
    }
    struct catalog_results res;
    if (catalog_search(r->db, &q, &res) != OUT_OK) {
        reply_message(r, 500, "Could not read the catalog");
        return;
    }
    /* The body stays the plain list every client of GET /products reads; where
       the list goes on is in the headers. */
    char num[32];
    snprintf(num, sizeof(num), "%lld", (long long)res.total);
    reply_add_header(r, "X-Total-Count", num);
    if (res.has_more && !q.page)
        reply_add_header(r, "X-Next-Cursor", res.next_cursor);
    add_page_links(r, &q, &res);
    reply_json(r, 200, res.items);
}

void api_product_get(struct request *r)
{
    /* A product changes only with the catalog's version, which is its tag. */
    char etag[CATALOG_ETAG_MAX];
    if (catalog_cache_etag(r->db, etag, sizeof(etag)) == 0 && reply_not_modified(r, etag))
        return;
    json_t *p = NULL;
    enum outcome o = catalog_get(r->db, r->param, &p);
    if (o != OUT_OK) {
        reply_outcome(r, o, o == OUT_NOT_FOUND ? "Product not found" : NULL);
        return;
    }
    reply_json(r, 200, p);
}

void api_product_create(struct request *r)
{
    json_t *body = json_body_or_reply(r);
    if (!body)
        return;
    struct product_input in;
    char msg[256];
    enum outcome o = catalog_parse_input(body, true, &in, msg, sizeof(msg));
    int64_t id;
    if (o == OUT_OK)
        o = catalog_create(r->db, &in, &id);
    json_t *p = NULL;
    if (o == OUT_OK)
        o = catalog_get(r->db, id, &p);
    if (o != OUT_OK) {
        reply_outcome(r, o, msg);
        return;
    }
    reply_json(r, 201, p);
}

void api_product_update(struct request *r)
{
    json_t *body = json_body_or_reply(r);
    if (!body)
        return;
    struct product_input in;
    char msg[256] = "Product not found";
    enum outcome o = catalog_parse_input(body, false, &in, msg, sizeof(msg));
    if (o == OUT_OK) {
        o = catalog_update(r->db, r->param, &in);
        snprintf(msg, sizeof(msg), "Product not found");
    }
    json_t *p = NULL;
    if (o == OUT_OK)
        o = catalog_get(r->db, r->param, &p);
    if (o != OUT_OK) {
        reply_outcome(r, o, msg);
        return;
    }
    reply_json(r, 200, p);
}

void api_product_delete(struct request *r)
{
    enum outcome o = catalog_delete(r->db, r->param);
    if (o != OUT_OK) {
        reply_outcome(r, o, "Product not found");
        return;
    }
    reply_message(r, 200, "Product deleted");
}

void api_cart_get(struct request *r)
{
    json_t *cart = cart_view(r->db, r->session.user_id);
    if (!cart) {
        reply_message(r, 500, "Could not read the cart");
        return;
    }
    /* Products deleted from the cart since the shopper last looked, said once. */
    json_t *removed = cart_take_notices(r->db, r->session.user_id);
    json_object_set_new(cart, "removed", removed ? removed : json_array());
    reply_json(r, 200, cart);
}

static void reply_cart(struct request *r, int status, const char *message)
{
    json_t *cart = cart_view(r->db, r->session.user_id);
    if (!cart) {
        reply_message(r, 500, "Could not read the cart");
        return;
    }
    json_object_set_new(cart, "message", json_string(message));
    reply_json(r, status, cart);
}

void api_cart_add(struct request *r)
{
    json_t *body = json_body_or_reply(r);
    if (!body)
        return;
    int64_t product_id, quantity = 1;
    char msg[256];
    if (!api_int_field(body, "product_id", 1, INT64_MAX / 2, &product_id, msg, sizeof(msg)) ||
        (json_object_get(body, "quantity") &&
         !api_int_field(body, "quantity", 1, CART_MAX_QUANTITY, &quantity, msg, sizeof(msg)))) {
        reply_message(r, 400, "%s", msg);
        return;
    }
    enum outcome o = cart_add(r->db, r->session.user_id, product_id, quantity, msg, sizeof(msg));
    if (o != OUT_OK) {
        reply_outcome(r, o, msg);
        return;
    }
    reply_cart(r, 201, "Added to cart");
}

void api_cart_set(struct request *r)
{
    json_t *body = json_body_or_reply(r);
    if (!body)
        return;
    int64_t quantity;
    char msg[256];
    if (!api_int_field(body, "quantity", 0, CART_MAX_QUANTITY, &quantity, msg, sizeof(msg))) {
        reply_message(r, 400, "%s", msg);
        return;
    }
    enum outcome o = cart_set(r->db, r->session.user_id, r->param, quantity, msg, sizeof(msg));
    if (o != OUT_OK) {
        reply_outcome(r, o, msg);
        return;
    }
    reply_cart(r, 200, quantity ? "Cart updated" : "Removed from cart");
}

void api_cart_remove(struct request *r)
{
    enum outcome o = cart_remove(r->db, r->session.user_id, r->param);
    if (o != OUT_OK) {
        reply_outcome(r, o, o == OUT_NOT_FOUND ? "Product not in cart" : NULL);
        return;
    }
    reply_cart(r, 200, "Removed from cart");
}

/* The optional body of POST /checkout: {"accept_price_changes": true} agrees
   to today's prices. A bodiless POST (curl -X POST) accepts nothing. */
static bool checkout_options(struct request *r, bool *accept)
{
    *accept = false;
    if (evbuffer_get_length(evhttp_request_get_input_buffer(r->ev)) == 0)
        return true;
    json_t *body = json_body_or_reply(r);
    if (!body)
        return false;
    json_t *v = json_object_get(body, "accept_price_changes");
    if (v && !json_is_boolean(v)) {
        reply_message(r, 400, "accept_price_changes must be true or false");
        return false;
    }
    *accept = v && json_is_true(v);
    return true;
}

void api_checkout(struct request *r)
{
    const char *key = request_header(r, "Idempotency-Key");
    struct checkout_result res;
    char msg[256];
    bool accept;
    if (!checkout_options(r, &accept))
        return;
    /* Accepting stores today's prices in the cart first, so that a checkout
       that then fails on stock does not ask about the same prices again. */
    if (accept && cart_accept_prices(r->db, r->session.user_id, -1, msg, sizeof(msg)) == OUT_ERROR) {
        reply_message(r, 500, "Could not update the cart");
        return;
    }
    enum outcome o = checkout_place(r->db, r->session.user_id, key, accept, &res, msg, sizeof(msg));
    if (o == OUT_CONFLICT && res.changed) {
        metrics_checkout(METRICS_CHECKOUT_REFUSED);
        reply_json(r, 409,
                   json_pack("{s:s, s:o, s:I, s:o}", "message", msg, "total",
                             catalog_price_json(res.total_cents), "total_cents", (json_int_t)res.total_cents,
                             "changed", res.changed));
        return;
    }
    if (o != OUT_OK) {
        metrics_checkout(METRICS_CHECKOUT_REFUSED);
        reply_outcome(r, o, msg);
        return;
    }
    metrics_checkout(res.replayed ? METRICS_CHECKOUT_REPLAYED : METRICS_CHECKOUT_CREATED);
    if (!res.replayed)
        request_wake_dispatcher(r);
    if (res.replayed)
        reply_add_header(r, "Idempotent-Replayed", "true");
    reply_json(r, 201,
               json_pack("{s:s, s:I, s:o, s:s, s:s}", "order_id", res.order_id, "total_cents",
                         (json_int_t)res.total_cents, "total", catalog_price_json(res.total_cents), "status",
                         res.status, "message", res.replayed ? "Order already placed" : "Order placed"));
}

void api_orders(struct request *r)
{
    json_t *orders = checkout_orders(r->db, r->session.user_id);
    if (!orders) {
        reply_message(r, 500, "Could not read the orders");
        return;
    }
    size_t i;
    json_t *order;
    json_array_foreach(orders, i, order) orders_for_shopper(order);
    reply_json(r, 200, orders);
}

/* --- account, one order, and the admins' orders view ------------------------- */

#define ACCOUNT_RECENT_ORDERS 5
#define ADMIN_ORDERS_LIMIT 200

void api_account(struct request *r)
{
    json_t *orders = orders_list(r->db, r->session.user_id, ACCOUNT_RECENT_ORDERS);
    if (!orders) {
        reply_message(r, 500, "Could not read the orders");
        return;
    }
    size_t i;
    json_t *order;
    json_array_foreach(orders, i, order) orders_for_shopper(order);
    reply_json(r, 200,
               json_pack("{s:I, s:s, s:b, s:o}", "id", (json_int_t)r->session.user_id, "email",
                         r->session.email, "is_admin", r->is_admin, "recent_orders", orders));
}

static void password_changed(enum outcome o, int64_t user_id, const char *msg, void *arg)
{
    struct request *r = arg;
    if (r->cancelled) {
        request_abandon(r);
        return;
    }
    if (o != OUT_OK) {
        reply_outcome(r, o, msg);
        return;
    }
    /* Whoever else holds a session of this account (a stolen cookie, another device) is out. */
    int ended = sessions_delete_user(r->db, user_id, r->session.key);
    log_info("accounts: user %lld changed the password; %d other session%s ended", (long long)user_id, ended,
             ended == 1 ? "" : "s");
    reply_json(r, 200, json_pack("{s:s, s:i}", "message", "Password changed", "sessions_ended", ended));
}

void api_account_password(struct request *r)
{
    json_t *body = json_body_or_reply(r);
    if (!body)
        return;
    json_t *cur = json_object_get(body, "current_password"), *next = json_object_get(body, "new_password");
    if (!json_is_string(cur) || !json_is_string(next)) {
        reply_message(r, 400, "current_password and new_password are required strings");
        return;
    }
    if (strlen(json_string_value(cur)) != json_string_length(cur) ||
        strlen(json_string_value(next)) != json_string_length(next)) {
        reply_message(r, 400, "passwords must not contain NUL characters");
        return;
    }
    request_hold(r);
    accounts_change_password_async(r->db, request_offload(r), r->session.user_id, json_string_value(cur),
                                   json_string_value(next), password_changed, r);
}

void api_account_logout_all(struct request *r)
{
    int64_t user_id = r->session.user_id;
    int ended = sessions_delete_user(r->db, user_id, NULL);
    if (ended < 0) {
        reply_message(r, 500, "Could not end the sessions");
        return;
    }
    request_end_session(r);
    log_info("accounts: user %lld logged out everywhere (%d sessions)", (long long)user_id, ended);
    reply_json(r, 200, json_pack("{s:s, s:i}", "message", "Logged out everywhere", "sessions_ended", ended));
}

void api_order_get(struct request *r)
{
    json_t *order = NULL;
    enum outcome o = orders_get(r->db, r->session.user_id, r->param_text, &order);
    if (o != OUT_OK) {
        reply_outcome(r, o, o == OUT_NOT_FOUND ? "Order not found" : NULL);
        return;
    }
    reply_json(r, 200, orders_for_shopper(order));
}

void api_admin_orders(struct request *r)
{
    json_t *orders = orders_list(r->db, 0, ADMIN_ORDERS_LIMIT);
    if (!orders) {
        reply_message(r, 500, "Could not read the orders");
        return;
    }
    reply_json(r, 200, orders);
}

void api_admin_order_retry(struct request *r)
{
    enum outcome o = orders_retry(r->db, r->param_text);
    if (o == OUT_CONFLICT) {
        reply_message(r, 409, "Only a failed order can be sent again");
        return;
    }
    if (o != OUT_OK) {
        reply_outcome(r, o, o == OUT_NOT_FOUND ? "Order not found" : NULL);
        return;
    }
    log_info("admin: %s sent order %s again", r->session.email, r->param_text);
    request_wake_dispatcher(r);
    json_t *order = NULL;
    if (orders_get(r->db, 0, r->param_text, &order) != OUT_OK) {
        reply_message(r, 200, "Order queued again");
        return;
    }
    json_object_set_new(order, "message", json_string("Order queued again"));
    reply_json(r, 200, order);
}

void api_healthz(struct request *r)
{
    enum db_failure f = db_check_writable(r->db);
    if (f != DB_FAIL_NONE) {
        /* The balancer's health checks read this and steer traffic to other instances. */
        reply_add_header(r, "Retry-After", "5");
        reply_message(r, 503, "%s", db_failure_text(f));
        return;
    }
    reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

/* Metrics are for the operator: only clients on this host (directly, or through a
   local balancer for a local client) may read them. */
static bool is_loopback(const char *ip)
{
    return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 || strcmp(ip, "::ffff:127.0.0.1") == 0;
}

void api_metrics(struct request *r)
{
    if (!is_loopback(r->client_ip)) {
        reply_message(r, 403, "Metrics are served to local clients only");
        return;
    }
    struct evbuffer *buf = evbuffer_new();
    metrics_render(buf, r->db, r->settings->listen_port);
    reply_buffer(r, 200, "text/plain; version=0.0.4; charset=utf-8", buf);
    evbuffer_free(buf);
}
