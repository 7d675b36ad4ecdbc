/* The PostgreSQL test server itself: what the suites on that engine rely on. */
#include "tests/support/pg_server.h"
#include "tests/support/test_database.h"

#include "shared/xalloc.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static PGconn *connect_url(const char *url)
{
    PGconn *c = PQconnectdb(url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "connect %s: %s", url, PQerrorMessage(c));
    return c;
}

static char *query_one(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    char *v = xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

Test(pg_server, a_fresh_database_is_empty_and_takes_writes)
{
    struct pg_server *s = pg_server_shared();
    char *url = pg_test_database(s, "t_fresh");
    cr_assert(strncmp(url, "postgresql:///", 14) == 0, "%s", url);
    cr_assert(strstr(url, pg_server_host(s)) != NULL, "%s", url);
    PGconn *c = connect_url(url);
    char *tables = query_one(c, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'");
    cr_expect_str_eq(tables, "0");
    PGresult *r = PQexec(c, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)");
    cr_expect_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(r);
    char *n = query_one(c, "SELECT count(*) FROM t");
    cr_expect_str_eq(n, "2");
    PQfinish(c);
    free(tables);
    free(n);
    free(url);
}

Test(pg_server, two_databases_do_not_meet)
{
    struct pg_server *s = pg_server_shared();
    char *a = pg_test_database(s, "t_a");
    char *b = pg_test_database(s, "t_b");
    cr_assert_str_neq(a, b);
    PGconn *ca = connect_url(a);
    PQclear(PQexec(ca, "CREATE TABLE only_in_a (x int)"));
    PGconn *cb = connect_url(b);
    char *n = query_one(cb, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'");
    cr_expect_str_eq(n, "0");
    PQfinish(ca);
    PQfinish(cb);
    free(n);
    free(a);
    free(b);
}

Test(pg_server, the_durability_settings_are_off_and_tcp_is_closed)
{
    struct pg_server *s = pg_server_shared();
    char *url = pg_test_database(s, "t_settings");
    PGconn *c = connect_url(url);
    const char *want[][2] = {{"SHOW fsync", "off"},
                             {"SHOW synchronous_commit", "off"},
                             {"SHOW full_page_writes", "off"},
                             {"SHOW listen_addresses", ""}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char *v = query_one(c, want[i][0]);
        cr_expect_str_eq(v, want[i][1], "%s", want[i][0]);
        free(v);
    }
    PQfinish(c);
    free(url);
}

Test(pg_server, the_password_role_needs_its_password)
{
    struct pg_server *s = pg_server_shared();
    char *wrong = xasprintf("host=%s port=%d dbname=postgres user=" PG_TEST_PASSWORD_ROLE " password=nope",
                            pg_server_host(s), pg_server_port(s));
    PGconn *c = PQconnectdb(wrong);
    cr_expect_eq(PQstatus(c), CONNECTION_BAD, "a wrong password was accepted");
    cr_expect(strstr(PQerrorMessage(c), "password authentication failed") != NULL, "%s", PQerrorMessage(c));
    PQfinish(c);
    char *right =
        xasprintf("host=%s port=%d dbname=postgres user=" PG_TEST_PASSWORD_ROLE " password=" PG_TEST_PASSWORD,
                  pg_server_host(s), pg_server_port(s));
    c = PQconnectdb(right);
    cr_expect_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PQfinish(c);
    free(wrong);
    free(right);
}

Test(pg_server, a_private_server_restarts_on_the_same_socket_and_keeps_its_data)
{
    struct pg_server *s = pg_server_start();
    char *url = pg_test_database(s, "t_restart");
    PGconn *c = connect_url(url);
    PQclear(PQexec(c, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)"));
    pg_server_stop(s);
    /* The session of a stopped server is gone, and new ones are refused. */
    PGresult *r = PQexec(c, "SELECT 1");
    cr_expect_neq(PQresultStatus(r), PGRES_TUPLES_OK, "a query succeeded on a stopped server");
    PQclear(r);
    PQfinish(c);
    c = PQconnectdb(url);
    cr_expect_eq(PQstatus(c), CONNECTION_BAD, "connected to a stopped server");
    PQfinish(c);
    pg_server_resume(s);
    c = connect_url(url);
    char *v = query_one(c, "SELECT x FROM kept");
    cr_expect_str_eq(v, "42");
    PQfinish(c);
    free(v);
    pg_server_restart(s);
    c = connect_url(url);
    PQfinish(c);
    char *dir = xstrdup(pg_server_host(s));
    pg_server_free(s);
    struct stat st;
    cr_expect_neq(stat(dir, &st), 0, "%s is still there", dir);
    free(dir);
    free(url);
}

Test(pg_server, a_test_reaches_a_postgres_database_with_bound_parameters)
{
    char *url = pg_test_database(pg_server_shared(), "t_reach");
    cr_assert_eq(test_database_exec(url, "CREATE TABLE notes (id int, body text)", NULL), 0);
    const char *row[] = {"1", "it's $2, not a parameter", NULL};
    cr_expect_eq(test_database_exec(url, "INSERT INTO notes VALUES ($1::int, $2)", row), 1);
    const char *id[] = {"1", NULL};
    char *body = test_database_value(url, "SELECT body FROM notes WHERE id = $1::int", id);
    cr_expect_str_eq(body, "it's $2, not a parameter");
    const char *none[] = {"2", NULL};
    cr_expect_null(test_database_value(url, "SELECT body FROM notes WHERE id = $1::int", none));
    free(body);
    free(url);
}
