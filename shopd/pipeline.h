/* pipeline: the life of one request in a worker, in the order it happens: the
 * client's address (behind trusted proxies), the request id, the route, the
 * session or visitor cookie, the budget checks with ratelimitd (asynchronous),
 * the route's requirements (login, admin, CSRF, content type, body size), the
 * handler, and at the end metrics and the access log. Requests of routes that
 * serve the catalog cache wait for the end of the loop's pass, where one
 * check of the catalog's version answers for all of them.
 *
 * The pipeline owns the request: it allocates it, and frees it when the
 * handler has answered and returned, or, for a request the handler holds
 * (request_hold), when the later answer comes. Handlers see only struct
 * request; what the pipeline keeps about the request is its own. */
#ifndef SHOPD_PIPELINE_H
#define SHOPD_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "shopd/settings.h"

struct admin_list;
struct db;
struct event_base;
struct evhttp_request;
struct offload;
struct request_id_gen;
struct rl_client;

struct pipeline_config {
    struct event_base *base; /* the worker's loop */
    const struct shopd_settings *settings;
    struct db *db;
    const struct admin_list *admins; /* ADMIN_EMAILS */
    struct rl_client *rl;            /* NULL: no budget checks */
    struct offload *offload;         /* the thread pool handlers may use; NULL runs work inline */
    int wake_fd;                     /* eventfd that wakes the dispatcher after a checkout; -1 for none */
    const bool *draining;            /* the worker's flag: answers then say Connection: close */
};

struct pipeline;

/* A pipeline over cfg (the pointers are borrowed and must outlive it). */
struct pipeline *pipeline_new(const struct pipeline_config *cfg);
/* Frees p; requests still held must have ended. NULL is a no-op. */
void pipeline_free(struct pipeline *p);

/* evhttp's request callback (evhttp_set_gencb(http, pipeline_handle, p)). */
void pipeline_handle(struct evhttp_request *ev, void *pipeline);

/* Requests begun and not yet finished, and when the last one finished (for the
 * worker's drain). */
long pipeline_in_flight(const struct pipeline *p);
uint64_t pipeline_last_reply_us(const struct pipeline *p);
/* The generator of request ids, shared with the connection guard's refusals. */
struct request_id_gen *pipeline_request_ids(struct pipeline *p);

/* The most body bytes a connection may send: SHOPD_MAX_BODY, or an upload form
 * with an image of UPLOAD_MAX_BYTES when that is larger (the pipeline then
 * holds every other route to SHOPD_MAX_BODY). */
long pipeline_body_limit(const struct shopd_settings *s);

#endif
