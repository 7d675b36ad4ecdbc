#include "shopd/http_guard.h"

#include "shared/clock.h"
#include "shared/h1frame.h"
#include "shared/http_answer.h"
#include "shared/log.h"
#include "shared/request_id.h"
#include "shared/xalloc.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* Lingering close, as nginx does it: after the refusal is out, read and drop
 * for at most LINGER_TOTAL_MS, giving up sooner when the client is silent for
 * LINGER_QUIET_MS or has sent LINGER_MAX_BYTES more. */
#define LINGER_TOTAL_MS 10000
#define LINGER_QUIET_MS 2000
#define LINGER_TICK_MS 50
#define LINGER_MAX_BYTES (64u << 20)

static uint64_t refused_total;

/* What the router serves; evhttp answers others with its own HTML 501. */
static const char *const served_methods[] = {"GET",    "HEAD",    "POST",  "PUT",
                                             "DELETE", "OPTIONS", "PATCH", NULL};

struct guard {
    const struct http_guard_config *cfg;
    struct h1frame frame;
    struct bufferevent *under;    /* the socket side */
    struct bufferevent *filtered; /* what evhttp holds */
    struct event *linger;
    struct event *kick;       /* moves evhttp's output on, see on_output_added */
    struct event *writable;   /* armed while the kernel's send buffer is full */
    struct evbuffer *refusal; /* our own answer, sent after whatever evhttp still had to send */
    bool write_failed;
    bool refused, shut;
    /* Requests passed to evhttp, and answers to them: a refusal waits until
       every request before it has its answer, so a pipelining client reads
       the answers in the order of its requests. */
    uint32_t forwarded, answered;
    bool refusal_held;
    uint64_t linger_start_ms, last_data_ms, dropped;
    evutil_socket_t indexed_fd; /* where guards_by_fd holds this guard, or -1 */
};

/* Every guard of this process that has seen a request, by its socket, so that
   http_guard_answered finds a request's guard at once: a worker may hold many
   thousands of kept-alive connections, and a walk over all of them per answer
   would cost more than the answer. Grown as higher descriptors show up. */
static struct guard **guards_by_fd;
static size_t guards_by_fd_len;

static void guard_index(struct guard *g)
{
    evutil_socket_t fd = bufferevent_getfd(g->under);
    if (fd < 0)
        return;
    if ((size_t)fd >= guards_by_fd_len) {
        size_t len = guards_by_fd_len ? guards_by_fd_len : 64;
        while (len <= (size_t)fd)
            len *= 2;
        guards_by_fd = xrealloc(guards_by_fd, len * sizeof(*guards_by_fd));
        memset(guards_by_fd + guards_by_fd_len, 0, (len - guards_by_fd_len) * sizeof(*guards_by_fd));
        guards_by_fd_len = len;
    }
    guards_by_fd[fd] = g;
    g->indexed_fd = fd;
}

static void guard_free(void *ctx)
{
    struct guard *g = ctx;
    /* The socket closes after this, so no newer guard can hold the slot yet;
       the check keeps that true even if libevent ever ordered it otherwise. */
    if (g->indexed_fd >= 0 && guards_by_fd[g->indexed_fd] == g)
        guards_by_fd[g->indexed_fd] = NULL;
    if (g->linger)
        event_free(g->linger);
    event_free(g->kick);
    if (g->writable)
        event_free(g->writable);
    evbuffer_free(g->refusal);
    free(g);
}

/* Ends the connection through evhttp, which frees it (and the guard). */
static void guard_close(struct guard *g)
{
    event_del(g->linger);
    bufferevent_trigger_event(g->filtered, BEV_EVENT_EOF | BEV_EVENT_READING, 0);
}

static void guard_send(struct guard *g, struct evbuffer *src);

static void on_linger_tick(evutil_socket_t fd, short what, void *arg)
{
    struct guard *g = arg;
    (void)fd;
    (void)what;
    uint64_t now = clock_mono_ms();
    if (!g->shut) {
        if (g->refusal_held && now - g->linger_start_ms > LINGER_QUIET_MS) {
            /* evhttp answered a request itself, past the pipeline: send ours anyway. */
            g->refusal_held = false;
            event_active(g->kick, EV_WRITE, 1);
        }
        if (evbuffer_get_length(g->refusal) > 0 ||
            evbuffer_get_length(bufferevent_get_output(g->filtered)) > 0) {
            if (now - g->linger_start_ms > LINGER_TOTAL_MS)
                guard_close(g); /* the client does not read its answer */
            return;
        }
        /* The answer is out: say we are done, keep reading what is still coming. */
        shutdown(bufferevent_getfd(g->under), SHUT_WR);
        g->shut = true;
    }
    if (now - g->linger_start_ms > LINGER_TOTAL_MS || now - g->last_data_ms > LINGER_QUIET_MS ||
        g->dropped > LINGER_MAX_BYTES)
        guard_close(g);
}

/* Writes what evhttp gave (src), then our refusal, straight to the socket.
 *
 * Not through the socket bufferevent: a filter tells evhttp "written" as soon
 * as it has moved the bytes on, and evhttp then half-closes and frees the
 * connection when the answer said Connection: close, losing bytes not yet in
 * the kernel. Writing here, and leaving what the kernel did not take in src,
 * makes "written" mean written. */
static void on_writable(evutil_socket_t fd, short what, void *arg);

static void guard_send(struct guard *g, struct evbuffer *src)
{
    evutil_socket_t fd = bufferevent_getfd(g->under);
    struct evbuffer *bufs[] = {src, g->refusal};
    for (size_t i = 0; i < (g->refusal_held ? 1u : 2u); i++) {
        while (evbuffer_get_length(bufs[i]) > 0) {
            if (g->write_failed) {
                evbuffer_drain(bufs[i], evbuffer_get_length(bufs[i]));
                break;
            }
            int n = evbuffer_write(bufs[i], fd);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
                if (!g->writable)
                    g->writable = event_new(bufferevent_get_base(g->under), fd, EV_WRITE, on_writable, g);
                event_add(g->writable, NULL);
                return;
            }
            if (n <= 0)
                g->write_failed = true; /* the client is gone: the read side will say so */
        }
    }
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct guard *g = arg;
    (void)fd;
    (void)what;
    bufferevent_flush(g->filtered, EV_WRITE, BEV_FLUSH);
    guard_send(g, bufferevent_get_output(g->filtered));
}

static enum bufferevent_filter_result guard_output(struct evbuffer *src, struct evbuffer *dst,
                                                   ev_ssize_t limit, enum bufferevent_flush_mode mode,
                                                   void *ctx)
{
    (void)dst;
    (void)limit;
    (void)mode;
    guard_send(ctx, src);
    /* NEED_MORE while the kernel is full: libevent would call again at once. */
    return evbuffer_get_length(src) > 0 ? BEV_NEED_MORE : BEV_OK;
}

static void guard_refuse(struct guard *g)
{
    char id[REQUEST_ID_MAX + 1];
    request_id_next(g->cfg->request_ids, id);
    char answer[1024];
    size_t n = http_error_answer(answer, sizeof(answer), g->frame.status, id, NULL, g->frame.reason, false);
    evbuffer_add(g->refusal, answer, n);
    g->refusal_held = g->answered < g->forwarded;
    guard_send(g, bufferevent_get_output(g->filtered));
    refused_total++;
    log_info("refused a request with %d: %s request_id=%s", g->frame.status, g->frame.reason, id);
    g->refused = true;
    g->linger_start_ms = g->last_data_ms = clock_mono_ms();
    struct timeval tick = {0, LINGER_TICK_MS * 1000};
    g->linger = event_new(bufferevent_get_base(g->under), -1, EV_PERSIST, on_linger_tick, g);
    event_add(g->linger, &tick);
}

static enum bufferevent_filter_result guard_input(struct evbuffer *src, struct evbuffer *dst,
                                                  ev_ssize_t limit, enum bufferevent_flush_mode mode,
                                                  void *ctx)
{
    struct guard *g = ctx;
    (void)limit;
    (void)mode;
    if (g->indexed_fd < 0)
        guard_index(g); /* evhttp sets the socket after making the connection */
    if (g->refused) {
        size_t n = evbuffer_get_length(src);
        g->dropped += n;
        if (n > 0)
            g->last_data_ms = clock_mono_ms();
        evbuffer_drain(src, n);
        return BEV_NEED_MORE;
    }
    while (evbuffer_get_length(src) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(src, -1, NULL, &v, 1) < 1)
            break;
        bool in_extension;
        if (h1frame_in_chunk_line(&g->frame, &in_extension))
            v.iov_len = 1; /* evhttp takes no chunk extensions: see below */
        size_t used = 0;
        enum h1frame_event ev = h1frame_scan(&g->frame, v.iov_base, v.iov_len, &used);
        if (used == 1 && v.iov_len == 1 && h1frame_in_chunk_line(&g->frame, &in_extension) && in_extension)
            evbuffer_drain(src, 1); /* a chunk extension's byte: checked, then dropped */
        else if (used > 0)
            evbuffer_remove_buffer(src, dst, used);
        if (ev == H1FRAME_DONE)
            g->forwarded++;
        if (ev == H1FRAME_ERROR) {
            guard_refuse(g);
            evbuffer_drain(src, evbuffer_get_length(src));
            break;
        }
    }
    return evbuffer_get_length(dst) > 0 ? BEV_OK : BEV_NEED_MORE;
}

/* A filter passes output on only while its write side is enabled, and evhttp
 * adds an answer first and enables writing after, which a filter does not
 * notice: the answer would wait for the next event on the socket. So every
 * addition schedules a flush that runs once evhttp is done (same loop pass). */
static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct guard *g = arg;
    (void)fd;
    (void)what;
    bufferevent_flush(g->filtered, EV_WRITE, BEV_NORMAL);
    /* A refusal released after evhttp's last answer went out has no answer
       left to follow: send it on its own. */
    if (!g->refusal_held && evbuffer_get_length(g->refusal) > 0 &&
        evbuffer_get_length(bufferevent_get_output(g->filtered)) == 0)
        guard_send(g, bufferevent_get_output(g->filtered));
}

static void on_output_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct guard *g = arg;
    (void)buf;
    if (info->n_added > 0)
        event_active(g->kick, EV_WRITE, 1);
}

static struct bufferevent *guard_new_connection(struct event_base *base, void *arg)
{
    const struct http_guard_config *cfg = arg;
    struct guard *g = xcalloc(1, sizeof(*g));
    g->cfg = cfg;
    h1frame_init(&g->frame, cfg->max_head, cfg->max_body);
    g->frame.report_chunk_lines = true;
    g->frame.allowed_methods = served_methods;
    g->under = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    g->filtered =
        bufferevent_filter_new(g->under, guard_input, guard_output, BEV_OPT_CLOSE_ON_FREE, guard_free, g);
    g->kick = event_new(base, -1, 0, on_kick, g);
    g->refusal = evbuffer_new();
    g->indexed_fd = -1;
    evbuffer_add_cb(bufferevent_get_output(g->filtered), on_output_added, g);
    return g->filtered;
}

void http_guard_install(struct evhttp *http, const struct http_guard_config *cfg)
{
    evhttp_set_bevcb(http, guard_new_connection, (void *)cfg);
}

void http_guard_answered(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    struct bufferevent *under = bev ? bufferevent_get_underlying(bev) : NULL;
    evutil_socket_t fd = under ? bufferevent_getfd(under) : -1;
    if (fd < 0 || (size_t)fd >= guards_by_fd_len)
        return;
    struct guard *g = guards_by_fd[fd];
    if (!g || g->filtered != bev)
        return;
    g->answered++;
    if (g->refusal_held && g->answered >= g->forwarded) {
        /* evhttp has queued that answer; the next flush sends it and then
           the refusal (on_kick), once evhttp is done with this call. */
        g->refusal_held = false;
        event_active(g->kick, EV_WRITE, 1);
    }
}

uint64_t http_guard_refused(void)
{
    return refused_total;
}
