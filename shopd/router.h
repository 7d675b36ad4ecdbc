/* router: the table of shopd's routes: method, path pattern, handler, the
 * rate-limit rule that budgets it, and what it requires (a user, an admin, a
 * CSRF token). The pipeline matches each request against it. The type of a
 * route is in route.h. */
#ifndef SHOPD_ROUTER_H
#define SHOPD_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shopd/route.h"

enum route_match { ROUTE_FOUND, ROUTE_NOT_FOUND, ROUTE_WRONG_METHOD };

/* The longest '*' segment a route takes (a UUID is 36). */
#define ROUTE_MAX_TEXT 64

/* Finds the route for method and path; *param receives the numeric segment and
 * text (textlen > ROUTE_MAX_TEXT) the '*' segment.
 * On ROUTE_WRONG_METHOD, allow receives the methods the path takes ("GET, PUT"). */
enum route_match router_match(const char *method, const char *path, const struct route **out, int64_t *param,
                              char *text, size_t textlen, char *allow, size_t allowlen);
/* All routes (for metrics labels); *count receives their number. */
const struct route *router_routes(size_t *count);
/* True for paths that the browser pages own (/, /browser/..., /static/...), so
 * that 404 and 405 answers there are HTML too. */
bool router_path_is_page(const char *path);

#endif
