/* The browser pages over real HTTP against a real shopd: every page's status and
 * content, redirect-after-POST with flash messages shown once, logins required,
 * CSRF refusals, escaping of hostile catalog data, one order for a double-submitted
 * checkout, and the error pages. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/services.h"
#include "tests/support/shop.h"
#include "tests/support/shop_client.h"

#define PASSWORD "password123"

static struct shop_server *srv;
static struct http_client *client;

static void start(void)
{
    srv = shop_start(NULL);
    client = http_client_new();
}

static void expect_clean_log(const char *path)
{
    const char *bad[] = {"AddressSanitizer", "runtime error:", "exited with status", "killed by signal",
                         "did not reply"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect(!shop_log_contains(path, bad[i]), "shopd's log reports '%s'", bad[i]);
}

static void stop(void)
{
    http_client_free(client);
    if (srv)
        expect_clean_log(srv->log_path);
    shop_stop(srv);
}

TestSuite(pages, .init = start, .fini = stop, .timeout = 60);

/* --- helpers -------------------------------------------------------------- */

/* POSTs the form and expects a 303 to location; returns nothing, frees everything. */
static void post_expect_redirect(const char *path, const char *body, const char *location)
{
    struct http_resp *r = shop_post_form(srv, client, path, body);
    cr_assert_eq(r->status, 303, "POST %s %s: %ld %s", path, body, r->status, r->body);
    const char *loc = http_resp_header(r, "Location");
    cr_assert(loc && strcmp(loc, location) == 0, "POST %s: Location %s, expected %s", path,
              loc ? loc : "(none)", location);
    http_resp_free(r);
}

/* GETs path expecting 200 and text (e.g. a flash message); a second GET must not show it again. */
static void expect_flash_once(const char *path, const char *text)
{
    struct http_resp *r = shop_get(srv, client, path);
    cr_expect_eq(r->status, 200, "GET %s: %ld", path, r->status);
    shop_expect_contains(r, "class=\"flash");
    shop_expect_contains(r, text);
    http_resp_free(r);
    r = shop_get(srv, client, path);
    shop_expect_lacks(r, text);
    shop_expect_lacks(r, "class=\"flash");
    http_resp_free(r);
}

/* Registers and logs in through the JSON API (fewer page round trips where pages are not under test). */
static void login_as(const char *email)
{
    shop_register_login(srv, client, email, PASSWORD);
}

/* --- welcome page, layout, headers, static files ------------------------ */

Test(pages, home_links_every_page_with_security_headers)
{
    struct http_resp *r = shop_get(srv, client, "/");
    cr_assert_eq(r->status, 200);
    const char *ct = http_resp_header(r, "Content-Type");
    cr_expect(ct && strncmp(ct, "text/html", 9) == 0);
    const char *links[] = {"href=\"/browser/register\"",  "href=\"/browser/login\"",
                           "href=\"/browser/inventory\"", "href=\"/browser/cart\"",
                           "href=\"/browser/orders\"",    "href=\"/browser/logout\"",
                           "href=\"/static/style.css\""};
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
        shop_expect_contains(r, links[i]);
    shop_expect_contains(r, "How it works");
    const char *csp = http_resp_header(r, "Content-Security-Policy");
    cr_expect(csp && strstr(csp, "default-src 'self'"), "CSP: %s", csp ? csp : "(none)");
    const char *nosniff = http_resp_header(r, "X-Content-Type-Options");
    cr_expect(nosniff && strcmp(nosniff, "nosniff") == 0);
    const char *frame = http_resp_header(r, "X-Frame-Options");
    cr_expect(frame && strcmp(frame, "DENY") == 0);
    cr_expect_not_null(http_resp_header(r, "Referrer-Policy"));
    /* No inline styles or scripts (the CSP forbids them) and nothing from elsewhere. */
    shop_expect_lacks(r, "style=");
    shop_expect_lacks(r, "<script");
    shop_expect_lacks(r, "http://");
    shop_expect_lacks(r, "https://");
    /* Logged out: the layout offers log in and register, no cart badge. */
    shop_expect_contains(r, "Log in");
    shop_expect_lacks(r, "id=\"cart-count\"");
    http_resp_free(r);
}

Test(pages, static_files_and_product_images)
{
    struct http_resp *r = shop_get(srv, client, "/static/style.css");
    cr_expect_eq(r->status, 200);
    const char *ct = http_resp_header(r, "Content-Type");
    cr_expect(ct && strncmp(ct, "text/css", 8) == 0);
    cr_expect(r->len > 1000, "the stylesheet is real, %zu bytes", r->len);
    http_resp_free(r);
    r = shop_get(srv, client, "/static/favicon.svg");
    cr_expect_eq(r->status, 200);
    http_resp_free(r);
    /* Every product of the default inventory has its local image. */
    r = http_json(client, "GET", shop_url(srv, "/products"), NULL);
    cr_assert_eq(r->status, 200);
    cr_assert(json_array_size(r->json) >= 8);
    size_t i;
    json_t *p;
    json_array_foreach(r->json, i, p)
    {
        const char *img = json_string_value(json_object_get(p, "image_url"));
        cr_assert(img && strncmp(img, "/static/img/", 12) == 0, "image_url %s", img ? img : "(none)");
        struct http_resp *ir = shop_get(srv, client, img);
        cr_expect_eq(ir->status, 200, "%s: %ld", img, ir->status);
        const char *ict = http_resp_header(ir, "Content-Type");
        cr_expect(ict && strcmp(ict, "image/svg+xml") == 0, "%s: %s", img, ict ? ict : "(none)");
        cr_expect(ir->body && strstr(ir->body, "<svg"), "%s is an SVG", img);
        http_resp_free(ir);
    }
    http_resp_free(r);
    r = shop_get(srv, client, "/static/img/placeholder.svg");
    cr_expect_eq(r->status, 200);
    http_resp_free(r);
    r = shop_get(srv, client, "/static/../../../etc/passwd");
    cr_expect_eq(r->status, 404);
    http_resp_free(r);
    r = shop_get(srv, client, "/static/%2e%2e/style.css");
    cr_expect_eq(r->status, 404);
    http_resp_free(r);
}

/* --- inventory ------------------------------------------------------------ */

Test(pages, inventory_lists_products_with_add_to_cart)
{
    struct http_resp *r = shop_get(srv, client, "/browser/inventory");
    cr_assert_eq(r->status, 200);
    const char *names[] = {"Apple",  "Banana",    "Orange",     "Strawberries",
                           "Grapes", "Pineapple", "Watermelon", "Lemon"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        shop_expect_contains(r, names[i]);
    shop_expect_contains(r, "Crisp red apples");
    shop_expect_contains(r, "$0.50");
    shop_expect_contains(r, "$5.99");
    shop_expect_contains(r, "src=\"/static/img/apple.svg\"");
    shop_expect_contains(r, "100 in stock");
    shop_expect_contains(r, "name=\"quantity\"");
    shop_expect_contains(r, "action=\"/browser/cart/add\"");
    shop_expect_contains(r, "Add to cart");
    shop_expect_contains(r, "name=\"csrf_token\"");
    shop_expect_contains(r, "aria-current=\"page\">Inventory");
    http_resp_free(r);
    /* The Flask app's address shows the same inventory. */
    r = shop_get(srv, client, "/browser/products");
    cr_expect_eq(r->status, 200);
    shop_expect_contains(r, "Watermelon");
    shop_expect_contains(r, "Add to cart");
    http_resp_free(r);
}

/* Hostile catalog data shows as text everywhere; an item without stock says so;
 * an outside image is replaced by the local placeholder. */
Test(pages, hostile_product_is_escaped_and_out_of_stock_says_so)
{
    login_as("admin@example.com");
    struct http_resp *r =
        http_json(client, "POST", shop_url(srv, "/products"),
                  "{\"name\":\"<script>alert(1)</script>\",\"description\":\"Tom & \\\"Jerry\\\" "
                  "<b>bold</b> it's\",\"price\":1.5,\"stock\":3,"
                  "\"image_url\":\"https://evil.example/x.png\"}");
    cr_assert_eq(r->status, 201, "%s", r->body);
    int64_t hostile = json_integer_value(json_object_get(r->json, "id"));
    http_resp_free(r);
    r = http_json(client, "POST", shop_url(srv, "/products"),
                  "{\"name\":\"Plum\",\"description\":\"Dark plums.\",\"price\":2,\"stock\":0}");
    cr_assert_eq(r->status, 201, "%s", r->body);
    int64_t plum = json_integer_value(json_object_get(r->json, "id"));
    http_resp_free(r);

    r = shop_get(srv, client, "/browser/inventory");
    cr_assert_eq(r->status, 200);
    shop_expect_contains(r, "&lt;script&gt;alert(1)&lt;/script&gt;");
    shop_expect_lacks(r, "<script>alert(1)");
    shop_expect_contains(r, "Tom &amp; &quot;Jerry&quot; &lt;b&gt;bold&lt;/b&gt; it&#39;s");
    shop_expect_lacks(r, "<b>bold</b>");
    shop_expect_lacks(r, "evil.example");
    shop_expect_contains(r, "/static/img/placeholder.svg");
    /* The plum has no add-to-cart form, and says it is out of stock. */
    char anchor[64];
    snprintf(anchor, sizeof(anchor), "id=\"product-%lld\"", (long long)plum);
    const char *card = strstr(r->body, anchor);
    cr_assert_not_null(card);
    const char *next = strstr(card + 1, "<li ");
    size_t len = next ? (size_t)(next - card) : strlen(card);
    char *plum_html = strndup(card, len);
    cr_expect(strstr(plum_html, "Out of stock"), "%s", plum_html);
    cr_expect(!strstr(plum_html, "Add to cart"), "%s", plum_html);
    free(plum_html);
    http_resp_free(r);

    /* The same name in the cart, the confirmation and the order history. */
    char *csrf = shop_csrf(srv, client, "/browser/inventory");
    char *body = xasprintf("csrf_token=%s&product_id=%lld&quantity=2", csrf, (long long)hostile);
    char *back = xasprintf("/browser/inventory#product-%lld", (long long)hostile);
    post_expect_redirect("/browser/cart/add", body, back);
    free(body);
    free(back);
    r = shop_get(srv, client, "/browser/cart");
    cr_assert_eq(r->status, 200);
    shop_expect_contains(r, "&lt;script&gt;alert(1)&lt;/script&gt;");
    shop_expect_lacks(r, "<script>alert(1)");
    shop_expect_contains(r, "Added 2 \xc3\x97 &lt;script&gt;");
    char *token = shop_field_value(r->body, "checkout_token");
    cr_assert_not_null(token);
    http_resp_free(r);
    body = xasprintf("csrf_token=%s&checkout_token=%s", csrf, token);
    r = shop_post_form(srv, client, "/browser/checkout", body);
    cr_assert_eq(r->status, 303);
    char *confirmation = xstrdup(http_resp_header(r, "Location"));
    http_resp_free(r);
    r = shop_get(srv, client, confirmation);
    cr_expect_eq(r->status, 200);
    shop_expect_contains(r, "&lt;script&gt;alert(1)&lt;/script&gt;");
    shop_expect_lacks(r, "<script>alert(1)");
    http_resp_free(r);
    r = shop_get(srv, client, "/browser/orders");
    shop_expect_contains(r, "&lt;script&gt;alert(1)&lt;/script&gt;");
    shop_expect_lacks(r, "<script>alert(1)");
    http_resp_free(r);
    free(confirmation);
    free(body);
    free(token);
    free(csrf);
}

/* --- accounts --------------------------------------------------------------- */

Test(pages, register_checks_input_and_confirms)
{
    struct http_resp *r = shop_get(srv, client, "/browser/register");
    cr_assert_eq(r->status, 200);
    shop_expect_contains(r, "name=\"email\"");
    shop_expect_contains(r, "name=\"password\"");
    shop_expect_contains(r, "At least 8 characters");
    char *csrf = shop_field_value(r->body, "csrf_token");
    cr_assert_not_null(csrf);
    http_resp_free(r);

    char *body = xasprintf("csrf_token=%s&email=not-an-email&password=" PASSWORD, csrf);
    r = shop_post_form(srv, client, "/browser/register", body);
    cr_expect_eq(r->status, 400);
    shop_expect_contains(r, "valid email address");
    shop_expect_contains(r, "value=\"not-an-email\""); /* what was typed stays in the form */
    http_resp_free(r);
    free(body);

    body = xasprintf("csrf_token=%s&email=new%%40example.com&password=short", csrf);
    r = shop_post_form(srv, client, "/browser/register", body);
    cr_expect_eq(r->status, 400);
    shop_expect_contains(r, "at least 8 characters");
    http_resp_free(r);
    free(body);

    /* Typed text is escaped when shown again. */
    body = xasprintf("csrf_token=%s&email=%%22%%3E%%3Cscript%%3Ex&password=" PASSWORD, csrf);
    r = shop_post_form(srv, client, "/browser/register", body);
    cr_expect_eq(r->status, 400);
    shop_expect_lacks(r, "\"><script>x");
    shop_expect_contains(r, "&quot;&gt;&lt;script&gt;x");
    http_resp_free(r);
    free(body);

    /* No CSRF token: refused, nothing created. */
    r = shop_post_form(srv, client, "/browser/register", "email=new%40example.com&password=" PASSWORD);
    cr_expect_eq(r->status, 403);
    http_resp_free(r);

    body = xasprintf("csrf_token=%s&email=new%%40example.com&password=" PASSWORD, csrf);
    post_expect_redirect("/browser/register", body, "/browser/login");
    expect_flash_once("/browser/login", "Your account is ready");
    r = shop_post_form(srv, client, "/browser/register", body);
    cr_expect_eq(r->status, 409);
    shop_expect_contains(r, "already exists");
    http_resp_free(r);
    free(body);
    free(csrf);
}

Test(pages, login_wrong_password_then_right_then_logout)
{
    struct http_resp *r = http_json(client, "POST", shop_url(srv, "/register"),
                                    "{\"email\":\"shopper@example.com\",\"password\":\"" PASSWORD "\"}");
    cr_assert_eq(r->status, 201);
    http_resp_free(r);

    char *csrf = shop_csrf(srv, client, "/browser/login");
    /* A visitor's form token rides on a signed visitor cookie: no session yet. */
    char *anonymous = http_client_cookie(client, "visitor");
    cr_assert_not_null(anonymous);
    cr_expect_null(http_client_cookie(client, "session"), "a session before login");
    char *body = xasprintf("csrf_token=%s&email=shopper%%40example.com&password=wrong-password", csrf);
    r = shop_post_form(srv, client, "/browser/login", body);
    cr_expect_eq(r->status, 401);
    shop_expect_contains(r, "Wrong email or password");
    shop_expect_contains(r, "value=\"shopper@example.com\"");
    http_resp_free(r);
    free(body);

    body = xasprintf("csrf_token=%s&email=shopper%%40example.com&password=" PASSWORD, csrf);
    post_expect_redirect("/browser/login", body, "/browser/inventory");
    free(body);
    /* The session starts at login, with a token of its own. */
    char *logged_in = http_client_cookie(client, "session");
    cr_assert_not_null(logged_in);
    cr_expect_str_neq(anonymous, logged_in);
    expect_flash_once("/browser/inventory", "Welcome, shopper@example.com");

    /* The layout shows who is logged in and the empty cart. */
    r = shop_get(srv, client, "/browser/inventory");
    shop_expect_contains(r, "id=\"user-email\" title=\"Logged in\">shopper@example.com</span>");
    shop_expect_contains(r, "id=\"cart-count\" aria-label=\"0 items in cart\">0</span>");
    shop_expect_contains(r, "action=\"/browser/logout\"");
    http_resp_free(r);

    r = shop_get(srv, client, "/browser/logout");
    cr_expect_eq(r->status, 200);
    shop_expect_contains(r, "logged in as <strong>shopper@example.com</strong>");
    char *csrf2 = shop_field_value(r->body, "csrf_token");
    http_resp_free(r);
    cr_assert_not_null(csrf2);
    cr_expect_str_neq(csrf, csrf2, "a new session brings a new CSRF token");
    /* The old session's token does not log out the new session. */
    body = xasprintf("csrf_token=%s", csrf);
    r = shop_post_form(srv, client, "/browser/logout", body);
    cr_expect_eq(r->status, 403);
    http_resp_free(r);
    free(body);
    body = xasprintf("csrf_token=%s", csrf2);
    post_expect_redirect("/browser/logout", body, "/");
    free(body);
    expect_flash_once("/", "You are logged out");
    /* The session is over server-side, even with the old cookie replayed. */
    struct http_client *replay = http_client_new();
    char *hdr = xasprintf("Cookie: session=%s", logged_in);
    const char *headers[] = {hdr, NULL};
    r = http_request(replay, "GET", shop_url(srv, "/browser/cart"), NULL, NULL, headers);
    cr_expect_eq(r->status, 303);
    http_resp_free(r);
    http_client_free(replay);
    free(hdr);
    free(csrf2);
    free(csrf);
    free(anonymous);
    free(logged_in);
}

Test(pages, logged_out_visitors_are_sent_to_login)
{
    const char *paths[] = {"/browser/cart", "/browser/orders", "/browser/checkout?order=x"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct http_resp *r = shop_get(srv, client, paths[i]);
        cr_expect_eq(r->status, 303, "%s: %ld", paths[i], r->status);
        const char *loc = http_resp_header(r, "Location");
        cr_expect(loc && strcmp(loc, "/browser/login") == 0, "%s -> %s", paths[i], loc ? loc : "(none)");
        http_resp_free(r);
    }
    char *csrf = shop_csrf(srv, client, "/browser/inventory");
    char *body = xasprintf("csrf_token=%s&product_id=1&quantity=1", csrf);
    post_expect_redirect("/browser/cart/add", body, "/browser/login");
    expect_flash_once("/browser/login", "Please log in first");
    free(body);
    free(csrf);
    /* The logout page works logged out too. */
    struct http_resp *r = shop_get(srv, client, "/browser/logout");
    cr_expect_eq(r->status, 200);
    shop_expect_contains(r, "You are not logged in");
    http_resp_free(r);
}

/* --- CSRF --------------------------------------------------------------------- */

Test(pages, state_changing_posts_need_the_csrf_token)
{
    login_as("csrf@example.com");
    char *csrf = shop_csrf(srv, client, "/browser/inventory");
    const char *attempts[] = {
        "product_id=1&quantity=1",                                                    /* missing */
        "csrf_token=&product_id=1&quantity=1",                                        /* empty */
        "csrf_token=0000000000000000000000000000000000000000000000000000000000000000" /* wrong */
        "&product_id=1&quantity=1",
        "csrf_token=abc&product_id=1&quantity=1", /* wrong length */
    };
    for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
        struct http_resp *r = shop_post_form(srv, client, "/browser/cart/add", attempts[i]);
        cr_expect_eq(r->status, 403, "%s: %ld", attempts[i], r->status);
        const char *ct = http_resp_header(r, "Content-Type");
        cr_expect(ct && strncmp(ct, "text/html", 9) == 0, "the refusal is a page");
        shop_expect_contains(r, "did not come from this site");
        shop_expect_contains(r, "403");
        http_resp_free(r);
    }
    /* A token of another session is refused as well. */
    struct http_client *other = http_client_new();
    char *foreign = shop_csrf(srv, other, "/browser/login");
    http_client_free(other);
    char *body = xasprintf("csrf_token=%s&product_id=1&quantity=1", foreign);
    struct http_resp *r = shop_post_form(srv, client, "/browser/cart/add", body);
    cr_expect_eq(r->status, 403);
    http_resp_free(r);
    free(body);
    const char *forms[] = {"/browser/cart/update", "/browser/cart/remove", "/browser/checkout",
                           "/browser/logout",      "/browser/login",       "/browser/register"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        r = shop_post_form(srv, client, forms[i],
                           "product_id=1&quantity=0&email=a%40b.co&password=" PASSWORD);
        cr_expect_eq(r->status, 403, "%s without a token: %ld", forms[i], r->status);
        http_resp_free(r);
    }
    /* Nothing happened: the cart is empty, still logged in. */
    r = http_json(client, "GET", shop_url(srv, "/cart"), NULL);
    cr_expect_eq(r->status, 200);
    cr_expect_eq(json_array_size(json_object_get(r->json, "items")), 0);
    http_resp_free(r);
    /* The right token works. */
    body = xasprintf("csrf_token=%s&product_id=1&quantity=1", csrf);
    post_expect_redirect("/browser/cart/add", body, "/browser/inventory#product-1");
    free(body);
    free(foreign);
    free(csrf);
}

/* --- cart -------------------------------------------------------------------- */

Test(pages, cart_add_change_remove_with_flash_messages)
{
    login_as("cart@example.com");
    struct http_resp *r = shop_get(srv, client, "/browser/cart");
    cr_assert_eq(r->status, 200);
    shop_expect_contains(r, "Your cart is empty");
    shop_expect_lacks(r, "action=\"/browser/checkout\"");
    http_resp_free(r);

    char *csrf = shop_csrf(srv, client, "/browser/inventory");
    char *body = xasprintf("csrf_token=%s&product_id=1&quantity=2", csrf);
    post_expect_redirect("/browser/cart/add", body, "/browser/inventory#product-1");
    free(body);
    expect_flash_once("/browser/inventory", "Added 2 \xc3\x97 Apple to your cart.");
    body = xasprintf("csrf_token=%s&product_id=4&quantity=1", csrf);
    post_expect_redirect("/browser/cart/add", body, "/browser/inventory#product-4");
    free(body);

    r = shop_get(srv, client, "/browser/cart");
    cr_assert_eq(r->status, 200);
    shop_expect_contains(r, "Added 1 \xc3\x97 Strawberries");
    shop_expect_contains(r, "id=\"cart-count\" aria-label=\"3 items in cart\">3</span>");
    shop_expect_contains(r, "id=\"line-1\"");
    shop_expect_contains(r, "id=\"line-4\"");
    shop_expect_contains(r, "value=\"2\"");
    shop_expect_contains(r, "$1.00");                         /* 2 x 0.50 */
    shop_expect_contains(r, "id=\"order-total\">$4.50</td>"); /* 1.00 + 3.50 */
    shop_expect_contains(r, "action=\"/browser/checkout\"");
    shop_expect_contains(r, "aria-current=\"page\">Cart");
    http_resp_free(r);

    body = xasprintf("csrf_token=%s&product_id=1&quantity=5", csrf);
    post_expect_redirect("/browser/cart/update", body, "/browser/cart");
    free(body);
    r = shop_get(srv, client, "/browser/cart");
    shop_expect_contains(r, "Updated Apple: 5 in your cart.");
    shop_expect_contains(r, "$2.50");
    shop_expect_contains(r, "id=\"order-total\">$6.00</td>");
    http_resp_free(r);

    body = xasprintf("csrf_token=%s&product_id=4", csrf);
    post_expect_redirect("/browser/cart/remove", body, "/browser/cart");
    free(body);
    r = shop_get(srv, client, "/browser/cart");
    shop_expect_contains(r, "Removed Strawberries from your cart.");
    shop_expect_lacks(r, "id=\"line-4\"");
    shop_expect_contains(r, "id=\"order-total\">$2.50</td>");
    http_resp_free(r);

    /* Quantity 0 on the cart page removes the line too. */
    body = xasprintf("csrf_token=%s&product_id=1&quantity=0", csrf);
    post_expect_redirect("/browser/cart/update", body, "/browser/cart");
    free(body);
    expect_flash_once("/browser/cart", "Removed Apple from your cart.");
    free(csrf);
}

Test(pages, cart_refuses_bad_input_with_a_message)
{
    login_as("bad-input@example.com");
    char *csrf = shop_csrf(srv, client, "/browser/inventory");
    const struct {
        const char *path, *fields, *location, *message;
    } cases[] = {
        {"/browser/cart/add", "product_id=1&quantity=abc", "/browser/inventory#product-1",
         "quantity of at least 1"},
        {"/browser/cart/add", "product_id=1&quantity=-1", "/browser/inventory#product-1",
         "quantity of at least 1"},
        {"/browser/cart/add", "product_id=1&quantity=0", "/browser/inventory#product-1",
         "quantity of at least 1"},
        {"/browser/cart/add", "product_id=1&quantity=1x", "/browser/inventory#product-1",
         "quantity of at least 1"},
        {"/browser/cart/add", "product_id=1&quantity=99999999999999999999", "/browser/inventory#product-1",
         "quantity of at least 1"},
        {"/browser/cart/add", "product_id=7&quantity=16", "/browser/inventory#product-7",
         "Only 15 of Watermelon"},
        {"/browser/cart/add", "product_id=9999&quantity=1", "/browser/inventory#product-9999",
         "no longer available"},
        {"/browser/cart/add", "product_id=abc&quantity=1", "/browser/inventory", "does not exist"},
        {"/browser/cart/update", "product_id=2&quantity=3", "/browser/cart", "not in your cart"},
        {"/browser/cart/update", "product_id=2&quantity=", "/browser/cart", "quantity of 0 or more"},
        {"/browser/cart/remove", "product_id=2", "/browser/cart", "was not in your cart"},
        {"/browser/cart/remove", "product_id=", "/browser/cart", "was not in your cart"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *body = xasprintf("csrf_token=%s&%s", csrf, cases[i].fields);
        post_expect_redirect(cases[i].path, body, cases[i].location);
        free(body);
        struct http_resp *r = shop_get(srv, client, "/browser/cart");
        cr_expect(r->body && strstr(r->body, cases[i].message), "%s %s: expected '%s'", cases[i].path,
                  cases[i].fields, cases[i].message);
        http_resp_free(r);
    }
    /* Nothing was added by any of them. */
    struct http_resp *r = http_json(client, "GET", shop_url(srv, "/cart"), NULL);
    cr_expect_eq(json_array_size(json_object_get(r->json, "items")), 0, "%s", r->body);
    http_resp_free(r);
    free(csrf);
}

/* --- checkout and orders -------------------------------------------------------- */

struct submit {
    const char *cookie_header;
    const char *body;
    long status;
    char location[256];
};

static void *submit_checkout(void *arg)
{
    struct submit *s = arg;
    struct http_client *c = http_client_new();
    const char *headers[] = {s->cookie_header, NULL};
    struct http_resp *r = http_request(c, "POST", shop_url(srv, "/browser/checkout"),
                                       "application/x-www-form-urlencoded", s->body, headers);
    s->status = r->status;
    const char *loc = http_resp_header(r, "Location");
    snprintf(s->location, sizeof(s->location), "%s", loc ? loc : "");
    http_resp_free(r);
    http_client_free(c);
    return NULL;
}

Test(pages, double_submitted_checkout_makes_one_order)
{
    login_as("checkout@example.com");
    char *csrf = shop_csrf(srv, client, "/browser/inventory");
    char *body = xasprintf("csrf_token=%s&product_id=3&quantity=2", csrf);
    post_expect_redirect("/browser/cart/add", body, "/browser/inventory#product-3");
    free(body);

    struct http_resp *r = shop_get(srv, client, "/browser/cart");
    char *token = shop_field_value(r->body, "checkout_token");
    http_resp_free(r);
    cr_assert_not_null(token);
    cr_expect_eq(strlen(token), 32);

    /* A double click: the same form sent twice at once, then once more later. */
    char *session = http_client_cookie(client, "session");
    char *cookie = xasprintf("Cookie: session=%s", session);
    body = xasprintf("csrf_token=%s&checkout_token=%s", csrf, token);
    struct submit a = {cookie, body, 0, ""}, b = {cookie, body, 0, ""};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, submit_checkout, &a);
    pthread_create(&tb, NULL, submit_checkout, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_expect_eq(a.status, 303);
    cr_expect_eq(b.status, 303);
    cr_expect(strncmp(a.location, "/browser/checkout?order=", 24) == 0, "%s", a.location);
    cr_expect_str_eq(a.location, b.location, "both submissions name the same order");
    r = shop_post_form(srv, client, "/browser/checkout", body);
    cr_expect_eq(r->status, 303);
    const char *loc = http_resp_header(r, "Location");
    cr_expect(loc && strcmp(loc, a.location) == 0);
    http_resp_free(r);

    r = http_json(client, "GET", shop_url(srv, "/orders"), NULL);
    cr_assert_eq(r->status, 200);
    cr_expect_eq(json_array_size(r->json), 1, "one order: %s", r->body);
    const char *order_id = json_string_value(json_object_get(json_array_get(r->json, 0), "order_id"));
    cr_assert_not_null(order_id);
    cr_expect(strstr(a.location, order_id), "%s names %s", a.location, order_id);
    char *id = xstrdup(order_id);
    http_resp_free(r);

    /* The confirmation page. */
    r = shop_get(srv, client, a.location);
    cr_expect_eq(r->status, 200);
    shop_expect_contains(r, "Thank you for your order");
    shop_expect_contains(r, "Your order has been placed");
    shop_expect_contains(r, id);
    shop_expect_contains(r, "Orange");
    shop_expect_contains(r, "2 &times; $0.75");
    shop_expect_contains(r, "$1.50");
    shop_expect_contains(r, "Received, being processed");
    shop_expect_contains(r, "id=\"cart-count\" aria-label=\"0 items in cart\">0</span>");
    http_resp_free(r);

    /* The history. */
    r = shop_get(srv, client, "/browser/orders");
    cr_expect_eq(r->status, 200);
    shop_expect_contains(r, id);
    shop_expect_contains(r, "status-pending");
    shop_expect_contains(r, "$1.50");
    const char *first = strstr(r->body, "class=\"order card\"");
    cr_expect(first && !strstr(first + 1, "class=\"order card\""), "exactly one order in the history");
    http_resp_free(r);

    /* The cart is empty now; checking out again says so and makes no order. */
    r = shop_get(srv, client, "/browser/cart");
    shop_expect_contains(r, "Your cart is empty");
    http_resp_free(r);
    char *again = xasprintf("csrf_token=%s&checkout_token=0123456789abcdef0123456789abcdef", csrf);
    post_expect_redirect("/browser/checkout", again, "/browser/cart");
    expect_flash_once("/browser/cart", "nothing to check out yet");
    free(again);
    /* A missing or malformed token places nothing either. */
    free(body);
    body = xasprintf("csrf_token=%s&product_id=1&quantity=1", csrf);
    post_expect_redirect("/browser/cart/add", body, "/browser/inventory#product-1");
    free(body);
    body = xasprintf("csrf_token=%s&checkout_token=not-hex", csrf);
    post_expect_redirect("/browser/checkout", body, "/browser/cart");
    expect_flash_once("/browser/cart", "checkout form was incomplete");
    free(body);
    r = http_json(client, "GET", shop_url(srv, "/orders"), NULL);
    cr_expect_eq(json_array_size(r->json), 1);
    http_resp_free(r);

    /* Someone else's or an unknown order id is not shown. */
    r = shop_get(srv, client, "/browser/checkout?order=00000000-0000-4000-8000-000000000000");
    cr_expect_eq(r->status, 404);
    http_resp_free(r);
    free(id);
    free(cookie);
    free(session);
    free(token);
    free(csrf);
}

Test(pages, orders_page_empty_then_listed)
{
    login_as("orders@example.com");
    struct http_resp *r = shop_get(srv, client, "/browser/orders");
    cr_assert_eq(r->status, 200);
    shop_expect_contains(r, "You have not ordered anything yet");
    shop_expect_contains(r, "aria-current=\"page\">Orders");
    http_resp_free(r);
}

/* --- error pages ---------------------------------------------------------------- */

Test(pages, error_pages_are_html_in_the_layout)
{
    struct http_resp *r = shop_get(srv, client, "/browser/x");
    cr_expect_eq(r->status, 404);
    const char *ct = http_resp_header(r, "Content-Type");
    cr_expect(ct && strncmp(ct, "text/html", 9) == 0);
    shop_expect_contains(r, "Page not found");
    shop_expect_contains(r, "class=\"site-header\"");
    shop_expect_contains(r, "href=\"/static/style.css\"");
    cr_expect_not_null(http_resp_header(r, "Content-Security-Policy"));
    http_resp_free(r);

    /* A path with markup in it is not echoed raw. */
    r = shop_get(srv, client, "/browser/%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    cr_expect_eq(r->status, 404);
    shop_expect_lacks(r, "<script>alert(1)");
    http_resp_free(r);

    r = shop_post_form(srv, client, "/", "x=1");
    cr_expect_eq(r->status, 405);
    shop_expect_contains(r, "Method not allowed");
    http_resp_free(r);

    /* A logged-in user still sees who they are on an error page. */
    login_as("lost@example.com");
    r = shop_get(srv, client, "/browser/nowhere");
    cr_expect_eq(r->status, 404);
    shop_expect_contains(r, "lost@example.com");
    http_resp_free(r);
}

/* --- 429: a spent budget answers the browser with a page ------------------------ */

Test(pages_limits, spent_page_budget_answers_an_html_429, .timeout = 40)
{
    char *dir = harness_tempdir("pages429");
    char *sock = xasprintf("%s/rl.sock", dir);
    char *rules = xasprintf("%s/test.rules", dir);
    /* Two pages, then nothing for an hour; the other rules stay out of the way. */
    services_write_file(rules, "page 1/1h burst=2\napi 1000/1m burst=1000\n");
    int redis_port = harness_free_port();
    struct harness_proc *redis = services_start_redis(dir, redis_port, NULL);
    struct harness_proc *rld = services_start_ratelimitd(dir, sock, redis_port, rules, NULL, NULL);
    char *e_sock = xasprintf("RATELIMITD_SOCKET=%s", sock);

    const char *env[] = {"RATELIMIT_ENABLED=1", e_sock, "SHOPD_WORKERS=1", NULL};
    struct shop_server *limited = shop_start(env);
    struct http_client *c = http_client_new();
    /* Spend the budget (the first answers may come before ratelimitd reached Redis). */
    struct http_resp *r = NULL;
    for (int i = 0; i < 50; i++) {
        r = http_request(c, "GET", shop_url(limited, "/browser/inventory"), NULL, NULL, NULL);
        if (r->status == 429)
            break;
        cr_assert_eq(r->status, 200, "GET /browser/inventory: %ld", r->status);
        http_resp_free(r);
        r = NULL;
        harness_sleep_ms(20);
    }
    cr_assert_not_null(r, "the page budget was never spent");
    const char *ct = http_resp_header(r, "Content-Type");
    cr_expect(ct && strncmp(ct, "text/html", 9) == 0, "429 for the browser is a page: %s",
              ct ? ct : "(none)");
    cr_expect_not_null(http_resp_header(r, "Retry-After"));
    cr_expect_not_null(http_resp_header(r, "Content-Security-Policy"));
    shop_expect_contains(r, "429");
    shop_expect_contains(r, "Slow down a little");
    shop_expect_contains(r, "Please wait");
    shop_expect_contains(r, "href=\"/static/style.css\"");
    http_resp_free(r);
    /* Static files are not budgeted: the error page still has its stylesheet. */
    r = http_request(c, "GET", shop_url(limited, "/static/style.css"), NULL, NULL, NULL);
    cr_expect_eq(r->status, 200);
    http_resp_free(r);
    http_client_free(c);
    expect_clean_log(limited->log_path);
    shop_stop(limited);
    harness_stop(rld, 3000);
    harness_stop(redis, 3000);
    harness_rmrf(dir);
    free(dir);
    free(sock);
    free(rules);
    free(e_sock);
}
