#include "health.h"

#include "state.h"
#include "pool.h"
#include "shared/clock.h"
#include "shared/log.h"
#include "shared/xalloc.h"

#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct check_ctx {
    struct balancer *bal;
    struct backend *be;
};

static void check_done(struct evhttp_request *req, void *arg)
{
    struct check_ctx *ctx = arg;
    struct backend *be = ctx->be;
    struct balancer *b = ctx->bal;
    be->check_pending = false;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code >= 200 && code < 400) {
        if (backend_report_check_ok(be, (int)b->set.health_rise))
            log_info("backend %s is up (health check answered %d)", be->name, code);
        return;
    }
    char why[96];
    if (code)
        snprintf(why, sizeof(why), "health check answered %d", code);
    else
        snprintf(why, sizeof(why), "health check failed (no answer in %ld ms or refused)",
                 b->set.health_timeout_ms);
    be->checks_failed++;
    if (backend_report_failure(be, (int)b->set.health_fall, false, why)) {
        log_warn("backend %s is down: %s", be->name, why);
        pool_close(be);
    }
}

static void check_tick(evutil_socket_t fd, short what, void *arg)
{
    struct check_ctx *ctx = arg;
    struct backend *be = ctx->be;
    struct balancer *b = ctx->bal;
    (void)fd;
    (void)what;
    if (be->check_pending)
        return;
    if (!be->check_conn) {
        /* The numeric address resolved at start-up: without a DNS base, evhttp
         * would resolve a host name again, blocking, on every check. */
        be->check_conn =
            evhttp_connection_base_new(b->base, NULL, be->addr_host, (unsigned short)be->spec.port);
        if (!be->check_conn) {
            log_error("cannot create a health check connection to %s", be->name);
            return;
        }
        evhttp_connection_set_retries(be->check_conn, 0);
        /* Set once: a reload that changes the timeout restarts the checks. */
        struct timeval tv = clock_ms_tv(b->set.health_timeout_ms);
        evhttp_connection_set_timeout_tv(be->check_conn, &tv);
    }
    struct evhttp_request *req = evhttp_request_new(check_done, ctx);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", be->name);
    evhttp_add_header(h, "Connection", "close");
    evhttp_add_header(h, "User-Agent", "shop-balancer-health");
    if (evhttp_make_request(be->check_conn, req, EVHTTP_REQ_GET, b->set.health_path) < 0) {
        log_warn("health check of %s could not be sent", be->name);
        return;
    }
    be->check_pending = true;
}

void health_start(struct balancer *b, struct backend *be)
{
    struct check_ctx *ctx = xcalloc(1, sizeof(*ctx));
    ctx->bal = b;
    ctx->be = be;
    be->check_timer = event_new(b->base, -1, EV_PERSIST, check_tick, ctx);
    struct timeval tv = clock_ms_tv(b->set.health_interval_ms);
    event_add(be->check_timer, &tv);
    event_active(be->check_timer, EV_TIMEOUT, 1);
}

void health_stop(struct backend *be)
{
    if (be->check_timer) {
        void *ctx = event_get_callback_arg(be->check_timer);
        event_free(be->check_timer);
        free(ctx);
        be->check_timer = NULL;
    }
    if (be->check_conn) {
        evhttp_connection_free(be->check_conn);
        be->check_conn = NULL;
    }
    be->check_pending = false;
}
