#include "shopd/ratelimit_client.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "shared/clock.h"
#include "shared/log.h"
#include "shared/rl_protocol.h"
#include "shared/xalloc.h"
#include "shopd/rl_lease.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
/* Checks waiting at once; past this ratelimitd is clearly not keeping up, so fail open at once. */
#define MAX_WAITING 10000
/* An answer line is short; a longer one means we are not talking to ratelimitd. */
#define MAX_ANSWER 512
/* Keys with a lease entry at once (a few hundred bytes each); past this, checks on
 * new keys go one by one until the sweep has made room. A hot key is seldom new. */
#define MAX_LEASE_KEYS 4096

enum conn_state { CS_DISCONNECTED, CS_CONNECTING, CS_CONNECTED };

struct pending {
    struct pending *next;
    rl_done_fn cb;
    void *arg;
    uint64_t deadline_us;
    bool answered;           /* timed out: its answer, when it comes, is dropped */
    bool lease_line;         /* sent as LEASE */
    struct rl_result result; /* in the ready list: what cb gets */
};

/* The checks waiting for an answer on one lease entry, oldest first. */
struct waitq {
    struct pending *head, *tail;
    long n;
};

/* One CHECK or LEASE sent for a lease entry: its answer goes to the entry. */
struct ask {
    struct rl_client *c;
    struct rl_lease *lease;
    long most;
};

struct rl_client {
    struct event_base *base;
    char *path;
    int timeout_ms;
    struct bufferevent *bev;
    enum conn_state state;
    /* Checks written and waiting for their answer, in order. Those that timed out are a
     * prefix [head, cursor): their answers still arrive and are dropped. */
    struct pending *head, *tail, *cursor;
    size_t waiting;
    /* Checks answered without asking (RL_UNAVAILABLE, or from a lease), delivered from the
     * loop by ready_ev. */
    struct pending *ready_head, *ready_tail;
    struct event *ready_ev;
    struct rl_lease_table *leases;
    struct event *sweep_ev;
    bool lease_refused; /* ratelimitd does not know LEASE: one token per ask */
    struct event *timeout_ev;
    struct event *reconnect_ev;
    int backoff_ms;
    bool outage_logged;
    uint64_t last_rx_us;
    time_t err_logged_at; /* ERR answers are logged at most once a second */
};

/* The lists of checks here are singly linked with a tail: the written ones, the ready
 * ones and each lease entry's waiting ones. */
static void list_append(struct pending **head, struct pending **tail, struct pending *p)
{
    p->next = NULL;
    if (*tail)
        (*tail)->next = p;
    else
        *head = p;
    *tail = p;
}

static struct pending *list_pop(struct pending **head, struct pending **tail)
{
    struct pending *p = *head;
    *head = p->next;
    if (!*head)
        *tail = NULL;
    p->next = NULL;
    return p;
}

static void unavailable(rl_done_fn cb, void *arg)
{
    struct rl_result r = {.verdict = RL_UNAVAILABLE};
    cb(&r, arg);
}

static void log_outage(struct rl_client *c, const char *why)
{
    if (c->outage_logged) {
        log_debug("ratelimitd %s: %s", c->path, why);
        return;
    }
    log_warn("ratelimitd unreachable at %s (%s); serving without rate limits until it is back", c->path, why);
    c->outage_logged = true;
}

static void schedule_reconnect(struct rl_client *c)
{
    if (evtimer_pending(c->reconnect_ev, NULL))
        return;
    struct timeval tv = clock_ms_tv(c->backoff_ms);
    evtimer_add(c->reconnect_ev, &tv);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

/* Drops the connection and answers every waiting check RL_UNAVAILABLE. Runs only from
 * event-loop callbacks (or rl_client_free), never inside rl_client_check. */
static void disconnect(struct rl_client *c, const char *why, bool reconnect)
{
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    c->state = CS_DISCONNECTED;
    evtimer_del(c->timeout_ev);
    struct pending *p = c->head;
    c->head = c->tail = c->cursor = NULL;
    c->waiting = 0;
    if (reconnect) {
        log_outage(c, why);
        schedule_reconnect(c);
    }
    while (p) {
        struct pending *next = p->next;
        if (!p->answered)
            unavailable(p->cb, p->arg);
        free(p);
        p = next;
    }
}

static void arm_timeout(struct rl_client *c)
{
    if (!c->cursor) {
        evtimer_del(c->timeout_ev);
        return;
    }
    uint64_t now = clock_mono_us();
    uint64_t wait = c->cursor->deadline_us > now ? c->cursor->deadline_us - now : 0;
    struct timeval tv = {(time_t)(wait / 1000000), (suseconds_t)(wait % 1000000)};
    evtimer_add(c->timeout_ev, &tv);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct rl_client *c = arg;
    uint64_t now = clock_mono_us();
    bool expired = false;
    while (c->cursor && c->cursor->deadline_us <= now) {
        struct pending *p = c->cursor;
        c->cursor = p->next;
        p->answered = true;
        expired = true;
        unavailable(p->cb, p->arg);
    }
    /* Silence well past the timeout with checks outstanding: ratelimitd is stuck (stopped,
     * overloaded). Start over on a fresh connection rather than pile up more checks. */
    uint64_t stall_us = (uint64_t)(c->timeout_ms * 5 > 1000 ? c->timeout_ms * 5 : 1000) * 1000;
    if (expired && c->state == CS_CONNECTED && now - c->last_rx_us > stall_us) {
        disconnect(c, "not answering", true);
        return;
    }
    arm_timeout(c);
}

/* ratelimitd's answer in the client's terms; -1 for ERR or garbage. */
static int parse_answer(const char *line, size_t len, struct rl_result *r)
{
    struct rl_proto_answer a;
    memset(r, 0, sizeof(*r));
    if (rl_proto_parse_answer(line, len, &a) < 0)
        return -1;
    r->verdict = a.verdict == RL_PROTO_ALLOW ? RL_ALLOW : RL_DENY;
    r->limit = a.limit;
    r->remaining = a.remaining;
    r->reset_seconds = a.reset_s;
    r->retry_after_ms = a.retry_after_ms;
    r->window_seconds = a.window_s;
    r->granted = a.verdict == RL_PROTO_ALLOW ? a.granted : 0;
    return 0;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct rl_client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    c->last_rx_us = clock_mono_us();
    char *line;
    size_t len;
    while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF))) {
        struct pending *p = c->head;
        if (!p) {
            free(line);
            disconnect(c, "answer without a question", true);
            return;
        }
        if (c->cursor == p)
            c->cursor = p->next;
        list_pop(&c->head, &c->tail);
        c->waiting--;
        if (!p->answered) {
            struct rl_result r;
            if (parse_answer(line, len, &r) < 0) {
                time_t now = time(NULL);
                if (now != c->err_logged_at) {
                    /* A misconfigured rule would otherwise log on every request. */
                    log_warn("ratelimitd answered '%.80s'; serving the request anyway", line);
                    c->err_logged_at = now;
                }
                if (p->lease_line && strncmp(line, "ERR unknown command", 19) == 0 && !c->lease_refused) {
                    log_warn("ratelimitd at %s does not take LEASE (an older version); asking for every "
                             "check",
                             c->path);
                    c->lease_refused = true;
                }
                r.verdict = RL_UNAVAILABLE;
            }
            p->cb(&r, p->arg);
        }
        free(p);
        free(line);
        if (!c->bev)
            return; /* a callback's rl_client_check cannot disconnect, but stay safe */
    }
    if (evbuffer_get_length(in) > MAX_ANSWER) {
        disconnect(c, "answer line too long", true);
        return;
    }
    arm_timeout(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct rl_client *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        c->state = CS_CONNECTED;
        c->backoff_ms = BACKOFF_MIN_MS;
        c->last_rx_us = clock_mono_us();
        if (c->outage_logged)
            log_info("ratelimitd reachable again at %s", c->path);
        c->outage_logged = false;
        return;
    }
    char why[128];
    if (what & BEV_EVENT_EOF)
        snprintf(why, sizeof(why), "connection closed");
    else
        snprintf(why, sizeof(why), "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    disconnect(c, why, true);
}

static void start_connect(struct rl_client *c)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(c->path) >= sizeof(sun.sun_path)) {
        log_outage(c, "socket path too long");
        return; /* stays disconnected: every check fails open */
    }
    strcpy(sun.sun_path, c->path);
    c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->state = CS_CONNECTING;
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        bufferevent_free(c->bev);
        c->bev = NULL;
        c->state = CS_DISCONNECTED;
        log_outage(c, strerror(errno));
        schedule_reconnect(c);
    }
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    start_connect(arg);
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    struct rl_client *c = arg;
    /* Until empty: a callback may check again, and rl_client_free needs every one answered. */
    while (c->ready_head) {
        struct pending *p = c->ready_head;
        c->ready_head = c->ready_tail = NULL;
        while (p) {
            struct pending *next = p->next;
            p->cb(&p->result, p->arg);
            free(p);
            p = next;
        }
    }
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct rl_client *c = arg;
    rl_lease_sweep(c->leases, clock_mono_us());
}

struct rl_client *rl_client_new(struct event_base *base, const char *socket_path, int timeout_ms)
{
    struct rl_client *c = xcalloc(1, sizeof(*c));
    c->base = base;
    c->path = xstrdup(socket_path);
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->ready_ev = event_new(base, -1, 0, on_ready, c);
    c->timeout_ev = evtimer_new(base, on_timeout, c);
    c->reconnect_ev = evtimer_new(base, on_reconnect, c);
    c->leases = rl_lease_table_new(MAX_LEASE_KEYS);
    c->sweep_ev = event_new(base, -1, EV_PERSIST, on_sweep, c);
    struct timeval sweep_tv = {1, 0};
    evtimer_add(c->sweep_ev, &sweep_tv);
    start_connect(c);
    return c;
}

/* Answers cb with res from the loop, not from inside rl_client_check. */
static void deliver_later(struct rl_client *c, rl_done_fn cb, void *arg, const struct rl_result *res)
{
    struct pending *p = xcalloc(1, sizeof(*p));
    p->cb = cb;
    p->arg = arg;
    p->result = *res;
    list_append(&c->ready_head, &c->ready_tail, p);
    event_active(c->ready_ev, EV_TIMEOUT, 0);
}

/* Sends one request line and waits for its answer in order; when ratelimitd cannot be
 * asked now, cb gets RL_UNAVAILABLE from the loop. */
static void send_line(struct rl_client *c, const char *line, size_t n, bool lease_line, rl_done_fn cb,
                      void *arg)
{
    if (c->state == CS_DISCONNECTED || c->waiting >= MAX_WAITING) {
        struct rl_result r = {.verdict = RL_UNAVAILABLE};
        deliver_later(c, cb, arg, &r);
        return;
    }
    struct pending *p = xcalloc(1, sizeof(*p));
    p->cb = cb;
    p->arg = arg;
    p->lease_line = lease_line;
    evbuffer_add(bufferevent_get_output(c->bev), line, n);
    p->deadline_us = clock_mono_us() + (uint64_t)c->timeout_ms * 1000;
    list_append(&c->head, &c->tail, p);
    c->waiting++;
    if (!c->cursor) {
        c->cursor = p;
        arm_timeout(c);
    }
}

static void on_ask_answered(const struct rl_result *res, void *arg);

/* Sends one ask of most tokens for l: a LEASE line, or a plain CHECK for one. */
static void send_ask(struct rl_client *c, struct rl_lease *l, long most)
{
    struct ask *a = xmalloc(sizeof(*a));
    a->c = c;
    a->lease = l;
    a->most = most;
    char line[RL_PROTO_CHECK_LINE_MAX];
    size_t n = most > 1 ? rl_proto_format_lease(line, sizeof(line), rl_lease_rule(l), rl_lease_key(l), most)
                        : rl_proto_format_check(line, sizeof(line), rl_lease_rule(l), rl_lease_key(l), 1);
    rl_lease_asked(l, most);
    send_line(c, line, n, most > 1, on_ask_answered, a);
}

/* Asks for the checks waiting on l that no ask in flight covers. */
static void ask_for_waiting(struct rl_client *c, struct rl_lease *l)
{
    struct waitq *q = *rl_lease_caller_data(l);
    long uncovered = (q ? q->n : 0) - rl_lease_in_flight(l);
    while (uncovered > 0) {
        long most = c->lease_refused ? 1 : rl_lease_ask_size(l, uncovered);
        send_ask(c, l, most);
        uncovered -= most;
    }
}

/* Asks for l's next lease while its tokens still decide checks (rl_lease_should_renew):
 * the answer adds to what is left, so a hot key's checks never wait for it. */
static void renew_ahead(struct rl_client *c, struct rl_lease *l)
{
    if (!c->lease_refused) /* a ratelimitd without leases: one token per ask, nothing to win ahead */
        send_ask(c, l, rl_lease_ask_size(l, 0));
}

/* An answer for a lease entry: the waiting checks it decides are answered in order; when
 * it failed, so do the oldest waiting checks that no other ask in flight covers. */
static void on_ask_answered(const struct rl_result *res, void *arg)
{
    struct ask *a = arg;
    struct rl_client *c = a->c;
    struct rl_lease *l = a->lease;
    uint64_t now = clock_mono_us();
    rl_lease_answered(l, a->most, res, now);
    free(a);
    void **data = rl_lease_caller_data(l);
    struct waitq *q = *data;
    /* Taken off the queue first and called last, so that a callback checking again
       finds the entry consistent. */
    struct pending *done = NULL, *done_tail = NULL;
    while (q && q->head) {
        struct pending *p = q->head;
        if (!rl_lease_decide(l, now, &p->result)) {
            if (res->verdict != RL_UNAVAILABLE || q->n <= rl_lease_in_flight(l))
                break;
            memset(&p->result, 0, sizeof(p->result));
            p->result.verdict = RL_UNAVAILABLE;
        }
        list_append(&done, &done_tail, list_pop(&q->head, &q->tail));
        q->n--;
    }
    if (q && !q->head) {
        free(q);
        *data = NULL;
    } else if (q) {
        ask_for_waiting(c, l);
    }
    while (done) {
        struct pending *next = done->next;
        done->cb(&done->result, done->arg);
        free(done);
        done = next;
    }
}

/* Queues a check on l behind the checks already waiting on it, so that the key's
 * answers keep their order, and asks for what the asks in flight do not cover. */
static void wait_on_lease(struct rl_client *c, struct rl_lease *l, rl_done_fn cb, void *arg)
{
    void **data = rl_lease_caller_data(l);
    struct waitq *q = *data;
    if (!q)
        q = *data = xcalloc(1, sizeof(*q));
    struct pending *p = xcalloc(1, sizeof(*p));
    p->cb = cb;
    p->arg = arg;
    list_append(&q->head, &q->tail, p);
    q->n++;
    ask_for_waiting(c, l);
}

static void send_check(struct rl_client *c, const char *rule, const char *key, int cost, rl_done_fn cb,
                       void *arg)
{
    char line[RL_PROTO_CHECK_LINE_MAX];
    size_t n = rl_proto_format_check(line, sizeof(line), rule, key, cost);
    send_line(c, line, n, false, cb, arg);
}

bool rl_client_check_token(struct rl_client *c, const char *rule, const char *key, struct rl_result *decided,
                           rl_done_fn cb, void *arg)
{
    char clean_rule[RL_PROTO_MAX_RULE + 1], clean_key[RL_PROTO_MAX_KEY + 1];
    rl_proto_clean_rule(clean_rule, rule);
    rl_proto_clean_key(clean_key, key);
    uint64_t now = clock_mono_us();
    struct rl_lease *l = rl_lease_get(c->leases, clean_rule, clean_key, now);
    if (!l) {
        send_check(c, rule, key, 1, cb, arg);
        return false;
    }
    /* Checks waiting on the key go first: answers on one key keep their order. */
    if (!*rl_lease_caller_data(l) && rl_lease_decide(l, now, decided)) {
        if (rl_lease_should_renew(l, now))
            renew_ahead(c, l);
        return true;
    }
    wait_on_lease(c, l, cb, arg);
    return false;
}

void rl_client_check(struct rl_client *c, const char *rule, const char *key, int cost, rl_done_fn cb,
                     void *arg)
{
    struct rl_result decided;
    if (cost != 1)
        send_check(c, rule, key, cost, cb, arg);
    else if (rl_client_check_token(c, rule, key, &decided, cb, arg))
        deliver_later(c, cb, arg, &decided);
}

int rl_client_unanswered(const struct rl_client *c)
{
    return c->waiting;
}

void rl_client_free(struct rl_client *c)
{
    if (!c)
        return;
    disconnect(c, "closing", false);
    on_ready(-1, 0, c);
    event_free(c->ready_ev);
    event_free(c->sweep_ev);
    rl_lease_table_free(c->leases);
    event_free(c->timeout_ev);
    event_free(c->reconnect_ev);
    free(c->path);
    free(c);
}

/* True for the fields rl_add_headers writes (names compared without case). */
static bool budget_field(const char *name)
{
    static const char *const fields[] = {"RateLimit-Limit",  "RateLimit-Remaining", "RateLimit-Reset",
                                         "RateLimit-Policy", "RateLimit",           "Retry-After"};
    if (name[0] != 'R' && name[0] != 'r')
        return false;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (strcasecmp(name, fields[i]) == 0)
            return true;
    return false;
}

/* Writes v in decimal at p; returns the end. */
static char *put_long(char *p, long v)
{
    char digits[24];
    int n = 0;
    unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *p++ = '-';
    while (n)
        *p++ = digits[--n];
    *p = '\0';
    return p;
}

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n + 1);
    return p + n;
}

void rl_add_headers(struct evkeyvalq *headers, const char *rule, const struct rl_result *res)
{
    if (res->verdict == RL_UNAVAILABLE)
        return;
    /* Called for every checked request: one pass over the headers and no printf, which
       showed in profiles. */
    struct evkeyval *kv = TAILQ_FIRST(headers);
    while (kv) {
        struct evkeyval *next = TAILQ_NEXT(kv, next);
        if (budget_field(kv->key))
            evhttp_remove_header(headers, kv->key);
        kv = next;
    }
    /* The policy name is a structured-field String: keep it to characters that need no escaping. */
    char name[RL_PROTO_MAX_RULE + 1];
    rl_proto_clean_rule(name, rule);
    long remaining = res->verdict == RL_DENY ? 0 : res->remaining;
    long reset = res->reset_seconds;
    long retry_s = 0;
    if (res->verdict == RL_DENY) {
        retry_s = (res->retry_after_ms + 999) / 1000;
        if (retry_s < 1)
            retry_s = 1;
        reset = retry_s;
    }
    char buf[160], *p;
    put_long(buf, res->limit);
    evhttp_add_header(headers, "RateLimit-Limit", buf);
    put_long(buf, remaining);
    evhttp_add_header(headers, "RateLimit-Remaining", buf);
    put_long(buf, reset);
    evhttp_add_header(headers, "RateLimit-Reset", buf);
    p = put_str(buf, "\"");
    p = put_str(p, name);
    p = put_str(p, "\";q=");
    p = put_long(p, res->limit);
    if (res->window_seconds > 0) {
        p = put_str(p, ";w=");
        put_long(p, res->window_seconds);
    }
    evhttp_add_header(headers, "RateLimit-Policy", buf);
    p = put_str(buf, "\"");
    p = put_str(p, name);
    p = put_str(p, "\";r=");
    p = put_long(p, remaining);
    p = put_str(p, ";t=");
    put_long(p, reset);
    evhttp_add_header(headers, "RateLimit", buf);
    if (res->verdict == RL_DENY) {
        put_long(buf, retry_s);
        evhttp_add_header(headers, "Retry-After", buf);
    }
}
