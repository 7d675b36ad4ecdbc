#include "tests/support/delay_proxy.h"
#include "tests/support/harness.h"
#include "shared/xalloc.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STATS_PATH "/__proxy/stats"

struct proxy {
    struct event_base *base;
    const struct delay_proxy_options *o;
    long connections, open, max_open;
    long requests, in_flight, max_in_flight, slowed, failed;
};

enum conn_state {
    CONN_READING,  /* waiting for a whole request from the client */
    CONN_UPSTREAM, /* request forwarded, answer not complete yet */
    CONN_HOLDING,  /* answer complete, held back by the timer */
};

struct conn {
    struct proxy *p;
    struct bufferevent *client, *upstream;
    http_parser req, resp;
    enum conn_state state;
    bool req_done, resp_done;
    bool counted; /* carried a forwarded request: counts in connections and open */
    bool is_stats, slow, fail;
    struct evbuffer *req_raw, *resp_raw;
    char url[64];
    size_t url_len;
    struct evbuffer *body; /* the request body, for matching */
    struct event *timer;
};

/* --- parsing --------------------------------------------------------------- */

static int on_url(http_parser *hp, const char *at, size_t len)
{
    struct conn *c = hp->data;
    size_t room = sizeof(c->url) - 1 - c->url_len;
    size_t n = len < room ? len : room;
    memcpy(c->url + c->url_len, at, n);
    c->url_len += n;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_req_body(http_parser *hp, const char *at, size_t len)
{
    struct conn *c = hp->data;
    evbuffer_add(c->body, at, len);
    return 0;
}

static int on_req_complete(http_parser *hp)
{
    struct conn *c = hp->data;
    c->req_done = true;
    http_parser_pause(hp, 1); /* one request at a time: the rest waits in the input */
    return 0;
}

static int on_resp_complete(http_parser *hp)
{
    struct conn *c = hp->data;
    c->resp_done = true;
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings req_settings = {
    .on_url = on_url,
    .on_body = on_req_body,
    .on_message_complete = on_req_complete,
};
static const http_parser_settings resp_settings = {.on_message_complete = on_resp_complete};

/* Feeds what input holds to parser hp, moving the bytes parsed into raw.
 * Returns false on a parse error. */
static bool feed(http_parser *hp, const http_parser_settings *s, struct evbuffer *input, struct evbuffer *raw)
{
    size_t len = evbuffer_get_length(input);
    if (len == 0)
        return true;
    const char *data = (const char *)evbuffer_pullup(input, -1);
    size_t n = http_parser_execute(hp, s, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(hp);
    if (e == HPE_PAUSED) {
        /* Paused at the end of a message: n counts its last byte. */
        http_parser_pause(hp, 0);
    } else if (e != HPE_OK) {
        return false;
    }
    evbuffer_remove_buffer(input, raw, n);
    return true;
}

/* --- the connection -------------------------------------------------------- */

static void conn_free(struct conn *c)
{
    struct proxy *p = c->p;
    if (c->state != CONN_READING && !c->is_stats)
        p->in_flight--;
    if (c->counted)
        p->open--;
    if (c->timer)
        event_free(c->timer);
    bufferevent_free(c->client);
    if (c->upstream)
        bufferevent_free(c->upstream);
    evbuffer_free(c->req_raw);
    evbuffer_free(c->resp_raw);
    evbuffer_free(c->body);
    free(c);
}

static bool body_has(struct conn *c, const char *needle)
{
    if (!needle || !*needle)
        return false;
    struct evbuffer_ptr at = evbuffer_search(c->body, needle, strlen(needle), NULL);
    return at.pos >= 0;
}

static void reset_request(struct conn *c)
{
    c->state = CONN_READING;
    c->req_done = c->resp_done = false;
    c->is_stats = c->slow = c->fail = false;
    c->url_len = 0;
    c->url[0] = '\0';
    evbuffer_drain(c->req_raw, evbuffer_get_length(c->req_raw));
    evbuffer_drain(c->resp_raw, evbuffer_get_length(c->resp_raw));
    evbuffer_drain(c->body, evbuffer_get_length(c->body));
    http_parser_init(&c->resp, HTTP_RESPONSE);
    c->resp.data = c;
}

static void answer_stats(struct conn *c)
{
    struct proxy *p = c->p;
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "{\"connections\":%ld,\"open\":%ld,\"max_open\":%ld,\"requests\":%ld,\"in_flight\":%ld,"
                     "\"max_in_flight\":%ld,\"slowed\":%ld,\"failed\":%ld}\n",
                     p->connections, p->open, p->max_open, p->requests, p->in_flight, p->max_in_flight,
                     p->slowed, p->failed);
    evbuffer_add_printf(bufferevent_get_output(c->client),
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                        n, body);
}

static void on_client_read(struct bufferevent *bev, void *arg);

/* The held answer goes to the client; the next request may come. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct proxy *p = c->p;
    if (c->fail) {
        static const char body[] = "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ServiceUnavailable\","
                                   "\"message\":\"refused by delay_proxy\"}";
        evbuffer_add_printf(bufferevent_get_output(c->client),
                            "HTTP/1.1 %d Service Unavailable\r\nContent-Type: application/x-amz-json-1.0\r\n"
                            "Content-Length: %zu\r\n\r\n%s",
                            p->o->fail_status ? p->o->fail_status : 503, sizeof(body) - 1, body);
    } else {
        evbuffer_add_buffer(bufferevent_get_output(c->client), c->resp_raw);
    }
    p->in_flight--;
    p->requests++;
    reset_request(c);
    on_client_read(c->client, c);
}

static void hold_answer(struct conn *c)
{
    c->state = CONN_HOLDING;
    int ms = c->slow ? c->p->o->slow_ms : c->p->o->delay_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(c->timer, &tv);
}

static void start_request(struct conn *c)
{
    struct proxy *p = c->p;
    if (strncmp(c->url, STATS_PATH, strlen(STATS_PATH)) == 0) {
        c->is_stats = true;
        answer_stats(c);
        reset_request(c);
        return;
    }
    if (!c->counted) {
        c->counted = true;
        p->connections++;
        if (++p->open > p->max_open)
            p->max_open = p->open;
    }
    if (++p->in_flight > p->max_in_flight)
        p->max_in_flight = p->in_flight;
    c->slow = body_has(c, p->o->slow_match);
    c->fail = body_has(c, p->o->fail_match);
    p->slowed += c->slow;
    p->failed += c->fail;
    if (c->fail) {
        hold_answer(c);
        return;
    }
    c->state = CONN_UPSTREAM;
    evbuffer_add_buffer(bufferevent_get_output(c->upstream), c->req_raw);
}

static void on_client_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    while (c->state == CONN_READING) {
        struct evbuffer *in = bufferevent_get_input(bev);
        if (!feed(&c->req, &req_settings, in, c->req_raw)) {
            conn_free(c);
            return;
        }
        if (!c->req_done)
            return;
        start_request(c);
        if (evbuffer_get_length(in) == 0)
            return;
    }
}

static void on_upstream_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->state != CONN_UPSTREAM) {
        conn_free(c); /* the upstream spoke out of turn */
        return;
    }
    if (!feed(&c->resp, &resp_settings, bufferevent_get_input(bev), c->resp_raw)) {
        conn_free(c);
        return;
    }
    if (c->resp_done)
        hold_answer(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_free(c); /* either side gone: both go, as a dropped connection would */
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    struct proxy *p = arg;
    struct conn *c = xcalloc(1, sizeof(*c));
    c->p = p;
    c->req_raw = evbuffer_new();
    c->resp_raw = evbuffer_new();
    c->body = evbuffer_new();
    http_parser_init(&c->req, HTTP_REQUEST);
    c->req.data = c;
    http_parser_init(&c->resp, HTTP_RESPONSE);
    c->resp.data = c;
    c->timer = evtimer_new(p->base, on_timer, c);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->client = bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->upstream = bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
    struct sockaddr_in up = {.sin_family = AF_INET, .sin_port = htons((unsigned short)p->o->upstream_port)};
    up.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bufferevent_setcb(c->client, on_client_read, NULL, on_event, c);
    bufferevent_setcb(c->upstream, on_upstream_read, NULL, on_event, c);
    bufferevent_enable(c->client, EV_READ | EV_WRITE);
    bufferevent_enable(c->upstream, EV_READ | EV_WRITE);
    /* Requests wait in the upstream's output until the connection is up. */
    if (bufferevent_socket_connect(c->upstream, (struct sockaddr *)&up, sizeof(up)) < 0)
        conn_free(c);
}

static void on_term(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

int delay_proxy_serve(int port, const struct delay_proxy_options *o)
{
    signal(SIGPIPE, SIG_IGN);
    struct proxy p = {.o = o, .base = event_base_new()};
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *l =
        evconnlistener_new_bind(p.base, on_accept, &p, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 512,
                                (struct sockaddr *)&sin, sizeof(sin));
    if (!l) {
        fprintf(stderr, "delay_proxy: cannot listen on 127.0.0.1:%d\n", port);
        event_base_free(p.base);
        return -1;
    }
    struct event *term = evsignal_new(p.base, SIGTERM, on_term, p.base);
    struct event *intr = evsignal_new(p.base, SIGINT, on_term, p.base);
    event_add(term, NULL);
    event_add(intr, NULL);
    event_base_dispatch(p.base);
    event_free(term);
    event_free(intr);
    evconnlistener_free(l);
    event_base_free(p.base);
    return 0;
}

/* --- forked for tests ------------------------------------------------------ */

struct delay_proxy {
    pid_t pid;
    int port;
};

struct delay_proxy *delay_proxy_start(int port, const struct delay_proxy_options *o)
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
        _exit(delay_proxy_serve(port, o) == 0 ? 0 : 3);
    }
    struct delay_proxy *dp = xcalloc(1, sizeof(*dp));
    dp->pid = pid;
    dp->port = port;
    if (!harness_wait_port(port, 5000)) {
        delay_proxy_stop(dp);
        fprintf(stderr, "delay_proxy did not start on port %d\n", port);
        abort();
    }
    return dp;
}

void delay_proxy_stop(struct delay_proxy *dp)
{
    if (!dp)
        return;
    kill(dp->pid, SIGKILL);
    waitpid(dp->pid, NULL, 0);
    free(dp);
}

int delay_proxy_port(const struct delay_proxy *dp)
{
    return dp->port;
}
