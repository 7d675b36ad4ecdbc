#include "conn.h"

#include "tls.h"

#include <errno.h>
#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* One read takes up to this much: large enough that a big response needs few
 * reads, small enough that one connection cannot hog the loop. */
#define CONN_READ_SIZE 65536
/* Pieces of the output buffer given to one sendmsg() (evbuffer_write's own limit is 128). */
#define CONN_WRITE_IOV 64
/* The largest TLS record's plaintext: one SSL_read or SSL_write at a time. */
#define CONN_TLS_RECORD 16384

void conn_init(struct conn *k, struct event_base *base, int fd, event_callback_fn rcb, event_callback_fn wcb,
               void *arg)
{
    k->fd = fd;
    k->in = evbuffer_new();
    k->out = evbuffer_new();
    k->reading = k->writing = false;
    k->ssl = NULL;
    event_assign(&k->rev, base, fd, EV_READ | EV_PERSIST, rcb, arg);
    event_assign(&k->wev, base, fd, EV_WRITE | EV_PERSIST, wcb, arg);
}

void conn_tls(struct conn *k, SSL *ssl)
{
    k->ssl = ssl;
}

void conn_close(struct conn *k)
{
    if (k->fd < 0)
        return;
    event_del(&k->rev);
    event_del(&k->wev);
    if (k->ssl) {
        if (SSL_is_init_finished(k->ssl) && !(SSL_get_shutdown(k->ssl) & SSL_SENT_SHUTDOWN))
            SSL_shutdown(k->ssl); /* close_notify, best effort: the socket is non-blocking */
        ERR_clear_error();
        tls_session_free(k->ssl);
        k->ssl = NULL;
    }
    close(k->fd);
    k->fd = -1;
    evbuffer_free(k->in);
    evbuffer_free(k->out);
    k->in = k->out = NULL;
    k->reading = k->writing = false;
}

/* Advances the handshake. Returns 1 when it is done, 0 while it waits for the
 * client (or for room to write), -1 when it failed (counted, errno EPROTO). */
static int conn_tls_handshake(struct conn *k)
{
    int r = SSL_do_handshake(k->ssl);
    if (r == 1) {
        tls_handshake_done(k->ssl);
        return 1;
    }
    int e = SSL_get_error(k->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    if (e == SSL_ERROR_WANT_WRITE) {
        /* The socket is full mid-handshake: conn_flush goes on when it drains. */
        if (!k->writing) {
            event_add(&k->wev, NULL);
            k->writing = true;
        }
        return 0;
    }
    tls_handshake_failed(k->ssl, k->fd);
    errno = EPROTO;
    return -1;
}

/* conn_read over TLS: decrypts whole records until OpenSSL needs more bytes
 * from the socket, up to CONN_READ_SIZE per call. */
static int conn_tls_read(struct conn *k)
{
    if (!SSL_is_init_finished(k->ssl)) {
        int h = conn_tls_handshake(k);
        if (h <= 0)
            return h == 0 ? -2 : -1;
    }
    size_t total = 0;
    for (;;) {
        struct evbuffer_iovec vec;
        if (evbuffer_reserve_space(k->in, CONN_TLS_RECORD, &vec, 1) != 1)
            return -1;
        int n = SSL_read(k->ssl, vec.iov_base, (int)vec.iov_len);
        if (n > 0) {
            vec.iov_len = (size_t)n;
            evbuffer_commit_space(k->in, &vec, 1);
            total += (size_t)n;
            if (total >= CONN_READ_SIZE) {
                /* Decrypted bytes may wait inside OpenSSL with the socket already
                 * drained (read-ahead): come back without waiting for the socket. */
                if (k->reading)
                    event_active(&k->rev, EV_READ, 1);
                break;
            }
            continue;
        }
        evbuffer_commit_space(k->in, &vec, 0);
        int e = SSL_get_error(k->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        int saved = errno;
        ERR_clear_error();
        if (total > 0) {
            /* The data first; the end or the error is seen on the next call. */
            if (k->reading)
                event_active(&k->rev, EV_READ, 1);
            break;
        }
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0;
        errno = e == SSL_ERROR_SYSCALL && saved ? saved : EPROTO;
        return -1;
    }
    return total > 0 ? (int)total : -2;
}

int conn_read(struct conn *k)
{
    if (k->ssl)
        return conn_tls_read(k);
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
/* conn_send over TLS: one record (up to CONN_TLS_RECORD bytes, gathered from
 * the buffer's pieces so a small answer is one record) per SSL_write, until
 * the buffer is empty or the socket full. */
static ssize_t conn_tls_send(struct conn *k)
{
    ssize_t sent = 0;
    size_t left;
    while ((left = evbuffer_get_length(k->out)) > 0) {
        /* A retry after WANT_WRITE must pass at least the bytes of the first try:
         * the buffer only grows at its end until drained here, so it does. */
        size_t len = left < CONN_TLS_RECORD ? left : CONN_TLS_RECORD;
        unsigned char *p = evbuffer_pullup(k->out, (ssize_t)len);
        int n = SSL_write(k->ssl, p, (int)len);
        if (n > 0) {
            evbuffer_drain(k->out, (size_t)n);
            sent += n;
            continue;
        }
        int e = SSL_get_error(k->ssl, n);
        int saved = errno;
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            errno = EAGAIN;
            return sent > 0 ? sent : -1;
        }
        errno = e == SSL_ERROR_SYSCALL && saved ? saved : EPIPE;
        return -1;
    }
    return sent;
}

static ssize_t conn_send(struct conn *k)
{
    if (k->ssl)
        return conn_tls_send(k);
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
    if (k->ssl && !SSL_is_init_finished(k->ssl)) {
        int h = conn_tls_handshake(k);
        if (h < 0)
            return -1;
        if (h == 0)
            return 0;
        conn_write_off(k);
        if (k->reading) /* the read side goes on with what the client sent */
            event_active(&k->rev, EV_READ, 1);
    }
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

void conn_shutdown_write(struct conn *k)
{
    if (k->ssl && SSL_is_init_finished(k->ssl)) {
        SSL_shutdown(k->ssl);
        ERR_clear_error();
    }
    shutdown(k->fd, SHUT_WR);
}
