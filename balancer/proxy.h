/* proxy: client and backend connections, each a small state machine.
 *
 * A client connection reads a request with http_parser, picks a backend per
 * request (backend_pick), takes a kept-alive connection from that backend's
 * pool (pool.c) or opens one, sends the rewritten head (head.c) and streams
 * the body; the answer is parsed on the backend side only to find its head
 * and its end, and its body bytes are moved to the client unchanged
 * (evbuffer_remove_buffer, no copy).
 * Retries, limits, timeouts and the access log live here too. */
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
