/* proxy: the listeners' side of the proxy: admission of accepted sockets,
 * the drain and the count of open clients (see proxy.h). */
#include "proxy.h"

#include "state.h"
#include "client.h"
#include "pool.h"
#include "shared/http_answer.h"
#include "shared/log.h"
#include "shared/request_id.h"

#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

/* Over the connection limit, or while stopping, a client gets a short 503
 * written straight to the socket and the socket is closed. */
static bool refuse(struct balancer *b, int fd)
{
    if (b->nclients < b->set.max_connections && !b->draining)
        return false;
    char reqid[REQUEST_ID_MAX + 1];
    request_id_next(&b->request_ids, reqid);
    char busy[1024];
    size_t n = http_error_answer(busy, sizeof(busy), 503, reqid, "Retry-After: 1\r\n",
                                 b->draining ? "shutting down" : "too many connections", false);
    ssize_t w = send(fd, busy, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    close(fd);
    b->rejected++;
    log_debug("connection refused: %ld clients (limit %ld)", b->nclients, b->set.max_connections);
    return true;
}

void proxy_accept(struct balancer *b, int fd, const struct sockaddr *sa, socklen_t salen)
{
    (void)salen;
    if (!refuse(b, fd))
        client_new(b, fd, sa, false);
}

void proxy_accept_tls(struct balancer *b, int fd, const struct sockaddr *sa, socklen_t salen)
{
    (void)salen;
    if (!refuse(b, fd))
        client_new(b, fd, sa, true);
}

void proxy_drain(struct balancer *b)
{
    struct client *c = b->clients;
    while (c) {
        struct client *next = client_next(c);
        client_close_if_idle(c);
        c = next;
    }
    for (size_t i = 0; i < b->nbackends; i++)
        pool_close(b->backends[i]);
}

long proxy_client_count(const struct balancer *b)
{
    return b->nclients;
}

void proxy_close_all(struct balancer *b)
{
    while (b->clients)
        client_close(b->clients);
    for (size_t i = 0; i < b->nbackends; i++)
        pool_close(b->backends[i]);
    for (size_t i = 0; i < b->nretired; i++)
        pool_close(b->retired[i]);
}
