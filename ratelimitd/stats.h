/* stats: counters of ratelimitd, reported by the STATS command on one line. */
#ifndef RATELIMITD_STATS_H
#define RATELIMITD_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a decision was counted as, per rule (shadow refusals are answered ALLOW). */
enum rld_result { RLD_RESULT_ALLOWED, RLD_RESULT_DENIED, RLD_RESULT_SHADOW_DENIED, RLD_RESULTS };

struct rld_stats {
    uint64_t decisions; /* CHECKs and LEASEs answered ALLOW or DENY */
    uint64_t allowed;
    uint64_t denied;
    uint64_t shadow_denied;      /* refusals of shadow rules, answered ALLOW */
    uint64_t lease_tokens;       /* tokens granted to LEASEs, for clients to spend locally */
    uint64_t errors;             /* ERR answers */
    uint64_t degraded_decisions; /* decided from local buckets because Redis was unusable */
    uint64_t redis_calls;        /* script calls answered by Redis */
    uint64_t redis_timeouts;     /* calls answered locally because Redis was too slow */
    uint64_t redis_latency_sum_us;
    uint64_t redis_latency_max_us;
    bool redis_up;    /* kept by the store: true while decisions go to Redis */
    long connections; /* client connections open now */
    /* NULL, or RLD_RESULTS counters per rule in the rules' order (owned by whoever set it):
     * the per-rule breakdown of /metrics. */
    uint64_t *rule_results;
};

/* Records one Redis round trip of us microseconds. */
void rld_stats_redis_latency(struct rld_stats *s, uint64_t us);
/* Counts one decision of the rule at rule_index as result; a no-op without rule_results or with
 * rule_index SIZE_MAX (a rule of a set replaced since). */
void rld_stats_rule_result(struct rld_stats *s, size_t rule_index, enum rld_result result);
/* Writes the counters as "key=value ..." plus "\r\n" into buf; returns the length (truncated to buflen - 1).
 */
size_t rld_stats_format(const struct rld_stats *s, char *buf, size_t buflen);

#endif
