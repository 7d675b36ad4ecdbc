/* shopd/router: which route a method and path reach, the numeric parameter,
 * 405 with the methods a path takes, and the route table's own consistency. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "shopd/router.h"

static const struct route *expect_found(const char *method, const char *path, int64_t want_param)
{
    const struct route *rt = NULL;
    int64_t param = -1;
    char allow[128], text[ROUTE_MAX_TEXT + 1];
    cr_assert_eq(router_match(method, path, &rt, &param, text, sizeof(text), allow, sizeof(allow)),
                 ROUTE_FOUND, "%s %s", method, path);
    cr_assert_not_null(rt);
    if (want_param >= 0)
        cr_expect_eq(param, want_param, "%s %s: param %lld", method, path, (long long)param);
    return rt;
}

static void expect_not_found(const char *method, const char *path)
{
    const struct route *rt = NULL;
    int64_t param;
    char allow[128], text[ROUTE_MAX_TEXT + 1];
    cr_expect_eq(router_match(method, path, &rt, &param, text, sizeof(text), allow, sizeof(allow)),
                 ROUTE_NOT_FOUND, "%s %s", method, path);
}

Test(router, finds_routes_and_their_numeric_parameter)
{
    cr_expect_str_eq(expect_found("GET", "/products", -1)->name, "products");
    cr_expect_str_eq(expect_found("GET", "/products/42", 42)->name, "product");
    cr_expect_str_eq(expect_found("DELETE", "/products/7", 7)->name, "product");
    expect_found("GET", "/products/", -1);                             /* a trailing slash is the same path */
    expect_found("GET", "/products/999999999999999", 999999999999999); /* 15 digits */
    expect_found("GET", "/static/style.css", -1);                      /* a prefix route */
    cr_expect_str_eq(expect_found("POST", "/browser/cart/add", -1)->name, "page_cart_add");
}

Test(router, text_segments_take_order_ids_only)
{
    const struct route *rt = NULL;
    int64_t param;
    char allow[128], text[ROUTE_MAX_TEXT + 1];
    const char *id = "0f8fad5b-d9cb-469f-a165-70867728950e";
    char path[128];
    snprintf(path, sizeof(path), "/orders/%s", id);
    cr_assert_eq(router_match("GET", path, &rt, &param, text, sizeof(text), allow, sizeof(allow)),
                 ROUTE_FOUND);
    cr_expect_str_eq(text, id);
    const char *bad[] = {"/orders/a_b", "/orders/a.b", "/orders/%2e%2e", "/orders/a/b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum route_match m =
            router_match("GET", bad[i], &rt, &param, text, sizeof(text), allow, sizeof(allow));
        cr_expect(m != ROUTE_FOUND || strcmp(rt->pattern, "/orders/*") != 0, "%s reached %s", bad[i],
                  rt->pattern);
    }
}

Test(router, refuses_parameters_that_are_not_plain_positive_numbers)
{
    const char *bad[] = {"/products/0",   "/products/007", "/products/-1",
                         "/products/+1",  "/products/1a",  "/products/1000000000000000",
                         "/products/1/2", "/products//1",  "/products/ 1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_not_found("GET", bad[i]);
    expect_not_found("GET", "/nowhere");
    expect_not_found("GET", "");
    expect_not_found("GET", "/productsx");
}

Test(router, a_known_path_with_another_method_names_the_allowed_ones)
{
    const struct route *rt = NULL;
    int64_t param;
    char allow[128], text[ROUTE_MAX_TEXT + 1];
    cr_assert_eq(router_match("PATCH", "/products/3", &rt, &param, text, sizeof(text), allow, sizeof(allow)),
                 ROUTE_WRONG_METHOD);
    cr_expect(strstr(allow, "GET") && strstr(allow, "PUT") && strstr(allow, "DELETE"), "Allow: %s", allow);
    cr_assert_eq(router_match("DELETE", "/cart", &rt, &param, text, sizeof(text), allow, sizeof(allow)),
                 ROUTE_WRONG_METHOD);
    cr_expect_str_eq(allow, "GET");
    /* HEAD reaches the GET route when the path has no HEAD of its own. */
    cr_expect_str_eq(expect_found("HEAD", "/products", -1)->method, "GET");
}

Test(router, every_route_is_consistent)
{
    size_t n;
    const struct route *routes = router_routes(&n);
    cr_assert_gt(n, 10);
    for (size_t i = 0; i < n; i++) {
        const struct route *rt = &routes[i];
        cr_expect(rt->handler && rt->name && rt->name[0], "route %zu", i);
        cr_expect(rt->pattern[0] == '/', "%s", rt->pattern);
        /* Pages live under the browser's paths, so their errors are HTML. */
        if (rt->flags & ROUTE_PAGE)
            cr_expect(router_path_is_page(rt->pattern), "page route %s outside the browser paths",
                      rt->pattern);
        /* A form POST is a page; the JSON API has no CSRF tokens (it refuses form types instead). */
        if (rt->flags & ROUTE_CSRF)
            cr_expect(rt->flags & ROUTE_PAGE, "CSRF on API route %s", rt->pattern);
        if (rt->flags & ROUTE_NEEDS_ADMIN)
            cr_expect(rt->flags & ROUTE_NEEDS_USER, "admin route %s without a user", rt->pattern);
        if ((rt->flags & ROUTE_PAGE) && strcmp(rt->method, "POST") == 0)
            cr_expect(rt->flags & ROUTE_CSRF, "page POST %s without CSRF", rt->pattern);
        for (size_t k = 0; k < i; k++)
            cr_expect(strcmp(rt->method, routes[k].method) != 0 ||
                          strcmp(rt->pattern, routes[k].pattern) != 0,
                      "%s %s twice", rt->method, rt->pattern);
    }
}

Test(router, browser_paths_are_pages)
{
    cr_expect(router_path_is_page("/"));
    cr_expect(router_path_is_page("/browser/anything"));
    cr_expect(router_path_is_page("/static/x.css"));
    cr_expect_not(router_path_is_page("/products"));
    cr_expect_not(router_path_is_page("/browserx"));
}
