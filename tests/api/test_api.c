/* The JSON API over real HTTP against a real shopd (in-memory database, free
 * port): the Flask app's test cases, ported, and every status the API promises. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "tests/support/harness.h"
#include "tests/support/shop.h"
#include "tests/support/shop_client.h"

static struct shop_server *srv;
static struct http_client *client;

static void start(void)
{
    srv = shop_start(NULL);
    client = http_client_new();
}

static void stop(void)
{
    http_client_free(client);
    shop_stop(srv);
}

TestSuite(api, .init = start, .fini = stop, .timeout = 60);

static void expect_status(const char *method, const char *path, const char *body, long status,
                          const char *msg)
{
    struct http_resp *r = shop_send_json(srv, client, method, path, body);
    cr_expect_eq(r->status, status, "%s %s %s: got %ld %s", method, path, body ? body : "", r->status,
                 r->body);
    if (msg) {
        const char *m = shop_message(r);
        cr_expect(m && strstr(m, msg), "%s %s: message '%s' should contain '%s'", method, path,
                  m ? m : "(none)", msg);
    }
    http_resp_free(r);
}

/* --- ported from the Flask app's tests ------------------------------------ */

Test(api, register_user)
{
    expect_status("POST", "/register", "{\"email\":\"test@example.com\",\"password\":\"password123\"}", 201,
                  "registered");
}

Test(api, register_duplicate_user)
{
    const char *body = "{\"email\":\"dup@example.com\",\"password\":\"password123\"}";
    expect_status("POST", "/register", body, 201, NULL);
    expect_status("POST", "/register", body, 409, "already");
    /* Emails compare case-insensitively. */
    expect_status("POST", "/register", "{\"email\":\"DUP@example.com\",\"password\":\"password123\"}", 409,
                  NULL);
}

Test(api, login_user)
{
    shop_register_login(srv, client, "login@example.com", "password123");
    char *cookie = http_client_cookie(client, "session");
    cr_assert_not_null(cookie);
    cr_expect_eq(strlen(cookie), 64);
    free(cookie);
}

Test(api, login_invalid_credentials)
{
    expect_status("POST", "/register", "{\"email\":\"who@example.com\",\"password\":\"password123\"}", 201,
                  NULL);
    struct http_resp *wrong = shop_send_json(srv, client, "POST", "/login",
                                             "{\"email\":\"who@example.com\",\"password\":\"nope12345\"}");
    struct http_resp *unknown = shop_send_json(
        srv, client, "POST", "/login", "{\"email\":\"nobody@example.com\",\"password\":\"password123\"}");
    cr_expect_eq(wrong->status, 401);
    cr_expect_eq(unknown->status, 401);
    /* The same answer for an unknown email and a wrong password. */
    cr_expect_str_eq(wrong->body, unknown->body);
    cr_expect_str_eq(shop_message(wrong), "Invalid credentials");
    cr_expect_null(http_resp_header(wrong, "Set-Cookie"));
    http_resp_free(wrong);
    http_resp_free(unknown);
}

Test(api, get_products)
{
    struct http_resp *r = shop_get(srv, client, "/products");
    cr_assert_eq(r->status, 200);
    cr_assert(json_is_array(r->json));
    cr_assert_gt(json_array_size(r->json), 0, "the default inventory is seeded");
    json_t *p = json_array_get(r->json, 0);
    const char *fields[] = {"id", "name", "description", "price", "price_cents", "stock", "image_url"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        cr_expect_not_null(json_object_get(p, fields[i]), "product has %s", fields[i]);
    cr_expect(json_is_integer(json_object_get(p, "price_cents")));
    cr_expect(json_is_number(json_object_get(p, "price")));
    double price = json_number_value(json_object_get(p, "price"));
    cr_expect_eq((long)(price * 100 + 0.5), (long)json_integer_value(json_object_get(p, "price_cents")));
    http_resp_free(r);
}

Test(api, add_view_remove_cart)
{
    shop_register_login(srv, client, "cart@example.com", "password123");
    expect_status("POST", "/cart/items", "{\"product_id\":1,\"quantity\":2}", 201, NULL);
    expect_status("POST", "/cart/items", "{\"product_id\":2}", 201, NULL);
    /* Adding again adds to the existing line. */
    expect_status("POST", "/cart/items", "{\"product_id\":1,\"quantity\":1}", 201, NULL);
    struct http_resp *r = shop_get(srv, client, "/cart");
    cr_assert_eq(r->status, 200);
    json_t *items = json_object_get(r->json, "items");
    cr_assert_eq(json_array_size(items), 2);
    json_t *first = json_array_get(items, 0);
    cr_expect_eq(json_integer_value(json_object_get(first, "product_id")), 1);
    cr_expect_eq(json_integer_value(json_object_get(first, "quantity")), 3);
    int64_t price1 = json_integer_value(json_object_get(first, "price_cents"));
    cr_expect_eq(json_integer_value(json_object_get(first, "line_total_cents")), 3 * price1);
    int64_t price2 = json_integer_value(json_object_get(json_array_get(items, 1), "price_cents"));
    cr_expect_eq(json_integer_value(json_object_get(r->json, "total_cents")), 3 * price1 + price2);
    http_resp_free(r);

    expect_status("PUT", "/cart/items/1", "{\"quantity\":5}", 200, NULL);
    expect_status("PUT", "/cart/items/2", "{\"quantity\":0}", 200, "Removed");
    expect_status("DELETE", "/cart/items/1", NULL, 200, NULL);
    expect_status("DELETE", "/cart/items/1", NULL, 404, NULL);
    r = shop_get(srv, client, "/cart");
    cr_expect_eq(json_array_size(json_object_get(r->json, "items")), 0);
    cr_expect_eq(json_integer_value(json_object_get(r->json, "total_cents")), 0);
    http_resp_free(r);
}

Test(api, checkout_creates_order_and_empties_cart)
{
    shop_register_login(srv, client, "buyer@example.com", "password123");
    struct http_resp *before = shop_get(srv, client, "/products/3");
    int64_t stock = json_integer_value(json_object_get(before->json, "stock"));
    int64_t price = json_integer_value(json_object_get(before->json, "price_cents"));
    http_resp_free(before);
    expect_status("POST", "/cart/items", "{\"product_id\":3,\"quantity\":4}", 201, NULL);
    struct http_resp *r = shop_send_json(srv, client, "POST", "/checkout", NULL);
    cr_assert_eq(r->status, 201, "%s", r->body);
    const char *order_id = json_string_value(json_object_get(r->json, "order_id"));
    cr_assert_not_null(order_id);
    cr_expect_eq(strlen(order_id), 36);
    cr_expect_eq(json_integer_value(json_object_get(r->json, "total_cents")), 4 * price);
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "status")), "pending");
    char id[40];
    snprintf(id, sizeof(id), "%s", order_id);
    http_resp_free(r);

    struct http_resp *after = shop_get(srv, client, "/products/3");
    cr_expect_eq(json_integer_value(json_object_get(after->json, "stock")), stock - 4);
    http_resp_free(after);
    struct http_resp *cart = shop_get(srv, client, "/cart");
    cr_expect_eq(json_array_size(json_object_get(cart->json, "items")), 0);
    http_resp_free(cart);

    struct http_resp *orders = shop_get(srv, client, "/orders");
    cr_assert_eq(orders->status, 200);
    cr_assert_eq(json_array_size(orders->json), 1);
    json_t *o = json_array_get(orders->json, 0);
    cr_expect_str_eq(json_string_value(json_object_get(o, "order_id")), id);
    cr_expect_str_eq(json_string_value(json_object_get(o, "status")), "pending");
    json_t *line = json_array_get(json_object_get(o, "items"), 0);
    cr_expect_eq(json_integer_value(json_object_get(line, "quantity")), 4);
    cr_expect_eq(json_integer_value(json_object_get(line, "unit_price_cents")), price);
    http_resp_free(orders);
}

Test(api, logout_ends_session_server_side)
{
    shop_register_login(srv, client, "bye@example.com", "password123");
    char *token = http_client_cookie(client, "session");
    cr_assert_not_null(token);
    expect_status("POST", "/logout", NULL, 200, NULL);
    expect_status("GET", "/cart", NULL, 401, NULL);
    /* Replaying the old cookie does not bring the session back. */
    struct http_client *other = http_client_new();
    char header[128];
    snprintf(header, sizeof(header), "Cookie: session=%s", token);
    const char *headers[] = {header, NULL};
    struct http_resp *r = http_request(other, "GET", shop_url(srv, "/cart"), NULL, NULL, headers);
    cr_expect_eq(r->status, 401);
    http_resp_free(r);
    http_client_free(other);
    free(token);
}

/* --- statuses and bad input ------------------------------------------------ */

Test(api, register_rejects_bad_input)
{
    expect_status("POST", "/register", "{\"email\":\"x@example.com\"}", 400, "required");
    expect_status("POST", "/register", "{\"password\":\"password123\"}", 400, "required");
    expect_status("POST", "/register", "{\"email\":\"not-an-email\",\"password\":\"password123\"}", 400,
                  "email");
    expect_status("POST", "/register", "{\"email\":\"a@example.com\",\"password\":\"short\"}", 400,
                  "at least");
    expect_status("POST", "/register", "{\"email\":42,\"password\":\"password123\"}", 400, "string");
    expect_status("POST", "/register", "[1,2]", 400, "object");
    expect_status("POST", "/register", "{\"email\":", 400, "Malformed");
    expect_status("POST", "/register", "", 400, NULL);
    struct http_resp *r = http_request(client, "POST", shop_url(srv, "/register"), "text/plain",
                                       "{\"email\":\"a@example.com\",\"password\":\"password123\"}", NULL);
    cr_expect_eq(r->status, 415);
    http_resp_free(r);
}

Test(api, unknown_route_and_wrong_method)
{
    expect_status("GET", "/nope", NULL, 404, "Not found");
    struct http_resp *r = shop_send_json(srv, client, "PATCH", "/products", "{}");
    cr_expect_eq(r->status, 405);
    const char *allow = http_resp_header(r, "Allow");
    cr_expect(allow && strstr(allow, "GET") && strstr(allow, "POST"), "Allow: %s", allow ? allow : "(none)");
    http_resp_free(r);
    expect_status("GET", "/products/0", NULL, 404, NULL);
    expect_status("GET", "/products/abc", NULL, 404, NULL);
    expect_status("GET", "/products/99999", NULL, 404, "not found");
}

Test(api, body_over_limit_is_413)
{
    size_t n = 2 * 1024 * 1024;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[0] = '"';
    big[n - 1] = '"';
    big[n] = '\0';
    struct http_resp *r = shop_send_json(srv, client, "POST", "/register", big);
    cr_expect_eq(r->status, 413, "got %ld", r->status);
    http_resp_free(r);
    free(big);
    /* The server is still fine afterwards. */
    expect_status("GET", "/healthz", NULL, 200, NULL);
}

Test(api, cart_requires_login_and_valid_input)
{
    expect_status("GET", "/cart", NULL, 401, "Login");
    expect_status("POST", "/cart/items", "{\"product_id\":1}", 401, NULL);
    expect_status("POST", "/checkout", NULL, 401, NULL);
    expect_status("GET", "/orders", NULL, 401, NULL);
    shop_register_login(srv, client, "badcart@example.com", "password123");
    expect_status("POST", "/cart/items", "{\"product_id\":99999,\"quantity\":1}", 404, "not found");
    expect_status("POST", "/cart/items", "{\"product_id\":1,\"quantity\":0}", 400, "positive");
    expect_status("POST", "/cart/items", "{\"product_id\":1,\"quantity\":-3}", 400, "positive");
    expect_status("POST", "/cart/items", "{\"product_id\":1,\"quantity\":1.5}", 400, "integer");
    expect_status("POST", "/cart/items", "{\"product_id\":1,\"quantity\":\"2\"}", 400, "integer");
    expect_status("POST", "/cart/items", "{\"product_id\":\"1\"}", 400, "integer");
    expect_status("POST", "/cart/items", "{\"quantity\":1}", 400, "required");
    expect_status("POST", "/cart/items", "{\"product_id\":1,\"quantity\":100000000}", 400, NULL);
    expect_status("POST", "/cart/items", "{\"product_id\":1,\"quantity\":100000}", 409, "stock");
    expect_status("PUT", "/cart/items/1", "{\"quantity\":1}", 404, "not in cart");
    expect_status("PUT", "/cart/items/1", "{\"quantity\":-1}", 400, NULL);
    expect_status("POST", "/checkout", NULL, 409, "empty");
}

Test(api, products_admin_only_and_validated)
{
    const char *product = "{\"name\":\"Kiwi\",\"price\":1.25,\"stock\":10,\"description\":\"green\"}";
    expect_status("POST", "/products", product, 401, NULL);
    shop_register_login(srv, client, "user@example.com", "password123");
    expect_status("POST", "/products", product, 403, "Admin");
    expect_status("PUT", "/products/1", "{\"stock\":5}", 403, NULL);
    expect_status("DELETE", "/products/1", NULL, 403, NULL);

    struct http_client *admin_client = http_client_new();
    struct http_client *user_client = client;
    client = admin_client;
    shop_register_login(srv, client, "admin@example.com", "password123");
    struct http_resp *r = shop_send_json(srv, client, "POST", "/products", product);
    cr_assert_eq(r->status, 201, "%s", r->body);
    int64_t id = json_integer_value(json_object_get(r->json, "id"));
    cr_expect_eq(json_integer_value(json_object_get(r->json, "price_cents")), 125);
    http_resp_free(r);

    expect_status("POST", "/products", "{\"price\":1,\"stock\":1}", 400, "name");
    expect_status("POST", "/products", "{\"name\":\"  \",\"price\":1,\"stock\":1}", 400, "empty");
    expect_status("POST", "/products", "{\"name\":\"X\",\"price\":-1,\"stock\":1}", 400, "price");
    expect_status("POST", "/products", "{\"name\":\"X\",\"price\":\"1\",\"stock\":1}", 400, "price");
    expect_status("POST", "/products", "{\"name\":\"X\",\"price\":1.234,\"stock\":1}", 400, "decimals");
    expect_status("POST", "/products", "{\"name\":\"X\",\"price\":1,\"stock\":-2}", 400, "stock");
    expect_status("POST", "/products", "{\"name\":\"X\",\"price\":1,\"stock\":2.5}", 400, "stock");
    expect_status("POST", "/products", "{\"name\":\"X\",\"price\":1}", 400, "stock");
    expect_status("POST", "/products",
                  "{\"name\":\"X\",\"price\":1,\"stock\":1,\"image_url\":\"javascript:x\"}", 400,
                  "image_url");

    char path[64];
    snprintf(path, sizeof(path), "/products/%lld", (long long)id);
    expect_status("PUT", path, "{\"stock\":7,\"price_cents\":199}", 200, NULL);
    r = shop_get(srv, client, path);
    cr_expect_eq(json_integer_value(json_object_get(r->json, "stock")), 7);
    cr_expect_eq(json_integer_value(json_object_get(r->json, "price_cents")), 199);
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "name")), "Kiwi");
    http_resp_free(r);
    expect_status("PUT", path, "{}", 400, "nothing");
    expect_status("PUT", "/products/99999", "{\"stock\":1}", 404, NULL);
    expect_status("DELETE", path, NULL, 200, NULL);
    expect_status("DELETE", path, NULL, 404, NULL);
    expect_status("GET", path, NULL, 404, NULL);
    client = user_client;
    http_client_free(admin_client);
}

Test(api, state_changes_refuse_form_content_types)
{
    shop_register_login(srv, client, "csrf@example.com", "password123");
    expect_status("POST", "/cart/items", "{\"product_id\":1,\"quantity\":1}", 201, NULL);
    /* What a cross-site HTML form could send: refused before anything changes. */
    const char *types[] = {"application/x-www-form-urlencoded", "text/plain",
                           "multipart/form-data; boundary=x"};
    for (size_t i = 0; i < 3; i++) {
        struct http_resp *r = http_request(client, "POST", shop_url(srv, "/checkout"), types[i], "a=1", NULL);
        cr_expect_eq(r->status, 415, "%s: %ld", types[i], r->status);
        http_resp_free(r);
        r = http_request(client, "POST", shop_url(srv, "/logout"), types[i], "a=1", NULL);
        cr_expect_eq(r->status, 415, "%s: %ld", types[i], r->status);
        http_resp_free(r);
    }
    struct http_resp *r = shop_get(srv, client, "/cart");
    cr_expect_eq(json_array_size(json_object_get(r->json, "items")), 1, "the cart is untouched");
    http_resp_free(r);
    /* A bodiless POST (curl -X POST) still works. */
    expect_status("POST", "/checkout", NULL, 201, NULL);
}

Test(api, checkout_is_idempotent_with_key)
{
    shop_register_login(srv, client, "idem@example.com", "password123");
    expect_status("POST", "/cart/items", "{\"product_id\":2,\"quantity\":1}", 201, NULL);
    const char *headers[] = {"Idempotency-Key: order-attempt-1", NULL};
    struct http_resp *a = http_request(client, "POST", shop_url(srv, "/checkout"), NULL, NULL, headers);
    cr_assert_eq(a->status, 201, "%s", a->body);
    /* The repeat finds an empty cart, but the key names the first order. */
    struct http_resp *b = http_request(client, "POST", shop_url(srv, "/checkout"), NULL, NULL, headers);
    cr_assert_eq(b->status, 201, "%s", b->body);
    cr_expect_str_eq(json_string_value(json_object_get(a->json, "order_id")),
                     json_string_value(json_object_get(b->json, "order_id")));
    http_resp_free(a);
    http_resp_free(b);
    struct http_resp *orders = shop_get(srv, client, "/orders");
    cr_expect_eq(json_array_size(orders->json), 1);
    http_resp_free(orders);
}

Test(api, stock_gone_keeps_cart)
{
    struct http_client *admin = http_client_new();
    struct http_client *mine = client;
    client = admin;
    shop_register_login(srv, admin, "admin@example.com", "password123");
    client = mine;
    shop_register_login(srv, client, "late@example.com", "password123");
    expect_status("POST", "/cart/items", "{\"product_id\":4,\"quantity\":3}", 201, NULL);
    /* Stock drops below the cart's quantity after it was added. */
    struct http_resp *r = http_json(admin, "PUT", shop_url(srv, "/products/4"), "{\"stock\":2}");
    cr_assert_eq(r->status, 200);
    http_resp_free(r);
    expect_status("POST", "/checkout", NULL, 409, "stock");
    r = shop_get(srv, client, "/cart");
    cr_expect_eq(json_array_size(json_object_get(r->json, "items")), 1, "the cart is kept");
    http_resp_free(r);
    r = shop_get(srv, client, "/products/4");
    cr_expect_eq(json_integer_value(json_object_get(r->json, "stock")), 2, "no stock was taken");
    http_resp_free(r);
    http_client_free(admin);
}

Test(api, carts_are_per_user)
{
    shop_register_login(srv, client, "alice@example.com", "password123");
    expect_status("POST", "/cart/items", "{\"product_id\":1,\"quantity\":1}", 201, NULL);
    struct http_client *bob = http_client_new();
    shop_register_login(srv, bob, "bob@example.com", "password123");
    /* Several requests, so that both workers serve Bob at least once. */
    for (int i = 0; i < 6; i++) {
        struct http_resp *r = http_request(bob, "GET", shop_url(srv, "/cart"), NULL, NULL, NULL);
        cr_assert_eq(r->status, 200, "request %d: %ld", i, r->status);
        cr_expect_eq(json_array_size(json_object_get(r->json, "items")), 0);
        http_resp_free(r);
    }
    http_client_free(bob);
}

Test(api, headers_and_healthz)
{
    struct http_resp *r = shop_get(srv, client, "/healthz");
    cr_expect_eq(r->status, 200);
    cr_expect_not_null(http_resp_header(r, "X-Request-Id"));
    cr_expect_str_eq(http_resp_header(r, "X-Content-Type-Options"), "nosniff");
    http_resp_free(r);
    /* HEAD is answered like GET, without a body. */
    r = http_request(client, "HEAD", shop_url(srv, "/products"), NULL, NULL, NULL);
    cr_expect_eq(r->status, 200);
    cr_expect_eq(r->len, 0);
    cr_expect_str_eq(http_resp_header(r, "Content-Type"), "application/json");
    http_resp_free(r);
    const char *headers[] = {"X-Request-Id: abc-123", NULL};
    r = http_request(client, "GET", shop_url(srv, "/products"), NULL, NULL, headers);
    cr_expect_str_eq(http_resp_header(r, "X-Request-Id"), "abc-123");
    http_resp_free(r);
}

Test(api, session_cookie_flags)
{
    expect_status("POST", "/register", "{\"email\":\"flags@example.com\",\"password\":\"password123\"}", 201,
                  NULL);
    struct http_resp *r = shop_send_json(srv, client, "POST", "/login",
                                         "{\"email\":\"flags@example.com\",\"password\":\"password123\"}");
    const char *cookie = http_resp_header(r, "Set-Cookie");
    cr_assert_not_null(cookie);
    cr_expect(strstr(cookie, "HttpOnly") != NULL);
    cr_expect(strstr(cookie, "SameSite=Lax") != NULL);
    cr_expect(strstr(cookie, "Path=/") != NULL);
    http_resp_free(r);
    /* A new token on every login. */
    char *first = http_client_cookie(client, "session");
    r = shop_send_json(srv, client, "POST", "/login",
                       "{\"email\":\"flags@example.com\",\"password\":\"password123\"}");
    http_resp_free(r);
    char *second = http_client_cookie(client, "session");
    cr_expect(first && second && strcmp(first, second) != 0);
    free(first);
    free(second);
}
