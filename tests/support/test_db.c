#include "test_db.h"

#include "harness.h"
#include "test_database.h"
#include "shared/xalloc.h"
#include "shopd/catalog.h"
#include "shopd/db.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void test_db_open(struct test_db *t, const char *prefix)
{
    t->dir = harness_tempdir(prefix);
    t->path = xasprintf("%s/shop.db", t->dir);
    char err[256];
    /* SHOP_TEST_DATABASE picks the engine (test_database.h). */
    char *url = test_database_url(t->dir);
    cr_assert_eq(db_target_parse(url, &t->target, err, sizeof(err)), 0, "%s", err);
    free(url);
    t->db = db_open(&t->target, err, sizeof(err));
    cr_assert_not_null(t->db, "%s", err);
}

void test_db_close(struct test_db *t)
{
    db_close(t->db);
    db_target_free(&t->target);
    harness_rmrf(t->dir);
    free(t->dir);
    free(t->path);
    *t = (struct test_db){0};
}

void test_db_add_users(struct db *db)
{
    cr_assert_eq(db_exec(db, "INSERT INTO users (id, email, password_hash, created_at) VALUES"
                             " (7, 'u7@example.com', 'x', 0), (8, 'u8@example.com', 'x', 0)"),
                 0);
}

int64_t test_db_product(struct db *db, const char *name, int64_t price_cents, int64_t stock)
{
    struct product_input in = {.has_name = true, .has_price = true, .has_stock = true};
    snprintf(in.name, sizeof(in.name), "%s", name);
    in.price_cents = price_cents;
    in.stock = stock;
    int64_t id = 0;
    cr_assert_eq(catalog_create(db, &in, &id), OUT_OK);
    return id;
}

void test_db_set_price(struct db *db, int64_t id, int64_t cents)
{
    struct product_input in = {.has_price = true, .price_cents = cents};
    cr_assert_eq(catalog_update(db, id, &in), OUT_OK);
}

/* db_stmt caches statements by the address of their text, so a test's
   one-off text (often on the stack or freed right after) is copied once into
   a stable string per distinct text. */
static const char *stable_sql(const char *sql)
{
    static char **texts;
    static size_t ntexts;
    for (size_t i = 0; i < ntexts; i++)
        if (strcmp(texts[i], sql) == 0)
            return texts[i];
    texts = xrealloc(texts, (ntexts + 1) * sizeof(*texts));
    texts[ntexts] = xstrdup(sql);
    return texts[ntexts++];
}

int64_t test_db_int(struct db *db, const char *sql)
{
    struct db_stmt *st = db_stmt(db, stable_sql(sql));
    cr_assert_eq(db_step(st), DB_ROW, "no row for %s: %s", sql, db_errmsg(db));
    int64_t v = db_column_int64(st, 0);
    db_done(st);
    return v;
}

char *test_db_text(struct db *db, const char *sql)
{
    struct db_stmt *st = db_stmt(db, stable_sql(sql));
    cr_assert_eq(db_step(st), DB_ROW, "no row for %s: %s", sql, db_errmsg(db));
    const char *v = db_column_text(st, 0);
    char *copy = xstrdup(v ? v : "(null)");
    db_done(st);
    return copy;
}
