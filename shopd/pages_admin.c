/* The admin pages: the catalog (list with stock, create, edit, delete, stock,
 * image upload) and every order with its dispatch status, for ADMIN_EMAILS
 * accounts. The router lets nobody else reach these handlers (a login redirect
 * for visitors, 403 for other users). Every change is logged with the admin's
 * email, so the log says who changed what. */
#include "shopd/catalog.h"
#include "shopd/orders.h"
#include "shopd/pages.h"
#include "shopd/render.h"
#include "shopd/request.h"
#include "shopd/uploads.h"
#include "shopd/worker.h"
#include "shared/log.h"
#include "shared/multipart.h"
#include "shared/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADMIN_ORDERS_SHOWN 200

static void set_money(json_t *obj, const char *key, const char *cents_key)
{
    json_object_set_new(obj, key, render_money(json_integer_value(json_object_get(obj, cents_key))));
}

static char *product_url(int64_t id)
{
    return xasprintf("/browser/admin/products/%" PRId64, id);
}

/* "12", "12.5", "12.50" or "$12.50" as cents; false for anything else. */
static bool parse_price(const char *s, int64_t *cents)
{
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '$')
        s++;
    if (!isdigit((unsigned char)*s))
        return false;
    int64_t whole = 0;
    int digits = 0;
    while (isdigit((unsigned char)*s)) {
        if (++digits > 10)
            return false;
        whole = whole * 10 + (*s++ - '0');
    }
    int64_t frac = 0;
    if (*s == '.') {
        s++;
        int n = 0;
        while (isdigit((unsigned char)*s) && n < 3)
            frac = frac * 10 + (*s++ - '0'), n++;
        if (n == 0 || n > 2)
            return false;
        if (n == 1)
            frac *= 10;
    }
    while (isspace((unsigned char)*s))
        s++;
    if (*s)
        return false;
    *cents = whole * 100 + frac;
    return true;
}

static bool parse_count(const char *s, int64_t *out)
{
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    while (isspace((unsigned char)*end))
        end++;
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* The product form's fields as the JSON object catalog_parse_input reads. An
 * empty or absent field is left out (the catalog then says what is missing).
 * NULL with a message for a price or stock that is not a number. */
static json_t *form_product(struct request *r, char *msg, size_t msglen)
{
    json_t *body = json_object();
    static const char *const texts[] = {"name", "description"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        const char *v = request_form(r, texts[i]);
        if (!v || (!*v && i == 0))
            continue;
        json_t *s = json_string(v);
        if (!s) {
            snprintf(msg, msglen, "The %s must be plain text.", texts[i]);
            json_decref(body);
            return NULL;
        }
        json_object_set_new(body, texts[i], s);
    }
    const char *price = request_form(r, "price"), *stock = request_form(r, "stock");
    int64_t n;
    if (price && *price) {
        if (!parse_price(price, &n)) {
            snprintf(msg, msglen, "Please enter the price as an amount such as 1.25.");
            json_decref(body);
            return NULL;
        }
        json_object_set_new(body, "price_cents", json_integer(n));
    }
    if (stock && *stock) {
        if (!parse_count(stock, &n)) {
            snprintf(msg, msglen, "Please enter the stock as a whole number of 0 or more.");
            json_decref(body);
            return NULL;
        }
        json_object_set_new(body, "stock", json_integer(n));
    }
    return body;
}

/* The form's text again, so that a refused form keeps what was typed. */
static json_t *typed_values(struct request *r)
{
    json_t *v = json_object();
    static const char *const names[] = {"name", "description", "price", "stock"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *t = request_form(r, names[i]);
        json_t *s = t ? json_string(t) : NULL;
        if (s)
            json_object_set_new(v, names[i], s);
    }
    return v;
}

/* --- the product list ------------------------------------------------------ */

static void products_page(struct request *r, int status, const char *error, json_t *typed)
{
    json_t *list = catalog_list(r->db);
    if (!list) {
        json_decref(typed);
        pages_error(r, 500, "The catalog could not be read. Please try again.");
        return;
    }
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p)
    {
        set_money(p, "price_display", "price_cents");
        json_object_set_new(
            p, "image", json_string(render_local_image(json_string_value(json_object_get(p, "image_url")))));
    }
    json_t *ctx = json_pack("{s:o, s:b, s:o, s:b}", "products", list, "empty", json_array_size(list) == 0,
                            "new", typed ? typed : json_object(), "nav_admin_products", 1);
    if (error)
        json_object_set_new(ctx, "flash", render_flash_now("error", error));
    render_page(r, status, "admin_products", "Catalog admin", "admin", ctx);
}

void pages_admin_home(struct request *r)
{
    reply_redirect(r, "/browser/admin/products");
}

void pages_admin_products(struct request *r)
{
    products_page(r, 200, NULL, NULL);
}

void pages_admin_product_create(struct request *r)
{
    char msg[256] = "";
    json_t *body = form_product(r, msg, sizeof(msg));
    struct product_input in;
    enum outcome o = body ? catalog_parse_input(body, true, &in, msg, sizeof(msg)) : OUT_INVALID;
    json_decref(body);
    int64_t id = 0;
    if (o == OUT_OK)
        o = catalog_create(r->db, &in, &id);
    if (o == OUT_INVALID) {
        /* The catalog's messages are written for the API ("price is required"). */
        char page_msg[300];
        snprintf(page_msg, sizeof(page_msg), "The product was not created: %s%s", msg,
                 msg[0] && msg[strlen(msg) - 1] == '.' ? "" : ".");
        products_page(r, 400, page_msg, typed_values(r));
        return;
    }
    if (o != OUT_OK) {
        pages_error(r, 500, "The product could not be created. Please try again.");
        return;
    }
    log_info("admin: %s created product %" PRId64 " (%s)", r->session.email, id, in.name);
    render_flash(r, "success", "Created %s. Add an image below if you like.", in.name);
    char *url = product_url(id);
    reply_redirect(r, url);
    free(url);
}

/* --- one product ------------------------------------------------------------ */

static void product_page(struct request *r, int status, const char *error)
{
    json_t *p = NULL;
    enum outcome o = catalog_get(r->db, r->param, &p);
    if (o == OUT_NOT_FOUND) {
        pages_error(r, 404, "There is no product with this number.");
        return;
    }
    if (o != OUT_OK) {
        pages_error(r, 500, "The product could not be read. Please try again.");
        return;
    }
    char price[32];
    catalog_format_price(json_integer_value(json_object_get(p, "price_cents")), price, sizeof(price));
    json_object_set_new(p, "price_input", json_string(price));
    json_object_set_new(p, "image",
                        json_string(render_local_image(json_string_value(json_object_get(p, "image_url")))));
    json_t *ctx = json_pack("{s:o, s:I}", "product", p, "max_image_kib",
                            (json_int_t)(r->settings->upload_max_bytes / 1024));
    if (error)
        json_object_set_new(ctx, "flash", render_flash_now("error", error));
    render_page(r, status, "admin_product", "Edit product", "admin", ctx);
}

void pages_admin_product(struct request *r)
{
    product_page(r, 200, NULL);
}

void pages_admin_product_update(struct request *r)
{
    char msg[256] = "";
    json_t *body = form_product(r, msg, sizeof(msg));
    struct product_input in;
    enum outcome o = body ? catalog_parse_input(body, false, &in, msg, sizeof(msg)) : OUT_INVALID;
    json_decref(body);
    if (o == OUT_OK)
        o = catalog_update(r->db, r->param, &in);
    if (o == OUT_INVALID) {
        char page_msg[300];
        snprintf(page_msg, sizeof(page_msg), "Nothing was changed: %s%s", msg,
                 msg[0] && msg[strlen(msg) - 1] == '.' ? "" : ".");
        product_page(r, 400, page_msg);
        return;
    }
    if (o == OUT_NOT_FOUND) {
        pages_error(r, 404, "There is no product with this number.");
        return;
    }
    if (o != OUT_OK) {
        pages_error(r, 500, "The product could not be changed. Please try again.");
        return;
    }
    log_info("admin: %s changed product %" PRId64, r->session.email, r->param);
    render_flash(r, "success", "Saved your changes.");
    char *url = product_url(r->param);
    reply_redirect(r, url);
    free(url);
}

void pages_admin_product_stock(struct request *r)
{
    const char *stock = request_form(r, "stock");
    struct product_input in = {.has_stock = true};
    enum outcome o = stock && parse_count(stock, &in.stock) && in.stock <= INT32_MAX ? OUT_OK : OUT_INVALID;
    if (o == OUT_OK)
        o = catalog_update(r->db, r->param, &in);
    if (o == OUT_OK) {
        log_info("admin: %s set the stock of product %" PRId64 " to %" PRId64, r->session.email, r->param,
                 in.stock);
        render_flash(r, "success", "Stock of product %" PRId64 " is now %" PRId64 ".", r->param, in.stock);
    } else if (o == OUT_INVALID) {
        render_flash(r, "error", "Please enter the stock as a whole number of 0 or more.");
    } else if (o == OUT_NOT_FOUND) {
        render_flash(r, "error", "That product no longer exists.");
    } else {
        render_flash(r, "error", "The stock could not be changed. Please try again.");
    }
    char *back = xasprintf("/browser/admin/products#admin-product-%" PRId64, r->param);
    reply_redirect(r, back);
    free(back);
}

void pages_admin_product_delete(struct request *r)
{
    json_t *p = NULL;
    char name[256] = "the product";
    if (catalog_get(r->db, r->param, &p) == OUT_OK)
        snprintf(name, sizeof(name), "%s", json_string_value(json_object_get(p, "name")));
    json_decref(p);
    enum outcome o = catalog_delete(r->db, r->param);
    if (o == OUT_OK) {
        log_info("admin: %s deleted product %" PRId64 " (%s)", r->session.email, r->param, name);
        render_flash(r, "success", "Deleted %s.", name);
    } else if (o == OUT_NOT_FOUND) {
        render_flash(r, "info", "That product was already gone.");
    } else {
        render_flash(r, "error", "The product could not be deleted. Please try again.");
    }
    reply_redirect(r, "/browser/admin/products");
}

void pages_admin_product_image(struct request *r)
{
    json_t *p = NULL;
    enum outcome o = catalog_get(r->db, r->param, &p);
    json_decref(p);
    if (o == OUT_NOT_FOUND) {
        pages_error(r, 404, "There is no product with this number.");
        return;
    }
    const struct multipart_part *file = request_file(r, "image");
    if (!file || !file->filename || file->len == 0) {
        product_page(r, 400, "Please choose an image file to upload.");
        return;
    }
    if (file->len > (size_t)r->settings->upload_max_bytes) {
        char msg[160];
        snprintf(msg, sizeof(msg), "That image is too large: the most is %ld KiB.",
                 r->settings->upload_max_bytes / 1024);
        product_page(r, 413, msg);
        return;
    }
    /* The bytes decide, not the file name or the type the browser claims. */
    enum upload_kind kind = uploads_sniff(file->data, file->len);
    if (kind == UPLOAD_UNKNOWN) {
        product_page(r, 415,
                     "That file is not a PNG, JPEG or WebP image. Other types, SVG among them, are "
                     "not accepted.");
        return;
    }
    char stored[UPLOADS_NAME_MAX + 1], err[512];
    if (uploads_store(r->settings->uploads_dir, file->data, file->len, kind, stored, err, sizeof(err)) < 0) {
        log_error("admin: storing an image for product %" PRId64 " failed: %s", r->param, err);
        pages_error(r, 500, "The image could not be stored. Please try again.");
        return;
    }
    struct product_input in = {.has_image_url = true};
    snprintf(in.image_url, sizeof(in.image_url), "%s%s", UPLOADS_URL_PREFIX, stored);
    o = catalog_update(r->db, r->param, &in);
    if (o != OUT_OK) {
        pages_error(r, o == OUT_NOT_FOUND ? 404 : 500, "The product's image could not be changed.");
        return;
    }
    log_info("admin: %s uploaded image %s (%zu bytes) for product %" PRId64, r->session.email, stored,
             file->len, r->param);
    render_flash(r, "success", "The new image is in place.");
    char *url = product_url(r->param);
    reply_redirect(r, url);
    free(url);
}

/* --- orders ------------------------------------------------------------------ */

void pages_admin_orders(struct request *r)
{
    json_t *orders = orders_list(r->db, 0, ADMIN_ORDERS_SHOWN);
    if (!orders) {
        pages_error(r, 500, "The orders could not be read. Please try again.");
        return;
    }
    size_t i, failed = 0;
    json_t *order;
    json_array_foreach(orders, i, order)
    {
        pages_decorate_order(order);
        failed += json_is_true(json_object_get(order, "is_failed"));
    }
    json_t *ctx = json_pack("{s:o, s:b, s:I, s:b}", "orders", orders, "empty", json_array_size(orders) == 0,
                            "failed_count", (json_int_t)failed, "nav_admin_orders", 1);
    render_page(r, 200, "admin_orders", "Orders admin", "admin", ctx);
}

void pages_admin_order_retry(struct request *r)
{
    enum outcome o = orders_retry(r->db, r->param_text);
    if (o == OUT_OK) {
        log_info("admin: %s sent order %s again", r->session.email, r->param_text);
        worker_wake_dispatcher(r->worker);
        render_flash(r, "success", "Order %s is queued to be sent again.", r->param_text);
    } else if (o == OUT_CONFLICT) {
        render_flash(r, "info", "Order %s has not failed, so there is nothing to send again.", r->param_text);
    } else if (o == OUT_NOT_FOUND) {
        render_flash(r, "error", "There is no such order.");
    } else {
        render_flash(r, "error", "The order could not be queued again. Please try again.");
    }
    reply_redirect(r, "/browser/admin/orders");
}
