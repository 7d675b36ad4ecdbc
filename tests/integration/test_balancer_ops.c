/* Operations: admin /status and /metrics, SIGHUP reload keeping connections and
 * health state, SIGTERM finishing in-flight requests, command line. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/test_stack.h"

static struct test_stack st;

static void teardown(void)
{
    test_stack_stop(&st);
}

TestSuite(balancer_ops, .fini = teardown, .timeout = 30);

static void start(int n, const char *const extra[])
{
    test_stack_start(&st, "ops", n, extra);
}

static struct http_resp *get(bool admin, const char *path)
{
    char *url = test_balancer_url(st.lb, admin, path);
    struct http_resp *r = http_request(st.cl, "GET", url, NULL, NULL, NULL);
    free(url);
    return r;
}

Test(balancer_ops, status_and_metrics)
{
    start(2, NULL);
    for (int i = 0; i < 4; i++)
        http_resp_free(get(false, "/whoami"));
    http_resp_free(get(false, "/status?code=500"));
    struct http_resp *r = get(true, "/status");
    cr_assert_eq(r->status, 200);
    cr_assert_not_null(r->json, "%s", r->body);
    cr_assert_eq(json_integer_value(json_object_get(r->json, "requests_total")), 5);
    json_t *list = json_object_get(r->json, "backends");
    cr_assert_eq(json_array_size(list), 2);
    json_int_t total = 0, fives = 0;
    for (size_t i = 0; i < 2; i++) {
        json_t *b = json_array_get(list, i);
        cr_assert_str_eq(json_string_value(json_object_get(b, "state")), "up");
        cr_assert_eq(json_integer_value(json_object_get(b, "in_flight")), 0);
        total += json_integer_value(json_object_get(b, "requests_total"));
        fives += json_integer_value(json_object_get(json_object_get(b, "responses"), "5xx"));
        cr_assert_not_null(json_object_get(json_object_get(b, "latency"), "p99_ms"));
    }
    cr_assert_eq(total, 5);
    cr_assert_eq(fives, 1);
    http_resp_free(r);

    r = get(true, "/metrics");
    cr_assert_eq(r->status, 200);
    char *line = xasprintf("balancer_backend_up{backend=\"127.0.0.1:%d\"} 1", st.ports[0]);
    cr_assert_not_null(strstr(r->body, line), "%s", r->body);
    free(line);
    cr_assert_not_null(strstr(r->body, "# TYPE balancer_backend_latency_seconds histogram"));
    cr_assert_not_null(strstr(r->body, "balancer_requests_total 5\n"), "%s", r->body);
    cr_assert_not_null(strstr(r->body, ",code=\"5xx\"} 1\n"));
    http_resp_free(r);

    r = get(true, "/nope");
    cr_assert_eq(r->status, 404);
    http_resp_free(r);
    /* One access-log line per proxied request. */
    cr_assert_eq(test_balancer_log_count(st.lb, " access client="), 5);
}

Test(balancer_ops, sighup_changes_backends_keeping_connections_and_health)
{
    const char *extra[] = {"BALANCER_HEALTH_INTERVAL_MS=100", NULL};
    start(3, extra);
    /* C fails its checks and goes down. */
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/set-health?code=503", st.ports[2]);
    struct http_client *direct = http_client_new();
    http_resp_free(http_request(direct, "GET", url, NULL, NULL, NULL));
    http_client_free(direct);
    harness_sleep_ms(600);
    http_resp_free(get(false, "/whoami")); /* opens the kept-alive client connection */

    /* New list: A dropped, B and C kept. C must stay down (health state survives). */
    char list[128];
    snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d", st.ports[1], st.ports[2]);
    const char *slow[] = {"BALANCER_HEALTH_INTERVAL_MS=60000", NULL};
    test_balancer_rewrite_env(st.lb, list, slow);
    harness_signal(st.lb->proc, SIGHUP);
    for (int t = 0; t < 40 && test_balancer_log_count(st.lb, "configuration reloaded") == 0; t++)
        harness_sleep_ms(50);
    cr_assert_eq(test_balancer_log_count(st.lb, "configuration reloaded"), 1);
    for (int i = 0; i < 6; i++) {
        struct http_resp *r = get(false, "/whoami");
        cr_assert_eq(r->status, 200, "%ld %s", r->status, r->error);
        cr_assert_str_eq(r->body, "B", "request %d went to %s", i, r->body);
        http_resp_free(r);
    }
    struct http_resp *r = get(true, "/status");
    json_t *list_json = json_object_get(r->json, "backends");
    cr_assert_eq(json_array_size(list_json), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(list_json, 1), "state")), "down");
    /* The client connection opened before the reload was never closed. */
    cr_assert_eq(json_integer_value(json_object_get(r->json, "accepted_total")), 2);
    http_resp_free(r);

    /* A bad list is refused and the running one stays. */
    test_balancer_rewrite_env(st.lb, "not-a-backend", NULL);
    harness_signal(st.lb->proc, SIGHUP);
    for (int t = 0; t < 40 && test_balancer_log_count(st.lb, "reload refused") == 0; t++)
        harness_sleep_ms(50);
    cr_assert_eq(test_balancer_log_count(st.lb, "reload refused"), 1);
    r = get(false, "/whoami");
    cr_assert_eq(r->status, 200);
    http_resp_free(r);
}

Test(balancer_ops, sigterm_finishes_in_flight_requests)
{
    start(1, NULL);
    pid_t child = fork();
    if (child == 0) {
        harness_sleep_ms(300);
        kill(harness_pid(st.lb->proc), SIGTERM);
        _exit(0);
    }
    struct http_resp *r = get(false, "/slow?ms=1000");
    cr_assert_eq(r->status, 200, "in-flight request lost: %ld %s", r->status, r->error);
    cr_assert_str_eq(r->body, "slow\n");
    cr_assert_str_eq(http_resp_header(r, "Connection"), "close");
    http_resp_free(r);
    waitpid(child, NULL, 0);
    int status = harness_wait_exit(st.lb->proc, 3000);
    cr_assert_neq(status, -1, "balancer still running");
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    st.lb->proc = NULL;
    free(st.lb->log);
    free(st.lb->envfile);
    free(st.lb);
    st.lb = NULL;
}

static int run_balancer(const char *const args[], char *out, size_t outlen)
{
    char *bin = harness_bin("balancer");
    char *cmd = xasprintf("%s", bin);
    for (const char *const *a = args; *a; a++) {
        char *next = xasprintf("%s '%s'", cmd, *a);
        free(cmd);
        cmd = next;
    }
    char *full = xasprintf("%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    free(bin);
    free(cmd);
    free(full);
    return WEXITSTATUS(status);
}

Test(balancer_ops, command_line_help_version_and_bad_config)
{
    char out[8192];
    const char *help[] = {"--help", NULL};
    cr_assert_eq(run_balancer(help, out, sizeof(out)), 0);
    cr_assert_not_null(strstr(out, "BALANCER_BACKENDS"));
    cr_assert_not_null(strstr(out, "BALANCER_MAX_BODY_BYTES"));
    const char *version[] = {"--version", NULL};
    cr_assert_eq(run_balancer(version, out, sizeof(out)), 0);
    cr_assert_not_null(strstr(out, "balancer "));
    const char *bad[] = {"--balancer-backends=127.0.0.1:0", NULL};
    cr_assert_neq(run_balancer(bad, out, sizeof(out)), 0);
    cr_assert_not_null(strstr(out, "BALANCER_BACKENDS"), "%s", out);
    cr_assert_null(strchr(out, '\n') == out + strlen(out) - 1 ? NULL : "", "more than one line: %s", out);
    const char *bad2[] = {"--balancer-health-fall=0", NULL};
    cr_assert_neq(run_balancer(bad2, out, sizeof(out)), 0);
    const char *bad3[] = {"--no-such-flag", NULL};
    cr_assert_neq(run_balancer(bad3, out, sizeof(out)), 0);
    const char *bad4[] = {"--balancer-poll-yield=sometimes", NULL};
    cr_assert_neq(run_balancer(bad4, out, sizeof(out)), 0);
    cr_assert_not_null(strstr(out, "BALANCER_POLL_YIELD"), "%s", out);
}
