/* pool: connections to the backends, opened here and kept alive between
 * requests in one idle stack per backend.
 *
 * The owner (the proxy's upstream side) embeds a struct pool_conn in its own
 * connection state, gives the event callbacks and a release function when it
 * opens one, and hands it back with pool_put after a reusable answer. The pool
 * never looks at requests or answers: it only knows sockets, which backend
 * they lead to and whether they are idle. */
#ifndef BALANCER_POOL_H
#define BALANCER_POOL_H

#include "conn.h"

#include <stdbool.h>
#include <sys/time.h>

struct backend;
struct event_base;

enum pool_state {
    POOL_CONNECTING, /* connect() in flight: the write event reports its end */
    POOL_BUSY,       /* carrying a request */
    POOL_IDLE,       /* in the backend's idle stack */
};

struct pool_conn {
    struct conn io;
    struct backend *be;
    enum pool_state state;
    int connect_errno;                       /* connect() failed at once; reported from the loop */
    struct pool_conn *prev, *next;           /* the idle stack, while POOL_IDLE */
    void (*release)(struct pool_conn *self); /* frees the owner's state (and calls pool_conn_close) */
};

/* Opens a non-blocking TCP connection to be into pc (caller's storage, zeroed)
 * with rcb and wcb called with arg, and waits up to tv_connect for it: the
 * write event fires when it is up or failed, even when connect() failed at
 * once, so a failure always comes from the loop. release is how pool_close
 * frees an idle one. Returns 0, or -1 when no socket could be made (logged;
 * nothing to close). */
int pool_open(struct pool_conn *pc, struct event_base *base, struct backend *be,
              const struct timeval *tv_connect, event_callback_fn rcb, event_callback_fn wcb,
              void (*release)(struct pool_conn *), void *arg);

/* In the write callback while POOL_CONNECTING: ends the connect. Returns 0
 * (pc is POOL_BUSY) or the errno it failed with (ETIMEDOUT when what holds
 * EV_TIMEOUT). Either way pc no longer waits for writing. */
int pool_connect_result(struct pool_conn *pc, short what);

/* Takes the most recently idle connection to be (now POOL_BUSY, not reading),
 * or NULL when there is none. */
struct pool_conn *pool_take(struct backend *be);

/* Keeps pc idle for later requests, reading with timeout tv_idle (an idle
 * connection that speaks, closes or times out is useless: the owner's read
 * callback then closes it). Returns false, keeping nothing, when be is
 * removed or already holds max_idle idle connections: the caller closes pc. */
bool pool_put(struct pool_conn *pc, long max_idle, const struct timeval *tv_idle);

/* Closes pc's socket (taking it off the idle stack first) and counts it gone
 * from be->connections. The owner frees its own state after. */
void pool_conn_close(struct pool_conn *pc);

/* Releases every idle connection to be (removed by a reload, down, draining
 * or at exit). Busy ones finish their request first. */
void pool_close(struct backend *be);

/* Idle connections to be, for /status. */
int pool_idle_count(const struct backend *be);

#endif
