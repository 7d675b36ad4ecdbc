/* api: the JSON API handlers. Each parses and validates its input, calls the
 * domain module (accounts, catalog, cart, checkout) and renders the answer. */
#ifndef SHOPD_API_H
#define SHOPD_API_H

struct request;

void api_register(struct request *r);
void api_login(struct request *r);
void api_logout(struct request *r);
void api_products_list(struct request *r);
void api_product_get(struct request *r);
void api_product_create(struct request *r);
void api_product_update(struct request *r);
void api_product_delete(struct request *r);
void api_cart_get(struct request *r);
void api_cart_add(struct request *r);
void api_cart_set(struct request *r);
void api_cart_remove(struct request *r);
void api_checkout(struct request *r);
void api_orders(struct request *r);
/* Account and orders (shopper's own; admins see every order and may resend a failed one). */
void api_account(struct request *r);            /* GET /account */
void api_account_password(struct request *r);   /* POST /account/password {current_password, new_password} */
void api_account_logout_all(struct request *r); /* POST /account/logout-all */
void api_order_get(struct request *r);          /* GET /orders/<id> */
void api_admin_orders(struct request *r);       /* GET /admin/orders */
void api_admin_order_retry(struct request *r);  /* POST /admin/orders/<id>/retry */
void api_healthz(struct request *r);
/* Prometheus text for local clients (403 for others). */
void api_metrics(struct request *r);

/* Reads a positive integer field from a JSON object: false with a message otherwise. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
bool api_int_field(json_t *obj, const char *key, int64_t min, int64_t max, int64_t *out, char *msg,
                   size_t msglen);

#endif
