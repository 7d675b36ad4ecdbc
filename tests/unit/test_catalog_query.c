/* The product list's parameters: defaults, every refusal with the parameter it
 * names, cursors that read back to the position they were made at (and no
 * other sort's), and page links with their values percent-encoded. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "shopd/catalog_query.h"

static enum outcome parse(const char *q, const char *sort, const char *limit, const char *page,
                          const char *cursor, struct catalog_query *out, char *msg)
{
    struct catalog_query_params p = {q, sort, limit, page, cursor};
    return catalog_query_parse(&p, out, msg, 256);
}

Test(catalog_query, nothing_given_means_everything_by_id)
{
    struct catalog_query_params none = {0};
    cr_expect(!catalog_query_given(&none));
    struct catalog_query_params some = {.q = ""};
    cr_expect(catalog_query_given(&some), "an empty q is still given");
    struct catalog_query q;
    char msg[256];
    cr_assert_eq(parse(NULL, NULL, NULL, NULL, NULL, &q, msg), OUT_OK);
    cr_expect_eq(q.sort, CATALOG_SORT_ID);
    cr_expect_eq(q.limit, 0);
    cr_expect_eq(q.page, 0);
    cr_expect(!q.has_cursor);
    cr_expect_str_eq(q.q, "");
}

Test(catalog_query, values_are_read_and_trimmed)
{
    struct catalog_query q;
    char msg[256];
    cr_assert_eq(parse("  Berry jam ", "-price", "25", "3", NULL, &q, msg), OUT_OK, "%s", msg);
    cr_expect_str_eq(q.q, "Berry jam");
    cr_expect_eq(q.sort, CATALOG_SORT_PRICE_DESC);
    cr_expect_eq(q.limit, 25);
    cr_expect_eq(q.page, 3);
    cr_assert_eq(parse(NULL, NULL, NULL, "2", NULL, &q, msg), OUT_OK);
    cr_expect_eq(q.limit, CATALOG_DEFAULT_LIMIT, "a page has a default size");
    cr_assert_eq(parse(NULL, NULL, "100", NULL, NULL, &q, msg), OUT_OK);
    cr_expect_eq(q.page, 0, "a limit alone is the first page by cursor");
}

Test(catalog_query, bad_values_name_their_parameter)
{
    static const struct {
        const char *q, *sort, *limit, *page, *cursor, *words;
    } cases[] = {
        {NULL, "price ", NULL, NULL, NULL, "sort"},      {NULL, "", NULL, NULL, NULL, "sort"},
        {NULL, NULL, "0", NULL, NULL, "limit"},          {NULL, NULL, "101", NULL, NULL, "limit"},
        {NULL, NULL, "+5", NULL, NULL, "limit"},         {NULL, NULL, " 5", NULL, NULL, "limit"},
        {NULL, NULL, NULL, "0", NULL, "page"},           {NULL, NULL, NULL, "1000001", NULL, "page"},
        {NULL, NULL, NULL, "1", "00", "page or cursor"}, {NULL, NULL, NULL, NULL, "6", "cursor"},
        {NULL, NULL, NULL, NULL, "6g", "cursor"},        {"tab\there", NULL, NULL, NULL, NULL, "control"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct catalog_query q;
        char msg[256] = "";
        cr_expect_eq(
            parse(cases[i].q, cases[i].sort, cases[i].limit, cases[i].page, cases[i].cursor, &q, msg),
            OUT_INVALID, "case %zu", i);
        cr_expect(strstr(msg, cases[i].words), "case %zu: '%s' should name '%s'", i, msg, cases[i].words);
    }
    char longq[CATALOG_MAX_Q + 2];
    memset(longq, 'x', sizeof(longq) - 1);
    longq[sizeof(longq) - 1] = '\0';
    struct catalog_query q;
    char msg[256];
    cr_expect_eq(parse(longq, NULL, NULL, NULL, NULL, &q, msg), OUT_INVALID);
    longq[CATALOG_MAX_Q] = '\0';
    cr_expect_eq(parse(longq, NULL, NULL, NULL, NULL, &q, msg), OUT_OK, "exactly the longest");
}

Test(catalog_query, cursors_read_back_for_their_own_sort_only)
{
    char cursor[CATALOG_CURSOR_MAX];
    struct catalog_query q;
    char msg[256];
    catalog_cursor_encode(CATALOG_SORT_NAME_DESC, 42, 0, "Crème brûlée, a b", cursor, sizeof(cursor));
    cr_assert_eq(parse(NULL, NULL, NULL, NULL, cursor, &q, msg), OUT_OK, "%s", msg);
    cr_expect(q.has_cursor);
    cr_expect_eq(q.sort, CATALOG_SORT_NAME_DESC, "the cursor brings its sort");
    cr_expect_eq(q.after_id, 42);
    cr_expect_str_eq(q.after_name, "Crème brûlée, a b");
    cr_expect_eq(q.limit, CATALOG_DEFAULT_LIMIT);
    cr_expect_eq(parse(NULL, "-name", "5", NULL, cursor, &q, msg), OUT_OK);
    cr_expect_eq(parse(NULL, "name", NULL, NULL, cursor, &q, msg), OUT_INVALID);
    cr_expect(strstr(msg, "sort=-name"), "%s", msg);

    catalog_cursor_encode(CATALOG_SORT_PRICE, 7, 1299, NULL, cursor, sizeof(cursor));
    cr_assert_eq(parse(NULL, NULL, NULL, NULL, cursor, &q, msg), OUT_OK, "%s", msg);
    cr_expect_eq(q.after_price_cents, 1299);
    cr_expect_eq(q.after_id, 7);
    catalog_cursor_encode(CATALOG_SORT_ID_DESC, 9, 0, NULL, cursor, sizeof(cursor));
    cr_assert_eq(parse(NULL, NULL, NULL, NULL, cursor, &q, msg), OUT_OK, "%s", msg);
    cr_expect_eq(q.sort, CATALOG_SORT_ID_DESC);
    cr_expect_eq(q.after_id, 9);
    /* Flipping one hex digit makes it something we never made. */
    cursor[0] = cursor[0] == '6' ? '7' : '6';
    cr_expect_eq(parse(NULL, NULL, NULL, NULL, cursor, &q, msg), OUT_INVALID);
}

Test(catalog_query, links_keep_the_search_and_encode_it)
{
    struct catalog_query q;
    char msg[256];
    cr_assert_eq(parse("jam & toast/100%", "price", "5", "2", NULL, &q, msg), OUT_OK);
    char *url = catalog_query_url(&q, "/products", true, 3, NULL);
    cr_expect_str_eq(url, "/products?q=jam%20%26%20toast%2F100%25&sort=price&limit=5&page=3");
    free(url);
    url = catalog_query_url(&q, "/browser/inventory", false, 1, NULL);
    cr_expect_str_eq(url, "/browser/inventory?q=jam%20%26%20toast%2F100%25&sort=price&page=1");
    free(url);
    cr_assert_eq(parse(NULL, NULL, "2", NULL, NULL, &q, msg), OUT_OK);
    url = catalog_query_url(&q, "/products", true, 0, "abc");
    cr_expect_str_eq(url, "/products?limit=2&cursor=abc");
    free(url);
}
