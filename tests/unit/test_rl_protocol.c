/* shared/rl_protocol: both sides of the ratelimitd line protocol, and that what
 * one side writes the other reads back unchanged. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/rl_protocol.h"

static int parse_line(const char *line, struct rl_proto_cmd *cmd, const char **reason)
{
    return rl_proto_parse(line, strlen(line), cmd, reason);
}

Test(protocol, parses_requests)
{
    struct rl_proto_cmd cmd;
    const char *reason = NULL;
    cr_assert_eq(parse_line("CHECK login 1.2.3.4", &cmd, &reason), 0);
    cr_assert_eq(cmd.type, RL_PROTO_CMD_CHECK);
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
    cr_assert_eq(cmd.type, RL_PROTO_CMD_PING);
    cr_assert_eq(parse_line("STATS", &cmd, &reason), 0);
    cr_assert_eq(cmd.type, RL_PROTO_CMD_STATS);
    char key[300];
    memset(key, 'k', 256);
    key[256] = 0;
    char line[400];
    snprintf(line, sizeof(line), "CHECK a %s", key);
    cr_assert_eq(parse_line(line, &cmd, &reason), 0, "256-byte key is fine");
}

static void expect_bad(const char *line, size_t len, const char *want)
{
    struct rl_proto_cmd cmd;
    const char *reason = NULL;
    cr_assert_eq(rl_proto_parse(line, len, &cmd, &reason), -1, "accepted %.*s", (int)len, line);
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
    static char big[RL_PROTO_MAX_LINE + 10];
    memset(big, 'A', sizeof(big));
    expect_bad(big, sizeof(big), "line too long");
}

Test(protocol, formats_answers)
{
    char buf[96];
    cr_assert_eq(rl_proto_format_allow(buf, sizeof(buf), 120, 57, 12, 60), strlen("ALLOW 120 57 12 60\r\n"));
    cr_assert_str_eq(buf, "ALLOW 120 57 12 60\r\n");
    rl_proto_format_deny(buf, sizeof(buf), 10, 2500, 30);
    cr_assert_str_eq(buf, "DENY 10 2500 30\r\n");
    rl_proto_format_err(buf, sizeof(buf), "unknown rule");
    cr_assert_str_eq(buf, "ERR unknown rule\r\n");
}

/* What the client writes, ratelimitd reads as the same rule, key and cost. */
static void expect_check_round_trip(const char *rule, const char *key, long cost, const char *want_rule,
                                    const char *want_key, long want_cost)
{
    char line[RL_PROTO_CHECK_LINE_MAX];
    size_t n = rl_proto_format_check(line, sizeof(line), rule, key, cost);
    cr_assert(n >= 2 && line[n - 2] == '\r' && line[n - 1] == '\n', "no line ending: %s", line);
    struct rl_proto_cmd cmd;
    const char *reason = NULL;
    cr_assert_eq(rl_proto_parse(line, n - 2, &cmd, &reason), 0, "ratelimitd refused %s: %s", line, reason);
    cr_assert_eq(cmd.type, RL_PROTO_CMD_CHECK);
    cr_expect_eq(cmd.rule_len, strlen(want_rule));
    cr_expect(memcmp(cmd.rule, want_rule, cmd.rule_len) == 0, "rule %.*s", (int)cmd.rule_len, cmd.rule);
    cr_expect_eq(cmd.key_len, strlen(want_key));
    cr_expect(memcmp(cmd.key, want_key, cmd.key_len) == 0, "key %.*s", (int)cmd.key_len, cmd.key);
    cr_expect_eq(cmd.cost, want_cost);
}

Test(protocol, what_the_client_sends_the_daemon_reads)
{
    expect_check_round_trip("login", "user:42", 1, "login", "user:42", 1);
    expect_check_round_trip("api", "203.0.113.7", 0, "api", "203.0.113.7", 0);
    expect_check_round_trip("checkout", "u 1\tx", 5, "checkout", "u_1_x", 5);
    expect_check_round_trip("bad rule!", "caf\xc3\xa9", -3, "bad_rule_", "caf__", 1);
    expect_check_round_trip("", "", 1, "-", "-", 1);
    expect_check_round_trip(NULL, NULL, 1, "-", "-", 1);
    char long_key[RL_PROTO_MAX_KEY + 50];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    char want[RL_PROTO_MAX_KEY + 1];
    memset(want, 'k', RL_PROTO_MAX_KEY);
    want[RL_PROTO_MAX_KEY] = '\0';
    expect_check_round_trip("api", long_key, RL_PROTO_MAX_COST, "api", want, RL_PROTO_MAX_COST);
}

Test(protocol, what_the_daemon_answers_the_client_reads)
{
    char buf[96];
    struct rl_proto_answer a;
    size_t n = rl_proto_format_allow(buf, sizeof(buf), 120, 57, 12, 60);
    cr_assert_eq(rl_proto_parse_answer(buf, n - 2, &a), 0, "%s", buf);
    cr_expect_eq(a.verdict, RL_PROTO_ALLOW);
    cr_expect(a.limit == 120 && a.remaining == 57 && a.reset_s == 12 && a.window_s == 60);
    n = rl_proto_format_deny(buf, sizeof(buf), 10, 2500, 30);
    cr_assert_eq(rl_proto_parse_answer(buf, n - 2, &a), 0, "%s", buf);
    cr_expect_eq(a.verdict, RL_PROTO_DENY);
    cr_expect(a.limit == 10 && a.retry_after_ms == 2500 && a.reset_s == 3 && a.window_s == 30 &&
              a.remaining == 0);
    /* An older ratelimitd without the window field. */
    cr_assert_eq(rl_proto_parse_answer("ALLOW 5 4 1", 11, &a), 0);
    cr_expect(a.limit == 5 && a.remaining == 4 && a.reset_s == 1 && a.window_s == 0);
    cr_assert_eq(rl_proto_parse_answer("DENY 5 999", 10, &a), 0);
    cr_expect_eq(a.reset_s, 1);
}

Test(protocol, the_client_refuses_errors_and_garbage)
{
    const char *bad[] = {"ERR unknown rule",
                         "PONG",
                         "",
                         "ALLOW",
                         "ALLOW 1 2",
                         "ALLOW 1 2 3 4 5 6",
                         "ALLOW 1 2 3 4 0",
                         "DENY 1 2 3 4 5",
                         "ALLOW -1 2 3",
                         "ALLOW +1 2 3",
                         "ALLOW 1 2 x",
                         "DENY 1",
                         "DENY 1 2 3 4",
                         "allow 1 2 3",
                         "ALLOW 1 2 3 1234567890123",
                         "ALLOWED 1 2 3",
                         "DENY 1 2e3"};
    struct rl_proto_answer a;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(rl_proto_parse_answer(bad[i], strlen(bad[i]), &a), -1, "accepted '%s'", bad[i]);
}

Test(protocol, lease_requests_and_their_answers)
{
    struct rl_proto_cmd cmd;
    const char *reason = NULL;
    cr_assert_eq(parse_line("LEASE api ip:1.2.3.4 64", &cmd, &reason), 0);
    cr_assert_eq(cmd.type, RL_PROTO_CMD_LEASE);
    cr_assert_eq(cmd.most, 64);
    cr_assert_eq(cmd.cost, 1, "a lease is of single tokens");
    cr_assert_eq(strncmp(cmd.key, "ip:1.2.3.4", cmd.key_len), 0);
    cr_assert_eq(parse_line("CHECK api k 3", &cmd, &reason), 0);
    cr_assert_eq(cmd.most, 1, "a CHECK is one decision");
    const char *bad[] = {"LEASE api k",    "LEASE api k 0",   "LEASE api k 1025",
                         "LEASE api k -1", "LEASE api k 2 3", "LEASE a%b k 2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        reason = NULL;
        cr_expect_eq(parse_line(bad[i], &cmd, &reason), -1, "accepted '%s'", bad[i]);
        cr_expect_not_null(reason);
    }
    cr_assert_eq(parse_line("LEASE api k 1024", &cmd, &reason), 0);

    /* What the client writes, the daemon reads back, with the size clamped. */
    char line[RL_PROTO_CHECK_LINE_MAX];
    size_t n = rl_proto_format_lease(line, sizeof(line), "api", "a b", 5000);
    cr_assert_str_eq(line, "LEASE api a_b 1024\r\n");
    cr_assert_eq(rl_proto_parse(line, n - 2, &cmd, &reason), 0);
    rl_proto_format_lease(line, sizeof(line), "api", "k", 0);
    cr_assert_str_eq(line, "LEASE api k 1\r\n");

    /* The daemon's answer carries the tokens granted; a CHECK's answer counts as one. */
    char buf[128];
    n = rl_proto_format_granted(buf, sizeof(buf), 240, 180, 15, 12, 37);
    struct rl_proto_answer a;
    cr_assert_eq(rl_proto_parse_answer(buf, n - 2, &a), 0);
    cr_assert_eq(a.verdict, RL_PROTO_ALLOW);
    cr_assert_eq(a.remaining, 180);
    cr_assert_eq(a.window_s, 12);
    cr_assert_eq(a.granted, 37);
    cr_assert_eq(rl_proto_parse_answer("ALLOW 3 2 1 3", 13, &a), 0);
    cr_assert_eq(a.granted, 1);
    cr_assert_eq(rl_proto_parse_answer("DENY 3 900 3", 12, &a), 0);
    cr_assert_eq(a.granted, 0);

    char k[RL_PROTO_MAX_KEY + 1];
    cr_assert_eq(rl_proto_clean_key(k, "a b\r\n"), 5);
    cr_assert_str_eq(k, "a_b__");
    cr_assert_eq(rl_proto_clean_key(k, ""), 1);
    cr_assert_str_eq(k, "-", "sent as '-', so kept as '-'");
}
