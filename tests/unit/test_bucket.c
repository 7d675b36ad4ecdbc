/* ratelimitd/bucket: the GCRA buckets, with an injected clock. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimitd/bucket.h"
#include "ratelimitd/rules.h"

#define SEC 1000000LL

static struct rld_rules *one_rule(const char *text)
{
    char err[256];
    struct rld_rules *r = rld_rules_parse(text, strlen(text), "test.rules", err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    return r;
}

Test(buckets, burst_then_refusal_with_retry_time)
{
    struct rld_rules *rs = one_rule("login 10/1m burst=3\n");
    const struct rld_rule *r = &rs->rules[0];
    struct rld_buckets *b = rld_buckets_new();
    struct rld_decision d;
    int64_t t0 = 1000 * SEC;
    for (int i = 0; i < 3; i++) {
        rld_buckets_check(b, r, "k", 1, 1, t0, &d);
        cr_assert(d.allowed, "request %d", i);
        cr_assert_eq(d.limit, 3);
        cr_assert_eq(d.remaining, 2 - i);
        cr_assert_eq(d.reset_s, 6 * (i + 1));
        cr_assert_eq(d.window_s, 18);
    }
    rld_buckets_check(b, r, "k", 1, 1, t0, &d);
    cr_assert_not(d.allowed);
    cr_assert_eq(d.retry_after_ms, 6000);
    cr_assert_eq(d.reset_s, 18);
    /* One microsecond before the next token: still refused, retry rounds up to 1 ms. */
    rld_buckets_check(b, r, "k", 1, 1, t0 + 6 * SEC - 1, &d);
    cr_assert_not(d.allowed);
    cr_assert_eq(d.retry_after_ms, 1);
    rld_buckets_check(b, r, "k", 1, 1, t0 + 6 * SEC, &d);
    cr_assert(d.allowed);
    cr_assert_eq(d.remaining, 0);
    rld_buckets_free(b);
    rld_rules_free(rs);
}

Test(buckets, refills_fully_and_never_above_burst)
{
    struct rld_rules *rs = one_rule("page 600/1m burst=5\n");
    const struct rld_rule *r = &rs->rules[0];
    struct rld_buckets *b = rld_buckets_new();
    struct rld_decision d;
    int64_t t = 50 * SEC;
    for (int i = 0; i < 5; i++)
        rld_buckets_check(b, r, "ip", 2, 1, t, &d);
    cr_assert(d.allowed);
    cr_assert_eq(d.remaining, 0);
    cr_assert_eq(rld_buckets_count(b), 1);
    /* 250 ms later 2 tokens are back (100 ms each). */
    t += 250000;
    rld_buckets_check(b, r, "ip", 2, 2, t, &d);
    cr_assert(d.allowed);
    cr_assert_eq(d.remaining, 0);
    /* An hour idle: full again, not more. */
    t += 3600 * SEC;
    rld_buckets_check(b, r, "ip", 2, 1, t, &d);
    cr_assert(d.allowed);
    cr_assert_eq(d.remaining, 4);
    cr_assert_eq(d.reset_s, 1);
    /* A full bucket is forgotten by a sweep. */
    rld_buckets_sweep(b, t + 10 * SEC);
    cr_assert_eq(rld_buckets_count(b), 0);
    rld_buckets_free(b);
    rld_rules_free(rs);
}

Test(buckets, cost_above_one_and_zero)
{
    struct rld_rules *rs = one_rule("api 60/1m burst=10\n");
    const struct rld_rule *r = &rs->rules[0];
    struct rld_buckets *b = rld_buckets_new();
    struct rld_decision d;
    int64_t t = 7 * SEC;
    rld_buckets_check(b, r, "x", 1, 7, t, &d);
    cr_assert(d.allowed);
    cr_assert_eq(d.remaining, 3);
    rld_buckets_check(b, r, "x", 1, 4, t, &d);
    cr_assert_not(d.allowed, "4 > 3 tokens left");
    cr_assert_eq(d.retry_after_ms, 1000);
    rld_buckets_check(b, r, "x", 1, 3, t, &d);
    cr_assert(d.allowed, "a refused request spends nothing");
    cr_assert_eq(d.remaining, 0);
    rld_buckets_check(b, r, "x", 1, 0, t, &d);
    cr_assert(d.allowed, "cost 0 only looks");
    cr_assert_eq(d.remaining, 0);
    rld_buckets_check(b, r, "x", 1, 1, t, &d);
    cr_assert_not(d.allowed);
    rld_buckets_free(b);
    rld_rules_free(rs);
}

Test(buckets, keys_and_rules_are_isolated)
{
    struct rld_rules *rs = one_rule("a 1/1h burst=1\nb 1/1h burst=1\n");
    struct rld_buckets *b = rld_buckets_new();
    struct rld_decision d;
    int64_t t = SEC;
    rld_buckets_check(b, &rs->rules[0], "k1", 2, 1, t, &d);
    cr_assert(d.allowed);
    rld_buckets_check(b, &rs->rules[0], "k1", 2, 1, t, &d);
    cr_assert_not(d.allowed);
    rld_buckets_check(b, &rs->rules[0], "k2", 2, 1, t, &d);
    cr_assert(d.allowed, "other key");
    rld_buckets_check(b, &rs->rules[1], "k1", 2, 1, t, &d);
    cr_assert(d.allowed, "same key, other rule");
    /* Keys are bytes, not C strings: a key that is a prefix of another is its own bucket. */
    rld_buckets_check(b, &rs->rules[0], "k1x", 3, 1, t, &d);
    cr_assert(d.allowed);
    /* Many keys force the table to grow; every bucket keeps its state. */
    char key[32];
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(key, sizeof(key), "ip-%d", i);
        rld_buckets_check(b, &rs->rules[1], key, (size_t)n, 1, t, &d);
        cr_assert(d.allowed);
    }
    for (int i = 0; i < 20000; i += 997) {
        int n = snprintf(key, sizeof(key), "ip-%d", i);
        rld_buckets_check(b, &rs->rules[1], key, (size_t)n, 1, t, &d);
        cr_assert_not(d.allowed, "%s", key);
    }
    rld_buckets_free(b);
    rld_rules_free(rs);
}
