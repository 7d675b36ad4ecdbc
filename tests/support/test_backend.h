/* test_backend: a small libevent HTTP server that tests fork as a backend.
 *
 * Endpoints (every answer carries `X-Backend: <name>`):
 *   /healthz            200 "ok" (or the code set by /set-health)
 *   /set-health?code=N  later /healthz answers N
 *   /whoami             the backend's name
 *   /big?bytes=N        N bytes ('a'..'z' repeating) streamed with chunked encoding
 *   /fixed?bytes=N      N bytes with Content-Length
 *   /echo               JSON {name, method, uri, body_len, body_sum, body (when < 64 KiB),
 *                       headers: {lower-case name: value, repeats joined by "\n"}}
 *   /slow?ms=N          answers after N ms
 *   /status?code=N      answers with status N
 *   /cookies            two Set-Cookie headers
 *   /close              resets the connection without answering
 *   /count              how many requests this backend has seen (before this one)
 *   anything else       200 with the name
 * The child dies with the test process (PDEATHSIG) and never runs the test's
 * atexit handlers. */
#ifndef TESTS_SUPPORT_TEST_BACKEND_H
#define TESTS_SUPPORT_TEST_BACKEND_H

#include <stdbool.h>
#include <sys/types.h>

struct test_backend_options {
    int health_status; /* 0: 200 */
    int delay_ms;      /* added to every answer except /healthz */
};

struct test_backend;

/* Forks a backend listening on 127.0.0.1:port, named name, and waits until it
 * accepts connections. options may be NULL. Aborts the test when it cannot
 * start. Stop it with test_backend_stop. */
struct test_backend *test_backend_start(int port, const char *name,
                                        const struct test_backend_options *options);
/* SIGKILLs the backend, reaps it and frees tb. NULL is a no-op. */
void test_backend_stop(struct test_backend *tb);
pid_t test_backend_pid(const struct test_backend *tb);
int test_backend_port(const struct test_backend *tb);

/* The body of an echo or a request, counted the way /echo does (sum of bytes). */
unsigned long long test_backend_body_sum(const char *data, size_t len);

/* --- the balancer under test ---------------------------------------------- */

struct harness_proc;

struct test_balancer {
    struct harness_proc *proc;
    int port, admin_port;
    char *log;     /* its log file (under SHOP_TEST_OUTPUT) */
    char *envfile; /* a .env file that tests may rewrite before SIGHUP */
};

/* Starts $SHOP_BIN/balancer on free ports with BALANCER_BACKENDS=backends, short
 * health-check settings (interval 100 ms, fall 2, rise 2) and the extra
 * "NAME=value" settings in extra (NULL-terminated, may be NULL; they are written
 * to a .env file, so a test may rewrite it and send SIGHUP). Waits until it
 * listens. Aborts the test when it does not start. */
struct test_balancer *test_balancer_start(const char *name, const char *backends, const char *const extra[]);
/* Rewrites the .env file with backends and extra settings (as at start). */
void test_balancer_rewrite_env(struct test_balancer *lb, const char *backends, const char *const extra[]);
/* SIGTERM (then SIGKILL after 5 s), frees lb; returns the wait status. NULL is a no-op. */
int test_balancer_stop(struct test_balancer *lb);
/* "http://127.0.0.1:<port><path>" (caller frees); admin selects the admin port. */
char *test_balancer_url(const struct test_balancer *lb, bool admin, const char *path);
/* Number of lines of the balancer's log containing needle. */
int test_balancer_log_count(const struct test_balancer *lb, const char *needle);

/* --- the fixture of the balancer suites ------------------------------------ */

struct http_client;

#define TEST_STACK_MAX 3

/* Test backends named A, B, C on free ports, the balancer under test in front
 * of them and an HTTP client. A zeroed one is empty. */
struct test_stack {
    int n;
    struct test_backend *be[TEST_STACK_MAX];
    int ports[TEST_STACK_MAX];
    struct test_balancer *lb;
    struct http_client *cl;
};

/* Starts n (<= TEST_STACK_MAX) backends and the client, not the balancer: for a
 * test that writes its own BALANCER_BACKENDS (weights, spaces). */
void test_stack_backends(struct test_stack *s, int n);
/* "127.0.0.1:PORT,..." of the started backends (caller frees). */
char *test_stack_list(const struct test_stack *s);
/* test_stack_backends, then the balancer (log name name) in front of all of them
 * with the extra settings (as test_balancer_start). */
void test_stack_start(struct test_stack *s, const char *name, int n, const char *const extra[]);
/* Stops whatever of s was started (the suites' teardown) and zeroes it. */
void test_stack_stop(struct test_stack *s);

/* --- raw sockets --------------------------------------------------------- */

/* A connected, blocking TCP socket to 127.0.0.1:port, or -1. */
int test_raw_connect(int port);
/* Sends len bytes of data on fd and reads until the peer closes or timeout_ms
 * passes; returns what was read, NUL-terminated (caller frees), *outlen its length. */
char *test_raw_exchange(int fd, const char *data, size_t len, int timeout_ms, size_t *outlen);

#endif
