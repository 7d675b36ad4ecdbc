/* shopd/catalog_cache on a real SQLite file with two connections, as two
 * workers or two shopd have: built once per catalog version, rebuilt after a
 * change made on either connection or by SQL by hand, never staler. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/xalloc.h"
#include "shopd/catalog.h"
#include "shopd/catalog_cache.h"
#include "shopd/db.h"
#include "tests/support/harness.h"
#include "tests/support/test_db.h"

static struct test_db tdb, tdb2;
static struct db *mine, *other;

static void setup(void)
{
    test_db_open(&tdb, "catalog_cache");
    mine = tdb.db;
    char err[256];
    other = db_open(&tdb.target, err, sizeof(err));
    cr_assert_not_null(other, "%s", err);
    cr_assert_eq(catalog_seed_if_empty(mine), 0);
}

static void teardown(void)
{
    db_close(other);
    test_db_close(&tdb);
    if (tdb2.db)
        test_db_close(&tdb2);
}

TestSuite(catalog_cache, .init = setup, .fini = teardown);

static json_t *cached_list(struct db *db, char *etag)
{
    size_t len;
    const char *text = catalog_cache_list(db, &len, etag, CATALOG_ETAG_MAX);
    cr_assert_not_null(text);
    cr_assert_eq(text[len - 1], '\n');
    json_t *list = json_loadb(text, len, 0, NULL);
    cr_assert(json_is_array(list));
    return list;
}

static int64_t price_of(json_t *list, int64_t id)
{
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p)
    {
        if (json_integer_value(json_object_get(p, "id")) == id)
            return json_integer_value(json_object_get(p, "price_cents"));
    }
    return -1;
}

static void set_price(struct db *db, int64_t id, int64_t cents)
{
    struct product_input in = {.has_price = true, .price_cents = cents};
    cr_assert_eq(catalog_update(db, id, &in), OUT_OK);
}

Test(catalog_cache, the_list_is_built_once_per_version)
{
    struct catalog_cache_stats before = catalog_cache_stats();
    char e1[CATALOG_ETAG_MAX], e2[CATALOG_ETAG_MAX];
    json_t *a = cached_list(mine, e1), *b = cached_list(mine, e2);
    struct catalog_cache_stats after = catalog_cache_stats();
    cr_expect_eq(after.builds - before.builds, 1);
    cr_expect_eq(after.hits - before.hits, 1);
    cr_expect_str_eq(e1, e2);
    cr_expect(e1[0] == '"' && e1[strlen(e1) - 1] == '"', "not a quoted tag: %s", e1);
    cr_expect(json_equal(a, b));
    /* The same bytes as the list itself. */
    json_t *direct = catalog_list(mine);
    cr_expect(json_equal(a, direct));
    json_decref(direct);
    json_decref(a);
    json_decref(b);
}

Test(catalog_cache, a_change_on_this_connection_is_seen_next)
{
    char e1[CATALOG_ETAG_MAX], e2[CATALOG_ETAG_MAX];
    json_decref(cached_list(mine, e1));
    set_price(mine, 1, 777);
    json_t *list = cached_list(mine, e2);
    cr_expect_eq(price_of(list, 1), 777);
    cr_expect_str_neq(e1, e2);
    json_decref(list);
}

Test(catalog_cache, a_change_on_another_connection_is_seen_next)
{
    char e1[CATALOG_ETAG_MAX], e2[CATALOG_ETAG_MAX], e3[CATALOG_ETAG_MAX];
    json_decref(cached_list(mine, e1));
    set_price(other, 2, 4242); /* another worker or shopd */
    json_t *list = cached_list(mine, e2);
    cr_expect_eq(price_of(list, 2), 4242);
    cr_expect_str_neq(e1, e2);
    json_decref(list);
    /* SQL by hand (stock taken by a checkout is an UPDATE too). */
    cr_assert_eq(db_exec(other, "UPDATE products SET stock = stock - 1 WHERE id = 3"), 0);
    cr_assert_eq(catalog_cache_etag(mine, e3, sizeof(e3)), 0);
    cr_expect_str_neq(e2, e3);
    cr_assert_eq(db_exec(other, "DELETE FROM products WHERE id = 4"), 0);
    list = cached_list(mine, e3);
    cr_expect_eq(price_of(list, 4), -1, "a deleted product is still listed");
    json_decref(list);
}

Test(catalog_cache, writes_elsewhere_do_not_bump_the_version)
{
    char e1[CATALOG_ETAG_MAX], e2[CATALOG_ETAG_MAX];
    cr_assert_eq(catalog_cache_etag(mine, e1, sizeof(e1)), 0);
    cr_assert_eq(db_exec(other, "UPDATE health SET checked_at = checked_at + 1"), 0);
    cr_assert_eq(catalog_cache_etag(mine, e2, sizeof(e2)), 0);
    cr_expect_str_eq(e1, e2, "a write to another table changed the catalog's tag");
}

Test(catalog_cache, two_databases_never_share_a_tag)
{
    test_db_open(&tdb2, "catalog_cache_other");
    struct db *db2 = tdb2.db;
    cr_assert_eq(catalog_seed_if_empty(db2), 0);
    char e1[CATALOG_ETAG_MAX], e2[CATALOG_ETAG_MAX];
    cr_assert_eq(catalog_cache_etag(mine, e1, sizeof(e1)), 0);
    cr_assert_eq(catalog_cache_etag(db2, e2, sizeof(e2)), 0);
    cr_expect_str_neq(e1, e2);
}

Test(catalog_cache, fragments_are_kept_per_key_and_version)
{
    char e1[CATALOG_ETAG_MAX], e2[CATALOG_ETAG_MAX];
    cr_assert_eq(catalog_cache_etag(mine, e1, sizeof(e1)), 0);
    struct catalog_fragment f;
    cr_expect_eq(catalog_cache_fragment("k1", e1, &f), -1, "a fragment nobody kept");
    catalog_cache_keep_fragment("k1", e1, "<ul>one</ul>", 12, 8, 1);
    cr_assert_eq(catalog_cache_fragment("k1", e1, &f), 0);
    cr_expect_eq(f.len, 12);
    cr_expect(memcmp(f.html, "<ul>one</ul>", 12) == 0);
    cr_expect(f.total == 8 && f.has_more == 1);
    cr_expect_eq(catalog_cache_fragment("k2", e1, &f), -1, "another key");
    set_price(other, 1, 123);
    cr_assert_eq(catalog_cache_etag(mine, e2, sizeof(e2)), 0);
    cr_expect_eq(catalog_cache_fragment("k1", e2, &f), -1, "a fragment of an older version");
    /* Many keys: the oldest go, none is ever wrong. */
    for (int i = 0; i < 100; i++) {
        char key[16], html[16];
        snprintf(key, sizeof(key), "key%d", i);
        int n = snprintf(html, sizeof(html), "<p>%d</p>", i);
        catalog_cache_keep_fragment(key, e2, html, (size_t)n, i, 0);
    }
    cr_assert_eq(catalog_cache_fragment("key99", e2, &f), 0);
    cr_expect(f.len == 9 && memcmp(f.html, "<p>99</p>", 9) == 0 && f.total == 99);
    cr_expect_eq(catalog_cache_fragment("key0", e2, &f), -1, "the oldest of 100 is still kept");
}
