/* The catalog against a real SQLite file with the shop's schema: checking an
 * admin's product input, creating, changing and deleting products, the list
 * and one product as JSON, the default inventory, and search results: what
 * matches, the sort orders, pages by number and by cursor, and a cursor that
 * keeps its place while products are added and deleted before it. Queries are
 * built with catalog_query_parse, as the routes build them. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/xalloc.h"
#include "shopd/catalog.h"
#include "shopd/db.h"
#include "tests/support/harness.h"
#include "tests/support/test_db.h"

static struct test_db tdb;
static struct db *db;
static char msg[256];

static void setup(void)
{
    test_db_open(&tdb, "catalog");
    db = tdb.db;
    msg[0] = '\0';
}

static void teardown(void)
{
    test_db_close(&tdb);
}

TestSuite(catalog, .init = setup, .fini = teardown);

/* Parses JSON text as an admin's POST (require_all) or PUT body. */
static enum outcome parse(const char *text, bool require_all, struct product_input *in)
{
    json_error_t e;
    json_t *body = json_loads(text, JSON_DECODE_ANY, &e);
    cr_assert_not_null(body, "bad test JSON %s: %s", text, e.text);
    msg[0] = '\0';
    enum outcome o = catalog_parse_input(body, require_all, in, msg, sizeof(msg));
    json_decref(body);
    return o;
}

static void expect_invalid(const char *text, bool require_all, const char *message)
{
    struct product_input in;
    cr_expect_eq(parse(text, require_all, &in), OUT_INVALID, "%s was accepted", text);
    cr_expect_str_eq(msg, message, "for %s", text);
}

static int64_t create(const char *text)
{
    struct product_input in;
    cr_assert_eq(parse(text, true, &in), OUT_OK, "%s: %s", text, msg);
    int64_t id = 0;
    cr_assert_eq(catalog_create(db, &in, &id), OUT_OK);
    cr_assert_gt(id, 0);
    return id;
}

static json_t *get(int64_t id)
{
    json_t *p = NULL;
    cr_assert_eq(catalog_get(db, id, &p), OUT_OK, "product %lld", (long long)id);
    return p;
}

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static json_int_t num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_integer(v), "%s is not an integer", key);
    return json_integer_value(v);
}

Test(catalog, complete_input_is_parsed)
{
    struct product_input in;
    cr_assert_eq(parse("{\"name\": \"  Kiwi  \", \"price\": 1.25, \"stock\": 7, \"description\": \"Green\","
                       " \"image_url\": \"/static/img/kiwi.svg\"}",
                       true, &in),
                 OUT_OK, "%s", msg);
    cr_assert(in.has_name && in.has_price && in.has_stock && in.has_description && in.has_image_url);
    cr_assert_str_eq(in.name, "Kiwi");
    cr_assert_eq(in.price_cents, 125);
    cr_assert_eq(in.stock, 7);
    cr_assert_str_eq(in.description, "Green");
    cr_assert_str_eq(in.image_url, "/static/img/kiwi.svg");
}

Test(catalog, prices_come_as_dollars_or_cents)
{
    struct product_input in;
    cr_assert_eq(parse("{\"name\": \"A\", \"price\": 0.29, \"stock\": 1}", true, &in), OUT_OK, "%s", msg);
    cr_assert_eq(in.price_cents, 29);
    cr_assert_eq(parse("{\"name\": \"A\", \"price\": 3, \"stock\": 1}", true, &in), OUT_OK, "%s", msg);
    cr_assert_eq(in.price_cents, 300);
    cr_assert_eq(parse("{\"name\": \"A\", \"price_cents\": 1999, \"stock\": 1}", true, &in), OUT_OK, "%s",
                 msg);
    cr_assert_eq(in.price_cents, 1999);
    cr_assert_eq(parse("{\"name\": \"A\", \"price\": 0, \"stock\": 0.0}", true, &in), OUT_OK, "%s", msg);
    cr_assert_eq(in.price_cents, 0);
    cr_assert_eq(in.stock, 0);
}

Test(catalog, bad_input_names_the_field)
{
    expect_invalid("[1, 2]", true, "expected a JSON object");
    expect_invalid("\"Kiwi\"", false, "expected a JSON object");
    expect_invalid("{\"price\": 1, \"stock\": 1}", true, "name is required");
    expect_invalid("{\"name\": 5, \"price\": 1, \"stock\": 1}", true, "name must be a string");
    expect_invalid("{\"name\": \"   \", \"price\": 1, \"stock\": 1}", true, "name must not be empty");
    expect_invalid("{\"name\": \"a\\u0007b\", \"price\": 1, \"stock\": 1}", true,
                   "name contains control characters");
    expect_invalid("{\"name\": \"A\", \"stock\": 1}", true, "price is required");
    expect_invalid("{\"name\": \"A\", \"price\": \"1.00\", \"stock\": 1}", true, "price must be a number");
    expect_invalid("{\"name\": \"A\", \"price\": -1, \"stock\": 1}", true,
                   "price must be a non-negative number");
    expect_invalid("{\"name\": \"A\", \"price\": 1.999, \"stock\": 1}", true,
                   "price must not have more than two decimals");
    expect_invalid("{\"name\": \"A\", \"price\": 1e300, \"stock\": 1}", true, "price is too large");
    expect_invalid("{\"name\": \"A\", \"price_cents\": 1.5, \"stock\": 1}", true,
                   "price_cents must be a non-negative integer");
    expect_invalid("{\"name\": \"A\", \"price_cents\": -1, \"stock\": 1}", true,
                   "price_cents must be a non-negative integer");
    expect_invalid("{\"name\": \"A\", \"price\": 1}", true, "stock is required");
    expect_invalid("{\"name\": \"A\", \"price\": 1, \"stock\": -1}", true,
                   "stock must be a non-negative integer");
    expect_invalid("{\"name\": \"A\", \"price\": 1, \"stock\": 2.5}", true,
                   "stock must be a non-negative integer");
    expect_invalid("{\"name\": \"A\", \"price\": 1, \"stock\": \"3\"}", true,
                   "stock must be a non-negative integer");
    expect_invalid("{\"name\": \"A\", \"price\": 1, \"stock\": 1, \"image_url\": \"javascript:alert(1)\"}",
                   true, "image_url must start with / or http(s)://");
    expect_invalid("{\"name\": \"A\", \"price\": 1, \"stock\": 1, \"image_url\": \"//evil.example/x.png\"}",
                   true, "image_url must start with / or http(s)://");
    expect_invalid("{}", false, "nothing to change: give name, description, price, stock or image_url");
}

Test(catalog, overlong_text_is_refused)
{
    char *name = xmalloc(300);
    memset(name, 'n', 299);
    name[299] = '\0';
    char *text = xasprintf("{\"name\": \"%s\", \"price\": 1, \"stock\": 1}", name);
    expect_invalid(text, true, "name is longer than 200 characters");
    free(text);
    name[200] = '\0';
    text = xasprintf("{\"name\": \"%s\", \"price\": 1, \"stock\": 1}", name);
    struct product_input in;
    cr_assert_eq(parse(text, true, &in), OUT_OK, "%s", msg);
    free(text);
    free(name);
}

Test(catalog, a_partial_update_takes_any_subset)
{
    struct product_input in;
    cr_assert_eq(parse("{\"stock\": 4}", false, &in), OUT_OK, "%s", msg);
    cr_assert(in.has_stock);
    cr_assert_not(in.has_name || in.has_price || in.has_description || in.has_image_url);
    cr_assert_eq(parse("{\"description\": \"\"}", false, &in), OUT_OK, "%s", msg);
    cr_assert(in.has_description);
}

Test(catalog, a_created_product_reads_back)
{
    int64_t id = create("{\"name\": \"Kiwi\", \"price\": 1.25, \"stock\": 7, \"description\": \"Green\","
                        " \"image_url\": \"https://img.example/kiwi.png\"}");
    json_t *p = get(id);
    cr_assert_eq(num(p, "id"), id);
    cr_assert_str_eq(str(p, "name"), "Kiwi");
    cr_assert_str_eq(str(p, "description"), "Green");
    cr_assert_eq(num(p, "price_cents"), 125);
    cr_assert_eq(json_real_value(json_object_get(p, "price")), 1.25);
    cr_assert_eq(num(p, "stock"), 7);
    cr_assert_str_eq(str(p, "image_url"), "https://img.example/kiwi.png");
    json_decref(p);
}

Test(catalog, unknown_ids_are_not_found)
{
    json_t *p = NULL;
    cr_assert_eq(catalog_get(db, 4242, &p), OUT_NOT_FOUND);
    cr_assert_null(p);
    cr_assert_eq(catalog_get(db, 0, &p), OUT_NOT_FOUND);
    cr_assert_eq(catalog_get(db, -1, &p), OUT_NOT_FOUND);
    struct product_input in;
    cr_assert_eq(parse("{\"stock\": 4}", false, &in), OUT_OK);
    cr_assert_eq(catalog_update(db, 4242, &in), OUT_NOT_FOUND);
    cr_assert_eq(catalog_delete(db, 4242), OUT_NOT_FOUND);
}

Test(catalog, an_update_changes_only_the_given_fields)
{
    int64_t id = create("{\"name\": \"Kiwi\", \"price\": 1.25, \"stock\": 7, \"description\": \"Green\"}");
    struct product_input in;
    cr_assert_eq(parse("{\"price\": 2, \"stock\": 0}", false, &in), OUT_OK, "%s", msg);
    cr_assert_eq(catalog_update(db, id, &in), OUT_OK);
    json_t *p = get(id);
    cr_assert_str_eq(str(p, "name"), "Kiwi");
    cr_assert_str_eq(str(p, "description"), "Green");
    cr_assert_eq(num(p, "price_cents"), 200);
    cr_assert_eq(num(p, "stock"), 0);
    json_decref(p);
}

Test(catalog, a_deleted_product_is_gone_and_its_id_not_reused)
{
    int64_t a = create("{\"name\": \"A\", \"price\": 1, \"stock\": 1}");
    int64_t b = create("{\"name\": \"B\", \"price\": 1, \"stock\": 1}");
    cr_assert_eq(catalog_delete(db, b), OUT_OK);
    json_t *p = NULL;
    cr_assert_eq(catalog_get(db, b, &p), OUT_NOT_FOUND);
    cr_assert_eq(catalog_delete(db, b), OUT_NOT_FOUND);
    int64_t c = create("{\"name\": \"C\", \"price\": 1, \"stock\": 1}");
    cr_assert_gt(c, b, "id %lld was used again", (long long)c);
    json_t *list = catalog_list(db);
    cr_assert_eq(json_array_size(list), 2);
    cr_assert_eq(num(json_array_get(list, 0), "id"), a);
    cr_assert_eq(num(json_array_get(list, 1), "id"), c);
    json_decref(list);
}

Test(catalog, the_default_inventory_fills_only_an_empty_catalog)
{
    cr_assert_eq(catalog_seed_if_empty(db), 0);
    json_t *list = catalog_list(db);
    size_t n = json_array_size(list);
    cr_assert_eq(n, 8);
    cr_assert_str_eq(str(json_array_get(list, 0), "name"), "Apple");
    cr_assert_eq(num(json_array_get(list, 0), "price_cents"), 50);
    json_decref(list);
    cr_assert_eq(catalog_seed_if_empty(db), 0);
    list = catalog_list(db);
    cr_assert_eq(json_array_size(list), n);
    json_decref(list);
}

Test(catalog, an_admins_catalog_is_not_seeded_over)
{
    create("{\"name\": \"Only\", \"price\": 1, \"stock\": 1}");
    cr_assert_eq(catalog_seed_if_empty(db), 0);
    json_t *list = catalog_list(db);
    cr_assert_eq(json_array_size(list), 1);
    json_decref(list);
}

Test(catalog, prices_format_as_decimals)
{
    char buf[32];
    catalog_format_price(1250, buf, sizeof(buf));
    cr_assert_str_eq(buf, "12.50");
    catalog_format_price(5, buf, sizeof(buf));
    cr_assert_str_eq(buf, "0.05");
    catalog_format_price(0, buf, sizeof(buf));
    cr_assert_str_eq(buf, "0.00");
    json_t *j = catalog_price_json(1250);
    cr_assert_eq(json_real_value(j), 12.5);
    json_decref(j);
}

/* --- search ---------------------------------------------------------------- */

static void fruit(void)
{
    create("{\"name\": \"Banana\", \"price\": 0.25, \"stock\": 1, \"description\": \"yellow\"}");
    create("{\"name\": \"apple\", \"price\": 0.50, \"stock\": 1, \"description\": \"red\"}");
    create("{\"name\": \"Cherry\", \"price\": 3.00, \"stock\": 1, \"description\": \"red and small\"}");
    create("{\"name\": \"Date\", \"price\": 0.50, \"stock\": 1, \"description\": \"sweet\"}");
    create("{\"name\": \"Elderberry\", \"price\": 2.00, \"stock\": 1, \"description\": \"dark\"}");
}

static struct catalog_results search(const char *q, const char *sort, const char *limit, const char *page,
                                     const char *cursor)
{
    struct catalog_query_params p = {.q = q, .sort = sort, .limit = limit, .page = page, .cursor = cursor};
    struct catalog_query query;
    cr_assert_eq(catalog_query_parse(&p, &query, msg, sizeof(msg)), OUT_OK, "%s", msg);
    struct catalog_results r;
    cr_assert_eq(catalog_search(db, &query, &r), OUT_OK);
    cr_assert_not_null(r.items);
    return r;
}

/* The names of a result, comma-separated, for one readable comparison. */
static char *names(const struct catalog_results *r)
{
    char *out = xstrdup("");
    for (size_t i = 0; i < json_array_size(r->items); i++) {
        char *next = xasprintf("%s%s%s", out, i ? "," : "", str(json_array_get(r->items, i), "name"));
        free(out);
        out = next;
    }
    return out;
}

static void expect_names(struct catalog_results *r, const char *want)
{
    char *got = names(r);
    cr_expect_str_eq(got, want);
    free(got);
    json_decref(r->items);
}

Test(catalog, search_matches_name_or_description_ignoring_case)
{
    fruit();
    struct catalog_results r = search("RED", NULL, NULL, NULL, NULL);
    cr_assert_eq(r.total, 2);
    cr_assert_not(r.has_more);
    cr_assert_str_eq(r.next_cursor, "");
    expect_names(&r, "apple,Cherry");
    r = search("an", NULL, NULL, NULL, NULL);
    expect_names(&r, "Banana,Cherry");
    r = search("nothing like it", NULL, NULL, NULL, NULL);
    cr_assert_eq(r.total, 0);
    expect_names(&r, "");
}

Test(catalog, search_text_is_data_not_sql_or_patterns)
{
    fruit();
    struct catalog_results r = search("%", NULL, NULL, NULL, NULL);
    cr_assert_eq(r.total, 0);
    expect_names(&r, "");
    r = search("' OR 1=1 --", NULL, NULL, NULL, NULL);
    cr_assert_eq(r.total, 0);
    expect_names(&r, "");
}

Test(catalog, each_sort_order)
{
    fruit();
    struct catalog_results r = search(NULL, "id", NULL, NULL, NULL);
    expect_names(&r, "Banana,apple,Cherry,Date,Elderberry");
    r = search(NULL, "-id", NULL, NULL, NULL);
    expect_names(&r, "Elderberry,Date,Cherry,apple,Banana");
    r = search(NULL, "name", NULL, NULL, NULL);
    expect_names(&r, "apple,Banana,Cherry,Date,Elderberry");
    r = search(NULL, "-name", NULL, NULL, NULL);
    expect_names(&r, "Elderberry,Date,Cherry,Banana,apple");
    /* Equal prices fall back to the id, so the order is total. */
    r = search(NULL, "price", NULL, NULL, NULL);
    expect_names(&r, "Banana,apple,Date,Elderberry,Cherry");
    r = search(NULL, "-price", NULL, NULL, NULL);
    expect_names(&r, "Cherry,Elderberry,Date,apple,Banana");
}

Test(catalog, pages_by_number)
{
    fruit();
    struct catalog_results r = search(NULL, "name", "2", "1", NULL);
    cr_assert_eq(r.total, 5);
    cr_assert(r.has_more);
    cr_assert_str_neq(r.next_cursor, "");
    expect_names(&r, "apple,Banana");
    r = search(NULL, "name", "2", "2", NULL);
    cr_assert(r.has_more);
    expect_names(&r, "Cherry,Date");
    r = search(NULL, "name", "2", "3", NULL);
    cr_assert_not(r.has_more);
    cr_assert_str_eq(r.next_cursor, "");
    expect_names(&r, "Elderberry");
    r = search(NULL, "name", "2", "4", NULL);
    cr_assert_eq(r.total, 5);
    expect_names(&r, "");
}

Test(catalog, an_exactly_full_last_page_has_no_next)
{
    fruit();
    struct catalog_results r = search(NULL, NULL, "5", NULL, NULL);
    cr_assert_not(r.has_more);
    cr_assert_str_eq(r.next_cursor, "");
    expect_names(&r, "Banana,apple,Cherry,Date,Elderberry");
}

/* Walks every page of a sort by cursor; returns all names in order. */
static char *walk(const char *sort, const char *limit)
{
    char *all = xstrdup("");
    char cursor[CATALOG_CURSOR_MAX] = "";
    for (int pages = 0; pages < 20; pages++) {
        struct catalog_results r = search(NULL, sort, limit, NULL, cursor[0] ? cursor : NULL);
        char *got = names(&r);
        char *next = xasprintf("%s%s%s", all, all[0] && got[0] ? "," : "", got);
        free(all);
        free(got);
        all = next;
        json_decref(r.items);
        if (!r.has_more)
            return all;
        snprintf(cursor, sizeof(cursor), "%s", r.next_cursor);
    }
    cr_assert_fail("the cursor never reached the end");
    return all;
}

Test(catalog, cursors_walk_every_sort_without_gaps_or_repeats)
{
    fruit();
    static const struct {
        const char *sort, *want;
    } cases[] = {
        {"id", "Banana,apple,Cherry,Date,Elderberry"},    {"-id", "Elderberry,Date,Cherry,apple,Banana"},
        {"name", "apple,Banana,Cherry,Date,Elderberry"},  {"-name", "Elderberry,Date,Cherry,Banana,apple"},
        {"price", "Banana,apple,Date,Elderberry,Cherry"}, {"-price", "Cherry,Elderberry,Date,apple,Banana"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = walk(cases[i].sort, "2");
        cr_expect_str_eq(got, cases[i].want, "sort %s", cases[i].sort);
        free(got);
        got = walk(cases[i].sort, "1");
        cr_expect_str_eq(got, cases[i].want, "sort %s, one per page", cases[i].sort);
        free(got);
    }
}

Test(catalog, a_cursor_keeps_its_place_when_products_come_and_go_before_it)
{
    fruit();
    struct catalog_results r = search(NULL, "name", "2", NULL, NULL);
    expect_names(&r, "apple,Banana");
    char cursor[CATALOG_CURSOR_MAX];
    snprintf(cursor, sizeof(cursor), "%s", r.next_cursor);
    /* Before the cursor: one new product sorts first, one on page 1 goes. */
    create("{\"name\": \"Apricot\", \"price\": 1, \"stock\": 1}");
    json_t *list = catalog_list(db);
    int64_t banana = num(json_array_get(list, 0), "id");
    json_decref(list);
    cr_assert_eq(catalog_delete(db, banana), OUT_OK);
    r = search(NULL, "name", "2", NULL, cursor);
    expect_names(&r, "Cherry,Date");
    /* A page number shifts instead: with one more product ahead, page 2 starts
       a line earlier, while the cursor still continues right after Banana. */
    create("{\"name\": \"Avocado\", \"price\": 1, \"stock\": 1}");
    r = search(NULL, "name", "2", "2", NULL);
    expect_names(&r, "Avocado,Cherry");
    r = search(NULL, "name", "2", NULL, cursor);
    expect_names(&r, "Cherry,Date");
}

Test(catalog, a_cursor_of_another_sort_is_refused)
{
    fruit();
    struct catalog_results r = search(NULL, "name", "2", NULL, NULL);
    char cursor[CATALOG_CURSOR_MAX];
    snprintf(cursor, sizeof(cursor), "%s", r.next_cursor);
    json_decref(r.items);
    struct catalog_query_params p = {.sort = "price", .limit = "2", .cursor = cursor};
    struct catalog_query query;
    cr_assert_eq(catalog_query_parse(&p, &query, msg, sizeof(msg)), OUT_INVALID);
}
