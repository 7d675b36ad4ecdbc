/* pages: the browser side of the shop: HTML pages rendered from the Mustache
 * templates in TEMPLATES_DIR, plain HTML forms (POST, then a 303 redirect to a
 * page that shows the outcome as a flash message), and static files.
 *
 * The handlers are thin: they read the form, call the same domain modules as
 * the JSON API (accounts, catalog, cart, checkout) and render the answer. The
 * worker has already checked the route's requirements (a logged-in user, the
 * form's CSRF token, the rate limit) before a handler runs. */
#ifndef SHOPD_PAGES_H
#define SHOPD_PAGES_H

#include <stdbool.h>
#include <stddef.h>

struct request;
struct shopd_settings;

/* Resolves STATIC_DIR and loads the templates of TEMPLATES_DIR for this
 * process. Returns 0, or -1 with a reason. */
int pages_init(const struct shopd_settings *settings, char *err, size_t errlen);
/* Frees what pages_init loaded. */
void pages_cleanup(void);

/* Answers with the HTML error page for status (403, 404, 405, 429, 500, ...). */
void pages_error(struct request *r, int status, const char *message);
/* Starts a session for a form page (its CSRF token lives there); on failure
 * answers 500 and returns false. */
bool pages_ensure_session(struct request *r);
/* Serves a file under STATIC_DIR for GET /static/<path>. */
void pages_static(struct request *r);

/* Serves an uploaded product image for GET /uploads/<name> from UPLOADS_DIR. */
void pages_upload(struct request *r);

/* GET /: the welcome page that explains the flow and links every page. */
void pages_home(struct request *r);

/* Accounts (pages_account.c). */
void pages_register_form(struct request *r); /* GET /browser/register */
void pages_register(struct request *r);      /* POST /browser/register: email, password */
void pages_login_form(struct request *r);    /* GET /browser/login */
void pages_login(struct request *r);         /* POST /browser/login: email, password */
void pages_logout_form(struct request *r);   /* GET /browser/logout: a button that POSTs */
void pages_logout(struct request *r);        /* POST /browser/logout */
/* GET /browser/account; POST .../password (current_password, new_password); POST .../logout-all. */
void pages_account(struct request *r);
void pages_account_password(struct request *r);
void pages_account_logout_all(struct request *r);

/* Shopping (pages_shop.c; the orders in pages_orders.c). */
void pages_inventory(struct request *r);    /* GET /browser/inventory and /browser/products */
void pages_cart(struct request *r);         /* GET /browser/cart */
void pages_cart_add(struct request *r);     /* POST /browser/cart/add: product_id, quantity */
void pages_cart_update(struct request *r);  /* POST /browser/cart/update: product_id, quantity (0 removes) */
void pages_cart_remove(struct request *r);  /* POST /browser/cart/remove: product_id */
void pages_checkout(struct request *r);     /* POST /browser/checkout: checkout_token */
void pages_confirmation(struct request *r); /* GET /browser/checkout?order=<id>: the order just placed */
void pages_orders(struct request *r);       /* GET /browser/orders */
void pages_order(struct request *r);        /* GET /browser/orders/<id> */

/* Admin (pages_admin.c): ADMIN_EMAILS accounts only, checked by the router.
 * Product forms: name, description, price (dollars), stock; the image form is
 * multipart/form-data with the file in "image". */
void pages_admin_home(struct request *r);           /* GET /browser/admin/: to the product list */
void pages_admin_products(struct request *r);       /* GET /browser/admin/products */
void pages_admin_product_create(struct request *r); /* POST /browser/admin/products */
void pages_admin_product(struct request *r);        /* GET /browser/admin/products/<id>: the edit form */
void pages_admin_product_update(struct request *r); /* POST /browser/admin/products/<id> */
void pages_admin_product_stock(struct request *r);  /* POST /browser/admin/products/<id>/stock: stock */
void pages_admin_product_delete(struct request *r); /* POST /browser/admin/products/<id>/delete */
void pages_admin_product_image(struct request *r);  /* POST /browser/admin/products/<id>/image */
void pages_admin_orders(struct request *r);         /* GET /browser/admin/orders */
void pages_admin_order_retry(struct request *r);    /* POST /browser/admin/orders/<id>/retry */

/* Adds the display fields (money, times, status label) that the order templates
 * read to an order object of shopd/orders.h; shared by the page files. */
#include <jansson.h>
void pages_decorate_order(json_t *order);

#endif
