/* route: what one route of shopd is (method, pattern, handler, budget,
 * requirements), without the table of routes (router.h), so that the modules
 * below the handlers (request, render, metrics) can read a route's flags and
 * name without depending on the handlers the table names. */
#ifndef SHOPD_ROUTE_H
#define SHOPD_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

struct request;
typedef void (*route_handler)(struct request *r);

enum route_flags {
    ROUTE_PAGE = 1 << 0,       /* a browser route: errors are HTML pages */
    ROUTE_NEEDS_USER = 1 << 1, /* 401 (API) or a redirect to the login page (browser) without a session */
    ROUTE_NEEDS_ADMIN = 1 << 2,
    ROUTE_CSRF = 1 << 3,   /* a form POST: the form's csrf_token must match the session's */
    ROUTE_PREFIX = 1 << 4, /* the pattern matches every path below it (static files) */
    ROUTE_NO_LOG = 1 << 5, /* keep health checks out of the access log at info level */
    ROUTE_UPLOAD = 1 << 6, /* takes a body up to UPLOAD_MAX_BYTES (and framing), not SHOPD_MAX_BODY */
    /* Serves from catalog_cache: the pipeline gathers such requests and
       confirms the catalog's version once for each gathering (pipeline.c). */
    ROUTE_CATALOG_READ = 1 << 7,
};

/* The rate-limit rule that budgets a route, and what the budget is keyed by. */
enum rl_key { RL_KEY_NONE, RL_KEY_ADDRESS, RL_KEY_USER, RL_KEY_LOGIN };

struct route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/products/#": '#' is a positive integer, passed as r->param; '*' a
                            segment of letters, digits and '-', passed as r->param_text */
    route_handler handler;
    const char *rule; /* ratelimitd rule name, NULL for none */
    enum rl_key rl_key;
    unsigned flags;
    const char *name; /* for metrics: a stable label such as "products_item" */
};

/* True for a browser route: its errors are HTML pages. */
static inline bool route_is_page(const struct route *route)
{
    return route && (route->flags & ROUTE_PAGE);
}

#endif
