/* libFuzzer target: ratelimitd request lines through the protocol parser, split the way
 * the server splits its input, and accepted CHECKs through the local GCRA buckets.
 * Checks the invariants the server relies on for any input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimitd/bucket.h"
#include "ratelimitd/protocol.h"
#include "ratelimitd/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rld_rules *rules;
static struct rld_buckets *buckets;

static void check_line(const char *line, size_t len, int64_t now)
{
    struct rld_cmd cmd;
    const char *reason = NULL;
    if (rld_proto_parse(line, len, &cmd, &reason) < 0) {
        if (!reason || !*reason || strchr(reason, '\n'))
            abort();
        return;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
            abort();
    if (cmd.type != RLD_CMD_CHECK)
        return;
    if (cmd.rule < line || cmd.rule + cmd.rule_len > line + len || cmd.key < line ||
        cmd.key + cmd.key_len > line + len)
        abort();
    if (cmd.rule_len == 0 || cmd.rule_len > RLD_PROTO_MAX_RULE || cmd.key_len == 0 ||
        cmd.key_len > RLD_PROTO_MAX_KEY || cmd.cost < 0 || cmd.cost > RLD_PROTO_MAX_COST)
        abort();
    if (memchr(cmd.key, ' ', cmd.key_len) || memchr(cmd.rule, ' ', cmd.rule_len))
        abort();
    const struct rld_rule *rule = rld_rules_find(rules, cmd.rule, cmd.rule_len);
    if (!rule || cmd.cost > rule->burst)
        return;
    struct rld_decision d;
    rld_buckets_check(buckets, rule, cmd.key, cmd.key_len, cmd.cost, now, &d);
    if (d.limit != rule->burst || d.remaining < 0 || d.remaining > rule->burst || d.reset_s < 0 ||
        d.reset_s > rule->window_s || (!d.allowed && d.retry_after_ms < 1) ||
        d.retry_after_ms > rule->window_s * 1000)
        abort();
    char buf[96];
    size_t n = d.allowed
                   ? rld_proto_format_allow(buf, sizeof(buf), d.limit, d.remaining, d.reset_s, d.window_s)
                   : rld_proto_format_deny(buf, sizeof(buf), d.limit, d.retry_after_ms, d.window_s);
    if (n < 4 || n >= sizeof(buf) || buf[n - 2] != '\r' || buf[n - 1] != '\n')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!rules) {
        static const char text[] = "a 10/1s burst=3\nlogin 20/1m burst=10\nbig 1000000/1s burst=1000000\n"
                                   "slow 1/100000h burst=1\n";
        char err[256];
        rules = rld_rules_parse(text, sizeof(text) - 1, "fuzz", err, sizeof(err));
        if (!rules)
            abort();
    }
    /* One table for all inputs, emptied each time: cheaper than a new one per input. */
    if (!buckets)
        buckets = rld_buckets_new();
    rld_buckets_sweep(buckets, INT64_MAX);
    /* The whole input as one line, then as the server sees it: split at '\n', '\r' dropped. */
    check_line((const char *)data, size, 1000000);
    const char *p = (const char *)data, *end = p + size;
    int64_t now = 5000000;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        size_t len = (size_t)(eol - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        check_line(p, len, now);
        now += 37000;
        p = nl ? nl + 1 : end;
    }
    return 0;
}
