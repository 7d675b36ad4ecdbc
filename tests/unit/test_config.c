#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "shared/config.h"

static const struct config_setting settings[] = {
    {.name = "SHOPD_LISTEN", .default_value = "127.0.0.1:8081", .help = "listen"},
    {.name = "AWS_REGION", .default_value = "us-east-1", .help = "region", .alias = "REGION_NAME"},
    {.name = "SECRET_KEY", .help = "secret"},
    {.name = "CREATE_TABLE", .help = "action", .is_flag = true},
    {0},
};

static char dir[64];

static void in_temp_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/shop-config-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(chdir(dir), 0);
    unsetenv("SHOPD_LISTEN");
    unsetenv("AWS_REGION");
    unsetenv("REGION_NAME");
    unsetenv("SECRET_KEY");
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void cleanup(void)
{
    unlink(".env");
    unlink("other.env");
    rmdir(dir);
}

TestSuite(config, .init = in_temp_dir, .fini = cleanup);

Test(config, defaults_apply_without_env_file)
{
    char err[256];
    char *argv[] = {"prog", NULL};
    struct config *c = config_load("prog", "1", "x", settings, 1, argv, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(config_get(c, "SHOPD_LISTEN"), "127.0.0.1:8081");
    cr_assert_null(config_get(c, "SECRET_KEY"));
    cr_assert_str_eq(config_source(c, "SHOPD_LISTEN"), "default");
    config_free(c);
}

Test(config, precedence_dotenv_environment_flag)
{
    write_file(".env",
               "# comment\nexport SHOPD_LISTEN=1.1.1.1:1\nSECRET_KEY=\"a b\\\"c\"\nFLASK_APP=app.py\n");
    char err[256];
    char *argv[] = {"prog", NULL};
    struct config *c = config_load("prog", "1", "x", settings, 1, argv, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(config_get(c, "SHOPD_LISTEN"), "1.1.1.1:1");
    cr_assert_str_eq(config_get(c, "SECRET_KEY"), "a b\"c");
    config_free(c);

    setenv("SHOPD_LISTEN", "2.2.2.2:2", 1);
    c = config_load("prog", "1", "x", settings, 1, argv, err, sizeof(err));
    cr_assert_str_eq(config_get(c, "SHOPD_LISTEN"), "2.2.2.2:2");
    cr_assert_str_eq(config_source(c, "SHOPD_LISTEN"), "environment");
    config_free(c);

    char *argv2[] = {"prog", "--shopd-listen", "3.3.3.3:3", "--create-table", NULL};
    c = config_load("prog", "1", "x", settings, 4, argv2, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(config_get(c, "SHOPD_LISTEN"), "3.3.3.3:3");
    cr_assert_str_eq(config_get(c, "CREATE_TABLE"), "1");
    config_free(c);
    unsetenv("SHOPD_LISTEN");
}

Test(config, alias_is_weaker_than_its_name_at_the_same_level)
{
    write_file(".env", "AWS_REGION=eu-west-1\nREGION_NAME=us-west-2\n");
    char err[256];
    char *argv[] = {"prog", NULL};
    struct config *c = config_load("prog", "1", "x", settings, 1, argv, err, sizeof(err));
    cr_assert_str_eq(config_get(c, "AWS_REGION"), "eu-west-1");
    config_free(c);
    write_file(".env", "REGION_NAME=us-west-2\n");
    c = config_load("prog", "1", "x", settings, 1, argv, err, sizeof(err));
    cr_assert_str_eq(config_get(c, "AWS_REGION"), "us-west-2");
    config_free(c);
}

Test(config, explicit_env_file_and_errors)
{
    write_file("other.env", "SHOPD_LISTEN=4.4.4.4:4\n");
    char err[256];
    char *argv[] = {"prog", "--env", "other.env", NULL};
    struct config *c = config_load("prog", "1", "x", settings, 3, argv, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(config_get(c, "SHOPD_LISTEN"), "4.4.4.4:4");
    config_free(c);

    char *missing[] = {"prog", "--env", "nope.env", NULL};
    cr_assert_null(config_load("prog", "1", "x", settings, 3, missing, err, sizeof(err)));
    cr_assert(strstr(err, "nope.env") != NULL);

    char *unknown[] = {"prog", "--bogus", "1", NULL};
    cr_assert_null(config_load("prog", "1", "x", settings, 3, unknown, err, sizeof(err)));
    cr_assert(strstr(err, "--bogus") != NULL, "%s", err);

    write_file(".env", "NOT A LINE\n");
    char *plain[] = {"prog", NULL};
    cr_assert_null(config_load("prog", "1", "x", settings, 1, plain, err, sizeof(err)));
    cr_assert(strstr(err, ".env:1") != NULL, "%s", err);
}

Test(config, numbers_booleans_and_hostport)
{
    char err[256];
    char *argv[] = {"prog", "--shopd-listen=12", NULL};
    struct config *c = config_load("prog", "1", "x", settings, 2, argv, err, sizeof(err));
    long n;
    cr_assert_eq(config_get_long(c, "SHOPD_LISTEN", 0, 100, &n, err, sizeof(err)), 0);
    cr_assert_eq(n, 12);
    cr_assert_eq(config_get_long(c, "SHOPD_LISTEN", 0, 10, &n, err, sizeof(err)), -1);
    config_free(c);

    char host[64];
    int port;
    cr_assert_eq(config_parse_hostport("127.0.0.1:8081", host, sizeof(host), &port), 0);
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_eq(port, 8081);
    cr_assert_eq(config_parse_hostport("[::1]:80", host, sizeof(host), &port), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(config_parse_hostport("nohost", host, sizeof(host), &port), -1);
    cr_assert_eq(config_parse_hostport("h:99999", host, sizeof(host), &port), -1);
    cr_assert_eq(config_parse_hostport(":80", host, sizeof(host), &port), -1);
}
