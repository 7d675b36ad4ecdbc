#include "shopd/request.h"
#include "shopd/route.h"
#include "shared/clock.h"
#include "shared/crypto.h"
#include "shared/log.h"
#include "shared/http_answer.h"
#include "shared/multipart.h"
#include "shared/xalloc.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static void add_common_headers(struct request *r, const char *content_type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
    if (content_type)
        evhttp_add_header(h, "Content-Type", content_type);
    evhttp_add_header(h, "X-Request-Id", r->request_id);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    evhttp_add_header(h, "Referrer-Policy", "same-origin");
    if (content_type && strncmp(content_type, "text/html", 9) == 0) {
        evhttp_add_header(h, "Content-Security-Policy",
                          "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                          "form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
        evhttp_add_header(h, "Cache-Control", "no-store");
    }
    if (r->set_session_token) {
        char cookie[256];
        snprintf(cookie, sizeof(cookie), "session=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%ld%s",
                 r->set_session_token, r->settings->session_max_seconds,
                 r->settings->cookie_secure || r->via_https ? "; Secure" : "");
        evhttp_add_header(h, "Set-Cookie", cookie);
    } else if (r->clear_session) {
        char cookie[160];
        snprintf(cookie, sizeof(cookie), "session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0%s",
                 r->settings->cookie_secure || r->via_https ? "; Secure" : "");
        evhttp_add_header(h, "Set-Cookie", cookie);
    }
    const char *secure = r->settings->cookie_secure || r->via_https ? "; Secure" : "";
    if (r->set_visitor && !r->has_session) {
        char cookie[160];
        snprintf(cookie, sizeof(cookie), "visitor=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%ld%s",
                 r->visitor_id, r->settings->session_max_seconds, secure);
        evhttp_add_header(h, "Set-Cookie", cookie);
    }
    if (r->set_flash) {
        char cookie[VISITOR_FLASH_COOKIE_MAX + 96];
        snprintf(cookie, sizeof(cookie), "flash=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%d%s",
                 r->set_flash, VISITOR_FLASH_SECONDS, secure);
        evhttp_add_header(h, "Set-Cookie", cookie);
    } else if (r->clear_flash) {
        char cookie[96];
        snprintf(cookie, sizeof(cookie), "flash=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0%s", secure);
        evhttp_add_header(h, "Set-Cookie", cookie);
    }
    if (r->env && r->env->draining && *r->env->draining)
        evhttp_add_header(h, "Connection", "close");
}

void reply_buffer(struct request *r, int status, const char *content_type, struct evbuffer *buf)
{
    if (r->replied)
        return;
    r->replied = true;
    r->status = status;
    r->bytes = evbuffer_get_length(buf);
    if (r->held && !r->cancelled)
        evhttp_connection_set_closecb(evhttp_request_get_connection(r->ev), NULL, NULL);
    if (status == 500 && db_failure_count() != r->db_failures_at_start) {
        /* The database, not this request, failed: say so, and when to come back. */
        status = r->status = 503;
        evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Retry-After", "5");
        if (content_type && strcmp(content_type, "application/json") == 0) {
            evbuffer_drain(buf, evbuffer_get_length(buf));
            json_t *body = json_pack("{s:s}", "message", db_failure_text(db_last_failure()));
            char *text = json_dumps(body, JSON_COMPACT);
            evbuffer_add_printf(buf, "%s\n", text);
            free(text);
            json_decref(body);
            r->bytes = evbuffer_get_length(buf);
        }
    }
    if (!r->cancelled) {
        add_common_headers(r, content_type);
        evhttp_send_reply(r->ev, status, http_reason(status), buf);
    }
    /* Otherwise the pipeline ends the request when the handler returns. */
    if (r->held && r->env && r->env->held_done)
        r->env->held_done(r);
}

void reply_json(struct request *r, int status, json_t *body)
{
    struct evbuffer *buf = evbuffer_new();
    char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(body);
    evbuffer_add(buf, text, strlen(text));
    free(text);
    evbuffer_add(buf, "\n", 1);
    reply_buffer(r, status, "application/json", buf);
    evbuffer_free(buf);
}

static void reply_vmessage(struct request *r, int status, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    reply_json(r, status, json_pack("{s:s}", "message", msg));
}

void reply_message(struct request *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_vmessage(r, status, fmt, ap);
    va_end(ap);
}

void reply_error(struct request *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (r->route && route_is_page(r->route) && r->env && r->env->error_page) {
        char msg[1024];
        vsnprintf(msg, sizeof(msg), fmt, ap);
        r->env->error_page(r, status, msg);
    } else {
        reply_vmessage(r, status, fmt, ap);
    }
    va_end(ap);
}

void reply_html(struct request *r, int status, const char *html, size_t len)
{
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add(buf, html, len);
    reply_buffer(r, status, "text/html; charset=utf-8", buf);
    evbuffer_free(buf);
}

void reply_redirect(struct request *r, const char *location)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Location", location);
    struct evbuffer *buf = evbuffer_new();
    reply_buffer(r, 303, "text/plain; charset=utf-8", buf);
    evbuffer_free(buf);
}

void reply_add_header(struct request *r, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), name, value);
}

const char *request_header(struct request *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

/* Body bytes as a NUL-terminated string owned by the input buffer; *len excludes the NUL. */
static const char *body_text(struct request *r, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
    *len = evbuffer_get_length(in);
    evbuffer_add(in, "", 1);
    const char *text = (const char *)evbuffer_pullup(in, -1);
    evbuffer_drain(in, 0);
    return text;
}

json_t *request_json_body(struct request *r, int *status, char *msg, size_t msglen)
{
    if (r->json)
        return r->json;
    const char *ct = request_header(r, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0 || (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
        *status = 415;
        snprintf(msg, msglen, "Content-Type must be application/json");
        return NULL;
    }
    size_t len;
    struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
    len = evbuffer_get_length(in);
    const char *text = (const char *)evbuffer_pullup(in, -1);
    json_error_t jerr;
    json_t *v = len ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!v) {
        *status = 400;
        if (len)
            snprintf(msg, msglen, "Malformed JSON: %s", jerr.text);
        else
            snprintf(msg, msglen, "Request body must be a JSON object");
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        *status = 400;
        snprintf(msg, msglen, "Request body must be a JSON object");
        return NULL;
    }
    r->json = v;
    return v;
}

static struct evkeyvalq *parse_pairs(const char *text)
{
    struct evkeyvalq *q = xcalloc(1, sizeof(*q));
    TAILQ_INIT(q);
    if (evhttp_parse_query_str(text, q) < 0)
        evhttp_clear_headers(q);
    return q;
}

/* Splits a multipart/form-data body into r->parts and puts its text fields
 * (parts without a filename) into r->form, so that the CSRF check and
 * request_form read an upload form as they read any other. */
static void parse_multipart(struct request *r, const char *ct)
{
    r->form = xcalloc(1, sizeof(*r->form));
    TAILQ_INIT(r->form);
    char boundary[MULTIPART_MAX_BOUNDARY + 1];
    if (!multipart_boundary(ct, boundary, sizeof(boundary))) {
        r->multipart_error = "no multipart boundary";
        return;
    }
    size_t len;
    const char *body = body_text(r, &len);
    r->parts = xcalloc(REQUEST_MAX_PARTS, sizeof(*r->parts));
    int n = multipart_parse(boundary, body, len, r->parts, REQUEST_MAX_PARTS, &r->multipart_error);
    if (n < 0)
        return;
    r->nparts = (size_t)n;
    for (size_t i = 0; i < r->nparts; i++) {
        const struct multipart_part *p = &r->parts[i];
        if (p->filename || memchr(p->data, '\0', p->len) || memchr(p->name, '\0', p->name_len))
            continue;
        char *key = xstrndup(p->name, p->name_len), *value = xstrndup(p->data, p->len);
        evhttp_add_header(r->form, key, value);
        free(key);
        free(value);
    }
}

const struct multipart_part *request_file(struct request *r, const char *name)
{
    request_form(r, name);
    return r->nparts ? multipart_find(r->parts, r->nparts, name) : NULL;
}

const char *request_form(struct request *r, const char *name)
{
    if (!r->form) {
        const char *ct = request_header(r, "Content-Type");
        if (ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0) {
            size_t len;
            const char *text = body_text(r, &len);
            r->form = parse_pairs(text);
        } else if (ct && strncasecmp(ct, "multipart/form-data", 19) == 0) {
            parse_multipart(r, ct);
        } else {
            r->form = xcalloc(1, sizeof(*r->form));
            TAILQ_INIT(r->form);
        }
    }
    return evhttp_find_header(r->form, name);
}

const char *request_query(struct request *r, const char *name)
{
    if (!r->query) {
        const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(r->ev));
        if (q) {
            r->query = parse_pairs(q);
        } else {
            r->query = xcalloc(1, sizeof(*r->query));
            TAILQ_INIT(r->query);
        }
    }
    return evhttp_find_header(r->query, name);
}

bool request_cookie(struct request *r, const char *name, char *buf, size_t len)
{
    size_t nl = strlen(name);
    struct evkeyvalq *h = evhttp_request_get_input_headers(r->ev);
    for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
        if (strcasecmp(kv->key, "Cookie") != 0)
            continue;
        const char *p = kv->value;
        while (*p) {
            while (*p == ' ' || *p == ';')
                p++;
            const char *eq = strchr(p, '=');
            const char *end = strchr(p, ';');
            if (!end)
                end = p + strlen(p);
            if (eq && eq < end && (size_t)(eq - p) == nl && strncmp(p, name, nl) == 0) {
                size_t vl = (size_t)(end - eq - 1);
                if (vl >= len)
                    return false;
                memcpy(buf, eq + 1, vl);
                buf[vl] = '\0';
                return true;
            }
            p = end;
        }
    }
    return false;
}

static struct session_policy policy_of(struct request *r)
{
    struct session_policy p = {r->settings->secret_key, r->settings->session_idle_seconds,
                               r->settings->session_max_seconds};
    return p;
}

int request_start_session(struct request *r, int64_t user_id)
{
    struct session_policy p = policy_of(r);
    if (r->has_session)
        sessions_delete(r->db, r->session.key);
    r->has_session = false;
    free(r->set_session_token);
    r->set_session_token = sessions_create(r->db, &p, user_id, &r->session);
    if (!r->set_session_token)
        return -1;
    r->has_session = true;
    r->clear_session = false;
    r->is_admin = user_id && r->env->is_admin(r->env, r->session.email);
    return 0;
}

void request_end_session(struct request *r)
{
    if (r->has_session)
        sessions_delete(r->db, r->session.key);
    r->has_session = false;
    r->is_admin = false;
    free(r->set_session_token);
    r->set_session_token = NULL;
    r->clear_session = true;
}

void request_csrf_token(struct request *r, char *out)
{
    if (r->has_session) {
        snprintf(out, CRYPTO_SHA256_HEX_LEN, "%s", r->session.csrf);
        return;
    }
    if (!r->visitor_id[0]) {
        visitor_new_id(r->visitor_id);
        r->set_visitor = true;
    }
    visitor_csrf_token(r->settings->secret_key, r->visitor_id, out);
}

bool request_csrf_ok(struct request *r, const char *token)
{
    if (!token)
        return false;
    char want[CRYPTO_SHA256_HEX_LEN];
    if (r->has_session)
        snprintf(want, sizeof(want), "%s", r->session.csrf);
    else if (r->visitor_id[0] && !r->set_visitor)
        visitor_csrf_token(r->settings->secret_key, r->visitor_id, want);
    else
        return false;
    size_t n = strlen(want);
    return n > 0 && strlen(token) == n && crypto_equal(token, want, n);
}

void request_set_flash(struct request *r, const char *kind, const char *message)
{
    if (r->has_session) {
        if (sessions_set_flash(r->db, r->session.key, kind, message) < 0)
            log_warn("could not store the flash message \"%s\"", message);
        return;
    }
    char value[VISITOR_FLASH_COOKIE_MAX];
    if (!visitor_flash_encode(r->settings->secret_key, kind, message, time(NULL) + VISITOR_FLASH_SECONDS,
                              value, sizeof(value)))
        return;
    free(r->set_flash);
    r->set_flash = xstrdup(value);
}

bool request_take_flash(struct request *r, char *kind, size_t kindlen, char *message, size_t msglen)
{
    if (r->has_session && sessions_take_flash(r->db, r->session.key, kind, kindlen, message, msglen))
        return true;
    /* A message set before login (or logout) waits in the cookie. */
    char value[VISITOR_FLASH_COOKIE_MAX + 1];
    if (!request_cookie(r, "flash", value, sizeof(value)) || !value[0])
        return false;
    r->clear_flash = true;
    return visitor_flash_decode(r->settings->secret_key, value, time(NULL), kind, kindlen, message, msglen);
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
    struct request *r = arg;
    (void)evcon;
    r->cancelled = true;
}

void request_watch_close(struct request *r)
{
    evhttp_connection_set_closecb(evhttp_request_get_connection(r->ev), on_close, r);
}

void request_hold(struct request *r)
{
    r->held = true;
    request_watch_close(r);
}

void request_abandon(struct request *r)
{
    if (r->replied)
        return;
    r->replied = true;
    if (r->env && r->env->held_done)
        r->env->held_done(r);
}

struct offload *request_offload(struct request *r)
{
    return r->env->offload;
}

void request_wake_dispatcher(struct request *r)
{
    if (r->env->wake_fd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(r->env->wake_fd, &one, sizeof(one));
        (void)n; /* a full eventfd already means "wake up" */
    }
}
