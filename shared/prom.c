#include "shared/prom.h"
#include "shared/strbuf.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const type_names[] = {[PROM_COUNTER] = "counter",
                                         [PROM_GAUGE] = "gauge",
                                         [PROM_HISTOGRAM] = "histogram",
                                         [PROM_SUMMARY] = "summary"};

void prom_family(struct strbuf *out, const char *name, enum prom_type type, const char *help)
{
    strbuf_addf(out, "# HELP %s ", name);
    for (const char *h = help; *h; h++) {
        if (*h == '\\')
            strbuf_adds(out, "\\\\");
        else if (*h == '\n')
            strbuf_adds(out, "\\n");
        else
            strbuf_addc(out, *h);
    }
    strbuf_addf(out, "\n# TYPE %s %s\n", name, type_names[type]);
}

/* Length of value once escaped. */
static int escaped_len(const char *value)
{
    int n = 0;
    for (const char *v = value; *v; v++)
        n += (*v == '\\' || *v == '"' || *v == '\n') ? 2 : 1;
    return n;
}

const char *prom_labels(char *buf, size_t size, const char *name, const char *value, ...)
{
    size_t len = 0;
    if (size)
        buf[0] = '\0';
    va_list ap;
    va_start(ap, value);
    while (name) {
        size_t need = (len ? 1 : 0) + strlen(name) + 2 + (size_t)escaped_len(value ? value : "") + 1;
        if (len + need >= size)
            break;
        if (len)
            buf[len++] = ',';
        len += (size_t)snprintf(buf + len, size - len, "%s=\"", name);
        for (const char *v = value ? value : ""; *v; v++) {
            if (*v == '\\' || *v == '"' || *v == '\n')
                buf[len++] = '\\';
            buf[len++] = *v == '\n' ? 'n' : *v;
        }
        buf[len++] = '"';
        buf[len] = '\0';
        name = va_arg(ap, const char *);
        if (name)
            value = va_arg(ap, const char *);
    }
    va_end(ap);
    return buf;
}

static void sample_name(struct strbuf *out, const char *name, const char *labels)
{
    if (labels && *labels)
        strbuf_addf(out, "%s{%s} ", name, labels);
    else
        strbuf_addf(out, "%s ", name);
}

void prom_sample(struct strbuf *out, const char *name, const char *labels, double value)
{
    sample_name(out, name, labels);
    if (isnan(value))
        strbuf_adds(out, "NaN\n");
    else if (isinf(value))
        strbuf_adds(out, value > 0 ? "+Inf\n" : "-Inf\n");
    else if (value == floor(value) && fabs(value) < 9007199254740992.0)
        strbuf_addf(out, "%.0f\n", value);
    else
        strbuf_addf(out, "%.15g\n", value);
}

void prom_sample_u64(struct strbuf *out, const char *name, const char *labels, uint64_t value)
{
    sample_name(out, name, labels);
    strbuf_addf(out, "%" PRIu64 "\n", value);
}

void prom_counter(struct strbuf *out, const char *name, const char *help, uint64_t value)
{
    prom_family(out, name, PROM_COUNTER, help);
    prom_sample_u64(out, name, NULL, value);
}

void prom_gauge(struct strbuf *out, const char *name, const char *help, double value)
{
    prom_family(out, name, PROM_GAUGE, help);
    prom_sample(out, name, NULL, value);
}

void prom_histogram(struct strbuf *out, const char *name, const char *labels, const double *bounds,
                    const uint64_t *counts, size_t nbounds, double sum)
{
    const char *sep = labels && *labels ? "," : "";
    const char *l = labels ? labels : "";
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= nbounds; i++) {
        cumulative += counts[i];
        if (i < nbounds)
            strbuf_addf(out, "%s_bucket{%s%sle=\"%.15g\"} %" PRIu64 "\n", name, l, sep, bounds[i],
                        cumulative);
        else
            strbuf_addf(out, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, l, sep, cumulative);
    }
    if (*l)
        strbuf_addf(out, "%s_sum{%s} %.9g\n%s_count{%s} %" PRIu64 "\n", name, l, sum, name, l, cumulative);
    else
        strbuf_addf(out, "%s_sum %.9g\n%s_count %" PRIu64 "\n", name, sum, name, cumulative);
}
