/* pool: backend connections and the keep-alive idle stacks (see pool.h). */
#include "pool.h"

#include "backend.h"
#include "shared/log.h"
#include "shared/xalloc.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* One backend's idle connections; made on the first pool_put, freed by
 * pool_close. */
struct pool {
    struct pool_conn *idle; /* top of the stack */
    int count;
};

int pool_open(struct pool_conn *pc, struct event_base *base, struct backend *be,
              const struct timeval *tv_connect, event_callback_fn rcb, event_callback_fn wcb,
              void (*release)(struct pool_conn *), void *arg)
{
    int fd = socket(be->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("socket for backend %s: %s", be->name, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    pc->be = be;
    pc->release = release;
    conn_init(&pc->io, base, fd, rcb, wcb, arg);
    be->connections++;
    pc->state = POOL_CONNECTING;
    if (connect(fd, (struct sockaddr *)&be->addr, be->addrlen) < 0 && errno != EINPROGRESS) {
        /* Reported from the loop, like a failure found later, so callers never see it inline. */
        pc->connect_errno = errno;
        event_active(&pc->io.wev, EV_WRITE, 1);
        pc->io.writing = true;
        return 0;
    }
    conn_write_wait(&pc->io, tv_connect);
    return 0;
}

int pool_connect_result(struct pool_conn *pc, short what)
{
    int err = pc->connect_errno;
    if (!err && (what & EV_TIMEOUT))
        err = ETIMEDOUT;
    if (!err) {
        socklen_t len = sizeof(err);
        if (getsockopt(pc->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
    }
    conn_write_off(&pc->io);
    if (!err)
        pc->state = POOL_BUSY;
    return err;
}

static void pool_unlink(struct pool_conn *pc)
{
    struct pool *p = pc->be->pool;
    if (pc->prev)
        pc->prev->next = pc->next;
    else
        p->idle = pc->next;
    if (pc->next)
        pc->next->prev = pc->prev;
    pc->prev = pc->next = NULL;
    p->count--;
}

struct pool_conn *pool_take(struct backend *be)
{
    struct pool_conn *pc = be->pool ? be->pool->idle : NULL;
    if (!pc)
        return NULL;
    pool_unlink(pc);
    pc->state = POOL_BUSY;
    return pc;
}

/* The pool is a stack: the most recently used connection is taken first, so
 * when the load drops the connections at the bottom stay idle and the pool
 * idle timeout closes them. The size limit is a ceiling, not the working set:
 * below the peak number of requests in flight to a backend, every burst closes
 * connections here and opens new ones (measured: 5% of requests reconnecting
 * at 256 clients with a limit of 128). */
bool pool_put(struct pool_conn *pc, long max_idle, const struct timeval *tv_idle)
{
    struct backend *be = pc->be;
    if (be->removed || pool_idle_count(be) >= max_idle)
        return false;
    if (!be->pool)
        be->pool = xcalloc(1, sizeof(*be->pool));
    struct pool *p = be->pool;
    pc->state = POOL_IDLE;
    pc->prev = NULL;
    pc->next = p->idle;
    if (p->idle)
        p->idle->prev = pc;
    p->idle = pc;
    p->count++;
    conn_write_off(&pc->io);
    conn_read_on(&pc->io, tv_idle);
    return true;
}

void pool_conn_close(struct pool_conn *pc)
{
    if (pc->state == POOL_IDLE)
        pool_unlink(pc);
    conn_close(&pc->io);
    pc->be->connections--;
}

void pool_close(struct backend *be)
{
    struct pool *p = be->pool;
    if (!p)
        return;
    while (p->idle)
        p->idle->release(p->idle);
    free(p);
    be->pool = NULL;
}

int pool_idle_count(const struct backend *be)
{
    return be->pool ? be->pool->count : 0;
}
