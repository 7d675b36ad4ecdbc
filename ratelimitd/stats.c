#include <stdint.h>
#include "ratelimitd/stats.h"

#include <inttypes.h>
#include <stdio.h>

void rld_stats_redis_latency(struct rld_stats *s, uint64_t us)
{
    s->redis_calls++;
    s->redis_latency_sum_us += us;
    if (us > s->redis_latency_max_us)
        s->redis_latency_max_us = us;
}

void rld_stats_rule_result(struct rld_stats *s, size_t rule_index, enum rld_result result)
{
    if (s->rule_results && rule_index != SIZE_MAX)
        s->rule_results[rule_index * RLD_RESULTS + result]++;
}

size_t rld_stats_format(const struct rld_stats *s, char *buf, size_t buflen)
{
    uint64_t avg = s->redis_calls ? s->redis_latency_sum_us / s->redis_calls : 0;
    int n = snprintf(buf, buflen,
                     "decisions=%" PRIu64 " allowed=%" PRIu64 " denied=%" PRIu64 " shadow_denied=%" PRIu64
                     " errors=%" PRIu64 " degraded_decisions=%" PRIu64 " redis_up=%d redis_calls=%" PRIu64
                     " redis_timeouts=%" PRIu64 " redis_latency_us_avg=%" PRIu64
                     " redis_latency_us_max=%" PRIu64 " connections=%ld lease_tokens=%" PRIu64 "\r\n",
                     s->decisions, s->allowed, s->denied, s->shadow_denied, s->errors, s->degraded_decisions,
                     s->redis_up ? 1 : 0, s->redis_calls, s->redis_timeouts, avg, s->redis_latency_max_us,
                     s->connections, s->lease_tokens);
    if (n < 0)
        return 0;
    return (size_t)n < buflen ? (size_t)n : buflen - 1;
}
