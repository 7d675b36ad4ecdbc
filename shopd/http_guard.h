/* http_guard: strict framing in front of evhttp, and lingering close.
 *
 * evhttp parses requests leniently (it takes the first of two Content-Length
 * fields, a chunk size of "2 x" as 2, a field name with a space). The guard
 * sits between each accepted socket and evhttp as a bufferevent filter: every
 * byte goes through shared/h1frame first, and evhttp sees only bytes that
 * passed. A request that fails (or whose body is over the limit) is answered
 * here with JSON {"message"} and Connection: close; then the rest of what the
 * client sends is read and thrown away for a bounded time before the socket
 * closes, so a client that writes its whole body before reading still gets
 * the status instead of a reset. */
#ifndef SHOPD_HTTP_GUARD_H
#define SHOPD_HTTP_GUARD_H

#include <event2/http.h>
#include <stddef.h>
#include <stdint.h>

struct request_id_gen;

struct http_guard_config {
    size_t max_head;       /* request line and fields (431 above) */
    uint64_t max_body;     /* body bytes (413 above) */
    struct request_id_gen *request_ids; /* the worker's generator, so refusals' ids are unique too (not owned) */
};

/* Makes every connection http accepts from now on pass through the guard.
 * cfg must outlive http. */
void http_guard_install(struct evhttp *http, const struct http_guard_config *cfg);

/* How many requests the guards of this process refused, for metrics. */
uint64_t http_guard_refused(void);

#endif
