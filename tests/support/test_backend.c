#include "test_backend.h"

#include "harness.h"
#include "shared/clock.h"
#include "shared/xalloc.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct test_backend {
    pid_t pid;
    int port;
};

struct server {
    struct event_base *base;
    const char *name;
    int health;
    int delay_ms;
    unsigned long count;
};

struct stream {
    struct evhttp_request *req;
    long left;
    long offset;
};

unsigned long long test_backend_body_sum(const char *data, size_t len)
{
    unsigned long long s = 0;
    for (size_t i = 0; i < len; i++)
        s += (unsigned char)data[i];
    return s;
}

static long query_long(struct evhttp_request *req, const char *key, long def)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (!q)
        return def;
    struct evkeyvalq params;
    long v = def;
    if (evhttp_parse_query_str(q, &params) == 0) {
        const char *s = evhttp_find_header(&params, key);
        if (s)
            v = strtol(s, NULL, 10);
        evhttp_clear_headers(&params);
    }
    return v;
}

static void fill_pattern(char *buf, long offset, long n)
{
    for (long i = 0; i < n; i++)
        buf[i] = (char)('a' + (offset + i) % 26);
}

static void stream_more(struct evhttp_connection *evcon, void *arg)
{
    struct stream *st = arg;
    (void)evcon;
    if (st->left <= 0) {
        evhttp_send_reply_end(st->req);
        free(st);
        return;
    }
    long n = st->left > 65536 ? 65536 : st->left;
    struct evbuffer *b = evbuffer_new();
    char *buf = xmalloc((size_t)n);
    fill_pattern(buf, st->offset, n);
    evbuffer_add(b, buf, (size_t)n);
    free(buf);
    st->left -= n;
    st->offset += n;
    evhttp_send_reply_chunk_with_cb(st->req, b, stream_more, st);
    evbuffer_free(b);
}

static void reply(struct server *s, struct evhttp_request *req, int code, const char *type, const char *body,
                  size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "X-Backend", s->name);
    if (type)
        evhttp_add_header(h, "Content-Type", type);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, len);
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Answer", b);
    evbuffer_free(b);
}

static void echo(struct server *s, struct evhttp_request *req)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(s->name));
    static const char *const methods[] = {"GET",     "POST",  "HEAD",    "PUT",  "DELETE",
                                          "OPTIONS", "TRACE", "CONNECT", "PATCH"};
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const char *m = "?";
    for (int i = 0; i < 9; i++)
        if ((int)cmd == (1 << i))
            m = methods[i];
    json_object_set_new(o, "method", json_string(m));
    json_object_set_new(o, "uri", json_string(evhttp_request_get_uri(req)));
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *data = (const char *)evbuffer_pullup(in, -1);
    json_object_set_new(o, "body_len", json_integer((json_int_t)len));
    json_object_set_new(o, "body_sum",
                        json_integer((json_int_t)test_backend_body_sum(data ? data : "", len)));
    if (len < 65536)
        json_object_set_new(o, "body", json_stringn(data ? data : "", len));
    json_t *hs = json_object();
    struct evkeyval *kv;
    for (kv = evhttp_request_get_input_headers(req)->tqh_first; kv; kv = kv->next.tqe_next) {
        char *lower = xstrdup(kv->key);
        for (char *c = lower; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        json_t *prev = json_object_get(hs, lower);
        if (prev) {
            char *joined = xasprintf("%s\n%s", json_string_value(prev), kv->value);
            json_object_set_new(hs, lower, json_string(joined));
            free(joined);
        } else {
            json_object_set_new(hs, lower, json_string(kv->value));
        }
        free(lower);
    }
    json_object_set_new(o, "headers", hs);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    reply(s, req, 200, "application/json", text, strlen(text));
    free(text);
}

struct delayed {
    struct server *s;
    struct evhttp_request *req;
    struct event *ev;
};

static void handle(struct server *s, struct evhttp_request *req);

static void delayed_fire(evutil_socket_t fd, short what, void *arg)
{
    struct delayed *d = arg;
    (void)fd;
    (void)what;
    event_free(d->ev);
    reply(d->s, d->req, 200, "text/plain", "slow\n", 5);
    free(d);
}

static void handle(struct server *s, struct evhttp_request *req)
{
    const char *uri = evhttp_request_get_uri(req);
    size_t plen = strcspn(uri, "?");
    char path[256];
    snprintf(path, sizeof(path), "%.*s", (int)(plen < 255 ? plen : 255), uri);
    unsigned long seen = s->count++;
    if (strcmp(path, "/healthz") == 0) {
        reply(s, req, s->health, "text/plain", "ok\n", 3);
    } else if (strcmp(path, "/set-health") == 0) {
        s->health = (int)query_long(req, "code", 200);
        reply(s, req, 200, "text/plain", "set\n", 4);
    } else if (strcmp(path, "/whoami") == 0) {
        reply(s, req, 200, "text/plain", s->name, strlen(s->name));
    } else if (strcmp(path, "/big") == 0 && evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        reply(s, req, 200, "application/octet-stream", "",
              0); /* evhttp mishandles HEAD on a streamed reply */
    } else if (strcmp(path, "/big") == 0) {
        struct stream *st = xcalloc(1, sizeof(*st));
        st->req = req;
        st->left = query_long(req, "bytes", 0);
        evhttp_add_header(evhttp_request_get_output_headers(req), "X-Backend", s->name);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/octet-stream");
        evhttp_send_reply_start(req, 200, "OK");
        stream_more(NULL, st);
    } else if (strcmp(path, "/fixed") == 0) {
        long n = query_long(req, "bytes", 0);
        char *buf = xmalloc((size_t)n + 1);
        fill_pattern(buf, 0, n);
        reply(s, req, 200, "application/octet-stream", buf, (size_t)n);
        free(buf);
    } else if (strcmp(path, "/echo") == 0) {
        echo(s, req);
    } else if (strcmp(path, "/slow") == 0) {
        struct delayed *d = xcalloc(1, sizeof(*d));
        d->s = s;
        d->req = req;
        d->ev = evtimer_new(s->base, delayed_fire, d);
        long ms = query_long(req, "ms", 100);
        struct timeval tv = clock_ms_tv(ms);
        evtimer_add(d->ev, &tv);
    } else if (strcmp(path, "/status") == 0) {
        int code = (int)query_long(req, "code", 200);
        char body[64];
        int n = snprintf(body, sizeof(body), "status %d from %s\n", code, s->name);
        reply(s, req, code, "text/plain", body, (size_t)n);
    } else if (strcmp(path, "/cookies") == 0) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        evhttp_add_header(h, "Set-Cookie", "a=1; Path=/");
        evhttp_add_header(h, "Set-Cookie", "b=2; Path=/; HttpOnly");
        reply(s, req, 200, "text/plain", "cookies\n", 8);
    } else if (strcmp(path, "/close") == 0) {
        /* Replace the connection's socket so the peer sees a reset and evhttp never answers. */
        struct bufferevent *bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
        int fd = bufferevent_getfd(bev);
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        int other = socket(AF_INET, SOCK_STREAM, 0);
        dup2(other, fd);
        close(other);
    } else if (strcmp(path, "/count") == 0) {
        char body[32];
        int n = snprintf(body, sizeof(body), "%lu", seen);
        reply(s, req, 200, "text/plain", body, (size_t)n);
    } else {
        reply(s, req, 200, "text/plain", s->name, strlen(s->name));
    }
}

struct pending {
    struct server *s;
    struct evhttp_request *req;
};

static void pending_fire(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;
    (void)fd;
    (void)what;
    handle(p->s, p->req);
    free(p);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct server *s = arg;
    const char *uri = evhttp_request_get_uri(req);
    if (s->delay_ms > 0 && strncmp(uri, "/healthz", 8) != 0) {
        struct pending *p = xcalloc(1, sizeof(*p));
        p->s = s;
        p->req = req;
        struct timeval tv = clock_ms_tv(s->delay_ms);
        event_base_once(s->base, -1, EV_TIMEOUT, pending_fire, p, &tv);
        return;
    }
    handle(s, req);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

static void child_main(int port, const char *name, const struct test_backend_options *o)
{
    struct server s = {.name = name, .health = 200};
    if (o) {
        s.health = o->health_status ? o->health_status : 200;
        s.delay_ms = o->delay_ms;
    }
    s.base = event_base_new();
    struct evhttp *http = evhttp_new(s.base);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                         EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(http, on_request, &s);
    evhttp_set_timeout(http, 60);
    if (evhttp_bind_socket(http, "127.0.0.1", (unsigned short)port) < 0) {
        fprintf(stderr, "test_backend %s: cannot bind port %d\n", name, port);
        _exit(3);
    }
    struct event *term = evsignal_new(s.base, SIGTERM, on_term, s.base);
    event_add(term, NULL);
    event_base_dispatch(s.base);
    _exit(0);
}

struct test_backend *test_backend_start(int port, const char *name,
                                        const struct test_backend_options *options)
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        abort();
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        signal(SIGPIPE, SIG_IGN);
        child_main(port, name, options);
        _exit(0);
    }
    struct test_backend *tb = xcalloc(1, sizeof(*tb));
    tb->pid = pid;
    tb->port = port;
    if (!harness_wait_port(port, 5000)) {
        test_backend_stop(tb);
        fprintf(stderr, "test_backend %s did not start on port %d\n", name, port);
        abort();
    }
    return tb;
}

void test_backend_stop(struct test_backend *tb)
{
    if (!tb)
        return;
    kill(tb->pid, SIGKILL);
    waitpid(tb->pid, NULL, 0);
    free(tb);
}

pid_t test_backend_pid(const struct test_backend *tb)
{
    return tb->pid;
}

int test_backend_port(const struct test_backend *tb)
{
    return tb->port;
}
