/* bench_backend: a minimal keep-alive HTTP/1.1 server for tools/bench-balancer.sh.
 *
 * One libevent loop; parses requests with http_parser (bodies are read and
 * dropped) and answers every request with the same small JSON list, so that
 * the proxies in front of it, not the backend, are what the benchmark measures.
 * Usage: bench_backend PORT */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char response[2048];
static size_t response_len;

struct peer {
    struct bufferevent *bev;
    http_parser parser;
};

static int on_complete(http_parser *p)
{
    struct peer *c = p->data;
    evbuffer_add(bufferevent_get_output(c->bev), response, response_len);
    return 0;
}

static const http_parser_settings settings = {.on_message_complete = on_complete};

static void on_read(struct bufferevent *bev, void *arg)
{
    struct peer *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    const char *data = (const char *)evbuffer_pullup(in, -1);
    size_t n = http_parser_execute(&c->parser, &settings, data, len);
    evbuffer_drain(in, len);
    if (n != len || HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) {
        bufferevent_free(bev);
        free(c);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)what;
    bufferevent_free(bev);
    free(arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct peer *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    c->bev = bufferevent_socket_new(arg, fd, BEV_OPT_CLOSE_ON_FREE);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench_backend PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    char body[1024];
    int blen = snprintf(body, sizeof(body),
                        "[{\"id\":1,\"name\":\"Mug\",\"description\":\"A sturdy mug\",\"price\":9.5,"
                        "\"price_cents\":950,\"stock\":100,\"image_url\":\"/static/mug.png\"},"
                        "{\"id\":2,\"name\":\"Shirt\",\"description\":\"Cotton shirt\",\"price\":19.0,"
                        "\"price_cents\":1900,\"stock\":40,\"image_url\":\"/static/shirt.png\"},"
                        "{\"id\":3,\"name\":\"Poster\",\"description\":\"A3 print\",\"price\":5.25,"
                        "\"price_cents\":525,\"stock\":12,\"image_url\":\"/static/poster.png\"}]\n");
    response_len =
        (size_t)snprintf(response, sizeof(response),
                         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         "\r\n%s",
                         blen, body);
    struct event_base *base = event_base_new();
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(argv[1])),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct evconnlistener *l =
        evconnlistener_new_bind(base, on_accept, base, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 1024,
                                (struct sockaddr *)&a, sizeof(a));
    if (!l) {
        perror("bench_backend: listen");
        return 1;
    }
    event_base_dispatch(base);
    return 0;
}
