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
#include "tests/support/test_backend.h"

static struct test_backend *be[3];
static int ports[3];
static struct test_balancer *lb;
static struct http_client *cl;

static void teardown(void)
{
    http_client_free(cl);
    test_balancer_stop(lb);
    for (int i = 0; i < 3; i++)
        test_backend_stop(be[i]);
}

TestSuite(balancer_ops, .fini = teardown, .timeout = 30);

static void start(int n, const char *const extra[])
{
    static const char *const names[] = {"A", "B", "C"};
    char list[160] = "";
    for (int i = 0; i < n; i++) {
        ports[i] = harness_free_port();
        be[i] = test_backend_start(ports[i], names[i], NULL);
        char one[40];
        snprintf(one, sizeof(one), "%s127.0.0.1:%d", i ? "," : "", ports[i]);
        strcat(list, one);
    }
    lb = test_balancer_start("ops", list, extra);
    cl = http_client_new();
}

static struct http_resp *get(bool admin, const char *path)
{
    char *url = test_balancer_url(lb, admin, path);
    struct http_resp *r = http_request(cl, "GET", url, NULL, NULL, NULL);
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
    char *line = xasprintf("balancer_backend_up{backend=\"127.0.0.1:%d\"} 1", ports[0]);
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
    cr_assert_eq(test_balancer_log_count(lb, " access client="), 5);
}

Test(balancer_ops, sighup_changes_backends_keeping_connections_and_health)
{
    const char *extra[] = {"BALANCER_HEALTH_INTERVAL_MS=100", NULL};
    start(3, extra);
    /* C fails its checks and goes down. */
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/set-health?code=503", ports[2]);
    struct http_client *direct = http_client_new();
    http_resp_free(http_request(direct, "GET", url, NULL, NULL, NULL));
    http_client_free(direct);
    harness_sleep_ms(600);
    http_resp_free(get(false, "/whoami")); /* opens the kept-alive client connection */

    /* New list: A dropped, B and C kept. C must stay down (health state survives). */
    char list[128];
    snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d", ports[1], ports[2]);
    const char *slow[] = {"BALANCER_HEALTH_INTERVAL_MS=60000", NULL};
    test_balancer_rewrite_env(lb, list, slow);
    harness_signal(lb->proc, SIGHUP);
    for (int t = 0; t < 40 && test_balancer_log_count(lb, "configuration reloaded") == 0; t++)
        harness_sleep_ms(50);
    cr_assert_eq(test_balancer_log_count(lb, "configuration reloaded"), 1);
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
    test_balancer_rewrite_env(lb, "not-a-backend", NULL);
    harness_signal(lb->proc, SIGHUP);
    for (int t = 0; t < 40 && test_balancer_log_count(lb, "reload refused") == 0; t++)
        harness_sleep_ms(50);
    cr_assert_eq(test_balancer_log_count(lb, "reload refused"), 1);
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
        kill(harness_pid(lb->proc), SIGTERM);
        _exit(0);
    }
    struct http_resp *r = get(false, "/slow?ms=1000");
    cr_assert_eq(r->status, 200, "in-flight request lost: %ld %s", r->status, r->error);
    cr_assert_str_eq(r->body, "slow\n");
    cr_assert_str_eq(http_resp_header(r, "Connection"), "close");
    http_resp_free(r);
    waitpid(child, NULL, 0);
    int st = harness_wait_exit(lb->proc, 3000);
    cr_assert_neq(st, -1, "balancer still running");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    lb->proc = NULL;
    free(lb->log);
    free(lb->envfile);
    free(lb);
    lb = NULL;
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
    int st = pclose(p);
    free(bin);
    free(cmd);
    free(full);
    return WEXITSTATUS(st);
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
