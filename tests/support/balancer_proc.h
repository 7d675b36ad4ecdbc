/* balancer_proc: the balancer under test, as a real process on free ports with
 * a .env file a test may rewrite before SIGHUP. */
#ifndef TESTS_SUPPORT_BALANCER_PROC_H
#define TESTS_SUPPORT_BALANCER_PROC_H

#include <stdbool.h>

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

#endif
