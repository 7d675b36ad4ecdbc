/* systemd readiness (Type=notify): each daemon started with NOTIFY_SOCKET sends
 * READY=1 once it answers, RELOADING=1 (with MONOTONIC_USEC) then READY=1
 * around a SIGHUP, and STOPPING=1 on SIGTERM, in that order, from its main
 * process only. The test is the service manager: it binds the datagram socket. */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/services.h"
#include "tests/support/test_backend.h"
#include "tests/support/raw_socket.h"

static char *dir;
static int nfd = -1;
static char *notify_env;
static struct harness_proc *proc, *redis;
static struct test_backend *backend;

static void setup(void)
{
    dir = harness_tempdir("sdnotify");
    char *path = xasprintf("%s/notify.sock", dir);
    nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(nfd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    cr_assert_lt(strlen(path), sizeof(sa.sun_path));
    strcpy(sa.sun_path, path);
    cr_assert_eq(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    /* The sender's pid comes with each datagram, as systemd checks NotifyAccess=main. */
    int on = 1;
    cr_assert_eq(setsockopt(nfd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);
    notify_env = xasprintf("NOTIFY_SOCKET=%s", path);
    free(path);
}

static void teardown(void)
{
    harness_stop(proc, 5000);
    proc = NULL;
    harness_stop(redis, 3000);
    redis = NULL;
    test_backend_stop(backend);
    backend = NULL;
    if (nfd >= 0)
        close(nfd);
    nfd = -1;
    harness_rmrf(dir);
    free(dir);
    free(notify_env);
}

TestSuite(sd_notify, .init = setup, .fini = teardown, .timeout = 60);

/* The next datagram within timeout_ms (NUL-terminated, caller frees) and its
 * sender's pid, or NULL. */
static char *next_message(int timeout_ms, pid_t *sender)
{
    struct pollfd p = {nfd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1)
        return NULL;
    char buf[4096];
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(struct ucred))];
    } control;
    struct iovec iov = {buf, sizeof(buf) - 1};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof(control)};
    ssize_t n = recvmsg(nfd, &msg, 0);
    if (n < 0)
        return NULL;
    buf[n] = '\0';
    *sender = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(c), sizeof(cred));
            *sender = cred.pid;
        }
    return xstrdup(buf);
}

/* Asserts that the next datagram, within timeout_ms, starts with want and comes
 * from the daemon's main process; returns it (caller frees). */
static char *expect_message(const char *want, int timeout_ms)
{
    pid_t sender;
    char *m = next_message(timeout_ms, &sender);
    cr_assert_not_null(m, "no %s within %d ms", want, timeout_ms);
    cr_assert(strncmp(m, want, strlen(want)) == 0, "expected %s, got '%s'", want, m);
    cr_assert_eq(sender, harness_pid(proc), "'%s' came from pid %d, not the main process %d", m, (int)sender,
                 (int)harness_pid(proc));
    return m;
}

static bool tcp_answers(int port)
{
    int fd = test_raw_connect(port);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

static bool http_ok(int port, const char *path)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    struct http_client *c = http_client_new();
    struct http_resp *r = http_request(c, "GET", url, NULL, NULL, NULL);
    bool ok = r->status == 200;
    http_resp_free(r);
    http_client_free(c);
    return ok;
}

/* SIGHUP: RELOADING=1 with the monotonic clock, then READY=1; SIGTERM: STOPPING=1. */
static void expect_reload_and_stop(void)
{
    harness_signal(proc, SIGHUP);
    char *m = expect_message("RELOADING=1", 10000);
    cr_assert_not_null(strstr(m, "\nMONOTONIC_USEC="), "%s", m);
    unsigned long long usec = strtoull(strstr(m, "MONOTONIC_USEC=") + 15, NULL, 10);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long now =
        (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u;
    cr_assert(usec > 0 && usec <= now && now - usec < 30000000ull, "MONOTONIC_USEC %llu, now %llu", usec,
              now);
    free(m);
    free(expect_message("READY=1", 15000));
    cr_assert(harness_alive(proc));
    harness_signal(proc, SIGTERM);
    free(expect_message("STOPPING=1", 10000));
    int status = harness_wait_exit(proc, 10000);
    if (status >= 0)
        proc = NULL; /* freed; otherwise teardown stops it */
    cr_assert_geq(status, 0, "still running 10 s after SIGTERM");
}

Test(sd_notify, shopd_master_only)
{
    int port = harness_free_port();
    char *listen = xasprintf("SHOPD_LISTEN=127.0.0.1:%d", port);
    char *root = realpath(harness_root(), NULL);
    char *templates = xasprintf("TEMPLATES_DIR=%s/templates", root);
    char *statics = xasprintf("STATIC_DIR=%s/templates/static", root);
    char *log = xasprintf("%s/shopd.log", dir);
    const char *env[] = {listen,
                         "DATABASE_URL=sqlite:///:memory:",
                         "SHOP_ENV=test",
                         "SECRET_KEY=test-secret-key-0123456789abcdef",
                         "RATELIMIT_ENABLED=0",
                         "DISPATCHER_ENABLED=0",
                         "SHOPD_WORKERS=2",
                         templates,
                         statics,
                         notify_env,
                         NULL};
    char *bin = harness_bin("shopd");
    const char *argv[] = {bin, NULL};
    proc = harness_start(argv, env, dir, log);
    /* The first message is READY=1, and then a request is answered at once. */
    free(expect_message("READY=1", 15000));
    cr_assert(http_ok(port, "/healthz"), "READY=1 came before shopd answered");
    /* Reloading replaces both workers; none of them may speak to the manager. */
    expect_reload_and_stop();
    pid_t sender;
    char *extra = next_message(300, &sender);
    cr_assert_null(extra, "unexpected '%s' from pid %d", extra, (int)sender);
    free(bin);
    free(listen);
    free(root);
    free(templates);
    free(statics);
    free(log);
}

Test(sd_notify, balancer)
{
    int bport = harness_free_port(), port = harness_free_port(), admin = harness_free_port();
    backend = test_backend_start(bport, "A", NULL);
    char *backends = xasprintf("BALANCER_BACKENDS=127.0.0.1:%d", bport);
    char *listen = xasprintf("BALANCER_LISTEN=127.0.0.1:%d", port);
    char *admin_listen = xasprintf("BALANCER_ADMIN_LISTEN=127.0.0.1:%d", admin);
    char *log = xasprintf("%s/balancer.log", dir);
    const char *env[] = {backends, listen, admin_listen, notify_env, NULL};
    char *bin = harness_bin("balancer");
    const char *argv[] = {bin, "--env", "/dev/null", NULL};
    proc = harness_start(argv, env, dir, log);
    free(expect_message("READY=1", 10000));
    cr_assert(tcp_answers(port), "READY=1 came before the balancer listened");
    cr_assert(http_ok(admin, "/status"), "READY=1 came before the admin port answered");
    expect_reload_and_stop();
    free(bin);
    free(backends);
    free(listen);
    free(admin_listen);
    free(log);
}

Test(sd_notify, ratelimitd)
{
    int redis_port = harness_free_port(), metrics_port = harness_free_port();
    char *log = xasprintf("%s/redis.log", dir);
    redis = services_start_redis(dir, redis_port, log);
    free(log);
    char *rules = xasprintf("%s/test.rules", dir), *sock = xasprintf("%s/rl.sock", dir);
    services_write_file(rules, "t 60/1m burst=2\n");
    char *e_sock = xasprintf("RATELIMITD_SOCKET=%s", sock);
    char *e_redis = xasprintf("REDIS_URL=redis://127.0.0.1:%d/0", redis_port);
    char *e_rules = xasprintf("RATELIMIT_RULES=%s", rules);
    char *e_metrics = xasprintf("RATELIMITD_METRICS_LISTEN=127.0.0.1:%d", metrics_port);
    const char *env[] = {e_sock, e_redis, e_rules, e_metrics, notify_env, NULL};
    char *bin = harness_bin("ratelimitd");
    const char *argv[] = {bin, "--env", "/dev/null", NULL};
    log = xasprintf("%s/ratelimitd.log", dir);
    proc = harness_start(argv, env, dir, log);
    free(expect_message("READY=1", 10000));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
                 "READY=1 came before the socket listened");
    close(fd);
    cr_assert(http_ok(metrics_port, "/metrics"));
    expect_reload_and_stop();
    free(bin);
    free(log);
    free(rules);
    free(sock);
    free(e_sock);
    free(e_redis);
    free(e_rules);
    free(e_metrics);
}

Test(sd_notify, nothing_without_notify_socket)
{
    /* Started without NOTIFY_SOCKET, a daemon runs, reloads and stops as before. */
    int bport = harness_free_port(), port = harness_free_port();
    backend = test_backend_start(bport, "A", NULL);
    char *backends = xasprintf("BALANCER_BACKENDS=127.0.0.1:%d", bport);
    char *listen = xasprintf("BALANCER_LISTEN=127.0.0.1:%d", port);
    char *log = xasprintf("%s/balancer.log", dir);
    const char *env[] = {backends, listen, NULL};
    unsetenv("NOTIFY_SOCKET");
    char *bin = harness_bin("balancer");
    const char *argv[] = {bin, "--env", "/dev/null", NULL};
    proc = harness_start(argv, env, dir, log);
    cr_assert(harness_wait_port(port, 5000));
    harness_signal(proc, SIGHUP);
    harness_sleep_ms(200);
    cr_assert(harness_alive(proc));
    cr_assert(tcp_answers(port));
    pid_t sender;
    char *m = next_message(200, &sender);
    cr_assert_null(m, "'%s' without NOTIFY_SOCKET", m);
    free(bin);
    free(backends);
    free(listen);
    free(log);
}
