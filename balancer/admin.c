#include "admin.h"

#include "tls.h"

#include "balancer.h"
#include "shared/config.h"
#include "shared/process_metrics.h"
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
    json_object_set_new(root, "connections", json_integer(b->nclients));
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
        json_object_set_new(o, "idle_connections", json_integer(be->idle_count));
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

/* Appends the /metrics text (Prometheus 0.0.4) to o. */
static void metrics_text(struct balancer *b, struct evbuffer *o)
{
    evbuffer_add_printf(o,
                        "# HELP balancer_up_seconds Time since the balancer started.\n"
                        "# TYPE balancer_up_seconds gauge\nbalancer_up_seconds %.3f\n",
                        uptime_s(b));
    evbuffer_add_printf(o,
                        "# HELP balancer_connections Open client connections.\n"
                        "# TYPE balancer_connections gauge\nbalancer_connections %ld\n",
                        b->nclients);
    evbuffer_add_printf(o,
                        "# HELP balancer_accepted_connections_total Client connections accepted.\n"
                        "# TYPE balancer_accepted_connections_total counter\n"
                        "balancer_accepted_connections_total %llu\n",
                        (unsigned long long)b->accepted);
    evbuffer_add_printf(
        o,
        "# HELP balancer_rejected_connections_total Client connections refused over the limit.\n"
        "# TYPE balancer_rejected_connections_total counter\n"
        "balancer_rejected_connections_total %llu\n",
        (unsigned long long)b->rejected);
    evbuffer_add_printf(o,
                        "# HELP balancer_requests_total Requests received.\n"
                        "# TYPE balancer_requests_total counter\nbalancer_requests_total %llu\n",
                        (unsigned long long)b->requests);
    evbuffer_add_printf(
        o,
        "# HELP balancer_local_responses_total Answers made by the balancer itself (errors).\n"
        "# TYPE balancer_local_responses_total counter\nbalancer_local_responses_total %llu\n",
        (unsigned long long)b->local_errors);
    evbuffer_add_printf(
        o,
        "# HELP balancer_reloads_total Configurations applied by SIGHUP.\n"
        "# TYPE balancer_reloads_total counter\nbalancer_reloads_total %llu\n"
        "# HELP balancer_draining 1 once a stop signal came: no new connections are accepted.\n"
        "# TYPE balancer_draining gauge\nbalancer_draining %d\n",
        (unsigned long long)b->reloads, b->draining ? 1 : 0);
    struct procm_row self = {.labels = ""};
    struct strbuf text = {0};
    if (procm_read(0, &self.sample) == 0)
        procm_format(&text, &self, 1);
    procm_build_info(&text, "balancer", SHOP_VERSION);
    size_t len;
    char *p = strbuf_take(&text, &len);
    evbuffer_add(o, p, len);
    free(p);

    struct {
        const char *name, *type, *help;
        size_t off;
        bool is_long;
    } per[] = {
        {"balancer_backend_up", "gauge", "1 when the backend is healthy.", 0, false},
        {"balancer_backend_in_flight", "gauge", "Requests being answered.",
         offsetof(struct backend, in_flight), true},
        {"balancer_backend_connections", "gauge", "Open connections (busy and idle).",
         offsetof(struct backend, connections), true},
        {"balancer_backend_requests_total", "counter", "Requests sent.", offsetof(struct backend, requests),
         false},
        {"balancer_backend_retries_total", "counter", "Requests retried on this backend.",
         offsetof(struct backend, retries), false},
        {"balancer_backend_failures_total", "counter", "Connect failures, resets, timeouts and bad answers.",
         offsetof(struct backend, failures), false},
        {"balancer_backend_health_checks_failed_total", "counter", "Failed active health checks.",
         offsetof(struct backend, checks_failed), false},
        {"balancer_backend_sent_bytes_total", "counter", "Answer bytes relayed to clients.",
         offsetof(struct backend, bytes_out), false},
    };
    for (size_t m = 0; m < sizeof(per) / sizeof(per[0]); m++) {
        evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", per[m].name, per[m].help, per[m].name,
                            per[m].type);
        for (size_t i = 0; i < b->nbackends; i++) {
            const struct backend *be = b->backends[i];
            unsigned long long v;
            if (m == 0)
                v = be->up;
            else if (per[m].is_long)
                v = (unsigned long long)*(const long *)((const char *)be + per[m].off);
            else
                v = (unsigned long long)*(const uint64_t *)((const char *)be + per[m].off);
            evbuffer_add_printf(o, "%s{backend=\"%s\"} %llu\n", per[m].name, be->name, v);
        }
    }
    evbuffer_add_printf(o, "# HELP balancer_backend_responses_total Answers by status class.\n"
                           "# TYPE balancer_backend_responses_total counter\n");
    for (size_t i = 0; i < b->nbackends; i++)
        for (int k = 0; k < 6; k++)
            evbuffer_add_printf(o, "balancer_backend_responses_total{backend=\"%s\",code=\"%s\"} %llu\n",
                                b->backends[i]->name, response_classes[k],
                                (unsigned long long)b->backends[i]->responses[k]);
    evbuffer_add_printf(
        o, "# HELP balancer_backend_latency_seconds Time from sending to the end of the answer.\n"
           "# TYPE balancer_backend_latency_seconds histogram\n");
    for (size_t i = 0; i < b->nbackends; i++) {
        const struct backend *be = b->backends[i];
        uint64_t cum = 0;
        for (int k = 0; k < BACKEND_LAT_BUCKETS; k++) {
            cum += be->lat_buckets[k];
            evbuffer_add_printf(o, "balancer_backend_latency_seconds_bucket{backend=\"%s\",le=\"%g\"} %llu\n",
                                be->name, (double)backend_lat_bounds_us[k] / 1e6, (unsigned long long)cum);
        }
        evbuffer_add_printf(o, "balancer_backend_latency_seconds_bucket{backend=\"%s\",le=\"+Inf\"} %llu\n",
                            be->name, (unsigned long long)be->lat_count);
        evbuffer_add_printf(o, "balancer_backend_latency_seconds_sum{backend=\"%s\"} %.6f\n", be->name,
                            (double)be->lat_sum_us / 1e6);
        evbuffer_add_printf(o, "balancer_backend_latency_seconds_count{backend=\"%s\"} %llu\n", be->name,
                            (unsigned long long)be->lat_count);
    }
}

static const char *reason_of(int code)
{
    return code == 200 ? "OK" : code == 404 ? "Not Found" : "Method Not Allowed";
}

static void admin_request(struct evhttp_request *req, void *arg)
{
    struct balancer *b = arg;
    const char *uri = evhttp_request_get_uri(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    size_t plen = strcspn(uri, "?");
    struct evbuffer *body = evbuffer_new();
    int code = 200;
    const char *type = "text/plain";
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        code = 405;
        evbuffer_add_printf(body, "method not allowed\n");
    } else if (plen == 7 && strncmp(uri, "/status", 7) == 0) {
        type = "application/json";
        status_json(b, body);
    } else if (plen == 8 && strncmp(uri, "/metrics", 8) == 0) {
        type = "text/plain; version=0.0.4";
        metrics_text(b, body);
        if (b->tls)
            tls_metrics(b->tls, body);
    } else {
        code = 404;
        evbuffer_add_printf(body, "not found: try /status or /metrics\n");
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason_of(code), body);
    evbuffer_free(body);
}

int admin_start(struct balancer *b, char *err, size_t errlen)
{
    if (!b->set.admin_listen[0])
        return 0;
    char host[256];
    int port;
    if (config_parse_hostport(b->set.admin_listen, host, sizeof(host), &port) < 0) {
        snprintf(err, errlen, "BALANCER_ADMIN_LISTEN=%s is not address:port", b->set.admin_listen);
        return -1;
    }
    b->admin = evhttp_new(b->base);
    evhttp_set_gencb(b->admin, admin_request, b);
    evhttp_set_timeout(b->admin, 10);
    if (!evhttp_bind_socket_with_handle(b->admin, host, (unsigned short)port)) {
        snprintf(err, errlen, "cannot listen on BALANCER_ADMIN_LISTEN=%s", b->set.admin_listen);
        evhttp_free(b->admin);
        b->admin = NULL;
        return -1;
    }
    return 0;
}

void admin_stop(struct balancer *b)
{
    if (b->admin) {
        evhttp_free(b->admin);
        b->admin = NULL;
    }
}
