#include "shopd/pipeline.h"
#include "shopd/accounts.h"
#include "shopd/catalog_cache.h"
#include "shopd/db.h"
#include "shopd/http_guard.h"
#include "shopd/metrics.h"
#include "shopd/pages.h"
#include "shopd/ratelimit_client.h"
#include "shopd/request.h"
#include "shopd/router.h"
#include "shopd/sessions.h"
#include "shared/addrlist.h"
#include "shared/clock.h"
#include "shared/log.h"
#include "shared/request_id.h"
#include "shared/xalloc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct exchange;

struct pipeline {
    struct request_env env; /* what every request borrows */
    const struct admin_list *admins;
    struct rl_client *rl;
    struct request_id_gen request_ids;
    long in_flight;
    uint64_t last_reply_us;
    /* Catalog requests waiting for the end of the pass, oldest first, and the
       event that runs them there. */
    struct exchange *catalog_first, *catalog_last;
    struct event *catalog_gathered;
};

/* A request as the pipeline keeps it: what handlers see, and around it what
 * only the pipeline needs (timing, the budget answers, where the handler is). */
struct exchange {
    struct request r; /* first: handlers get &x->r */
    struct pipeline *pipeline;
    uint64_t start_us;
    struct rl_result rl; /* the tightest budget answer so far */
    const char *rl_rule;
    bool has_rl;
    int pending_checks;
    bool in_handler;               /* a held request answered inside the handler's call ends on its return */
    struct exchange *next_waiting; /* in the pipeline's catalog queue */
};

static struct exchange *exchange_of(struct request *r)
{
    return (struct exchange *)((char *)r - offsetof(struct exchange, r));
}

static bool env_is_admin(const struct request_env *env, const char *email)
{
    const struct pipeline *p = (const struct pipeline *)((const char *)env - offsetof(struct pipeline, env));
    return accounts_is_admin(p->admins, email);
}

static void on_held_done(struct request *r);
static void on_catalog_gathered(evutil_socket_t fd, short what, void *arg);

struct pipeline *pipeline_new(const struct pipeline_config *cfg)
{
    struct pipeline *p = xcalloc(1, sizeof(*p));
    p->env = (struct request_env){.db = cfg->db,
                                  .settings = cfg->settings,
                                  .offload = cfg->offload,
                                  .wake_fd = cfg->wake_fd,
                                  .draining = cfg->draining,
                                  .is_admin = env_is_admin,
                                  .error_page = pages_error,
                                  .held_done = on_held_done};
    p->admins = cfg->admins;
    size_t nroutes;
    const struct route *routes = router_routes(&nroutes);
    metrics_use_routes(routes, nroutes);
    p->rl = cfg->rl;
    request_id_gen_init(&p->request_ids);
    p->catalog_gathered = event_new(cfg->base, -1, 0, on_catalog_gathered, p);
    return p;
}

void pipeline_free(struct pipeline *p)
{
    if (!p)
        return;
    if (p->catalog_gathered)
        event_free(p->catalog_gathered);
    free(p);
}

long pipeline_in_flight(const struct pipeline *p)
{
    return p->in_flight;
}

uint64_t pipeline_last_reply_us(const struct pipeline *p)
{
    return p->last_reply_us;
}

struct request_id_gen *pipeline_request_ids(struct pipeline *p)
{
    return &p->request_ids;
}

/* --- client address ------------------------------------------------------ */

static bool is_trusted(const struct pipeline *p, const char *addr)
{
    return addrlist_contains(p->env.settings->trusted_proxies, addr);
}

/* The client is the right-most X-Forwarded-For entry that is not one of our
 * proxies: everything left of it was written by the client and may be forged. */
static void find_client_ip(const struct pipeline *p, struct request *r)
{
    char *peer = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(evhttp_request_get_connection(r->ev), &peer, &port);
    snprintf(r->client_ip, sizeof(r->client_ip), "%s", peer ? peer : "unknown");
    if (!peer || !is_trusted(p, peer))
        return;
    const char *proto = request_header(r, "X-Forwarded-Proto");
    r->via_https = proto && strcasecmp(proto, "https") == 0;
    const char *xff = request_header(r, "X-Forwarded-For");
    if (!xff)
        return;
    char copy[1024];
    snprintf(copy, sizeof(copy), "%s", xff);
    char *entries[64];
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t && n < 64; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ' || *t == '\t')
            t++;
        char *e = t + strlen(t);
        while (e > t && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        entries[n++] = t;
    }
    for (int i = n - 1; i >= 0; i--) {
        unsigned char buf[sizeof(struct in6_addr)];
        bool valid = inet_pton(AF_INET, entries[i], buf) == 1 || inet_pton(AF_INET6, entries[i], buf) == 1;
        if (!valid)
            return; /* garbage: keep the last address we can vouch for */
        snprintf(r->client_ip, sizeof(r->client_ip), "%s", entries[i]);
        if (!is_trusted(p, entries[i]))
            return;
    }
}

static void set_request_id(struct pipeline *p, struct request *r)
{
    /* The balancer's rule (shared/request_id), so both access logs name the
     * same id; anything else is replaced, never cleaned up. */
    const char *given = request_header(r, "X-Request-Id");
    if (given) {
        size_t n = strlen(given);
        if (request_id_valid(given, n)) {
            memcpy(r->request_id, given, n + 1);
            return;
        }
    }
    request_id_next(&p->request_ids, r->request_id);
}

/* --- request life cycle -------------------------------------------------- */

static void free_exchange(struct exchange *x)
{
    struct request *r = &x->r;
    free(r->path);
    free(r->set_session_token);
    free(r->set_flash);
    if (r->json)
        json_decref(r->json);
    if (r->form) {
        evhttp_clear_headers(r->form);
        free(r->form);
    }
    if (r->query) {
        evhttp_clear_headers(r->query);
        free(r->query);
    }
    free(r->parts);
    free(x);
}

/* The end of every request, answered or abandoned: metrics, the access log, free. */
static void finish(struct exchange *x)
{
    struct request *r = &x->r;
    struct pipeline *p = x->pipeline;
    http_guard_answered(r->ev);
    p->in_flight--;
    uint64_t now = clock_mono_us();
    p->last_reply_us = now;
    metrics_in_flight(-1);
    uint64_t us = now - x->start_us;
    size_t nroutes;
    const struct route *routes = router_routes(&nroutes);
    metrics_request(r->route ? (size_t)(r->route - routes) : nroutes, r->cancelled ? 499 : r->status, us);
    if (r->cancelled)
        log_info("access %s %s %s cancelled 0 %" PRIu64 "us request_id=%s", r->client_ip, r->method, r->path,
                 us, r->request_id);
    else if (!(r->route && (r->route->flags & ROUTE_NO_LOG)) || log_get_level() == LOG_DEBUG)
        log_info("access %s %s %s %d %zu %" PRIu64 "us request_id=%s", r->client_ip, r->method, r->path,
                 r->status, r->bytes, us, r->request_id);
    free_exchange(x);
}

/* request.c's call when a held request got its answer (or was abandoned).
 * Inside the handler's own call the pipeline finishes it on return instead. */
static void on_held_done(struct request *r)
{
    struct exchange *x = exchange_of(r);
    if (!x->in_handler)
        finish(x);
}

/* Runs the handler; the request is finished here unless it is held for later. */
static void run_handler(struct exchange *x)
{
    struct request *r = &x->r;
    x->in_handler = true;
    r->route->handler(r);
    x->in_handler = false;
    if (!r->replied && !r->held) {
        log_error("handler for %s %s did not reply", r->method, r->path);
        reply_error(r, 500, "Internal error");
    }
    if (r->replied)
        finish(x);
}

/* --- catalog requests, gathered per pass --------------------------------- */

/* The catalog's version is read once for every catalog request that arrived in
 * one pass of the event loop. The event is made active by the first of them, so
 * it runs after the callbacks already due in this pass (libevent runs active
 * events in order), which are where the others arrive. Each waiting request was
 * whole before the read began, so the read sees every change committed before
 * any of them arrived: as fresh as a read of its own. */
static void wait_for_catalog(struct pipeline *p, struct exchange *x)
{
    request_watch_close(&x->r);
    x->next_waiting = NULL;
    if (p->catalog_last)
        p->catalog_last->next_waiting = x;
    else
        p->catalog_first = x;
    p->catalog_last = x;
    event_active(p->catalog_gathered, EV_TIMEOUT, 0); /* no-op while it is already active */
}

static void on_catalog_gathered(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pipeline *p = arg;
    /* Requests that arrive while these run wait for the next gathering. */
    struct exchange *x = p->catalog_first;
    p->catalog_first = p->catalog_last = NULL;
    catalog_cache_confirm(p->env.db); /* on failure each handler reads (and answers) on its own */
    size_t gathered = 0;
    while (x) {
        gathered++;
        struct exchange *next = x->next_waiting;
        struct request *r = &x->r;
        evhttp_connection_set_closecb(evhttp_request_get_connection(r->ev), NULL, NULL);
        if (r->cancelled) {
            r->replied = true;
            finish(x);
        } else {
            run_handler(x);
        }
        x = next;
    }
    catalog_cache_unconfirm();
    metrics_catalog_gathering(gathered);
}

static bool csrf_ok(struct request *r)
{
    const char *token = request_form(r, "csrf_token");
    if (!token)
        token = request_header(r, "X-CSRF-Token");
    return request_csrf_ok(r, token);
}

/* True for the content types a plain HTML form can send cross-site. */
static bool form_content_type(struct request *r)
{
    const char *ct = request_header(r, "Content-Type");
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    return strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0 ||
           strncasecmp(ct, "multipart/form-data", 19) == 0 || strncasecmp(ct, "text/plain", 10) == 0;
}

/* Room for the multipart framing and the other fields around an uploaded image. */
#define UPLOAD_FORM_OVERHEAD (64 * 1024)

/* What the connection reads at most: SHOPD_MAX_BODY, or an upload form with an
 * image of UPLOAD_MAX_BYTES when that is larger (dispatch then holds every
 * other route to SHOPD_MAX_BODY). */
long pipeline_body_limit(const struct shopd_settings *s)
{
    long upload = s->upload_max_bytes + UPLOAD_FORM_OVERHEAD;
    return upload > s->max_body_bytes ? upload : s->max_body_bytes;
}

/* Checks the route's requirements once every budget check has answered (or was
 * skipped), then runs the handler; finishes the request unless it is held. */
static void dispatch(struct exchange *x)
{
    struct request *r = &x->r;
    const struct route *rt = r->route;
    if (x->has_rl)
        rl_add_headers(evhttp_request_get_output_headers(r->ev), x->rl_rule, &x->rl);
    if (x->has_rl && x->rl.verdict == RL_DENY) {
        metrics_ratelimit(true, false);
        long secs = (x->rl.retry_after_ms + 999) / 1000;
        if (route_is_page(rt))
            reply_error(r, 429, "Too many requests. Please wait %ld second%s and try again.", secs,
                        secs == 1 ? "" : "s");
        else
            reply_message(r, 429, "Too many requests; retry in %ld s", secs);
        finish(x);
        return;
    }
    if (!(rt->flags & ROUTE_UPLOAD) &&
        evbuffer_get_length(evhttp_request_get_input_buffer(r->ev)) > (size_t)r->settings->max_body_bytes) {
        reply_add_header(r, "Connection", "close");
        reply_error(r, 413, "Request body larger than the limit");
        finish(x);
        return;
    }
    if ((rt->flags & ROUTE_NEEDS_USER) && !request_logged_in(r)) {
        if (route_is_page(rt)) {
            request_set_flash(r, "info", "Please log in first.");
            reply_redirect(r, "/browser/login");
        } else {
            reply_message(r, 401, "Login required");
        }
        finish(x);
        return;
    }
    if ((rt->flags & ROUTE_NEEDS_ADMIN) && !r->is_admin) {
        if (route_is_page(rt))
            reply_error(r, 403, "This page is for the shop's administrators only.");
        else
            reply_message(r, 403, "Admin only");
        finish(x);
        return;
    }
    if (!route_is_page(rt) && strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0 &&
        form_content_type(r)) {
        /* A cross-site HTML form can only send these types: refusing them keeps the
           JSON API out of reach of CSRF even for a browser that ignores SameSite. */
        reply_message(r, 415, "Content-Type must be application/json");
        finish(x);
        return;
    }
    if ((rt->flags & ROUTE_CSRF) && !csrf_ok(r)) {
        reply_error(r, 403,
                    "The form has expired or did not come from this site. Please go back, reload the "
                    "page and try again.");
        finish(x);
        return;
    }
    if ((rt->flags & ROUTE_CATALOG_READ) && x->pipeline->catalog_gathered)
        wait_for_catalog(x->pipeline, x);
    else
        run_handler(x);
}

static void keep_tighter(struct exchange *x, const char *rule, const struct rl_result *res)
{
    if (res->verdict == RL_UNAVAILABLE)
        return;
    bool tighter = !x->has_rl || (res->verdict == RL_DENY && x->rl.verdict != RL_DENY) ||
                   (res->verdict == x->rl.verdict && res->remaining < x->rl.remaining);
    if (tighter) {
        x->rl = *res;
        x->rl_rule = rule;
        x->has_rl = true;
    }
}

/* A check's answer; every check of a request is on its route's rule. */
static void on_budget(const struct rl_result *res, void *arg)
{
    struct exchange *x = arg;
    struct request *r = &x->r;
    if (res->verdict == RL_UNAVAILABLE)
        metrics_ratelimit(false, true);
    keep_tighter(x, r->route->rule, res);
    if (--x->pending_checks > 0)
        return;
    if (r->cancelled) {
        r->replied = true;
        finish(x);
        return;
    }
    evhttp_connection_set_closecb(evhttp_request_get_connection(r->ev), NULL, NULL);
    dispatch(x);
}

static void start_check(struct pipeline *p, struct exchange *x, const char *key)
{
    const char *rule = x->r.route->rule;
    struct rl_result decided;
    x->pending_checks++;
    if (rl_client_check_token(p->rl, rule, key, &decided, on_budget, x)) {
        x->pending_checks--;
        keep_tighter(x, rule, &decided);
    }
}

/* The login budget is kept per client address and per email, so that neither a
 * botnet on one account nor one address across many accounts gets far. */
static const char *login_email(struct request *r)
{
    const char *ct = request_header(r, "Content-Type");
    if (ct && strncasecmp(ct, "application/json", 16) == 0) {
        int status;
        char msg[8];
        json_t *body = request_json_body(r, &status, msg, sizeof(msg));
        return body ? json_string_value(json_object_get(body, "email")) : NULL;
    }
    return request_form(r, "email");
}

static bool begin_checks(struct pipeline *p, struct exchange *x)
{
    struct request *r = &x->r;
    const struct route *rt = r->route;
    if (!p->env.settings->ratelimit_enabled || !rt->rule || !p->rl)
        return false;
    char key[320];
    x->pending_checks = 1; /* held until every check is queued, so a quick answer cannot finish early */
    if (rt->rl_key == RL_KEY_USER && request_logged_in(r)) {
        snprintf(key, sizeof(key), "user:%" PRId64, r->session.user_id);
    } else {
        /* Every anonymous request comes here: no printf. */
        size_t n = strnlen(r->client_ip, sizeof(key) - 4);
        memcpy(key, "ip:", 3);
        memcpy(key + 3, r->client_ip, n);
        key[3 + n] = '\0';
    }
    start_check(p, x, key);
    if (rt->rl_key == RL_KEY_LOGIN) {
        const char *email = login_email(r);
        if (email && *email) {
            snprintf(key, sizeof(key), "email:%.300s", email);
            for (char *c = key; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            start_check(p, x, key);
        }
    }
    x->pending_checks--;
    if (x->pending_checks == 0) {
        /* Every check was decided here, from this worker's leases: go on at once. */
        dispatch(x);
        return true;
    }
    request_watch_close(r);
    return true;
}

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "OTHER";
}

void pipeline_handle(struct evhttp_request *ev, void *arg)
{
    struct pipeline *p = arg;
    struct exchange *x = xcalloc(1, sizeof(*x));
    struct request *r = &x->r;
    x->pipeline = p;
    x->start_us = clock_mono_us();
    r->ev = ev;
    r->env = &p->env;
    r->db = p->env.db;
    r->settings = p->env.settings;
    r->method = method_name(evhttp_request_get_command(ev));
    p->in_flight++;
    metrics_in_flight(1);
    set_request_id(p, r);
    r->db_failures_at_start = db_failure_count();
    find_client_ip(p, r);

    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
    const char *raw_path = uri ? evhttp_uri_get_path(uri) : NULL;
    r->path = raw_path ? evhttp_uridecode(raw_path, 0, NULL) : NULL;
    if (!r->path || !*r->path || r->path[0] != '/' || strlen(r->path) != strlen(raw_path ? raw_path : "") ||
        memchr(r->path, '\0', strlen(r->path)) != NULL) {
        /* A decoded NUL shortens the string: refuse paths we could misread. */
        free(r->path);
        r->path = xstrdup(raw_path && *raw_path ? raw_path : "/");
        if (!raw_path || !*raw_path || raw_path[0] != '/') {
            reply_message(r, 400, "Bad request path");
            finish(x);
            return;
        }
    }

    char allow[64];
    enum route_match m = router_match(r->method, r->path, &r->route, &r->param, r->param_text,
                                      sizeof(r->param_text), allow, sizeof(allow));
    if (m != ROUTE_FOUND) {
        r->route = NULL;
        bool page = router_path_is_page(r->path);
        if (m == ROUTE_WRONG_METHOD)
            reply_add_header(r, "Allow", allow);
        int status = m == ROUTE_WRONG_METHOD ? 405 : 404;
        const char *msg = m == ROUTE_WRONG_METHOD ? "Method not allowed" : "Not found";
        if (page)
            pages_error(r, status, msg);
        else
            reply_message(r, status, "%s", msg);
        finish(x);
        return;
    }

    char token[SESSION_TOKEN_LEN + 1];
    if (request_cookie(r, "session", token, sizeof(token))) {
        const struct shopd_settings *s = p->env.settings;
        struct session_policy policy = {s->secret_key, s->session_idle_seconds, s->session_max_seconds};
        r->has_session = sessions_lookup(p->env.db, &policy, token, &r->session);
        if (!r->has_session && db_failure_count() != r->db_failures_at_start) {
            /* The session could not be read (the database is away): answering
               as if logged out would send the shopper to the login page. The
               500 becomes a 503 with Retry-After (request.c). */
            if (router_path_is_page(r->path))
                pages_error(r, 500, "The database is not available");
            else
                reply_message(r, 500, "The database is not available");
            finish(x);
            return;
        }
        if (r->has_session && r->session.user_id)
            r->is_admin = accounts_is_admin(p->admins, r->session.email);
    }
    char visitor[VISITOR_ID_LEN + 2];
    if (!r->has_session && request_cookie(r, "visitor", visitor, sizeof(visitor)) &&
        visitor_id_valid(visitor))
        memcpy(r->visitor_id, visitor, sizeof(r->visitor_id));

    if (!begin_checks(p, x))
        dispatch(x);
}
