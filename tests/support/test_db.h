/* test_db: a real shop database for the unit tests of the domain modules: a
 * SQLite file in a fresh temporary folder, or a fresh PostgreSQL database when
 * SHOP_TEST_DATABASE=postgres (test_database.h), opened with db_open, so the
 * schema and the migrations are the real ones. Aborts the test when it cannot. */
#ifndef TESTS_SUPPORT_TEST_DB_H
#define TESTS_SUPPORT_TEST_DB_H

#include "shopd/db.h"

#include <stdint.h>

struct test_db {
    char *dir;               /* the temporary folder (removed by test_db_close) */
    char *path;              /* the database file in it */
    struct db_target target; /* where it is, for a second connection (db_open) */
    struct db *db;
};

/* Opens a new database in a folder named after prefix. */
void test_db_open(struct test_db *t, const char *prefix);
/* Closes the database and removes its folder. */
void test_db_close(struct test_db *t);
/* Adds users 7 (u7@example.com) and 8 (u8@example.com). */
void test_db_add_users(struct db *db);
/* Creates a product and returns its id. */
int64_t test_db_product(struct db *db, const char *name, int64_t price_cents, int64_t stock);
/* Runs a one-off query (no parameters: values written into the text) and
 * returns the first column of its first row; asserts there is a row. */
int64_t test_db_int(struct db *db, const char *sql);
/* The same for text: a copy (caller frees), "(null)" for NULL. */
char *test_db_text(struct db *db, const char *sql);
/* Sets a product's price. */
void test_db_set_price(struct db *db, int64_t id, int64_t cents);

#endif
