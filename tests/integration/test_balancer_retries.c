/* Retries: undelivered requests move to the next backend; an idempotent request
 * reset before any answer is retried once; a POST that may have arrived never is;
 * a backend's 5xx is passed on. */
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

TestSuite(balancer_retries, .fini = teardown, .timeout = 30);

/* Backends A and B; health checks slow enough that they do not interfere. */
static void start_two(const char *const extra_in[])
{
    const char *extra[8] = {"BALANCER_HEALTH_INTERVAL_MS=60000", "BALANCER_HEALTH_FALL=5"};
    int n = 2;
    for (const char *const *e = extra_in; e && *e && n < 7; e++)
        extra[n++] = *e;
    test_stack_start(&st, "retries", 2, extra);
}

static long count_of(int i)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/count", st.ports[i]);
    struct http_client *direct = http_client_new();
    struct http_resp *r = http_request(direct, "GET", url, NULL, NULL, NULL);
    long n = strtol(r->body, NULL, 10);
    http_resp_free(r);
    http_client_free(direct);
    return n;
}

static struct http_resp *req(const char *method, const char *path, const char *body)
{
    char *url = test_balancer_url(st.lb, false, path);
    struct http_resp *r = http_request(st.cl, method, url, body ? "text/plain" : NULL, body, NULL);
    free(url);
    return r;
}

Test(balancer_retries, connect_refused_goes_to_next_backend_even_for_post)
{
    start_two(NULL);
    test_backend_stop(st.be[0]);
    st.be[0] = NULL;
    for (int i = 0; i < 4; i++) {
        struct http_resp *r = req("POST", "/echo", "payload");
        cr_assert_eq(r->status, 200, "%ld %s", r->status, r->body);
        cr_assert_str_eq(json_string_value(json_object_get(r->json, "name")), "B");
        cr_assert_str_eq(json_string_value(json_object_get(r->json, "body")), "payload");
        http_resp_free(r);
    }
    cr_assert_geq(test_balancer_log_count(st.lb, "connect: Connection refused"), 1);
}

Test(balancer_retries, reset_get_is_retried_once)
{
    start_two(NULL);
    long before = count_of(0) + count_of(1);
    struct http_resp *r = req("GET", "/close", NULL);
    cr_assert_eq(r->status, 502, "%ld %s", r->status, r->body);
    http_resp_free(r);
    /* Both backends saw it (one try, one retry), then the count requests themselves. */
    long after = count_of(0) + count_of(1);
    cr_assert_eq(after - before, 2 + 2, "backends saw %ld requests", after - before - 2);
    /* The balancer writes its log after the answer has left (one write per loop pass). */
    for (int t = 0; t < 50 && test_balancer_log_count(st.lb, "attempts=2") == 0; t++)
        harness_sleep_ms(20);
    cr_assert_eq(test_balancer_log_count(st.lb, "path=/close status=502 backend=127.0.0.1:"), 1);
    cr_assert_eq(test_balancer_log_count(st.lb, "attempts=2"), 1);
}

Test(balancer_retries, reset_post_is_not_retried)
{
    start_two(NULL);
    long before = count_of(0) + count_of(1);
    struct http_resp *r = req("POST", "/close", "data");
    cr_assert_eq(r->status, 502, "%ld %s", r->status, r->body);
    http_resp_free(r);
    long after = count_of(0) + count_of(1);
    cr_assert_eq(after - before, 1 + 2, "a POST was sent %ld times", after - before - 2);
    for (int t = 0; t < 50 && test_balancer_log_count(st.lb, "method=POST path=/close status=502") == 0; t++)
        harness_sleep_ms(20);
    cr_assert_eq(test_balancer_log_count(st.lb, "method=POST path=/close status=502"), 1);
}

Test(balancer_retries, backend_5xx_is_passed_on_not_retried)
{
    start_two(NULL);
    long before = count_of(0) + count_of(1);
    struct http_resp *r = req("GET", "/status?code=503", NULL);
    cr_assert_eq(r->status, 503);
    cr_assert_not_null(strstr(r->body, "status 503 from"), "%s", r->body);
    http_resp_free(r);
    long after = count_of(0) + count_of(1);
    cr_assert_eq(after - before, 1 + 2);
}

Test(balancer_retries, slow_backend_gives_504)
{
    const char *extra[] = {"BALANCER_BACKEND_TIMEOUT_MS=300", NULL};
    start_two(extra);
    struct http_resp *r = req("GET", "/slow?ms=2000", NULL);
    cr_assert_eq(r->status, 504, "%ld %s", r->status, r->body);
    http_resp_free(r);
    r = req("GET", "/slow?ms=50", NULL);
    cr_assert_eq(r->status, 200);
    http_resp_free(r);
}
