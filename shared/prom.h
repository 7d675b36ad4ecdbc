/* prom: the Prometheus text exposition format (version 0.0.4), written the same
 * way by all three daemons: metric families with HELP and TYPE, samples with
 * escaped label values, and cumulative histograms.
 *
 *   struct strbuf out = {0};
 *   prom_counter(&out, "shop_requests_total", "Requests answered.", n);
 *   prom_family(&out, "shop_up", PROM_GAUGE, "1 per healthy backend.");
 *   char labels[PROM_LABELS_MAX];
 *   prom_labels(labels, sizeof(labels), "backend", name, NULL);
 *   prom_sample(&out, "shop_up", labels, 1);
 */
#ifndef SHARED_PROM_H
#define SHARED_PROM_H

#include <stddef.h>
#include <stdint.h>

struct strbuf;

enum prom_type { PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM, PROM_SUMMARY };

/* Room for a label set of a few short labels. */
#define PROM_LABELS_MAX 512

/* Writes "# HELP name help" and "# TYPE name type"; help's backslashes and
 * newlines are escaped. */
void prom_family(struct strbuf *out, const char *name, enum prom_type type, const char *help);

/* Writes `k1="v1",k2="v2"` into buf from NULL-terminated pairs of label names
 * and values, escaping the values (backslash, double quote, newline). Cut at
 * a pair boundary when buf is too small. Returns buf. */
const char *prom_labels(char *buf, size_t size, const char *name, const char *value, ...)
    __attribute__((sentinel));

/* One sample line: `name{labels} value`, labels being prom_labels text, or
 * NULL or "" for none. Integral values print without a fraction; others with
 * 15 significant digits, enough for a Unix time in seconds with its
 * milliseconds. */
void prom_sample(struct strbuf *out, const char *name, const char *labels, double value);
/* The same for a counter that may exceed 2^53 (printed exactly). */
void prom_sample_u64(struct strbuf *out, const char *name, const char *labels, uint64_t value);

/* A family with one unlabelled sample. */
void prom_counter(struct strbuf *out, const char *name, const char *help, uint64_t value);
void prom_gauge(struct strbuf *out, const char *name, const char *help, double value);

/* One series of a histogram family (write prom_family(..., PROM_HISTOGRAM, ...)
 * once before the series): the _bucket lines with cumulative counts for each
 * upper bound (in the metric's unit, ascending) and +Inf, then _sum and
 * _count. counts[i] holds the observations in bucket i alone, counts[nbounds]
 * those above the last bound. */
void prom_histogram(struct strbuf *out, const char *name, const char *labels, const double *bounds,
                    const uint64_t *counts, size_t nbounds, double sum);

#endif
