/* The account pages: register, log in, log out, and the account itself. */
#include "shopd/accounts.h"
#include "shopd/orders.h"
#include "shopd/pages.h"
#include "shopd/render.h"
#include "shopd/request.h"
#include "shared/log.h"

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

/* --- the account page: email, password change, log out everywhere, recent orders --- */

#define ACCOUNT_RECENT_ORDERS 5

static void account_page(struct request *r, int status, const char *error)
{
    json_t *orders = orders_list(r->db, r->session.user_id, ACCOUNT_RECENT_ORDERS);
    if (!orders) {
        pages_error(r, 500, "Your account could not be read. Please try again.");
        return;
    }
    size_t i;
    json_t *order;
    json_array_foreach(orders, i, order) pages_decorate_order(orders_for_shopper(order));
    json_t *ctx = json_pack("{s:s, s:o, s:b, s:i}", "email", r->session.email, "orders", orders, "no_orders",
                            json_array_size(orders) == 0, "min_password", ACCOUNTS_MIN_PASSWORD);
    if (error)
        json_object_set_new(ctx, "flash", render_flash_now("error", error));
    render_page(r, status, "account", "Your account", "account", ctx);
}

void pages_account(struct request *r)
{
    account_page(r, 200, NULL);
}

static void password_changed(enum outcome o, int64_t user_id, const char *error, void *arg)
{
    struct request *r = arg;
    if (r->cancelled) {
        request_abandon(r);
        return;
    }
    if (o == OUT_FORBIDDEN) {
        account_page(r, 403, "Your current password is not right, so the password was not changed.");
        return;
    }
    if (o == OUT_INVALID) {
        char msg[256];
        if (strlen(form_text(r, "new_password")) < ACCOUNTS_MIN_PASSWORD)
            snprintf(msg, sizeof(msg), "The new password is too short: use at least %d characters.",
                     ACCOUNTS_MIN_PASSWORD);
        else
            snprintf(msg, sizeof(msg), "%s.", error);
        account_page(r, 400, msg);
        return;
    }
    if (o != OUT_OK) {
        pages_error(r, 500, "The password could not be changed. Please try again.");
        return;
    }
    int ended = sessions_delete_user(r->db, user_id, r->session.key);
    log_info("accounts: user %lld changed the password; %d other session%s ended", (long long)user_id, ended,
             ended == 1 ? "" : "s");
    render_flash(r, "success",
                 "Your password has been changed. Every other session of your account has ended.");
    reply_redirect(r, "/browser/account");
}

void pages_account_password(struct request *r)
{
    request_hold(r);
    accounts_change_password_async(r->db, request_offload(r), r->session.user_id,
                                   form_text(r, "current_password"), form_text(r, "new_password"),
                                   password_changed, r);
}

void pages_account_logout_all(struct request *r)
{
    int64_t user_id = r->session.user_id;
    int ended = sessions_delete_user(r->db, user_id, NULL);
    if (ended < 0) {
        pages_error(r, 500, "The sessions could not be ended. Please try again.");
        return;
    }
    log_info("accounts: user %lld logged out everywhere (%d sessions)", (long long)user_id, ended);
    /* This session's row is gone already; forget it and carry the message on a fresh one. */
    request_end_session(r);
    render_flash(r, "info", "You are logged out on every device and browser.");
    reply_redirect(r, "/browser/login");
}
