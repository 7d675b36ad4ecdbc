/* upstream: one request's backend side: the connection (from the pool), the
 * answer's parser and head, and what went wrong when something did.
 *
 * The upstream never calls the client: the client owns the connection's
 * event callbacks (given to upstream_open), calls the functions below from
 * them, and acts on what they return. The answer is parsed only to find its
 * head and its end; body bytes move to the client's buffer unchanged
 * (evbuffer_remove_buffer, no copy). */
#ifndef BALANCER_UPSTREAM_H
#define BALANCER_UPSTREAM_H

#include "head.h"
#include "pool.h"

#include <event2/event.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct balancer;
struct backend;
struct evbuffer;

/* How a backend let a request down (the passive health check counts connect,
 * reset and broken ones; a connect failure marks the backend down at once). */
enum upstream_failure {
    UPSTREAM_CONNECT,  /* no connection */
    UPSTREAM_RESET,    /* closed or reset before answering */
    UPSTREAM_TIMEOUT,  /* no answer in time */
    UPSTREAM_PROTOCOL, /* an answer that is not HTTP/1.x, or a 101 */
    UPSTREAM_BROKEN,   /* went wrong after the answer began */
};

/* What a call below came to. */
enum upstream_result {
    UPSTREAM_AGAIN,  /* nothing to do until the next event */
    UPSTREAM_DATA,   /* bytes arrived: relay them */
    UPSTREAM_HEAD,   /* the final answer's head is parsed (head, parser.status_code): write it, relay again */
    UPSTREAM_DONE,   /* the answer is complete */
    UPSTREAM_FAILED, /* see failure and reason; the backend's failure count and health are updated */
};

struct upstream {
    struct pool_conn pc; /* first: the pool hands back this pointer */
    http_parser parser;
    struct head head;
    struct balancer *bal;
    void *owner;   /* the client waiting for the answer; NULL while pooled */
    bool head_req; /* the request was HEAD: the answer has no body whatever it says */
    bool paused;   /* reading stopped: the client's buffer is full */
    enum upstream_failure failure;
    char reason[160]; /* "<failure>: <why>", for the logs and the client's error answer */
    /* parser state */
    bool got_bytes, head_done, skip_lf, ev_headers, ev_message, skip_message, force_close;
};

/* Opens a connection to be for a request. Its read and write events call rcb
 * and wcb with the upstream as argument. Returns NULL when no socket could be
 * made (logged). Freed with upstream_free, or handed to upstream_finish. */
struct upstream *upstream_open(struct balancer *b, struct backend *be, event_callback_fn rcb,
                               event_callback_fn wcb);
/* A kept-alive connection to be, ready for a new request, or NULL. */
struct upstream *upstream_take(struct balancer *b, struct backend *be);
/* Closes up and frees it. */
void upstream_free(struct upstream *up);

/* From the write event: ends a connect, or sends what up->pc.io.out holds.
 * Returns UPSTREAM_AGAIN or UPSTREAM_FAILED. */
enum upstream_result upstream_on_write(struct upstream *up, short what);
/* From the read event: reads once. Returns UPSTREAM_AGAIN, UPSTREAM_DATA,
 * UPSTREAM_DONE (an answer that ran until the backend closed has ended) or
 * UPSTREAM_FAILED. */
enum upstream_result upstream_on_read(struct upstream *up, short what);
/* Parses what was read and moves body bytes into to (adding their count to
 * *moved), stopping at the first of: the final head (UPSTREAM_HEAD), the end
 * of the answer (UPSTREAM_DONE), a failure, or no more input or room (to
 * above high_water pauses reading: UPSTREAM_AGAIN, see upstream_resume). */
enum upstream_result upstream_relay(struct upstream *up, struct evbuffer *to, size_t high_water,
                                    uint64_t *moved);
/* Reads again after a pause. */
void upstream_resume(struct upstream *up);

/* True when the answer's body runs until the backend closes (no length, not
 * chunked): the client's connection has to close after it too. */
bool upstream_until_close(const struct upstream *up);

/* After UPSTREAM_DONE: keeps up in the pool when reuse is true and the
 * connection is fit for another request (keep-alive, nothing left over),
 * else closes it. up is gone after the call. */
void upstream_finish(struct upstream *up, bool reuse);

#endif
