#include "shopd/worker.h"
#include "shopd/http_guard.h"
#include "shopd/accounts.h"
#include "shopd/db.h"
#include "shopd/heap_release.h"
#include "shopd/metrics.h"
#include "shopd/offload.h"
#include "shopd/pipeline.h"
#include "shopd/pages.h"
#include "shopd/ratelimit_client.h"
#include "shopd/sessions.h"
#include "shared/clock.h"
#include "shared/log.h"
#include "shared/xalloc.h"

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    struct event *sigterm, *sigint, *sigusr1, *drain_timer, *housekeeping, *heap_release;
    struct pipeline *pipeline;
    int wake_fd;
    int index;
    bool draining;
    uint64_t drain_started_us;
    struct http_guard_config guard;
};

/* --- drain and housekeeping ---------------------------------------------- */

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    uint64_t now = clock_mono_us();
    uint64_t waited = now - w->drain_started_us;
    /* evhttp writes a reply on a later loop pass than the one that queued it: leave
       the last replies a moment to reach their clients before the loop stops. */
    long in_flight = pipeline_in_flight(w->pipeline);
    bool flushed = now - pipeline_last_reply_us(w->pipeline) > DRAIN_FLUSH_US;
    if ((in_flight == 0 && flushed) || waited > (uint64_t)DRAIN_LIMIT_SECONDS * 1000000u) {
        if (in_flight)
            log_warn("worker: %ld requests still running after %d s; stopping anyway", in_flight,
                     DRAIN_LIMIT_SECONDS);
        event_base_loopexit(w->base, NULL);
    }
}

static void close_listener(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    if (w->bound) {
        evhttp_del_accept_socket(w->http, w->bound);
        w->bound = NULL;
    }
}

/* The listening socket is one file shared with the master and the other workers:
 * closing this worker's descriptor leaves the socket in this worker's epoll set
 * unless the removal reached the kernel first, and every connection waiting to be
 * accepted would then wake this loop again and again. The changelist sends the
 * removal at the next pass into epoll, so the descriptor closes on a timer after
 * it (a timer, not an immediate callback: event_base_once runs those before the
 * next pass). */
static void stop_accepting(struct worker *w)
{
    if (!w->bound)
        return;
    evconnlistener_disable(evhttp_bound_socket_get_listener(w->bound));
    struct timeval soon = {0, 1000};
    if (event_base_once(w->base, -1, EV_TIMEOUT, close_listener, w, &soon) < 0)
        close_listener(-1, 0, w);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    struct worker *w = arg;
    if (w->draining)
        return;
    w->draining = true;
    w->drain_started_us = clock_mono_us();
    /* Stop taking connections; the other workers (or the replacement) keep the shared socket served. */
    stop_accepting(w);
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
    pipeline_free(w->pipeline);
    if (w->rl)
        rl_client_free(w->rl);
    offload_free(w->offload);
    struct event *evs[] = {w->sigterm,     w->sigint,       w->sigusr1,
                           w->drain_timer, w->housekeeping, w->heap_release};
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

/* evhttp turns reading off when a request arrives and on again when its answer
 * goes, two epoll_ctl calls per request, a tenth of a worker's CPU on small
 * answers. With the changelist, libevent sends only the net change of a loop
 * pass, one call. Its known hazard is a descriptor closed while the kernel
 * still holds its registration through another copy of the file: see
 * stop_accepting for the one such socket here, the listener shared with the
 * master and the other workers. */
static struct event_base *new_event_loop(void)
{
    struct event_config *ec = event_config_new();
    if (!ec)
        return NULL;
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(ec);
    event_config_free(ec);
    return base;
}

int worker_run(const struct worker_params *params)
{
    struct worker *w = xcalloc(1, sizeof(*w));
    w->settings = params->settings;
    w->wake_fd = params->wake_fd;
    w->index = params->index;
    metrics_use_slot(w->index);

    char err[512];
    w->db = db_open(&w->settings->database, err, sizeof(err));
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
    w->base = new_event_loop();
    if (!w->base) {
        log_error("worker: cannot create the event loop");
        worker_free(w);
        return 1;
    }
    /* Two hashing threads: with the default of one worker per CPU, more would only queue on the cores. */
    w->offload = offload_new(w->base, 2);
    if (w->settings->ratelimit_enabled)
        w->rl = rl_client_new(w->base, w->settings->ratelimit_socket, (int)w->settings->ratelimit_timeout_ms);

    struct pipeline_config pc = {.base = w->base,
                                 .settings = w->settings,
                                 .db = w->db,
                                 .admins = w->admins,
                                 .rl = w->rl,
                                 .offload = w->offload,
                                 .wake_fd = w->wake_fd,
                                 .draining = &w->draining};
    w->pipeline = pipeline_new(&pc);

    w->http = evhttp_new(w->base);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(w->http, (ev_ssize_t)pipeline_body_limit(w->settings));
    evhttp_set_max_headers_size(w->http, 16384);
    evhttp_set_timeout(w->http, 30);
    evhttp_set_gencb(w->http, pipeline_handle, w->pipeline);
    w->guard = (struct http_guard_config){.max_head = 16384,
                                          .max_body = (uint64_t)pipeline_body_limit(w->settings),
                                          .request_ids = pipeline_request_ids(w->pipeline)};
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
    w->heap_release = heap_release_start(w->base);
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
