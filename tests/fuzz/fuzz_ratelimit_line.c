/* libFuzzer target: ratelimitd request lines through the protocol parser, split the way
 * the server splits its input, and accepted CHECKs through the local GCRA buckets;
 * the same lines as answers through the client's parser, and as rule and key
 * through the client's formatter. Checks the invariants both sides rely on for
 * any input, and that each side reads back what the other wrote. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimitd/bucket.h"
#include "shared/rl_protocol.h"
#include "ratelimitd/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rld_rules *rules;
static struct rld_buckets *buckets;

/* The client's side: any line as an answer; any text as a rule and a key. */
static void check_client_side(const char *line, size_t len)
{
    struct rl_proto_answer a;
    if (rl_proto_parse_answer(line, len, &a) == 0 &&
        (a.limit < 0 || a.remaining < 0 || a.reset_s < 0 || a.retry_after_ms < 0 || a.window_s < 0))
        abort();
    char text[RL_PROTO_MAX_LINE + 1];
    size_t tn = len < RL_PROTO_MAX_LINE ? len : RL_PROTO_MAX_LINE;
    memcpy(text, line, tn);
    text[tn] = '\0';
    char *key = memchr(text, ' ', tn);
    if (key)
        *key++ = '\0';
    char out[RL_PROTO_CHECK_LINE_MAX];
    size_t n = rl_proto_format_check(out, sizeof(out), text, key ? key : text,
                                     (long)(len % (RL_PROTO_MAX_COST + 1)));
    struct rl_proto_cmd cmd;
    const char *reason = NULL;
    if (n < 2 || out[n - 2] != '\r' || rl_proto_parse(out, n - 2, &cmd, &reason) < 0 ||
        cmd.type != RL_PROTO_CMD_CHECK)
        abort(); /* the daemon refused what the client wrote */
    n = rl_proto_format_lease(out, sizeof(out), text, key ? key : text, (long)len);
    if (n < 2 || out[n - 2] != '\r' || rl_proto_parse(out, n - 2, &cmd, &reason) < 0 ||
        cmd.type != RL_PROTO_CMD_LEASE || cmd.most < 1 || cmd.most > RL_PROTO_MAX_LEASE)
        abort();
}

static void check_line(const char *line, size_t len, int64_t now)
{
    check_client_side(line, len);
    struct rl_proto_cmd cmd;
    const char *reason = NULL;
    if (rl_proto_parse(line, len, &cmd, &reason) < 0) {
        if (!reason || !*reason || strchr(reason, '\n'))
            abort();
        return;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
            abort();
    if (cmd.type != RL_PROTO_CMD_CHECK && cmd.type != RL_PROTO_CMD_LEASE)
        return;
    if (cmd.most < 1 || cmd.most > RL_PROTO_MAX_LEASE || (cmd.type == RL_PROTO_CMD_CHECK && cmd.most != 1))
        abort();
    if (cmd.rule < line || cmd.rule + cmd.rule_len > line + len || cmd.key < line ||
        cmd.key + cmd.key_len > line + len)
        abort();
    if (cmd.rule_len == 0 || cmd.rule_len > RL_PROTO_MAX_RULE || cmd.key_len == 0 ||
        cmd.key_len > RL_PROTO_MAX_KEY || cmd.cost < 0 || cmd.cost > RL_PROTO_MAX_COST)
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
                   ? rl_proto_format_allow(buf, sizeof(buf), d.limit, d.remaining, d.reset_s, d.window_s)
                   : rl_proto_format_deny(buf, sizeof(buf), d.limit, d.retry_after_ms, d.window_s);
    if (n < 4 || n >= sizeof(buf) || buf[n - 2] != '\r' || buf[n - 1] != '\n')
        abort();
    struct rl_proto_answer a;
    if (rl_proto_parse_answer(buf, n - 2, &a) < 0 || (a.verdict == RL_PROTO_ALLOW) != d.allowed ||
        a.limit != d.limit || a.window_s != d.window_s ||
        (d.allowed ? a.remaining != d.remaining || a.reset_s != d.reset_s
                   : a.retry_after_ms != d.retry_after_ms))
        abort(); /* the client read another answer than the daemon wrote */
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
