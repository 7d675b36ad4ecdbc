/* catalog_query: what a shopper or a program asks of the product list (a
 * search text, a sort order, a page size and a page number or a cursor),
 * checked and turned into a query that catalog_search runs; the opaque cursor
 * format; and the links to other pages of the same list.
 *
 * Pages come two ways. A page number (page=3) is what people click through;
 * it shifts when products are added or deleted before it. A cursor names the
 * last product of the previous page by its sort key and id (keyset
 * pagination), so the next page starts right after it whatever was inserted or
 * deleted meanwhile: nothing is skipped or shown twice. No database here. */
#ifndef SHOPD_CATALOG_QUERY_H
#define SHOPD_CATALOG_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shopd/outcome.h"

#define CATALOG_MAX_LIMIT 100
#define CATALOG_DEFAULT_LIMIT 20
#define CATALOG_MAX_Q 200
#define CATALOG_MAX_PAGE 1000000
/* A cursor holds a product name (at most 200 bytes) and two numbers, as hex. */
#define CATALOG_CURSOR_MAX 512

enum catalog_sort {
    CATALOG_SORT_ID,
    CATALOG_SORT_ID_DESC,
    CATALOG_SORT_NAME,
    CATALOG_SORT_NAME_DESC,
    CATALOG_SORT_PRICE,
    CATALOG_SORT_PRICE_DESC,
};

/* The parameters as they came (query string or form); NULL when absent. */
struct catalog_query_params {
    const char *q, *sort, *limit, *page, *cursor;
};

struct catalog_query {
    char q[CATALOG_MAX_Q + 1]; /* trimmed; "" matches every product */
    enum catalog_sort sort;
    int64_t limit; /* 0: every match */
    int64_t page;  /* 1-based page number, 0 when not paged by number */
    bool has_cursor;
    /* The last product of the previous page (has_cursor). */
    int64_t after_id;
    int64_t after_price_cents;
    char after_name[201];
};

/* True when any of the parameters is given (without any, GET /products
 * answers the whole catalog as it always did). */
bool catalog_query_given(const struct catalog_query_params *p);

/* Checks the parameters into out: q at most CATALOG_MAX_Q bytes without
 * control characters, sort one of name, -name, price, -price, id, -id
 * (default id), limit 1..CATALOG_MAX_LIMIT, page 1..CATALOG_MAX_PAGE, a cursor
 * made by catalog_cursor_encode for the same sort, and not page and cursor
 * together. A page or a cursor without limit means CATALOG_DEFAULT_LIMIT.
 * Returns OUT_OK, or OUT_INVALID with a message naming the parameter. */
enum outcome catalog_query_parse(const struct catalog_query_params *p, struct catalog_query *out, char *msg,
                                 size_t msglen);

/* "name", "-price", ...: the sort's parameter value. Static. */
const char *catalog_sort_name(enum catalog_sort sort);

/* The cursor that continues after the product (id, price_cents, name) in sort
 * order, as NUL-terminated text in buf (CATALOG_CURSOR_MAX bytes). */
void catalog_cursor_encode(enum catalog_sort sort, int64_t id, int64_t price_cents, const char *name,
                           char *buf, size_t len);

/* path?q=..&sort=..[&limit=..][&page=N | &cursor=C] for the list q describes,
 * with page (> 0) or cursor (non-NULL) in place of q's own; the values are
 * percent-encoded. with_limit false leaves limit out (the HTML pages have a
 * fixed page size). Returns a heap string (caller frees). */
char *catalog_query_url(const struct catalog_query *q, const char *path, bool with_limit, int64_t page,
                        const char *cursor);

#endif
