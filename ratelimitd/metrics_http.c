#include "ratelimitd/metrics_http.h"

#include <event2/buffer.h>
#include <stdlib.h>

#include "shared/admin_http.h"
#include "shared/process_metrics.h"
#include "shared/prom.h"
#include "shared/strbuf.h"
#include "shared/xalloc.h"

struct rld_metrics_http {
    struct admin_http *http;
    const struct rld_rules *rules;
    const struct rld_stats *stats;
};

static const char *const result_names[RLD_RESULTS] = {
    [RLD_RESULT_ALLOWED] = "allowed",
    [RLD_RESULT_DENIED] = "denied",
    [RLD_RESULT_SHADOW_DENIED] = "shadow_denied",
};

static void metrics_format(struct strbuf *out, const struct rld_rules *rules, const struct rld_stats *s)
{
    prom_family(out, "ratelimitd_decisions_total", PROM_COUNTER,
                "CHECKs and LEASEs decided, by rule and result (shadow_denied was answered ALLOW).");
    char labels[PROM_LABELS_MAX];
    if (s->rule_results) {
        for (size_t i = 0; i < rules->count; i++)
            for (int r = 0; r < RLD_RESULTS; r++)
                prom_sample_u64(out, "ratelimitd_decisions_total",
                                prom_labels(labels, sizeof(labels), "rule", rules->rules[i].name, "result",
                                            result_names[r], NULL),
                                s->rule_results[i * RLD_RESULTS + (size_t)r]);
    }
    prom_counter(out, "ratelimitd_allowed_total", "CHECKs answered ALLOW (shadow refusals included).",
                 s->allowed);
    prom_counter(out, "ratelimitd_denied_total", "CHECKs answered DENY.", s->denied);
    prom_counter(out, "ratelimitd_shadow_denied_total", "Refusals of shadow rules, answered ALLOW.",
                 s->shadow_denied);
    prom_counter(out, "ratelimitd_lease_tokens_total",
                 "Tokens granted to LEASEs: shares of a budget that shopd workers spend without asking.",
                 s->lease_tokens);
    prom_counter(out, "ratelimitd_errors_total",
                 "Requests answered ERR (bad line, unknown rule, cost over burst).", s->errors);
    prom_counter(out, "ratelimitd_degraded_decisions_total",
                 "Decisions taken from local buckets because Redis was unreachable or too slow.",
                 s->degraded_decisions);
    prom_gauge(out, "ratelimitd_redis_up", "1 while decisions go to Redis, 0 while local buckets decide.",
               s->redis_up ? 1 : 0);
    prom_counter(out, "ratelimitd_redis_timeouts_total",
                 "Redis calls that outlived the timeout and were decided locally.", s->redis_timeouts);
    prom_family(out, "ratelimitd_redis_latency_seconds", PROM_SUMMARY,
                "Round trip of the budget script in Redis.");
    prom_sample(out, "ratelimitd_redis_latency_seconds_sum", NULL, (double)s->redis_latency_sum_us / 1e6);
    prom_sample_u64(out, "ratelimitd_redis_latency_seconds_count", NULL, s->redis_calls);
    prom_gauge(out, "ratelimitd_redis_latency_max_seconds", "Slowest Redis round trip since start.",
               (double)s->redis_latency_max_us / 1e6);
    prom_gauge(out, "ratelimitd_connections", "Client connections open now.", (double)s->connections);
    prom_gauge(out, "ratelimitd_rules", "Budget rules loaded.", (double)rules->count);
    struct procm_row self = {.labels = ""};
    if (procm_read(0, &self.sample) == 0)
        procm_format(out, &self, 1);
    procm_build_info(out, "ratelimitd", SHOP_VERSION);
}

static void write_metrics(struct evbuffer *body, void *ctx)
{
    struct rld_metrics_http *m = ctx;
    struct strbuf text = {0};
    metrics_format(&text, m->rules, m->stats);
    evbuffer_add(body, text.p, text.len);
    strbuf_free(&text);
}

static const struct admin_http_page pages[] = {{"/metrics", ADMIN_HTTP_PROMETHEUS, write_metrics}};

struct rld_metrics_http *rld_metrics_http_new(struct event_base *base, const char *listen,
                                              const struct rld_rules *rules, const struct rld_stats *stats,
                                              char *err, size_t errlen)
{
    struct rld_metrics_http *m = xcalloc(1, sizeof(*m));
    m->rules = rules;
    m->stats = stats;
    m->http = admin_http_new(base, "RATELIMITD_METRICS_LISTEN", listen, pages, 1, m, err, errlen);
    if (!m->http) {
        free(m);
        return NULL;
    }
    return m;
}

void rld_metrics_http_free(struct rld_metrics_http *m)
{
    if (!m)
        return;
    admin_http_free(m->http);
    free(m);
}

void rld_metrics_http_set_rules(struct rld_metrics_http *m, const struct rld_rules *rules)
{
    m->rules = rules;
}
