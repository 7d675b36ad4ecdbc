/* bucket: the token-bucket algorithm (GCRA form) and the local in-memory buckets.
 *
 * A bucket is one number, the theoretical arrival time (TAT): the moment at which it
 * will be full again. Spending cost tokens pushes TAT by cost * interval; a request is
 * refused when that would put TAT more than tau (burst * interval) ahead of now. The
 * Redis script (redis_store.c) runs the same arithmetic with Redis' clock; the local
 * buckets here take the clock as a parameter, so tests inject time. */
#ifndef RATELIMITD_BUCKET_H
#define RATELIMITD_BUCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ratelimitd/rules.h"

struct rld_decision {
    bool allowed;
    long limit;          /* the burst */
    long remaining;      /* whole tokens left after this request */
    long reset_s;        /* seconds until the bucket is full again, rounded up */
    long retry_after_ms; /* on a refusal: when this request would succeed, rounded up */
    long window_s;       /* the rule's refill window (rld_rule.window_s) */
    long granted;        /* decisions a LEASE spent (remaining is after the last); 1 for CHECK */
};

/* One GCRA step: given the stored TAT (0 for none) and now, decides for cost tokens and
 * stores the new TAT in *new_tat (unchanged on a refusal). Pure. */
void rld_gcra(const struct rld_rule *rule, int64_t tat, int64_t now_us, long cost, struct rld_decision *d,
              int64_t *new_tat);

/* Fills d from the raw figures the Redis script returns (allowed, remaining tokens,
 * microseconds until allowed, microseconds until full). */
void rld_decision_fill(const struct rld_rule *rule, bool allowed, int64_t remaining, int64_t retry_us,
                       int64_t full_us, struct rld_decision *d);

struct rld_buckets;

/* An empty local bucket table; free with rld_buckets_free(). */
struct rld_buckets *rld_buckets_new(void);
void rld_buckets_free(struct rld_buckets *b);
/* Decides CHECK rule key cost at now_us (any monotonic microsecond clock) and updates
 * the bucket. key is key_len bytes, not NUL-terminated; the table copies it. */
void rld_buckets_check(struct rld_buckets *b, const struct rld_rule *rule, const char *key, size_t key_len,
                       long cost, int64_t now_us, struct rld_decision *d);
/* Forgets buckets that are full at now_us (they are the same as no bucket). */
void rld_buckets_sweep(struct rld_buckets *b, int64_t now_us);
/* Number of buckets held. */
size_t rld_buckets_count(const struct rld_buckets *b);

#endif
