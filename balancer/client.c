/* client: the client connection's state machine (see client.h).
 *
 * Longer than the ~600 lines the other modules keep to: reading, local
 * answers, dispatch, retries and the close are one state machine whose
 * transitions call each other, and splitting them over files would need a
 * private header exposing struct client to all of them. The backend side,
 * the head rewrites and the pool already live apart (upstream.c, head.c,
 * pool.c). */
#include "client.h"

#include "state.h"
#include "conn.h"
#include "head.h"
#include "headers.h"
#include "pool.h"
#include "shared/addrlist.h"
#include "shared/clock.h"
#include "shared/h1frame.h"
#include "shared/http_answer.h"
#include "shared/log.h"
#include "shared/request_id.h"
#include "shared/strbuf.h"
#include "shared/xalloc.h"
#include "tls.h"
#include "upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <http_parser.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Buffered bytes in one direction before the sender is paused: enough to keep
 * the pipe full, small enough that a 5 MB answer to a slow client is never held
 * whole. */
#define HIGH_WATER (256 * 1024)

/* A client connection's lifecycle, in order: from CLIENT_CLOSING on no
 * further request is read. */
enum client_state {
    CLIENT_IDLE,           /* no byte of a next request yet (keep-alive or header timer) */
    CLIENT_READING_HEAD,   /* part of a request head has arrived (header timer) */
    CLIENT_READING_BODY,   /* the head went on to a backend; the body follows it (client timer) */
    CLIENT_WAITING_ANSWER, /* the whole request is read; its answer is on its way */
    CLIENT_CLOSING,        /* the last answer is being written; nothing more is read */
    CLIENT_LINGERING,      /* written and half-closed: input is discarded until the client closes */
    CLIENT_DEAD,           /* freed by the next client_settle */
};

/* Flags orthogonal to the state. */
enum {
    CLIENT_ANSWERING = 1 << 0,   /* the current request's answer has begun: no retry, no error answer */
    CLIENT_EOF = 1 << 1,         /* the client shut its sending side */
    CLIENT_READ_PAUSED = 1 << 2, /* reading stops until the backend takes the body already read */
};
enum tkind { T_NONE, T_IDLE, T_HEADER, T_CLIENT, T_LINGER };

struct client {
    struct conn io;
    http_parser parser;
    struct h1frame frame; /* strict framing, checked on the bytes before the parser sees them */
    size_t frame_ok;      /* bytes at the front of io.in that passed the framing check */
    struct head head;
    struct balancer *bal;
    struct client *prev, *next;
    struct event timer;
    enum tkind timer_kind;
    enum client_state state;
    unsigned flags; /* CLIENT_ANSWERING, CLIENT_EOF, CLIENT_READ_PAUSED */
    struct upstream *up;
    bool ev_headers, ev_message, skip_lf;
    bool trusted_peer; /* in BALANCER_TRUSTED_PROXIES: its X-Forwarded-* are believed */
    bool keepalive, close_after, idempotent, has_body, head_req, reset_retried;
    int err_status, status, attempts, ntried;
    struct backend *tried[BACKEND_LIST_MAX];
    const char *backend_name;
    uint64_t body_bytes, resp_bytes, t_start, t_up;
    struct strbuf scratch; /* the request head as sent (kept for a retry), then the response head */
    char reqid[REQUEST_ID_MAX + 1];
    char ip[INET6_ADDRSTRLEN];
    char addr[INET6_ADDRSTRLEN + 8];
};

static const char *client_state_name(enum client_state s)
{
    switch (s) {
    case CLIENT_IDLE:
        return "idle";
    case CLIENT_READING_HEAD:
        return "reading-head";
    case CLIENT_READING_BODY:
        return "reading-body";
    case CLIENT_WAITING_ANSWER:
        return "waiting-answer";
    case CLIENT_CLOSING:
        return "closing";
    case CLIENT_LINGERING:
        return "lingering";
    default:
        return "dead";
    }
}

/* Closing, lingering or dead: no more requests, no more answers. */
static bool client_ending(const struct client *c)
{
    return c->state >= CLIENT_CLOSING;
}

/* Between its head and its answer's end: a request is under way. */
static bool client_in_request(const struct client *c)
{
    return c->state == CLIENT_READING_BODY || c->state == CLIENT_WAITING_ANSWER;
}

static bool client_answering(const struct client *c)
{
    return (c->flags & CLIENT_ANSWERING) != 0;
}

static void access_log(struct client *c, const char *note);

/* Marks c for freeing by the next client_settle. A client that goes while its
 * request is still unanswered gets its access log line now, with nginx's
 * code for it. */
static void client_kill(struct client *c)
{
    if (client_in_request(c) && !client_answering(c)) {
        c->status = 499; /* the client went away first */
        access_log(c, "client-closed");
    }
    c->state = CLIENT_DEAD;
}

/* --- forward declarations ------------------------------------------------ */

static void client_process(struct client *c);
static void client_settle(struct client *c);
static void client_local(struct client *c, int status, const char *msg);
static void client_redirect_https(struct client *c);
static void client_response_done(struct client *c);
static bool client_dispatch(struct client *c);
static void client_relay(struct client *c);
static void client_upstream_read_cb(evutil_socket_t fd, short what, void *arg);
static void client_upstream_write_cb(evutil_socket_t fd, short what, void *arg);

/* --- request parsing callbacks ------------------------------------------- */

static int req_message_begin(http_parser *p)
{
    struct client *c = p->data;
    head_reset(&c->head);
    c->body_bytes = 0;
    c->err_status = 0;
    return 0;
}

static int req_url(http_parser *p, const char *at, size_t len)
{
    struct client *c = p->data;
    if (head_append(&c->head, at, len) < 0) {
        c->err_status = 431;
        return -1;
    }
    c->head.flen += (uint32_t)len;
    return 0;
}

static int req_field(http_parser *p, const char *at, size_t len)
{
    struct client *c = p->data;
    if (head_field(&c->head, at, len) < 0) {
        c->err_status = 431;
        return -1;
    }
    /* http_parser refuses any second Content-Length; the framing check has
       already refused one that differs, and an identical one is the same message. */
    if ((p->flags & F_CONTENTLENGTH) && HDR_IS(&c->head, c->head.n - 1, "content-length"))
        p->flags &= (unsigned)~F_CONTENTLENGTH & 0xffu;
    return 0;
}

static int req_value(http_parser *p, const char *at, size_t len)
{
    struct client *c = p->data;
    if (head_value(&c->head, at, len) < 0) {
        c->err_status = 431;
        return -1;
    }
    return 0;
}

static int req_headers_complete(http_parser *p)
{
    struct client *c = p->data;
    if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX &&
        p->content_length > (uint64_t)c->bal->set.max_body_bytes)
        c->err_status = 413;
    c->ev_headers = true;
    http_parser_pause(p, 1);
    return 0;
}

static int req_body(http_parser *p, const char *at, size_t len)
{
    struct client *c = p->data;
    (void)at;
    c->body_bytes += len;
    if (c->body_bytes > (uint64_t)c->bal->set.max_body_bytes) {
        c->err_status = 413;
        return -1;
    }
    return 0;
}

static int req_message_complete(http_parser *p)
{
    struct client *c = p->data;
    c->ev_message = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings req_settings = {
    .on_message_begin = req_message_begin,
    .on_url = req_url,
    .on_header_field = req_field,
    .on_header_value = req_value,
    .on_headers_complete = req_headers_complete,
    .on_body = req_body,
    .on_message_complete = req_message_complete,
};

/* --- access log ------------------------------------------------------------ */

static void access_log(struct client *c, const char *note)
{
    struct balancer *b = c->bal;
    if (!b->set.access_log || log_get_level() > LOG_INFO)
        return;
    uint64_t now = clock_mono_us();
    double total_ms = (double)(now - c->t_start) / 1000.0;
    double up_ms = c->t_up ? (double)(now - c->t_up) / 1000.0 : 0.0;
    int urllen = (int)(c->head.flen > 512 ? 512 : c->head.flen);
    log_info(
        "access client=%s method=%s path=%.*s status=%d backend=%s attempts=%d bytes_in=%llu bytes_out=%llu "
        "time_ms=%.3f upstream_ms=%.3f request_id=%s%s%s",
        c->addr, http_method_str((enum http_method)c->parser.method), urllen, c->head.buf, c->status,
        c->backend_name ? c->backend_name : "-", c->attempts, (unsigned long long)c->body_bytes,
        (unsigned long long)c->resp_bytes, total_ms, up_ms, c->reqid[0] ? c->reqid : "-",
        note ? " note=" : "", note ? note : "");
}

/* --- client timers ------------------------------------------------------- */

static void client_timer(struct client *c, enum tkind kind)
{
    struct balancer *b = c->bal;
    const struct timeval *tv = NULL;
    switch (kind) {
    case T_NONE:
        if (c->timer_kind != T_NONE)
            event_del(&c->timer);
        c->timer_kind = T_NONE;
        return;
    case T_IDLE:
        tv = b->tv_idle;
        break;
    case T_HEADER:
        tv = b->tv_header;
        break;
    case T_CLIENT:
        tv = b->tv_client;
        break;
    case T_LINGER:
        tv = b->tv_linger;
        break;
    }
    event_add(&c->timer, tv);
    c->timer_kind = kind;
}

/* --- backend connections and pools --------------------------------------- */

/* Detaches the client's upstream without reusing it (the client went away or
 * got a local answer while a request was in flight). */
static void client_drop_upstream(struct client *c)
{
    struct upstream *up = c->up;
    if (!up)
        return;
    up->pc.be->in_flight--;
    c->up = NULL;
    up->owner = NULL;
    upstream_free(up);
}

/* --- failures and retries ------------------------------------------------ */

/* The backend failed the current request (up is gone after the call): sends
 * it to another backend where that is safe, else answers 502 or 504, or
 * closes when the answer had begun. */
static void client_upstream_failed(struct client *c, struct upstream *up)
{
    struct backend *be = up->pc.be;
    struct balancer *b = c->bal;
    enum upstream_failure kind = up->failure;
    char reason[sizeof(up->reason)];
    memcpy(reason, up->reason, sizeof(reason));
    log_warn("backend %s failed request_id=%s: %s", be->name, c->reqid, reason);
    be->in_flight--;
    backend_record(be, 0, clock_mono_us() - c->t_up);
    c->up = NULL;
    up->owner = NULL;

    bool retry = false;
    struct evbuffer *hold = NULL;
    if (!client_answering(c) && !client_ending(c)) {
        if (kind == UPSTREAM_CONNECT) {
            /* Nothing was sent: what waits in the buffer goes to the next backend. */
            retry = true;
            hold = evbuffer_new();
            evbuffer_add_buffer(hold, up->pc.io.out);
        } else if (kind == UPSTREAM_RESET && c->idempotent && !c->has_body && !c->reset_retried) {
            retry = true;
            c->reset_retried = true;
        }
    }
    upstream_free(up);
    if (retry && client_dispatch(c)) {
        struct upstream *nu = c->up;
        nu->pc.be->retries++;
        if (hold)
            evbuffer_add_buffer(nu->pc.io.out, hold);
        else
            evbuffer_add(nu->pc.io.out, c->scratch.p, c->scratch.len);
        if (nu->pc.state == POOL_BUSY)
            conn_flush(&nu->pc.io, b->tv_backend);
    } else if (retry) {
        /* client_dispatch answered the client already. */
    } else if (client_answering(c)) {
        access_log(c, "backend-broke-answer");
        client_kill(c);
    } else {
        char msg[512];
        snprintf(msg, sizeof(msg), "backend %s failed (%s)", be->name, reason);
        client_local(c, kind == UPSTREAM_TIMEOUT ? 504 : 502, msg);
    }
    if (hold)
        evbuffer_free(hold);
}

/* --- choosing a backend --------------------------------------------------- */

static struct backend *choose_backend(struct client *c)
{
    struct balancer *b = c->bal;
    bool exclude[BACKEND_LIST_MAX];
    bool *ex = NULL;
    if (c->ntried) {
        memset(exclude, 0, sizeof(exclude));
        for (size_t i = 0; i < b->nbackends; i++)
            for (int k = 0; k < c->ntried; k++)
                if (b->backends[i] == c->tried[k])
                    exclude[i] = true;
        ex = exclude;
    }
    int i = backend_pick(b->backends, b->nbackends, ex);
    if (i < 0)
        i = backend_pick_least_bad(b->backends, b->nbackends, ex, &b->least_bad_cursor);
    return i < 0 ? NULL : b->backends[i];
}

/* Attaches a backend connection for the current request. Returns false after
 * answering the client itself (no backend left to try). */
static bool client_dispatch(struct client *c)
{
    struct balancer *b = c->bal;
    for (;;) {
        struct backend *be = c->ntried < BACKEND_LIST_MAX ? choose_backend(c) : NULL;
        if (!be) {
            char msg[200];
            if (c->ntried == 0)
                snprintf(msg, sizeof(msg), "no backend is configured");
            else
                snprintf(msg, sizeof(msg),
                         "no backend could take the request (%d tried, all down or failing)", c->ntried);
            client_local(c, c->ntried ? 502 : 503, msg);
            return false;
        }
        c->tried[c->ntried++] = be;
        struct upstream *up = upstream_take(b, be);
        if (!up)
            up = upstream_open(b, be, client_upstream_read_cb, client_upstream_write_cb);
        if (!up)
            continue;
        c->attempts++;
        up->owner = c;
        up->head_req = c->head_req;
        c->up = up;
        c->backend_name = be->name;
        c->t_up = clock_mono_us();
        be->in_flight++;
        be->requests++;
        return true;
    }
}

/* --- request start --------------------------------------------------------- */

static bool method_idempotent(unsigned m)
{
    return m == HTTP_GET || m == HTTP_HEAD || m == HTTP_OPTIONS || m == HTTP_TRACE || m == HTTP_PUT ||
           m == HTTP_DELETE;
}

static void client_start_request(struct client *c)
{
    struct balancer *b = c->bal;
    http_parser *p = &c->parser;
    b->requests++;
    c->status = 0;
    c->flags &= ~(unsigned)CLIENT_ANSWERING;
    c->attempts = c->ntried = 0;
    c->reset_retried = false;
    c->backend_name = NULL;
    c->resp_bytes = 0;
    c->t_up = 0;
    c->reqid[0] = '\0';
    c->head_req = p->method == HTTP_HEAD;
    c->idempotent = method_idempotent(p->method);
    c->has_body = (p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != ULLONG_MAX);
    c->keepalive = http_should_keep_alive(p) && !p->upgrade;

    struct head_request req = {
        .method = p->method,
        .http_minor = p->http_minor,
        .head = &c->head,
        .client_ip = c->ip,
        .trusted_peer = c->trusted_peer,
        .tls = c->io.ssl != NULL,
        .ids = &b->request_ids,
    };
    struct head_rewrite rw;
    bool heads_ok = head_rewrite_request(&req, &c->scratch, &rw);
    memcpy(c->reqid, rw.reqid, sizeof(c->reqid));
    if (c->err_status) {
        client_local(c, c->err_status,
                     c->err_status == 413 ? "request body larger than the limit" : "request head too large");
        return;
    }
    if (p->http_major != 1) {
        client_local(c, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
        return;
    }
    if (p->method == HTTP_CONNECT) {
        client_local(c, 405, "CONNECT is not supported");
        return;
    }
    if (!heads_ok) {
        client_local(c, 400, "invalid header value");
        return;
    }
    if (p->http_minor >= 1 && !rw.has_host) {
        client_local(c, 400, "missing Host header");
        return;
    }
    if (rw.expect_continue && c->has_body && p->http_minor >= 1) {
        /* Answered here rather than relayed, so a backend's 1xx never reaches the response parser's output.
         */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        evbuffer_add(c->io.out, cont, sizeof(cont) - 1);
        conn_flush(&c->io, b->tv_client);
    }
    if (!c->io.ssl && b->set.https_redirect) {
        client_redirect_https(c);
        return;
    }
    if (!client_dispatch(c))
        return;
    evbuffer_add(c->up->pc.io.out, c->scratch.p, c->scratch.len);
}

/* --- local answers ---------------------------------------------------------- */

static void client_local(struct client *c, int status, const char *msg)
{
    struct balancer *b = c->bal;
    client_drop_upstream(c);
    if (client_answering(c)) {
        client_kill(c);
        return;
    }
    b->local_errors++;
    c->status = status;
    c->flags |= CLIENT_ANSWERING;
    if (!c->reqid[0])
        request_id_next(&b->request_ids, c->reqid);
    char answer[1024];
    size_t n = http_error_answer(answer, sizeof(answer), status, c->reqid, NULL, msg, c->head_req);
    evbuffer_add(c->io.out, answer, n);
    c->resp_bytes = (uint64_t)n;
    if (status >= 500)
        log_warn("answered %d to %s request_id=%s: %s", status, c->addr, c->reqid[0] ? c->reqid : "-", msg);
    access_log(c, NULL);
    c->state = CLIENT_CLOSING;
    conn_read_off(&c->io);
    client_timer(c, T_NONE);
    if (conn_flush(&c->io, b->tv_client) < 0)
        client_kill(c);
}

/* The plain listener with BALANCER_HTTPS_REDIRECT: 308 to the same host (its
 * port replaced) and path over HTTPS. */
static void client_redirect_https(struct client *c)
{
    struct balancer *b = c->bal;
    if (!head_https_redirect(&c->head, b->set.https_port, c->head_req, &c->scratch)) {
        client_local(c, 400, "a valid Host header is needed to redirect to HTTPS");
        return;
    }
    b->local_errors++;
    c->status = 308;
    c->flags |= CLIENT_ANSWERING;
    evbuffer_add(c->io.out, c->scratch.p, c->scratch.len);
    c->resp_bytes = c->scratch.len;
    access_log(c, "https-redirect");
    c->state = CLIENT_CLOSING;
    conn_read_off(&c->io);
    client_timer(c, T_NONE);
    if (conn_flush(&c->io, b->tv_client) < 0)
        client_kill(c);
}

static void client_bad_request(struct client *c, enum http_errno err)
{
    if (c->err_status == 0)
        c->err_status = err == HPE_HEADER_OVERFLOW ? 431 : 400;
    if (c->t_start == 0)
        c->t_start = clock_mono_us();
    char msg[160];
    if (c->err_status == 400)
        snprintf(msg, sizeof(msg), "malformed request (%s)", http_errno_description(err));
    else
        snprintf(msg, sizeof(msg), "%s",
                 c->err_status == 413 ? "request body larger than the limit" : "request head too large");
    if (client_in_request(c) && client_answering(c)) {
        client_kill(c);
        return;
    }
    client_local(c, c->err_status, msg);
}

/* --- client request side ---------------------------------------------------- */

static void client_pause_read(struct client *c)
{
    conn_read_off(&c->io);
    c->flags |= CLIENT_READ_PAUSED;
}

static void client_resume_read(struct client *c)
{
    if (!(c->flags & CLIENT_READ_PAUSED) || client_ending(c))
        return;
    c->flags &= ~(unsigned)CLIENT_READ_PAUSED;
    conn_read_on(&c->io, NULL);
    client_process(c);
}

/* Runs the framing check ahead of the parser over the first piece of input and
 * cuts v to what passed. Returns false when nothing may be parsed now: the
 * request was refused (answered) or more bytes are needed. */
static bool client_frame_check(struct client *c, struct evbuffer_iovec *v)
{
    while (c->frame_ok < v->iov_len && c->frame.status == 0) {
        size_t used = 0;
        h1frame_scan(&c->frame, (const char *)v->iov_base + c->frame_ok, v->iov_len - c->frame_ok, &used);
        c->frame_ok += used;
    }
    if (c->frame_ok == 0 && c->frame.status != 0) {
        if (c->t_start == 0)
            c->t_start = clock_mono_us();
        if (client_in_request(c) && client_answering(c))
            client_kill(c); /* a chunked body went bad after the answer began: nothing to say but close */
        else
            client_local(c, c->frame.status, c->frame.reason);
        return false;
    }
    if (c->frame_ok < v->iov_len)
        v->iov_len = c->frame_ok;
    return v->iov_len > 0;
}

/* One pass of client_process: parses what has arrived and sends the body on. */
static void client_process_pass(struct client *c)
{
    struct balancer *b = c->bal;
    while (!client_ending(c)) {
        if (c->state == CLIENT_WAITING_ANSWER)
            break;
        if (c->state == CLIENT_READING_BODY && c->up && evbuffer_get_length(c->up->pc.io.out) > HIGH_WATER) {
            client_pause_read(c);
            break;
        }
        if (evbuffer_get_length(c->io.in) == 0)
            break;
        if (c->state == CLIENT_IDLE) {
            c->state = CLIENT_READING_HEAD;
            c->t_start = clock_mono_us();
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(c->io.in, -1, NULL, &v, 1) < 1)
            break;
        if (!client_frame_check(c, &v))
            break;
        size_t n = http_parser_execute(&c->parser, &req_settings, v.iov_base, v.iov_len);
        c->frame_ok -= n;
        enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
        if (c->state == CLIENT_READING_HEAD) {
            evbuffer_drain(c->io.in, n);
        } else {
            size_t k = n;
            if (c->skip_lf && k > 0) {
                evbuffer_drain(c->io.in, 1);
                k--;
                c->skip_lf = false;
            }
            if (k > 0) {
                if (c->up)
                    evbuffer_remove_buffer(c->io.in, c->up->pc.io.out, k);
                else
                    evbuffer_drain(c->io.in, k);
            }
        }
        if (err != HPE_OK && err != HPE_PAUSED) {
            client_bad_request(c, err);
            break;
        }
        if (c->ev_headers) {
            c->ev_headers = false;
            http_parser_pause(&c->parser, 0);
            c->state = CLIENT_READING_BODY;
            c->skip_lf = true;
            client_start_request(c);
            if (client_ending(c))
                break;
        }
        if (c->ev_message) {
            c->ev_message = false;
            c->state = CLIENT_WAITING_ANSWER;
        }
        if (n == 0 && !c->ev_headers && err == HPE_OK)
            break;
    }
    if (client_ending(c))
        return;
    switch (c->state) {
    case CLIENT_READING_HEAD:
        if (c->timer_kind != T_HEADER)
            client_timer(c, T_HEADER);
        break;
    case CLIENT_READING_BODY:
        client_timer(c, T_CLIENT);
        break;
    case CLIENT_WAITING_ANSWER:
        client_timer(c, T_NONE);
        break;
    default:
        break;
    }
    struct upstream *up = c->up;
    if (up && up->pc.state == POOL_BUSY && evbuffer_get_length(up->pc.io.out) > 0 &&
        conn_flush(&up->pc.io, b->tv_backend) < 0)
        event_active(&up->pc.io.rev, EV_READ, 1); /* the read side reports the error */
}

static void client_process(struct client *c)
{
    /* Paused reads are resumed by the backend's write event, but the flush at the end
     * of a pass may have emptied the buffer, and then no write event comes: go on here,
     * or the upload stalls for good. */
    for (;;) {
        client_process_pass(c);
        struct upstream *up = c->up;
        if (!(c->flags & CLIENT_READ_PAUSED) || client_ending(c) || !up ||
            evbuffer_get_length(up->pc.io.out) >= HIGH_WATER / 2)
            return;
        c->flags &= ~(unsigned)CLIENT_READ_PAUSED;
        conn_read_on(&c->io, NULL);
    }
}

/* --- response side ------------------------------------------------------------ */

static void client_write_response_head(struct client *c, struct upstream *up)
{
    struct balancer *b = c->bal;
    bool close = !c->keepalive || b->draining || upstream_until_close(up) ||
                 c->state != CLIENT_WAITING_ANSWER || (c->flags & CLIENT_EOF);
    c->close_after = close;
    struct head_response resp = {
        .status = up->parser.status_code,
        .head = &up->head,
        .reqid = c->reqid,
        .hsts_max_age = c->io.ssl ? b->set.hsts_max_age : 0,
        .close = close,
        .client_http10 = c->parser.http_minor == 0,
    };
    head_rewrite_response(&resp, &c->scratch);
    evbuffer_add(c->io.out, c->scratch.p, c->scratch.len);
    c->resp_bytes += c->scratch.len;
    c->status = resp.status;
    c->flags |= CLIENT_ANSWERING;
}

/* The answer went through: the backend's statistics, then the connection
 * back to the pool when it and the request allow. */
static void client_upstream_done(struct client *c, struct upstream *up)
{
    struct backend *be = up->pc.be;
    be->in_flight--;
    backend_record(be, c->status, clock_mono_us() - c->t_up);
    be->bytes_out += c->resp_bytes;
    backend_report_answer(be);
    c->up = NULL;
    up->owner = NULL;
    upstream_finish(up, c->state == CLIENT_WAITING_ANSWER);
    client_response_done(c);
}

/* Moves what the backend sent to the client, as far as it goes now. */
static void client_relay(struct client *c)
{
    struct balancer *b = c->bal;
    struct upstream *up = c->up;
    while (up && c->up == up && c->state != CLIENT_DEAD) {
        enum upstream_result r = upstream_relay(up, c->io.out, HIGH_WATER, &c->resp_bytes);
        if (r == UPSTREAM_HEAD) {
            client_write_response_head(c, up);
            continue;
        }
        if (r == UPSTREAM_FAILED) {
            client_upstream_failed(c, up);
            return;
        }
        if (r == UPSTREAM_DONE) {
            client_upstream_done(c, up);
            break;
        }
        if (conn_flush(&c->io, b->tv_client) < 0) {
            client_kill(c);
            return;
        }
        /* A paused backend is resumed by the client's write event, but the flush just
         * now may have emptied the buffer (the client read it meanwhile), and then no
         * write event comes: resume here, or the answer stalls for good. */
        if (!up->paused || evbuffer_get_length(c->io.out) >= HIGH_WATER / 2)
            return;
        upstream_resume(up);
    }
    if (c->state != CLIENT_DEAD && conn_flush(&c->io, b->tv_client) < 0)
        client_kill(c);
}

static void client_response_done(struct client *c)
{
    struct balancer *b = c->bal;
    access_log(c, NULL);
    if (c->state != CLIENT_WAITING_ANSWER || c->close_after || !c->keepalive || b->draining ||
        (c->flags & CLIENT_EOF)) {
        c->state = CLIENT_CLOSING;
        conn_read_off(&c->io);
        client_timer(c, T_NONE);
        return;
    }
    c->state = CLIENT_IDLE;
    /* The answer is over: a refusal of the next request must be answered,
       not taken for an answer that broke off. */
    c->flags &= ~(unsigned)CLIENT_ANSWERING;
    c->t_start = 0;
    http_parser_pause(&c->parser, 0);
    client_timer(c, T_IDLE);
    if (c->flags & CLIENT_READ_PAUSED) {
        c->flags &= ~(unsigned)CLIENT_READ_PAUSED;
        conn_read_on(&c->io, NULL);
    }
    if (evbuffer_get_length(c->io.in) > 0)
        client_process(c);
}

/* --- upstream events ------------------------------------------------------------ */

static void client_upstream_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct upstream *up = arg;
    struct client *c = up->owner;
    (void)fd;
    if (up->pc.state == POOL_IDLE || !c) {
        /* An idle pooled connection that speaks, closes or times out is of no further use. */
        upstream_free(up);
        return;
    }
    switch (upstream_on_read(up, what)) {
    case UPSTREAM_AGAIN:
        return;
    case UPSTREAM_DATA:
        client_relay(c);
        break;
    case UPSTREAM_DONE: {
        struct balancer *b = c->bal;
        client_upstream_done(c, up);
        if (c->state != CLIENT_DEAD && conn_flush(&c->io, b->tv_client) < 0)
            client_kill(c);
        break;
    }
    default:
        client_upstream_failed(c, up);
        break;
    }
    client_settle(c);
}

static void client_upstream_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct upstream *up = arg;
    struct client *c = up->owner;
    (void)fd;
    if (!c) {
        upstream_free(up); /* nobody waits for it: an upstream is dropped with its client */
        return;
    }
    if (upstream_on_write(up, what) == UPSTREAM_FAILED) {
        client_upstream_failed(c, up);
        client_settle(c);
        return;
    }
    if (evbuffer_get_length(up->pc.io.out) < HIGH_WATER / 2)
        client_resume_read(c);
    client_settle(c);
}

/* --- client events ---------------------------------------------------------------- */

static void client_free(struct client *c)
{
    struct balancer *b = c->bal;
    log_debug("client %s closed (%s)", c->addr, client_state_name(c->state));
    client_drop_upstream(c);
    if (c->timer_kind != T_NONE)
        event_del(&c->timer);
    conn_close(&c->io);
    head_cleanup(&c->head);
    strbuf_free(&c->scratch);
    if (c->prev)
        c->prev->next = c->next;
    else
        b->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
    b->nclients--;
}

/* Ends a closing connection once its answer is out: half-close, then read and
 * discard until the client closes too (or a short timer fires), so a client
 * still sending a refused body reads the answer instead of a reset. */
static void client_settle(struct client *c)
{
    if (c->state == CLIENT_DEAD) {
        client_free(c);
        return;
    }
    if (c->state != CLIENT_CLOSING || evbuffer_get_length(c->io.out) > 0)
        return;
    if (c->flags & CLIENT_EOF) {
        client_free(c);
        return;
    }
    conn_shutdown_write(&c->io);
    c->state = CLIENT_LINGERING;
    conn_read_on(&c->io, NULL);
    client_timer(c, T_LINGER);
}

static void client_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    (void)fd;
    (void)what;
    int n = conn_read(&c->io);
    if (n == -2)
        return;
    if (c->state == CLIENT_LINGERING) {
        evbuffer_drain(c->io.in, evbuffer_get_length(c->io.in));
        if (n <= 0)
            client_free(c);
        return;
    }
    if (n < 0 || (n == 0 && c->state != CLIENT_WAITING_ANSWER)) {
        if (n == 0 && c->state == CLIENT_READING_HEAD && evbuffer_get_length(c->io.in) > 0)
            log_debug("client %s closed in the middle of a request head", c->addr);
        c->flags |= CLIENT_EOF;
        client_kill(c);
        client_settle(c);
        return;
    }
    if (n == 0) {
        /* Half-close after a whole request: answer it, then close (HAProxy's default). */
        c->flags |= CLIENT_EOF;
        conn_read_off(&c->io);
        return;
    }
    if (c->state == CLIENT_WAITING_ANSWER) {
        if (evbuffer_get_length(c->io.in) > (size_t)c->bal->set.max_header_bytes)
            client_pause_read(c);
        return;
    }
    client_process(c);
    client_settle(c);
}

static void client_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    struct balancer *b = c->bal;
    (void)fd;
    if (what & EV_TIMEOUT) {
        log_info("client %s does not read its answer; closing request_id=%s", c->addr, c->reqid);
        client_kill(c);
        client_settle(c);
        return;
    }
    if (conn_flush(&c->io, b->tv_client) < 0) {
        client_kill(c);
        client_settle(c);
        return;
    }
    struct upstream *up = c->up;
    if (up && up->paused && evbuffer_get_length(c->io.out) < HIGH_WATER / 2) {
        upstream_resume(up);
        client_relay(c);
    }
    client_settle(c);
}

static void client_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    (void)fd;
    (void)what;
    enum tkind kind = c->timer_kind;
    c->timer_kind = T_NONE;
    log_debug("client %s: timer ran out (%s)", c->addr, client_state_name(c->state));
    switch (kind) {
    case T_HEADER:
        if (c->state == CLIENT_READING_HEAD) {
            c->keepalive = false;
            client_local(c, 408, "request head not received in time");
        } else {
            client_kill(c); /* a new connection that never sent anything */
        }
        break;
    case T_CLIENT:
        if (c->state == CLIENT_READING_BODY && !client_answering(c))
            client_local(c, 408, "request body not received in time");
        else
            client_kill(c);
        break;
    default:
        client_kill(c);
        break;
    }
    client_settle(c);
}

/* --- public ------------------------------------------------------------------ */

struct client *client_new(struct balancer *b, int fd, const struct sockaddr *sa, bool tls)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct client *c = xcalloc(1, sizeof(*c));
    c->bal = b;
    conn_init(&c->io, b->base, fd, client_read_cb, client_write_cb, c);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    h1frame_init(&c->frame, (size_t)b->set.max_header_bytes, (uint64_t)b->set.max_body_bytes);
    head_init(&c->head, (uint32_t)b->set.max_header_bytes);
    evtimer_assign(&c->timer, b->base, client_timer_cb, c);
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, c->ip, sizeof(c->ip));
        port = ntohs(in->sin_port);
        snprintf(c->addr, sizeof(c->addr), "%s:%d", c->ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, c->ip, sizeof(c->ip));
        port = ntohs(in6->sin6_port);
        snprintf(c->addr, sizeof(c->addr), "[%s]:%d", c->ip, port);
    } else {
        snprintf(c->ip, sizeof(c->ip), "unknown");
        snprintf(c->addr, sizeof(c->addr), "unknown");
    }
    c->trusted_peer = addrlist_contains(b->set.trusted_proxies, c->ip);
    c->next = b->clients;
    if (b->clients)
        b->clients->prev = c;
    b->clients = c;
    b->nclients++;
    b->accepted++;
    c->state = CLIENT_IDLE;
    conn_read_on(&c->io, NULL);
    /* A new connection gets the header timeout for its first request, not the long keep-alive one. */
    client_timer(c, T_HEADER);
    if (tls)
        conn_tls(&c->io, tls_session_new(b->tls, fd));
    return c;
}

struct client *client_next(const struct client *c)
{
    return c->next;
}

bool client_close_if_idle(struct client *c)
{
    if (c->state != CLIENT_IDLE || evbuffer_get_length(c->io.in) > 0)
        return false;
    client_kill(c);
    client_settle(c);
    return true;
}

void client_close(struct client *c)
{
    client_kill(c);
    client_settle(c);
}
