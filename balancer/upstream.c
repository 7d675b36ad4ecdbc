/* upstream: the backend side of a request (see upstream.h). */
#include "upstream.h"

#include "backend.h"
#include "state.h"
#include "shared/log.h"
#include "shared/xalloc.h"

#include <errno.h>
#include <event2/buffer.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESPONSE_HEAD_MAX 65536

/* --- response parsing callbacks ------------------------------------------ */

static int resp_status(http_parser *p, const char *at, size_t len)
{
    struct upstream *up = p->data;
    if (head_append(&up->head, at, len) < 0)
        return -1;
    up->head.flen += (uint32_t)len;
    return 0;
}

static int resp_field(http_parser *p, const char *at, size_t len)
{
    struct upstream *up = p->data;
    return head_field(&up->head, at, len);
}

static int resp_value(http_parser *p, const char *at, size_t len)
{
    struct upstream *up = p->data;
    return head_value(&up->head, at, len);
}

static int resp_headers_complete(http_parser *p)
{
    struct upstream *up = p->data;
    up->ev_headers = true;
    http_parser_pause(p, 1);
    /* 1: the answer to HEAD has no body whatever its Content-Length says. */
    return up->head_req && p->status_code >= 200 ? 1 : 0;
}

static int resp_message_complete(http_parser *p)
{
    struct upstream *up = p->data;
    up->ev_message = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings resp_settings = {
    .on_status = resp_status,
    .on_header_field = resp_field,
    .on_header_value = resp_value,
    .on_headers_complete = resp_headers_complete,
    .on_message_complete = resp_message_complete,
};

/* --- connections ----------------------------------------------------------- */

void upstream_free(struct upstream *up)
{
    pool_conn_close(&up->pc);
    head_cleanup(&up->head);
    free(up);
}

/* How the pool frees an idle upstream it gives up. */
static void upstream_release(struct pool_conn *pc)
{
    upstream_free((struct upstream *)pc);
}

static void upstream_reset_for_request(struct upstream *up)
{
    http_parser_init(&up->parser, HTTP_RESPONSE);
    up->parser.data = up;
    head_reset(&up->head);
    up->got_bytes = up->head_done = up->skip_lf = up->ev_headers = up->ev_message = false;
    up->skip_message = up->paused = up->force_close = false;
    up->head_req = false;
    up->reason[0] = '\0';
}

struct upstream *upstream_open(struct balancer *b, struct backend *be, event_callback_fn rcb,
                               event_callback_fn wcb)
{
    struct upstream *up = xcalloc(1, sizeof(*up));
    if (pool_open(&up->pc, b->base, be, b->tv_connect, rcb, wcb, upstream_release, up) < 0) {
        free(up);
        return NULL;
    }
    up->bal = b;
    head_init(&up->head, RESPONSE_HEAD_MAX);
    upstream_reset_for_request(up);
    return up;
}

struct upstream *upstream_take(struct balancer *b, struct backend *be)
{
    struct upstream *up = (struct upstream *)pool_take(be);
    if (!up)
        return NULL;
    upstream_reset_for_request(up);
    conn_read_on(&up->pc.io, b->tv_backend);
    return up;
}

/* Keeps up for a later request, or closes it when the pool has no room (or
 * the balancer is stopping). */
static void upstream_keep(struct upstream *up)
{
    struct balancer *b = up->bal;
    up->owner = NULL;
    if (!pool_put(&up->pc, b->draining ? 0 : b->set.pool_size, b->tv_pool))
        upstream_free(up);
}

void upstream_finish(struct upstream *up, bool reuse)
{
    if (reuse && !up->force_close && http_should_keep_alive(&up->parser) &&
        evbuffer_get_length(up->pc.io.in) == 0 && evbuffer_get_length(up->pc.io.out) == 0)
        upstream_keep(up);
    else
        upstream_free(up);
}

/* --- failures ---------------------------------------------------------------- */

static const char *failure_name(enum upstream_failure f)
{
    switch (f) {
    case UPSTREAM_CONNECT:
        return "connect";
    case UPSTREAM_RESET:
        return "reset";
    case UPSTREAM_TIMEOUT:
        return "timeout";
    case UPSTREAM_PROTOCOL:
        return "protocol";
    default:
        return "broken";
    }
}

/* Records a failure on up and its backend (passive health check). */
static enum upstream_result upstream_fail(struct upstream *up, enum upstream_failure kind, const char *why)
{
    struct backend *be = up->pc.be;
    struct balancer *b = up->bal;
    up->failure = kind;
    snprintf(up->reason, sizeof(up->reason), "%s: %s", failure_name(kind), why);
    be->failures++;
    if (kind == UPSTREAM_CONNECT || kind == UPSTREAM_RESET || kind == UPSTREAM_BROKEN) {
        if (backend_report_failure(be, (int)b->set.health_fall, kind == UPSTREAM_CONNECT, up->reason))
            log_warn("backend %s is down (passive: %s)", be->name, up->reason);
    }
    return UPSTREAM_FAILED;
}

/* --- events -------------------------------------------------------------------- */

bool upstream_until_close(const struct upstream *up)
{
    const http_parser *p = &up->parser;
    if (p->status_code < 200 || p->status_code == 204 || p->status_code == 304 || (p->flags & F_SKIPBODY))
        return false;
    return !(p->flags & F_CHUNKED) && p->content_length == ULLONG_MAX;
}

enum upstream_result upstream_on_write(struct upstream *up, short what)
{
    struct balancer *b = up->bal;
    if (up->pc.state == POOL_CONNECTING) {
        int err = pool_connect_result(&up->pc, what);
        if (err)
            return upstream_fail(up, UPSTREAM_CONNECT,
                                 err == ETIMEDOUT ? "connect timed out" : strerror(err));
        conn_read_on(&up->pc.io, b->tv_backend);
    } else if (what & EV_TIMEOUT) {
        return upstream_fail(up, up->got_bytes ? UPSTREAM_BROKEN : UPSTREAM_TIMEOUT,
                             "backend does not read the request");
    }
    if (conn_flush(&up->pc.io, b->tv_backend) < 0)
        return upstream_fail(up, up->got_bytes ? UPSTREAM_BROKEN : UPSTREAM_RESET, strerror(errno));
    return UPSTREAM_AGAIN;
}

enum upstream_result upstream_on_read(struct upstream *up, short what)
{
    if (what & EV_TIMEOUT)
        return upstream_fail(up, up->got_bytes ? UPSTREAM_BROKEN : UPSTREAM_TIMEOUT, "no answer in time");
    int n = conn_read(&up->pc.io);
    if (n == -2)
        return UPSTREAM_AGAIN;
    if (n > 0) {
        up->got_bytes = true;
        return UPSTREAM_DATA;
    }
    if (n == 0 && up->head_done && upstream_until_close(up)) {
        http_parser_execute(&up->parser, &resp_settings, NULL, 0);
        if (up->ev_message) {
            up->ev_message = false;
            up->force_close = true;
            return UPSTREAM_DONE;
        }
    }
    const char *why = n == 0 ? "connection closed before the answer was complete" : strerror(errno);
    return upstream_fail(up, up->got_bytes ? UPSTREAM_BROKEN : UPSTREAM_RESET, why);
}

enum upstream_result upstream_relay(struct upstream *up, struct evbuffer *to, size_t high_water,
                                    uint64_t *moved)
{
    for (;;) {
        if (evbuffer_get_length(to) > high_water) {
            conn_read_off(&up->pc.io);
            up->paused = true;
            return UPSTREAM_AGAIN;
        }
        if (evbuffer_get_length(up->pc.io.in) == 0)
            return UPSTREAM_AGAIN;
        struct evbuffer_iovec v;
        if (evbuffer_peek(up->pc.io.in, -1, NULL, &v, 1) < 1)
            return UPSTREAM_AGAIN;
        size_t n = http_parser_execute(&up->parser, &resp_settings, v.iov_base, v.iov_len);
        enum http_errno err = HTTP_PARSER_ERRNO(&up->parser);
        if (!up->head_done) {
            evbuffer_drain(up->pc.io.in, n);
        } else {
            size_t k = n;
            if (up->skip_lf && k > 0) {
                /* http_parser stops before the head's last LF when paused there. */
                evbuffer_drain(up->pc.io.in, 1);
                k--;
                up->skip_lf = false;
            }
            if (k > 0) {
                evbuffer_remove_buffer(up->pc.io.in, to, k);
                *moved += k;
            }
        }
        if (err != HPE_OK && err != HPE_PAUSED) {
            char why[160];
            snprintf(why, sizeof(why), "invalid answer: %s%s", http_errno_description(err),
                     up->head.overflow ? " (head too large)" : "");
            return upstream_fail(up, up->head_done ? UPSTREAM_BROKEN : UPSTREAM_PROTOCOL, why);
        }
        if (up->ev_headers) {
            up->ev_headers = false;
            http_parser_pause(&up->parser, 0);
            if (up->parser.status_code < 200) {
                if (up->parser.status_code == 101)
                    return upstream_fail(up, UPSTREAM_PROTOCOL, "unexpected 101 Switching Protocols");
                up->skip_message = true; /* interim answer: the real one follows */
            } else {
                up->head_done = true;
                up->skip_lf = true;
                return UPSTREAM_HEAD;
            }
        }
        if (up->ev_message) {
            up->ev_message = false;
            if (up->skip_message) {
                up->skip_message = false;
                head_reset(&up->head);
                http_parser_pause(&up->parser, 0);
                continue;
            }
            return UPSTREAM_DONE;
        }
        if (n == 0 && err == HPE_OK)
            return UPSTREAM_AGAIN;
    }
}

void upstream_resume(struct upstream *up)
{
    up->paused = false;
    conn_read_on(&up->pc.io, up->bal->tv_backend);
}
