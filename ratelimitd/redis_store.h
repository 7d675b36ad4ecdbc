/* redis_store: budgets in Redis through hiredis' async API, with local buckets as fallback.
 *
 * Decisions run in one Lua script (GCRA, key "rl:<rule>:<key>", clock from Redis TIME) with
 * EVALSHA on one pipelined connection. Decisions asked for in one pass of the event loop (one
 * read from a connection, or reads from several) go to Redis as one call over all their keys,
 * at most 128 a call; each answer is exactly that of one call per decision. While Redis is unreachable,
 * restarting or slower than the per-call timeout, decisions come from local in-memory buckets (same
 * algorithm, local clock) and count as degraded; the store reconnects with back-off
 * (100 ms doubling to 5 s) and returns to Redis when it answers again. */
#ifndef RATELIMITD_REDIS_STORE_H
#define RATELIMITD_REDIS_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "ratelimitd/bucket.h"
#include "ratelimitd/rules.h"
#include "ratelimitd/stats.h"

struct event_base;

struct rld_redis_addr {
    bool is_unix;
    char host[256]; /* TCP host, or the socket path when is_unix */
    int port;
    char password[256]; /* empty: no AUTH */
    int db;
};

/* Parses redis://[:password@]host[:port][/db] or unix:///path[?db=N] into out.
 * Returns 0, or -1 with a one-line reason in err. */
int rld_redis_parse_url(const char *url, struct rld_redis_addr *out, char *err, size_t errlen);

/* The Lua script: KEYS are the buckets, ARGV three numbers per key (interval_us, burst, cost);
 * returns four integers per key (exposed for tests and the benchmark). */
extern const char rld_redis_script[];

typedef void (*rld_store_done_fn)(const struct rld_decision *d, void *arg);

struct rld_store;

/* Creates the store and starts connecting to Redis (never blocks). timeout_ms bounds each
 * Redis call. stats (owned by the caller, outliving the store) receives the counters. */
struct rld_store *rld_store_new(struct event_base *base, const struct rld_redis_addr *addr, int timeout_ms,
                                struct rld_stats *stats);
/* Decides CHECK rule key cost; cb runs exactly once with the decision, either later from
 * the event loop (Redis, after the current loop pass has gathered its batch) or before this
 * returns (local buckets). Decisions on one key are made in the order they were asked for. key is copied;
 * rule must outlive the call. */
void rld_store_check(struct rld_store *s, const struct rld_rule *rule, const char *key, size_t key_len,
                     long cost, rld_store_done_fn cb, void *arg);
/* Decides LEASE rule key most: as many single-token decisions on key as pass, from 1 up
 * to most, one after another, answered once: d->granted says how many, d's other fields
 * are those of the last one that passed, or of the refusal when none did. Otherwise as
 * rld_store_check. */
void rld_store_lease(struct rld_store *s, const struct rld_rule *rule, const char *key, size_t key_len,
                     long most, rld_store_done_fn cb, void *arg);
/* Closes the Redis connection; calls still in flight are answered from local buckets first. */
void rld_store_free(struct rld_store *s);

#endif
