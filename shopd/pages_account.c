/* The account pages: register, log in, log out. */
#include "shopd/accounts.h"
#include "shopd/pages.h"
#include "shopd/render.h"
#include "shopd/request.h"

#include <stdio.h>
#include <string.h>

static const char *form_text(struct request *r, const char *name)
{
    const char *v = request_form(r, name);
    return v ? v : "";
}

/* The form again, with what went wrong and the email already typed in. */
static void account_form(struct request *r, int status, const char *name, const char *title,
                         const char *email, const char *error)
{
    json_t *ctx = json_pack("{s:i}", "min_password", ACCOUNTS_MIN_PASSWORD);
    /* Typed text may be any bytes: show it only when it is valid UTF-8 (json_string checks). */
    json_t *typed = email ? json_string(email) : NULL;
    if (typed)
        json_object_set_new(ctx, "email", typed);
    if (error)
        json_object_set_new(ctx, "flash", render_flash_now("error", error));
    render_page(r, status, name, title, name, ctx);
}

void pages_register_form(struct request *r)
{
    if (pages_ensure_session(r))
        account_form(r, 200, "register", "Create an account", NULL, NULL);
}

static void registered(enum outcome o, int64_t id, const char *error, void *arg)
{
    struct request *r = arg;
    (void)id;
    if (r->cancelled) {
        request_abandon(r);
        return;
    }
    const char *email = form_text(r, "email"), *password = form_text(r, "password");
    char msg[256];
    snprintf(msg, sizeof(msg), "%s", error);
    if (o == OUT_INVALID && !accounts_email_valid(email))
        snprintf(msg, sizeof(msg), "Please enter a valid email address, such as name@example.com.");
    else if (o == OUT_INVALID && strlen(password) < ACCOUNTS_MIN_PASSWORD)
        snprintf(msg, sizeof(msg), "Your password is too short: use at least %d characters.",
                 ACCOUNTS_MIN_PASSWORD);
    else if (o == OUT_CONFLICT)
        snprintf(msg, sizeof(msg), "An account with this email already exists. Log in instead?");
    if (o != OUT_OK) {
        account_form(r, outcome_http_status(o), "register", "Create an account", email, msg);
        return;
    }
    render_flash(r, "success", "Your account is ready. Log in with %s to start shopping.", email);
    reply_redirect(r, "/browser/login");
}

void pages_register(struct request *r)
{
    const char *email = form_text(r, "email"), *password = form_text(r, "password");
    request_hold(r);
    accounts_register_async(r->db, request_offload(r), email, password, registered, r);
}

void pages_login_form(struct request *r)
{
    if (pages_ensure_session(r))
        account_form(r, 200, "login", "Log in", NULL, NULL);
}

static void logged_in(enum outcome o, int64_t id, const char *error, void *arg)
{
    struct request *r = arg;
    (void)error;
    if (r->cancelled) {
        request_abandon(r);
        return;
    }
    if (o == OUT_UNAUTHORIZED) {
        account_form(r, 401, "login", "Log in", form_text(r, "email"),
                     "Wrong email or password. Please try again.");
        return;
    }
    if (o != OUT_OK || request_start_session(r, id) < 0) {
        pages_error(r, 500, "Logging in failed. Please try again.");
        return;
    }
    render_flash(r, "success", "Welcome, %s! Pick something from the inventory.", r->session.email);
    reply_redirect(r, "/browser/inventory");
}

void pages_login(struct request *r)
{
    const char *email = form_text(r, "email"), *password = form_text(r, "password");
    request_hold(r);
    accounts_authenticate_async(r->db, request_offload(r), email, password, logged_in, r);
}

void pages_logout_form(struct request *r)
{
    if (pages_ensure_session(r))
        render_page(r, 200, "logout", "Log out", NULL, NULL);
}

void pages_logout(struct request *r)
{
    request_end_session(r);
    /* A fresh anonymous session carries the goodbye message to the next page. */
    render_flash(r, "info", "You are logged out. See you soon!");
    reply_redirect(r, "/");
}
