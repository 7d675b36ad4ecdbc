#include "admin.h"

#include "tls.h"

#include "state.h"
#include "pool.h"
#include "proxy.h"
#include "shared/admin_http.h"
#include "shared/process_metrics.h"
#include "shared/prom.h"
#include "shared/strbuf.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* Upper bound (ms) of the histogram bucket holding quantile q, a coarse but
 * allocation-free estimate. */
static double latency_quantile_ms(const struct backend *be, double q)
{
    if (be->lat_count == 0)
        return 0;
    uint64_t want = (uint64_t)((double)be->lat_count * q + 0.5), seen = 0;
    if (want == 0)
        want = 1;
    for (int i = 0; i <= BACKEND_LAT_BUCKETS; i++) {
        seen += be->lat_buckets[i];
        if (seen >= want)
            return i < BACKEND_LAT_BUCKETS ? (double)backend_lat_bounds_us[i] / 1000.0
                                           : (double)be->lat_max_us / 1000.0;
    }
    return (double)be->lat_max_us / 1000.0;
}

/* Answers by status class, the index of struct backend's responses[]. */
static const char *const response_classes[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};

static double uptime_s(const struct balancer *b)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (double)(now.tv_sec - b->started.tv_sec) + (double)(now.tv_usec - b->started.tv_usec) / 1e6;
}

/* Appends the /status document to out. */
static void status_json(struct balancer *b, struct evbuffer *out)
{
    json_t *root = json_object();
    json_object_set_new(root, "version", json_string(SHOP_VERSION));
    json_object_set_new(root, "uptime_s", json_real(uptime_s(b)));
    json_object_set_new(root, "draining", json_boolean(b->draining));
    json_object_set_new(root, "connections", json_integer(proxy_client_count(b)));
    json_object_set_new(root, "accepted_total", json_integer((json_int_t)b->accepted));
    json_object_set_new(root, "rejected_total", json_integer((json_int_t)b->rejected));
    json_object_set_new(root, "requests_total", json_integer((json_int_t)b->requests));
    json_object_set_new(root, "local_errors_total", json_integer((json_int_t)b->local_errors));
    json_object_set_new(root, "reloads_total", json_integer((json_int_t)b->reloads));
    long up = 0;
    json_t *list = json_array();
    for (size_t i = 0; i < b->nbackends; i++) {
        const struct backend *be = b->backends[i];
        up += be->up;
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(be->name));
        json_object_set_new(o, "weight", json_integer(be->spec.weight));
        json_object_set_new(o, "state", json_string(be->up ? "up" : "down"));
        json_object_set_new(o, "consecutive_failures", json_integer(be->fails));
        json_object_set_new(o, "last_error", json_string(be->last_error));
        json_object_set_new(o, "in_flight", json_integer(be->in_flight));
        json_object_set_new(o, "connections", json_integer(be->connections));
        json_object_set_new(o, "idle_connections", json_integer(pool_idle_count(be)));
        json_object_set_new(o, "requests_total", json_integer((json_int_t)be->requests));
        json_object_set_new(o, "retries_total", json_integer((json_int_t)be->retries));
        json_object_set_new(o, "failures_total", json_integer((json_int_t)be->failures));
        json_object_set_new(o, "health_checks_failed_total", json_integer((json_int_t)be->checks_failed));
        json_object_set_new(o, "bytes_out_total", json_integer((json_int_t)be->bytes_out));
        json_t *resp = json_object();
        for (int k = 0; k < 6; k++)
            json_object_set_new(resp, response_classes[k], json_integer((json_int_t)be->responses[k]));
        json_object_set_new(o, "responses", resp);
        json_t *lat = json_object();
        json_object_set_new(lat, "count", json_integer((json_int_t)be->lat_count));
        json_object_set_new(
            lat, "avg_ms",
            json_real(be->lat_count ? (double)be->lat_sum_us / (double)be->lat_count / 1000.0 : 0));
        json_object_set_new(lat, "max_ms", json_real((double)be->lat_max_us / 1000.0));
        json_object_set_new(lat, "p50_ms", json_real(latency_quantile_ms(be, 0.5)));
        json_object_set_new(lat, "p99_ms", json_real(latency_quantile_ms(be, 0.99)));
        json_object_set_new(o, "latency", lat);
        json_array_append_new(list, o);
    }
    json_object_set_new(root, "backends_up", json_integer(up));
    json_object_set_new(root, "backends", list);
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    evbuffer_add(out, text, strlen(text));
    free(text);
}

/* The /metrics text (Prometheus 0.0.4). */
static void metrics_text(struct balancer *b, struct strbuf *o)
{
    prom_gauge(o, "balancer_up_seconds", "Time since the balancer started.", uptime_s(b));
    prom_gauge(o, "balancer_connections", "Open client connections.", (double)proxy_client_count(b));
    prom_counter(o, "balancer_accepted_connections_total", "Client connections accepted.", b->accepted);
    prom_counter(o, "balancer_rejected_connections_total", "Client connections refused over the limit.",
                 b->rejected);
    prom_counter(o, "balancer_requests_total", "Requests received.", b->requests);
    prom_counter(o, "balancer_local_responses_total", "Answers made by the balancer itself (errors).",
                 b->local_errors);
    prom_counter(o, "balancer_reloads_total", "Configurations applied by SIGHUP.", b->reloads);
    prom_gauge(o, "balancer_draining", "1 once a stop signal came: no new connections are accepted.",
               b->draining ? 1 : 0);
    struct procm_row self = {.labels = ""};
    if (procm_read(0, &self.sample) == 0)
        procm_format(o, &self, 1);
    procm_build_info(o, "balancer", SHOP_VERSION);

    struct {
        const char *name;
        enum prom_type type;
        const char *help;
        size_t off;
        bool is_long;
    } per[] = {
        {"balancer_backend_up", PROM_GAUGE, "1 when the backend is healthy.", 0, false},
        {"balancer_backend_in_flight", PROM_GAUGE, "Requests being answered.",
         offsetof(struct backend, in_flight), true},
        {"balancer_backend_connections", PROM_GAUGE, "Open connections (busy and idle).",
         offsetof(struct backend, connections), true},
        {"balancer_backend_requests_total", PROM_COUNTER, "Requests sent.",
         offsetof(struct backend, requests), false},
        {"balancer_backend_retries_total", PROM_COUNTER, "Requests retried on this backend.",
         offsetof(struct backend, retries), false},
        {"balancer_backend_failures_total", PROM_COUNTER,
         "Connect failures, resets, timeouts and bad answers.", offsetof(struct backend, failures), false},
        {"balancer_backend_health_checks_failed_total", PROM_COUNTER, "Failed active health checks.",
         offsetof(struct backend, checks_failed), false},
        {"balancer_backend_sent_bytes_total", PROM_COUNTER, "Answer bytes relayed to clients.",
         offsetof(struct backend, bytes_out), false},
    };
    char labels[PROM_LABELS_MAX];
    for (size_t m = 0; m < sizeof(per) / sizeof(per[0]); m++) {
        prom_family(o, per[m].name, per[m].type, per[m].help);
        for (size_t i = 0; i < b->nbackends; i++) {
            const struct backend *be = b->backends[i];
            uint64_t v;
            if (m == 0)
                v = be->up ? 1 : 0;
            else if (per[m].is_long)
                v = (uint64_t) * (const long *)((const char *)be + per[m].off);
            else
                v = *(const uint64_t *)((const char *)be + per[m].off);
            prom_sample_u64(o, per[m].name, prom_labels(labels, sizeof(labels), "backend", be->name, NULL),
                            v);
        }
    }
    prom_family(o, "balancer_backend_responses_total", PROM_COUNTER, "Answers by status class.");
    for (size_t i = 0; i < b->nbackends; i++)
        for (int k = 0; k < 6; k++)
            prom_sample_u64(o, "balancer_backend_responses_total",
                            prom_labels(labels, sizeof(labels), "backend", b->backends[i]->name, "code",
                                        response_classes[k], NULL),
                            b->backends[i]->responses[k]);
    prom_family(o, "balancer_backend_latency_seconds", PROM_HISTOGRAM,
                "Time from sending to the end of the answer.");
    double bounds[BACKEND_LAT_BUCKETS];
    for (int k = 0; k < BACKEND_LAT_BUCKETS; k++)
        bounds[k] = (double)backend_lat_bounds_us[k] / 1e6;
    for (size_t i = 0; i < b->nbackends; i++) {
        const struct backend *be = b->backends[i];
        uint64_t counts[BACKEND_LAT_BUCKETS + 1], below = 0;
        for (int k = 0; k < BACKEND_LAT_BUCKETS; k++)
            below += counts[k] = be->lat_buckets[k];
        counts[BACKEND_LAT_BUCKETS] = be->lat_count - below;
        prom_histogram(o, "balancer_backend_latency_seconds",
                       prom_labels(labels, sizeof(labels), "backend", be->name, NULL), bounds, counts,
                       BACKEND_LAT_BUCKETS, (double)be->lat_sum_us / 1e6);
    }
}

static void write_status(struct evbuffer *body, void *ctx)
{
    status_json(ctx, body);
}

static void write_metrics(struct evbuffer *body, void *ctx)
{
    struct balancer *b = ctx;
    struct strbuf text = {0};
    metrics_text(b, &text);
    if (b->tls)
        tls_metrics(b->tls, &text);
    evbuffer_add(body, text.p, text.len);
    strbuf_free(&text);
}

static const struct admin_http_page pages[] = {
    {"/status", "application/json", write_status},
    {"/metrics", ADMIN_HTTP_PROMETHEUS, write_metrics},
};

int admin_start(struct balancer *b, char *err, size_t errlen)
{
    if (!b->set.admin_listen[0])
        return 0;
    b->admin = admin_http_new(b->base, "BALANCER_ADMIN_LISTEN", b->set.admin_listen, pages,
                              sizeof(pages) / sizeof(pages[0]), b, err, errlen);
    return b->admin ? 0 : -1;
}

void admin_stop(struct balancer *b)
{
    admin_http_free(b->admin);
    b->admin = NULL;
}
