/* offload: a small thread pool per worker for CPU-heavy work that must not stall
 * the event loop (password hashing with scrypt takes a large fraction of a
 * second; done inline, one login would freeze every other request on that
 * worker). The work function runs on a pool thread and must not touch the
 * database or libevent; the done function runs afterwards on the loop thread. */
#ifndef SHOPD_OFFLOAD_H
#define SHOPD_OFFLOAD_H

struct event_base;
struct offload;

typedef void (*offload_fn)(void *arg);

/* Starts `threads` pool threads whose completions are delivered on base.
 * Returns NULL if threads cannot be started (callers then run work inline). */
struct offload *offload_new(struct event_base *base, int threads);
/* Queues work(arg) on a pool thread, then done(arg) on the loop. With o NULL
 * both run at once, inline. */
void offload_run(struct offload *o, offload_fn work, offload_fn done, void *arg);
/* Waits for the running jobs, drops queued ones without calling them, and
 * joins the threads. Pending done callbacks are not called. */
void offload_free(struct offload *o);

#endif
