#include "shared/admin_http.h"
#include "shared/config.h"
#include "shared/xalloc.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct admin_http {
    struct evhttp *http;
    const struct admin_http_page *pages;
    size_t npages;
    void *ctx;
};

static void reply_text(struct evhttp_request *req, int code, const char *reason, struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, body);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct admin_http *a = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    const struct admin_http_page *page = NULL;
    for (size_t i = 0; path && i < a->npages && !page; i++)
        if (strcmp(path, a->pages[i].path) == 0)
            page = &a->pages[i];
    struct evbuffer *body = evbuffer_new();
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (!page) {
        evbuffer_add_printf(body, "not found: try");
        for (size_t i = 0; i < a->npages; i++)
            evbuffer_add_printf(body, "%s %s", i ? " or" : "", a->pages[i].path);
        evbuffer_add_printf(body, "\n");
        reply_text(req, 404, "Not Found", body);
    } else if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        evbuffer_add_printf(body, "method not allowed: use GET\n");
        reply_text(req, 405, "Method Not Allowed", body);
    } else {
        page->write(body, a->ctx);
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        evhttp_add_header(h, "Content-Type", page->content_type);
        evhttp_add_header(h, "Cache-Control", "no-store");
        /* evhttp sends the headers (with Content-Length) but no body for HEAD. */
        evhttp_send_reply(req, 200, "OK", body);
    }
    evbuffer_free(body);
}

struct admin_http *admin_http_new(struct event_base *base, const char *setting, const char *listen,
                                  const struct admin_http_page *pages, size_t npages, void *ctx, char *err,
                                  size_t errlen)
{
    char host[256];
    int port;
    if (config_parse_hostport(listen, host, sizeof(host), &port) < 0 || port < 1 || port > 65535) {
        snprintf(err, errlen, "%s: expected host:port, got '%.60s'", setting, listen);
        return NULL;
    }
    struct admin_http *a = xcalloc(1, sizeof(*a));
    a->pages = pages;
    a->npages = npages;
    a->ctx = ctx;
    a->http = evhttp_new(base);
    /* A scrape is one small request: keep slow or oversized clients from holding memory. */
    evhttp_set_timeout(a->http, 10);
    evhttp_set_max_headers_size(a->http, 8192);
    evhttp_set_max_body_size(a->http, 1024);
    /* Other methods reach on_request, which answers 405 with Allow, rather than
     * evhttp's bare 405. */
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(a->http, on_request, a);
    if (!evhttp_bind_socket_with_handle(a->http, host, (unsigned short)port)) {
        snprintf(err, errlen, "%s: cannot listen on %s: %s", setting, listen, strerror(errno));
        evhttp_free(a->http);
        free(a);
        return NULL;
    }
    return a;
}

void admin_http_free(struct admin_http *a)
{
    if (!a)
        return;
    evhttp_free(a->http);
    free(a);
}
