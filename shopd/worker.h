/* worker: one preforked HTTP worker: an evhttp loop on the listening socket the
 * master shares, with its own database connection, ratelimitd connection and
 * templates. Per request it finds the client address, the request id and the
 * session, checks the route's budget with ratelimitd (asynchronously), runs the
 * handler, and writes one access-log line. */
#ifndef SHOPD_WORKER_H
#define SHOPD_WORKER_H

#include <stdbool.h>

#include "shopd/settings.h"

struct request;
struct worker;

struct worker_params {
    const struct shopd_settings *settings;
    int listen_fd; /* bound and listening, shared by all workers */
    int ready_fd;  /* the worker writes one byte here once it serves (then closes it); -1 for none */
    int wake_fd;   /* eventfd that wakes the dispatcher after a checkout; -1 for none */
    int index;     /* 0..workers-1: worker 0 also does housekeeping */
};

/* Runs a worker until SIGTERM (drain, then return 0) or a fatal error (return
 * 1). Called in a freshly forked child; never returns to the master's code. */
int worker_run(const struct worker_params *params);

/* --- for request.c and the handlers ------------------------------------- */

bool worker_draining(const struct worker *w);
bool worker_is_admin(const struct worker *w, const char *email);
/* Called once per request after its reply: access log, metrics, free. */
void worker_request_done(struct request *r);
/* The worker's thread pool for CPU-heavy work (may be NULL: work then runs inline). */
struct offload *worker_offload(struct worker *w);
/* Tells the dispatcher that an order is waiting. */
void worker_wake_dispatcher(struct worker *w);

#endif
