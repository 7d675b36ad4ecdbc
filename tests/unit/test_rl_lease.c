/* shopd/rl_lease: a worker's leases of budget tokens, with an injected clock. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>

#include "shopd/rl_lease.h"

#define MS 1000ULL
#define T0 (1000000 * MS)

static struct rl_result allow(long limit, long remaining, long granted)
{
    return (struct rl_result){
        .verdict = RL_ALLOW, .limit = limit, .remaining = remaining, .reset_seconds = 3, .granted = granted};
}

Test(rl_lease, a_cold_key_asks_for_one_token_each_time)
{
    struct rl_lease_table *t = rl_lease_table_new(100);
    struct rl_lease *l = rl_lease_get(t, "api", "ip:1", T0);
    struct rl_result out;
    cr_assert_not(rl_lease_decide(l, T0, &out), "nothing granted yet");
    cr_assert_eq(rl_lease_ask_size(l, 1), 1, "the burst is not known yet");
    rl_lease_asked(l, 1);
    cr_assert_eq(rl_lease_in_flight(l), 1);
    struct rl_result a = allow(1000, 999, 1);
    rl_lease_answered(l, 1, &a, T0 + 1 * MS);
    cr_assert_eq(rl_lease_in_flight(l), 0);
    cr_assert(rl_lease_decide(l, T0 + 1 * MS, &out), "the granted token decides the waiting check");
    cr_assert_eq(out.verdict, RL_ALLOW);
    cr_assert_eq(out.remaining, 999);
    cr_assert_not(rl_lease_decide(l, T0 + 1 * MS, &out), "one token, one check");
    /* One check a second is no demand: still one token per ask, whatever the burst. */
    for (int i = 1; i <= 3; i++) {
        l = rl_lease_get(t, "api", "ip:1", T0 + (uint64_t)i * 1000 * MS);
        cr_assert_eq(rl_lease_ask_size(l, 1), 1, "check %d", i);
    }
    rl_lease_table_free(t);
}

Test(rl_lease, a_hot_key_asks_for_its_demand_within_a_share_of_the_burst)
{
    struct rl_lease_table *t = rl_lease_table_new(100);
    struct rl_lease *l = rl_lease_get(t, "api", "ip:1", T0);
    struct rl_result a = allow(240, 239, 1);
    rl_lease_answered(l, 0, &a, T0);
    /* 10 checks in one life span of a lease, then the next span: the demand is 10. */
    for (int i = 1; i < 10; i++)
        rl_lease_get(t, "api", "ip:1", T0 + (uint64_t)i * MS);
    l = rl_lease_get(t, "api", "ip:1", T0 + RL_LEASE_LIFE_MS * MS);
    cr_assert_eq(rl_lease_ask_size(l, 1), 10);
    cr_assert_eq(rl_lease_ask_size(l, 12), 12, "enough for the checks waiting");
    cr_assert_eq(rl_lease_ask_size(l, 100), 15, "a sixteenth of a burst of 240");
    /* A gap of two life spans forgets the demand. */
    l = rl_lease_get(t, "api", "ip:1", T0 + 3 * RL_LEASE_LIFE_MS * MS);
    cr_assert_eq(rl_lease_ask_size(l, 1), 1);
    /* Small bursts are never leased; large ones as much as the demand, at most 1024 at a
       time (a burst of 16384 or more). */
    struct rl_result small = allow(31, 30, 1), large = allow(1000000, 0, 1), mid = allow(4096, 0, 1);
    rl_lease_answered(l, 0, &small, T0);
    cr_assert_eq(rl_lease_ask_size(l, 100), 1);
    rl_lease_answered(l, 0, &large, T0);
    cr_assert_eq(rl_lease_ask_size(l, 100), 100);
    cr_assert_eq(rl_lease_ask_size(l, 5000), 1024);
    cr_assert_eq(RL_LEASE_MAX, 1024);
    rl_lease_answered(l, 0, &mid, T0);
    cr_assert_eq(rl_lease_ask_size(l, 5000), 256, "a sixteenth of a burst of 4096");
    rl_lease_table_free(t);
}

Test(rl_lease, granted_tokens_count_down_then_expire)
{
    struct rl_lease_table *t = rl_lease_table_new(100);
    struct rl_lease *l = rl_lease_get(t, "api", "k", T0);
    rl_lease_asked(l, 5);
    struct rl_result a = allow(1000, 900, 5);
    rl_lease_answered(l, 5, &a, T0);
    struct rl_result out;
    for (int i = 0; i < 5; i++) {
        cr_assert(rl_lease_decide(l, T0 + (uint64_t)i * MS, &out), "token %d", i);
        cr_assert_eq(out.verdict, RL_ALLOW);
        cr_assert_eq(out.remaining, 904 - i, "what the bucket has plus what is left here");
        cr_assert_eq(out.limit, 1000);
    }
    cr_assert_not(rl_lease_decide(l, T0 + 5 * MS, &out), "all spent");

    rl_lease_answered(l, 0, &a, T0 + 10 * MS);
    cr_assert(rl_lease_decide(l, T0 + 10 * MS, &out));
    cr_assert_not(rl_lease_decide(l, T0 + 10 * MS + RL_LEASE_LIFE_MS * MS, &out),
                  "tokens left when the lease runs out are dropped");
    rl_lease_answered(l, 0, &a, T0 + 200 * MS);
    cr_assert(rl_lease_decide(l, T0 + 200 * MS, &out));
    cr_assert_eq(out.remaining, 904, "an expired lease adds nothing to a new one");
    rl_lease_table_free(t);
}

/* A hot key asks for its next lease while half a share is left, once, so that its
 * checks go on from the tokens meanwhile; the answer adds to what is left. */
Test(rl_lease, a_hot_key_renews_its_lease_before_the_tokens_run_out)
{
    struct rl_lease_table *t = rl_lease_table_new(100);
    struct rl_lease *l = rl_lease_get(t, "api", "k", T0);
    struct rl_result first = allow(1024, 1023, 1);
    rl_lease_answered(l, 0, &first, T0); /* the burst: a share of 64 */
    struct rl_result out;
    cr_assert(rl_lease_decide(l, T0, &out));
    cr_assert_not(rl_lease_should_renew(l, T0), "one check is no demand");
    /* 100 checks in a millisecond, then a lease of 64. */
    for (int i = 0; i < 100; i++)
        l = rl_lease_get(t, "api", "k", T0 + 1 * MS);
    struct rl_result lease = allow(1024, 900, 64);
    rl_lease_asked(l, 64);
    rl_lease_answered(l, 64, &lease, T0 + 1 * MS);
    int renewed_at = -1;
    for (int i = 0; i < 64 && renewed_at < 0; i++) {
        cr_assert(rl_lease_decide(l, T0 + 2 * MS, &out), "token %d", i);
        if (rl_lease_should_renew(l, T0 + 2 * MS))
            renewed_at = i;
    }
    cr_assert_eq(renewed_at, 31, "asked once 32 of 64 are left (at token %d)", renewed_at);
    rl_lease_asked(l, rl_lease_ask_size(l, 0));
    cr_assert_eq(rl_lease_in_flight(l), 64, "a whole share");
    cr_assert(rl_lease_decide(l, T0 + 2 * MS, &out));
    cr_assert_not(rl_lease_should_renew(l, T0 + 2 * MS), "not again while one is asked for");
    rl_lease_answered(l, 64, &lease, T0 + 3 * MS);
    int tokens = 0;
    while (rl_lease_decide(l, T0 + 3 * MS, &out))
        tokens++;
    cr_assert_eq(tokens, 31 + 64, "what was left and the new lease");
    /* A kept refusal is not renewed ahead, nor are small bursts. */
    struct rl_result deny = {.verdict = RL_DENY, .limit = 1024, .retry_after_ms = 100};
    rl_lease_answered(l, 0, &deny, T0 + 4 * MS);
    cr_assert_not(rl_lease_should_renew(l, T0 + 5 * MS));
    struct rl_result small = allow(31, 30, 1);
    rl_lease_answered(l, 0, &small, T0 + 200 * MS);
    cr_assert(rl_lease_decide(l, T0 + 200 * MS, &out));
    cr_assert_not(rl_lease_should_renew(l, T0 + 200 * MS));
    rl_lease_table_free(t);
}

Test(rl_lease, a_refusal_is_kept_until_its_retry_time)
{
    struct rl_lease_table *t = rl_lease_table_new(100);
    struct rl_lease *l = rl_lease_get(t, "page", "k", T0);
    struct rl_result deny = {.verdict = RL_DENY, .limit = 120, .retry_after_ms = 250, .window_seconds = 12};
    rl_lease_asked(l, 7);
    rl_lease_answered(l, 7, &deny, T0);
    struct rl_result out;
    cr_assert(rl_lease_decide(l, T0, &out));
    cr_assert_eq(out.verdict, RL_DENY);
    cr_assert_eq(out.retry_after_ms, 250);
    cr_assert_eq(out.window_seconds, 12);
    cr_assert(rl_lease_decide(l, T0 + 100 * MS + 1, &out));
    cr_assert_eq(out.retry_after_ms, 150, "the retry time counts down, rounded up");
    cr_assert_eq(out.reset_seconds, 1);
    cr_assert_not(rl_lease_decide(l, T0 + 250 * MS, &out), "at the retry time ratelimitd decides again");
    /* An answer that did not come changes nothing but what is in flight. */
    rl_lease_asked(l, 3);
    struct rl_result gone = {.verdict = RL_UNAVAILABLE};
    rl_lease_answered(l, 3, &gone, T0 + 300 * MS);
    cr_assert_eq(rl_lease_in_flight(l), 0);
    cr_assert_not(rl_lease_decide(l, T0 + 300 * MS, &out));
    /* A long refusal is repeated for a second, with its own retry time, then asked again:
       a reload of the rules may have changed it. */
    struct rl_result long_deny = {.verdict = RL_DENY, .limit = 5, .retry_after_ms = 360000};
    rl_lease_answered(l, 0, &long_deny, T0);
    cr_assert(rl_lease_decide(l, T0 + 999 * MS, &out));
    cr_assert_eq(out.retry_after_ms, 359001);
    cr_assert_eq(out.reset_seconds, 360);
    cr_assert_not(rl_lease_decide(l, T0 + RL_LEASE_REFUSAL_MS * MS, &out));
    rl_lease_table_free(t);
}

Test(rl_lease, keys_are_separate_and_idle_ones_are_forgotten)
{
    struct rl_lease_table *t = rl_lease_table_new(3);
    struct rl_lease *a = rl_lease_get(t, "api", "k", T0);
    struct rl_lease *b = rl_lease_get(t, "page", "k", T0);
    struct rl_lease *c = rl_lease_get(t, "ap", "ik", T0);
    cr_assert(a != b && a != c && b != c, "rule and key together name an entry");
    cr_assert_str_eq(rl_lease_rule(c), "ap");
    cr_assert_str_eq(rl_lease_key(c), "ik");
    cr_assert_eq(rl_lease_get(t, "api", "k", T0), a);
    cr_assert_null(rl_lease_get(t, "api", "new", T0), "the table is full");
    struct rl_result g = allow(1000, 10, 4);
    rl_lease_answered(a, 0, &g, T0);
    int queue = 1;
    *rl_lease_caller_data(b) = &queue;
    rl_lease_asked(c, 2);
    rl_lease_sweep(t, T0 + 2000 * MS);
    cr_assert_eq(rl_lease_count(t), 2, "only the entry with nothing in flight or waiting goes");
    *rl_lease_caller_data(b) = NULL;
    rl_lease_answered(c, 2, &g, T0 + 2000 * MS);
    rl_lease_sweep(t, T0 + 2000 * MS);
    cr_assert_eq(rl_lease_count(t), 1, "c holds unexpired tokens");
    rl_lease_sweep(t, T0 + 3100 * MS);
    cr_assert_eq(rl_lease_count(t), 0);
    /* Many keys: the table grows and finds every one again. */
    rl_lease_table_free(t);
    t = rl_lease_table_new(100000);
    char key[32];
    struct rl_lease *first = rl_lease_get(t, "api", "ip:0", T0);
    for (int i = 1; i < 5000; i++) {
        snprintf(key, sizeof(key), "ip:%d", i);
        cr_assert_not_null(rl_lease_get(t, "api", key, T0));
    }
    cr_assert_eq(rl_lease_count(t), 5000);
    cr_assert_eq(rl_lease_get(t, "api", "ip:0", T0), first);
    rl_lease_table_free(t);
}
