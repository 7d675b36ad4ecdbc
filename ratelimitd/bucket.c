#include "ratelimitd/bucket.h"

#include <stdlib.h>
#include <string.h>

#include "shared/log.h"
#include "shared/xalloc.h"

/* Beyond this many buckets the table is emptied (everyone starts full) rather than
 * growing without bound while Redis is away and keys are, e.g., spoofed addresses. */
#define MAX_BUCKETS 1000000

struct entry {
    struct entry *next;
    uint64_t hash;
    int64_t tat;
    size_t len;
    char key[]; /* rule name, NUL, key */
};

struct rld_buckets {
    struct entry **slots;
    size_t nslots;
    size_t count;
    size_t sweep_at; /* sweep when count reaches this */
};

static int64_t ceil_div(int64_t a, int64_t b)
{
    return a <= 0 ? 0 : (a + b - 1) / b;
}

void rld_decision_fill(const struct rld_rule *rule, bool allowed, int64_t remaining, int64_t retry_us,
                       int64_t full_us, struct rld_decision *d)
{
    d->allowed = allowed;
    d->limit = rule->burst;
    d->remaining = remaining < 0 ? 0 : remaining > rule->burst ? rule->burst : (long)remaining;
    d->reset_s = (long)ceil_div(full_us, 1000000);
    d->retry_after_ms = allowed ? 0 : (long)ceil_div(retry_us, 1000);
    if (!allowed && d->retry_after_ms < 1)
        d->retry_after_ms = 1;
    d->window_s = rule->window_s;
    d->granted = allowed ? 1 : 0;
}

void rld_gcra(const struct rld_rule *rule, int64_t tat, int64_t now_us, long cost, struct rld_decision *d,
              int64_t *new_tat)
{
    int64_t t = rule->interval_us, tau = rule->tau_us;
    if (tat < now_us)
        tat = now_us;
    int64_t next = tat + (int64_t)cost * t;
    int64_t allow_at = next - tau;
    if (allow_at > now_us) {
        rld_decision_fill(rule, false, (tau - (tat - now_us)) / t, allow_at - now_us, tat - now_us, d);
        return;
    }
    *new_tat = next;
    rld_decision_fill(rule, true, (tau - (next - now_us)) / t, 0, next - now_us, d);
}

static uint64_t hash_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < alen; i++)
        h = (h ^ (unsigned char)a[i]) * 1099511628211ULL;
    h = (h ^ 0) * 1099511628211ULL;
    for (size_t i = 0; i < blen; i++)
        h = (h ^ (unsigned char)b[i]) * 1099511628211ULL;
    return h;
}

struct rld_buckets *rld_buckets_new(void)
{
    struct rld_buckets *b = xcalloc(1, sizeof(*b));
    b->nslots = 1024;
    b->slots = xcalloc(b->nslots, sizeof(*b->slots));
    b->sweep_at = 4096;
    return b;
}

static void clear_all(struct rld_buckets *b)
{
    for (size_t i = 0; i < b->nslots; i++) {
        struct entry *e = b->slots[i];
        while (e) {
            struct entry *next = e->next;
            free(e);
            e = next;
        }
        b->slots[i] = NULL;
    }
    b->count = 0;
}

void rld_buckets_free(struct rld_buckets *b)
{
    if (!b)
        return;
    clear_all(b);
    free(b->slots);
    free(b);
}

static void grow(struct rld_buckets *b)
{
    size_t n = b->nslots * 2;
    struct entry **slots = xcalloc(n, sizeof(*slots));
    for (size_t i = 0; i < b->nslots; i++) {
        struct entry *e = b->slots[i];
        while (e) {
            struct entry *next = e->next;
            e->next = slots[e->hash & (n - 1)];
            slots[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(b->slots);
    b->slots = slots;
    b->nslots = n;
}

void rld_buckets_sweep(struct rld_buckets *b, int64_t now_us)
{
    for (size_t i = 0; i < b->nslots; i++) {
        struct entry **pp = &b->slots[i];
        while (*pp) {
            struct entry *e = *pp;
            if (e->tat <= now_us) {
                *pp = e->next;
                free(e);
                b->count--;
            } else {
                pp = &e->next;
            }
        }
    }
}

size_t rld_buckets_count(const struct rld_buckets *b)
{
    return b->count;
}

void rld_buckets_check(struct rld_buckets *b, const struct rld_rule *rule, const char *key, size_t key_len,
                       long cost, int64_t now_us, struct rld_decision *d)
{
    size_t name_len = strlen(rule->name);
    uint64_t h = hash_bytes(rule->name, name_len, key, key_len);
    size_t len = name_len + 1 + key_len;
    struct entry *e = b->slots[h & (b->nslots - 1)];
    for (; e; e = e->next) {
        if (e->hash == h && e->len == len && memcmp(e->key, rule->name, name_len + 1) == 0 &&
            memcmp(e->key + name_len + 1, key, key_len) == 0)
            break;
    }
    int64_t tat = e ? e->tat : 0;
    int64_t next = tat;
    rld_gcra(rule, tat, now_us, cost, d, &next);
    if (e) {
        e->tat = next;
        return;
    }
    if (!d->allowed || next <= now_us)
        return; /* a refused or free request leaves a full bucket: nothing to remember */
    if (b->count >= b->sweep_at) {
        rld_buckets_sweep(b, now_us);
        if (b->count >= MAX_BUCKETS) {
            log_warn("local buckets: %zu buckets, more than %d; forgetting all of them", b->count,
                     MAX_BUCKETS);
            clear_all(b);
        }
        b->sweep_at = b->count * 2 > 4096 ? b->count * 2 : 4096;
    }
    if (b->count >= b->nslots)
        grow(b);
    e = xmalloc(sizeof(*e) + len);
    e->hash = h;
    e->tat = next;
    e->len = len;
    memcpy(e->key, rule->name, name_len + 1);
    memcpy(e->key + name_len + 1, key, key_len);
    e->next = b->slots[h & (b->nslots - 1)];
    b->slots[h & (b->nslots - 1)] = e;
    b->count++;
}
