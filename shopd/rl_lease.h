/* rl_lease: a shopd worker's share of its hot budgets, so that most checks on them need
 * no round trip to ratelimitd.
 *
 * For a (rule, key) this worker checks often (more than once in RL_LEASE_LIFE_MS), the
 * client asks ratelimitd for a LEASE of several tokens in one round trip and spends them
 * here, one per request, for at most RL_LEASE_LIFE_MS. The tokens were spent from the
 * shared bucket when they were granted, so no budget is ever exceeded. The next lease
 * is asked for while half a share is left (rl_lease_should_renew), so that a hot key's
 * checks do not stop for the round trip; a worker then holds at most a share and a
 * half, and tokens left when a lease runs out are dropped, which costs a client at most
 * that (3/32 of the burst) per lease. A refusal is kept until its retry time, for at
 * most RL_LEASE_REFUSAL_MS: tokens come back only with time, so ratelimitd would refuse
 * every check before then too, unless its rules were reloaded meanwhile, which the cap
 * bounds. Keys seen once in a while and rules with a burst under 32 get one token per
 * ask, as with plain CHECKs.
 *
 * The table only keeps the state and decides; the caller asks ratelimitd and queues the
 * checks that wait for an answer. The clock is the caller's (microseconds, monotonic). */
#ifndef SHOPD_RL_LEASE_H
#define SHOPD_RL_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shopd/rl_result.h"

/* How long granted tokens may be spent. Short, so that a lease never holds tokens
 * long: at most the rule's rate times this is spent later than it was granted. */
#define RL_LEASE_LIFE_MS 50
/* Most tokens one lease asks for: what the protocol allows (RL_PROTO_MAX_LEASE). An
 * ask is also at most a sixteenth of the burst and only for the checks of the last life
 * span, so only a key that spends this much in RL_LEASE_LIFE_MS, on a budget 16 times
 * larger, gets it; each such lease saves that many round trips. */
#define RL_LEASE_MAX 1024
/* Longest a refusal is repeated here without asking again. */
#define RL_LEASE_REFUSAL_MS 1000

struct rl_lease_table;
struct rl_lease;

/* An empty table holding at most max_entries keys. */
struct rl_lease_table *rl_lease_table_new(size_t max_entries);
void rl_lease_table_free(struct rl_lease_table *t);

/* The entry of (rule, key), as the protocol sends them (rl_proto_clean_rule and
 * rl_proto_clean_key), created when missing, and counts one check on it at now_us.
 * NULL when the table is full: check that one without a lease. */
struct rl_lease *rl_lease_get(struct rl_lease_table *t, const char *rule, const char *key, uint64_t now_us);

/* Decides a check of one token at now_us without asking, when it can: from a lease's
 * tokens (ALLOW) or a kept refusal (DENY, with the retry time left, which may be
 * longer than the time the refusal is kept). True and *out
 * filled, or false: ratelimitd must be asked. */
bool rl_lease_decide(struct rl_lease *l, uint64_t now_us, struct rl_result *out);

/* The entry's rule and key, as given to rl_lease_get. */
const char *rl_lease_rule(const struct rl_lease *l);
const char *rl_lease_key(const struct rl_lease *l);

/* How many tokens the next ask should be for when uncovered checks wait with no ask in
 * flight for them: enough for the checks of this RL_LEASE_LIFE_MS or the one before,
 * whichever had more, and for those waiting, within the rule's share. 1 means a plain
 * CHECK. */
long rl_lease_ask_size(const struct rl_lease *l, long uncovered);
/* True when the next lease should be asked for now, before the tokens run out: the key
 * is leased (its share is over one token) and hot (more checks in one RL_LEASE_LIFE_MS
 * than half a share), nothing is asked for yet, no refusal is kept, and at most half a
 * share is left. The ask is for rl_lease_ask_size(l, 0). */
bool rl_lease_should_renew(const struct rl_lease *l, uint64_t now_us);
/* Records an ask of most tokens sent; tokens asked for and not answered yet. */
void rl_lease_asked(struct rl_lease *l, long most);
long rl_lease_in_flight(const struct rl_lease *l);
/* Records the answer to an ask of most tokens at now_us: ALLOW grants answer->granted
 * tokens, DENY is kept until its retry time, RL_UNAVAILABLE changes nothing. */
void rl_lease_answered(struct rl_lease *l, long most, const struct rl_result *answer, uint64_t now_us);

/* A pointer the caller keeps with the entry (its queue of waiting checks); an entry is
 * never swept while it is not NULL or an ask is in flight. */
void **rl_lease_caller_data(struct rl_lease *l);

/* Forgets entries unused for a second with nothing granted, kept, asked or waiting. */
void rl_lease_sweep(struct rl_lease_table *t, uint64_t now_us);
size_t rl_lease_count(const struct rl_lease_table *t);

#endif
