#include "shopd/render.h"
#include "shopd/cart.h"
#include "shopd/catalog.h"
#include "shopd/request.h"
#include "shopd/route.h"
#include "shared/crypto.h"
#include "shared/log.h"
#include "shared/mustache.h"
#include "shared/xalloc.h"

#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct mustache_set *templates;

int render_load(const char *dir, char *err, size_t errlen)
{
    char reason[512];
    struct mustache_set *set = mustache_set_load_dir(dir, reason, sizeof(reason));
    if (!set) {
        snprintf(err, errlen, "TEMPLATES_DIR=%s: %s", dir, reason);
        return -1;
    }
    static const char *const required[] = {"layout", "error"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (!mustache_set_get(set, required[i])) {
            snprintf(err, errlen, "TEMPLATES_DIR=%s: no %s.mustache", dir, required[i]);
            mustache_set_free(set);
            return -1;
        }
    }
    mustache_set_free(templates);
    templates = set;
    return 0;
}

void render_free(void)
{
    mustache_set_free(templates);
    templates = NULL;
}

json_t *render_money(int64_t cents)
{
    char buf[32], out[40];
    catalog_format_price(cents, buf, sizeof(buf));
    snprintf(out, sizeof(out), "$%s", buf);
    return json_string(out);
}

const char *render_local_image(const char *image_url)
{
    if (image_url && image_url[0] == '/' && image_url[1] != '/' && image_url[1] != '\\')
        return image_url;
    return "/static/img/placeholder.svg";
}

json_t *render_flash_now(const char *kind, const char *message)
{
    return json_pack("{s:s, s:s, s:b}", "kind", kind, "message", message, "is_error",
                     strcmp(kind, "error") == 0);
}

void render_flash(struct request *r, const char *kind, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    request_set_flash(r, kind, msg);
}

/* The last resort when the templates cannot produce a page: plain, escaped HTML. */
static void plain_page(struct request *r, int status, const char *message)
{
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add_printf(
        buf,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>%d</title>"
        "<link rel=\"stylesheet\" href=\"/static/style.css\"></head><body><main class=\"page\">"
        "<h1>Error %d</h1><p>",
        status, status);
    for (const char *s = message; *s; s++) {
        switch (*s) {
        case '&':
            evbuffer_add(buf, "&amp;", 5);
            break;
        case '<':
            evbuffer_add(buf, "&lt;", 4);
            break;
        case '>':
            evbuffer_add(buf, "&gt;", 4);
            break;
        case '"':
            evbuffer_add(buf, "&quot;", 6);
            break;
        case '\'':
            evbuffer_add(buf, "&#39;", 5);
            break;
        default:
            evbuffer_add(buf, s, 1);
        }
    }
    evbuffer_add_printf(buf, "</p><p><a href=\"/\">Back to the shop</a></p></main></body></html>\n");
    reply_buffer(r, status, "text/html; charset=utf-8", buf);
    evbuffer_free(buf);
}

/* Adds what the layout needs: who is logged in, the cart badge, the CSRF token. */
static void add_frame(struct request *r, json_t *ctx, const char *title, const char *nav, bool take_flash)
{
    json_object_set_new(ctx, "title", json_string(title));
    if (nav) {
        char key[64];
        snprintf(key, sizeof(key), "nav_%s", nav);
        json_object_set_new(ctx, key, json_true());
    }
    char csrf[CRYPTO_SHA256_HEX_LEN];
    request_csrf_token(r, csrf);
    json_object_set_new(ctx, "csrf", json_string(csrf));
    if (request_logged_in(r)) {
        json_object_set_new(ctx, "user", json_pack("{s:s}", "email", r->session.email));
        json_object_set_new(ctx, "is_admin", json_boolean(r->is_admin));
        int64_t count = cart_count(r->db, r->session.user_id);
        if (count >= 0)
            json_object_set_new(ctx, "cart_count", json_integer(count));
    }
    if (take_flash && !json_is_object(json_object_get(ctx, "flash"))) {
        char kind[16], msg[512];
        if (request_take_flash(r, kind, sizeof(kind), msg, sizeof(msg)))
            json_object_set_new(ctx, "flash", render_flash_now(kind, msg));
    }
}

/* Renders name and then the layout around it; NULL when a template is missing or a limit stopped it. */
static char *render_framed(const char *name, json_t *ctx, size_t *len)
{
    const struct mustache_template *page = templates ? mustache_set_get(templates, name) : NULL;
    const struct mustache_template *layout = templates ? mustache_set_get(templates, "layout") : NULL;
    if (!page || !layout) {
        log_error("pages: no template \"%s\"", page ? "layout" : name);
        return NULL;
    }
    size_t body_len;
    char *body = mustache_render_string(page, ctx, templates, &body_len);
    if (!body) {
        log_error("pages: rendering \"%s\" hit a limit", name);
        return NULL;
    }
    /* The body is our own rendered HTML: no UTF-8 check, it goes out as it came in. */
    json_object_set_new(ctx, "body", json_stringn_nocheck(body, body_len));
    free(body);
    char *html = mustache_render_string(layout, ctx, templates, len);
    if (!html)
        log_error("pages: rendering the layout of \"%s\" hit a limit", name);
    return html;
}

char *render_fragment(const char *name, const json_t *ctx, size_t *len)
{
    const struct mustache_template *t = templates ? mustache_set_get(templates, name) : NULL;
    if (!t) {
        log_error("pages: no template \"%s\"", name);
        return NULL;
    }
    char *text = mustache_render_string(t, ctx, templates, len);
    if (!text)
        log_error("pages: rendering \"%s\" hit a limit", name);
    return text;
}

void render_page(struct request *r, int status, const char *name, const char *title, const char *nav,
                 json_t *ctx)
{
    if (!ctx)
        ctx = json_object();
    add_frame(r, ctx, title, nav, true);
    size_t len;
    char *html = render_framed(name, ctx, &len);
    json_decref(ctx);
    if (!html) {
        plain_page(r, 500, "This page could not be shown. Please try again later.");
        return;
    }
    reply_html(r, status, html, len);
    free(html);
}

static const char *error_heading(int status)
{
    switch (status) {
    case 400:
        return "That request did not make sense";
    case 403:
        return "Not allowed";
    case 404:
        return "Page not found";
    case 405:
        return "Method not allowed";
    case 409:
        return "That did not work";
    case 429:
        return "Slow down a little";
    case 503:
        return "Back in a moment";
    default:
        return status >= 500 ? "Something went wrong" : "That did not work";
    }
}

void render_error(struct request *r, int status, const char *message)
{
    /* Errors can come before the worker looked the session up (unknown paths): find
     * it here so that the navigation still shows who is logged in. */
    if (!r->has_session && r->db && r->settings) {
        char token[SESSION_TOKEN_LEN + 1];
        struct session_policy p = {r->settings->secret_key, r->settings->session_idle_seconds,
                                   r->settings->session_max_seconds};
        if (request_cookie(r, "session", token, sizeof(token)))
            r->has_session = sessions_lookup(r->db, &p, token, &r->session);
    }
    char title[64];
    snprintf(title, sizeof(title), "%d %s", status, error_heading(status));
    /* The note on forms fits a refused CSRF token, not an admin page refused to a shopper. */
    bool admin_refusal = r->route && (r->route->flags & ROUTE_NEEDS_ADMIN) && !r->is_admin;
    json_t *ctx = json_pack("{s:i, s:s, s:s, s:b, s:b, s:b}", "status", status, "heading",
                            error_heading(status), "message", message, "is_404", status == 404, "is_429",
                            status == 429, "is_403", status == 403 && !admin_refusal);
    if (!ctx) { /* a message that is not UTF-8 */
        plain_page(r, status, message);
        return;
    }
    add_frame(r, ctx, title, NULL, false);
    size_t len;
    char *html = render_framed("error", ctx, &len);
    json_decref(ctx);
    if (!html) {
        plain_page(r, status, message);
        return;
    }
    reply_html(r, status, html, len);
    free(html);
}
