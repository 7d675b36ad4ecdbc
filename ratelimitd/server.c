#include "ratelimitd/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shared/rl_protocol.h"
#include "shared/config.h"
#include "shared/log.h"
#include "shared/xalloc.h"

/* Answers a connection may owe before we stop reading from it. */
#define MAX_PENDING 1024
/* Unsent output above which we stop reading; reading resumes once it drains below OUT_LOW. */
#define OUT_HIGH (256 * 1024)
#define OUT_LOW (64 * 1024)
/* Input buffered per connection: enough for whole lines, small enough that searching for
 * the line end stays cheap and a line without end cannot grow memory. */
#define IN_HIGH (64 * 1024)

struct conn;

struct slot {
    struct slot *next;
    struct conn *conn;
    const struct rld_rule *rule;
    size_t rule_index; /* in the rule set of generation rules_generation */
    unsigned rules_generation;
    char *shadow_key; /* copy of the key, only for shadow rules (for the log line) */
    bool ready;
    bool lease; /* a LEASE: its ALLOW says how many tokens were granted */
    bool stats; /* formatted when it reaches the head, so it counts the answers before it */
    size_t len;
    char text[384];
};

struct conn {
    struct rld_server *srv;
    struct bufferevent *bev; /* NULL once the socket is gone but answers are still owed */
    struct slot *head, *tail;
    size_t pending;
    bool closing;    /* read no more; close once everything owed is written */
    bool processing; /* inside process_lines: do not free */
    struct conn *prev, *next;
};

struct rld_server {
    struct event_base *base;
    const struct rld_rules *rules;
    unsigned rules_generation; /* bumped by each rld_server_set_rules */
    struct rld_store *store;
    struct rld_stats *stats;
    long max_connections;
    char *unix_path;
    struct evconnlistener *unix_listener;
    struct evconnlistener *tcp_listener;
    struct conn *conns;
    bool shutting_down;
    void (*done)(void *arg);
    void *done_arg;
    struct event *done_ev;
    time_t shadow_log_at; /* shadow refusals are logged at most once a second */
    unsigned long shadow_unlogged;
};

static void conn_free(struct conn *c);

static void maybe_done(struct rld_server *srv)
{
    if (srv->shutting_down && !srv->conns && srv->done_ev)
        event_active(srv->done_ev, EV_TIMEOUT, 0);
}

/* Frees the connection when it has nothing left to do. */
static void conn_maybe_finish(struct conn *c)
{
    if (c->processing || c->pending)
        return;
    if (!c->bev) {
        conn_free(c);
        return;
    }
    if (c->closing && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        conn_free(c);
}

static void conn_free(struct conn *c)
{
    struct rld_server *srv = c->srv;
    if (c->bev)
        bufferevent_free(c->bev);
    c->bev = NULL;
    if (c->pending)
        return; /* slots still owed by the store point at c: freed when the last one arrives */
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->stats->connections--;
    free(c);
    maybe_done(srv);
}

static void flush_ready(struct conn *c)
{
    while (c->head && (c->head->ready || c->head->stats)) {
        struct slot *s = c->head;
        if (s->stats) {
            s->len = rld_stats_format(c->srv->stats, s->text, sizeof(s->text));
        }
        if (c->bev)
            bufferevent_write(c->bev, s->text, s->len);
        c->head = s->next;
        if (!c->head)
            c->tail = NULL;
        c->pending--;
        free(s->shadow_key);
        free(s);
    }
}

static struct slot *slot_push(struct conn *c)
{
    struct slot *s = xmalloc(sizeof(*s));
    s->next = NULL;
    s->conn = c;
    s->rule = NULL;
    s->shadow_key = NULL;
    s->ready = false;
    s->lease = false;
    s->stats = false;
    s->len = 0;
    if (c->tail)
        c->tail->next = s;
    else
        c->head = s;
    c->tail = s;
    c->pending++;
    return s;
}

static void push_text(struct conn *c, const char *text, size_t len)
{
    struct slot *s = slot_push(c);
    if (len >= sizeof(s->text))
        len = sizeof(s->text) - 1;
    memcpy(s->text, text, len);
    s->len = len;
    s->ready = true;
    flush_ready(c);
}

static void push_err(struct conn *c, const char *reason)
{
    char buf[128];
    c->srv->stats->errors++;
    push_text(c, buf, rl_proto_format_err(buf, sizeof(buf), reason));
}

static void log_shadow(struct rld_server *srv, const struct rld_rule *rule, const char *key)
{
    time_t now = time(NULL);
    if (now == srv->shadow_log_at) {
        srv->shadow_unlogged++;
        return;
    }
    log_info("shadow rule %s would refuse key %s (%lu more refusals not logged)", rule->name, key,
             srv->shadow_unlogged);
    srv->shadow_log_at = now;
    srv->shadow_unlogged = 0;
}

/* An ALLOW into s: a LEASE's says how many tokens it was granted, and counts them. */
static void format_allow(struct rld_server *srv, struct slot *s, const struct rld_decision *d, long remaining,
                         long granted)
{
    if (!s->lease) {
        s->len =
            rl_proto_format_allow(s->text, sizeof(s->text), d->limit, remaining, d->reset_s, d->window_s);
        return;
    }
    srv->stats->lease_tokens += (uint64_t)granted;
    s->len = rl_proto_format_granted(s->text, sizeof(s->text), d->limit, remaining, d->reset_s, d->window_s,
                                     granted);
}

static void on_decision(const struct rld_decision *d, void *arg)
{
    struct slot *s = arg;
    struct conn *c = s->conn;
    struct rld_server *srv = c->srv;
    /* A decision asked for before a reload counts in the totals but not per rule:
       its index belongs to the old rule set. */
    size_t rule_index = s->rules_generation == srv->rules_generation ? s->rule_index : SIZE_MAX;
    srv->stats->decisions++;
    if (d->allowed) {
        srv->stats->allowed++;
        rld_stats_rule_result(srv->stats, rule_index, RLD_RESULT_ALLOWED);
        format_allow(srv, s, d, d->remaining, d->granted);
    } else if (s->rule->shadow) {
        srv->stats->allowed++;
        srv->stats->shadow_denied++;
        rld_stats_rule_result(srv->stats, rule_index, RLD_RESULT_SHADOW_DENIED);
        log_shadow(srv, s->rule, s->shadow_key ? s->shadow_key : "");
        format_allow(srv, s, d, 0, 1);
    } else {
        srv->stats->denied++;
        rld_stats_rule_result(srv->stats, rule_index, RLD_RESULT_DENIED);
        s->len = rl_proto_format_deny(s->text, sizeof(s->text), d->limit, d->retry_after_ms, d->window_s);
    }
    s->ready = true;
    flush_ready(c);
    conn_maybe_finish(c);
}

static void handle_line(struct conn *c, const char *line, size_t len)
{
    struct rld_server *srv = c->srv;
    struct rl_proto_cmd cmd;
    const char *reason;
    if (rl_proto_parse(line, len, &cmd, &reason) < 0) {
        push_err(c, reason);
        return;
    }
    if (cmd.type == RL_PROTO_CMD_PING) {
        push_text(c, "PONG\r\n", 6);
        return;
    }
    if (cmd.type == RL_PROTO_CMD_STATS) {
        slot_push(c)->stats = true;
        flush_ready(c);
        return;
    }
    const struct rld_rule *rule = rld_rules_find(srv->rules, cmd.rule, cmd.rule_len);
    if (!rule) {
        push_err(c, "unknown rule");
        return;
    }
    if (cmd.cost > rule->burst) {
        push_err(c, "cost exceeds burst");
        return;
    }
    struct slot *s = slot_push(c);
    s->rule = rule;
    s->rule_index = (size_t)(rule - srv->rules->rules);
    s->rules_generation = srv->rules_generation;
    if (rule->shadow)
        s->shadow_key = xstrndup(cmd.key, cmd.key_len);
    if (cmd.type == RL_PROTO_CMD_LEASE) {
        /* A shadow rule leases one token at a time, so that each request that would be
           refused is seen and logged here. */
        s->lease = true;
        rld_store_lease(srv->store, rule, cmd.key, cmd.key_len, rule->shadow ? 1 : cmd.most, on_decision, s);
        return;
    }
    rld_store_check(srv->store, rule, cmd.key, cmd.key_len, cmd.cost, on_decision, s);
}

static bool over_limits(struct conn *c)
{
    return c->pending >= MAX_PENDING || evbuffer_get_length(bufferevent_get_output(c->bev)) >= OUT_HIGH;
}

static void process_lines(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    char line[RL_PROTO_MAX_LINE + 2];
    c->processing = true;
    while (!c->closing) {
        if (over_limits(c)) {
            bufferevent_disable(c->bev, EV_READ);
            break;
        }
        size_t eol_len = 0;
        struct evbuffer_ptr pos = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
        size_t avail = evbuffer_get_length(in);
        if (pos.pos < 0 ? avail > RL_PROTO_MAX_LINE + 1 : (size_t)pos.pos > RL_PROTO_MAX_LINE + 1) {
            /* +1 leaves room for the '\r' of "\r\n". */
            push_err(c, "line too long");
            c->closing = true;
            bufferevent_disable(c->bev, EV_READ);
            evbuffer_drain(in, avail);
            break;
        }
        if (pos.pos < 0)
            break;
        size_t n = (size_t)pos.pos;
        evbuffer_remove(in, line, n + 1);
        if (n > 0 && line[n - 1] == '\r')
            n--;
        handle_line(c, line, n);
    }
    c->processing = false;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    process_lines(c);
    conn_maybe_finish(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (!c->closing && !c->srv->shutting_down && !over_limits(c)) {
        bufferevent_enable(bev, EV_READ);
        process_lines(c); /* lines may already sit in the input buffer */
    }
    conn_maybe_finish(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if (what & BEV_EVENT_EOF) {
        /* The client may have half-closed after its last request: it still gets its answers. */
        c->closing = true;
        if (evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
            c->closing = false;
            process_lines(c);
            c->closing = true;
        }
        if (c->pending == 0 && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
            conn_free(c);
            return;
        }
        bufferevent_disable(bev, EV_READ);
        return;
    }
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        conn_free(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    struct rld_server *srv = arg;
    if (srv->shutting_down || srv->stats->connections >= srv->max_connections) {
        static const char msg[] = "ERR too many connections\r\n";
        if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            log_debug("refused connection: %s", strerror(errno));
        evutil_closesocket(fd);
        static time_t logged_at;
        time_t now = time(NULL);
        if (now != logged_at) {
            log_warn("refusing connections: %ld open, the limit", srv->stats->connections);
            logged_at = now;
        }
        return;
    }
    struct bufferevent *bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        evutil_closesocket(fd);
        return;
    }
    struct conn *c = xcalloc(1, sizeof(*c));
    c->srv = srv;
    c->bev = bev;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->stats->connections++;
    bufferevent_setcb(bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(bev, EV_READ, 0, IN_HIGH);
    bufferevent_setwatermark(bev, EV_WRITE, OUT_LOW, 0);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    log_warn("accept: %s", evutil_socket_error_to_string(err));
}

int rld_server_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}

static int make_parent_dirs(const char *path)
{
    char *copy = xstrdup(path);
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(copy, 0750) < 0 && errno != EEXIST) {
            free(copy);
            return -1;
        }
        *p = '/';
    }
    free(copy);
    return 0;
}

static struct evconnlistener *listen_unix(struct rld_server *srv, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "RATELIMITD_SOCKET: path longer than %zu bytes", sizeof(sun.sun_path) - 1);
        return NULL;
    }
    strcpy(sun.sun_path, path);
    if (make_parent_dirs(path) < 0) {
        snprintf(err, errlen, "RATELIMITD_SOCKET: cannot create the folder of %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "RATELIMITD_SOCKET: %s exists and is not a socket", path);
            return NULL;
        }
        /* A socket that accepts belongs to a running daemon; one that refuses is stale. */
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
            close(fd);
            snprintf(err, errlen, "RATELIMITD_SOCKET: %s is in use by a running process", path);
            return NULL;
        }
        if (fd >= 0)
            close(fd);
        unlink(path);
    }
    struct evconnlistener *l =
        evconnlistener_new_bind(srv->base, on_accept, srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 511,
                                (struct sockaddr *)&sun, sizeof(sun));
    if (!l) {
        snprintf(err, errlen, "RATELIMITD_SOCKET: cannot listen on %s: %s", path, strerror(errno));
        return NULL;
    }
    if (chmod(path, 0660) < 0)
        log_warn("chmod 0660 %s: %s", path, strerror(errno));
    evconnlistener_set_error_cb(l, on_accept_error);
    return l;
}

static struct evconnlistener *listen_tcp(struct rld_server *srv, const char *spec, char *err, size_t errlen)
{
    char host[256];
    int port;
    if (config_parse_hostport(spec, host, sizeof(host), &port) < 0 || port < 1 || port > 65535) {
        snprintf(err, errlen, "RATELIMITD_TCP: expected host:port, got '%.60s'", spec);
        return NULL;
    }
    if (!rld_server_is_loopback(host)) {
        snprintf(err, errlen,
                 "RATELIMITD_TCP: %s is not a loopback address; ratelimitd has no authentication "
                 "and listens on 127.0.0.1 or ::1 only",
                 host);
        return NULL;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sslen;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sslen = sizeof(*s4);
    } else {
        inet_pton(AF_INET6, host, &s6->sin6_addr);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sslen = sizeof(*s6);
    }
    struct evconnlistener *l = evconnlistener_new_bind(
        srv->base, on_accept, srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE, 511,
        (struct sockaddr *)&ss, (int)sslen);
    if (!l) {
        snprintf(err, errlen, "RATELIMITD_TCP: cannot listen on %s: %s", spec, strerror(errno));
        return NULL;
    }
    evconnlistener_set_error_cb(l, on_accept_error);
    return l;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct rld_server *srv = arg;
    if (srv->done)
        srv->done(srv->done_arg);
}

struct rld_server *rld_server_new(struct event_base *base, const struct rld_server_config *cfg,
                                  const struct rld_rules *rules, struct rld_store *store,
                                  struct rld_stats *stats, char *err, size_t errlen)
{
    struct rld_server *srv = xcalloc(1, sizeof(*srv));
    srv->base = base;
    srv->rules = rules;
    srv->store = store;
    srv->stats = stats;
    srv->max_connections = cfg->max_connections;
    if (cfg->tcp && cfg->tcp[0]) {
        srv->tcp_listener = listen_tcp(srv, cfg->tcp, err, errlen);
        if (!srv->tcp_listener)
            goto fail;
    }
    srv->unix_listener = listen_unix(srv, cfg->unix_path, err, errlen);
    if (!srv->unix_listener)
        goto fail;
    srv->unix_path = xstrdup(cfg->unix_path);
    srv->done_ev = event_new(base, -1, 0, on_done, srv);
    return srv;
fail:
    if (srv->tcp_listener)
        evconnlistener_free(srv->tcp_listener);
    free(srv);
    return NULL;
}

static void stop_listening(struct rld_server *srv)
{
    if (srv->unix_listener) {
        evconnlistener_free(srv->unix_listener);
        srv->unix_listener = NULL;
        unlink(srv->unix_path);
    }
    if (srv->tcp_listener) {
        evconnlistener_free(srv->tcp_listener);
        srv->tcp_listener = NULL;
    }
}

void rld_server_shutdown(struct rld_server *srv, void (*done)(void *arg), void *arg)
{
    srv->shutting_down = true;
    srv->done = done;
    srv->done_arg = arg;
    stop_listening(srv);
    struct conn *c = srv->conns;
    while (c) {
        struct conn *next = c->next;
        if (c->bev) {
            /* Lines already received are answered; nothing more is read. */
            if (!c->closing)
                process_lines(c);
            c->closing = true;
            bufferevent_disable(c->bev, EV_READ);
        }
        conn_maybe_finish(c);
        c = next;
    }
    maybe_done(srv);
}

void rld_server_free(struct rld_server *srv)
{
    if (!srv)
        return;
    stop_listening(srv);
    while (srv->conns) {
        struct conn *c = srv->conns;
        while (c->head) {
            struct slot *s = c->head;
            c->head = s->next;
            free(s->shadow_key);
            free(s);
        }
        c->tail = NULL;
        c->pending = 0;
        c->processing = false;
        conn_free(c);
    }
    if (srv->done_ev)
        event_free(srv->done_ev);
    free(srv->unix_path);
    free(srv);
}

void rld_server_set_rules(struct rld_server *srv, const struct rld_rules *rules)
{
    srv->rules = rules;
    srv->rules_generation++;
}
