/* conn: a non-blocking socket with an input and an output evbuffer.
 *
 * A smaller bufferevent: reads go straight into reserved evbuffer space (no
 * FIONREAD per read), writes are tried at once and only wait for EV_WRITE when
 * the socket is full, so a request costs one read and one write per side
 * (recv and send: a socket call is cheaper than readv/writev on the fd). The
 * events are embedded; the owner gives the callbacks and frees with conn_close. */
#ifndef BALANCER_CONN_H
#define BALANCER_CONN_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <sys/time.h>

struct evbuffer;

struct conn {
    int fd;
    struct event rev, wev;
    struct evbuffer *in, *out;
    bool reading; /* rev is added */
    bool writing; /* wev is added */
};

/* Sets up k for fd (owned from now on) with persistent read and write events
 * calling rcb and wcb with arg. Nothing is added yet. */
void conn_init(struct conn *k, struct event_base *base, int fd, event_callback_fn rcb, event_callback_fn wcb,
               void *arg);
/* Deletes the events, closes the fd and frees the buffers. */
void conn_close(struct conn *k);
/* Reads once into k->in. Returns bytes read (>0), 0 at end of stream, -1 on an
 * error (errno set), -2 when nothing was ready. */
int conn_read(struct conn *k);
/* Writes what k->out holds; when the socket is full, waits for EV_WRITE with
 * timeout tv (NULL: none); when empty, stops waiting. Returns 0, or -1 on a
 * socket error (errno set). */
int conn_flush(struct conn *k, const struct timeval *tv);
/* Starts (with timeout tv, re-armed on each read; NULL: none) or stops reading. */
void conn_read_on(struct conn *k, const struct timeval *tv);
void conn_read_off(struct conn *k);
/* Waits for EV_WRITE (used while connecting) with timeout tv, or stops waiting. */
void conn_write_wait(struct conn *k, const struct timeval *tv);
void conn_write_off(struct conn *k);

#endif
