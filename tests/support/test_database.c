#include "test_database.h"

#include "pg_server.h"
#include "shared/xalloc.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool test_database_is_postgres(void)
{
    const char *e = getenv("SHOP_TEST_DATABASE");
    return e && (strcmp(e, "postgres") == 0 || strcmp(e, "postgresql") == 0);
}

char *test_database_url_named(const char *dir, const char *file)
{
    if (test_database_is_postgres())
        return pg_test_database(pg_server_shared(), "shop");
    return xasprintf("sqlite:///%s/%s", dir, file);
}

char *test_database_url(const char *dir)
{
    return test_database_url_named(dir, "shop.db");
}

/* What one statement gave: the rows changed and the first value. */
struct sql_result {
    long changes;
    char *value;
};

static struct sql_result run_sqlite(const char *path, const char *sql, const char *const params[])
{
    struct sql_result res = {0};
    sqlite3 *h;
    cr_assert_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK, "open %s", path);
    sqlite3_busy_timeout(h, 5000);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(h));
    for (int i = 0; params && params[i]; i++) {
        char name[16];
        snprintf(name, sizeof(name), "$%d", i + 1);
        int index = sqlite3_bind_parameter_index(st, name);
        cr_assert_gt(index, 0, "%s has no %s", sql, name);
        sqlite3_bind_text(st, index, params[i], -1, SQLITE_TRANSIENT);
    }
    int rc = sqlite3_step(st);
    cr_assert(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(h));
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        res.value = xstrdup((const char *)sqlite3_column_text(st, 0));
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(st);
    cr_assert_eq(rc, SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(h));
    res.changes = sqlite3_changes(h);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return res;
}

static struct sql_result run_postgres(const char *url, const char *sql, const char *const params[])
{
    struct sql_result res = {0};
    PGconn *c = PQconnectdb(url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "connect %s: %s", url, PQerrorMessage(c));
    int n = 0;
    while (params && params[n])
        n++;
    PGresult *r = PQexecParams(c, sql, n, NULL, (const char *const *)params, NULL, NULL, 0);
    ExecStatusType status = PQresultStatus(r);
    cr_assert(status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    if (status == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        res.value = xstrdup(PQgetvalue(r, 0, 0));
    res.changes = atol(PQcmdTuples(r));
    PQclear(r);
    PQfinish(c);
    return res;
}

static struct sql_result run_sql(const char *url, const char *sql, const char *const params[])
{
    if (strncmp(url, "sqlite:///", 10) == 0) {
        cr_assert(strcmp(url + 10, ":memory:") != 0, "an in-memory database is out of a test's reach");
        return run_sqlite(url + 10, sql, params);
    }
    cr_assert(strncmp(url, "postgresql://", 13) == 0, "not a test database URL: %s", url);
    return run_postgres(url, sql, params);
}

long test_database_exec(const char *url, const char *sql, const char *const params[])
{
    struct sql_result res = run_sql(url, sql, params);
    free(res.value);
    return res.changes;
}

char *test_database_value(const char *url, const char *sql, const char *const params[])
{
    return run_sql(url, sql, params).value;
}

void test_database_script(const char *url, const char *sql)
{
    if (strncmp(url, "sqlite:///", 10) == 0) {
        sqlite3 *h;
        cr_assert_eq(sqlite3_open_v2(url + 10, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK, "open %s", url);
        sqlite3_busy_timeout(h, 5000);
        char *err = NULL;
        int rc = sqlite3_exec(h, sql, NULL, NULL, &err);
        cr_assert_eq(rc, SQLITE_OK, "%.200s: %s", sql, err ? err : sqlite3_errmsg(h));
        sqlite3_close(h);
        return;
    }
    PGconn *c = PQconnectdb(url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "connect %s: %s", url, PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%.200s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}
