#include "conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* One read takes up to this much: large enough that a big response needs few
 * reads, small enough that one connection cannot hog the loop. */
#define CONN_READ_SIZE 65536
/* Pieces of the output buffer given to one sendmsg() (evbuffer_write's own limit is 128). */
#define CONN_WRITE_IOV 64

void conn_init(struct conn *k, struct event_base *base, int fd, event_callback_fn rcb, event_callback_fn wcb,
               void *arg)
{
    k->fd = fd;
    k->in = evbuffer_new();
    k->out = evbuffer_new();
    k->reading = k->writing = false;
    event_assign(&k->rev, base, fd, EV_READ | EV_PERSIST, rcb, arg);
    event_assign(&k->wev, base, fd, EV_WRITE | EV_PERSIST, wcb, arg);
}

void conn_close(struct conn *k)
{
    if (k->fd < 0)
        return;
    event_del(&k->rev);
    event_del(&k->wev);
    close(k->fd);
    k->fd = -1;
    evbuffer_free(k->in);
    evbuffer_free(k->out);
    k->in = k->out = NULL;
    k->reading = k->writing = false;
}

int conn_read(struct conn *k)
{
    struct evbuffer_iovec vec[2];
    int nvec = evbuffer_reserve_space(k->in, CONN_READ_SIZE, vec, 2);
    if (nvec <= 0)
        return -1;
    struct iovec iov[2];
    for (int i = 0; i < nvec; i++) {
        iov[i].iov_base = vec[i].iov_base;
        iov[i].iov_len = vec[i].iov_len;
    }
    /* recv() rather than readv() when one piece of space will do (the usual
     * case): the socket call skips the VFS iovec path. */
    ssize_t n;
    do
        n = nvec == 1 ? recv(k->fd, iov[0].iov_base, iov[0].iov_len, 0) : readv(k->fd, iov, nvec);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        evbuffer_commit_space(k->in, vec, 0);
        if (n == 0)
            return 0;
        return errno == EAGAIN || errno == EWOULDBLOCK ? -2 : -1;
    }
    size_t left = (size_t)n;
    for (int i = 0; i < nvec; i++) {
        size_t take = left < vec[i].iov_len ? left : vec[i].iov_len;
        vec[i].iov_len = take;
        left -= take;
    }
    evbuffer_commit_space(k->in, vec, nvec);
    return (int)n;
}

/* One send()/sendmsg() of what k->out holds (up to CONN_WRITE_IOV pieces).
 * Returns bytes written or -1 (errno set). */
static ssize_t conn_send(struct conn *k)
{
    struct evbuffer_iovec vec[CONN_WRITE_IOV];
    int nvec = evbuffer_peek(k->out, -1, NULL, vec, CONN_WRITE_IOV);
    if (nvec > CONN_WRITE_IOV)
        nvec = CONN_WRITE_IOV;
    if (nvec <= 0)
        return 0;
    ssize_t n;
    if (nvec == 1) {
        n = send(k->fd, vec[0].iov_base, vec[0].iov_len, MSG_NOSIGNAL);
    } else {
        struct iovec iov[CONN_WRITE_IOV];
        for (int i = 0; i < nvec; i++) {
            iov[i].iov_base = vec[i].iov_base;
            iov[i].iov_len = vec[i].iov_len;
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)nvec};
        n = sendmsg(k->fd, &msg, MSG_NOSIGNAL);
    }
    if (n > 0)
        evbuffer_drain(k->out, (size_t)n);
    return n;
}

int conn_flush(struct conn *k, const struct timeval *tv)
{
    if (evbuffer_get_length(k->out) > 0) {
        ssize_t n = conn_send(k);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
    }
    if (evbuffer_get_length(k->out) > 0) {
        if (!k->writing) {
            event_add(&k->wev, tv);
            k->writing = true;
        }
    } else {
        conn_write_off(k);
    }
    return 0;
}

void conn_read_on(struct conn *k, const struct timeval *tv)
{
    event_add(&k->rev, tv);
    k->reading = true;
}

void conn_read_off(struct conn *k)
{
    if (k->reading) {
        event_del(&k->rev);
        k->reading = false;
    }
}

void conn_write_wait(struct conn *k, const struct timeval *tv)
{
    event_add(&k->wev, tv);
    k->writing = true;
}

void conn_write_off(struct conn *k)
{
    if (k->writing) {
        event_del(&k->wev);
        k->writing = false;
    }
}
