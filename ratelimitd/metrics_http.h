/* metrics_http: ratelimitd's counters in Prometheus text format over HTTP (GET /metrics).
 *
 * An evhttp listener on the daemon's own event base, so reading the counters needs no
 * locking: a scrape is answered between two decisions. Off unless RATELIMITD_METRICS_LISTEN
 * is set. The same counters are on the control socket's STATS line. */
#ifndef RATELIMITD_METRICS_HTTP_H
#define RATELIMITD_METRICS_HTTP_H

#include <stddef.h>

#include "ratelimitd/rules.h"
#include "ratelimitd/stats.h"

struct event_base;

struct rld_metrics_http;

/* Binds listen ("host:port"; port 0 is refused) and serves GET/HEAD /metrics on base.
 * rules and stats are borrowed and must outlive the listener. Returns NULL with a
 * one-line reason in err when the address is malformed or cannot be bound. */
struct rld_metrics_http *rld_metrics_http_new(struct event_base *base, const char *listen,
                                              const struct rld_rules *rules, const struct rld_stats *stats,
                                              char *err, size_t errlen);
/* Closes the listener and any scrape in progress; NULL is a no-op. */
void rld_metrics_http_free(struct rld_metrics_http *m);

/* The rules whose names label the per-rule counters from now on (a reload). */
void rld_metrics_http_set_rules(struct rld_metrics_http *m, const struct rld_rules *rules);

#endif
