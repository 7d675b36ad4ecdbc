/* Fuzzes the product list's parameters (q, sort, limit, page, cursor): they come
 * straight from a query string. Input: the five values separated by newlines; a
 * missing line is an absent parameter. A parsed query must render as a link, and
 * a cursor made from it must parse back to the same position. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shopd/catalog_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[2048];
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    const char *fields[5] = {NULL};
    char *s = text;
    for (int i = 0; i < 5 && s; i++) {
        fields[i] = s;
        s = strchr(s, '\n');
        if (s)
            *s++ = '\0';
    }
    struct catalog_query_params p = {fields[0], fields[1], fields[2], fields[3], fields[4]};
    struct catalog_query q;
    char msg[256];
    if (catalog_query_parse(&p, &q, msg, sizeof(msg)) != OUT_OK)
        return 0;
    free(catalog_query_url(&q, "/products", true, q.page, NULL));
    char cursor[CATALOG_CURSOR_MAX];
    catalog_cursor_encode(q.sort, q.after_id ? q.after_id : 1, q.after_price_cents, q.after_name, cursor,
                          sizeof(cursor));
    free(catalog_query_url(&q, "/products", true, 0, cursor));
    struct catalog_query_params again = {NULL, NULL, NULL, NULL, cursor};
    struct catalog_query back;
    if (catalog_query_parse(&again, &back, msg, sizeof(msg)) != OUT_OK || back.sort != q.sort)
        abort();
    return 0;
}
