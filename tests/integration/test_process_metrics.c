/* The process_* and *_build_info series on every daemon's /metrics, shopd's age
 * of the oldest pending order and the balancer's reload and drain state; each
 * endpoint's text passes `promtool check metrics`. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/services.h"
#include "tests/support/shop.h"
#include "tests/support/test_stack.h"
#include "tests/support/raw_socket.h"

static struct shop_server *shop;
static struct test_stack st;
static struct harness_proc *redis, *rld;
static char *dir;

static void teardown(void)
{
    shop_stop(shop);
    shop = NULL;
    test_stack_stop(&st);
    harness_stop(rld, 3000);
    rld = NULL;
    harness_stop(redis, 3000);
    redis = NULL;
    if (dir)
        harness_rmrf(dir);
    free(dir);
    dir = NULL;
}

TestSuite(process_metrics, .fini = teardown, .timeout = 60);

/* The value of the first sample line that starts with prefix (name and labels), or -1. */
static double sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, prefix, n) == 0 && line[n] == ' ')
            return atof(line + n + 1);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -1;
}

/* GET url; asserts 200 and returns the body (caller frees). */
static char *scrape(const char *url)
{
    struct http_client *c = http_client_new();
    struct http_resp *r = http_request(c, "GET", url, NULL, NULL, NULL);
    cr_assert_eq(r->status, 200, "GET %s: %d", url, r->status);
    char *text = xstrdup(r->body);
    http_resp_free(r);
    http_client_free(c);
    return text;
}

/* Scrapes url until the series has a sample above 0 (a process that records itself
 * just after its fork), at most 5 s; returns the last scrape (caller frees). */
static char *scrape_until(const char *url, const char *series)
{
    char *text = NULL;
    for (int i = 0; i < 50; i++) {
        free(text);
        text = scrape(url);
        if (sample(text, series) > 0)
            break;
        harness_sleep_ms(100);
    }
    return text;
}

/* Runs promtool check metrics on text; asserts it exits 0 with nothing to say
 * (promtool also prints lint problems such as a missing HELP, still exiting 0
 * for some of them). */
static void promtool_check(const char *name, const char *text)
{
    char *path = harness_output_path(name);
    services_write_file(path, text);
    char *cmd = xasprintf("promtool check metrics < '%s' 2>&1", path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char out[4096];
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "promtool on %s: %s", path, out);
    cr_assert_eq(n, 0, "promtool on %s: %s", path, out);
    free(cmd);
    free(path);
}

/* The process_* series of one process (labels "" or "{...}") are present and sane. */
static void expect_process(const char *text, const char *labels)
{
    char key[160];
    double now = (double)time(NULL);
    snprintf(key, sizeof(key), "process_start_time_seconds%s", labels);
    double start = sample(text, key);
    cr_expect(start > now - 120 && start <= now + 1, "%s = %f, now %f\n%s", key, start, now, text);
    snprintf(key, sizeof(key), "process_resident_memory_bytes%s", labels);
    cr_expect_gt(sample(text, key), 1024 * 1024, "%s", key);
    snprintf(key, sizeof(key), "process_cpu_seconds_total%s", labels);
    cr_expect_geq(sample(text, key), 0, "%s", key);
    snprintf(key, sizeof(key), "process_open_fds%s", labels);
    double fds = sample(text, key);
    cr_expect_gt(fds, 2, "%s", key);
    snprintf(key, sizeof(key), "process_max_fds%s", labels);
    cr_expect_geq(sample(text, key), fds, "%s", key);
}

Test(process_metrics, shopd_per_role_and_oldest_pending_order)
{
    shop = shop_start(NULL); /* the dispatcher is off: orders stay pending */
    /* shopd answers once its first worker serves; the second is forked only then. */
    char *text =
        scrape_until(shop_url(shop, "/metrics"), "process_start_time_seconds{role=\"worker\",worker=\"1\"}");
    promtool_check("metrics-shopd-1.txt", text);
    cr_expect_eq(sample(text, "shopd_worker_restarts_total"), 0, "no worker died meanwhile\n%s", text);
    cr_expect_eq(sample(text, "shopd_outbox_oldest_pending_age_seconds"), 0, "%s", text);
    cr_expect_eq(sample(text, "shopd_build_info{version=\"" SHOP_VERSION "\"}"), 1);
    expect_process(text, "{role=\"master\"}");
    expect_process(text, "{role=\"worker\",worker=\"0\"}");
    expect_process(text, "{role=\"worker\",worker=\"1\"}");
    cr_expect_eq(sample(text, "process_open_fds{role=\"dispatcher\"}"), -1, "no dispatcher runs");
    free(text);

    struct http_client *c = http_client_new();
    shop_register_login(shop, c, "age@example.com", "password123");
    http_resp_free(http_json(c, "POST", shop_url(shop, "/cart/items"), "{\"product_id\":1,\"quantity\":1}"));
    struct http_resp *r = http_json(c, "POST", shop_url(shop, "/checkout"), NULL);
    cr_assert_eq(r->status, 201, "%s", r->body);
    http_resp_free(r);
    http_client_free(c);
    harness_sleep_ms(1200);
    text = scrape(shop_url(shop, "/metrics"));
    promtool_check("metrics-shopd-2.txt", text);
    double age = sample(text, "shopd_outbox_oldest_pending_age_seconds");
    cr_expect(age >= 1.0 && age < 120, "age %f\n%s", age, text);
    free(text);
}

Test(process_metrics, shopd_with_dispatcher_reports_it)
{
    const char *env[] = {"DISPATCHER_ENABLED=1", "DYNAMODB_ENDPOINT=http://127.0.0.1:9", NULL};
    shop = shop_start(env);
    char *text = scrape_until(shop_url(shop, "/metrics"), "process_start_time_seconds{role=\"dispatcher\"}");
    promtool_check("metrics-shopd-3.txt", text);
    expect_process(text, "{role=\"dispatcher\"}");
    free(text);
}

Test(process_metrics, balancer_reloads_and_draining)
{
    test_stack_start(&st, "procmetrics", 1, NULL);
    char *url = test_balancer_url(st.lb, true, "/metrics");
    char *text = scrape(url);
    promtool_check("metrics-balancer-1.txt", text);
    expect_process(text, "");
    cr_expect_eq(sample(text, "balancer_build_info{version=\"" SHOP_VERSION "\"}"), 1);
    cr_expect_eq(sample(text, "balancer_reloads_total"), 0, "%s", text);
    cr_expect_eq(sample(text, "balancer_draining"), 0);
    free(text);

    harness_signal(st.lb->proc, SIGHUP);
    double reloads = 0;
    for (int i = 0; i < 50 && reloads < 1; i++) {
        harness_sleep_ms(50);
        text = scrape(url);
        reloads = sample(text, "balancer_reloads_total");
        free(text);
    }
    cr_expect_eq(reloads, 1);

    /* A request in flight keeps the draining balancer (and its admin port) up. */
    char *slow = test_balancer_url(st.lb, false, "/slow?ms=1500");
    int fd = test_raw_connect(st.lb->port);
    cr_assert_geq(fd, 0);
    char *req = xasprintf("GET /slow?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    harness_sleep_ms(200);
    harness_signal(st.lb->proc, SIGTERM);
    harness_sleep_ms(200);
    text = scrape(url);
    promtool_check("metrics-balancer-2.txt", text);
    cr_expect_eq(sample(text, "balancer_draining"), 1, "%s", text);
    free(text);
    close(fd);
    free(req);
    free(slow);
    free(url);
}

Test(process_metrics, ratelimitd)
{
    dir = harness_tempdir("procm-rld");
    int redis_port = harness_free_port(), metrics_port = harness_free_port();
    char *log = xasprintf("%s/redis.log", dir);
    redis = services_start_redis(dir, redis_port, log);
    free(log);
    char *rules = xasprintf("%s/test.rules", dir), *sock = xasprintf("%s/rl.sock", dir);
    services_write_file(rules, "t 60/1m burst=2\n");
    char *e_metrics = xasprintf("RATELIMITD_METRICS_LISTEN=127.0.0.1:%d", metrics_port);
    const char *extra[] = {e_metrics, NULL};
    log = xasprintf("%s/ratelimitd.log", dir);
    rld = services_start_ratelimitd(dir, sock, redis_port, rules, extra, log);
    cr_assert(harness_wait_port(metrics_port, 5000));
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", metrics_port);
    char *text = scrape(url);
    promtool_check("metrics-ratelimitd.txt", text);
    expect_process(text, "");
    cr_expect_eq(sample(text, "ratelimitd_build_info{version=\"" SHOP_VERSION "\"}"), 1, "%s", text);
    free(text);
    free(log);
    free(e_metrics);
    free(rules);
    free(sock);
}
