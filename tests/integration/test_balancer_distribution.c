/* The balancer spreads requests over healthy backends per request (round robin,
 * smooth weighted round robin with weights), also on one kept-alive connection. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/test_stack.h"

static struct test_stack st;

static void teardown(void)
{
    test_stack_stop(&st);
}

TestSuite(balancer_distribution, .fini = teardown, .timeout = 30);

/* GET /whoami through the balancer; returns the backend's name letter. */
static char whoami(void)
{
    char *url = test_balancer_url(st.lb, false, "/whoami");
    struct http_resp *r = http_request(st.cl, "GET", url, NULL, NULL, NULL);
    free(url);
    cr_assert_eq(r->status, 200, "status %ld (%s) body %s", r->status, r->error, r->body);
    char name = r->body[0];
    http_resp_free(r);
    return name;
}

static long status_number(const char *key)
{
    struct http_client *admin = http_client_new();
    char *url = test_balancer_url(st.lb, true, "/status");
    struct http_resp *r = http_request(admin, "GET", url, NULL, NULL, NULL);
    free(url);
    cr_assert_not_null(r->json, "status is not JSON: %s", r->body);
    long v = (long)json_integer_value(json_object_get(r->json, key));
    http_resp_free(r);
    http_client_free(admin);
    return v;
}

/* Ten requests on one kept-alive connection alternate between two backends. */
static void check_alternation(const char *name, const char *const extra[])
{
    test_stack_start(&st, name, 2, extra);
    long accepted_before = status_number("accepted_total");
    char seq[11] = {0};
    for (int i = 0; i < 10; i++)
        seq[i] = whoami();
    for (int i = 1; i < 10; i++)
        cr_assert_neq(seq[i], seq[i - 1], "same backend twice in a row: %s", seq);
    cr_assert(strchr(seq, 'A') && strchr(seq, 'B'), "sequence %s", seq);
    /* All ten went over one client connection, yet both backends served it. */
    cr_assert_eq(status_number("accepted_total") - accepted_before, 1);
    cr_assert_geq(status_number("requests_total"), 10);
}

Test(balancer_distribution, alternates_per_request_on_one_keepalive_connection)
{
    check_alternation("dist-rr", NULL);
}

/* The loop without sched_yield() between polls (BALANCER_POLL_YIELD=0) serves the same way. */
Test(balancer_distribution, alternates_with_poll_yield_off)
{
    const char *const extra[] = {"BALANCER_POLL_YIELD=0", NULL};
    check_alternation("dist-rr-noyield", extra);
}

Test(balancer_distribution, three_backends_share_evenly)
{
    test_stack_backends(&st, 3);
    char list[128];
    snprintf(list, sizeof(list), "127.0.0.1:%d, 127.0.0.1:%d ,127.0.0.1:%d", st.ports[0], st.ports[1],
             st.ports[2]);
    st.lb = test_balancer_start("dist-three", list, NULL);
    int count[3] = {0};
    for (int i = 0; i < 30; i++)
        count[whoami() - 'A']++;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(count[i], 10, "backend %c got %d of 30", 'A' + i, count[i]);
}

Test(balancer_distribution, weights_are_smooth)
{
    test_stack_backends(&st, 2);
    char list[128];
    snprintf(list, sizeof(list), "127.0.0.1:%d=3,127.0.0.1:%d=1", st.ports[0], st.ports[1]);
    st.lb = test_balancer_start("dist-weights", list, NULL);
    char seq[41] = {0};
    int a = 0;
    for (int i = 0; i < 40; i++) {
        seq[i] = whoami();
        a += seq[i] == 'A';
    }
    cr_assert_eq(a, 30, "A got %d of 40: %s", a, seq);
    /* Smooth: never more than three A in a row, B never twice in a row. */
    cr_assert_null(strstr(seq, "AAAA"), "%s", seq);
    cr_assert_null(strstr(seq, "BB"), "%s", seq);
}
