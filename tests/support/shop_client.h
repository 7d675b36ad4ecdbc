/* shop_client: the requests and checks the API suites make against a shopd
 * started with shop.h: GET, form POST and JSON requests by path, the JSON
 * error message, hidden form fields and CSRF tokens of a page, the server's
 * log, and the common expectations on a page (text present or absent, HTML,
 * a redirect after POST). Each request takes the client whose cookie jar it
 * uses, so a suite can act as several people at once. Expectations use
 * cr_expect (the test goes on and reports every miss); shop_csrf uses
 * cr_assert, since nothing can follow without the token. */
#ifndef TESTS_SUPPORT_SHOP_CLIENT_H
#define TESTS_SUPPORT_SHOP_CLIENT_H

#include <stdbool.h>

#include "harness.h"
#include "shop.h"

/* GET path. The caller frees the answer with http_resp_free. */
struct http_resp *shop_get(struct shop_server *s, struct http_client *c, const char *path);
/* POST path with an application/x-www-form-urlencoded body (already encoded). */
struct http_resp *shop_post_form(struct shop_server *s, struct http_client *c, const char *path,
                                 const char *body);
/* The same with extra "Name: value" header lines (NULL-terminated, may be NULL). */
struct http_resp *shop_post_form_headers(struct shop_server *s, struct http_client *c, const char *path,
                                         const char *body, const char *const headers[]);
/* method path with a JSON body (NULL: none; given, Content-Type: application/json). */
struct http_resp *shop_send_json(struct shop_server *s, struct http_client *c, const char *method,
                                 const char *path, const char *body);

/* The "message" of a JSON error answer, or NULL (owned by r). */
const char *shop_message(struct http_resp *r);
/* The value="..." of the first field called name in html, as written there
 * (not unescaped); NULL when html is NULL or has no such field. Caller frees. */
char *shop_field_value(const char *html, const char *name);
/* GETs path, asserts 200 and a 64-digit csrf_token on the page, and returns
 * that token (caller frees). */
char *shop_csrf(struct shop_server *s, struct http_client *c, const char *path);
/* True when a line of the file at path contains text (shopd's log: a crashed
 * worker is replaced, so the answers alone would not show it). */
bool shop_log_contains(const char *path, const char *text);

/* The body contains text / does not contain it. */
void shop_expect_contains(struct http_resp *r, const char *text);
void shop_expect_lacks(struct http_resp *r, const char *text);
/* Content-Type is text/html. */
void shop_expect_html(struct http_resp *r);
/* 303 with Location exactly location. */
void shop_expect_redirect(struct http_resp *r, const char *location);

#endif
