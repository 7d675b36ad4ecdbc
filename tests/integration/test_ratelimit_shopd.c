/* The rate-limit path through shopd: real redis-server, ratelimitd and shopd. A spent
 * budget answers 429 with Retry-After and the RateLimit fields; with ratelimitd gone,
 * shopd serves requests anyway (fail open) and without RateLimit fields. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/services.h"
#include "tests/support/test_database.h"

/* Tight budgets so the test reaches them quickly; one token an hour so nothing refills. */
static const char rules_text[] = "api       1/1h burst=3\n"
                                 "page      1/1h burst=2\n"
                                 "login     1/1h burst=2\n"
                                 "register  1/1h burst=2\n"
                                 "cart      1/1h burst=2\n"
                                 "checkout  1/1h burst=2\n";

static char *dir;
static char *sock;
static char *shopd_log;
static char *rld_log;
static int shop_port;
static struct harness_proc *redis, *rld, *shopd;

static void setup(void)
{
    dir = harness_tempdir("rlshopd");
    sock = xasprintf("%s/run/rl.sock", dir);
    shopd_log = harness_output_path("ratelimit_shopd_shopd.log");
    rld_log = harness_output_path("ratelimit_shopd_ratelimitd.log");
    char *rules = xasprintf("%s/test.rules", dir);
    services_write_file(rules, rules_text);

    int redis_port = harness_free_port();
    redis = services_start_redis(dir, redis_port, NULL);

    rld = services_start_ratelimitd(dir, sock, redis_port, rules, NULL, rld_log);
    char *e_sock = xasprintf("RATELIMITD_SOCKET=%s", sock);

    shop_port = harness_free_port();
    char *sbin = harness_bin("shopd");
    char *e_listen = xasprintf("SHOPD_LISTEN=127.0.0.1:%d", shop_port);
    const char *argv2[] = {sbin, NULL};
    char *database = test_database_is_postgres() ? test_database_url(dir) : xstrdup("sqlite:///:memory:");
    char *e_database = xasprintf("DATABASE_URL=%s", database);
    /* Run from the checkout: templates and static files are found relative to it. */
    const char *env2[] = {
        e_listen, e_sock, "SHOPD_WORKERS=1", e_database, "SHOP_ENV=development", "RATELIMIT_TIMEOUT_MS=200",
        NULL};
    shopd = harness_start(argv2, env2, harness_root(), shopd_log);
    if (!harness_wait_port(shop_port, 10000)) {
        harness_dump_log(shopd_log, 30);
        cr_assert_fail("shopd did not start");
    }
    free(rules);
    free(sbin);
    free(e_sock);
    free(e_listen);
    free(database);
    free(e_database);
}

static void teardown(void)
{
    harness_stop(shopd, 5000);
    harness_stop(rld, 3000);
    harness_stop(redis, 3000);
    harness_rmrf(dir);
    free(dir);
    free(sock);
    free(shopd_log);
    free(rld_log);
}

TestSuite(ratelimit_shopd, .init = setup, .fini = teardown, .timeout = 40);

static struct http_resp *get(struct http_client *c, const char *path)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", shop_port, path);
    return http_request(c, "GET", url, NULL, NULL, NULL);
}

Test(ratelimit_shopd, spent_budget_answers_429_with_ratelimit_fields)
{
    struct http_client *c = http_client_new();
    /* ratelimitd may still be connecting to Redis: wait (at most 8 s) for the first checked answer. */
    struct http_resp *r = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        r = get(c, "/products");
        if (r->status == 200 && http_resp_header(r, "RateLimit-Limit"))
            break;
        cr_assert_neq(r->status, 0, "shopd does not answer: %s", r->error);
        http_resp_free(r);
        r = NULL;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (t1.tv_sec - t0.tv_sec > 8)
            break;
        harness_sleep_ms(50);
    }
    cr_assert_not_null(r, "no budget-checked answer from shopd within 8 s");
    cr_assert_str_eq(http_resp_header(r, "RateLimit-Limit"), "3");
    int first_remaining = atoi(http_resp_header(r, "RateLimit-Remaining"));
    cr_assert_leq(first_remaining, 2);
    cr_assert_str_eq(http_resp_header(r, "RateLimit-Policy"), "\"api\";q=3;w=10800");
    char want[64];
    snprintf(want, sizeof(want), "\"api\";r=%d;t=", first_remaining);
    cr_assert_eq(strncmp(http_resp_header(r, "RateLimit"), want, strlen(want)), 0, "%s",
                 http_resp_header(r, "RateLimit"));
    cr_assert_null(http_resp_header(r, "Retry-After"));
    http_resp_free(r);

    for (int i = first_remaining; i > 0; i--) {
        r = get(c, "/products");
        cr_assert_eq(r->status, 200);
        cr_assert_eq(atoi(http_resp_header(r, "RateLimit-Remaining")), i - 1);
        http_resp_free(r);
    }
    r = get(c, "/products");
    cr_assert_eq(r->status, 429, "status %ld: %s", r->status, r->body);
    cr_assert(strncmp(r->headers, "HTTP/1.1 429 Too Many Requests\r\n", 32) == 0, "status line: %.40s",
              r->headers);
    const char *ra = http_resp_header(r, "Retry-After");
    cr_assert_not_null(ra);
    long retry = atol(ra);
    cr_assert(retry > 3500 && retry <= 3600, "Retry-After %ld", retry);
    cr_assert_str_eq(http_resp_header(r, "RateLimit-Remaining"), "0");
    cr_assert_str_eq(http_resp_header(r, "RateLimit-Limit"), "3");
    cr_assert_not_null(http_resp_header(r, "RateLimit-Policy"));
    cr_assert_not_null(r->json, "429 from the API is JSON: %s", r->body);
    cr_assert_not_null(json_object_get(r->json, "message"));
    http_resp_free(r);

    /* Another rule keeps its own budget; /healthz is not budget-checked at all. */
    r = get(c, "/healthz");
    cr_assert_eq(r->status, 200);
    cr_assert_null(http_resp_header(r, "RateLimit-Limit"));
    http_resp_free(r);
    http_client_free(c);
}

Test(ratelimit_shopd, fails_open_when_ratelimitd_is_gone)
{
    struct http_client *c = http_client_new();
    harness_stop(rld, 3000);
    rld = NULL;
    harness_sleep_ms(100);
    for (int i = 0; i < 6; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        struct http_resp *r = get(c, "/products");
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        cr_assert_eq(r->status, 200, "request %d: %ld %s", i, r->status, r->error);
        cr_assert_null(http_resp_header(r, "RateLimit-Limit"), "no budget was checked");
        /* Ten times the 200 ms check timeout: failing open at once or at the timeout both
           pass, a request held while shopd waits on the missing daemon does not. */
        cr_assert_lt(ms, 2000, "request %d took %ld ms (RATELIMIT_TIMEOUT_MS=200)", i, ms);
        http_resp_free(r);
    }
    cr_assert(harness_alive(shopd));
    http_client_free(c);
}

/* Lines of ratelimitd's log (appended to across runs) that contain needle. */
static int rld_log_count(const char *needle)
{
    FILE *f = fopen(rld_log, "r");
    if (!f)
        return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* Sends SIGHUP and waits for one more log line containing needle. */
static void reload_and_wait(const char *needle)
{
    int before = rld_log_count(needle);
    harness_signal(rld, SIGHUP);
    for (int i = 0; i < 100 && rld_log_count(needle) == before; i++)
        harness_sleep_ms(50);
    cr_assert_gt(rld_log_count(needle), before, "ratelimitd never logged '%s'", needle);
}

/* What `systemctl reload shop-ratelimitd` does: SIGHUP. A good new rules file
 * takes effect, with ratelimitd alive; a bad one is refused and the old rules
 * stay in force. */
Test(ratelimit_shopd, sighup_reloads_the_rules_and_refuses_a_bad_file)
{
    struct http_client *c = http_client_new();
    struct http_resp *r = NULL;
    for (int i = 0; i < 160; i++) {
        r = get(c, "/products");
        if (r->status == 200 && http_resp_header(r, "RateLimit-Policy"))
            break;
        http_resp_free(r);
        r = NULL;
        harness_sleep_ms(50);
    }
    cr_assert_not_null(r, "no checked answer");
    cr_assert_str_eq(http_resp_header(r, "RateLimit-Policy"), "\"api\";q=3;w=10800");
    http_resp_free(r);

    char *rules = xasprintf("%s/test.rules", dir);
    services_write_file(rules, "api 1/1h burst=7\npage 1/1h burst=2\nlogin 1/1h burst=2\n"
                               "register 1/1h burst=2\ncart 1/1h burst=2\ncheckout 1/1h burst=2\n");
    reload_and_wait("reloaded: 6 rules");
    cr_assert(harness_alive(rld), "ratelimitd died of SIGHUP");
    r = get(c, "/products");
    cr_assert_str_eq(http_resp_header(r, "RateLimit-Policy"), "\"api\";q=7;w=25200",
                     "the new budget is used");
    http_resp_free(r);

    services_write_file(rules, "api 1/1h burst=zero\n");
    reload_and_wait("reload refused");
    cr_assert(harness_alive(rld), "ratelimitd died of a bad reload");
    r = get(c, "/products");
    cr_assert_str_eq(http_resp_header(r, "RateLimit-Policy"), "\"api\";q=7;w=25200", "the old rules stay");
    http_resp_free(r);
    free(rules);
    http_client_free(c);
}

/* A second stack whose api budget is large enough to be leased (a share is 1/16 of the
 * burst: 20 of 320), with a shopd of two workers. */
struct lease_stack {
    char *sock, *rld_log, *shop_log;
    struct harness_proc *redis, *rld, *shop;
    int port;
};

static void lease_stack_start(struct lease_stack *st)
{
    char *rules = xasprintf("%s/lease.rules", dir);
    services_write_file(rules, "api 1/1h burst=320\npage 1/1h burst=2\nlogin 1/1h burst=2\n"
                               "register 1/1h burst=2\ncart 1/1h burst=2\ncheckout 1/1h burst=2\n");
    st->sock = xasprintf("%s/run/rl-lease.sock", dir);
    st->rld_log = harness_output_path("ratelimit_shopd_lease_ratelimitd.log");
    st->shop_log = harness_output_path("ratelimit_shopd_lease_shopd.log");
    int redis_port = harness_free_port();
    st->redis = services_start_redis(dir, redis_port, NULL);
    st->rld = services_start_ratelimitd(dir, st->sock, redis_port, rules, NULL, st->rld_log);
    st->port = harness_free_port();
    char *sbin = harness_bin("shopd");
    char *e_listen = xasprintf("SHOPD_LISTEN=127.0.0.1:%d", st->port);
    char *e_sock = xasprintf("RATELIMITD_SOCKET=%s", st->sock);
    char *database = test_database_is_postgres() ? test_database_url(dir) : xstrdup("sqlite:///:memory:");
    char *e_database = xasprintf("DATABASE_URL=%s", database);
    const char *argv[] = {sbin, NULL};
    const char *env[] = {e_listen, e_sock, "SHOPD_WORKERS=2", e_database, "SHOP_ENV=development", NULL};
    st->shop = harness_start(argv, env, harness_root(), st->shop_log);
    cr_assert(harness_wait_port(st->port, 10000), "shopd did not start");
    free(rules);
    free(sbin);
    free(e_listen);
    free(e_sock);
    free(database);
    free(e_database);
}

static void lease_stack_stop(struct lease_stack *st)
{
    harness_stop(st->shop, 5000);
    harness_stop(st->rld, 3000);
    harness_stop(st->redis, 3000);
    free(st->sock);
    free(st->rld_log);
    free(st->shop_log);
}

/* GETs /products until an answer was budget-checked (ratelimitd may still be reaching
 * Redis); returns that answer's RateLimit-Remaining. */
static int first_checked_answer(struct http_client *c, const char *url)
{
    for (int i = 0; i < 200; i++) {
        struct http_resp *r = http_request(c, "GET", url, NULL, NULL, NULL);
        const char *remaining = r->status == 200 ? http_resp_header(r, "RateLimit-Remaining") : NULL;
        int value = remaining ? atoi(remaining) : -1;
        http_resp_free(r);
        if (value >= 0)
            return value;
        harness_sleep_ms(50);
    }
    cr_assert_fail("no budget-checked answer");
    return -1;
}

/* Two workers answering one client on four connections, in turns, never let more than
 * the burst through, and lose at most a share each to tokens they held when the client
 * stopped. */
Test(ratelimit_shopd, leased_budget_is_never_exceeded_by_two_workers)
{
    struct lease_stack st;
    lease_stack_start(&st);
    struct http_client *c[4];
    for (int i = 0; i < 4; i++)
        c[i] = http_client_new();
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/products", st.port);
    first_checked_answer(c[0], url);
    int ok = 1, refused = 0, unchecked = 0;
    for (int i = 0; i < 600; i++) {
        struct http_resp *r = http_request(c[i % 4], "GET", url, NULL, NULL, NULL);
        if (r->status == 200 && http_resp_header(r, "RateLimit-Limit")) {
            ok++;
        } else if (r->status == 429) {
            refused++;
            cr_assert_not_null(http_resp_header(r, "Retry-After"), "request %d", i);
        } else {
            unchecked++;
        }
        http_resp_free(r);
    }
    cr_assert_eq(unchecked, 0, "%d answers were neither checked nor refused", unchecked);
    cr_assert_leq(ok, 320, "%d allowed of a burst of 320", ok);
    cr_assert_geq(ok, 320 - 2 * 20, "%d allowed of a burst of 320", ok);
    cr_assert_eq(ok + refused, 601);
    cr_assert_gt(services_ratelimitd_stat(st.sock, "lease_tokens"), 0, "the budget was leased");
    cr_assert_lt(services_ratelimitd_stat(st.sock, "decisions"), 601 / 2, "checks decided in shopd");
    for (int i = 0; i < 4; i++)
        http_client_free(c[i]);
    lease_stack_stop(&st);
}

/* A visitor whose requests come further apart than a lease lives is checked one token
 * at a time: each request costs one token of a leasable budget, not a lease's worth. */
Test(ratelimit_shopd, spaced_requests_cost_one_token_each)
{
    struct lease_stack st;
    lease_stack_start(&st);
    struct http_client *c = http_client_new();
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/products", st.port);
    int before = first_checked_answer(c, url);
    for (int i = 1; i <= 6; i++) {
        harness_sleep_ms(120); /* over twice a lease's 50 ms */
        struct http_resp *r = http_request(c, "GET", url, NULL, NULL, NULL);
        cr_assert_eq(r->status, 200, "request %d", i);
        const char *remaining = http_resp_header(r, "RateLimit-Remaining");
        cr_assert_not_null(remaining, "request %d", i);
        cr_assert_eq(atoi(remaining), before - i, "request %d: %s tokens left, %d before the first", i,
                     remaining, before);
        http_resp_free(r);
    }
    cr_assert_eq(services_ratelimitd_stat(st.sock, "lease_tokens"), 0, "nothing worth leasing");
    http_client_free(c);
    lease_stack_stop(&st);
}
