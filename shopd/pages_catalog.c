/* The catalog pages: the inventory with its search form, sort choice and
 * pages, and each product's own page. */
#include "shopd/cart.h"
#include "shopd/catalog.h"
#include "shopd/pages.h"
#include "shopd/render.h"
#include "shared/xalloc.h"
#include "shared/crypto.h"
#include "shopd/catalog_cache.h"
#include "shopd/request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOW_STOCK 5
#define INVENTORY_PAGE_SIZE 24

/* The fields a product card and the product page show beside the JSON ones. */
static void decorate_product(json_t *p)
{
    int64_t stock = json_integer_value(json_object_get(p, "stock"));
    json_object_set_new(p, "price_display",
                        render_money(json_integer_value(json_object_get(p, "price_cents"))));
    json_object_set_new(p, "image",
                        json_string(render_local_image(json_string_value(json_object_get(p, "image_url")))));
    json_object_set_new(p, "in_stock", json_boolean(stock > 0));
    json_object_set_new(p, "low_stock", json_boolean(stock > 0 && stock <= LOW_STOCK));
    json_object_set_new(p, "max_quantity",
                        json_integer(stock < CART_MAX_QUANTITY ? stock : CART_MAX_QUANTITY));
}

static const struct {
    enum catalog_sort sort;
    const char *label;
} sort_choices[] = {
    {CATALOG_SORT_ID, "Oldest first"},          {CATALOG_SORT_ID_DESC, "Newest first"},
    {CATALOG_SORT_NAME, "Name, A to Z"},        {CATALOG_SORT_NAME_DESC, "Name, Z to A"},
    {CATALOG_SORT_PRICE, "Price, low to high"}, {CATALOG_SORT_PRICE_DESC, "Price, high to low"},
};

/* The search form's values and the links to the neighbouring pages. */
static json_t *inventory_controls(const struct catalog_query *q, const struct catalog_results *res,
                                  int64_t pages)
{
    json_t *sorts = json_array();
    for (size_t i = 0; i < sizeof(sort_choices) / sizeof(sort_choices[0]); i++)
        json_array_append_new(
            sorts, json_pack("{s:s, s:s, s:b}", "value", catalog_sort_name(sort_choices[i].sort), "label",
                             sort_choices[i].label, "selected", sort_choices[i].sort == q->sort));
    json_t *ctl = json_pack("{s:s, s:o, s:I, s:I, s:I, s:b, s:b}", "q", q->q, "sorts", sorts, "page",
                            (json_int_t)q->page, "pages", (json_int_t)pages, "total", (json_int_t)res->total,
                            "searching", q->q[0] != '\0', "paged", pages > 1);
    json_object_set_new(ctl, "one_result", json_boolean(res->total == 1));
    if (q->page > 1) {
        char *url = catalog_query_url(q, "/browser/inventory", false, q->page - 1, NULL);
        json_object_set_new(ctl, "prev_url", json_string(url));
        free(url);
    }
    if (res->has_more) {
        char *url = catalog_query_url(q, "/browser/inventory", false, q->page + 1, NULL);
        json_object_set_new(ctl, "next_url", json_string(url));
        free(url);
    }
    return ctl;
}

/* A random stand-in for the CSRF token in kept fragments, made once per
 * process: it cannot occur in a product's escaped text by chance, and no
 * client ever sees it. */
static const char *csrf_stand_in(void)
{
    static char token[CRYPTO_SHA256_HEX_LEN];
    if (!token[0]) {
        unsigned char rnd[32];
        crypto_random_bytes(rnd, sizeof(rnd));
        crypto_hex_encode(rnd, sizeof(rnd), token);
    }
    return token;
}

/* html with every stand-in replaced by this answer's CSRF token (both are 64
 * hex digits), as a JSON string the layout inserts as it is. */
static json_t *with_csrf(const char *html, size_t len, const char *csrf)
{
    const char *stand_in = csrf_stand_in();
    size_t n = strlen(stand_in);
    char *copy = xmalloc(len + 1);
    memcpy(copy, html, len);
    copy[len] = '\0';
    for (char *p = copy; (p = memmem(p, len - (size_t)(p - copy), stand_in, n)) != NULL; p += n)
        memcpy(p, csrf, n);
    json_t *s = json_stringn_nocheck(copy, len);
    free(copy);
    return s;
}

void pages_inventory(struct request *r)
{
    if (!pages_ensure_session(r))
        return;
    /* The page always goes by page number with its own page size: the form
       has no limit or cursor to offer. */
    struct catalog_query_params p = {request_query(r, "q"), request_query(r, "sort"), NULL,
                                     request_query(r, "page"), NULL};
    if (p.sort && !*p.sort)
        p.sort = NULL;
    struct catalog_query q;
    char msg[256];
    if (catalog_query_parse(&p, &q, msg, sizeof(msg)) != OUT_OK) {
        char text[320];
        snprintf(text, sizeof(text), "The inventory cannot be shown that way: %s.", msg);
        pages_error(r, 400, text);
        return;
    }
    q.limit = INVENTORY_PAGE_SIZE;
    if (!q.page)
        q.page = 1;
    /* The product cards depend only on the catalog and on q: rendered once per
       catalog version (catalog_cache), with a stand-in for the CSRF token that
       each answer replaces with its own. */
    char etag[CATALOG_ETAG_MAX] = "", key[CATALOG_MAX_Q + 64];
    snprintf(key, sizeof(key), "inventory\n%s\n%s\n%lld", q.q, catalog_sort_name(q.sort), (long long)q.page);
    struct catalog_fragment cards;
    char *built = NULL; /* this answer's own build, when nothing was kept */
    bool cached =
        catalog_cache_etag(r->db, etag, sizeof(etag)) == 0 && catalog_cache_fragment(key, etag, &cards) == 0;
    if (!cached) {
        struct catalog_results res;
        if (catalog_search(r->db, &q, &res) != OUT_OK) {
            pages_error(r, 500, "The inventory could not be read. Please try again.");
            return;
        }
        size_t i;
        json_t *prod;
        json_array_foreach(res.items, i, prod) decorate_product(prod);
        json_t *cctx = json_pack("{s:o, s:s}", "products", res.items, "csrf", csrf_stand_in());
        size_t len;
        char *html = render_fragment("product_cards", cctx, &len);
        json_decref(cctx);
        if (!html) {
            pages_error(r, 500, "The inventory could not be shown. Please try again.");
            return;
        }
        if (etag[0])
            catalog_cache_keep_fragment(key, etag, html, len, (long long)res.total, res.has_more);
        cards = (struct catalog_fragment){html, len, (long long)res.total, res.has_more};
        built = html;
    }
    struct catalog_results res = {.total = cards.total, .has_more = cards.has_more};
    int64_t pages = res.total ? (res.total + q.limit - 1) / q.limit : 1;
    if (q.page > pages) {
        free(built);
        pages_error(r, 404, "The inventory has no page that far.");
        return;
    }
    char csrf[CRYPTO_SHA256_HEX_LEN];
    request_csrf_token(r, csrf);
    json_t *ctx = json_pack("{s:o, s:b, s:b, s:o}", "cards", with_csrf(cards.html, cards.len, csrf), "empty",
                            res.total == 0 && !q.q[0], "no_match", res.total == 0 && q.q[0], "search",
                            inventory_controls(&q, &res, pages));
    free(built);
    pages_add_cart_notices(r, ctx);
    render_page(r, 200, "inventory", "Inventory", "inventory", ctx);
}

void pages_product(struct request *r)
{
    if (!pages_ensure_session(r))
        return;
    json_t *p = NULL;
    enum outcome o = catalog_get(r->db, r->param, &p);
    if (o == OUT_NOT_FOUND) {
        pages_error(r, 404, "There is no such product. It may have been sold out for good and removed.");
        return;
    }
    if (o != OUT_OK) {
        pages_error(r, 500, "The product could not be read. Please try again.");
        return;
    }
    decorate_product(p);
    const char *name = json_string_value(json_object_get(p, "name"));
    char title[256];
    snprintf(title, sizeof(title), "%s", name ? name : "Product");
    json_t *ctx = json_pack("{s:o}", "product", p);
    render_page(r, 200, "product", title, "inventory", ctx);
}
