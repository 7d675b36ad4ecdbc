/* admin_http: the small HTTP server of an operator port (the balancer's
 * /status and /metrics, ratelimitd's /metrics), one implementation for both.
 *
 * Serves a fixed list of pages on the daemon's own event base, so a page's
 * writer reads the daemon's counters without locking: a scrape is answered
 * between two events. GET and HEAD only (405 with Allow otherwise), 404 naming
 * the pages for other paths, small request limits and a short timeout so a
 * slow or oversized client holds nothing, and Cache-Control: no-store. */
#ifndef SHARED_ADMIN_HTTP_H
#define SHARED_ADMIN_HTTP_H

#include <stddef.h>

struct event_base;
struct evbuffer;

/* Appends the page's body to body; ctx is the one given to admin_http_new. */
typedef void (*admin_http_write_fn)(struct evbuffer *body, void *ctx);

struct admin_http_page {
    const char *path;         /* "/metrics" */
    const char *content_type; /* "text/plain; version=0.0.4; charset=utf-8" */
    admin_http_write_fn write;
};

/* The Content-Type of Prometheus text exposition. */
#define ADMIN_HTTP_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"

struct admin_http;

/* Binds listen ("host:port", port 1 to 65535) and serves pages (borrowed: a
 * static array) with ctx. setting names the listen setting in errors. Returns
 * NULL with a one-line reason in err when listen is malformed or cannot be
 * bound. */
struct admin_http *admin_http_new(struct event_base *base, const char *setting, const char *listen,
                                  const struct admin_http_page *pages, size_t npages, void *ctx, char *err,
                                  size_t errlen);
/* Closes the listener and any request in progress; NULL is a no-op. */
void admin_http_free(struct admin_http *a);

#endif
