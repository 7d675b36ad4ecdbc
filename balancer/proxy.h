/* proxy: what the listeners hand their sockets to, and what the process asks
 * of the proxy as a whole.
 *
 * A request meets, in order: proxy.c (admission: the connection limit and
 * the drain), client.c (the client connection's state machine), head.c (the
 * request head as the backend gets it), backend.c (the choice of backend),
 * upstream.c (the backend side of the request), pool.c (backend connections,
 * kept alive between requests) and conn.c (socket and TLS I/O). */
#ifndef BALANCER_PROXY_H
#define BALANCER_PROXY_H

#include <sys/socket.h>

struct balancer;

/* Takes over an accepted, non-blocking client socket fd. Over
 * BALANCER_MAX_CONNECTIONS the client gets a 503 and the socket is closed. */
void proxy_accept(struct balancer *b, int fd, const struct sockaddr *sa, socklen_t salen);

/* The same for a socket accepted on the TLS listener: the handshake runs
 * first, within the header timeout that bounds the first request; requests
 * then reach the backend with X-Forwarded-Proto: https. */
void proxy_accept_tls(struct balancer *b, int fd, const struct sockaddr *sa, socklen_t salen);

/* Starts a graceful shutdown: idle clients are closed now, busy ones after
 * their current answer; proxy_client_count() tells when none is left. */
void proxy_drain(struct balancer *b);

/* Open client connections (accepted and not yet closed). */
long proxy_client_count(const struct balancer *b);

/* Closes every client and pooled connection (at exit). */
void proxy_close_all(struct balancer *b);

#endif
