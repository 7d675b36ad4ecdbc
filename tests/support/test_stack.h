/* test_stack: the fixture of the balancer suites: fake backends (test_backend)
 * named A, B, C, the balancer under test (balancer_proc) in front of them, and an
 * HTTP client. */
#ifndef TESTS_SUPPORT_TEST_STACK_H
#define TESTS_SUPPORT_TEST_STACK_H

#include "balancer_proc.h"
#include "test_backend.h"

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

#endif
