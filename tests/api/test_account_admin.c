/* The account, one order, and the catalog and orders admin, over real HTTP
 * against a real shopd on a SQLite file: password changes end the other
 * sessions, "log out everywhere" ends all of them, an order is readable only
 * by its owner (404 alike for unknown ids), shoppers never read the stored
 * DynamoDB error, admins resend failed orders and manage the catalog in the
 * browser, and image uploads are accepted by their bytes only. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/services.h"
#include "tests/support/shop.h"
#include "tests/support/shop_client.h"
#include "tests/support/test_database.h"

#define PASSWORD "password123"
#define ADMIN "admin@example.com"
#define BOUNDARY "----shoptestboundary7MA4YWxk"
#define FAILED_NOTICE "We could not send your order yet; we are on it."
#define DYNAMO_TEXT "ValidationException: Item size has exceeded the maximum allowed size"

static struct shop_server *srv;

static void start_with(const char *const extra[])
{
    /* A file (not :memory:) so that park_as_failed reaches it; PostgreSQL gets shop_start's database. */
    const char *env[8];
    size_t n = 0;
    if (!test_database_is_postgres())
        env[n++] = "DATABASE_URL=sqlite:///shop.db";
    for (const char *const *e = extra; e && *e && n < 7; e++)
        env[n++] = *e;
    env[n] = NULL;
    srv = shop_start(env);
}

static void start(void)
{
    start_with(NULL);
}

static void stop(void)
{
    if (srv) {
        const char *bad[] = {"AddressSanitizer", "runtime error:", "killed by signal", "did not reply"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            cr_expect(!shop_log_contains(srv->log_path, bad[i]), "shopd's log reports '%s'", bad[i]);
    }
    shop_stop(srv);
    srv = NULL;
}

TestSuite(account_admin, .init = start, .fini = stop, .timeout = 90);

/* --- helpers -------------------------------------------------------------- */

static struct http_client *user(const char *email)
{
    struct http_client *c = http_client_new();
    shop_register_login(srv, c, email, PASSWORD);
    return c;
}

static void expect_status(struct http_resp *r, long status, const char *what)
{
    cr_expect_eq(r->status, status, "%s: %ld %s", what, r->status, r->body ? r->body : "");
}

static void expect_message(struct http_resp *r, const char *text)
{
    const char *m = shop_message(r);
    cr_expect(m && strstr(m, text), "message should contain '%s': %s", text, r->body ? r->body : "");
}

/* Puts product_id in the cart and checks out; returns the order id (caller frees). */
static char *place_order(struct http_client *c, int product_id, int quantity)
{
    char body[96];
    snprintf(body, sizeof(body), "{\"product_id\":%d,\"quantity\":%d}", product_id, quantity);
    struct http_resp *r = shop_send_json(srv, c, "POST", "/cart/items", body);
    cr_assert_eq(r->status, 201, "%s", r->body);
    http_resp_free(r);
    r = shop_send_json(srv, c, "POST", "/checkout", NULL);
    cr_assert_eq(r->status, 201, "%s", r->body);
    char *id = xstrdup(json_string_value(json_object_get(r->json, "order_id")));
    http_resp_free(r);
    return id;
}

/* What the dispatcher does when DynamoDB refuses an order for good: park it as
 * failed with DynamoDB's text (see shopd/outbox.c). The tests run shopd
 * without a dispatcher, so they write the same row state directly. */
static void park_as_failed(const char *order_id)
{
    const char *params[] = {order_id, DYNAMO_TEXT, NULL};
    long changed = test_database_exec(srv->database_url,
                                      "UPDATE orders SET status = 'failed', attempts = 1, last_error = $2"
                                      " WHERE id = $1",
                                      params);
    cr_assert_eq(changed, 1, "order %s: %ld rows", order_id, changed);
}

/* A multipart/form-data body with the CSRF token and one file part (caller frees). */
static char *upload_body(const char *csrf, const char *filename, const char *type, const char *data)
{
    return xasprintf("--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n%s\r\n"
                     "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"%s\"\r\n"
                     "Content-Type: %s\r\n\r\n%s\r\n--" BOUNDARY "--\r\n",
                     csrf, filename, type, data);
}

static struct http_resp *upload(struct http_client *c, int product_id, const char *body)
{
    char path[80];
    snprintf(path, sizeof(path), "/browser/admin/products/%d/image", product_id);
    return http_request(c, "POST", shop_url(srv, path), "multipart/form-data; boundary=" BOUNDARY, body,
                        NULL);
}

static char *product_image_url(struct http_client *c, int product_id)
{
    char path[64];
    snprintf(path, sizeof(path), "/products/%d", product_id);
    struct http_resp *r = shop_send_json(srv, c, "GET", path, NULL);
    cr_assert_eq(r->status, 200);
    char *url = xstrdup(json_string_value(json_object_get(r->json, "image_url")));
    http_resp_free(r);
    return url;
}

/* PNG magic and text after it: the content check reads the first bytes only. */
#define PNG_BYTES "\x89PNG\r\n\x1a\nIHDR-test-image-bytes"

/* --- account: JSON API ------------------------------------------------------ */

Test(account_admin, password_change_ends_other_sessions_and_keeps_this_one)
{
    struct http_client *here = user("ann@example.com");
    struct http_client *other = http_client_new();
    shop_register_login(srv, other, "ann@example.com", PASSWORD);

    struct http_resp *r = shop_send_json(srv, here, "GET", "/account", NULL);
    expect_status(r, 200, "GET /account");
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "email")), "ann@example.com");
    http_resp_free(r);

    r = shop_send_json(srv, here, "POST", "/account/password",
                       "{\"current_password\":\"" PASSWORD "\",\"new_password\":\"a much better one\"}");
    expect_status(r, 200, "password change");
    cr_expect_eq(json_integer_value(json_object_get(r->json, "sessions_ended")), 1);
    http_resp_free(r);

    r = shop_send_json(srv, other, "GET", "/account", NULL);
    expect_status(r, 401, "the old session cookie no longer works");
    http_resp_free(r);
    r = shop_send_json(srv, other, "GET", "/cart", NULL);
    expect_status(r, 401, "nor for the cart");
    http_resp_free(r);
    r = shop_send_json(srv, here, "GET", "/account", NULL);
    expect_status(r, 200, "the current session goes on");
    http_resp_free(r);

    struct http_client *fresh = http_client_new();
    r = shop_send_json(srv, fresh, "POST", "/login",
                       "{\"email\":\"ann@example.com\",\"password\":\"" PASSWORD "\"}");
    expect_status(r, 401, "the old password is gone");
    http_resp_free(r);
    r = shop_send_json(srv, fresh, "POST", "/login",
                       "{\"email\":\"ann@example.com\",\"password\":\"a much better one\"}");
    expect_status(r, 200, "the new password logs in");
    http_resp_free(r);
    cr_expect(shop_log_contains(srv->log_path, "changed the password"));
    http_client_free(fresh);
    http_client_free(other);
    http_client_free(here);
}

Test(account_admin, password_change_refuses_bad_input_with_a_message)
{
    struct http_client *c = user("bob@example.com");
    struct http_resp *r =
        shop_send_json(srv, c, "POST", "/account/password",
                       "{\"current_password\":\"not it at all\",\"new_password\":\"another password\"}");
    expect_status(r, 403, "wrong current password");
    expect_message(r, "Current password is wrong");
    http_resp_free(r);
    r = shop_send_json(srv, c, "POST", "/account/password",
                       "{\"current_password\":\"" PASSWORD "\",\"new_password\":\"short\"}");
    expect_status(r, 400, "too short");
    expect_message(r, "at least 8 characters");
    http_resp_free(r);
    r = shop_send_json(srv, c, "POST", "/account/password", "{\"current_password\":\"" PASSWORD "\"}");
    expect_status(r, 400, "missing field");
    expect_message(r, "new_password");
    http_resp_free(r);
    r = shop_send_json(srv, c, "POST", "/account/password", "{\"current_password\":1,\"new_password\":2}");
    expect_status(r, 400, "numbers");
    http_resp_free(r);
    r = shop_send_json(srv, c, "POST", "/account/password", "{not json");
    expect_status(r, 400, "malformed JSON");
    expect_message(r, "Malformed JSON");
    http_resp_free(r);
    r = http_request(c, "POST", shop_url(srv, "/account/password"), "application/x-www-form-urlencoded",
                     "current_password=" PASSWORD "&new_password=whatever123", NULL);
    expect_status(r, 415, "a form body");
    cr_expect_not_null(shop_message(r));
    http_resp_free(r);

    /* Nothing changed: the password still logs in, and the session is still there. */
    r = shop_send_json(srv, c, "GET", "/account", NULL);
    expect_status(r, 200, "still logged in");
    http_resp_free(r);
    struct http_client *fresh = http_client_new();
    r = shop_send_json(srv, fresh, "POST", "/login",
                       "{\"email\":\"bob@example.com\",\"password\":\"" PASSWORD "\"}");
    expect_status(r, 200, "the password is unchanged");
    http_resp_free(r);

    struct http_client *anon = http_client_new();
    r = shop_send_json(srv, anon, "POST", "/account/password",
                       "{\"current_password\":\"a\",\"new_password\":\"bbbbbbbbbb\"}");
    expect_status(r, 401, "anonymous");
    expect_message(r, "Login required");
    http_resp_free(r);
    r = shop_send_json(srv, anon, "GET", "/account", NULL);
    expect_status(r, 401, "anonymous account");
    http_resp_free(r);
    http_client_free(anon);
    http_client_free(fresh);
    http_client_free(c);
}

Test(account_admin, logout_everywhere_ends_every_session_including_this_one)
{
    struct http_client *a = user("cid@example.com");
    struct http_client *b = http_client_new();
    shop_register_login(srv, b, "cid@example.com", PASSWORD);
    struct http_client *someone = user("dee@example.com");
    struct http_resp *r = shop_send_json(srv, a, "POST", "/account/logout-all", NULL);
    expect_status(r, 200, "logout-all");
    cr_expect_eq(json_integer_value(json_object_get(r->json, "sessions_ended")), 2);
    http_resp_free(r);
    r = shop_send_json(srv, a, "GET", "/account", NULL);
    expect_status(r, 401, "this session ended too");
    http_resp_free(r);
    r = shop_send_json(srv, b, "GET", "/account", NULL);
    expect_status(r, 401, "the other session ended");
    http_resp_free(r);
    r = shop_send_json(srv, someone, "GET", "/account", NULL);
    expect_status(r, 200, "another user's session is untouched");
    http_resp_free(r);
    http_client_free(someone);
    http_client_free(b);
    http_client_free(a);
}

/* --- one order: JSON API ----------------------------------------------------- */

Test(account_admin, an_order_is_readable_by_its_owner_only)
{
    struct http_client *owner = user("eve@example.com");
    struct http_client *stranger = user("fay@example.com");
    char *id = place_order(owner, 1, 3);
    char path[96];
    snprintf(path, sizeof(path), "/orders/%s", id);

    struct http_resp *r = shop_send_json(srv, owner, "GET", path, NULL);
    expect_status(r, 200, "own order");
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "order_id")), id);
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "status")), "pending");
    cr_expect(json_is_null(json_object_get(r->json, "sent_at")), "not sent yet");
    json_t *items = json_object_get(r->json, "items");
    cr_expect_eq(json_array_size(items), 1);
    json_t *line = json_array_get(items, 0);
    int64_t unit = json_integer_value(json_object_get(line, "unit_price_cents"));
    cr_expect_eq(json_integer_value(json_object_get(line, "quantity")), 3);
    cr_expect_eq(json_integer_value(json_object_get(line, "line_total_cents")), 3 * unit);
    cr_expect_eq(json_integer_value(json_object_get(r->json, "total_cents")), 3 * unit);
    cr_expect(json_is_null(json_object_get(r->json, "error")), "error is null for shoppers");
    cr_expect_null(json_object_get(r->json, "user_email"));
    http_resp_free(r);

    /* Another user's order and an unknown one answer exactly alike. */
    r = shop_send_json(srv, stranger, "GET", path, NULL);
    expect_status(r, 404, "another user's order");
    char *theirs = xstrdup(r->body);
    http_resp_free(r);
    r = shop_send_json(srv, stranger, "GET", "/orders/00000000-0000-4000-8000-000000000000", NULL);
    expect_status(r, 404, "unknown order");
    cr_expect_str_eq(r->body, theirs);
    expect_message(r, "Order not found");
    http_resp_free(r);
    free(theirs);
    r = shop_send_json(srv, owner, "GET", "/orders/not-an-order", NULL);
    expect_status(r, 404, "malformed id");
    expect_message(r, "Order not found");
    http_resp_free(r);

    struct http_client *anon = http_client_new();
    r = shop_send_json(srv, anon, "GET", path, NULL);
    expect_status(r, 401, "anonymous");
    http_resp_free(r);

    /* The account lists it among the recent orders. */
    r = shop_send_json(srv, owner, "GET", "/account", NULL);
    json_t *recent = json_object_get(r->json, "recent_orders");
    cr_expect_eq(json_array_size(recent), 1);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(recent, 0), "order_id")), id);
    http_resp_free(r);
    http_client_free(anon);
    free(id);
    http_client_free(stranger);
    http_client_free(owner);
}

/* --- a failed dispatch: shoppers, admins, send again ------------------------- */

Test(account_admin, a_failed_order_shows_a_notice_to_the_shopper_and_the_error_to_admins)
{
    struct http_client *shopper = user("gus@example.com");
    char *id = place_order(shopper, 2, 1);
    park_as_failed(id);
    char path[96], page[112];
    snprintf(path, sizeof(path), "/orders/%s", id);
    snprintf(page, sizeof(page), "/browser/orders/%s", id);

    struct http_resp *r = shop_send_json(srv, shopper, "GET", path, NULL);
    expect_status(r, 200, "own failed order");
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "status")), "failed");
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "notice")), FAILED_NOTICE);
    cr_expect(json_is_null(json_object_get(r->json, "error")), "error is null for shoppers");
    shop_expect_lacks(r, "ValidationException");
    http_resp_free(r);
    r = shop_send_json(srv, shopper, "GET", "/orders", NULL);
    expect_status(r, 200, "order list");
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(r->json, 0), "notice")), FAILED_NOTICE);
    shop_expect_lacks(r, "ValidationException");
    http_resp_free(r);
    r = shop_send_json(srv, shopper, "GET", "/account", NULL);
    shop_expect_lacks(r, "ValidationException");
    http_resp_free(r);
    const char *pages[] = {page, "/browser/orders", "/browser/account"};
    for (size_t i = 0; i < 3; i++) {
        r = shop_get(srv, shopper, pages[i]);
        expect_status(r, 200, pages[i]);
        shop_expect_contains(r, FAILED_NOTICE);
        shop_expect_lacks(r, "ValidationException");
        http_resp_free(r);
    }

    struct http_client *admin = user(ADMIN);
    r = shop_send_json(srv, admin, "GET", "/admin/orders", NULL);
    expect_status(r, 200, "admin orders");
    json_t *o = json_array_get(r->json, 0);
    cr_expect_str_eq(json_string_value(json_object_get(o, "order_id")), id);
    cr_expect_str_eq(json_string_value(json_object_get(o, "error")), DYNAMO_TEXT);
    cr_expect_str_eq(json_string_value(json_object_get(o, "user_email")), "gus@example.com");
    http_resp_free(r);
    r = shop_get(srv, admin, "/browser/admin/orders");
    expect_status(r, 200, "admin orders page");
    shop_expect_contains(r, DYNAMO_TEXT);
    shop_expect_contains(r, "Send again");
    http_resp_free(r);
    free(id);
    http_client_free(admin);
    http_client_free(shopper);
}

Test(account_admin, admins_send_a_failed_order_again)
{
    struct http_client *shopper = user("hal@example.com");
    struct http_client *admin = user(ADMIN);
    char *id = place_order(shopper, 1, 1);
    char retry[128];
    snprintf(retry, sizeof(retry), "/admin/orders/%s/retry", id);

    struct http_resp *r = shop_send_json(srv, admin, "POST", retry, NULL);
    expect_status(r, 409, "a pending order is not failed");
    expect_message(r, "Only a failed order");
    http_resp_free(r);

    park_as_failed(id);
    r = shop_send_json(srv, shopper, "POST", retry, NULL);
    expect_status(r, 403, "a shopper may not");
    expect_message(r, "Admin only");
    http_resp_free(r);
    struct http_client *anon = http_client_new();
    r = shop_send_json(srv, anon, "POST", retry, NULL);
    expect_status(r, 401, "anonymous");
    http_resp_free(r);
    r = shop_send_json(srv, admin, "POST", "/admin/orders/00000000-0000-4000-8000-000000000000/retry", NULL);
    expect_status(r, 404, "unknown order");
    expect_message(r, "Order not found");
    http_resp_free(r);
    r = shop_send_json(srv, shopper, "GET", "/admin/orders", NULL);
    expect_status(r, 403, "a shopper may not list every order");
    http_resp_free(r);

    r = shop_send_json(srv, admin, "POST", retry, NULL);
    expect_status(r, 200, "retry");
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "status")), "pending");
    http_resp_free(r);
    char path[96];
    snprintf(path, sizeof(path), "/orders/%s", id);
    r = shop_send_json(srv, shopper, "GET", path, NULL);
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "status")), "pending");
    cr_expect_null(json_object_get(r->json, "notice"));
    http_resp_free(r);
    r = shop_send_json(srv, admin, "POST", retry, NULL);
    expect_status(r, 409, "only once: it is pending again");
    http_resp_free(r);
    char *line = xasprintf("admin: " ADMIN " sent order %s again", id);
    cr_expect(shop_log_contains(srv->log_path, line), "the action is logged");
    free(line);

    /* The same from the orders page, with its CSRF token. */
    park_as_failed(id);
    char *csrf = shop_csrf(srv, admin, "/browser/admin/orders");
    char form[128], action[128];
    snprintf(form, sizeof(form), "csrf_token=%s", csrf);
    snprintf(action, sizeof(action), "/browser/admin/orders/%s/retry", id);
    r = shop_post_form(srv, admin, action, "csrf_token=wrong");
    expect_status(r, 403, "no CSRF token");
    shop_expect_html(r);
    http_resp_free(r);
    r = shop_post_form(srv, admin, action, form);
    shop_expect_redirect(r, "/browser/admin/orders");
    http_resp_free(r);
    r = shop_get(srv, admin, "/browser/admin/orders");
    shop_expect_contains(r, "queued to be sent again");
    http_resp_free(r);
    r = shop_send_json(srv, shopper, "GET", path, NULL);
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "status")), "pending");
    http_resp_free(r);
    free(csrf);
    free(id);
    http_client_free(anon);
    http_client_free(admin);
    http_client_free(shopper);
}

/* --- account and order pages -------------------------------------------------- */

Test(account_admin, account_page_changes_the_password_and_lists_recent_orders)
{
    struct http_client *c = user("ida@example.com");
    struct http_client *other = http_client_new();
    shop_register_login(srv, other, "ida@example.com", PASSWORD);
    char *id = place_order(c, 3, 2);

    struct http_resp *r = shop_get(srv, c, "/browser/account");
    expect_status(r, 200, "account page");
    shop_expect_html(r);
    shop_expect_contains(r, "ida@example.com");
    char *link = xasprintf("href=\"/browser/orders/%s\"", id);
    shop_expect_contains(r, link);
    shop_expect_contains(r, "action=\"/browser/account/password\"");
    shop_expect_contains(r, "action=\"/browser/account/logout-all\"");
    http_resp_free(r);

    char *csrf = shop_csrf(srv, c, "/browser/account");
    char body[256];
    snprintf(body, sizeof(body), "csrf_token=%s&current_password=wrong-one&new_password=brand+new+secret",
             csrf);
    r = shop_post_form(srv, c, "/browser/account/password", body);
    expect_status(r, 403, "wrong current password");
    shop_expect_html(r);
    shop_expect_contains(r, "current password is not right");
    http_resp_free(r);
    snprintf(body, sizeof(body), "csrf_token=%s&current_password=" PASSWORD "&new_password=tiny", csrf);
    r = shop_post_form(srv, c, "/browser/account/password", body);
    expect_status(r, 400, "too short");
    shop_expect_contains(r, "too short");
    http_resp_free(r);
    r = shop_post_form(srv, c, "/browser/account/password",
                       "current_password=" PASSWORD "&new_password=brand+new+secret");
    expect_status(r, 403, "no CSRF token");
    http_resp_free(r);
    snprintf(body, sizeof(body), "csrf_token=%s&current_password=" PASSWORD "&new_password=brand+new+secret",
             csrf);
    r = shop_post_form(srv, c, "/browser/account/password", body);
    shop_expect_redirect(r, "/browser/account");
    http_resp_free(r);
    r = shop_get(srv, c, "/browser/account");
    expect_status(r, 200, "still logged in here");
    shop_expect_contains(r, "Your password has been changed");
    http_resp_free(r);
    r = shop_get(srv, other, "/browser/account");
    shop_expect_redirect(r, "/browser/login");
    http_resp_free(r);
    struct http_client *fresh = http_client_new();
    r = shop_send_json(srv, fresh, "POST", "/login",
                       "{\"email\":\"ida@example.com\",\"password\":\"brand new secret\"}");
    expect_status(r, 200, "the new password works");
    http_resp_free(r);

    /* Log out everywhere from the page: this browser is out too. */
    free(csrf);
    csrf = shop_csrf(srv, c, "/browser/account");
    snprintf(body, sizeof(body), "csrf_token=%s", csrf);
    r = shop_post_form(srv, c, "/browser/account/logout-all", body);
    shop_expect_redirect(r, "/browser/login");
    http_resp_free(r);
    r = shop_get(srv, c, "/browser/login");
    shop_expect_contains(r, "logged out on every device");
    http_resp_free(r);
    r = shop_get(srv, c, "/browser/account");
    shop_expect_redirect(r, "/browser/login");
    http_resp_free(r);
    r = shop_send_json(srv, fresh, "GET", "/account", NULL);
    expect_status(r, 401, "the session on the other client ended");
    http_resp_free(r);

    struct http_client *anon = http_client_new();
    r = shop_get(srv, anon, "/browser/account");
    shop_expect_redirect(r, "/browser/login");
    http_resp_free(r);
    http_client_free(anon);
    http_client_free(fresh);
    free(csrf);
    free(link);
    free(id);
    http_client_free(other);
    http_client_free(c);
}

Test(account_admin, order_page_and_confirmation_show_one_order_of_its_owner)
{
    struct http_client *owner = user("jo@example.com");
    struct http_client *stranger = user("kim@example.com");
    char *id = place_order(owner, 1, 4);
    char page[112], confirm[128];
    snprintf(page, sizeof(page), "/browser/orders/%s", id);
    snprintf(confirm, sizeof(confirm), "/browser/checkout?order=%s", id);

    struct http_resp *r = shop_get(srv, owner, page);
    expect_status(r, 200, "order page");
    shop_expect_html(r);
    shop_expect_contains(r, id);
    shop_expect_contains(r, "Apple");
    shop_expect_contains(r, "4 &times; $0.50");
    shop_expect_contains(r, "$2.00");
    shop_expect_contains(r, "Received, being processed");
    shop_expect_contains(r, "Sent to the warehouse");
    shop_expect_contains(r, "Not yet");
    http_resp_free(r);
    r = shop_get(srv, owner, confirm);
    expect_status(r, 200, "confirmation");
    shop_expect_contains(r, id);
    shop_expect_contains(r, "Thank you for your order");
    http_resp_free(r);

    r = shop_get(srv, stranger, page);
    expect_status(r, 404, "another user's order page");
    shop_expect_html(r);
    shop_expect_lacks(r, "Apple");
    http_resp_free(r);
    r = shop_get(srv, stranger, confirm);
    expect_status(r, 404, "another user's confirmation");
    shop_expect_lacks(r, "Apple");
    http_resp_free(r);
    r = shop_get(srv, owner, "/browser/orders/00000000-0000-4000-8000-000000000000");
    expect_status(r, 404, "unknown order page");
    shop_expect_html(r);
    http_resp_free(r);
    struct http_client *anon = http_client_new();
    r = shop_get(srv, anon, page);
    shop_expect_redirect(r, "/browser/login");
    http_resp_free(r);
    r = shop_get(srv, owner, "/browser/orders");
    char *link = xasprintf("href=\"/browser/orders/%s\"", id);
    shop_expect_contains(r, link);
    http_resp_free(r);
    free(link);
    http_client_free(anon);
    free(id);
    http_client_free(stranger);
    http_client_free(owner);
}

/* --- catalog admin pages ------------------------------------------------------ */

Test(account_admin, admin_pages_are_refused_to_shoppers_and_visitors)
{
    struct http_client *shopper = user("lee@example.com");
    struct http_client *anon = http_client_new();
    const char *pages[] = {"/browser/admin/", "/browser/admin/products", "/browser/admin/products/1",
                           "/browser/admin/orders"};
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        struct http_resp *r = shop_get(srv, shopper, pages[i]);
        expect_status(r, 403, pages[i]);
        shop_expect_html(r);
        shop_expect_contains(r, "administrators only");
        http_resp_free(r);
        r = shop_get(srv, anon, pages[i]);
        shop_expect_redirect(r, "/browser/login");
        http_resp_free(r);
    }
    char *csrf = shop_csrf(srv, shopper, "/browser/account");
    char body[256];
    snprintf(body, sizeof(body), "csrf_token=%s&name=Hack&price=1&stock=1", csrf);
    struct http_resp *r = shop_post_form(srv, shopper, "/browser/admin/products", body);
    expect_status(r, 403, "a shopper's create");
    http_resp_free(r);
    snprintf(body, sizeof(body), "csrf_token=%s", csrf);
    r = shop_post_form(srv, shopper, "/browser/admin/products/1/delete", body);
    expect_status(r, 403, "a shopper's delete");
    http_resp_free(r);
    char *up = upload_body(csrf, "a.png", "image/png", PNG_BYTES);
    r = upload(shopper, 1, up);
    expect_status(r, 403, "a shopper's upload");
    http_resp_free(r);
    r = shop_send_json(srv, shopper, "GET", "/products/1", NULL);
    expect_status(r, 200, "the product is still there");
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "name")), "Apple");
    http_resp_free(r);
    free(up);
    free(csrf);
    http_client_free(anon);
    http_client_free(shopper);
}

Test(account_admin, admins_create_edit_restock_and_delete_products_in_the_browser)
{
    struct http_client *admin = user(ADMIN);
    struct http_resp *r = shop_get(srv, admin, "/browser/admin/products");
    expect_status(r, 200, "product list");
    shop_expect_contains(r, "Apple");
    shop_expect_contains(r, "id=\"stock-1\"");
    shop_expect_contains(r, "href=\"/browser/admin/products\"");
    http_resp_free(r);
    r = shop_get(srv, admin, "/");
    shop_expect_contains(r, "href=\"/browser/admin/products\"");
    http_resp_free(r);

    char *csrf = shop_csrf(srv, admin, "/browser/admin/products");
    char body[512];
    snprintf(body, sizeof(body), "csrf_token=%s&name=Kiwi&description=Green+and+fuzzy&price=1.25&stock=40",
             csrf);
    r = shop_post_form(srv, admin, "/browser/admin/products", "name=Kiwi&price=1.25&stock=40");
    expect_status(r, 403, "create without CSRF");
    http_resp_free(r);
    r = shop_post_form(srv, admin, "/browser/admin/products", body);
    cr_assert_eq(r->status, 303, "%ld %s", r->status, r->body);
    const char *loc = http_resp_header(r, "Location");
    cr_assert(loc && strncmp(loc, "/browser/admin/products/", 24) == 0, "Location %s", loc ? loc : "-");
    int id = atoi(loc + 24);
    cr_assert_gt(id, 0);
    http_resp_free(r);
    char page[64], api_path[48];
    snprintf(page, sizeof(page), "/browser/admin/products/%d", id);
    snprintf(api_path, sizeof(api_path), "/products/%d", id);
    r = shop_send_json(srv, admin, "GET", api_path, NULL);
    expect_status(r, 200, "created");
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "name")), "Kiwi");
    cr_expect_eq(json_integer_value(json_object_get(r->json, "price_cents")), 125);
    cr_expect_eq(json_integer_value(json_object_get(r->json, "stock")), 40);
    http_resp_free(r);
    cr_expect(shop_log_contains(srv->log_path, "admin: " ADMIN " created product"), "create is logged");

    /* Bad input: the form again with a clear message and what was typed. */
    snprintf(body, sizeof(body), "csrf_token=%s&name=Plum&price=cheap&stock=3", csrf);
    r = shop_post_form(srv, admin, "/browser/admin/products", body);
    expect_status(r, 400, "bad price");
    shop_expect_contains(r, "Please enter the price as an amount");
    shop_expect_contains(r, "value=\"Plum\"");
    http_resp_free(r);
    snprintf(body, sizeof(body), "csrf_token=%s&price=1&stock=3", csrf);
    r = shop_post_form(srv, admin, "/browser/admin/products", body);
    expect_status(r, 400, "no name");
    shop_expect_contains(r, "name is required");
    http_resp_free(r);
    snprintf(body, sizeof(body), "csrf_token=%s&name=Plum&price=1&stock=-2", csrf);
    r = shop_post_form(srv, admin, "/browser/admin/products", body);
    expect_status(r, 400, "negative stock");
    shop_expect_contains(r, "whole number");
    http_resp_free(r);

    /* Edit. */
    snprintf(body, sizeof(body), "csrf_token=%s&name=Gold+Kiwi&description=Sweet&price=2.5&stock=12", csrf);
    r = shop_post_form(srv, admin, page, body);
    shop_expect_redirect(r, page);
    http_resp_free(r);
    r = shop_get(srv, admin, page);
    expect_status(r, 200, "edit page");
    shop_expect_contains(r, "Saved your changes");
    shop_expect_contains(r, "value=\"Gold Kiwi\"");
    shop_expect_contains(r, "value=\"2.50\"");
    http_resp_free(r);
    snprintf(body, sizeof(body), "csrf_token=%s&name=Gold+Kiwi&price=2.555&stock=12", csrf);
    r = shop_post_form(srv, admin, page, body);
    expect_status(r, 400, "three decimals");
    http_resp_free(r);

    /* Stock. */
    char action[96];
    snprintf(action, sizeof(action), "/browser/admin/products/%d/stock", id);
    snprintf(body, sizeof(body), "csrf_token=%s&stock=7", csrf);
    r = shop_post_form(srv, admin, action, body);
    cr_expect_eq(r->status, 303);
    http_resp_free(r);
    snprintf(body, sizeof(body), "csrf_token=%s&stock=lots", csrf);
    r = shop_post_form(srv, admin, action, body);
    cr_expect_eq(r->status, 303);
    http_resp_free(r);
    r = shop_get(srv, admin, "/browser/admin/products");
    shop_expect_contains(r, "Please enter the stock as a whole number");
    http_resp_free(r);
    r = shop_send_json(srv, admin, "GET", api_path, NULL);
    cr_expect_str_eq(json_string_value(json_object_get(r->json, "name")), "Gold Kiwi");
    cr_expect_eq(json_integer_value(json_object_get(r->json, "price_cents")), 250);
    cr_expect_eq(json_integer_value(json_object_get(r->json, "stock")), 7, "the bad stock changed nothing");
    http_resp_free(r);

    /* Delete. */
    snprintf(action, sizeof(action), "/browser/admin/products/%d/delete", id);
    snprintf(body, sizeof(body), "csrf_token=%s", csrf);
    r = shop_post_form(srv, admin, action, body);
    shop_expect_redirect(r, "/browser/admin/products");
    http_resp_free(r);
    r = shop_send_json(srv, admin, "GET", api_path, NULL);
    expect_status(r, 404, "deleted");
    http_resp_free(r);
    r = shop_get(srv, admin, page);
    expect_status(r, 404, "its edit page is gone");
    shop_expect_html(r);
    http_resp_free(r);
    cr_expect(shop_log_contains(srv->log_path, "admin: " ADMIN " deleted product"), "delete is logged");
    cr_expect(shop_log_contains(srv->log_path, "admin: " ADMIN " set the stock of product"),
              "stock is logged");
    free(csrf);
    http_client_free(admin);
}

/* --- image uploads --------------------------------------------------------------- */

Test(account_admin, uploaded_images_are_checked_by_their_bytes_stored_and_served)
{
    struct http_client *admin = user(ADMIN);
    char *csrf = shop_csrf(srv, admin, "/browser/admin/products/2");
    char *before = product_image_url(admin, 2);

    /* SVG, whatever it is called and whatever type the browser claims. */
    char *body = upload_body(csrf, "kiwi.png", "image/png", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>");
    struct http_resp *r = upload(admin, 2, body);
    expect_status(r, 415, "SVG named .png");
    shop_expect_html(r);
    shop_expect_contains(r, "not a PNG, JPEG or WebP image");
    http_resp_free(r);
    free(body);
    body = upload_body(csrf, "notes.txt", "text/plain", "just some text");
    r = upload(admin, 2, body);
    expect_status(r, 415, "text");
    http_resp_free(r);
    free(body);
    body = upload_body(csrf, "", "application/octet-stream", "");
    r = upload(admin, 2, body);
    expect_status(r, 400, "no file");
    shop_expect_contains(r, "choose an image file");
    http_resp_free(r);
    free(body);
    r = http_request(admin, "POST", shop_url(srv, "/browser/admin/products/2/image"),
                     "multipart/form-data; boundary=" BOUNDARY, "--" BOUNDARY "\r\nnonsense", NULL);
    expect_status(r, 403, "a malformed body has no CSRF token");
    shop_expect_html(r);
    http_resp_free(r);
    char *still = product_image_url(admin, 2);
    cr_expect_str_eq(still, before, "refused uploads change nothing");
    free(still);

    /* A PNG, called anything, with any claimed type. */
    body = upload_body(csrf, "photo.gif", "application/octet-stream", PNG_BYTES);
    r = upload(admin, 2, body);
    shop_expect_redirect(r, "/browser/admin/products/2");
    http_resp_free(r);
    free(body);
    char *url = product_image_url(admin, 2);
    cr_assert(strncmp(url, "/uploads/", 9) == 0 && strlen(url) == 9 + 32 + 4, "image_url %s", url);
    cr_expect_str_eq(url + strlen(url) - 4, ".png");
    r = shop_get(srv, admin, url);
    expect_status(r, 200, "the stored image");
    cr_expect_str_eq(http_resp_header(r, "Content-Type"), "image/png");
    const char *cc = http_resp_header(r, "Cache-Control");
    cr_expect(cc && strstr(cc, "immutable") && strstr(cc, "max-age=31536000"), "Cache-Control %s",
              cc ? cc : "-");
    cr_expect_str_eq(http_resp_header(r, "X-Content-Type-Options"), "nosniff");
    cr_expect_eq(r->len, strlen(PNG_BYTES));
    cr_expect(memcmp(r->body, PNG_BYTES, strlen(PNG_BYTES)) == 0, "the same bytes come back");
    http_resp_free(r);
    /* The shop's pages show it and their CSP allows it. */
    r = shop_get(srv, admin, "/browser/inventory");
    shop_expect_contains(r, url);
    const char *csp = http_resp_header(r, "Content-Security-Policy");
    cr_expect(csp && strstr(csp, "img-src 'self'"), "CSP %s", csp ? csp : "-");
    http_resp_free(r);
    cr_expect(shop_log_contains(srv->log_path, "admin: " ADMIN " uploaded image"), "the upload is logged");

    /* JPEG and WebP by their magic. */
    body = upload_body(csrf, "a.jpg", "image/jpeg", "\xff\xd8\xff\xe0-JFIF-test");
    r = upload(admin, 3, body);
    cr_expect_eq(r->status, 303, "JPEG: %ld", r->status);
    http_resp_free(r);
    free(body);
    char *jpg = product_image_url(admin, 3);
    cr_expect_str_eq(jpg + strlen(jpg) - 4, ".jpg");
    r = shop_get(srv, admin, jpg);
    cr_expect_str_eq(http_resp_header(r, "Content-Type"), "image/jpeg");
    http_resp_free(r);
    free(jpg);
    body = upload_body(csrf, "a.webp", "image/webp", "RIFF\x01\x01\x01\x01WEBPVP8 test");
    r = upload(admin, 4, body);
    cr_expect_eq(r->status, 303, "WebP: %ld", r->status);
    http_resp_free(r);
    free(body);
    char *webp = product_image_url(admin, 4);
    cr_expect_str_eq(webp + strlen(webp) - 5, ".webp");
    free(webp);

    /* Only stored names are served. */
    const char *bad[] = {"/uploads/", "/uploads/../shop.db", "/uploads/shop.db",
                         "/uploads/0123456789abcdef.png", "/uploads/0123456789abcdef0123456789abcdef.svg"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = shop_get(srv, admin, bad[i]);
        expect_status(r, 404, bad[i]);
        http_resp_free(r);
    }
    r = upload(admin, 99999, "x");
    expect_status(r, 403, "no token in a body that is not multipart");
    http_resp_free(r);
    free(url);
    free(before);
    free(csrf);
    http_client_free(admin);
}

/* Upload routes take an image over SHOPD_MAX_BODY (default 1 MiB) up to
 * UPLOAD_MAX_BYTES (default 2 MiB); every other route keeps SHOPD_MAX_BODY. */
Test(account_admin, uploads_take_images_up_to_their_own_limit)
{
    struct http_client *admin = user(ADMIN);
    char *csrf = shop_csrf(srv, admin, "/browser/admin/products/5");
    size_t n = 1536 * 1024;
    char *big = xmalloc(n + 1);
    memcpy(big, PNG_BYTES, strlen(PNG_BYTES));
    memset(big + strlen(PNG_BYTES), 'p', n - strlen(PNG_BYTES));
    big[n] = '\0';
    char *body = upload_body(csrf, "big.png", "image/png", big);
    struct http_resp *r = upload(admin, 5, body);
    shop_expect_redirect(r, "/browser/admin/products/5");
    http_resp_free(r);
    char *url = product_image_url(admin, 5);
    r = shop_get(srv, admin, url);
    cr_expect_eq(r->len, n, "the whole image is stored");
    http_resp_free(r);
    free(url);
    free(body);

    /* The same body to a JSON route is over its limit. */
    r = http_json(admin, "POST", shop_url(srv, "/products"), big);
    expect_status(r, 413, "a JSON route keeps SHOPD_MAX_BODY");
    cr_expect_not_null(shop_message(r));
    http_resp_free(r);
    free(big);
    free(csrf);
    http_client_free(admin);
}

Test(account_admin, an_image_over_upload_max_bytes_is_refused_with_a_message)
{
    stop();
    const char *env[] = {"UPLOAD_MAX_BYTES=4096", NULL};
    start_with(env);
    struct http_client *admin = user(ADMIN);
    char *csrf = shop_csrf(srv, admin, "/browser/admin/products/6");
    char big[6001];
    memcpy(big, PNG_BYTES, strlen(PNG_BYTES));
    memset(big + strlen(PNG_BYTES), 'q', sizeof(big) - 1 - strlen(PNG_BYTES));
    big[sizeof(big) - 1] = '\0';
    char *body = upload_body(csrf, "big.png", "image/png", big);
    struct http_resp *r = upload(admin, 6, body);
    expect_status(r, 413, "over UPLOAD_MAX_BYTES");
    shop_expect_html(r);
    shop_expect_contains(r, "too large: the most is 4 KiB");
    http_resp_free(r);
    char *url = product_image_url(admin, 6);
    cr_expect(strncmp(url, "/uploads/", 9) != 0, "nothing stored: %s", url);
    free(url);
    free(body);
    free(csrf);
    http_client_free(admin);
}
