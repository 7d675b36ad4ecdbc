/* ratelimitd's Prometheus endpoint (RATELIMITD_METRICS_LISTEN) against a real redis-server:
 * the counters follow CHECKs per rule and result, Redis outages show in redis_up and the
 * degraded counter, and the listener answers only GET/HEAD /metrics. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/services.h"

static const char rules_text[] = "# test budgets\n"
                                 "t       60/1m  burst=2\n"
                                 "other   60/1m  burst=5\n"
                                 "shadowy 1/1h   burst=1 shadow\n";

static char *dir;
static char *rules_path;
static char *sock_path;
static char *log_path;
static int redis_port;
static int metrics_port;
static char metrics_url[128];
static struct harness_proc *redis;
static struct harness_proc *rld;
static struct http_client *http;

static void start_redis(void)
{
    char *log = xasprintf("%s/redis.log", dir);
    redis = services_start_redis(dir, redis_port, log);
    free(log);
}

static void setup(void)
{
    dir = harness_tempdir("rlmetrics");
    rules_path = xasprintf("%s/test.rules", dir);
    sock_path = xasprintf("%s/run/rl.sock", dir);
    log_path = xasprintf("%s/ratelimitd.log", dir);
    services_write_file(rules_path, rules_text);
    redis_port = harness_free_port();
    start_redis();
    metrics_port = harness_free_port();
    snprintf(metrics_url, sizeof(metrics_url), "http://127.0.0.1:%d/metrics", metrics_port);
    char *bin = harness_bin("ratelimitd");
    char *e_sock = xasprintf("RATELIMITD_SOCKET=%s", sock_path);
    char *e_redis = xasprintf("REDIS_URL=redis://127.0.0.1:%d/0", redis_port);
    char *e_rules = xasprintf("RATELIMIT_RULES=%s", rules_path);
    char *e_metrics = xasprintf("RATELIMITD_METRICS_LISTEN=127.0.0.1:%d", metrics_port);
    const char *argv[] = {bin, "--env", "/dev/null", NULL};
    const char *env[] = {e_sock, e_redis, e_rules, e_metrics, "RATELIMITD_REDIS_TIMEOUT_MS=100", NULL};
    rld = harness_start(argv, env, dir, log_path);
    free(bin);
    free(e_sock);
    free(e_redis);
    free(e_rules);
    free(e_metrics);
    if (!harness_wait_unix(sock_path, 5000) || !harness_wait_port(metrics_port, 5000)) {
        harness_dump_log(log_path, 20);
        cr_assert_fail("ratelimitd did not start with its metrics listener");
    }
    http = http_client_new();
}

static void teardown(void)
{
    if (http)
        http_client_free(http);
    http = NULL;
    harness_stop(rld, 3000);
    rld = NULL;
    harness_stop(redis, 3000);
    redis = NULL;
    harness_rmrf(dir);
    free(dir);
    free(rules_path);
    free(sock_path);
    free(log_path);
}

/* --- the line protocol, blocking ---------------------------------------- */

static int rl_connect(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock_path);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
    return fd;
}

/* Sends one request line and returns its answer (static buffer, without "\r\n"). */
static const char *ask(int fd, const char *request)
{
    static char line[512];
    char req[512];
    int n = snprintf(req, sizeof(req), "%s\r\n", request);
    cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    size_t len = 0;
    while (len == 0 || line[len - 1] != '\n') {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert_gt(poll(&p, 1, 3000), 0, "no answer to %s", request);
        ssize_t r = recv(fd, line + len, sizeof(line) - 1 - len, 0);
        cr_assert_gt(r, 0, "connection closed before answering %s", request);
        len += (size_t)r;
    }
    line[len] = 0;
    line[strcspn(line, "\r\n")] = 0;
    return line;
}

/* --- scraping ----------------------------------------------------------- */

static char *scrape(void)
{
    struct http_resp *r = http_request(http, "GET", metrics_url, NULL, NULL, NULL);
    cr_assert_eq(r->status, 200, "GET /metrics: %ld %s", r->status, r->error);
    const char *ct = http_resp_header(r, "Content-Type");
    cr_assert(ct && strncmp(ct, "text/plain; version=0.0.4", 25) == 0, "Content-Type %s", ct ? ct : "(none)");
    char *body = xstrdup(r->body);
    http_resp_free(r);
    return body;
}

/* The value of the sample whose name and labels are exactly series; fails the test when absent. */
static double sample(const char *body, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    cr_assert_fail("no sample %s in:\n%s", series, body);
    return -1;
}

static double scrape_one(const char *series)
{
    char *body = scrape();
    double v = sample(body, series);
    free(body);
    return v;
}

static void wait_metric(const char *series, double want, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        if (scrape_one(series) == want)
            return;
        harness_sleep_ms(50);
    }
    cr_assert_fail("%s never became %g", series, want);
}

#define T_ALLOWED "ratelimitd_decisions_total{rule=\"t\",result=\"allowed\"}"
#define T_DENIED "ratelimitd_decisions_total{rule=\"t\",result=\"denied\"}"

TestSuite(ratelimitd_metrics, .init = setup, .fini = teardown, .timeout = 30);

Test(ratelimitd_metrics, counters_follow_checks_per_rule_and_result)
{
    wait_metric("ratelimitd_redis_up", 1, 3000);
    char *before = scrape();
    cr_assert_eq(sample(before, T_ALLOWED), 0);
    cr_assert_eq(sample(before, T_DENIED), 0);
    cr_assert_eq(sample(before, "ratelimitd_denied_total"), 0);
    cr_assert_eq(sample(before, "ratelimitd_connections"), 0);
    double calls_before = sample(before, "ratelimitd_redis_latency_seconds_count");
    free(before);

    int fd = rl_connect();
    /* Burst 2: two allowed, the third refused. */
    cr_assert_eq(strncmp(ask(fd, "CHECK t k"), "ALLOW ", 6), 0);
    cr_assert_eq(strncmp(ask(fd, "CHECK t k"), "ALLOW ", 6), 0);
    cr_assert_eq(strncmp(ask(fd, "CHECK t k"), "DENY ", 5), 0);
    cr_assert_eq(strncmp(ask(fd, "CHECK other k"), "ALLOW ", 6), 0);
    cr_assert_eq(strncmp(ask(fd, "CHECK nosuchrule k"), "ERR ", 4), 0);

    char *after = scrape();
    cr_assert_eq(sample(after, T_ALLOWED), 2);
    cr_assert_eq(sample(after, T_DENIED), 1);
    cr_assert_eq(sample(after, "ratelimitd_decisions_total{rule=\"other\",result=\"allowed\"}"), 1);
    cr_assert_eq(sample(after, "ratelimitd_decisions_total{rule=\"other\",result=\"denied\"}"), 0);
    cr_assert_eq(sample(after, "ratelimitd_allowed_total"), 3);
    cr_assert_eq(sample(after, "ratelimitd_denied_total"), 1);
    cr_assert_eq(sample(after, "ratelimitd_errors_total"), 1);
    cr_assert_eq(sample(after, "ratelimitd_degraded_decisions_total"), 0);
    cr_assert_eq(sample(after, "ratelimitd_connections"), 1, "the open client connection");
    cr_assert_geq(sample(after, "ratelimitd_redis_latency_seconds_count"), calls_before + 4);
    double sum = sample(after, "ratelimitd_redis_latency_seconds_sum");
    double max = sample(after, "ratelimitd_redis_latency_max_seconds");
    cr_assert(sum > 0 && sum < 10, "latency sum %g s", sum);
    cr_assert(max > 0 && max <= sum, "max %g s, sum %g s", max, sum);
    cr_assert_eq(sample(after, "ratelimitd_rules"), 3);
    /* Every family is announced with its type, once. */
    cr_assert_not_null(strstr(after, "# TYPE ratelimitd_decisions_total counter\n"));
    cr_assert_not_null(strstr(after, "# TYPE ratelimitd_redis_up gauge\n"));
    cr_assert_not_null(strstr(after, "# TYPE ratelimitd_redis_latency_seconds summary\n"));
    const char *first = strstr(after, "# TYPE ratelimitd_decisions_total");
    cr_assert_null(strstr(first + 1, "# TYPE ratelimitd_decisions_total"));
    free(after);

    close(fd);
    wait_metric("ratelimitd_connections", 0, 3000);
}

Test(ratelimitd_metrics, shadow_refusals_are_counted_apart)
{
    wait_metric("ratelimitd_redis_up", 1, 3000);
    int fd = rl_connect();
    cr_assert_eq(strncmp(ask(fd, "CHECK shadowy k"), "ALLOW ", 6), 0);
    cr_assert_eq(strncmp(ask(fd, "CHECK shadowy k"), "ALLOW ", 6), 0, "shadow rules allow");
    close(fd);
    char *body = scrape();
    cr_assert_eq(sample(body, "ratelimitd_decisions_total{rule=\"shadowy\",result=\"allowed\"}"), 1);
    cr_assert_eq(sample(body, "ratelimitd_decisions_total{rule=\"shadowy\",result=\"shadow_denied\"}"), 1);
    cr_assert_eq(sample(body, "ratelimitd_decisions_total{rule=\"shadowy\",result=\"denied\"}"), 0);
    cr_assert_eq(sample(body, "ratelimitd_shadow_denied_total"), 1);
    cr_assert_eq(sample(body, "ratelimitd_denied_total"), 0);
    free(body);
}

Test(ratelimitd_metrics, redis_outage_shows_in_redis_up_and_degraded_decisions)
{
    wait_metric("ratelimitd_redis_up", 1, 3000);
    harness_stop(redis, 3000);
    redis = NULL;
    int fd = rl_connect();
    for (int i = 0; i < 3; i++)
        cr_assert_eq(strncmp(ask(fd, "CHECK other k"), "ALLOW ", 6), 0, "local buckets decide");
    close(fd);
    char *body = scrape();
    cr_assert_eq(sample(body, "ratelimitd_redis_up"), 0);
    cr_assert_geq(sample(body, "ratelimitd_degraded_decisions_total"), 3);
    cr_assert_eq(sample(body, "ratelimitd_decisions_total{rule=\"other\",result=\"allowed\"}"), 3);
    free(body);
    start_redis();
    wait_metric("ratelimitd_redis_up", 1, 8000);
}

Test(ratelimitd_metrics, only_get_and_head_of_metrics)
{
    struct http_resp *r = http_request(http, "HEAD", metrics_url, NULL, NULL, NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_eq(r->len, 0, "HEAD has no body");
    http_resp_free(r);

    r = http_request(http, "POST", metrics_url, "text/plain", "x", NULL);
    cr_assert_eq(r->status, 405);
    const char *allow = http_resp_header(r, "Allow");
    cr_assert(allow && strstr(allow, "GET"), "Allow: %s", allow ? allow : "(none)");
    http_resp_free(r);

    char url[160];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", metrics_port);
    r = http_request(http, "GET", url, NULL, NULL, NULL);
    cr_assert_eq(r->status, 404);
    http_resp_free(r);

    /* The daemon still decides after the odd requests. */
    int fd = rl_connect();
    cr_assert_str_eq(ask(fd, "PING"), "PONG");
    close(fd);
}

/* Starts a second ratelimitd with metrics_listen and expects it to exit non-zero naming msg. */
static void expect_refusal(const char *metrics_listen, const char *msg)
{
    char *bin = harness_bin("ratelimitd");
    char *log = xasprintf("%s/bad.log", dir);
    unlink(log);
    char *e_sock = xasprintf("RATELIMITD_SOCKET=%s/bad/rl.sock", dir);
    char *e_redis = xasprintf("REDIS_URL=redis://127.0.0.1:%d/0", redis_port);
    char *e_rules = xasprintf("RATELIMIT_RULES=%s", rules_path);
    char *e_metrics = xasprintf("RATELIMITD_METRICS_LISTEN=%s", metrics_listen);
    const char *argv[] = {bin, "--env", "/dev/null", NULL};
    const char *env[] = {e_sock, e_redis, e_rules, e_metrics, NULL};
    services_expect_start_failure(argv, env, dir, log, msg);
    free(bin);
    free(log);
    free(e_sock);
    free(e_redis);
    free(e_rules);
    free(e_metrics);
}

Test(ratelimitd_metrics, bad_or_busy_listen_address_refuses_to_start)
{
    expect_refusal("nonsense", "RATELIMITD_METRICS_LISTEN");
    expect_refusal("127.0.0.1:0", "RATELIMITD_METRICS_LISTEN");
    char busy[64];
    snprintf(busy, sizeof(busy), "127.0.0.1:%d", metrics_port);
    expect_refusal(busy, "cannot listen");
}
