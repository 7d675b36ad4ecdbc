/* tls_handshake_bench: new TLS connections per second, full or resumed, for tools/bench-tls.sh.
 *
 * wrk cannot measure full handshakes: it keeps each connection's last session
 * and offers it again on reconnect, so most of its "new" connections resume.
 * Here every connection is new and its kind is chosen: "full" never offers a
 * session (and asks for no ticket), "resumed" offers the latest session any
 * connection got (a TLS 1.3 ticket or a TLS 1.2 id or ticket). Each connection
 * does the handshake, one GET with "Connection: close" over HTTP/1.1 and reads
 * the answer to the end; its time from connect() to the end is its latency.
 *
 * Usage: tls_handshake_bench HOST PORT full|resumed CONNECTIONS THREADS SECONDS PATH
 * Prints "RATE P99_MS" (connections per second, 99th percentile latency) on
 * stdout, and the counts (full, resumed, errors) on stderr. Exits 1 when no
 * connection succeeded or more than 1% failed. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 2000000

enum slot_state { S_CONNECTING, S_HANDSHAKE, S_SENDING, S_READING };

struct slot {
    int fd;
    SSL *ssl;
    enum slot_state state;
    size_t sent;
    double started;
};

struct worker {
    pthread_t th;
    int nslots;
    double *lat;
    size_t nlat, cap;
    unsigned long full, resumed, errors;
};

static struct sockaddr_in addr;
static SSL_CTX *ctx;
static bool resume;
static double deadline;
static char request[1024];
static size_t request_len;
static const char *host = "localhost";

/* The latest session a connection got, offered by the next ones ("resumed"). */
static pthread_mutex_t sess_lock = PTHREAD_MUTEX_INITIALIZER;
static SSL_SESSION *latest;

/* Keeps each new session (TLS 1.3 tickets arrive after the handshake). Returns
 * 1: the session is ours now. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    pthread_mutex_lock(&sess_lock);
    SSL_SESSION *old = latest;
    latest = sess;
    pthread_mutex_unlock(&sess_lock);
    SSL_SESSION_free(old);
    return 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void slot_end(struct worker *w, struct slot *s, int ep, bool ok)
{
    if (ok) {
        if (SSL_session_reused(s->ssl))
            w->resumed++;
        else
            w->full++;
        if (w->nlat < w->cap)
            w->lat[w->nlat++] = now_s() - s->started;
    } else {
        w->errors++;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
    /* Marked as shut down, SSL_free keeps the session resumable (else it spoils it, and so the latest). */
    if (ok)
        SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(s->ssl);
    close(s->fd);
    s->ssl = NULL;
    s->fd = -1;
}

static void slot_start(struct worker *w, struct slot *s, int ep)
{
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s->fd < 0) {
        perror("socket");
        exit(1);
    }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    s->started = now_s();
    s->sent = 0;
    s->ssl = SSL_new(ctx);
    SSL_set_fd(s->ssl, s->fd);
    SSL_set_tlsext_host_name(s->ssl, host);
    if (resume) {
        pthread_mutex_lock(&sess_lock);
        if (latest)
            SSL_set_session(s->ssl, latest);
        pthread_mutex_unlock(&sess_lock);
    }
    s->state = S_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
    epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
    if (connect(s->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 && errno != EINPROGRESS)
        slot_end(w, s, ep, false);
}

static void slot_wait(struct slot *s, int ep, int sslerr)
{
    struct epoll_event ev = {.events = sslerr == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN, .data.ptr = s};
    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
}

/* Moves s on as far as it goes without blocking. */
static void slot_step(struct worker *w, struct slot *s, int ep)
{
    for (;;) {
        int r;
        switch (s->state) {
        case S_CONNECTING: {
            int err = 0;
            socklen_t len = sizeof(err);
            getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) {
                slot_end(w, s, ep, false);
                return;
            }
            s->state = S_HANDSHAKE;
            break;
        }
        case S_HANDSHAKE:
            r = SSL_connect(s->ssl);
            if (r == 1) {
                s->state = S_SENDING;
                break;
            }
            r = SSL_get_error(s->ssl, r);
            if (r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE) {
                slot_wait(s, ep, r);
                return;
            }
            ERR_clear_error();
            slot_end(w, s, ep, false);
            return;
        case S_SENDING:
            r = SSL_write(s->ssl, request + s->sent, (int)(request_len - s->sent));
            if (r > 0) {
                s->sent += (size_t)r;
                if (s->sent == request_len)
                    s->state = S_READING;
                break;
            }
            r = SSL_get_error(s->ssl, r);
            if (r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE) {
                slot_wait(s, ep, r);
                return;
            }
            ERR_clear_error();
            slot_end(w, s, ep, false);
            return;
        case S_READING: {
            char buf[16384];
            r = SSL_read(s->ssl, buf, sizeof(buf));
            if (r > 0)
                break;
            int e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                slot_wait(s, ep, e);
                return;
            }
            ERR_clear_error();
            /* The server closes after the answer: a close_notify or a plain EOF ends it well. */
            slot_end(w, s, ep, e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL);
            if (now_s() < deadline)
                slot_start(w, s, ep);
            return;
        }
        }
    }
}

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    int ep = epoll_create1(0);
    struct slot *slots = calloc((size_t)w->nslots, sizeof(*slots));
    for (int i = 0; i < w->nslots; i++)
        slot_start(w, &slots[i], ep);
    struct epoll_event evs[256];
    while (now_s() < deadline) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            struct slot *s = evs[i].data.ptr;
            if (s->fd >= 0)
                slot_step(w, s, ep);
        }
        for (int i = 0; i < w->nslots; i++) /* a failed start or step left it empty */
            if (slots[i].fd < 0 && now_s() < deadline)
                slot_start(w, &slots[i], ep);
    }
    for (int i = 0; i < w->nslots; i++)
        if (slots[i].fd >= 0) { /* cut by the deadline: not counted */
            SSL_free(slots[i].ssl);
            close(slots[i].fd);
        }
    free(slots);
    close(ep);
    return NULL;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: %s HOST PORT full|resumed CONNECTIONS THREADS SECONDS PATH\n", argv[0]);
        return 2;
    }
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "tls_handshake_bench: HOST must be an IPv4 address\n");
        return 2;
    }
    resume = strcmp(argv[3], "resumed") == 0;
    int conns = atoi(argv[4]), threads = atoi(argv[5]);
    double secs = atof(argv[6]);
    if (conns < 1 || threads < 1 || threads > conns || secs <= 0) {
        fprintf(stderr, "tls_handshake_bench: bad CONNECTIONS, THREADS or SECONDS\n");
        return 2;
    }
    request_len = (size_t)snprintf(request, sizeof(request),
                                   "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", argv[7], host);
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (resume) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }

    struct worker *ws = calloc((size_t)threads, sizeof(*ws));
    double start = now_s();
    deadline = start + secs;
    for (int i = 0; i < threads; i++) {
        ws[i].nslots = conns / threads + (i < conns % threads);
        ws[i].cap = MAX_SAMPLES / (size_t)threads;
        ws[i].lat = malloc(ws[i].cap * sizeof(double));
        pthread_create(&ws[i].th, NULL, worker_run, &ws[i]);
    }
    unsigned long full = 0, resumed = 0, errors = 0;
    size_t n = 0;
    for (int i = 0; i < threads; i++)
        pthread_join(ws[i].th, NULL);
    double elapsed = now_s() - start;
    for (int i = 0; i < threads; i++)
        n += ws[i].nlat;
    double *all = malloc((n ? n : 1) * sizeof(double));
    n = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + n, ws[i].lat, ws[i].nlat * sizeof(double));
        n += ws[i].nlat;
        full += ws[i].full;
        resumed += ws[i].resumed;
        errors += ws[i].errors;
    }
    qsort(all, n, sizeof(double), by_value);
    double p99 = n ? all[(size_t)((double)(n - 1) * 0.99)] : 0;
    printf("%.2f %.3f\n", (double)n / elapsed, p99 * 1000);
    fprintf(stderr, "full %lu resumed %lu errors %lu\n", full, resumed, errors);
    return n == 0 || errors * 100 > n ? 1 : 0;
}
