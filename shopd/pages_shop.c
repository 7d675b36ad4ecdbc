/* The shopping pages: cart, checkout and its price review (the orders are in pages_orders.c). */
#include "shopd/cart.h"
#include "shopd/catalog.h"
#include "shopd/checkout.h"
#include "shopd/pages.h"
#include "shopd/render.h"
#include "shopd/request.h"
#include "shared/crypto.h"
#include "shared/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECKOUT_TOKEN_BYTES 16

/* A form field as a whole number in [min, max]; an absent or empty field gives
 * fallback (when fallback >= min). Surrounding spaces are tolerated, nothing else. */
static bool form_int(struct request *r, const char *name, int64_t min, int64_t max, int64_t fallback,
                     int64_t *out)
{
    const char *s = request_form(r, name);
    while (s && isspace((unsigned char)*s))
        s++;
    if (!s || !*s) {
        *out = fallback;
        return fallback >= min && fallback <= max;
    }
    if (!isdigit((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    while (isspace((unsigned char)*end))
        end++;
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* The product's name for a message, or a neutral word when it is gone. */
static void product_name(struct request *r, int64_t id, char *buf, size_t len)
{
    json_t *p = NULL;
    if (catalog_get(r->db, id, &p) == OUT_OK)
        snprintf(buf, len, "%s", json_string_value(json_object_get(p, "name")));
    else
        snprintf(buf, len, "the item");
    json_decref(p);
}

static void set_money(json_t *obj, const char *key, const char *cents_key)
{
    json_object_set_new(obj, key, render_money(json_integer_value(json_object_get(obj, cents_key))));
}

static void set_image(json_t *obj)
{
    json_object_set_new(
        obj, "image", json_string(render_local_image(json_string_value(json_object_get(obj, "image_url")))));
}

void pages_cart(struct request *r)
{
    json_t *cart = cart_view(r->db, r->session.user_id);
    if (!cart) {
        pages_error(r, 500, "Your cart could not be read. Please try again.");
        return;
    }
    json_t *items = json_object_get(cart, "items");
    size_t i;
    json_t *line;
    json_array_foreach(items, i, line)
    {
        set_money(line, "price_display", "price_cents");
        set_money(line, "added_price_display", "added_price_cents");
        set_money(line, "line_total_display", "line_total_cents");
        set_image(line);
    }
    set_money(cart, "total_display", "total_cents");
    json_object_set_new(cart, "empty", json_boolean(json_array_size(items) == 0));
    pages_add_cart_notices(r, cart);
    /* A one-time token for this rendering of the checkout form: submitting it twice
     * (a double click, a reload) names the same order instead of making another. */
    char *token = crypto_random_token_hex(CHECKOUT_TOKEN_BYTES);
    json_object_set_new(cart, "checkout_token", json_string(token));
    free(token);
    render_page(r, 200, "cart", "Your cart", "cart", cart);
}

void pages_cart_add(struct request *r)
{
    int64_t id, qty;
    if (!form_int(r, "product_id", 1, INT64_MAX / 2, 0, &id)) {
        render_flash(r, "error", "That product does not exist.");
        reply_redirect(r, "/browser/inventory");
        return;
    }
    /* Back where the form was: the product's page or its card in the inventory. */
    const char *from = request_form(r, "return_to");
    char back[64];
    if (from && strcmp(from, "product") == 0)
        snprintf(back, sizeof(back), "/browser/products/%" PRId64, id);
    else
        snprintf(back, sizeof(back), "/browser/inventory#product-%" PRId64, id);
    if (!form_int(r, "quantity", 1, CART_MAX_QUANTITY, 1, &qty)) {
        render_flash(r, "error", "Please enter a quantity of at least 1.");
        reply_redirect(r, back);
        return;
    }
    char name[256], msg[256];
    product_name(r, id, name, sizeof(name));
    enum outcome o = cart_add(r->db, r->session.user_id, id, qty, msg, sizeof(msg));
    if (o == OUT_OK)
        render_flash(r, "success", "Added %" PRId64 " \u00d7 %s to your cart.", qty, name);
    else if (o == OUT_NOT_FOUND)
        render_flash(r, "error", "That product is no longer available.");
    else if (o == OUT_CONFLICT)
        render_flash(r, "error", "%s, counting what is already in your cart.", msg);
    else
        render_flash(r, "error", "Your cart could not be updated. Please try again.");
    reply_redirect(r, back);
}

void pages_cart_update(struct request *r)
{
    int64_t id, qty;
    if (!form_int(r, "product_id", 1, INT64_MAX / 2, 0, &id)) {
        render_flash(r, "error", "That item is not in your cart.");
        reply_redirect(r, "/browser/cart");
        return;
    }
    if (!form_int(r, "quantity", 0, CART_MAX_QUANTITY, -1, &qty)) {
        render_flash(r, "error", "Please enter a quantity of 0 or more (0 removes the item).");
        reply_redirect(r, "/browser/cart");
        return;
    }
    char name[256], msg[256];
    product_name(r, id, name, sizeof(name));
    enum outcome o = cart_set(r->db, r->session.user_id, id, qty, msg, sizeof(msg));
    if (o == OUT_OK && qty == 0)
        render_flash(r, "success", "Removed %s from your cart.", name);
    else if (o == OUT_OK)
        render_flash(r, "success", "Updated %s: %" PRId64 " in your cart.", name, qty);
    else if (o == OUT_NOT_FOUND)
        render_flash(r, "error", "That item is not in your cart.");
    else if (o == OUT_CONFLICT)
        render_flash(r, "error", "%s.", msg);
    else
        render_flash(r, "error", "Your cart could not be updated. Please try again.");
    reply_redirect(r, "/browser/cart");
}

void pages_cart_remove(struct request *r)
{
    int64_t id;
    char name[256] = "";
    enum outcome o = OUT_NOT_FOUND;
    if (form_int(r, "product_id", 1, INT64_MAX / 2, 0, &id)) {
        product_name(r, id, name, sizeof(name));
        o = cart_remove(r->db, r->session.user_id, id);
    }
    if (o == OUT_OK)
        render_flash(r, "success", "Removed %s from your cart.", name);
    else if (o == OUT_NOT_FOUND)
        render_flash(r, "info", "That item was not in your cart.");
    else
        render_flash(r, "error", "Your cart could not be updated. Please try again.");
    reply_redirect(r, "/browser/cart");
}

static bool token_valid(const char *t)
{
    unsigned char raw[CHECKOUT_TOKEN_BYTES];
    return t && crypto_hex_decode(t, strlen(t), raw, sizeof(raw));
}

void pages_checkout(struct request *r)
{
    const char *token = request_form(r, "checkout_token");
    if (!token_valid(token)) {
        render_flash(r, "error", "The checkout form was incomplete. Please check your cart and try again.");
        reply_redirect(r, "/browser/cart");
        return;
    }
    /* Its own namespace, so that a form token never meets an API Idempotency-Key. */
    char key[64];
    snprintf(key, sizeof(key), "form:%s", token);
    struct checkout_result res;
    char msg[256];
    /* The review step's button sends the total it showed: the prices are
       accepted only while they still add up to it. */
    const char *accepted = request_form(r, "accept_total_cents");
    int found = accepted ? checkout_find(r->db, r->session.user_id, key, &res) : 0;
    if (found > 0)
        goto placed; /* a second click on the button: the first one placed the order */
    if (accepted) {
        int64_t shown;
        if (!form_int(r, "accept_total_cents", 0, INT64_MAX / 2, -1, &shown)) {
            render_flash(r, "error", "The confirmation form was incomplete. Please review the prices again.");
            reply_redirect(r, "/browser/checkout/review");
            return;
        }
        enum outcome a = cart_accept_prices(r->db, r->session.user_id, shown, msg, sizeof(msg));
        if (a == OUT_CONFLICT) {
            render_flash(r, "error",
                         "Prices changed again while you were looking. Please review them once more.");
            reply_redirect(r, "/browser/checkout/review");
            return;
        }
        if (a != OUT_OK) {
            pages_error(r, 500, "Your order could not be placed. Nothing was charged; please try again.");
            return;
        }
    }
    enum outcome o = checkout_place(r->db, r->session.user_id, key, false, &res, msg, sizeof(msg));
    if (o == OUT_CONFLICT && res.changed) {
        json_decref(res.changed);
        reply_redirect(r, "/browser/checkout/review");
        return;
    }
    if (o == OUT_CONFLICT || o == OUT_INVALID) {
        if (strcmp(msg, "Cart is empty") == 0)
            render_flash(r, "error", "There is nothing to check out yet: add something to your cart first.");
        else
            render_flash(r, "error", "%s. Please check your cart.", msg);
        reply_redirect(r, "/browser/cart");
        return;
    }
    if (o != OUT_OK) {
        pages_error(r, 500, "Your order could not be placed. Nothing was charged; please try again.");
        return;
    }
placed:
    if (!res.replayed)
        request_wake_dispatcher(r);
    render_flash(r, "success", "Thank you! Your order has been placed.");
    char *location = xasprintf("/browser/checkout?order=%s", res.order_id);
    reply_redirect(r, location);
    free(location);
}

void pages_checkout_review(struct request *r)
{
    json_t *cart = cart_view(r->db, r->session.user_id);
    if (!cart) {
        pages_error(r, 500, "Your cart could not be read. Please try again.");
        return;
    }
    if (!json_is_true(json_object_get(cart, "prices_changed"))) {
        /* Nothing to confirm (any more): the cart has the checkout button. */
        json_decref(cart);
        reply_redirect(r, "/browser/cart");
        return;
    }
    json_t *changed = json_array();
    size_t i;
    json_t *line;
    json_array_foreach(json_object_get(cart, "items"), i, line)
    {
        if (!json_is_true(json_object_get(line, "price_changed")))
            continue;
        set_money(line, "price_display", "price_cents");
        set_money(line, "added_price_display", "added_price_cents");
        set_image(line);
        json_object_set_new(line, "went_up",
                            json_boolean(json_integer_value(json_object_get(line, "price_cents")) >
                                         json_integer_value(json_object_get(line, "added_price_cents"))));
        json_array_append(changed, line);
    }
    set_money(cart, "total_display", "total_cents");
    json_object_set_new(cart, "changed", changed);
    char *token = crypto_random_token_hex(CHECKOUT_TOKEN_BYTES);
    json_object_set_new(cart, "checkout_token", json_string(token));
    free(token);
    render_page(r, 200, "review", "Confirm the new prices", "cart", cart);
}
