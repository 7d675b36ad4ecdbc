/* The catalog pages: the inventory with its search form, sort choice and
 * pages, and each product's own page. */
#include "shopd/cart.h"
#include "shopd/catalog.h"
#include "shopd/pages.h"
#include "shopd/render.h"
#include "shopd/request.h"

#include <stdio.h>
#include <stdlib.h>

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
    struct catalog_results res;
    if (catalog_search(r->db, &q, &res) != OUT_OK) {
        pages_error(r, 500, "The inventory could not be read. Please try again.");
        return;
    }
    int64_t pages = res.total ? (res.total + q.limit - 1) / q.limit : 1;
    if (q.page > pages) {
        json_decref(res.items);
        pages_error(r, 404, "The inventory has no page that far.");
        return;
    }
    size_t i;
    json_t *prod;
    json_array_foreach(res.items, i, prod) decorate_product(prod);
    json_t *ctx =
        json_pack("{s:o, s:b, s:b, s:o}", "products", res.items, "empty", res.total == 0 && !q.q[0],
                  "no_match", res.total == 0 && q.q[0], "search", inventory_controls(&q, &res, pages));
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
