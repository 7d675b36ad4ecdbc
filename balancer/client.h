/* client: one client connection, from its first byte to its close.
 *
 * It reads requests with the strict framing check and http_parser, rewrites
 * each head (head.c), picks a backend per request (backend_pick), gets a
 * connection to it (upstream.c), streams the body there and the answer back,
 * retries where that is safe, answers locally when it must (errors, the
 * HTTPS redirect), and writes the access log line. Every open client is in
 * b->clients. */
#ifndef BALANCER_CLIENT_H
#define BALANCER_CLIENT_H

#include <stdbool.h>
#include <sys/socket.h>

struct balancer;
struct client;

/* Serves the accepted, non-blocking socket fd (owned from now on) from peer
 * sa; with tls the TLS handshake runs first, bounded by the header timeout.
 * Returns the client, which frees itself when the connection ends. */
struct client *client_new(struct balancer *b, int fd, const struct sockaddr *sa, bool tls);

/* The client after c in b->clients, or NULL. */
struct client *client_next(const struct client *c);

/* Closes c now when it is between requests with nothing unread, and returns
 * true (c is gone); false leaves a busy client alone. */
bool client_close_if_idle(struct client *c);

/* Closes c at once, whatever it was doing (c is gone). */
void client_close(struct client *c);

#endif
