#include "shopd/worker.h"
#include "shopd/http_guard.h"
#include "shopd/accounts.h"
#include "shopd/db.h"
#include "shopd/metrics.h"
#include "shopd/offload.h"
#include "shopd/pages.h"
#include "shopd/ratelimit_client.h"
#include "shopd/request.h"
#include "shopd/router.h"
#include "shopd/sessions.h"
#include "shared/addrlist.h"
#include "shared/clock.h"
#include "shared/crypto.h"
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DRAIN_LIMIT_SECONDS 10
#define DRAIN_FLUSH_US 200000
#define HOUSEKEEPING_SECONDS 600

struct worker {
    const struct shopd_settings *settings;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct db *db;
    struct admin_list *admins;
    struct rl_client *rl;
    struct offload *offload;
    struct event *sigterm, *sigint, *sigusr1, *drain_timer, *housekeeping;
    int wake_fd;
    int index;
    bool draining;
    uint64_t drain_started_us;
    long inflight;
    uint64_t finished; /* requests answered so far: a reply frees its request */
    uint64_t last_reply_us;
    struct request_id_gen request_ids;
    struct http_guard_config guard;
};

bool worker_draining(const struct worker *w)
{
    return w->draining;
}

bool worker_is_admin(const struct worker *w, const char *email)
{
    return accounts_is_admin(w->admins, email);
}

struct offload *worker_offload(struct worker *w)
{
    return w->offload;
}

void worker_wake_dispatcher(struct worker *w)
{
    if (w->wake_fd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(w->wake_fd, &one, sizeof(one));
        (void)n; /* a full eventfd already means "wake up" */
    }
}

/* --- client address ------------------------------------------------------ */

static bool is_trusted(const struct worker *w, const char *addr)
{
    return addrlist_contains(w->settings->trusted_proxies, addr);
}

/* The client is the right-most X-Forwarded-For entry that is not one of our
 * proxies: everything left of it was written by the client and may be forged. */
static void find_client_ip(struct worker *w, struct request *r)
{
    char *peer = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(evhttp_request_get_connection(r->ev), &peer, &port);
    snprintf(r->client_ip, sizeof(r->client_ip), "%s", peer ? peer : "unknown");
    if (!peer || !is_trusted(w, peer))
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
        if (!is_trusted(w, entries[i]))
            return;
    }
}

static void set_request_id(struct worker *w, struct request *r)
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
    request_id_next(&w->request_ids, r->request_id);
}

/* --- request life cycle -------------------------------------------------- */

static void free_request(struct request *r)
{
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
    free(r);
}

void worker_request_done(struct request *r)
{
    struct worker *w = r->worker;
    w->inflight--;
    w->finished++;
    w->last_reply_us = clock_mono_us();
    metrics_in_flight(-1);
    uint64_t us = clock_mono_us() - r->start_us;
    size_t nroutes;
    const struct route *routes = router_routes(&nroutes);
    metrics_request(r->route ? (size_t)(r->route - routes) : nroutes, r->cancelled ? 499 : r->status, us);
    if (r->cancelled)
        log_info("access %s %s %s cancelled 0 %" PRIu64 "us request_id=%s", r->client_ip, r->method, r->path, us,
                 r->request_id);
    else if (!(r->route && (r->route->flags & ROUTE_NO_LOG)) || log_get_level() == LOG_DEBUG)
        log_info("access %s %s %s %d %zu %" PRIu64 "us request_id=%s", r->client_ip, r->method, r->path, r->status,
                 r->bytes, us, r->request_id);
    free_request(r);
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
static long body_limit(const struct shopd_settings *s)
{
    long upload = s->upload_max_bytes + UPLOAD_FORM_OVERHEAD;
    return upload > s->max_body_bytes ? upload : s->max_body_bytes;
}

/* Runs the handler once every budget check has answered (or was skipped). */
static void dispatch(struct request *r)
{
    const struct route *rt = r->route;
    if (r->has_rl && r->rl.verdict == RL_DENY) {
        metrics_ratelimit(true, false);
        long secs = (r->rl.retry_after_ms + 999) / 1000;
        if (router_is_page(rt))
            reply_error(r, 429, "Too many requests. Please wait %ld second%s and try again.", secs,
                        secs == 1 ? "" : "s");
        else
            reply_message(r, 429, "Too many requests; retry in %ld s", secs);
        return;
    }
    if (!(rt->flags & ROUTE_UPLOAD) &&
        evbuffer_get_length(evhttp_request_get_input_buffer(r->ev)) > (size_t)r->settings->max_body_bytes) {
        reply_add_header(r, "Connection", "close");
        reply_error(r, 413, "Request body larger than the limit");
        return;
    }
    if ((rt->flags & ROUTE_NEEDS_USER) && !request_logged_in(r)) {
        if (router_is_page(rt)) {
            request_set_flash(r, "info", "Please log in first.");
            reply_redirect(r, "/browser/login");
        } else {
            reply_message(r, 401, "Login required");
        }
        return;
    }
    if ((rt->flags & ROUTE_NEEDS_ADMIN) && !r->is_admin) {
        if (router_is_page(rt))
            reply_error(r, 403, "This page is for the shop's administrators only.");
        else
            reply_message(r, 403, "Admin only");
        return;
    }
    if (!router_is_page(rt) && strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0 &&
        form_content_type(r)) {
        /* A cross-site HTML form can only send these types: refusing them keeps the
           JSON API out of reach of CSRF even for a browser that ignores SameSite. */
        reply_message(r, 415, "Content-Type must be application/json");
        return;
    }
    if ((rt->flags & ROUTE_CSRF) && !csrf_ok(r)) {
        reply_error(r, 403,
                    "The form has expired or did not come from this site. Please go back, reload the "
                    "page and try again.");
        return;
    }
    struct worker *w = r->worker;
    uint64_t finished = w->finished;
    rt->handler(r);
    /* A reply has freed r already: look at it only when nothing finished meanwhile. */
    if (w->finished == finished && !r->held) {
        log_error("handler for %s %s did not reply", r->method, r->path);
        reply_error(r, 500, "Internal error");
    }
}

static void keep_tighter(struct request *r, const char *rule, const struct rl_result *res)
{
    if (res->verdict == RL_UNAVAILABLE)
        return;
    bool tighter = !r->has_rl || (res->verdict == RL_DENY && r->rl.verdict != RL_DENY) ||
                   (res->verdict == r->rl.verdict && res->remaining < r->rl.remaining);
    if (tighter) {
        r->rl = *res;
        r->rl_rule = rule;
        r->has_rl = true;
    }
}

struct check_ctx {
    struct request *r;
    const char *rule;
};

static void on_budget(const struct rl_result *res, void *arg)
{
    struct check_ctx *c = arg;
    struct request *r = c->r;
    if (res->verdict == RL_UNAVAILABLE)
        metrics_ratelimit(false, true);
    keep_tighter(r, c->rule, res);
    free(c);
    if (--r->pending_checks > 0)
        return;
    if (r->cancelled) {
        r->replied = true;
        worker_request_done(r);
        return;
    }
    evhttp_connection_set_closecb(evhttp_request_get_connection(r->ev), NULL, NULL);
    dispatch(r);
}

static void start_check(struct worker *w, struct request *r, const char *rule, const char *key)
{
    struct check_ctx *c = xmalloc(sizeof(*c));
    c->r = r;
    c->rule = rule;
    r->pending_checks++;
    rl_client_check(w->rl, rule, key, 1, on_budget, c);
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

static bool begin_checks(struct worker *w, struct request *r)
{
    const struct route *rt = r->route;
    if (!w->settings->ratelimit_enabled || !rt->rule || !w->rl)
        return false;
    char key[320];
    r->pending_checks = 1; /* held until every check is queued, so a quick answer cannot finish early */
    if (rt->rl_key == RL_KEY_USER && request_logged_in(r))
        snprintf(key, sizeof(key), "user:%" PRId64, r->session.user_id);
    else
        snprintf(key, sizeof(key), "ip:%s", r->client_ip);
    start_check(w, r, rt->rule, key);
    if (rt->rl_key == RL_KEY_LOGIN) {
        const char *email = login_email(r);
        if (email && *email) {
            snprintf(key, sizeof(key), "email:%.300s", email);
            for (char *c = key; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            start_check(w, r, rt->rule, key);
        }
    }
    request_watch_close(r);
    r->pending_checks--;
    if (r->pending_checks == 0) {
        /* Every answer came synchronously (cannot happen with the async client, but be safe). */
        evhttp_connection_set_closecb(evhttp_request_get_connection(r->ev), NULL, NULL);
        dispatch(r);
    }
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

static void on_request(struct evhttp_request *ev, void *arg)
{
    struct worker *w = arg;
    struct request *r = xcalloc(1, sizeof(*r));
    r->ev = ev;
    r->worker = w;
    r->db = w->db;
    r->settings = w->settings;
    r->start_us = clock_mono_us();
    r->method = method_name(evhttp_request_get_command(ev));
    w->inflight++;
    metrics_in_flight(1);
    set_request_id(w, r);
    r->db_failures_at_start = db_failure_count();
    find_client_ip(w, r);

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
        return;
    }

    char token[SESSION_TOKEN_LEN + 1];
    if (request_cookie(r, "session", token, sizeof(token))) {
        struct session_policy p = {w->settings->secret_key, w->settings->session_idle_seconds,
                                   w->settings->session_max_seconds};
        r->has_session = sessions_lookup(w->db, &p, token, &r->session);
        if (r->has_session && r->session.user_id)
            r->is_admin = accounts_is_admin(w->admins, r->session.email);
    }
    char visitor[VISITOR_ID_LEN + 2];
    if (!r->has_session && request_cookie(r, "visitor", visitor, sizeof(visitor)) && visitor_id_valid(visitor))
        memcpy(r->visitor_id, visitor, sizeof(r->visitor_id));

    if (!begin_checks(w, r))
        dispatch(r);
}

/* --- drain and housekeeping ---------------------------------------------- */

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    uint64_t now = clock_mono_us();
    uint64_t waited = now - w->drain_started_us;
    /* evhttp writes a reply on a later loop pass than the one that queued it: leave
       the last replies a moment to reach their clients before the loop stops. */
    bool flushed = now - w->last_reply_us > DRAIN_FLUSH_US;
    if ((w->inflight == 0 && flushed) || waited > (uint64_t)DRAIN_LIMIT_SECONDS * 1000000u) {
        if (w->inflight)
            log_warn("worker: %ld requests still running after %d s; stopping anyway", w->inflight,
                     DRAIN_LIMIT_SECONDS);
        event_base_loopexit(w->base, NULL);
    }
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    struct worker *w = arg;
    if (w->draining)
        return;
    w->draining = true;
    w->drain_started_us = clock_mono_us();
    /* Stop taking connections; the other workers (or the replacement) keep the shared socket served. */
    if (w->bound) {
        evhttp_del_accept_socket(w->http, w->bound);
        w->bound = NULL;
    }
    struct timeval tick = {0, 20000};
    w->drain_timer = event_new(w->base, -1, EV_PERSIST, on_drain_tick, w);
    event_add(w->drain_timer, &tick);
}

static void on_sigusr1(evutil_socket_t sig, short what, void *arg)
{
    log_reopen();
}

static void on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct session_policy p = {w->settings->secret_key, w->settings->session_idle_seconds,
                               w->settings->session_max_seconds};
    int n = sessions_purge_expired(w->db, &p);
    if (n > 0)
        log_info("worker: removed %d expired sessions", n);
}

static void worker_free(struct worker *w)
{
    if (w->http)
        evhttp_free(w->http);
    if (w->rl)
        rl_client_free(w->rl);
    offload_free(w->offload);
    struct event *evs[] = {w->sigterm, w->sigint, w->sigusr1, w->drain_timer, w->housekeeping};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i])
            event_free(evs[i]);
    pages_cleanup();
    db_close(w->db);
    accounts_admins_free(w->admins);
    if (w->base)
        event_base_free(w->base);
    free(w);
}

int worker_run(const struct worker_params *params)
{
    struct worker *w = xcalloc(1, sizeof(*w));
    w->settings = params->settings;
    w->wake_fd = params->wake_fd;
    w->index = params->index;
    metrics_use_slot(w->index);
    request_id_gen_init(&w->request_ids);

    char err[512];
    w->db = db_open(w->settings->db_path, err, sizeof(err));
    if (!w->db) {
        log_error("worker: %s", err);
        worker_free(w);
        return 1;
    }
    if (pages_init(w->settings, err, sizeof(err)) < 0) {
        log_error("worker: %s", err);
        worker_free(w);
        return 1;
    }
    w->admins = accounts_admins_parse(w->settings->admin_emails);
    w->base = event_base_new();
    /* Two hashing threads: with the default of one worker per CPU, more would only queue on the cores. */
    w->offload = offload_new(w->base, 2);
    if (w->settings->ratelimit_enabled)
        w->rl = rl_client_new(w->base, w->settings->ratelimit_socket, (int)w->settings->ratelimit_timeout_ms);

    w->http = evhttp_new(w->base);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(w->http, (ev_ssize_t)body_limit(w->settings));
    evhttp_set_max_headers_size(w->http, 16384);
    evhttp_set_timeout(w->http, 30);
    evhttp_set_gencb(w->http, on_request, w);
    w->guard = (struct http_guard_config){.max_head = 16384,
                                          .max_body = (uint64_t)body_limit(w->settings),
                                          .request_ids = &w->request_ids};
    http_guard_install(w->http, &w->guard);
    w->bound = evhttp_accept_socket_with_handle(w->http, params->listen_fd);
    if (!w->bound) {
        log_error("worker: cannot serve the listening socket");
        worker_free(w);
        return 1;
    }

    w->sigterm = evsignal_new(w->base, SIGTERM, on_stop_signal, w);
    w->sigint = evsignal_new(w->base, SIGINT, on_stop_signal, w);
    w->sigusr1 = evsignal_new(w->base, SIGUSR1, on_sigusr1, w);
    event_add(w->sigterm, NULL);
    event_add(w->sigint, NULL);
    event_add(w->sigusr1, NULL);
    if (w->index == 0) {
        struct timeval every = {HOUSEKEEPING_SECONDS, 0};
        w->housekeeping = event_new(w->base, -1, EV_PERSIST, on_housekeeping, w);
        event_add(w->housekeeping, &every);
    }

    if (params->ready_fd >= 0) {
        ssize_t n = write(params->ready_fd, "R", 1);
        (void)n;
        close(params->ready_fd);
    }
    log_debug("worker %d serving", w->index);
    event_base_dispatch(w->base);
    /* The listening socket stays open in the master and the other workers. */
    worker_free(w);
    return 0;
}
