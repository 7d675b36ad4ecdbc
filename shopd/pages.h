/* pages: the browser side of the shop: HTML pages rendered from the Mustache
 * templates in TEMPLATES_DIR, plain HTML forms, and static files. */
#ifndef SHOPD_PAGES_H
#define SHOPD_PAGES_H

#include <stddef.h>

struct request;
struct shopd_settings;

/* Loads the templates of TEMPLATES_DIR for this process. Returns 0, or -1 with a reason. */
int pages_init(const struct shopd_settings *settings, char *err, size_t errlen);
/* Frees what pages_init loaded. */
void pages_cleanup(void);

/* Answers with the HTML error page for status (404, 405, 429, 500, ...). */
void pages_error(struct request *r, int status, const char *message);
/* Serves a file under STATIC_DIR for GET /static/<path>. */
void pages_static(struct request *r);

#endif
