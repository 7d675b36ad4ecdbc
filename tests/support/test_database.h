/* test_database: which engine the suites run on, and a database URL for it.
 *
 * SHOP_TEST_DATABASE=postgres runs them on PostgreSQL (the run-wide server of
 * pg_server_shared, one fresh database per URL); anything else, or nothing,
 * on SQLite. A test that only makes sense on one engine (a read-only SQLite
 * file, :memory:, the file's permissions) skips itself on the other with
 * TEST_DATABASE_ONLY_SQLITE. */
#ifndef TESTS_SUPPORT_TEST_DATABASE_H
#define TESTS_SUPPORT_TEST_DATABASE_H

#include <criterion/criterion.h>
#include <stdbool.h>

/* True when SHOP_TEST_DATABASE=postgres. */
bool test_database_is_postgres(void);
/* A DATABASE_URL for a new, empty database: sqlite:///DIR/shop.db on SQLite
 * (dir: an absolute folder), a fresh database on the run-wide server on
 * PostgreSQL (dir unused). Caller frees. Aborts the test on failure. */
char *test_database_url(const char *dir);
/* The same, for SQLite a file of that name in dir (tests with several files). */
char *test_database_url_named(const char *dir, const char *file);

/* A test's own way into the database a shopd runs on (to set up a state the
 * HTTP interface cannot make, or to check what a request stored). url is a
 * DATABASE_URL of either engine; sql has $1, $2 ... parameters, given as text
 * in params (NULL-terminated, may be NULL; a NULL text cannot be given).
 * test_database_exec runs a statement and returns the rows it changed;
 * test_database_value returns the first column of the first row (NULL when
 * there is no row or the value is NULL; caller frees). Both abort the test
 * on any failure. */
long test_database_exec(const char *url, const char *sql, const char *const params[]);
char *test_database_value(const char *url, const char *sql, const char *const params[]);
/* Runs several statements without parameters (a BEGIN ... COMMIT script of
 * literals the test made itself); aborts the test on failure. */
void test_database_script(const char *url, const char *sql);

/* Skips the current test on PostgreSQL, saying why. */
#define TEST_DATABASE_ONLY_SQLITE(reason)                                                                    \
    do {                                                                                                     \
        if (test_database_is_postgres())                                                                     \
            cr_skip_test("SQLite only: %s", reason);                                                         \
    } while (0)

#endif
