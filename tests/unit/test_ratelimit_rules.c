/* Unit tests of ratelimitd's pure parts: the rules file, the GCRA buckets with an
 * injected clock, the protocol line parser and REDIS_URL parsing. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ratelimitd/bucket.h"
#include "ratelimitd/protocol.h"
#include "ratelimitd/redis_store.h"
#include "ratelimitd/rules.h"

#define SEC 1000000LL

static struct rld_rules *parse(const char *text, char *err, size_t errlen)
{
    return rld_rules_parse(text, strlen(text), "test.rules", err, errlen);
}

Test(rules, parses_rules_comments_and_units)
{
    char err[256] = "";
    struct rld_rules *r = parse("# budgets\n"
                                "\n"
                                "login 10/1m burst=10   # trailing comment\n"
                                "page\t600/m\tburst=120\r\n"
                                "slow 5/30s burst=2 shadow\n"
                                "daily 24/1h burst=3",
                                err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    cr_assert_eq(r->count, 4);
    const struct rld_rule *login = rld_rules_find(r, "login", 5);
    cr_assert_not_null(login);
    cr_assert_eq(login->rate, 10);
    cr_assert_eq(login->period_s, 60);
    cr_assert_eq(login->burst, 10);
    cr_assert_not(login->shadow);
    cr_assert_eq(login->interval_us, 6 * SEC);
    cr_assert_eq(login->window_s, 60);
    const struct rld_rule *page = rld_rules_find(r, "page", 4);
    cr_assert_eq(page->interval_us, 100000);
    cr_assert_eq(page->window_s, 12);
    const struct rld_rule *slow = rld_rules_find(r, "slow", 4);
    cr_assert(slow->shadow);
    cr_assert_eq(slow->period_s, 30);
    cr_assert_eq(rld_rules_find(r, "daily", 5)->period_s, 3600);
    cr_assert_null(rld_rules_find(r, "log", 3));
    cr_assert_null(rld_rules_find(r, "nope", 4));
    rld_rules_free(r);
}

static void expect_error(const char *text, const char *want)
{
    char err[256] = "";
    struct rld_rules *r = parse(text, err, sizeof(err));
    cr_assert_null(r, "accepted: %s", text);
    cr_assert(strstr(err, want), "for %s: got '%s', want '%s'", text, err, want);
}

Test(rules, errors_name_file_and_line)
{
    expect_error("ok 1/s burst=1\nbad 10/1x burst=3\n", "test.rules:2: period unit");
    expect_error("a 10/1m\n", "test.rules:1: expected");
    expect_error("a 10/1m burst=0\n", ":1: burst");
    expect_error("a 10/1m burst=x\n", ":1: burst");
    expect_error("a 10/1m burst=2 burst=3\n", ":1: unexpected 'burst=3'");
    expect_error("a 10/1m shadow\n", ":1: missing burst=N");
    expect_error("a 10/1m burst=2 loud\n", ":1: unexpected 'loud'");
    expect_error("a 10/1m burst=1 shadow shadow\n", ":1: unexpected 'shadow'");
    expect_error("a 0/1m burst=2\n", ":1: rate");
    expect_error("a -5/1m burst=2\n", ":1: rate");
    expect_error("a 99999999/1m burst=2\n", ":1: rate");
    expect_error("a 10 burst=2\n", ":1: rate must look like");
    expect_error("a 10/ burst=2\n", ":1: missing period");
    expect_error("a 10/0m burst=2\n", ":1: period count");
    expect_error("a 1/s burst=1\n\n# x\na 2/s burst=2\n", "test.rules:4: rule 'a' defined twice");
    expect_error("b@d 1/s burst=1\n", ":1: rule name");
    expect_error("a 1/s burst=1 \x01\n", ":1: unexpected control");
    expect_error("# nothing here\n\n", "no rules defined");
    expect_error("", "no rules defined");
    expect_error("forever 1/100000h burst=1000000\n", ":1: burst / rate takes longer");
}

Test(rules, load_reports_missing_file_and_loads_the_shipped_rules)
{
    char err[256] = "";
    cr_assert_null(rld_rules_load("/nonexistent/ratelimit.rules", err, sizeof(err)));
    cr_assert(strstr(err, "/nonexistent/ratelimit.rules"), "%s", err);

    const char *root = getenv("SHOP_ROOT") ? getenv("SHOP_ROOT") : ".";
    char path[1024];
    snprintf(path, sizeof(path), "%s/deploy/ratelimit.rules", root);
    struct rld_rules *r = rld_rules_load(path, err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    const char *names[] = {"login", "register", "page", "api", "cart", "checkout"};
    for (size_t i = 0; i < 6; i++) {
        const struct rld_rule *rule = rld_rules_find(r, names[i], strlen(names[i]));
        cr_assert_not_null(rule, "rule %s missing", names[i]);
        /* A fast human: at least 5 requests in a row on every rule (the Flask app's whole minute). */
        cr_assert_geq(rule->burst, 5, "%s", names[i]);
        cr_assert_not(rule->shadow);
    }
    rld_rules_free(r);
}

static struct rld_rules *one_rule(const char *text)
{
    char err[256];
    struct rld_rules *r = parse(text, err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    return r;
}

Test(buckets, burst_then_refusal_with_retry_time)
{
    struct rld_rules *rs = one_rule("login 10/1m burst=3\n");
    const struct rld_rule *r = &rs->rules[0];
    struct rld_buckets *b = rld_buckets_new();
    struct rld_decision d;
    int64_t t0 = 1000 * SEC;
    for (int i = 0; i < 3; i++) {
        rld_buckets_check(b, r, "k", 1, 1, t0, &d);
        cr_assert(d.allowed, "request %d", i);
        cr_assert_eq(d.limit, 3);
        cr_assert_eq(d.remaining, 2 - i);
        cr_assert_eq(d.reset_s, 6 * (i + 1));
        cr_assert_eq(d.window_s, 18);
    }
    rld_buckets_check(b, r, "k", 1, 1, t0, &d);
    cr_assert_not(d.allowed);
    cr_assert_eq(d.retry_after_ms, 6000);
    cr_assert_eq(d.reset_s, 18);
    /* One microsecond before the next token: still refused, retry rounds up to 1 ms. */
    rld_buckets_check(b, r, "k", 1, 1, t0 + 6 * SEC - 1, &d);
    cr_assert_not(d.allowed);
    cr_assert_eq(d.retry_after_ms, 1);
    rld_buckets_check(b, r, "k", 1, 1, t0 + 6 * SEC, &d);
    cr_assert(d.allowed);
    cr_assert_eq(d.remaining, 0);
    rld_buckets_free(b);
    rld_rules_free(rs);
}

Test(buckets, refills_fully_and_never_above_burst)
{
    struct rld_rules *rs = one_rule("page 600/1m burst=5\n");
    const struct rld_rule *r = &rs->rules[0];
    struct rld_buckets *b = rld_buckets_new();
    struct rld_decision d;
    int64_t t = 50 * SEC;
    for (int i = 0; i < 5; i++)
        rld_buckets_check(b, r, "ip", 2, 1, t, &d);
    cr_assert(d.allowed);
    cr_assert_eq(d.remaining, 0);
    cr_assert_eq(rld_buckets_count(b), 1);
    /* 250 ms later 2 tokens are back (100 ms each). */
    t += 250000;
    rld_buckets_check(b, r, "ip", 2, 2, t, &d);
    cr_assert(d.allowed);
    cr_assert_eq(d.remaining, 0);
    /* An hour idle: full again, not more. */
    t += 3600 * SEC;
    rld_buckets_check(b, r, "ip", 2, 1, t, &d);
    cr_assert(d.allowed);
    cr_assert_eq(d.remaining, 4);
    cr_assert_eq(d.reset_s, 1);
    /* A full bucket is forgotten by a sweep. */
    rld_buckets_sweep(b, t + 10 * SEC);
    cr_assert_eq(rld_buckets_count(b), 0);
    rld_buckets_free(b);
    rld_rules_free(rs);
}

Test(buckets, cost_above_one_and_zero)
{
    struct rld_rules *rs = one_rule("api 60/1m burst=10\n");
    const struct rld_rule *r = &rs->rules[0];
    struct rld_buckets *b = rld_buckets_new();
    struct rld_decision d;
    int64_t t = 7 * SEC;
    rld_buckets_check(b, r, "x", 1, 7, t, &d);
    cr_assert(d.allowed);
    cr_assert_eq(d.remaining, 3);
    rld_buckets_check(b, r, "x", 1, 4, t, &d);
    cr_assert_not(d.allowed, "4 > 3 tokens left");
    cr_assert_eq(d.retry_after_ms, 1000);
    rld_buckets_check(b, r, "x", 1, 3, t, &d);
    cr_assert(d.allowed, "a refused request spends nothing");
    cr_assert_eq(d.remaining, 0);
    rld_buckets_check(b, r, "x", 1, 0, t, &d);
    cr_assert(d.allowed, "cost 0 only looks");
    cr_assert_eq(d.remaining, 0);
    rld_buckets_check(b, r, "x", 1, 1, t, &d);
    cr_assert_not(d.allowed);
    rld_buckets_free(b);
    rld_rules_free(rs);
}

Test(buckets, keys_and_rules_are_isolated)
{
    struct rld_rules *rs = one_rule("a 1/1h burst=1\nb 1/1h burst=1\n");
    struct rld_buckets *b = rld_buckets_new();
    struct rld_decision d;
    int64_t t = SEC;
    rld_buckets_check(b, &rs->rules[0], "k1", 2, 1, t, &d);
    cr_assert(d.allowed);
    rld_buckets_check(b, &rs->rules[0], "k1", 2, 1, t, &d);
    cr_assert_not(d.allowed);
    rld_buckets_check(b, &rs->rules[0], "k2", 2, 1, t, &d);
    cr_assert(d.allowed, "other key");
    rld_buckets_check(b, &rs->rules[1], "k1", 2, 1, t, &d);
    cr_assert(d.allowed, "same key, other rule");
    /* Keys are bytes, not C strings: a key that is a prefix of another is its own bucket. */
    rld_buckets_check(b, &rs->rules[0], "k1x", 3, 1, t, &d);
    cr_assert(d.allowed);
    /* Many keys force the table to grow; every bucket keeps its state. */
    char key[32];
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(key, sizeof(key), "ip-%d", i);
        rld_buckets_check(b, &rs->rules[1], key, (size_t)n, 1, t, &d);
        cr_assert(d.allowed);
    }
    for (int i = 0; i < 20000; i += 997) {
        int n = snprintf(key, sizeof(key), "ip-%d", i);
        rld_buckets_check(b, &rs->rules[1], key, (size_t)n, 1, t, &d);
        cr_assert_not(d.allowed, "%s", key);
    }
    rld_buckets_free(b);
    rld_rules_free(rs);
}

static int parse_line(const char *line, struct rld_cmd *cmd, const char **reason)
{
    return rld_proto_parse(line, strlen(line), cmd, reason);
}

Test(protocol, parses_requests)
{
    struct rld_cmd cmd;
    const char *reason = NULL;
    cr_assert_eq(parse_line("CHECK login 1.2.3.4", &cmd, &reason), 0);
    cr_assert_eq(cmd.type, RLD_CMD_CHECK);
    cr_assert_eq(cmd.rule_len, 5);
    cr_assert_eq(strncmp(cmd.rule, "login", 5), 0);
    cr_assert_eq(cmd.key_len, 7);
    cr_assert_eq(cmd.cost, 1);
    cr_assert_eq(parse_line("check page  u:42   12", &cmd, &reason), 0);
    cr_assert_eq(cmd.cost, 12);
    cr_assert_eq(strncmp(cmd.key, "u:42", cmd.key_len), 0);
    cr_assert_eq(parse_line("CHECK page k 0", &cmd, &reason), 0);
    cr_assert_eq(cmd.cost, 0);
    cr_assert_eq(parse_line("PING", &cmd, &reason), 0);
    cr_assert_eq(cmd.type, RLD_CMD_PING);
    cr_assert_eq(parse_line("STATS", &cmd, &reason), 0);
    cr_assert_eq(cmd.type, RLD_CMD_STATS);
    char key[300];
    memset(key, 'k', 256);
    key[256] = 0;
    char line[400];
    snprintf(line, sizeof(line), "CHECK a %s", key);
    cr_assert_eq(parse_line(line, &cmd, &reason), 0, "256-byte key is fine");
}

static void expect_bad(const char *line, size_t len, const char *want)
{
    struct rld_cmd cmd;
    const char *reason = NULL;
    cr_assert_eq(rld_proto_parse(line, len, &cmd, &reason), -1, "accepted %.*s", (int)len, line);
    cr_assert_str_eq(reason, want, "for %.*s", (int)len, line);
}

Test(protocol, refuses_malformed_lines)
{
    expect_bad("", 0, "empty line");
    expect_bad("   ", 3, "empty line");
    expect_bad("HELLO", 5, "unknown command");
    expect_bad("CHECK", 5, "wrong number of arguments");
    expect_bad("CHECK login", 11, "wrong number of arguments");
    expect_bad("CHECK a b 1 2", 13, "wrong number of arguments");
    expect_bad("PING x", 6, "wrong number of arguments");
    expect_bad("CHECK a b -1", 12, "bad cost");
    expect_bad("CHECK a b +1", 12, "bad cost");
    expect_bad("CHECK a b 1e3", 13, "bad cost");
    expect_bad("CHECK a b x", 11, "bad cost");
    expect_bad("CHECK a b 99999999999999999999", 30, "bad cost");
    expect_bad("CHECK a b 1000001", 17, "bad cost");
    expect_bad("CHECK a\tb", 9, "non-printable byte");
    expect_bad("CHECK a b\0c", 11, "non-printable byte");
    expect_bad("CHECK a \xc3\xa9", 10, "non-printable byte");
    expect_bad("CHECK a/b k", 11, "bad rule name");
    char line[600];
    int n = snprintf(line, sizeof(line), "CHECK a ");
    memset(line + n, 'k', 257);
    expect_bad(line, (size_t)n + 257, "key too long");
    static char big[RLD_PROTO_MAX_LINE + 10];
    memset(big, 'A', sizeof(big));
    expect_bad(big, sizeof(big), "line too long");
}

Test(protocol, formats_answers)
{
    char buf[96];
    cr_assert_eq(rld_proto_format_allow(buf, sizeof(buf), 120, 57, 12, 60), strlen("ALLOW 120 57 12 60\r\n"));
    cr_assert_str_eq(buf, "ALLOW 120 57 12 60\r\n");
    rld_proto_format_deny(buf, sizeof(buf), 10, 2500, 30);
    cr_assert_str_eq(buf, "DENY 10 2500 30\r\n");
    rld_proto_format_err(buf, sizeof(buf), "unknown rule");
    cr_assert_str_eq(buf, "ERR unknown rule\r\n");
}

Test(redis_url, parses_forms_and_refuses_junk)
{
    struct rld_redis_addr a;
    char err[256];
    cr_assert_eq(rld_redis_parse_url("redis://127.0.0.1:6379/0", &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(a.host, "127.0.0.1");
    cr_assert_eq(a.port, 6379);
    cr_assert_eq(a.db, 0);
    cr_assert_eq(a.password[0], 0);
    cr_assert_eq(rld_redis_parse_url("redis://:s3cret@cache.local:7000/3", &a, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_str_eq(a.password, "s3cret");
    cr_assert_str_eq(a.host, "cache.local");
    cr_assert_eq(a.port, 7000);
    cr_assert_eq(a.db, 3);
    cr_assert_eq(rld_redis_parse_url("redis://[::1]:6380", &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(a.host, "::1");
    cr_assert_eq(a.port, 6380);
    cr_assert_eq(rld_redis_parse_url("redis://localhost", &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(a.port, 6379);
    cr_assert_eq(rld_redis_parse_url("unix:///run/redis/redis.sock?db=2", &a, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert(a.is_unix);
    cr_assert_str_eq(a.host, "/run/redis/redis.sock");
    cr_assert_eq(a.db, 2);
    cr_assert_eq(rld_redis_parse_url("http://x", &a, err, sizeof(err)), -1);
    cr_assert_eq(rld_redis_parse_url("redis://h:99999/0", &a, err, sizeof(err)), -1);
    cr_assert_eq(rld_redis_parse_url("redis://h:6379/x", &a, err, sizeof(err)), -1);
    cr_assert_eq(rld_redis_parse_url("redis://", &a, err, sizeof(err)), -1);
    cr_assert_eq(rld_redis_parse_url("unix://relative.sock", &a, err, sizeof(err)), -1);
    cr_assert_eq(rld_redis_parse_url("unix:///x.sock?nodb", &a, err, sizeof(err)), -1);
}
