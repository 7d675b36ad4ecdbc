/* admin: the operator's listener (BALANCER_ADMIN_LISTEN, loopback by default).
 *
 *   GET /status   JSON: version, uptime, connections, totals, and per backend its
 *                 state, failure counts, in-flight requests, pool, answers by
 *                 class and latencies
 *   GET /metrics  the same as Prometheus text (version 0.0.4) */
#ifndef BALANCER_ADMIN_H
#define BALANCER_ADMIN_H

#include <stddef.h>

struct balancer;

/* Binds the admin listener on b->set.admin_listen (no-op when empty) into
 * b->admin. Returns 0, or -1 with a reason in err. */
int admin_start(struct balancer *b, char *err, size_t errlen);
void admin_stop(struct balancer *b);

#endif
