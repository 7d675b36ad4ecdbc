/* Visitors without a session, against a real shopd on a file database: page
 * views write nothing (no session row until login), forms are still protected
 * by a CSRF token bound to the visitor cookie, and flash messages ride in a
 * signed cookie that cannot be forged. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/shop.h"
#include "tests/support/shop_client.h"
#include "tests/support/test_database.h"

static struct shop_server *srv;
static char *dir, *database_url;

static void start(void)
{
    dir = harness_tempdir("visitor");
    database_url = test_database_url(dir);
    char *url = xasprintf("DATABASE_URL=%s", database_url);
    const char *env[] = {url, NULL};
    srv = shop_start(env);
    free(url);
}

static void stop(void)
{
    shop_stop(srv);
    harness_rmrf(dir);
    free(database_url);
    free(dir);
}

TestSuite(visitor, .init = start, .fini = stop, .timeout = 60);

/* Rows of the sessions table, read with a connection of our own. */
static long session_rows(void)
{
    char *count = test_database_value(database_url, "SELECT count(*) FROM sessions", NULL);
    long n = strtol(count, NULL, 10);
    free(count);
    return n;
}

Test(visitor, a_hundred_cookieless_page_views_write_no_session)
{
    long before = session_rows();
    const char *pages[] = {"/",
                           "/browser/login",
                           "/browser/register",
                           "/browser/inventory",
                           "/browser/logout",
                           "/browser/nowhere",
                           "/browser/cart"};
    int views = 0;
    for (int round = 0; views < 100; round++)
        for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]) && views < 100; i++, views++) {
            struct http_client *c = http_client_new(); /* a new visitor each time, as a crawler is */
            struct http_resp *r = shop_get(srv, c, pages[i]);
            cr_expect(r->status == 200 || r->status == 404 || r->status == 303, "%s: %ld", pages[i],
                      r->status);
            http_resp_free(r);
            http_client_free(c);
        }
    cr_expect_eq(session_rows(), before, "page views created %ld session rows", session_rows() - before);
    /* Logging in is what creates one. */
    struct http_client *c = http_client_new();
    shop_register_login(srv, c, "visitor@example.com", "password123");
    http_client_free(c);
    cr_expect_eq(session_rows(), before + 1);
}

Test(visitor, forms_need_the_token_of_their_own_visitor_cookie)
{
    struct http_client *alice = http_client_new(), *mallory = http_client_new();
    struct http_resp *r = shop_get(srv, alice, "/browser/register");
    char *alice_token = shop_field_value(r->body, "csrf_token");
    http_resp_free(r);
    char *alice_cookie = http_client_cookie(alice, "visitor");
    cr_assert_not_null(alice_token);
    cr_assert_not_null(alice_cookie);
    r = shop_get(srv, mallory, "/browser/register");
    char *mallory_token = shop_field_value(r->body, "csrf_token");
    http_resp_free(r);
    char *mallory_cookie = http_client_cookie(mallory, "visitor");
    cr_assert_str_neq(alice_token, mallory_token);

    const char *form = "email=victim%%40example.com&password=password123%s%s";
    struct {
        const char *what, *token, *cookie_value;
    } refused[] = {
        {"no token", NULL, alice_cookie},
        {"a forged token", "0000000000000000000000000000000000000000000000000000000000000000", alice_cookie},
        {"another visitor's token", mallory_token, alice_cookie},
        {"a token without its cookie", alice_token, NULL},
        {"a token with a made-up cookie", alice_token, "0123456789abcdef0123456789abcdef"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char *body =
            xasprintf(form, refused[i].token ? "&csrf_token=" : "", refused[i].token ? refused[i].token : "");
        char *cookie =
            refused[i].cookie_value ? xasprintf("Cookie: visitor=%s", refused[i].cookie_value) : NULL;
        struct http_client *fresh = http_client_new(); /* only the cookie we send */
        const char *headers[] = {cookie, NULL};
        r = shop_post_form_headers(srv, fresh, "/browser/register", body, headers);
        cr_expect_eq(r->status, 403, "%s: %ld", refused[i].what, r->status);
        cr_expect(r->body && strstr(r->body, "did not come from this site"), "%s", refused[i].what);
        http_resp_free(r);
        http_client_free(fresh);
        free(cookie);
        free(body);
    }
    /* Alice's own token with her own cookie works, and creates an account, not a session. */
    long sessions = session_rows();
    char *body = xasprintf(form, "&csrf_token=", alice_token);
    r = shop_post_form(srv, alice, "/browser/register", body);
    cr_expect_eq(r->status, 303, "%ld %s", r->status, r->body);
    http_resp_free(r);
    free(body);
    cr_expect_eq(session_rows(), sessions);
    free(alice_token);
    free(alice_cookie);
    free(mallory_token);
    free(mallory_cookie);
    http_client_free(alice);
    http_client_free(mallory);
}

Test(visitor, flash_messages_show_once_and_cannot_be_planted)
{
    struct http_client *c = http_client_new();
    /* A logged-out visitor sent to the login page gets the notice in a cookie. */
    struct http_resp *r = shop_get(srv, c, "/browser/cart");
    cr_assert_eq(r->status, 303);
    http_resp_free(r);
    char *flash = http_client_cookie(c, "flash");
    cr_assert_not_null(flash, "no flash cookie");
    r = shop_get(srv, c, "/browser/login");
    cr_expect(r->body && strstr(r->body, "Please log in first"), "the notice is not shown");
    http_resp_free(r);
    r = shop_get(srv, c, "/browser/login");
    cr_expect(r->body && !strstr(r->body, "Please log in first"), "the notice is shown twice");
    http_resp_free(r);
    http_client_free(c);

    /* Replaying the same cookie shows it again only until it expires; a changed
     * message or a made-up cookie is never shown. */
    char *planted = xstrdup(flash);
    char *dot = strchr(strchr(planted, '.') + 1, '.');
    dot[1] = dot[1] == '4' ? '5' : '4'; /* one byte of the message */
    const char *forged[] = {
        planted,
        "error.9999999999.3c7363726970743e.0000000000000000000000000000000000000000000000000000000000000000"};
    for (size_t i = 0; i < 2; i++) {
        struct http_client *fresh = http_client_new();
        char *cookie = xasprintf("Cookie: flash=%s", forged[i]);
        const char *headers[] = {cookie, NULL};
        r = http_request(fresh, "GET", shop_url(srv, "/browser/login"), NULL, NULL, headers);
        cr_expect_eq(r->status, 200);
        cr_expect(r->body && !strstr(r->body, "class=\"flash"), "a forged flash cookie was shown: %s",
                  forged[i]);
        http_resp_free(r);
        free(cookie);
        http_client_free(fresh);
    }
    free(planted);
    free(flash);
}
