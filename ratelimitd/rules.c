#include "ratelimitd/rules.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/rl_protocol.h"
#include "shared/strbuf.h"
#include "shared/xalloc.h"

/* A cap so a mistaken or hostile rules file cannot make the daemon allocate without bound. */
#define MAX_RULES 1000
/* And so it cannot make it read without bound. */
#define MAX_FILE_BYTES ((size_t)1 << 24)
#define MAX_TAU_US 1000000000000000LL

static void fail(char *err, size_t errlen, const char *origin, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void fail(char *err, size_t errlen, const char *origin, int line, const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s:%d: %s", origin, line, msg);
}

/* A count in [s, end): 1 to RL_PROTO_MAX_COST, the numbers CHECK takes; -1 when not one. */
static long parse_count(const char *s, const char *end)
{
    long v = s < end ? rl_proto_parse_number(s, (size_t)(end - s)) : -1;
    return v >= 1 ? v : -1;
}

/* "10/1m", "10/m", "5/30s": fills rate and period. Returns 0 or -1 with a reason. */
static int parse_rate(const char *s, size_t len, long *rate, long *period_s, const char **reason)
{
    const char *end = s + len;
    const char *slash = memchr(s, '/', len);
    if (!slash) {
        *reason = "rate must look like N/period, e.g. 10/1m";
        return -1;
    }
    *rate = parse_count(s, slash);
    if (*rate < 0) {
        *reason = "rate must be a whole number from 1 to 1000000";
        return -1;
    }
    const char *u = end - 1;
    if (u <= slash) {
        *reason = "missing period after '/'";
        return -1;
    }
    long unit;
    switch (*u) {
    case 's':
        unit = 1;
        break;
    case 'm':
        unit = 60;
        break;
    case 'h':
        unit = 3600;
        break;
    default:
        *reason = "period unit must be s, m or h";
        return -1;
    }
    long count = u == slash + 1 ? 1 : parse_count(slash + 1, u);
    if (count < 0 || count > 100000) {
        *reason = "period count must be a whole number from 1 to 100000";
        return -1;
    }
    *period_s = count * unit;
    return 0;
}

static int add_rule(struct rld_rules *set, size_t *cap, const char *line, size_t len, const char *origin,
                    int lineno, char *err, size_t errlen)
{
    const char *tok[8];
    size_t tok_len[8];
    int n = 0;
    const char *p = line, *end = line + len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p == end)
            break;
        if (n == 8) {
            fail(err, errlen, origin, lineno, "too many fields");
            return -1;
        }
        tok[n] = p;
        while (p < end && *p != ' ' && *p != '\t')
            p++;
        tok_len[n] = (size_t)(p - tok[n]);
        n++;
    }
    if (n == 0)
        return 0;
    if (n < 3) {
        fail(err, errlen, origin, lineno, "expected: name rate/period burst=N [shadow]");
        return -1;
    }
    struct rld_rule r;
    memset(&r, 0, sizeof(r));
    if (!rl_proto_rule_name_ok(tok[0], tok_len[0])) {
        fail(err, errlen, origin, lineno, "rule name must be 1-64 letters, digits, '_', '-' or '.'");
        return -1;
    }
    memcpy(r.name, tok[0], tok_len[0]);
    if (rld_rules_find(set, r.name, tok_len[0])) {
        fail(err, errlen, origin, lineno, "rule '%s' defined twice", r.name);
        return -1;
    }
    const char *reason;
    if (parse_rate(tok[1], tok_len[1], &r.rate, &r.period_s, &reason) < 0) {
        fail(err, errlen, origin, lineno, "%s", reason);
        return -1;
    }
    bool have_burst = false;
    for (int i = 2; i < n; i++) {
        if (tok_len[i] > 6 && memcmp(tok[i], "burst=", 6) == 0 && !have_burst) {
            r.burst = parse_count(tok[i] + 6, tok[i] + tok_len[i]);
            if (r.burst < 0) {
                fail(err, errlen, origin, lineno, "burst must be a whole number from 1 to 1000000");
                return -1;
            }
            have_burst = true;
        } else if (tok_len[i] == 6 && memcmp(tok[i], "shadow", 6) == 0 && !r.shadow) {
            r.shadow = true;
        } else {
            fail(err, errlen, origin, lineno, "unexpected '%.*s' (expected burst=N or shadow, once each)",
                 (int)(tok_len[i] > 40 ? 40 : tok_len[i]), tok[i]);
            return -1;
        }
    }
    if (!have_burst) {
        fail(err, errlen, origin, lineno, "missing burst=N");
        return -1;
    }
    if (set->count == MAX_RULES) {
        fail(err, errlen, origin, lineno, "more than %d rules", MAX_RULES);
        return -1;
    }
    /* Microseconds keep sub-millisecond intervals exact enough for rates up to 1e6/s. */
    int64_t interval = ((int64_t)r.period_s * 1000000 + r.rate / 2) / r.rate;
    r.interval_us = interval > 0 ? interval : 1;
    /* tau also bounds how far a TAT runs ahead of the clock; keeping it under ~31 years keeps
     * now + tau exact in the Lua script's doubles and far from int64 overflow. */
    if (r.interval_us > MAX_TAU_US / r.burst) {
        fail(err, errlen, origin, lineno, "burst / rate takes longer than %lld seconds to refill",
             (long long)(MAX_TAU_US / 1000000));
        return -1;
    }
    r.tau_us = r.interval_us * r.burst;
    r.window_s = (long)((r.tau_us + 999999) / 1000000);
    if (set->count == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        set->rules = xrealloc(set->rules, *cap * sizeof(*set->rules));
    }
    set->rules[set->count++] = r;
    return 0;
}

struct rld_rules *rld_rules_parse(const char *text, size_t len, const char *origin, char *err, size_t errlen)
{
    struct rld_rules *set = xcalloc(1, sizeof(*set));
    size_t cap = 0;
    int lineno = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        lineno++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t line_len = (size_t)((nl ? nl : end) - p);
        if (line_len > 0 && p[line_len - 1] == '\r')
            line_len--;
        /* Comments may hold any text; only the rule part is checked byte by byte. */
        const char *hash = memchr(p, '#', line_len);
        const char *stop = hash ? hash : p + line_len;
        for (const char *q = p; q < stop; q++) {
            unsigned char ch = (unsigned char)*q;
            if ((ch < 0x20 && ch != '\t') || ch > 0x7e) {
                fail(err, errlen, origin, lineno, "unexpected control or non-ASCII byte");
                goto bad;
            }
        }
        if (add_rule(set, &cap, p, (size_t)(stop - p), origin, lineno, err, errlen) < 0)
            goto bad;
        p = nl ? nl + 1 : end;
    }
    if (set->count == 0) {
        snprintf(err, errlen, "%s: no rules defined", origin);
        goto bad;
    }
    return set;
bad:
    rld_rules_free(set);
    return NULL;
}

struct rld_rules *rld_rules_load(const char *path, char *err, size_t errlen)
{
    struct strbuf text = {0};
    if (strbuf_read_file(&text, path, MAX_FILE_BYTES) < 0) {
        if (errno == EFBIG)
            snprintf(err, errlen, "%s: file too large", path);
        else
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
        strbuf_free(&text);
        return NULL;
    }
    struct rld_rules *set = rld_rules_parse(text.p, text.len, path, err, errlen);
    strbuf_free(&text);
    return set;
}

void rld_rules_free(struct rld_rules *rules)
{
    if (!rules)
        return;
    free(rules->rules);
    free(rules);
}

const struct rld_rule *rld_rules_find(const struct rld_rules *rules, const char *name, size_t len)
{
    for (size_t i = 0; i < rules->count; i++) {
        if (strlen(rules->rules[i].name) == len && memcmp(rules->rules[i].name, name, len) == 0)
            return &rules->rules[i];
    }
    return NULL;
}
