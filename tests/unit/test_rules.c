/* ratelimitd/rules: the rules file, its errors, and the rules the package ships. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
