/* render: the frame every HTML page shares.
 *
 * A page is one Mustache template rendered against a JSON context and then
 * placed, as {{{body}}}, inside the "layout" template, whose partials draw the
 * header, the navigation (the logged-in user, the cart count, the logout
 * button) and the flash message. The template set is loaded once per worker
 * (a SIGHUP replaces the workers, so a reload reads the templates again). */
#ifndef SHOPD_RENDER_H
#define SHOPD_RENDER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct request;

/* Loads and compiles every *.mustache file of dir, replacing a previous set.
 * Returns 0, or -1 with a reason naming the file in err (the previous set is
 * kept then). */
int render_load(const char *dir, char *err, size_t errlen);
/* Frees the loaded set. */
void render_free(void);

/* Answers with template `name` inside the layout. ctx (taken; NULL for an
 * empty one) gets the frame's values added: title, csrf, user, is_admin,
 * cart_count, nav_<nav> (the highlighted navigation entry, may be NULL) and
 * the session's pending flash message unless ctx already holds a "flash"
 * object. Answers a plain 500 page when the template is missing or fails. */
void render_page(struct request *r, int status, const char *name, const char *title, const char *nav,
                 json_t *ctx);

/* Template `name` alone (no layout) rendered against ctx (borrowed): a new
 * string (caller frees) and *len its length, or NULL when the template is
 * missing or hits a limit. */
char *render_fragment(const char *name, const json_t *ctx, size_t *len);

/* Answers with the "error" template for status and message. Takes no flash
 * message (the user would miss it) and creates no session; the navigation
 * still shows a logged-in user. Works without templates (plain HTML). */
void render_error(struct request *r, int status, const char *message);

/* Stores a one-time message for the next page of this session (kind: success,
 * error or info), creating an anonymous session if needed. Failures are logged:
 * a lost flash message must not fail the request that produced it. */
void render_flash(struct request *r, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A {"kind", "message"} object for a message shown on the page being rendered
 * (a form answered with its errors) rather than on the next one. */
json_t *render_flash_now(const char *kind, const char *message);

/* cents as a display string such as "$12.50" (new JSON string). */
json_t *render_money(int64_t cents);

/* The image URL to show for a product: its own when it is local ("/..." but
 * not "//host"), else the placeholder, so that pages never load outside
 * resources (the Content-Security-Policy would block them anyway). */
const char *render_local_image(const char *image_url);

#endif
