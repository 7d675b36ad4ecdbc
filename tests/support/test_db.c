#include "test_db.h"

#include "harness.h"
#include "shared/xalloc.h"
#include "shopd/catalog.h"
#include "shopd/db.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

void test_db_open(struct test_db *t, const char *prefix)
{
    t->dir = harness_tempdir(prefix);
    t->path = xasprintf("%s/shop.db", t->dir);
    char err[256];
    t->db = db_open(t->path, err, sizeof(err));
    cr_assert_not_null(t->db, "%s", err);
}

void test_db_close(struct test_db *t)
{
    db_close(t->db);
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
