#include "proxy.h"

#include "balancer.h"
#include "conn.h"
#include "headers.h"
#include "shared/addrlist.h"
#include "shared/clock.h"
#include "shared/h1frame.h"
#include "shared/http_answer.h"
#include "shared/log.h"
#include "shared/request_id.h"
#include "shared/xalloc.h"
#include "tls.h"

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

#define MAX_HEADERS 128
/* Buffered bytes in one direction before the sender is paused: enough to keep
 * the pipe full, small enough that a 5 MB answer to a slow client is never held
 * whole. */
#define HIGH_WATER (256 * 1024)
#define RESPONSE_HEAD_MAX 65536
#define XFF_MAX 2048

/* A parsed message head: the start-line item and header fields as offsets into
 * one buffer of bounded size (the header size limit). */
struct hdr {
    uint32_t name, nlen, value, vlen;
};

struct head {
    char *buf;
    uint32_t len, cap;
    struct hdr h[MAX_HEADERS];
    uint32_t n;
    uint32_t flen; /* URL (request) or reason phrase (response) at offset 0 */
    bool in_value;
    bool overflow;
};

enum rstate { R_IDLE, R_HEAD, R_BODY, R_DONE };
enum ustate { U_CONNECTING, U_BUSY, U_IDLE };
enum tkind { T_NONE, T_IDLE, T_HEADER, T_CLIENT, T_LINGER };
enum failure { F_CONNECT, F_RESET, F_TIMEOUT, F_PROTOCOL, F_BROKEN };

struct upstream {
    struct conn io;
    http_parser parser;
    struct head head;
    struct balancer *bal;
    struct backend *be;
    struct client *client;
    struct upstream *prev, *next; /* pool list while idle */
    enum ustate state;
    int connect_errno;
    bool got_bytes, head_done, skip_lf, ev_headers, ev_message, skip_message, paused, force_close;
};

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
    enum rstate rstate;
    struct upstream *up;
    bool ev_headers, ev_message, skip_lf;
    bool closing, dead, lingering, eof, read_paused;
    bool trusted_peer; /* in BALANCER_TRUSTED_PROXIES: its X-Forwarded-* are believed */
    bool keepalive, close_after, resp_started, in_request, idempotent, has_body, head_req, reset_retried;
    int err_status, status, attempts, ntried;
    struct backend *tried[BACKEND_LIST_MAX];
    const char *backend_name;
    uint64_t body_bytes, resp_bytes, t_start, t_up;
    char *scratch; /* the request head as sent (kept for a retry), then the response head */
    size_t scratch_len, scratch_cap;
    char reqid[REQUEST_ID_MAX + 1];
    char ip[INET6_ADDRSTRLEN];
    char addr[INET6_ADDRSTRLEN + 8];
};

/* --- message heads ------------------------------------------------------ */

static void head_init(struct head *hd, uint32_t cap)
{
    hd->buf = xmalloc(cap);
    hd->cap = cap;
    hd->len = hd->n = hd->flen = 0;
    hd->in_value = hd->overflow = false;
}

static void head_reset(struct head *hd)
{
    hd->len = hd->n = hd->flen = 0;
    hd->in_value = hd->overflow = false;
}

static int head_append(struct head *hd, const char *at, size_t len)
{
    if (len > hd->cap - hd->len) {
        hd->overflow = true;
        return -1;
    }
    memcpy(hd->buf + hd->len, at, len);
    hd->len += (uint32_t)len;
    return 0;
}

static int head_field(struct head *hd, const char *at, size_t len)
{
    if (hd->n == 0 || hd->in_value) {
        if (hd->n == MAX_HEADERS) {
            hd->overflow = true;
            return -1;
        }
        hd->h[hd->n++] = (struct hdr){.name = hd->len};
        hd->in_value = false;
    }
    if (head_append(hd, at, len) < 0)
        return -1;
    hd->h[hd->n - 1].nlen += (uint32_t)len;
    return 0;
}

static int head_value(struct head *hd, const char *at, size_t len)
{
    if (hd->n == 0)
        return -1;
    struct hdr *h = &hd->h[hd->n - 1];
    if (!hd->in_value) {
        h->value = hd->len;
        h->vlen = 0;
        hd->in_value = true;
    }
    if (head_append(hd, at, len) < 0)
        return -1;
    h->vlen += (uint32_t)len;
    return 0;
}

static bool hdr_is(const struct head *hd, uint32_t i, const char *lit, size_t litlen)
{
    return hd->h[i].nlen == litlen && strncasecmp(hd->buf + hd->h[i].name, lit, litlen) == 0;
}

#define HDR_IS(hd, i, lit) hdr_is(hd, i, lit, sizeof(lit) - 1)

/* Value without trailing whitespace. */
static const char *hdr_value(const struct head *hd, uint32_t i, size_t *len)
{
    const char *v = hd->buf + hd->h[i].value;
    size_t n = hd->h[i].vlen;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    *len = n;
    return v;
}

/* True when a Connection header of hd names header i (so it is hop-by-hop too). */
static bool hdr_listed_in_connection(const struct head *hd, uint32_t i, const uint32_t *conn, int nconn)
{
    for (int k = 0; k < nconn; k++) {
        size_t vlen;
        const char *v = hdr_value(hd, conn[k], &vlen);
        if (headers_list_has_token(v, vlen, hd->buf + hd->h[i].name, hd->h[i].nlen))
            return true;
    }
    return false;
}

static int collect_connection(const struct head *hd, uint32_t *conn, int max)
{
    int n = 0;
    for (uint32_t i = 0; i < hd->n && n < max; i++)
        if (HDR_IS(hd, i, "connection"))
            conn[n++] = i;
    return n;
}

/* --- the scratch buffer, for building heads ----------------------------- */

static void sb_need(struct client *c, size_t more)
{
    if (c->scratch_len + more > c->scratch_cap) {
        c->scratch_cap = (c->scratch_len + more) * 2;
        c->scratch = xrealloc(c->scratch, c->scratch_cap);
    }
}

static void sb_add(struct client *c, const char *s, size_t n)
{
    sb_need(c, n);
    memcpy(c->scratch + c->scratch_len, s, n);
    c->scratch_len += n;
}

#define SB_LIT(c, lit) sb_add(c, lit, sizeof(lit) - 1)

static void sb_str(struct client *c, const char *s)
{
    sb_add(c, s, strlen(s));
}

static void sb_header(struct client *c, const char *name, size_t nlen, const char *value, size_t vlen)
{
    sb_need(c, nlen + vlen + 4);
    char *p = c->scratch + c->scratch_len;
    memcpy(p, name, nlen);
    p += nlen;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value, vlen);
    p += vlen;
    *p++ = '\r';
    *p++ = '\n';
    c->scratch_len += nlen + vlen + 4;
}

/* --- forward declarations ------------------------------------------------ */

static void client_process(struct client *c);
static void client_settle(struct client *c);
static void client_local(struct client *c, int status, const char *msg);
static void client_redirect_https(struct client *c);
static void client_response_done(struct client *c);
static bool client_dispatch(struct client *c);
static void upstream_process(struct upstream *up);
static void upstream_free(struct upstream *up);
static void upstream_read_cb(evutil_socket_t fd, short what, void *arg);
static void upstream_write_cb(evutil_socket_t fd, short what, void *arg);

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
    return up->client && up->client->head_req && p->status_code >= 200 ? 1 : 0;
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

static void upstream_unlink_idle(struct upstream *up)
{
    struct backend *be = up->be;
    if (up->prev)
        up->prev->next = up->next;
    else
        be->idle = up->next;
    if (up->next)
        up->next->prev = up->prev;
    up->prev = up->next = NULL;
    be->idle_count--;
}

static void upstream_free(struct upstream *up)
{
    if (up->state == U_IDLE)
        upstream_unlink_idle(up);
    conn_close(&up->io);
    up->be->connections--;
    free(up->head.buf);
    free(up);
}

static void upstream_reset_for_request(struct upstream *up)
{
    http_parser_init(&up->parser, HTTP_RESPONSE);
    up->parser.data = up;
    head_reset(&up->head);
    up->got_bytes = up->head_done = up->skip_lf = up->ev_headers = up->ev_message = false;
    up->skip_message = up->paused = up->force_close = false;
}

static struct upstream *upstream_open(struct balancer *b, struct backend *be)
{
    int fd = socket(be->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("socket for backend %s: %s", be->name, strerror(errno));
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct upstream *up = xcalloc(1, sizeof(*up));
    up->bal = b;
    up->be = be;
    conn_init(&up->io, b->base, fd, upstream_read_cb, upstream_write_cb, up);
    head_init(&up->head, RESPONSE_HEAD_MAX);
    upstream_reset_for_request(up);
    be->connections++;
    up->state = U_CONNECTING;
    if (connect(fd, (struct sockaddr *)&be->addr, be->addrlen) < 0 && errno != EINPROGRESS) {
        /* Reported from the loop, like a failure found later, so callers never see it inline. */
        up->connect_errno = errno;
        event_active(&up->io.wev, EV_WRITE, 1);
        up->io.writing = true;
        return up;
    }
    conn_write_wait(&up->io, b->tv_connect);
    return up;
}

static struct upstream *pool_take(struct backend *be)
{
    struct upstream *up = be->idle;
    if (!up)
        return NULL;
    upstream_unlink_idle(up);
    up->state = U_BUSY;
    upstream_reset_for_request(up);
    conn_read_on(&up->io, up->bal->tv_backend);
    return up;
}

/* The pool is a stack: the most recently used connection is taken first, so
 * when the load drops the connections at the bottom stay idle and the pool
 * idle timeout closes them. The size limit is a ceiling, not the working set:
 * below the peak number of requests in flight to a backend, every burst closes
 * connections here and opens new ones (measured: 5% of requests reconnecting
 * at 256 clients with a limit of 128). */
static void pool_put(struct upstream *up)
{
    struct backend *be = up->be;
    struct balancer *b = up->bal;
    if (be->removed || be->idle_count >= b->set.pool_size || b->draining) {
        upstream_free(up);
        return;
    }
    up->state = U_IDLE;
    up->client = NULL;
    up->prev = NULL;
    up->next = be->idle;
    if (be->idle)
        be->idle->prev = up;
    be->idle = up;
    be->idle_count++;
    conn_write_off(&up->io);
    conn_read_on(&up->io, b->tv_pool);
}

void proxy_pool_close(struct backend *be)
{
    while (be->idle)
        upstream_free(be->idle);
}

/* Detaches the client's upstream without reusing it (the client went away or
 * got a local answer while a request was in flight). */
static void client_drop_upstream(struct client *c)
{
    struct upstream *up = c->up;
    if (!up)
        return;
    up->be->in_flight--;
    c->up = NULL;
    up->client = NULL;
    upstream_free(up);
}

/* --- failures and retries ------------------------------------------------ */

static const char *failure_name(enum failure f)
{
    switch (f) {
    case F_CONNECT:
        return "connect";
    case F_RESET:
        return "reset";
    case F_TIMEOUT:
        return "timeout";
    case F_PROTOCOL:
        return "protocol";
    default:
        return "broken";
    }
}

static void upstream_failed(struct upstream *up, enum failure kind, const char *why)
{
    struct backend *be = up->be;
    struct balancer *b = up->bal;
    struct client *c = up->client;
    char reason[160];
    snprintf(reason, sizeof(reason), "%s: %s", failure_name(kind), why);
    be->failures++;
    if (kind == F_CONNECT || kind == F_RESET || kind == F_BROKEN) {
        if (backend_report_failure(be, (int)b->set.health_fall, kind == F_CONNECT, reason))
            log_warn("backend %s is down (passive: %s)", be->name, reason);
    }
    if (!c) {
        upstream_free(up);
        return;
    }
    log_warn("backend %s failed request_id=%s: %s", be->name, c->reqid, reason);
    be->in_flight--;
    backend_record(be, 0, clock_mono_us() - c->t_up);
    c->up = NULL;
    up->client = NULL;

    bool retry = false;
    struct evbuffer *hold = NULL;
    if (!c->resp_started && !c->closing && !c->dead) {
        if (kind == F_CONNECT) {
            /* Nothing was sent: what waits in the buffer goes to the next backend. */
            retry = true;
            hold = evbuffer_new();
            evbuffer_add_buffer(hold, up->io.out);
        } else if (kind == F_RESET && c->idempotent && !c->has_body && !c->reset_retried) {
            retry = true;
            c->reset_retried = true;
        }
    }
    upstream_free(up);
    if (retry && client_dispatch(c)) {
        struct upstream *nu = c->up;
        nu->be->retries++;
        if (hold)
            evbuffer_add_buffer(nu->io.out, hold);
        else
            evbuffer_add(nu->io.out, c->scratch, c->scratch_len);
        if (nu->state == U_BUSY)
            conn_flush(&nu->io, b->tv_backend);
    } else if (retry) {
        /* client_dispatch answered the client already. */
    } else if (c->resp_started) {
        access_log(c, "backend-broke-answer");
        c->dead = true;
    } else {
        char msg[512];
        snprintf(msg, sizeof(msg), "backend %s failed (%s)", be->name, reason);
        client_local(c, kind == F_TIMEOUT ? 504 : 502, msg);
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
        struct upstream *up = pool_take(be);
        if (!up)
            up = upstream_open(b, be);
        if (!up)
            continue;
        c->attempts++;
        up->client = c;
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

/* Builds the head sent to the backend into c->scratch. Returns false when a
 * header value cannot be forwarded. */
/* "http" or "https", any case: the only values worth passing on. */
static bool forwarded_proto_ok(const char *v, size_t len)
{
    return (len == 4 && strncasecmp(v, "http", 4) == 0) || (len == 5 && strncasecmp(v, "https", 5) == 0);
}

/* The request head as it goes to the backend: hop-by-hop fields dropped, and
 * X-Forwarded-For, X-Forwarded-Proto and X-Request-Id written by us (the first
 * two kept and appended to only from a trusted peer). */
static bool build_request_head(struct client *c, bool *has_host, bool *expect_continue)
{
    const struct head *hd = &c->head;
    uint32_t conn[8];
    int nconn = collect_connection(hd, conn, 8);
    char xff_in[XFF_MAX];
    size_t xff_len = 0;
    bool xff_ok = true;
    const char *rid = NULL;
    size_t rid_len = 0;
    const char *proto = NULL; /* kept from a trusted peer (a TLS terminator in front) */

    c->scratch_len = 0;
    sb_str(c, http_method_str((enum http_method)c->parser.method));
    SB_LIT(c, " ");
    sb_add(c, hd->buf, hd->flen);
    if (c->parser.http_minor == 0)
        SB_LIT(c, " HTTP/1.0\r\n");
    else
        SB_LIT(c, " HTTP/1.1\r\n");
    for (uint32_t i = 0; i < hd->n; i++) {
        const char *name = hd->buf + hd->h[i].name;
        size_t nlen = hd->h[i].nlen, vlen;
        const char *v = hdr_value(hd, i, &vlen);
        if (!headers_value_ok(v, vlen))
            return false;
        if (headers_is_hop_by_hop(name, nlen) || (nconn && hdr_listed_in_connection(hd, i, conn, nconn)))
            continue;
        if (HDR_IS(hd, i, "host")) {
            *has_host = true;
        } else if (HDR_IS(hd, i, "x-forwarded-for")) {
            if (!c->trusted_peer)
                continue; /* anyone else's is forged until shown otherwise: replaced */
            if (vlen && xff_len + vlen + 2 < sizeof(xff_in)) {
                if (xff_len) {
                    memcpy(xff_in + xff_len, ", ", 2);
                    xff_len += 2;
                }
                memcpy(xff_in + xff_len, v, vlen);
                xff_len += vlen;
            } else if (vlen) {
                xff_ok = false;
            }
            continue;
        } else if (HDR_IS(hd, i, "x-forwarded-proto")) {
            if (c->trusted_peer && !proto && forwarded_proto_ok(v, vlen))
                proto = vlen == 5 ? "https" : "http";
            continue;
        } else if (HDR_IS(hd, i, "x-request-id")) {
            rid = v;
            rid_len = vlen;
            continue;
        } else if (HDR_IS(hd, i, "expect")) {
            if (vlen == 12 && strncasecmp(v, "100-continue", 12) == 0)
                *expect_continue = true;
            continue;
        }
        sb_header(c, name, nlen, v, vlen);
    }
    char xff[XFF_MAX + INET6_ADDRSTRLEN + 4];
    long n = xff_ok ? headers_build_xff(xff_in, xff_len, c->ip, xff, sizeof(xff)) : -1;
    if (n < 0)
        n = headers_build_xff(NULL, 0, c->ip, xff, sizeof(xff));
    SB_LIT(c, "X-Forwarded-For: ");
    sb_add(c, xff, (size_t)n);
    SB_LIT(c, "\r\nX-Forwarded-Proto: ");
    sb_str(c, c->io.ssl ? "https" : proto ? proto : "http");
    SB_LIT(c, "\r\nX-Request-Id: ");
    if (rid && request_id_valid(rid, rid_len)) {
        memcpy(c->reqid, rid, rid_len);
        c->reqid[rid_len] = '\0';
    } else {
        request_id_next(&c->bal->request_ids, c->reqid);
    }
    sb_str(c, c->reqid);
    SB_LIT(c, "\r\n\r\n");
    return true;
}

static void client_start_request(struct client *c)
{
    struct balancer *b = c->bal;
    http_parser *p = &c->parser;
    b->requests++;
    c->in_request = true;
    c->status = 0;
    c->resp_started = false;
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

    bool has_host = false, expect_continue = false;
    bool heads_ok = build_request_head(c, &has_host, &expect_continue);
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
    if (p->http_minor >= 1 && !has_host) {
        client_local(c, 400, "missing Host header");
        return;
    }
    if (expect_continue && c->has_body && p->http_minor >= 1) {
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
    evbuffer_add(c->up->io.out, c->scratch, c->scratch_len);
}

/* --- local answers ---------------------------------------------------------- */

static void client_local(struct client *c, int status, const char *msg)
{
    struct balancer *b = c->bal;
    client_drop_upstream(c);
    if (c->resp_started) {
        c->dead = true;
        return;
    }
    b->local_errors++;
    c->status = status;
    c->resp_started = true;
    if (!c->reqid[0])
        request_id_next(&b->request_ids, c->reqid);
    char answer[1024];
    size_t n = http_error_answer(answer, sizeof(answer), status, c->reqid, NULL, msg, c->head_req);
    evbuffer_add(c->io.out, answer, n);
    c->resp_bytes = (uint64_t)n;
    if (status >= 500)
        log_warn("answered %d to %s request_id=%s: %s", status, c->addr, c->reqid[0] ? c->reqid : "-", msg);
    access_log(c, NULL);
    c->in_request = false;
    c->closing = true;
    conn_read_off(&c->io);
    client_timer(c, T_NONE);
    if (conn_flush(&c->io, b->tv_client) < 0)
        c->dead = true;
}

/* The plain listener with BALANCER_HTTPS_REDIRECT: 308 to the same host (its
 * port replaced) and path over HTTPS. */
static void client_redirect_https(struct client *c)
{
    struct balancer *b = c->bal;
    const struct head *hd = &c->head;
    const char *host = NULL;
    size_t hlen = 0;
    for (uint32_t i = 0; i < hd->n && !host; i++)
        if (HDR_IS(hd, i, "host"))
            host = hdr_value(hd, i, &hlen);
    /* Only a plain name or address goes into Location (no header splitting, no userinfo). */
    size_t name_len = 0;
    if (host && hlen > 0 && host[0] == '[') {
        const char *end = memchr(host, ']', hlen);
        name_len = end ? (size_t)(end - host) + 1 : 0;
    } else if (host) {
        while (name_len < hlen && host[name_len] != ':')
            name_len++;
    }
    bool ok = name_len > 0 && name_len < 256 && hd->flen > 0 && hd->buf[0] == '/';
    for (size_t i = 0; ok && i < name_len; i++)
        ok = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-[]:", host[i]) != NULL;
    if (!ok) {
        client_local(c, 400, "a valid Host header is needed to redirect to HTTPS");
        return;
    }
    char port[16] = "";
    if (b->set.https_port != 443)
        snprintf(port, sizeof(port), ":%ld", b->set.https_port);
    b->local_errors++;
    c->status = 308;
    c->resp_started = true;
    c->scratch_len = 0;
    SB_LIT(c, "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://");
    sb_add(c, host, name_len);
    sb_str(c, port);
    sb_add(c, hd->buf, hd->flen);
    SB_LIT(c, "\r\nContent-Type: application/json\r\nContent-Length: 37\r\nConnection: close\r\n\r\n");
    evbuffer_add(c->io.out, c->scratch, c->scratch_len);
    c->resp_bytes = c->scratch_len;
    if (!c->head_req) {
        evbuffer_add(c->io.out, "{\"message\": \"this site uses HTTPS\"}\n", 37);
        c->resp_bytes += 37;
    }
    access_log(c, "https-redirect");
    c->in_request = false;
    c->closing = true;
    conn_read_off(&c->io);
    client_timer(c, T_NONE);
    if (conn_flush(&c->io, b->tv_client) < 0)
        c->dead = true;
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
    if (c->in_request && c->resp_started) {
        c->dead = true;
        return;
    }
    client_local(c, c->err_status, msg);
}

/* --- client request side ---------------------------------------------------- */

static void client_pause_read(struct client *c)
{
    conn_read_off(&c->io);
    c->read_paused = true;
}

static void client_resume_read(struct client *c)
{
    if (!c->read_paused || c->closing || c->dead)
        return;
    c->read_paused = false;
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
        if (c->in_request && c->resp_started)
            c->dead = true; /* a chunked body went bad after the answer began: nothing to say but close */
        else
            client_local(c, c->frame.status, c->frame.reason);
        return false;
    }
    if (c->frame_ok < v->iov_len)
        v->iov_len = c->frame_ok;
    return v->iov_len > 0;
}

static void client_process(struct client *c)
{
    struct balancer *b = c->bal;
    while (!c->closing && !c->dead) {
        if (c->rstate == R_DONE)
            break;
        if (c->rstate == R_BODY && c->up && evbuffer_get_length(c->up->io.out) > HIGH_WATER) {
            client_pause_read(c);
            break;
        }
        if (evbuffer_get_length(c->io.in) == 0)
            break;
        if (c->rstate == R_IDLE) {
            c->rstate = R_HEAD;
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
        if (c->rstate == R_HEAD) {
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
                    evbuffer_remove_buffer(c->io.in, c->up->io.out, k);
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
            c->rstate = R_BODY;
            c->skip_lf = true;
            client_start_request(c);
            if (c->closing || c->dead)
                break;
        }
        if (c->ev_message) {
            c->ev_message = false;
            c->rstate = R_DONE;
        }
        if (n == 0 && !c->ev_headers && err == HPE_OK)
            break;
    }
    if (c->closing || c->dead)
        return;
    switch (c->rstate) {
    case R_HEAD:
        if (c->timer_kind != T_HEADER)
            client_timer(c, T_HEADER);
        break;
    case R_BODY:
        client_timer(c, T_CLIENT);
        break;
    case R_DONE:
        client_timer(c, T_NONE);
        break;
    case R_IDLE:
        break;
    }
    struct upstream *up = c->up;
    if (up && up->state == U_BUSY && evbuffer_get_length(up->io.out) > 0 &&
        conn_flush(&up->io, b->tv_backend) < 0)
        event_active(&up->io.rev, EV_READ, 1); /* the read side reports the error */
}

/* --- response side ------------------------------------------------------------ */

/* True when the answer's body runs until the backend closes (no length, not chunked). */
static bool resp_needs_eof(const struct upstream *up)
{
    const http_parser *p = &up->parser;
    if (p->status_code < 200 || p->status_code == 204 || p->status_code == 304 || (p->flags & F_SKIPBODY))
        return false;
    return !(p->flags & F_CHUNKED) && p->content_length == ULLONG_MAX;
}

static void write_response_head(struct client *c, struct upstream *up)
{
    const struct head *hd = &up->head;
    int code = up->parser.status_code;
    uint32_t conn[8];
    int nconn = collect_connection(hd, conn, 8);
    bool has_rid = false;
    bool close = !c->keepalive || c->bal->draining || resp_needs_eof(up) || c->rstate != R_DONE || c->eof;
    c->close_after = close;
    c->scratch_len = 0;
    /* The status line by hand: snprintf here cost more than the rest of the head. */
    char line[32] = "HTTP/1.1 ";
    size_t n = 9;
    if (code >= 100 && code <= 999) {
        line[n++] = (char)('0' + code / 100);
        line[n++] = (char)('0' + code / 10 % 10);
        line[n++] = (char)('0' + code % 10);
        line[n++] = ' ';
    } else {
        n += (size_t)snprintf(line + n, sizeof(line) - n, "%d ", code);
    }
    sb_add(c, line, n);
    if (hd->flen)
        sb_add(c, hd->buf, hd->flen);
    else
        sb_str(c, http_status_str((enum http_status)code));
    SB_LIT(c, "\r\n");
    for (uint32_t i = 0; i < hd->n; i++) {
        const char *name = hd->buf + hd->h[i].name;
        size_t nlen = hd->h[i].nlen, vlen;
        const char *v = hdr_value(hd, i, &vlen);
        if (!headers_value_ok(v, vlen) || headers_is_hop_by_hop(name, nlen) ||
            (nconn && hdr_listed_in_connection(hd, i, conn, nconn)))
            continue;
        if (HDR_IS(hd, i, "x-request-id"))
            has_rid = true;
        sb_header(c, name, nlen, v, vlen);
    }
    if (!has_rid) {
        SB_LIT(c, "X-Request-Id: ");
        sb_str(c, c->reqid);
        SB_LIT(c, "\r\n");
    }
    if (c->io.ssl && c->bal->set.hsts_max_age > 0) {
        char hsts[64];
        int hn = snprintf(hsts, sizeof(hsts), "Strict-Transport-Security: max-age=%ld\r\n",
                          c->bal->set.hsts_max_age);
        sb_add(c, hsts, (size_t)hn);
    }
    if (close)
        SB_LIT(c, "Connection: close\r\n");
    else if (c->parser.http_minor == 0)
        SB_LIT(c, "Connection: keep-alive\r\n");
    SB_LIT(c, "\r\n");
    evbuffer_add(c->io.out, c->scratch, c->scratch_len);
    c->resp_bytes += c->scratch_len;
    c->status = code;
    c->resp_started = true;
}

static void upstream_done(struct upstream *up)
{
    struct client *c = up->client;
    struct backend *be = up->be;
    be->in_flight--;
    backend_record(be, c->status, clock_mono_us() - c->t_up);
    be->bytes_out += c->resp_bytes;
    backend_report_answer(be);
    bool reuse = !up->force_close && http_should_keep_alive(&up->parser) &&
                 evbuffer_get_length(up->io.in) == 0 && evbuffer_get_length(up->io.out) == 0 &&
                 c->rstate == R_DONE;
    c->up = NULL;
    up->client = NULL;
    if (reuse)
        pool_put(up);
    else
        upstream_free(up);
    client_response_done(c);
}

static void upstream_process(struct upstream *up)
{
    struct client *c = up->client;
    struct balancer *b = up->bal;
    while (up->client == c && c && !c->dead) {
        if (evbuffer_get_length(c->io.out) > HIGH_WATER) {
            conn_read_off(&up->io);
            up->paused = true;
            break;
        }
        if (evbuffer_get_length(up->io.in) == 0)
            break;
        struct evbuffer_iovec v;
        if (evbuffer_peek(up->io.in, -1, NULL, &v, 1) < 1)
            break;
        size_t n = http_parser_execute(&up->parser, &resp_settings, v.iov_base, v.iov_len);
        enum http_errno err = HTTP_PARSER_ERRNO(&up->parser);
        if (!up->head_done) {
            evbuffer_drain(up->io.in, n);
        } else {
            size_t k = n;
            if (up->skip_lf && k > 0) {
                evbuffer_drain(up->io.in, 1);
                k--;
                up->skip_lf = false;
            }
            if (k > 0) {
                evbuffer_remove_buffer(up->io.in, c->io.out, k);
                c->resp_bytes += k;
            }
        }
        if (err != HPE_OK && err != HPE_PAUSED) {
            char why[160];
            snprintf(why, sizeof(why), "invalid answer: %s%s", http_errno_description(err),
                     up->head.overflow ? " (head too large)" : "");
            upstream_failed(up, c->resp_started ? F_BROKEN : F_PROTOCOL, why);
            return;
        }
        if (up->ev_headers) {
            up->ev_headers = false;
            http_parser_pause(&up->parser, 0);
            if (up->parser.status_code < 200) {
                if (up->parser.status_code == 101) {
                    upstream_failed(up, F_PROTOCOL, "unexpected 101 Switching Protocols");
                    return;
                }
                up->skip_message = true; /* interim answer: the real one follows */
            } else {
                up->head_done = true;
                up->skip_lf = true;
                write_response_head(c, up);
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
            upstream_done(up);
            if (!c->dead && conn_flush(&c->io, b->tv_client) < 0)
                c->dead = true;
            return;
        }
        if (n == 0 && err == HPE_OK)
            break;
    }
    if (c && !c->dead && conn_flush(&c->io, b->tv_client) < 0)
        c->dead = true;
}

static void client_response_done(struct client *c)
{
    struct balancer *b = c->bal;
    access_log(c, NULL);
    c->in_request = false;
    if (c->rstate != R_DONE || c->close_after || !c->keepalive || b->draining || c->eof) {
        c->closing = true;
        conn_read_off(&c->io);
        client_timer(c, T_NONE);
        return;
    }
    c->rstate = R_IDLE;
    c->t_start = 0;
    http_parser_pause(&c->parser, 0);
    client_timer(c, T_IDLE);
    if (c->read_paused) {
        c->read_paused = false;
        conn_read_on(&c->io, NULL);
    }
    if (evbuffer_get_length(c->io.in) > 0)
        client_process(c);
}

/* --- upstream events ------------------------------------------------------------ */

static void upstream_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct upstream *up = arg;
    struct client *c = up->client;
    (void)fd;
    if (up->state == U_IDLE || !c) {
        /* An idle pooled connection that speaks, closes or times out is of no further use. */
        upstream_free(up);
        return;
    }
    if (what & EV_TIMEOUT) {
        upstream_failed(up, up->got_bytes ? F_BROKEN : F_TIMEOUT, "no answer in time");
        client_settle(c);
        return;
    }
    int n = conn_read(&up->io);
    if (n == -2)
        return;
    if (n > 0) {
        up->got_bytes = true;
        upstream_process(up);
        client_settle(c);
        return;
    }
    if (n == 0 && up->head_done && resp_needs_eof(up)) {
        http_parser_execute(&up->parser, &resp_settings, NULL, 0);
        if (up->ev_message) {
            up->ev_message = false;
            up->force_close = true;
            struct balancer *b = up->bal; /* upstream_done may free up */
            upstream_done(up);
            if (!c->dead && conn_flush(&c->io, b->tv_client) < 0)
                c->dead = true;
            client_settle(c);
            return;
        }
    }
    const char *why = n == 0 ? "connection closed before the answer was complete" : strerror(errno);
    upstream_failed(up, up->got_bytes ? F_BROKEN : F_RESET, why);
    client_settle(c);
}

static void upstream_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct upstream *up = arg;
    struct client *c = up->client;
    struct balancer *b = up->bal;
    if (up->state == U_CONNECTING) {
        int err = up->connect_errno;
        if (!err && (what & EV_TIMEOUT))
            err = ETIMEDOUT;
        if (!err) {
            socklen_t len = sizeof(err);
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
        }
        conn_write_off(&up->io);
        if (err) {
            upstream_failed(up, F_CONNECT, err == ETIMEDOUT ? "connect timed out" : strerror(err));
            if (c)
                client_settle(c);
            return;
        }
        up->state = U_BUSY;
        conn_read_on(&up->io, b->tv_backend);
        if (!c) {
            pool_put(up);
            return;
        }
    } else if (what & EV_TIMEOUT) {
        upstream_failed(up, up->got_bytes ? F_BROKEN : F_TIMEOUT, "backend does not read the request");
        if (c)
            client_settle(c);
        return;
    }
    if (conn_flush(&up->io, b->tv_backend) < 0) {
        upstream_failed(up, up->got_bytes ? F_BROKEN : F_RESET, strerror(errno));
        if (c)
            client_settle(c);
        return;
    }
    if (c) {
        if (evbuffer_get_length(up->io.out) < HIGH_WATER / 2)
            client_resume_read(c);
        client_settle(c);
    }
}

/* --- client events ---------------------------------------------------------------- */

static void client_free(struct client *c)
{
    struct balancer *b = c->bal;
    if (c->in_request && !c->resp_started) {
        c->status = 499; /* the client went away first (nginx's code for it) */
        access_log(c, "client-closed");
    }
    client_drop_upstream(c);
    if (c->timer_kind != T_NONE)
        event_del(&c->timer);
    conn_close(&c->io);
    free(c->head.buf);
    free(c->scratch);
    if (c->prev)
        c->prev->next = c->next;
    else
        b->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
    b->nclients--;
    balancer_client_closed(b);
}

/* Ends a closing connection once its answer is out: half-close, then read and
 * discard until the client closes too (or a short timer fires), so a client
 * still sending a refused body reads the answer instead of a reset. */
static void client_settle(struct client *c)
{
    if (c->dead) {
        client_free(c);
        return;
    }
    if (!c->closing || c->lingering || evbuffer_get_length(c->io.out) > 0)
        return;
    if (c->eof) {
        client_free(c);
        return;
    }
    conn_shutdown_write(&c->io);
    c->lingering = true;
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
    if (c->lingering) {
        evbuffer_drain(c->io.in, evbuffer_get_length(c->io.in));
        if (n <= 0)
            client_free(c);
        return;
    }
    if (n < 0 || (n == 0 && c->rstate != R_DONE)) {
        if (n == 0 && c->rstate == R_HEAD && evbuffer_get_length(c->io.in) > 0)
            log_debug("client %s closed in the middle of a request head", c->addr);
        c->eof = true;
        c->dead = true;
        client_settle(c);
        return;
    }
    if (n == 0) {
        /* Half-close after a whole request: answer it, then close (HAProxy's default). */
        c->eof = true;
        conn_read_off(&c->io);
        return;
    }
    if (c->rstate == R_DONE) {
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
        c->dead = true;
        client_settle(c);
        return;
    }
    if (conn_flush(&c->io, b->tv_client) < 0) {
        c->dead = true;
        client_settle(c);
        return;
    }
    struct upstream *up = c->up;
    if (up && up->paused && evbuffer_get_length(c->io.out) < HIGH_WATER / 2) {
        up->paused = false;
        conn_read_on(&up->io, b->tv_backend);
        upstream_process(up);
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
    switch (kind) {
    case T_HEADER:
        if (c->rstate == R_HEAD) {
            c->keepalive = false;
            client_local(c, 408, "request head not received in time");
        } else {
            c->dead = true; /* a new connection that never sent anything */
        }
        break;
    case T_CLIENT:
        if (c->rstate == R_BODY && !c->resp_started)
            client_local(c, 408, "request body not received in time");
        else
            c->dead = true;
        break;
    default:
        c->dead = true;
        break;
    }
    client_settle(c);
}

/* --- public --------------------------------------------------------------------- */

static struct client *client_accept(struct balancer *b, int fd, const struct sockaddr *sa);

void proxy_accept(struct balancer *b, int fd, const struct sockaddr *sa, socklen_t salen)
{
    (void)salen;
    client_accept(b, fd, sa);
}

void proxy_accept_tls(struct balancer *b, int fd, const struct sockaddr *sa, socklen_t salen)
{
    (void)salen;
    struct client *c = client_accept(b, fd, sa);
    if (c)
        conn_tls(&c->io, tls_session_new(b->tls, fd));
}

/* Sets up a client for fd, or refuses it over the limit (NULL). */
static struct client *client_accept(struct balancer *b, int fd, const struct sockaddr *sa)
{
    if (b->nclients >= b->set.max_connections || b->draining) {
        char reqid[REQUEST_ID_MAX + 1];
        request_id_next(&b->request_ids, reqid);
        char busy[1024];
        size_t n = http_error_answer(busy, sizeof(busy), 503, reqid, "Retry-After: 1\r\n",
                                     b->draining ? "shutting down" : "too many connections", false);
        ssize_t w = send(fd, busy, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        close(fd);
        b->rejected++;
        log_debug("connection refused: %ld clients (limit %ld)", b->nclients, b->set.max_connections);
        return NULL;
    }
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
    c->rstate = R_IDLE;
    conn_read_on(&c->io, NULL);
    /* A new connection gets the header timeout for its first request, not the long keep-alive one. */
    client_timer(c, T_HEADER);
    return c;
}

void proxy_drain(struct balancer *b)
{
    struct client *c = b->clients;
    while (c) {
        struct client *next = c->next;
        if (!c->in_request && c->rstate == R_IDLE && evbuffer_get_length(c->io.in) == 0) {
            c->dead = true;
            client_settle(c);
        }
        c = next;
    }
    for (size_t i = 0; i < b->nbackends; i++)
        proxy_pool_close(b->backends[i]);
}

void proxy_close_all(struct balancer *b)
{
    while (b->clients) {
        b->clients->dead = true;
        client_settle(b->clients);
    }
    for (size_t i = 0; i < b->nbackends; i++)
        proxy_pool_close(b->backends[i]);
    for (size_t i = 0; i < b->nretired; i++)
        proxy_pool_close(b->retired[i]);
}
