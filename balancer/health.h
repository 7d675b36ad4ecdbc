/* health: active health checks, `GET <BALANCER_HEALTH_PATH>` on every backend
 * every interval, with a timeout; `fall` failures mark it down and `rise`
 * successes (2xx or 3xx) bring it back (backend.c keeps the counts). */
#ifndef BALANCER_HEALTH_H
#define BALANCER_HEALTH_H

struct balancer;
struct backend;

/* Starts periodic checks of be (the first one right away). */
void health_start(struct balancer *b, struct backend *be);
/* Stops checking be and frees its check connection. */
void health_stop(struct backend *be);

#endif
