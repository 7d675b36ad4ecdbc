/* protocol: the ratelimitd line protocol, parsed and formatted without I/O.
 *
 * Requests, one per line (the caller strips "\r\n" or "\n"):
 *   CHECK <rule> <key> [<cost>]      PING      STATS
 * Answers:
 *   ALLOW <limit> <remaining> <reset_seconds> <window_seconds>
 *   DENY <limit> <retry_after_ms> <window_seconds>
 *   ERR <reason>      PONG      <key=value ...>
 * Kept pure (no allocation, no globals) so that it can be fuzzed on its own. */
#ifndef RATELIMITD_PROTOCOL_H
#define RATELIMITD_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>

/* Longest request line accepted, without its line ending. */
#define RLD_PROTO_MAX_LINE 4096
/* Longest key; longer keys are refused rather than truncated so two clients never share a bucket by accident.
 */
#define RLD_PROTO_MAX_KEY 256
#define RLD_PROTO_MAX_RULE 64
/* Largest cost of one CHECK: far above any burst, small enough that cost * interval never overflows. */
#define RLD_PROTO_MAX_COST 1000000L

enum rld_cmd_type { RLD_CMD_CHECK, RLD_CMD_PING, RLD_CMD_STATS };

struct rld_cmd {
    enum rld_cmd_type type;
    const char *rule; /* points into the parsed line, not NUL-terminated */
    size_t rule_len;
    const char *key; /* points into the parsed line, not NUL-terminated */
    size_t key_len;
    long cost; /* 1 when not given; 0 asks for the state without spending */
};

/* Parses one request line of len bytes (no line ending). Returns 0 and fills cmd (whose
 * pointers refer into line, so line must outlive cmd), or -1 with *reason set to a static
 * string fit for "ERR <reason>". Never reads beyond line[len - 1]. */
int rld_proto_parse(const char *line, size_t len, struct rld_cmd *cmd, const char **reason);

/* True for a rule name: 1 to RLD_PROTO_MAX_RULE letters, digits, '_', '-' or '.'
 * (the rules file takes the same names). */
bool rld_proto_rule_name_ok(const char *s, size_t len);
/* A decimal of 1 to 7 digits (no sign, spaces or exponent) up to
 * RLD_PROTO_MAX_COST, or -1 when s[0..len) is not one. */
long rld_proto_parse_number(const char *s, size_t len);

/* Formats an answer line including "\r\n" into buf (at least 96 bytes for ALLOW/DENY).
 * Returns the length written, excluding the terminating NUL. */
size_t rld_proto_format_allow(char *buf, size_t buflen, long limit, long remaining, long reset_s,
                              long window_s);
size_t rld_proto_format_deny(char *buf, size_t buflen, long limit, long retry_after_ms, long window_s);
size_t rld_proto_format_err(char *buf, size_t buflen, const char *reason);

#endif
