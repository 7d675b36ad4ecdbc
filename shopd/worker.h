/* worker: one preforked HTTP worker process: an evhttp loop on the listening
 * socket the master shares, with its own database connection, ratelimitd
 * connection, thread pool and templates; the connection guard in front of
 * evhttp; signals, the drain on SIGTERM and housekeeping. Each request goes
 * through shopd/pipeline.c. */
#ifndef SHOPD_WORKER_H
#define SHOPD_WORKER_H

#include <stdbool.h>

#include "shopd/settings.h"

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

#endif
