/* The operator's configuration commands on the real binaries: --check (like
 * nginx -t) on each daemon, --print-config, and a warning for a mistyped key. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "shared/strbuf.h"
#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/pg_server.h"
#include "tests/support/services.h"
#include "tests/support/test_database.h"

static char *dir;

static void setup(void)
{
    dir = harness_tempdir("configcli");
}

static void teardown(void)
{
    harness_rmrf(dir);
    free(dir);
}

TestSuite(config_cli, .init = setup, .fini = teardown, .timeout = 30);

/* Runs "env ENV BIN ARGS" in the suite's folder, capturing stdout and stderr. */
static struct harness_run run(const char *env, const char *bin, const char *args)
{
    return harness_run_bin(dir, env, bin, args);
}

static char *shop_env(void)
{
    /* Quoted: a PostgreSQL URL has '?' and '&'. */
    char *database = test_database_url(dir);
    char *env = xasprintf("SHOP_ENV=development TEMPLATES_DIR=%s/templates STATIC_DIR=%s/templates/static "
                          "DATABASE_URL='%s'",
                          harness_root(), harness_root(), database);
    free(database);
    return env;
}

Test(config_cli, shopd_check_passes_a_good_configuration_and_binds_nothing)
{
    char *env = shop_env();
    char *args = xasprintf("--check --shopd-listen 127.0.0.1:%d", harness_free_port());
    struct harness_run r = run(env, "shopd", args);
    cr_expect_eq(r.status, 0, "exit %d: %s%s", r.status, r.out, r.err);
    cr_expect(strstr(r.out, "shopd: configuration OK") && strstr(r.out, "will be created"), "%s", r.out);
    char *db = xasprintf("%s/shop.db", dir);
    FILE *f = fopen(db, "r");
    cr_expect_null(f, "--check created the database");
    if (f)
        fclose(f);
    free(db);
    harness_run_free(&r);
    free(args);
    free(env);
}

Test(config_cli, shopd_check_lists_what_is_wrong)
{
    TEST_DATABASE_ONLY_SQLITE("makes a database of a newer shopd with sqlite3's user_version");
    char *env = xasprintf("SHOP_ENV=development TEMPLATES_DIR=/nonexistent STATIC_DIR=/nonexistent "
                          "DATABASE_URL=sqlite:///%s/new.db",
                          dir);
    struct harness_run r = run(env, "shopd", "--check");
    cr_expect_eq(r.status, 2, "exit %d", r.status);
    cr_expect(strstr(r.err, "shopd: templates:") != NULL, "%s", r.err);
    harness_run_free(&r);
    free(env);

    /* A database from a newer shopd. */
    char *sql = xasprintf("sqlite3 '%s/newer.db' 'PRAGMA user_version = 99;'", dir);
    cr_assert_eq(system(sql), 0);
    free(sql);
    env = xasprintf("SHOP_ENV=development TEMPLATES_DIR=%s/templates STATIC_DIR=%s/templates/static "
                    "DATABASE_URL=sqlite:///%s/newer.db",
                    harness_root(), harness_root(), dir);
    r = run(env, "shopd", "--check");
    cr_expect_eq(r.status, 2, "exit %d", r.status);
    cr_expect(strstr(r.err, "newer than this shopd") != NULL, "%s", r.err);
    harness_run_free(&r);
    free(env);

    r = run("", "shopd", "--check --shopd-listen nowhere");
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "SHOPD_LISTEN=nowhere") != NULL, "%s", r.err);
    harness_run_free(&r);
}

Test(config_cli, balancer_and_ratelimitd_check)
{
    struct harness_run r = run("", "balancer", "--check --balancer-backends 127.0.0.1:9,127.0.0.1:10");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "balancer: configuration OK") && strstr(r.out, "2 backends"), "%s", r.out);
    harness_run_free(&r);
    r = run("", "balancer", "--check --balancer-backends not-a-backend");
    cr_expect_eq(r.status, 2);
    harness_run_free(&r);

    char *rules = xasprintf("%s/good.rules", dir);
    services_write_file(rules, "api 10/1m burst=5\n");
    char *args = xasprintf("--check --ratelimit-rules %s", rules);
    r = run("", "ratelimitd", args);
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "ratelimitd: configuration OK: 1 rules") != NULL, "%s", r.out);
    harness_run_free(&r);
    services_write_file(rules, "api ten/1m\n");
    r = run("", "ratelimitd", args);
    cr_expect_eq(r.status, 2, "a bad rules file: %s", r.err);
    harness_run_free(&r);
    free(args);
    free(rules);
}

Test(config_cli, a_mistyped_key_is_named_with_the_closest_setting)
{
    char *envfile = xasprintf("%s/.env", dir);
    services_write_file(envfile, "SHOPD_LISTN=127.0.0.1:1\nBALANCER_LISTEN=0.0.0.0:1\nFLASK_APP=app.py\n");
    free(envfile);
    char *env = shop_env();
    char *full = xasprintf("%s SHOPD_WORKRS=2", env);
    struct harness_run r = run(full, "shopd", "--check");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.err, "SHOPD_LISTN: unknown setting (in .env); did you mean SHOPD_LISTEN?") != NULL,
              "%s", r.err);
    cr_expect(
        strstr(r.err, "SHOPD_WORKRS: unknown setting (in the environment); did you mean SHOPD_WORKERS?") !=
            NULL,
        "%s", r.err);
    cr_expect_null(strstr(r.err, "BALANCER_LISTEN"), "another daemon's key is not ours to warn about: %s",
                   r.err);
    cr_expect_null(strstr(r.err, "FLASK_APP"), "%s", r.err);
    harness_run_free(&r);
    free(full);
    free(env);
}

Test(config_cli, print_config_shows_values_sources_and_hides_secrets)
{
    struct harness_run r =
        run("SECRET_KEY=0123456789abcdef0123456789abcdef", "shopd", "--print-config --shopd-workers 3");
    cr_expect_eq(r.status, 0);
    cr_expect(strstr(r.out, "SHOPD_WORKERS=3  # flag\n") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "SHOPD_LISTEN=127.0.0.1:8081  # default\n") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "SECRET_KEY=(set, hidden)  # environment\n") != NULL, "%s", r.out);
    cr_expect_null(strstr(r.out, "0123456789abcdef"), "the secret leaked: %s", r.out);
    harness_run_free(&r);
    r = run("REDIS_URL=redis://:hunter2@127.0.0.1:6379/0", "ratelimitd", "--print-config");
    cr_expect(strstr(r.out, "REDIS_URL=redis://:***@127.0.0.1:6379/0  # environment\n") != NULL, "%s", r.out);
    cr_expect_null(strstr(r.out, "hunter2"), "%s", r.out);
    harness_run_free(&r);
}

/* Runs shopd (started for real, and with --check) on DATABASE_URL=url and
   expects both to refuse with one line holding want and never the password. */
static void expect_refused(const char *url, const char *want, const char *password)
{
    char *env = xasprintf("SHOP_ENV=development TEMPLATES_DIR=%s/templates STATIC_DIR=%s/templates/static "
                          "DATABASE_URL='%s'",
                          harness_root(), harness_root(), url);
    char *listen = xasprintf("--shopd-listen 127.0.0.1:%d", harness_free_port());
    char *check = xasprintf("--check %s", listen);
    const char *modes[] = {listen, check};
    for (int i = 0; i < 2; i++) {
        struct harness_run r = run(env, "shopd", modes[i]);
        cr_expect_neq(r.status, 0, "%s started on %s", modes[i], url);
        cr_expect(strstr(r.err, want), "%s: want '%s' in: %s", modes[i], want, r.err);
        if (password)
            cr_expect_null(strstr(r.err, password), "%s: the password is in: %s", modes[i], r.err);
        const char *first = strstr(r.err, want);
        cr_expect(!first || !strstr(first + 1, want), "%s: said more than once: %s", modes[i], r.err);
        harness_run_free(&r);
    }
    free(check);
    free(listen);
    free(env);
}

Test(config_cli, a_postgresql_database_that_cannot_serve_stops_shopd_with_one_line)
{
    if (!test_database_is_postgres())
        cr_skip_test("PostgreSQL only: the server's refusals");
    struct pg_server *pg = pg_server_shared();
    const char *host = pg_server_host(pg);
    int port = pg_server_port(pg);
    char *db = pg_test_database(pg, "refusals");
    const char *name = strstr(db, ":///") + 4;
    int name_len = (int)strcspn(name, "?");

    char *url = xasprintf("postgresql://" PG_TEST_PASSWORD_ROLE ":wrong-secret-4711@/%.*s?host=%s&port=%d",
                          name_len, name, host, port);
    expect_refused(url, "password authentication failed", "wrong-secret-4711");
    free(url);

    url = xasprintf("postgresql+psycopg2://shop:pw-4711@/%.*s?host=%s/no-such-dir&port=%d", name_len, name,
                    host, port);
    expect_refused(url, "cannot connect", "pw-4711");
    free(url);

    url = xasprintf("postgresql://shop:pw-4711@localhost");
    expect_refused(url, "names no database", "pw-4711");
    free(url);

    /* A database a newer shopd made. */
    char err[256];
    char dbname[128];
    snprintf(dbname, sizeof(dbname), "%.*s", name_len, name);
    cr_assert(
        pg_server_exec(pg, dbname, "CREATE TABLE shop_schema (version INTEGER NOT NULL)", err, sizeof(err)),
        "%s", err);
    cr_assert(pg_server_exec(pg, dbname, "INSERT INTO shop_schema VALUES (99)", err, sizeof(err)), "%s", err);
    expect_refused(db, "newer than this shopd", NULL);
    free(db);
}
