/* conn: a non-blocking socket with an input and an output evbuffer.
 *
 * A smaller bufferevent: reads go straight into reserved evbuffer space (no
 * FIONREAD per read), writes are tried at once and only wait for EV_WRITE when
 * the socket is full, so a request costs one read and one write per side
 * (recv and send: a socket call is cheaper than readv/writev on the fd). The
 * events are embedded; the owner gives the callbacks and frees with conn_close.
 *
 * With an SSL attached (conn_tls), the same calls run the TLS handshake first
 * and then read and write through OpenSSL, so the owner sees only plaintext. */
#ifndef BALANCER_CONN_H
#define BALANCER_CONN_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <sys/time.h>

struct evbuffer;
typedef struct ssl_st SSL;

struct conn {
    int fd;
    struct event rev, wev;
    struct evbuffer *in, *out;
    bool reading; /* rev is added */
    bool writing; /* wev is added */
    SSL *ssl;     /* NULL: plain TCP */
};

/* Sets up k for fd (owned from now on) with persistent read and write events
 * calling rcb and wcb with arg. Nothing is added yet. */
void conn_init(struct conn *k, struct event_base *base, int fd, event_callback_fn rcb, event_callback_fn wcb,
               void *arg);
/* Makes k speak TLS through ssl (server side, owned from now on; see tls.h),
 * before anything was read. */
void conn_tls(struct conn *k, SSL *ssl);
/* Deletes the events, closes the fd and frees the buffers (and the SSL). */
void conn_close(struct conn *k);
/* Reads once into k->in. Returns bytes read (>0), 0 at end of stream, -1 on an
 * error (errno set), -2 when nothing was ready. With TLS, -2 also while the
 * handshake is still running, and -1 (errno EPROTO) when it failed. */
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
/* Ends the sending side: a TLS close_notify, if any, then a TCP half-close. */
void conn_shutdown_write(struct conn *k);

#endif
