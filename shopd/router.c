#include "shopd/router.h"
#include "shopd/api.h"
#include "shopd/pages.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER ROUTE_NEEDS_USER
#define ADMIN (ROUTE_NEEDS_USER | ROUTE_NEEDS_ADMIN)
#define PAGE ROUTE_PAGE
#define CSRF ROUTE_CSRF
#define CATALOG ROUTE_CATALOG_READ

static const struct route routes[] = {
    /* JSON API */
    {"POST", "/register", api_register, "register", RL_KEY_ADDRESS, 0, "register"},
    {"POST", "/login", api_login, "login", RL_KEY_LOGIN, 0, "login"},
    {"POST", "/logout", api_logout, "api", RL_KEY_ADDRESS, 0, "logout"},
    {"GET", "/products", api_products_list, "api", RL_KEY_ADDRESS, CATALOG, "products"},
    {"POST", "/products", api_product_create, "api", RL_KEY_ADDRESS, ADMIN, "products"},
    {"GET", "/products/#", api_product_get, "api", RL_KEY_ADDRESS, CATALOG, "product"},
    {"PUT", "/products/#", api_product_update, "api", RL_KEY_ADDRESS, ADMIN, "product"},
    {"DELETE", "/products/#", api_product_delete, "api", RL_KEY_ADDRESS, ADMIN, "product"},
    {"GET", "/cart", api_cart_get, "api", RL_KEY_USER, USER, "cart"},
    {"POST", "/cart/items", api_cart_add, "cart", RL_KEY_USER, USER, "cart_items"},
    {"PUT", "/cart/items/#", api_cart_set, "cart", RL_KEY_USER, USER, "cart_item"},
    {"DELETE", "/cart/items/#", api_cart_remove, "cart", RL_KEY_USER, USER, "cart_item"},
    {"POST", "/checkout", api_checkout, "checkout", RL_KEY_USER, USER, "checkout"},
    {"GET", "/orders", api_orders, "api", RL_KEY_USER, USER, "orders"},
    /* Account, one order, admin orders */
    {"GET", "/account", api_account, "api", RL_KEY_USER, USER, "account"},
    {"POST", "/account/password", api_account_password, "login", RL_KEY_USER, USER, "account_password"},
    {"POST", "/account/logout-all", api_account_logout_all, "api", RL_KEY_USER, USER, "account_logout_all"},
    {"GET", "/orders/*", api_order_get, "api", RL_KEY_USER, USER, "order"},
    {"GET", "/admin/orders", api_admin_orders, "api", RL_KEY_USER, ADMIN, "admin_orders"},
    {"POST", "/admin/orders/*/retry", api_admin_order_retry, "api", RL_KEY_USER, ADMIN, "admin_order_retry"},
    {"GET", "/healthz", api_healthz, NULL, RL_KEY_NONE, ROUTE_NO_LOG, "healthz"},
    {"HEAD", "/healthz", api_healthz, NULL, RL_KEY_NONE, ROUTE_NO_LOG, "healthz"},
    {"GET", "/metrics", api_metrics, NULL, RL_KEY_NONE, ROUTE_NO_LOG, "metrics"},
    /* Browser */
    {"GET", "/", pages_home, "page", RL_KEY_ADDRESS, PAGE, "home"},
    {"GET", "/browser/register", pages_register_form, "page", RL_KEY_ADDRESS, PAGE, "page_register"},
    {"POST", "/browser/register", pages_register, "register", RL_KEY_ADDRESS, PAGE | CSRF, "page_register"},
    {"GET", "/browser/login", pages_login_form, "page", RL_KEY_ADDRESS, PAGE, "page_login"},
    {"POST", "/browser/login", pages_login, "login", RL_KEY_LOGIN, PAGE | CSRF, "page_login"},
    {"GET", "/browser/logout", pages_logout_form, "page", RL_KEY_ADDRESS, PAGE, "page_logout"},
    {"POST", "/browser/logout", pages_logout, "page", RL_KEY_ADDRESS, PAGE | CSRF, "page_logout"},
    {"GET", "/browser/inventory", pages_inventory, "page", RL_KEY_ADDRESS, PAGE | CATALOG, "page_inventory"},
    {"GET", "/browser/products", pages_inventory, "page", RL_KEY_ADDRESS, PAGE | CATALOG, "page_inventory"},
    {"GET", "/browser/cart", pages_cart, "page", RL_KEY_USER, PAGE | USER, "page_cart"},
    {"POST", "/browser/cart/add", pages_cart_add, "cart", RL_KEY_USER, PAGE | USER | CSRF, "page_cart_add"},
    {"POST", "/browser/cart/update", pages_cart_update, "cart", RL_KEY_USER, PAGE | USER | CSRF,
     "page_cart_update"},
    {"POST", "/browser/cart/remove", pages_cart_remove, "cart", RL_KEY_USER, PAGE | USER | CSRF,
     "page_cart_remove"},
    {"GET", "/browser/checkout", pages_confirmation, "page", RL_KEY_USER, PAGE | USER, "page_checkout"},
    {"POST", "/browser/checkout", pages_checkout, "checkout", RL_KEY_USER, PAGE | USER | CSRF,
     "page_checkout"},
    {"GET", "/browser/orders", pages_orders, "page", RL_KEY_USER, PAGE | USER, "page_orders"},
    /* Browser: account and one order */
    {"GET", "/browser/account", pages_account, "page", RL_KEY_USER, PAGE | USER, "page_account"},
    {"POST", "/browser/account/password", pages_account_password, "login", RL_KEY_USER, PAGE | USER | CSRF,
     "page_account_password"},
    {"POST", "/browser/account/logout-all", pages_account_logout_all, "page", RL_KEY_USER, PAGE | USER | CSRF,
     "page_account_logout_all"},
    {"GET", "/browser/orders/*", pages_order, "page", RL_KEY_USER, PAGE | USER, "page_order"},
    /* Browser: catalog and orders admin */
    {"GET", "/browser/admin", pages_admin_home, "page", RL_KEY_USER, PAGE | ADMIN, "page_admin"},
    {"GET", "/browser/admin/products", pages_admin_products, "page", RL_KEY_USER, PAGE | ADMIN,
     "page_admin_products"},
    {"POST", "/browser/admin/products", pages_admin_product_create, "page", RL_KEY_USER, PAGE | ADMIN | CSRF,
     "page_admin_products"},
    {"GET", "/browser/admin/products/#", pages_admin_product, "page", RL_KEY_USER, PAGE | ADMIN,
     "page_admin_product"},
    {"POST", "/browser/admin/products/#", pages_admin_product_update, "page", RL_KEY_USER,
     PAGE | ADMIN | CSRF, "page_admin_product"},
    {"POST", "/browser/admin/products/#/stock", pages_admin_product_stock, "page", RL_KEY_USER,
     PAGE | ADMIN | CSRF, "page_admin_product_stock"},
    {"POST", "/browser/admin/products/#/delete", pages_admin_product_delete, "page", RL_KEY_USER,
     PAGE | ADMIN | CSRF, "page_admin_product_delete"},
    {"POST", "/browser/admin/products/#/image", pages_admin_product_image, "page", RL_KEY_USER,
     PAGE | ADMIN | CSRF | ROUTE_UPLOAD, "page_admin_product_image"},
    {"GET", "/browser/admin/orders", pages_admin_orders, "page", RL_KEY_USER, PAGE | ADMIN,
     "page_admin_orders"},
    {"POST", "/browser/admin/orders/*/retry", pages_admin_order_retry, "page", RL_KEY_USER,
     PAGE | ADMIN | CSRF, "page_admin_order_retry"},
    {"GET", "/uploads/", pages_upload, NULL, RL_KEY_NONE, ROUTE_PAGE | ROUTE_PREFIX, "uploads"},
    {"HEAD", "/uploads/", pages_upload, NULL, RL_KEY_NONE, ROUTE_PAGE | ROUTE_PREFIX, "uploads"},
    /* Catalog pages */
    {"GET", "/browser/products/#", pages_product, "page", RL_KEY_ADDRESS, PAGE, "page_product"},
    {"GET", "/browser/checkout/review", pages_checkout_review, "page", RL_KEY_USER, PAGE | USER,
     "page_checkout_review"},
    {"GET", "/static/", pages_static, NULL, RL_KEY_NONE, ROUTE_PAGE | ROUTE_PREFIX, "static"},
    {"HEAD", "/static/", pages_static, NULL, RL_KEY_NONE, ROUTE_PAGE | ROUTE_PREFIX, "static"},
};

/* Matches pattern against path; '#' matches one positive decimal integer segment,
 * '*' one segment of letters, digits and '-' (an order's UUID), copied to text. */
static bool match(const struct route *rt, const char *path, int64_t *param, char *text, size_t textlen)
{
    if (rt->flags & ROUTE_PREFIX)
        return strncmp(path, rt->pattern, strlen(rt->pattern)) == 0;
    const char *p = rt->pattern, *s = path;
    while (*p && *s) {
        if (*p == '#') {
            if (!isdigit((unsigned char)*s) || *s == '0')
                return false;
            int64_t v = 0;
            int digits = 0;
            while (isdigit((unsigned char)*s)) {
                if (++digits > 15)
                    return false;
                v = v * 10 + (*s++ - '0');
            }
            *param = v;
            p++;
            continue;
        }
        if (*p == '*') {
            size_t n = 0;
            while (isalnum((unsigned char)s[n]) || s[n] == '-')
                if (++n >= textlen || n > ROUTE_MAX_TEXT)
                    return false;
            if (n == 0)
                return false;
            memcpy(text, s, n);
            text[n] = '\0';
            s += n;
            p++;
            continue;
        }
        if (*p != *s)
            return false;
        p++, s++;
    }
    /* A trailing slash is tolerated: /products/ is /products. */
    if (*s == '/' && s[1] == '\0' && *p == '\0')
        return true;
    return *p == '\0' && *s == '\0';
}

static enum route_match match_method(const char *method, const char *path, const struct route **out,
                                     int64_t *param, char *text, size_t textlen, char *allow,
                                     size_t allowlen);

enum route_match router_match(const char *method, const char *path, const struct route **out, int64_t *param,
                              char *text, size_t textlen, char *allow, size_t allowlen)
{
    enum route_match m = match_method(method, path, out, param, text, textlen, allow, allowlen);
    /* HEAD is GET without the body (evhttp leaves the body out of HEAD answers). */
    if (m == ROUTE_WRONG_METHOD && strcmp(method, "HEAD") == 0 && strstr(allow, "GET"))
        m = match_method("GET", path, out, param, text, textlen, allow, allowlen);
    return m;
}

static enum route_match match_method(const char *method, const char *path, const struct route **out,
                                     int64_t *param, char *text, size_t textlen, char *allow, size_t allowlen)
{
    bool path_known = false;
    allow[0] = '\0';
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int64_t v = 0;
        if (!match(&routes[i], path, &v, text, textlen))
            continue;
        if (strcmp(routes[i].method, method) == 0) {
            *out = &routes[i];
            *param = v;
            return ROUTE_FOUND;
        }
        if (!strstr(allow, routes[i].method)) {
            size_t n = strlen(allow);
            snprintf(allow + n, allowlen - n, "%s%s", n ? ", " : "", routes[i].method);
        }
        path_known = true;
    }
    return path_known ? ROUTE_WRONG_METHOD : ROUTE_NOT_FOUND;
}

const struct route *router_routes(size_t *count)
{
    *count = sizeof(routes) / sizeof(routes[0]);
    return routes;
}

bool router_path_is_page(const char *path)
{
    return strcmp(path, "/") == 0 || strncmp(path, "/browser/", 9) == 0 || strcmp(path, "/browser") == 0 ||
           strncmp(path, "/static/", 8) == 0 || strncmp(path, "/uploads/", 9) == 0;
}
