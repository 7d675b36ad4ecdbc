/* Health: active checks and passive detection take a backend out, recovery
 * brings it back, and with every backend down the least-bad one is still tried. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/test_stack.h"

static struct test_stack st;

static void teardown(void)
{
    test_stack_stop(&st);
}

TestSuite(balancer_health, .fini = teardown, .timeout = 40);

static void start_two(const char *const extra[])
{
    test_stack_start(&st, "health", 2, extra);
}

static struct http_resp *get(const char *path)
{
    char *url = test_balancer_url(st.lb, false, path);
    struct http_resp *r = http_request(st.cl, "GET", url, NULL, NULL, NULL);
    free(url);
    return r;
}

/* State ("up"/"down") of backend i from /status; caller frees. */
static char *state_of(int i)
{
    struct http_client *admin = http_client_new();
    char *url = test_balancer_url(st.lb, true, "/status");
    struct http_resp *r = http_request(admin, "GET", url, NULL, NULL, NULL);
    free(url);
    cr_assert_not_null(r->json);
    json_t *b = json_array_get(json_object_get(r->json, "backends"), (size_t)i);
    char *s = xstrdup(json_string_value(json_object_get(b, "state")));
    http_resp_free(r);
    http_client_free(admin);
    return s;
}

static bool wait_state(int i, const char *want, int ms)
{
    for (int t = 0; t < ms; t += 50) {
        char *s = state_of(i);
        bool ok = strcmp(s, want) == 0;
        free(s);
        if (ok)
            return true;
        harness_sleep_ms(50);
    }
    return false;
}

Test(balancer_health, dead_backend_gets_no_traffic_and_comes_back)
{
    start_two(NULL);
    test_backend_stop(st.be[1]);
    st.be[1] = NULL;
    /* Every request still succeeds: connect failures are retried on A. */
    for (int i = 0; i < 10; i++) {
        struct http_resp *r = get("/whoami");
        cr_assert_eq(r->status, 200, "request %d: %ld %s", i, r->status, r->body);
        cr_assert_str_eq(r->body, "A");
        http_resp_free(r);
    }
    cr_assert(wait_state(1, "down", 2000));
    st.be[1] = test_backend_start(st.ports[1], "B", NULL);
    cr_assert(wait_state(1, "up", 3000), "B did not come back");
    int b = 0;
    for (int i = 0; i < 10; i++) {
        struct http_resp *r = get("/whoami");
        b += strcmp(r->body, "B") == 0;
        http_resp_free(r);
    }
    cr_assert_eq(b, 5, "B served %d of 10 after recovery", b);
}

Test(balancer_health, failing_health_check_marks_down_and_rise_brings_back)
{
    start_two(NULL);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/set-health?code=503", st.ports[0]);
    struct http_client *direct = http_client_new();
    http_resp_free(http_request(direct, "GET", url, NULL, NULL, NULL));
    cr_assert(wait_state(0, "down", 2000), "A not marked down");
    for (int i = 0; i < 6; i++) {
        struct http_resp *r = get("/whoami");
        cr_assert_eq(r->status, 200);
        cr_assert_str_eq(r->body, "B", "a down backend got traffic");
        http_resp_free(r);
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/set-health?code=200", st.ports[0]);
    http_resp_free(http_request(direct, "GET", url, NULL, NULL, NULL));
    http_client_free(direct);
    cr_assert(wait_state(0, "up", 2000), "A did not rise");
    cr_assert_geq(test_balancer_log_count(st.lb, "is down"), 1);
    cr_assert_geq(test_balancer_log_count(st.lb, "is up"), 1);
}

Test(balancer_health, all_down_still_tries_least_bad)
{
    start_two(NULL);
    char url[128];
    struct http_client *direct = http_client_new();
    for (int i = 0; i < 2; i++) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/set-health?code=500", st.ports[i]);
        http_resp_free(http_request(direct, "GET", url, NULL, NULL, NULL));
    }
    http_client_free(direct);
    cr_assert(wait_state(0, "down", 2000));
    cr_assert(wait_state(1, "down", 2000));
    /* Both fail their checks but still answer requests: nginx's "no live upstreams" would be a 502. */
    struct http_resp *r = get("/whoami");
    cr_assert_eq(r->status, 200, "%ld %s", r->status, r->body);
    http_resp_free(r);
}

Test(balancer_health, all_dead_answers_502_quickly)
{
    /* Long timeouts make the bug this test is about (waiting on a backend instead of
       answering at once) cost seconds, far from the few milliseconds a refused connect takes. */
    const char *extra[] = {"BALANCER_CONNECT_TIMEOUT_MS=8000", "BALANCER_BACKEND_TIMEOUT_MS=8000", NULL};
    start_two(extra);
    test_backend_stop(st.be[0]);
    test_backend_stop(st.be[1]);
    st.be[0] = st.be[1] = NULL;
    struct timeval t0, t1;
    gettimeofday(&t0, NULL);
    struct http_resp *r = get("/whoami");
    gettimeofday(&t1, NULL);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
    cr_assert_eq(r->status, 502, "%ld %s", r->status, r->body);
    const char *type = http_resp_header(r, "Content-Type");
    cr_assert(type && strcmp(type, "application/json") == 0, "Content-Type %s", type ? type : "(none)");
    cr_assert_not_null(strstr(r->body, "{\"message\":"), "%s", r->body);
    /* Half the 8 s timeouts: a loaded machine stays far below, a balancer that waits out a
       timeout or retries in a loop does not. */
    cr_assert_lt(ms, 4000, "the 502 took %ld ms (the connect timeout is 8000 ms)", ms);
    http_resp_free(r);
    cr_assert(wait_state(0, "down", 2000));
    r = get("/whoami");
    cr_assert_eq(r->status, 502);
    cr_assert_not_null(strstr(r->body, "no backend could take the request"), "%s", r->body);
    http_resp_free(r);
}
