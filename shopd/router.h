/* router: the table of shopd's routes: method, path pattern, handler, the
 * rate-limit rule that budgets it, and what it requires (a user, an admin, a
 * CSRF token). The worker matches each request against it. */
#ifndef SHOPD_ROUTER_H
#define SHOPD_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct request;
typedef void (*route_handler)(struct request *r);

enum route_flags {
    ROUTE_PAGE = 1 << 0,       /* a browser route: errors are HTML pages */
    ROUTE_NEEDS_USER = 1 << 1, /* 401 (API) or a redirect to the login page (browser) without a session */
    ROUTE_NEEDS_ADMIN = 1 << 2,
    ROUTE_CSRF = 1 << 3,       /* a form POST: the form's csrf_token must match the session's */
    ROUTE_PREFIX = 1 << 4,     /* the pattern matches every path below it (static files) */
    ROUTE_NO_LOG = 1 << 5,     /* keep health checks out of the access log at info level */
    ROUTE_UPLOAD = 1 << 6,     /* takes a body up to UPLOAD_MAX_BYTES (and framing), not SHOPD_MAX_BODY */
};

/* The rate-limit rule that budgets a route, and what the budget is keyed by. */
enum rl_key { RL_KEY_NONE, RL_KEY_ADDRESS, RL_KEY_USER, RL_KEY_LOGIN };

struct route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/products/#": '#' is a positive integer, passed as r->param; '*' a
                            segment of letters, digits and '-', passed as r->param_text */
    route_handler handler;
    const char *rule;    /* ratelimitd rule name, NULL for none */
    enum rl_key rl_key;
    unsigned flags;
    const char *name;    /* for metrics: a stable label such as "products_item" */
};

enum route_match { ROUTE_FOUND, ROUTE_NOT_FOUND, ROUTE_WRONG_METHOD };

/* The longest '*' segment a route takes (a UUID is 36). */
#define ROUTE_MAX_TEXT 64

/* Finds the route for method and path; *param receives the numeric segment and
 * text (textlen > ROUTE_MAX_TEXT) the '*' segment.
 * On ROUTE_WRONG_METHOD, allow receives the methods the path takes ("GET, PUT"). */
enum route_match router_match(const char *method, const char *path, const struct route **out, int64_t *param,
                              char *text, size_t textlen, char *allow, size_t allowlen);
bool router_is_page(const struct route *route);
/* All routes (for metrics labels); *count receives their number. */
const struct route *router_routes(size_t *count);
/* True for paths that the browser pages own (/, /browser/..., /static/...), so
 * that 404 and 405 answers there are HTML too. */
bool router_path_is_page(const char *path);

#endif
