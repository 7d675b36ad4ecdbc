#include "ratelimitd/metrics_http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/config.h"
#include "shared/log.h"
#include "shared/process_metrics.h"
#include "shared/strbuf.h"
#include "shared/xalloc.h"

struct rld_metrics_http {
    struct evhttp *http;
    const struct rld_rules *rules;
    const struct rld_stats *stats;
};

static const char *const result_names[RLD_RESULTS] = {
    [RLD_RESULT_ALLOWED] = "allowed",
    [RLD_RESULT_DENIED] = "denied",
    [RLD_RESULT_SHADOW_DENIED] = "shadow_denied",
};

/* Label values escape backslash, double quote and newline (the exposition format's rule). */
static void add_label_value(struct evbuffer *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            evbuffer_add(out, "\\\\", 2);
        else if (*v == '"')
            evbuffer_add(out, "\\\"", 2);
        else if (*v == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, v, 1);
    }
}

static void counter(struct evbuffer *out, const char *name, const char *help, uint64_t v)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", name, help, name, name, v);
}

static void gauge(struct evbuffer *out, const char *name, const char *help, double v)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %.9g\n", name, help, name, name, v);
}

static void metrics_format(struct evbuffer *out, const struct rld_rules *rules, const struct rld_stats *s)
{
    evbuffer_add_printf(out, "# HELP ratelimitd_decisions_total CHECKs decided, by rule and result "
                             "(shadow_denied was answered ALLOW).\n"
                             "# TYPE ratelimitd_decisions_total counter\n");
    if (s->rule_results) {
        for (size_t i = 0; i < rules->count; i++) {
            for (int r = 0; r < RLD_RESULTS; r++) {
                evbuffer_add_printf(out, "ratelimitd_decisions_total{rule=\"");
                add_label_value(out, rules->rules[i].name);
                evbuffer_add_printf(out, "\",result=\"%s\"} %" PRIu64 "\n", result_names[r],
                                    s->rule_results[i * RLD_RESULTS + (size_t)r]);
            }
        }
    }
    counter(out, "ratelimitd_allowed_total", "CHECKs answered ALLOW (shadow refusals included).", s->allowed);
    counter(out, "ratelimitd_denied_total", "CHECKs answered DENY.", s->denied);
    counter(out, "ratelimitd_shadow_denied_total", "Refusals of shadow rules, answered ALLOW.",
            s->shadow_denied);
    counter(out, "ratelimitd_errors_total",
            "Requests answered ERR (bad line, unknown rule, cost over burst).", s->errors);
    counter(out, "ratelimitd_degraded_decisions_total",
            "Decisions taken from local buckets because Redis was unreachable or too slow.",
            s->degraded_decisions);
    gauge(out, "ratelimitd_redis_up", "1 while decisions go to Redis, 0 while local buckets decide.",
          s->redis_up ? 1 : 0);
    counter(out, "ratelimitd_redis_timeouts_total",
            "Redis calls that outlived the timeout and were decided locally.", s->redis_timeouts);
    evbuffer_add_printf(out,
                        "# HELP ratelimitd_redis_latency_seconds Round trip of the budget script in Redis.\n"
                        "# TYPE ratelimitd_redis_latency_seconds summary\n"
                        "ratelimitd_redis_latency_seconds_sum %.6f\n"
                        "ratelimitd_redis_latency_seconds_count %" PRIu64 "\n",
                        (double)s->redis_latency_sum_us / 1e6, s->redis_calls);
    gauge(out, "ratelimitd_redis_latency_max_seconds", "Slowest Redis round trip since start.",
          (double)s->redis_latency_max_us / 1e6);
    gauge(out, "ratelimitd_connections", "Client connections open now.", (double)s->connections);
    evbuffer_add_printf(out,
                        "# HELP ratelimitd_rules Budget rules loaded.\n# TYPE ratelimitd_rules gauge\n"
                        "ratelimitd_rules %zu\n",
                        rules->count);
    struct procm_row self = {.labels = ""};
    struct strbuf text = {0};
    if (procm_read(0, &self.sample) == 0)
        procm_format(&text, &self, 1);
    procm_build_info(&text, "ratelimitd", SHOP_VERSION);
    size_t len;
    char *p = strbuf_take(&text, &len);
    evbuffer_add(out, p, len);
    free(p);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct rld_metrics_http *m = arg;
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!path || strcmp(path, "/metrics") != 0) {
        evhttp_add_header(headers, "Content-Type", "text/plain; charset=utf-8");
        struct evbuffer *body = evbuffer_new();
        evbuffer_add_printf(body, "not found: try /metrics\n");
        evhttp_send_reply(req, 404, "Not Found", body);
        evbuffer_free(body);
        return;
    }
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(headers, "Allow", "GET, HEAD");
        evhttp_add_header(headers, "Content-Type", "text/plain; charset=utf-8");
        struct evbuffer *body = evbuffer_new();
        evbuffer_add_printf(body, "method not allowed: use GET\n");
        evhttp_send_reply(req, 405, "Method Not Allowed", body);
        evbuffer_free(body);
        return;
    }
    struct evbuffer *body = evbuffer_new();
    metrics_format(body, m->rules, m->stats);
    evhttp_add_header(headers, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    /* evhttp sends the headers (with Content-Length) but no body for HEAD. */
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
}

struct rld_metrics_http *rld_metrics_http_new(struct event_base *base, const char *listen,
                                              const struct rld_rules *rules, const struct rld_stats *stats,
                                              char *err, size_t errlen)
{
    char host[256];
    int port;
    if (config_parse_hostport(listen, host, sizeof(host), &port) < 0 || port < 1 || port > 65535) {
        snprintf(err, errlen, "RATELIMITD_METRICS_LISTEN: expected host:port, got '%.60s'", listen);
        return NULL;
    }
    struct rld_metrics_http *m = xcalloc(1, sizeof(*m));
    m->rules = rules;
    m->stats = stats;
    m->http = evhttp_new(base);
    /* A scrape is one small request: keep slow or oversized clients from holding memory. */
    evhttp_set_timeout(m->http, 10);
    evhttp_set_max_headers_size(m->http, 8192);
    evhttp_set_max_body_size(m->http, 1024);
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE);
    evhttp_set_gencb(m->http, on_request, m);
    if (!evhttp_bind_socket_with_handle(m->http, host, (unsigned short)port)) {
        snprintf(err, errlen, "RATELIMITD_METRICS_LISTEN: cannot listen on %s: %s", listen, strerror(errno));
        evhttp_free(m->http);
        free(m);
        return NULL;
    }
    return m;
}

void rld_metrics_http_free(struct rld_metrics_http *m)
{
    if (!m)
        return;
    evhttp_free(m->http);
    free(m);
}

void rld_metrics_http_set_rules(struct rld_metrics_http *m, const struct rld_rules *rules)
{
    m->rules = rules;
}
