#include "shared/rl_protocol.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Splits off the next space-separated token; returns false at the end of the line. */
static bool next_token(const char **p, const char *end, const char **tok, size_t *tok_len)
{
    const char *s = *p;
    while (s < end && *s == ' ')
        s++;
    if (s == end)
        return false;
    const char *t = s;
    while (s < end && *s != ' ')
        s++;
    *tok = t;
    *tok_len = (size_t)(s - t);
    *p = s;
    return true;
}

static bool word_is(const char *tok, size_t len, const char *word)
{
    size_t n = 0;
    while (word[n])
        n++;
    return len == n && strncasecmp(tok, word, n) == 0;
}

bool rl_proto_rule_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > RL_PROTO_MAX_RULE)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '-' || ch == '.';
        if (!ok)
            return false;
    }
    return true;
}

long rl_proto_parse_number(const char *s, size_t len)
{
    /* Digits only: no sign, no spaces, no hex, so "-1", "+1" and "1e3" are all refused. */
    if (len == 0 || len > 7)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= RL_PROTO_MAX_COST ? v : -1;
}

int rl_proto_parse(const char *line, size_t len, struct rl_proto_cmd *cmd, const char **reason)
{
    if (len > RL_PROTO_MAX_LINE) {
        *reason = "line too long";
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)line[i];
        if (ch < 0x20 || ch > 0x7e) {
            *reason = "non-printable byte";
            return -1;
        }
    }
    const char *p = line, *end = line + len;
    const char *tok[5];
    size_t tok_len[5];
    int n = 0;
    while (n < 5 && next_token(&p, end, &tok[n], &tok_len[n]))
        n++;
    if (n == 0) {
        *reason = "empty line";
        return -1;
    }
    if (word_is(tok[0], tok_len[0], "PING") || word_is(tok[0], tok_len[0], "STATS")) {
        if (n != 1) {
            *reason = "wrong number of arguments";
            return -1;
        }
        cmd->type = word_is(tok[0], tok_len[0], "PING") ? RL_PROTO_CMD_PING : RL_PROTO_CMD_STATS;
        return 0;
    }
    bool lease = word_is(tok[0], tok_len[0], "LEASE");
    if (!lease && !word_is(tok[0], tok_len[0], "CHECK")) {
        *reason = "unknown command";
        return -1;
    }
    if (n < 3 || n > 4 || (lease && n != 4)) {
        *reason = "wrong number of arguments";
        return -1;
    }
    if (!rl_proto_rule_name_ok(tok[1], tok_len[1])) {
        *reason = "bad rule name";
        return -1;
    }
    if (tok_len[2] > RL_PROTO_MAX_KEY) {
        *reason = "key too long";
        return -1;
    }
    long cost = 1, most = 1;
    if (lease) {
        most = rl_proto_parse_number(tok[3], tok_len[3]);
        if (most < 1 || most > RL_PROTO_MAX_LEASE) {
            *reason = "bad lease size";
            return -1;
        }
    } else if (n == 4 && (cost = rl_proto_parse_number(tok[3], tok_len[3])) < 0) {
        *reason = "bad cost";
        return -1;
    }
    cmd->type = lease ? RL_PROTO_CMD_LEASE : RL_PROTO_CMD_CHECK;
    cmd->most = most;
    cmd->rule = tok[1];
    cmd->rule_len = tok_len[1];
    cmd->key = tok[2];
    cmd->key_len = tok_len[2];
    cmd->cost = cost;
    return 0;
}

static size_t clamp_len(int n, size_t buflen)
{
    if (n < 0)
        return 0;
    return (size_t)n < buflen ? (size_t)n : buflen - 1;
}

size_t rl_proto_format_allow(char *buf, size_t buflen, long limit, long remaining, long reset_s,
                             long window_s)
{
    return clamp_len(snprintf(buf, buflen, "ALLOW %ld %ld %ld %ld\r\n", limit, remaining, reset_s, window_s),
                     buflen);
}

size_t rl_proto_format_granted(char *buf, size_t buflen, long limit, long remaining, long reset_s,
                               long window_s, long granted)
{
    return clamp_len(
        snprintf(buf, buflen, "ALLOW %ld %ld %ld %ld %ld\r\n", limit, remaining, reset_s, window_s, granted),
        buflen);
}

size_t rl_proto_format_deny(char *buf, size_t buflen, long limit, long retry_after_ms, long window_s)
{
    return clamp_len(snprintf(buf, buflen, "DENY %ld %ld %ld\r\n", limit, retry_after_ms, window_s), buflen);
}

size_t rl_proto_format_err(char *buf, size_t buflen, const char *reason)
{
    return clamp_len(snprintf(buf, buflen, "ERR %s\r\n", reason), buflen);
}

/* Copies src into dst (max bytes at most, then a NUL), replacing what the
 * receiving side would refuse; "-" when nothing is left. */
static size_t copy_clean(char *dst, const char *src, size_t max, bool rule)
{
    size_t n = 0;
    for (; src && src[n] && n < max; n++) {
        unsigned char ch = (unsigned char)src[n];
        bool ok = rule ? ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                          ch == '_' || ch == '-' || ch == '.')
                       : (ch > 0x20 && ch < 0x7f);
        dst[n] = ok ? (char)ch : '_';
    }
    if (n == 0)
        dst[n++] = '-';
    dst[n] = '\0';
    return n;
}

/* "<verb> <rule> <key> <n>\r\n" with rule and key made acceptable to rl_proto_parse. */
static size_t format_request(char *buf, size_t buflen, const char *verb, const char *rule, const char *key,
                             long n)
{
    char r[RL_PROTO_MAX_RULE + 1], k[RL_PROTO_MAX_KEY + 1];
    copy_clean(r, rule, RL_PROTO_MAX_RULE, true);
    copy_clean(k, key, RL_PROTO_MAX_KEY, false);
    return clamp_len(snprintf(buf, buflen, "%s %s %s %ld\r\n", verb, r, k, n), buflen);
}

size_t rl_proto_format_check(char *buf, size_t buflen, const char *rule, const char *key, long cost)
{
    return format_request(buf, buflen, "CHECK", rule, key, cost < 0 ? 1 : cost);
}

size_t rl_proto_format_lease(char *buf, size_t buflen, const char *rule, const char *key, long most)
{
    long n = most < 1 ? 1 : most > RL_PROTO_MAX_LEASE ? RL_PROTO_MAX_LEASE : most;
    return format_request(buf, buflen, "LEASE", rule, key, n);
}

size_t rl_proto_clean_rule(char *dst, const char *rule)
{
    return copy_clean(dst, rule, RL_PROTO_MAX_RULE, true);
}

size_t rl_proto_clean_key(char *dst, const char *key)
{
    return copy_clean(dst, key, RL_PROTO_MAX_KEY, false);
}

/* A decimal of 1 to 12 digits, or -1. */
static long answer_number(const char *s, size_t len)
{
    if (len == 0 || len > 12)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int rl_proto_parse_answer(const char *line, size_t len, struct rl_proto_answer *answer)
{
    const char *p = line, *end = line + len;
    const char *tok[7];
    size_t tok_len[7];
    int n = 0;
    while (n < 7 && next_token(&p, end, &tok[n], &tok_len[n]))
        n++;
    if (n == 7 || n == 0)
        return -1;
    long v[5] = {0, 0, 0, 0, 0};
    for (int i = 1; i < n; i++)
        if ((v[i - 1] = answer_number(tok[i], tok_len[i])) < 0)
            return -1;
    memset(answer, 0, sizeof(*answer));
    if (tok_len[0] == 5 && memcmp(tok[0], "ALLOW", 5) == 0 && n >= 4 && (n < 6 || v[4] >= 1)) {
        answer->verdict = RL_PROTO_ALLOW;
        answer->limit = v[0];
        answer->remaining = v[1];
        answer->reset_s = v[2];
        answer->window_s = v[3];
        answer->granted = n == 6 ? v[4] : 1;
        return 0;
    }
    if (tok_len[0] == 4 && memcmp(tok[0], "DENY", 4) == 0 && (n == 3 || n == 4)) {
        answer->verdict = RL_PROTO_DENY;
        answer->limit = v[0];
        answer->retry_after_ms = v[1];
        answer->reset_s = (v[1] + 999) / 1000;
        answer->window_s = v[2];
        return 0;
    }
    return -1;
}
