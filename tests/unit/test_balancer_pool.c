/* The balancer's backend connections (balancer/pool.c): connect and its
 * result, the idle stack per backend, its limits and pool_close, over real
 * loopback sockets and a real event loop. */
#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "balancer/backend.h"
#include "balancer/pool.h"

static struct event_base *base;
static int listener = -1;
static int released;

struct probe {
    struct pool_conn pc;
    int result; /* -1 until the connect ended, then 0 or its errno */
};

/* A listening loopback socket (never accepting: the kernel completes the
 * handshakes) and its port. */
static int listen_port(void)
{
    listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(listener, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(listener, 16), 0);
    socklen_t len = sizeof(a);
    getsockname(listener, (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}

static struct backend *make_backend(int port)
{
    struct backend_spec s = {.host = "127.0.0.1", .port = port, .weight = 1};
    char err[256];
    struct backend *be = backend_new(&s, err, sizeof(err));
    cr_assert_not_null(be, "%s", err);
    return be;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct probe *p = arg;
    (void)fd;
    if (p->pc.state == POOL_CONNECTING) {
        p->result = pool_connect_result(&p->pc, what);
        event_base_loopbreak(base);
    }
}

static void release(struct pool_conn *pc)
{
    released++;
    pool_conn_close(pc);
}

static void open_probe(struct probe *p, struct backend *be)
{
    struct timeval tv = {2, 0};
    memset(p, 0, sizeof(*p));
    p->result = -1;
    cr_assert_eq(pool_open(&p->pc, base, be, &tv, on_read, on_write, release, p), 0);
    for (int i = 0; i < 50 && p->result == -1; i++)
        event_base_loop(base, EVLOOP_ONCE);
}

static void setup(void)
{
    base = event_base_new();
    released = 0;
}

static void teardown(void)
{
    if (listener >= 0)
        close(listener);
    listener = -1;
    event_base_free(base);
}

TestSuite(balancer_pool, .init = setup, .fini = teardown, .timeout = 10);

Test(balancer_pool, connects_and_keeps_a_stack_of_idle_connections)
{
    struct backend *be = make_backend(listen_port());
    struct timeval idle = {5, 0};
    struct probe a, b;
    open_probe(&a, be);
    open_probe(&b, be);
    cr_assert_eq(a.result, 0, "%s", strerror(a.result));
    cr_assert_eq(b.result, 0, "%s", strerror(b.result));
    cr_assert_eq(a.pc.state, POOL_BUSY);
    cr_assert_eq(be->connections, 2);
    cr_assert_null(pool_take(be), "nothing idle yet");

    cr_assert(pool_put(&a.pc, 2, &idle));
    cr_assert(pool_put(&b.pc, 2, &idle));
    cr_assert_eq(pool_idle_count(be), 2);
    cr_assert_eq(a.pc.state, POOL_IDLE);
    /* The most recently used comes back first, so the oldest idle out. */
    cr_assert_eq(pool_take(be), &b.pc);
    cr_assert_eq(b.pc.state, POOL_BUSY);
    cr_assert_eq(pool_idle_count(be), 1);
    cr_assert_eq(pool_take(be), &a.pc);
    cr_assert_null(pool_take(be));
    cr_assert_eq(be->connections, 2, "taking closes nothing");

    pool_conn_close(&a.pc);
    pool_conn_close(&b.pc);
    cr_assert_eq(be->connections, 0);
    pool_close(be);
    backend_free(be);
}

Test(balancer_pool, limits_and_close)
{
    struct backend *be = make_backend(listen_port());
    struct timeval idle = {5, 0};
    struct probe a, b, c;
    open_probe(&a, be);
    open_probe(&b, be);
    open_probe(&c, be);
    cr_assert(pool_put(&a.pc, 2, &idle));
    cr_assert(pool_put(&b.pc, 2, &idle));
    cr_assert_not(pool_put(&c.pc, 2, &idle), "over max_idle nothing is kept");
    cr_assert_eq(c.pc.state, POOL_BUSY);
    pool_conn_close(&c.pc);

    pool_close(be);
    cr_assert_eq(released, 2, "every idle connection is released once");
    cr_assert_eq(pool_idle_count(be), 0);
    cr_assert_eq(be->connections, 0);

    /* A backend dropped by a reload keeps nothing. */
    struct probe d;
    open_probe(&d, be);
    be->removed = true;
    cr_assert_not(pool_put(&d.pc, 8, &idle));
    pool_conn_close(&d.pc);
    pool_close(be);
    backend_free(be);
}

Test(balancer_pool, a_refused_connect_is_reported_from_the_loop)
{
    /* A port that was just free: nothing listens there. */
    int port = listen_port();
    close(listener);
    listener = -1;
    struct backend *be = make_backend(port);
    struct probe p;
    open_probe(&p, be);
    cr_assert_eq(p.result, ECONNREFUSED, "got %d (%s)", p.result, strerror(p.result));
    cr_assert_eq(p.pc.state, POOL_CONNECTING, "a failed connect is not made busy");
    pool_conn_close(&p.pc);
    cr_assert_eq(be->connections, 0);
    backend_free(be);
}
