#include "shopd/rl_lease.h"

#include <stdlib.h>
#include <string.h>

#include "shared/rl_protocol.h"
#include "shared/xalloc.h"

#define LIFE_US ((uint64_t)RL_LEASE_LIFE_MS * 1000)
/* An entry unused this long, with nothing in it, is forgotten. */
#define IDLE_US 1000000
/* A lease is at most this fraction of the burst, so that the shares the workers hold
 * at once leave most of it to the other workers and hosts. */
#define SHARE_DIVISOR 16

_Static_assert(RL_LEASE_MAX <= RL_PROTO_MAX_LEASE, "a lease ratelimitd would refuse");

struct rl_lease {
    struct rl_lease *next;
    uint64_t hash;
    long tokens; /* granted and not spent, usable until expires_us */
    uint64_t expires_us;
    uint64_t deny_until_us;   /* a kept refusal: every check before this is refused */
    uint64_t retry_at_us;     /* when the kept refusal's retry succeeds */
    struct rl_result granted; /* the last ALLOW: limit, remaining when granted, reset, window */
    struct rl_result refused; /* the last DENY */
    long share;               /* most tokens one ask may be for (from the rule's burst) */
    uint64_t window_start_us;
    long hits, prev_hits; /* checks in this RL_LEASE_LIFE_MS window and in the one before */
    long asked;           /* tokens asked for and not answered */
    uint64_t last_used_us;
    void *caller_data;
    size_t name_len;
    char name[]; /* rule, NUL, key */
};

struct rl_lease_table {
    struct rl_lease **slots;
    size_t nslots;
    size_t count;
    size_t max_entries;
};

static uint64_t hash_name(const char *rule, const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = rule; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h *= 1099511628211ULL; /* the NUL between them */
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

struct rl_lease_table *rl_lease_table_new(size_t max_entries)
{
    struct rl_lease_table *t = xcalloc(1, sizeof(*t));
    t->nslots = 256;
    t->slots = xcalloc(t->nslots, sizeof(*t->slots));
    t->max_entries = max_entries;
    return t;
}

void rl_lease_table_free(struct rl_lease_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nslots; i++) {
        struct rl_lease *l = t->slots[i];
        while (l) {
            struct rl_lease *next = l->next;
            free(l);
            l = next;
        }
    }
    free(t->slots);
    free(t);
}

static void grow(struct rl_lease_table *t)
{
    size_t n = t->nslots * 2;
    struct rl_lease **slots = xcalloc(n, sizeof(*slots));
    for (size_t i = 0; i < t->nslots; i++) {
        struct rl_lease *l = t->slots[i];
        while (l) {
            struct rl_lease *next = l->next;
            l->next = slots[l->hash & (n - 1)];
            slots[l->hash & (n - 1)] = l;
            l = next;
        }
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = n;
}

static void count_hit(struct rl_lease *l, uint64_t now_us)
{
    uint64_t since = now_us - l->window_start_us;
    if (since >= LIFE_US) {
        l->prev_hits = since < 2 * LIFE_US ? l->hits : 0;
        l->hits = 0;
        l->window_start_us = now_us;
    }
    l->hits++;
    l->last_used_us = now_us;
}

struct rl_lease *rl_lease_get(struct rl_lease_table *t, const char *rule, const char *key, uint64_t now_us)
{
    uint64_t h = hash_name(rule, key);
    size_t rule_len = strlen(rule), key_len = strlen(key);
    size_t name_len = rule_len + 1 + key_len;
    struct rl_lease **slot = &t->slots[h & (t->nslots - 1)];
    for (struct rl_lease *l = *slot; l; l = l->next) {
        if (l->hash == h && l->name_len == name_len && memcmp(l->name, rule, rule_len + 1) == 0 &&
            memcmp(l->name + rule_len + 1, key, key_len) == 0) {
            count_hit(l, now_us);
            return l;
        }
    }
    if (t->count >= t->max_entries)
        return NULL;
    struct rl_lease *l = xcalloc(1, sizeof(*l) + name_len + 1);
    l->hash = h;
    l->share = 1;
    l->window_start_us = now_us;
    l->name_len = name_len;
    memcpy(l->name, rule, rule_len + 1);
    memcpy(l->name + rule_len + 1, key, key_len + 1);
    l->next = *slot;
    *slot = l;
    if (++t->count > t->nslots)
        grow(t);
    count_hit(l, now_us);
    return l;
}

const char *rl_lease_rule(const struct rl_lease *l)
{
    return l->name;
}

const char *rl_lease_key(const struct rl_lease *l)
{
    return l->name + strlen(l->name) + 1;
}

static long ceil_div(uint64_t a, uint64_t b)
{
    return (long)((a + b - 1) / b);
}

bool rl_lease_decide(struct rl_lease *l, uint64_t now_us, struct rl_result *out)
{
    /* Tokens first: they were spent from the bucket when granted, before any refusal. */
    if (l->tokens > 0 && now_us < l->expires_us) {
        l->tokens--;
        *out = l->granted;
        long remaining = l->granted.remaining + l->tokens;
        out->remaining = remaining < out->limit ? remaining : out->limit;
        out->retry_after_ms = 0;
        out->granted = 1;
        return true;
    }
    l->tokens = 0;
    if (now_us < l->deny_until_us) {
        *out = l->refused;
        out->retry_after_ms = ceil_div(l->retry_at_us - now_us, 1000);
        out->reset_seconds = ceil_div((uint64_t)out->retry_after_ms, 1000);
        out->granted = 0;
        return true;
    }
    return false;
}

/* Checks in this RL_LEASE_LIFE_MS or the one before, whichever had more. */
static long demand(const struct rl_lease *l)
{
    return l->prev_hits > l->hits ? l->prev_hits : l->hits;
}

long rl_lease_ask_size(const struct rl_lease *l, long uncovered)
{
    long want = demand(l);
    if (want < uncovered)
        want = uncovered;
    if (want > l->share)
        want = l->share;
    return want < 1 ? 1 : want;
}

bool rl_lease_should_renew(const struct rl_lease *l, uint64_t now_us)
{
    if (l->share <= 1 || l->asked > 0 || now_us < l->deny_until_us)
        return false;
    long left = now_us < l->expires_us ? l->tokens : 0;
    /* Only for keys that spend more than half a share in a lease's life: a renewal of a
       colder key would mostly expire unspent, a loss to its visitor. */
    return demand(l) > l->share / 2 && left <= l->share / 2;
}

void rl_lease_asked(struct rl_lease *l, long most)
{
    l->asked += most;
}

long rl_lease_in_flight(const struct rl_lease *l)
{
    return l->asked;
}

void rl_lease_answered(struct rl_lease *l, long most, const struct rl_result *answer, uint64_t now_us)
{
    l->asked -= most;
    if (l->asked < 0)
        l->asked = 0;
    if (answer->verdict == RL_UNAVAILABLE)
        return;
    long share = answer->limit / SHARE_DIVISOR;
    l->share = share < 1 ? 1 : share > RL_LEASE_MAX ? RL_LEASE_MAX : share;
    if (answer->verdict == RL_DENY) {
        l->refused = *answer;
        l->retry_at_us = now_us + (uint64_t)answer->retry_after_ms * 1000;
        uint64_t cap = now_us + (uint64_t)RL_LEASE_REFUSAL_MS * 1000;
        l->deny_until_us = l->retry_at_us < cap ? l->retry_at_us : cap;
        return;
    }
    l->granted = *answer;
    l->deny_until_us = 0; /* the refusal's token came back: the next is for ratelimitd to say */
    if (now_us >= l->expires_us)
        l->tokens = 0;
    l->tokens += answer->granted > 0 ? answer->granted : 1;
    l->expires_us = now_us + LIFE_US;
}

void **rl_lease_caller_data(struct rl_lease *l)
{
    return &l->caller_data;
}

void rl_lease_sweep(struct rl_lease_table *t, uint64_t now_us)
{
    for (size_t i = 0; i < t->nslots; i++) {
        struct rl_lease **pp = &t->slots[i];
        while (*pp) {
            struct rl_lease *l = *pp;
            bool idle = now_us - l->last_used_us >= IDLE_US && now_us >= l->expires_us &&
                        now_us >= l->deny_until_us && l->asked == 0 && !l->caller_data;
            if (idle) {
                *pp = l->next;
                free(l);
                t->count--;
            } else {
                pp = &l->next;
            }
        }
    }
}

size_t rl_lease_count(const struct rl_lease_table *t)
{
    return t->count;
}
