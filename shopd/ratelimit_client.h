/* ratelimit_client: a shopd worker's connection to ratelimitd.
 *
 * One persistent unix-socket connection per worker, driven by the worker's event loop.
 * Checks are pipelined: each writes one "CHECK rule key cost" line and waits in a FIFO
 * for its answer, so the loop never blocks. Checks of one token on a key this worker
 * checks often are decided from a lease of tokens instead (shopd/rl_lease.h): one
 * "LEASE" line answers many of them. When ratelimitd is unreachable, answers ERR
 * or is slower than the timeout, the verdict is RL_UNAVAILABLE and the caller fails open
 * (serves the request); the client logs the outage once and reconnects with back-off. */
#ifndef SHOPD_RATELIMIT_CLIENT_H
#define SHOPD_RATELIMIT_CLIENT_H

#include <stdbool.h>

#include "shopd/rl_result.h"

struct event_base;
struct evkeyvalq;

struct rl_client;

typedef void (*rl_done_fn)(const struct rl_result *res, void *arg);

/* Creates a client for the ratelimitd socket at socket_path (copied) and starts connecting.
 * timeout_ms (at least 1) bounds each check. Never blocks; never returns NULL. */
struct rl_client *rl_client_new(struct event_base *base, const char *socket_path, int timeout_ms);

/* Decides CHECK rule key cost; cb runs exactly once, from the event loop (never
 * re-entrantly inside rl_client_check), with ALLOW/DENY, or RL_UNAVAILABLE when
 * ratelimitd is unreachable, answers ERR, or does not answer within timeout_ms (the
 * caller then fails open). Checks on one key are answered in the order they were asked. rule and key are
 * copied; in the key, spaces, control and non-ASCII bytes become '_' and it is cut at 256 bytes. A negative
 * cost counts as 1. The result passed to cb is valid only during the call. */
void rl_client_check(struct rl_client *c, const char *rule, const char *key, int cost, rl_done_fn cb,
                     void *arg);

/* Checks one token on rule and key. When this worker can decide it at once, from a
 * lease or a refusal it keeps, fills *decided and returns true, and cb is never called;
 * otherwise returns false, and cb runs later exactly as for rl_client_check. The key's
 * entry is looked up and its demand counted once, either way. */
bool rl_client_check_token(struct rl_client *c, const char *rule, const char *key, struct rl_result *decided,
                           rl_done_fn cb, void *arg);

/* Lines sent to ratelimitd and not answered yet: checks, and asks for leases (also
 * those sent ahead, which no check waits for). */
int rl_client_unanswered(const struct rl_client *c);

/* Closes the connection and frees the client. Checks still waiting get their callback
 * with RL_UNAVAILABLE before this returns. Must not be called from inside a callback. */
void rl_client_free(struct rl_client *c);

/* Adds RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, the draft-ietf-httpapi-
 * ratelimit-headers fields RateLimit-Policy ("rule";q=limit;w=window) and RateLimit
 * ("rule";r=remaining;t=reset), and for a DENY Retry-After (whole seconds rounded up, at
 * least 1) to headers, replacing earlier values of these fields. Adds nothing for
 * RL_UNAVAILABLE (no budget was checked). */
void rl_add_headers(struct evkeyvalq *headers, const char *rule, const struct rl_result *res);

#endif
