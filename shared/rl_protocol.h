/* rl_protocol: the ratelimitd line protocol, both sides of it: ratelimitd
 * parses requests and formats answers, shopd's client formats requests and
 * parses answers, with this one module, so the two cannot drift apart.
 *
 * Requests, one per line (the caller strips "\r\n" or "\n"):
 *   CHECK <rule> <key> [<cost>]      LEASE <rule> <key> <most>      PING      STATS
 * Answers:
 *   ALLOW <limit> <remaining> <reset_seconds> <window_seconds> [<granted>]
 *   DENY <limit> <retry_after_ms> <window_seconds>
 *   ERR <reason>      PONG      <key=value ...>
 * LEASE spends as many single tokens as the bucket has, from 1 up to <most>, and says how
 * many in <granted> (ALLOW), or none (DENY): a client takes a share of a hot budget in
 * one round trip and spends it locally (shopd/rl_lease.h). CHECK answers carry no
 * <granted>.
 * Kept pure (no allocation, no globals) so that it can be fuzzed on its own. */
#ifndef SHARED_RL_PROTOCOL_H
#define SHARED_RL_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>

/* Longest request line accepted, without its line ending. */
#define RL_PROTO_MAX_LINE 4096
/* Longest key; longer keys are refused rather than truncated so two clients never share a bucket by accident.
 */
#define RL_PROTO_MAX_KEY 256
#define RL_PROTO_MAX_RULE 64
/* Largest cost of one CHECK: far above any burst, small enough that cost * interval never overflows. */
#define RL_PROTO_MAX_COST 1000000L
/* Most tokens one LEASE may ask for: a share of a budget, never the whole of a large one. */
#define RL_PROTO_MAX_LEASE 1024L

enum rl_proto_cmd_type { RL_PROTO_CMD_CHECK, RL_PROTO_CMD_LEASE, RL_PROTO_CMD_PING, RL_PROTO_CMD_STATS };

struct rl_proto_cmd {
    enum rl_proto_cmd_type type;
    const char *rule; /* points into the parsed line, not NUL-terminated */
    size_t rule_len;
    const char *key; /* points into the parsed line, not NUL-terminated */
    size_t key_len;
    long cost; /* 1 when not given; 0 asks for the state without spending; 1 for a LEASE */
    long most; /* LEASE: tokens asked for at most (1 to RL_PROTO_MAX_LEASE); CHECK: 1 */
};

/* Parses one request line of len bytes (no line ending). Returns 0 and fills cmd (whose
 * pointers refer into line, so line must outlive cmd), or -1 with *reason set to a static
 * string fit for "ERR <reason>". Never reads beyond line[len - 1]. */
int rl_proto_parse(const char *line, size_t len, struct rl_proto_cmd *cmd, const char **reason);

/* True for a rule name: 1 to RL_PROTO_MAX_RULE letters, digits, '_', '-' or '.'
 * (the rules file takes the same names). */
bool rl_proto_rule_name_ok(const char *s, size_t len);
/* A decimal of 1 to 7 digits (no sign, spaces or exponent) up to
 * RL_PROTO_MAX_COST, or -1 when s[0..len) is not one. */
long rl_proto_parse_number(const char *s, size_t len);

/* Formats an answer line including "\r\n" into buf (at least 96 bytes for ALLOW/DENY).
 * Returns the length written, excluding the terminating NUL. */
size_t rl_proto_format_allow(char *buf, size_t buflen, long limit, long remaining, long reset_s,
                             long window_s);
/* The ALLOW answer to a LEASE: the same fields and the number of tokens granted. */
size_t rl_proto_format_granted(char *buf, size_t buflen, long limit, long remaining, long reset_s,
                               long window_s, long granted);
size_t rl_proto_format_deny(char *buf, size_t buflen, long limit, long retry_after_ms, long window_s);
size_t rl_proto_format_err(char *buf, size_t buflen, const char *reason);

/* --- the client's side ---------------------------------------------------- */

/* Room for any line rl_proto_format_check writes. */
#define RL_PROTO_CHECK_LINE_MAX (sizeof("CHECK   \r\n") + RL_PROTO_MAX_RULE + RL_PROTO_MAX_KEY + 24)

/* Formats "CHECK <rule> <key> <cost>\r\n" into buf (RL_PROTO_CHECK_LINE_MAX
 * bytes at least) so that rl_proto_parse accepts it: in rule, bytes that a
 * rule name may not hold become '_'; in key, spaces, control and non-ASCII
 * bytes become '_'; both are cut at their maximum length and an empty or NULL
 * one is sent as "-". A negative cost counts as 1. Returns the length. */
size_t rl_proto_format_check(char *buf, size_t buflen, const char *rule, const char *key, long cost);
/* Formats "LEASE <rule> <key> <most>\r\n" the same way; most is clamped to
 * 1..RL_PROTO_MAX_LEASE. Returns the length. */
size_t rl_proto_format_lease(char *buf, size_t buflen, const char *rule, const char *key, long most);

/* Writes rule into dst (RL_PROTO_MAX_RULE + 1 bytes) as a valid rule name,
 * the way rl_proto_format_check sends it. Returns its length. */
size_t rl_proto_clean_rule(char *dst, const char *rule);
/* Writes key into dst (RL_PROTO_MAX_KEY + 1 bytes) the way rl_proto_format_check
 * sends it, so that two keys the daemon sees as one are one here too. */
size_t rl_proto_clean_key(char *dst, const char *key);

struct rl_proto_answer {
    enum rl_proto_verdict { RL_PROTO_ALLOW, RL_PROTO_DENY } verdict;
    long limit;          /* burst capacity of the rule */
    long remaining;      /* ALLOW: whole tokens left; DENY: 0 */
    long reset_s;        /* ALLOW: until the bucket is full; DENY: until a retry may succeed */
    long retry_after_ms; /* DENY only */
    long window_s;       /* the rule's refill window; 0 from a ratelimitd that does not send it */
    long granted;        /* ALLOW: tokens granted to a LEASE (1 when the answer does not say); DENY: 0 */
};

/* Parses one ALLOW or DENY answer line of len bytes (no line ending). The
 * window field is optional, for ratelimitd versions without it, and so is
 * ALLOW's granted (it follows the window, at least 1). Returns 0, or -1 for ERR
 * and anything malformed (extra fields, signs, numbers above 10^12). */
int rl_proto_parse_answer(const char *line, size_t len, struct rl_proto_answer *answer);

#endif
