#include "test_stack.h"

#include "harness.h"
#include "shared/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void test_stack_backends(struct test_stack *s, int n)
{
    static const char *const names[TEST_STACK_MAX] = {"A", "B", "C"};
    if (n < 1 || n > TEST_STACK_MAX) {
        fprintf(stderr, "test_stack_backends: %d backends (1 to %d)\n", n, TEST_STACK_MAX);
        abort();
    }
    for (int i = 0; i < n; i++) {
        s->ports[i] = harness_free_port();
        s->be[i] = test_backend_start(s->ports[i], names[i], NULL);
        s->n = i + 1;
    }
    s->cl = http_client_new();
}

char *test_stack_list(const struct test_stack *s)
{
    char *list = xstrdup("");
    for (int i = 0; i < s->n; i++) {
        char *next = xasprintf("%s%s127.0.0.1:%d", list, i ? "," : "", s->ports[i]);
        free(list);
        list = next;
    }
    return list;
}

void test_stack_start(struct test_stack *s, const char *name, int n, const char *const extra[])
{
    test_stack_backends(s, n);
    char *list = test_stack_list(s);
    s->lb = test_balancer_start(name, list, extra);
    free(list);
}

void test_stack_stop(struct test_stack *s)
{
    http_client_free(s->cl);
    test_balancer_stop(s->lb);
    for (int i = 0; i < s->n; i++)
        test_backend_stop(s->be[i]);
    memset(s, 0, sizeof(*s));
}
