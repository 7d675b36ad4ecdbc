/* The shopd rate-limit client against a real ratelimitd (with Redis), in an event loop:
 * verdicts, headers, pipelining, key sanitising, fail-open when the daemon is down or
 * stopped, and reconnecting when it comes back. */
#include <criterion/criterion.h>
#include <sys/queue.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shared/xalloc.h"
#include "shopd/ratelimit_client.h"
#include "shopd/rl_lease.h"
#include "tests/support/harness.h"
#include "tests/support/services.h"

static const char rules_text[] = "t     60/1m burst=3\n"
                                 "bulk  1/1h  burst=1000\n"
                                 "pair  1/1h  burst=2\n"
                                 "big   1/1h  burst=100000\n"
                                 "stream 1/1h  burst=1600\n"
                                 "hot   1/1h  burst=64\n";

static char *dir;
static char *sock;
static char *rules_path;
static char *rld_log;
static int redis_port;
static struct harness_proc *redis;
static struct harness_proc *rld;
static struct event_base *base;

static void start_rld(void)
{
    char *bin = harness_bin("ratelimitd");
    char *e_sock = xasprintf("RATELIMITD_SOCKET=%s", sock);
    char *e_redis = xasprintf("REDIS_URL=redis://127.0.0.1:%d/0", redis_port);
    char *e_rules = xasprintf("RATELIMIT_RULES=%s", rules_path);
    const char *argv[] = {bin, NULL};
    const char *env[] = {e_sock, e_redis, e_rules, NULL};
    rld = harness_start(argv, env, dir, rld_log);
    free(bin);
    free(e_sock);
    free(e_redis);
    free(e_rules);
    if (!harness_wait_unix(sock, 5000)) {
        harness_dump_log(rld_log, 20);
        cr_assert_fail("ratelimitd did not start");
    }
}

static void setup(void)
{
    dir = harness_tempdir("rlclient");
    sock = xasprintf("%s/rl.sock", dir);
    rules_path = xasprintf("%s/test.rules", dir);
    rld_log = xasprintf("%s/ratelimitd.log", dir);
    FILE *f = fopen(rules_path, "w");
    cr_assert_not_null(f);
    fputs(rules_text, f);
    fclose(f);
    redis_port = harness_free_port();
    redis = services_start_redis(dir, redis_port, NULL);
    base = event_base_new();
}

static void teardown(void)
{
    if (rld) {
        kill(harness_pid(rld), SIGCONT);
        harness_stop(rld, 3000);
    }
    rld = NULL;
    harness_stop(redis, 3000);
    event_base_free(base);
    harness_rmrf(dir);
    free(dir);
    free(sock);
    free(rules_path);
    free(rld_log);
}

TestSuite(rl_client, .init = setup, .fini = teardown, .timeout = 30);

/* --- collecting results from the loop ----------------------------------- */

#define MAX_RESULTS 1024

struct collector {
    struct rl_result res[MAX_RESULTS];
    int order[MAX_RESULTS]; /* which request each callback belonged to */
    int count;
    bool inside_check; /* set while rl_client_check runs: callbacks must not see it */
    bool reentered;
};

struct ticket {
    struct collector *col;
    int index;
};

static struct ticket tickets[MAX_RESULTS];

static void on_done(const struct rl_result *res, void *arg)
{
    struct ticket *t = arg;
    struct collector *col = t->col;
    if (col->inside_check)
        col->reentered = true;
    cr_assert_lt(col->count, MAX_RESULTS);
    col->order[col->count] = t->index;
    col->res[col->count++] = *res;
}

static void check(struct rl_client *c, struct collector *col, int index, const char *rule, const char *key,
                  int cost)
{
    tickets[index].col = col;
    tickets[index].index = index;
    col->inside_check = true;
    rl_client_check(c, rule, key, cost, on_done, &tickets[index]);
    col->inside_check = false;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(base);
}

/* Runs the loop until col has want results or timeout_ms passed; returns elapsed ms. */
static long run_until(struct collector *col, int want, int timeout_ms)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 2000};
    event_add(tick, &tv);
    long ms = 0;
    while (col->count < want && ms < timeout_ms) {
        event_base_loop(base, EVLOOP_ONCE);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    }
    event_free(tick);
    return ms;
}

/* Lets the loop run for ms milliseconds (connecting, reconnecting). */
static void spin(int ms)
{
    struct collector none = {0};
    run_until(&none, 1, ms);
}

Test(rl_client, allow_then_deny_with_headers)
{
    start_rld();
    struct rl_client *c = rl_client_new(base, sock, 1000);
    spin(300); /* let ratelimitd reach Redis */
    struct collector col = {0};
    for (int i = 0; i < 4; i++)
        check(c, &col, i, "t", "10.1.1.1", 1);
    cr_assert_eq(col.count, 0, "no callback inside rl_client_check");
    run_until(&col, 4, 3000);
    cr_assert_eq(col.count, 4);
    cr_assert_not(col.reentered);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(col.res[i].verdict, RL_ALLOW, "check %d", i);
        cr_assert_eq(col.res[i].limit, 3);
        cr_assert_eq(col.res[i].remaining, 2 - i);
        cr_assert_eq(col.res[i].reset_seconds, i + 1);
        cr_assert_eq(col.res[i].window_seconds, 3);
    }
    const struct rl_result *deny = &col.res[3];
    cr_assert_eq(deny->verdict, RL_DENY);
    cr_assert(deny->retry_after_ms > 500 && deny->retry_after_ms <= 1000, "%ld", deny->retry_after_ms);

    struct evkeyvalq h;
    TAILQ_INIT(&h);
    rl_add_headers(&h, "t", &col.res[1]);
    cr_assert_str_eq(evhttp_find_header(&h, "RateLimit-Limit"), "3");
    cr_assert_str_eq(evhttp_find_header(&h, "RateLimit-Remaining"), "1");
    cr_assert_str_eq(evhttp_find_header(&h, "RateLimit-Reset"), "2");
    cr_assert_str_eq(evhttp_find_header(&h, "RateLimit-Policy"), "\"t\";q=3;w=3");
    cr_assert_str_eq(evhttp_find_header(&h, "RateLimit"), "\"t\";r=1;t=2");
    cr_assert_null(evhttp_find_header(&h, "Retry-After"));
    /* A second call replaces, never duplicates. */
    rl_add_headers(&h, "t", deny);
    cr_assert_str_eq(evhttp_find_header(&h, "RateLimit-Remaining"), "0");
    cr_assert_str_eq(evhttp_find_header(&h, "RateLimit-Reset"), "1");
    cr_assert_str_eq(evhttp_find_header(&h, "RateLimit"), "\"t\";r=0;t=1");
    cr_assert_str_eq(evhttp_find_header(&h, "Retry-After"), "1");
    int n = 0;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, &h, next)
    n++;
    cr_assert_eq(n, 6);
    evhttp_clear_headers(&h);

    /* Only its own fields are replaced, whatever their case; others stay. */
    evhttp_add_header(&h, "X-Other", "1");
    evhttp_add_header(&h, "RateLimit-Other", "2");
    evhttp_add_header(&h, "ratelimit-limit", "99");
    evhttp_add_header(&h, "retry-after", "5");
    rl_add_headers(&h, "t", &col.res[0]);
    cr_assert_str_eq(evhttp_find_header(&h, "X-Other"), "1");
    cr_assert_str_eq(evhttp_find_header(&h, "RateLimit-Other"), "2");
    cr_assert_str_eq(evhttp_find_header(&h, "RateLimit-Limit"), "3");
    cr_assert_null(evhttp_find_header(&h, "Retry-After"), "an ALLOW has no Retry-After");
    n = 0;
    TAILQ_FOREACH(kv, &h, next)
    n++;
    cr_assert_eq(n, 7, "five fields and the two others");
    evhttp_clear_headers(&h);

    struct rl_result r = {.verdict = RL_DENY, .limit = 10, .retry_after_ms = 2001, .reset_seconds = 3};
    rl_add_headers(&h, "login", &r);
    cr_assert_str_eq(evhttp_find_header(&h, "Retry-After"), "3", "rounded up");
    cr_assert_str_eq(evhttp_find_header(&h, "RateLimit-Policy"), "\"login\";q=10", "no w when unknown");
    evhttp_clear_headers(&h);
    struct rl_result u = {.verdict = RL_UNAVAILABLE};
    rl_add_headers(&h, "login", &u);
    cr_assert(TAILQ_EMPTY(&h), "no budget, no headers");
    rl_client_free(c);
}

Test(rl_client, pipelined_answers_keep_their_order)
{
    start_rld();
    struct rl_client *c = rl_client_new(base, sock, 2000);
    spin(300);
    struct collector col = {0};
    for (int i = 0; i < 300; i++)
        check(c, &col, i, "bulk", "pipe", 1);
    run_until(&col, 300, 5000);
    cr_assert_eq(col.count, 300);
    for (int i = 0; i < 300; i++) {
        cr_assert_eq(col.order[i], i);
        cr_assert_eq(col.res[i].verdict, RL_ALLOW);
        cr_assert_eq(col.res[i].remaining, 999 - i, "answer %d", i);
    }
    rl_client_free(c);
}

Test(rl_client, keys_are_sanitised_and_errors_fail_open)
{
    start_rld();
    struct rl_client *c = rl_client_new(base, sock, 1000);
    spin(300);
    struct collector col = {0};
    /* An attempt to smuggle a second command in the key stays one check on key "a_b__CHECK_pair_x". */
    check(c, &col, 0, "pair", "a b\r\nCHECK pair x", 1);
    check(c, &col, 1, "pair", "a_b__CHECK_pair_x", 1);
    check(c, &col, 2, "pair", "a_b__CHECK_pair_x", 1);
    check(c, &col, 3, "nosuchrule", "k", 1);
    check(c, &col, 4, "pair", "", 1);
    run_until(&col, 5, 3000);
    cr_assert_eq(col.count, 5);
    cr_assert_eq(col.res[0].verdict, RL_ALLOW);
    cr_assert_eq(col.res[0].remaining, 1);
    cr_assert_eq(col.res[1].verdict, RL_ALLOW);
    cr_assert_eq(col.res[1].remaining, 0, "same bucket as the sanitised key");
    cr_assert_eq(col.res[2].verdict, RL_DENY);
    cr_assert_eq(col.res[3].verdict, RL_UNAVAILABLE, "ERR fails open");
    cr_assert_eq(col.res[4].verdict, RL_ALLOW, "empty key still asks");
    rl_client_free(c);
}

Test(rl_client, unavailable_at_once_when_daemon_is_down_then_reconnects)
{
    struct rl_client *c = rl_client_new(base, sock, 1000);
    struct collector col = {0};
    check(c, &col, 0, "t", "k", 1);
    long ms = run_until(&col, 1, 3000);
    cr_assert_eq(col.count, 1);
    cr_assert_not(col.reentered);
    cr_assert_eq(col.res[0].verdict, RL_UNAVAILABLE);
    /* A refused connect is reported at once; waiting out the 1000 ms check timeout is the bug. */
    cr_assert_lt(ms, 800, "UNAVAILABLE after %ld ms (the check timeout is 1000 ms)", ms);

    start_rld();
    bool allowed = false;
    for (int i = 1; i < 200 && !allowed; i++) {
        check(c, &col, i, "t", "k", 1);
        run_until(&col, i + 1, 1000);
        allowed = col.res[i].verdict == RL_ALLOW;
        if (!allowed)
            spin(50);
    }
    cr_assert(allowed, "never reconnected");

    /* The daemon goes away while connected: fail open, then recover when it returns. */
    harness_stop(rld, 3000);
    rld = NULL;
    struct collector col2 = {0};
    spin(50);
    check(c, &col2, 0, "t", "k", 1);
    ms = run_until(&col2, 1, 3000);
    cr_assert_eq(col2.res[0].verdict, RL_UNAVAILABLE);
    /* A closed connection is noticed at once, not at the 1000 ms check timeout. */
    cr_assert_lt(ms, 800, "UNAVAILABLE after %ld ms (the check timeout is 1000 ms)", ms);
    start_rld();
    allowed = false;
    for (int i = 1; i < 200 && !allowed; i++) {
        check(c, &col2, i, "t", "k2", 1);
        run_until(&col2, i + 1, 1000);
        allowed = col2.res[i].verdict == RL_ALLOW;
        if (!allowed)
            spin(50);
    }
    cr_assert(allowed, "never reconnected after a restart");
    rl_client_free(c);
}

Test(rl_client, stopped_daemon_times_out_and_recovers)
{
    start_rld();
    struct rl_client *c = rl_client_new(base, sock, 100);
    spin(300);
    struct collector col = {0};
    check(c, &col, 0, "t", "s", 1);
    run_until(&col, 1, 2000);
    cr_assert_eq(col.res[0].verdict, RL_ALLOW);

    harness_signal(rld, SIGSTOP);
    check(c, &col, 1, "t", "s", 1);
    check(c, &col, 2, "t", "s", 1);
    long ms = run_until(&col, 3, 3000);
    cr_assert_eq(col.count, 3);
    cr_assert_eq(col.res[1].verdict, RL_UNAVAILABLE);
    cr_assert_eq(col.res[2].verdict, RL_UNAVAILABLE);
    /* Not before the 100 ms timeout; and well before run_until gives up at 3 s, which is
       where checks whose timer never fires would end. */
    cr_assert(ms >= 90 && ms < 2000, "timed out after %ld ms (the check timeout is 100 ms)", ms);
    harness_signal(rld, SIGCONT);

    /* Late answers to timed-out checks are dropped, not given to later checks. */
    spin(200);
    struct collector col2 = {0};
    check(c, &col2, 0, "t", "other", 1);
    run_until(&col2, 1, 2000);
    cr_assert_eq(col2.count, 1);
    cr_assert_eq(col2.res[0].verdict, RL_ALLOW);
    cr_assert_eq(col2.res[0].remaining, 2, "answer belongs to key 'other'");
    rl_client_free(c);
}

Test(rl_client, free_answers_waiting_checks)
{
    start_rld();
    struct rl_client *c = rl_client_new(base, sock, 1000);
    struct collector col = {0};
    check(c, &col, 0, "t", "f", 1);
    check(c, &col, 1, "t", "f", 1);
    rl_client_free(c);
    cr_assert_eq(col.count, 2, "every callback runs exactly once");
    cr_assert_eq(col.res[0].verdict, RL_UNAVAILABLE);
    spin(100);
    cr_assert_eq(col.count, 2);
}

static long rld_stat(const char *name)
{
    return services_ratelimitd_stat(sock, name);
}

/* A key checked hundreds of times at once is decided from leases: ratelimitd answers far
 * fewer lines than there are checks, every answer is ALLOW, and no two checks get the
 * same token (what is left only goes down). */
Test(rl_client, a_hot_key_is_decided_from_leases_without_sharing_a_token)
{
    start_rld();
    struct rl_client *c = rl_client_new(base, sock, 2000);
    spin(300);
    struct collector col = {0};
    check(c, &col, 0, "big", "ip:hot", 1); /* learns the burst */
    run_until(&col, 1, 3000);
    long lines_before = rld_stat("decisions");
    int n = 1;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 300; i++, n++)
            check(c, &col, n, "big", "ip:hot", 1);
        cr_assert_eq(col.count, n - 300, "no callback inside rl_client_check");
        run_until(&col, n, 5000);
        cr_assert_eq(col.count, n);
    }
    cr_assert_not(col.reentered);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(col.order[i], i, "answers in the order asked");
        cr_assert_eq(col.res[i].verdict, RL_ALLOW, "check %d", i);
        cr_assert_eq(col.res[i].limit, 100000);
        if (i > 0)
            cr_assert_lt(col.res[i].remaining, col.res[i - 1].remaining, "check %d: a token given twice", i);
    }
    long lines = rld_stat("decisions") - lines_before;
    cr_assert_lt(lines, 900 / 8, "%ld lines decided 900 checks", lines);
    cr_assert_geq(rld_stat("lease_tokens"), 900 - lines);
    /* The bucket holds no more than what was not granted. */
    struct collector probe = {0};
    check(c, &probe, 0, "big", "ip:hot", 0);
    run_until(&probe, 1, 3000);
    cr_assert_leq(probe.res[0].remaining, 100000 - 901);
    rl_client_free(c);
}

/* Checks on a hot key, each after everything sent to ratelimitd is answered: once
 * the key's demand is known, its next lease is asked for while the current one still
 * decides, so no check waits for ratelimitd, and no token is given twice. Waiting
 * for the answers makes this independent of how fast ratelimitd answers; a check
 * after a pause longer than a lease's life may wait (its tokens expired) and is not
 * counted. The budget's share, 100 tokens, is renewed several times in 800 checks. */
Test(rl_client, a_hot_keys_checks_do_not_wait_for_its_next_lease)
{
    start_rld();
    struct rl_client *c = rl_client_new(base, sock, 2000);
    spin(300);
    struct collector col = {0};
    enum { WARM = 200, CHECKS = 600 };
    int waited = 0, waited_warm = 0;
    long last_remaining = -1;
    bool twice = false;
    struct timespec before, now;
    clock_gettime(CLOCK_MONOTONIC, &before);
    for (int i = 0; i < WARM + CHECKS; i++) {
        struct rl_result decided;
        tickets[i % MAX_RESULTS] = (struct ticket){&col, i};
        bool at_once =
            rl_client_check_token(c, "stream", "ip:stream", &decided, on_done, &tickets[i % MAX_RESULTS]);
        clock_gettime(CLOCK_MONOTONIC, &now);
        long paused_ms = (now.tv_sec - before.tv_sec) * 1000 + (now.tv_nsec - before.tv_nsec) / 1000000;
        if (at_once) {
            if (last_remaining >= 0 && decided.remaining >= last_remaining)
                twice = true;
            last_remaining = decided.remaining;
        } else if (i < WARM) {
            waited_warm++;
        } else if (paused_ms < RL_LEASE_LIFE_MS / 2) {
            waited++;
        }
        for (int spins = 0; rl_client_unanswered(c) > 0 && spins < 2000; spins++)
            run_until(&col, col.count + 1, 1);
        clock_gettime(CLOCK_MONOTONIC, &before);
    }
    cr_assert_eq(rl_client_unanswered(c), 0, "ratelimitd did not answer");
    cr_assert_gt(waited_warm, 0, "the first checks waited for ratelimitd");
    cr_expect_eq(waited, 0, "%d of %d checks waited for a lease after the warm-up", waited, CHECKS);
    cr_expect_not(twice, "a token was given twice");
    rl_client_free(c);
}

/* Two workers on one budget: together they never get more than the burst, and the tokens
 * one of them holds are spent, not lost, while its checks go on. */
Test(rl_client, two_clients_never_spend_more_than_the_budget)
{
    start_rld();
    struct rl_client *a = rl_client_new(base, sock, 2000);
    struct rl_client *b = rl_client_new(base, sock, 2000);
    spin(300);
    struct collector col = {0};
    int n = 0;
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 20; i++, n++)
            check(i % 2 ? b : a, &col, n, "hot", "ip:shared", 1);
        run_until(&col, n, 5000);
    }
    cr_assert_eq(col.count, n);
    int allowed = 0;
    for (int i = 0; i < n; i++) {
        cr_assert_neq(col.res[i].verdict, RL_UNAVAILABLE, "check %d", i);
        if (col.res[i].verdict == RL_ALLOW)
            allowed++;
        else
            cr_assert_gt(col.res[i].retry_after_ms, 0);
    }
    cr_assert_leq(allowed, 64, "%d allowed of a burst of 64", allowed);
    cr_assert_geq(allowed, 60, "%d allowed of a burst of 64", allowed);
    rl_client_free(a);
    rl_client_free(b);
}

/* After a refusal, checks before its retry time are refused here, with the time left,
 * without a line to ratelimitd; at the retry time it decides again. */
Test(rl_client, a_refusal_is_answered_here_until_its_retry_time)
{
    start_rld();
    struct rl_client *c = rl_client_new(base, sock, 1000);
    spin(300);
    struct collector col = {0};
    for (int i = 0; i < 4; i++)
        check(c, &col, i, "t", "ip:r", 1);
    run_until(&col, 4, 3000);
    cr_assert_eq(col.res[3].verdict, RL_DENY);
    long first_retry = col.res[3].retry_after_ms;
    long lines_before = rld_stat("decisions");
    for (int i = 4; i < 24; i++)
        check(c, &col, i, "t", "ip:r", 1);
    run_until(&col, 24, 3000);
    for (int i = 4; i < 24; i++) {
        cr_assert_eq(col.res[i].verdict, RL_DENY, "check %d", i);
        cr_assert(col.res[i].retry_after_ms >= 1 && col.res[i].retry_after_ms <= first_retry,
                  "check %d: %ld ms", i, col.res[i].retry_after_ms);
    }
    cr_assert_eq(rld_stat("decisions"), lines_before, "refused without asking");
    spin((int)first_retry + 20);
    check(c, &col, 24, "t", "ip:r", 1);
    run_until(&col, 25, 3000);
    cr_assert_eq(col.res[24].verdict, RL_ALLOW, "a token came back");
    cr_assert_eq(rld_stat("decisions"), lines_before + 1);
    rl_client_free(c);
}

/* Keys checked now and then, and rules with small bursts, spend one token per check:
 * a lease there would waste a visitor's budget. */
Test(rl_client, cold_keys_and_small_bursts_take_one_token_per_check)
{
    start_rld();
    struct rl_client *c = rl_client_new(base, sock, 1000);
    spin(300);
    struct collector col = {0};
    for (int i = 0; i < 40; i++)
        check(c, &col, i, "bulk", i % 2 ? "ip:a" : "ip:b", 1), spin(60);
    for (int i = 40; i < 60; i++)
        check(c, &col, i, "pair", "ip:p", 1);
    run_until(&col, 60, 5000);
    cr_assert_eq(col.count, 60);
    cr_assert_eq(col.res[39].remaining, 1000 - 20, "every check one token");
    cr_assert_eq(rld_stat("lease_tokens"), 0);
    cr_assert_eq(rld_stat("decisions"), 60, "one line per check");
    cr_assert_eq(col.res[41].verdict, RL_ALLOW);
    cr_assert_eq(col.res[42].verdict, RL_DENY, "a burst of 2");
    rl_client_free(c);
}
