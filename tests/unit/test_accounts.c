/* Accounts against a real SQLite file with the shop's schema: registering
 * (bad email, short and long passwords, an email taken in any case), logging
 * in (the same answer for an unknown email and a wrong password, any case of
 * the email), hashes imported from the Flask app verifying and being upgraded,
 * changing the password, and the admin list. Most tests pass no offload pool,
 * so the hashing runs inline as the header promises; one runs the real pool on
 * an event loop, as a worker does. */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/xalloc.h"
#include "shopd/accounts.h"
#include "shopd/db.h"
#include "shopd/offload.h"
#include "tests/support/harness.h"
#include "tests/support/test_db.h"

static struct test_db tdb;
static struct db *db;

struct answer {
    int calls;
    enum outcome o;
    int64_t user_id;
    char msg[256];
};

static void done(enum outcome o, int64_t user_id, const char *msg, void *arg)
{
    struct answer *a = arg;
    a->calls++;
    a->o = o;
    a->user_id = user_id;
    snprintf(a->msg, sizeof(a->msg), "%s", msg ? msg : "(null)");
}

static struct answer reg(const char *email, const char *password)
{
    struct answer a = {0};
    accounts_register_async(db, NULL, email, password, done, &a);
    cr_assert_eq(a.calls, 1, "register answered %d times", a.calls);
    return a;
}

static struct answer login(const char *email, const char *password)
{
    struct answer a = {0};
    accounts_authenticate_async(db, NULL, email, password, done, &a);
    cr_assert_eq(a.calls, 1, "login answered %d times", a.calls);
    return a;
}

static struct answer change(int64_t user_id, const char *current, const char *new_password)
{
    struct answer a = {0};
    accounts_change_password_async(db, NULL, user_id, current, new_password, done, &a);
    cr_assert_eq(a.calls, 1, "change answered %d times", a.calls);
    return a;
}

static char *stored_hash(int64_t user_id)
{
    char *sql = xasprintf("SELECT password_hash FROM users WHERE id = %lld", (long long)user_id);
    char *h = test_db_text(db, sql);
    free(sql);
    return h;
}

static void setup(void)
{
    test_db_open(&tdb, "accounts");
    db = tdb.db;
}

static void teardown(void)
{
    test_db_close(&tdb);
}

TestSuite(accounts, .init = setup, .fini = teardown, .timeout = 60);

Test(accounts, email_addresses_are_checked)
{
    const char *good[] = {"a@b.co", "first.last+tag@mail.example.org", "x@sub.domain.example"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        cr_expect(accounts_email_valid(good[i]), "%s refused", good[i]);
    const char *bad[] = {"",         "plain",      "@example.com", "a@",        "a@b",  "a@@b.co",
                         "a@b@c.co", "a b@c.co",   "a@b..co",      "a@.b.co",   "a@b.", "<a>@b.co",
                         "a,b@c.co", "\"a\"@b.co", "a@b.co\n",     "a\x7f@b.co"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_not(accounts_email_valid(bad[i]), "%s accepted", bad[i]);
    char longest[ACCOUNTS_MAX_EMAIL + 2];
    memset(longest, 'a', sizeof(longest));
    memcpy(longest + ACCOUNTS_MAX_EMAIL - 7, "@ex.com", 8);
    cr_expect(accounts_email_valid(longest), "254 bytes refused");
    memset(longest, 'a', sizeof(longest));
    memcpy(longest + ACCOUNTS_MAX_EMAIL - 6, "@ex.com", 8);
    cr_expect_not(accounts_email_valid(longest), "255 bytes accepted");
}

Test(accounts, a_registered_user_logs_in)
{
    struct answer r = reg("alice@example.com", "correct horse");
    cr_assert_eq(r.o, OUT_OK, "%s", r.msg);
    cr_assert_gt(r.user_id, 0);
    char *h = stored_hash(r.user_id);
    cr_assert(strncmp(h, "scrypt:32768:8:3$", 17) == 0, "stored %s", h);
    cr_assert_eq(strstr(h, "correct horse"), NULL);
    free(h);
    struct answer l = login("alice@example.com", "correct horse");
    cr_assert_eq(l.o, OUT_OK, "%s", l.msg);
    cr_assert_eq(l.user_id, r.user_id);
}

Test(accounts, bad_registrations_are_refused_with_a_message)
{
    struct answer a = reg("not-an-email", "correct horse");
    cr_assert_eq(a.o, OUT_INVALID);
    cr_assert_str_eq(a.msg, "Invalid email address");
    a = reg("bob@example.com", "short");
    cr_assert_eq(a.o, OUT_INVALID);
    cr_assert_str_eq(a.msg, "Password must be at least 8 characters");
    char *huge = xmalloc(ACCOUNTS_MAX_PASSWORD + 2);
    memset(huge, 'p', ACCOUNTS_MAX_PASSWORD + 1);
    huge[ACCOUNTS_MAX_PASSWORD + 1] = '\0';
    a = reg("bob@example.com", huge);
    cr_assert_eq(a.o, OUT_INVALID);
    cr_assert_str_eq(a.msg, "Password must be at most 1024 characters");
    free(huge);
    /* None of them made an account. */
    a = login("bob@example.com", "short");
    cr_assert_eq(a.o, OUT_UNAUTHORIZED);
    a = reg("bob@example.com", "12345678");
    cr_assert_eq(a.o, OUT_OK, "%s", a.msg);
}

Test(accounts, an_email_is_taken_in_any_case)
{
    struct answer a = reg("Carol@Example.com", "correct horse");
    cr_assert_eq(a.o, OUT_OK, "%s", a.msg);
    struct answer b = reg("carol@example.com", "another password");
    cr_assert_eq(b.o, OUT_CONFLICT);
    cr_assert_str_eq(b.msg, "Email already registered");
    b = reg("CAROL@EXAMPLE.COM", "another password");
    cr_assert_eq(b.o, OUT_CONFLICT);
    /* The first password still holds. */
    struct answer l = login("Carol@Example.com", "another password");
    cr_assert_eq(l.o, OUT_UNAUTHORIZED);
}

Test(accounts, login_ignores_the_case_of_the_email)
{
    struct answer a = reg("Dave@Example.com", "correct horse");
    cr_assert_eq(a.o, OUT_OK, "%s", a.msg);
    struct answer l = login("dave@example.COM", "correct horse");
    cr_assert_eq(l.o, OUT_OK, "%s", l.msg);
    cr_assert_eq(l.user_id, a.user_id);
}

Test(accounts, unknown_email_and_wrong_password_answer_alike)
{
    cr_assert_eq(reg("erin@example.com", "correct horse").o, OUT_OK);
    struct answer wrong = login("erin@example.com", "correct horsE");
    struct answer unknown = login("nobody@example.com", "correct horse");
    cr_assert_eq(wrong.o, OUT_UNAUTHORIZED);
    cr_assert_eq(unknown.o, OUT_UNAUTHORIZED);
    cr_assert_str_eq(wrong.msg, "Invalid credentials");
    cr_assert_str_eq(unknown.msg, wrong.msg);
    cr_assert_eq(wrong.user_id, 0);
    cr_assert_eq(unknown.user_id, 0);
    cr_assert_eq(login("erin@example.com", "").o, OUT_UNAUTHORIZED);
}

Test(accounts, an_imported_pbkdf2_hash_verifies_and_is_upgraded)
{
    /* werkzeug.security.generate_password_hash("correct horse",
       "pbkdf2:sha256:1000") with the salt "salt1234". */
    cr_assert_eq(
        db_exec(
            db,
            "INSERT INTO users (email, password_hash, created_at) VALUES ('flask@example.com',"
            " 'pbkdf2:sha256:1000$salt1234$954e11abc7b5fa6ce04d81b33ef6da2e999495370b37bbd0599d847cb7f389d3',"
            " 0)"),
        0);
    int64_t id = test_db_int(db, "SELECT id FROM users WHERE email = 'flask@example.com'");
    cr_assert_eq(login("flask@example.com", "wrong horse").o, OUT_UNAUTHORIZED);
    char *h = stored_hash(id);
    cr_assert(strncmp(h, "pbkdf2:", 7) == 0, "a failed login changed the hash to %s", h);
    free(h);
    struct answer l = login("flask@example.com", "correct horse");
    cr_assert_eq(l.o, OUT_OK, "%s", l.msg);
    cr_assert_eq(l.user_id, id);
    h = stored_hash(id);
    cr_assert(strncmp(h, "scrypt:32768:8:3$", 17) == 0, "not upgraded: %s", h);
    free(h);
    cr_assert_eq(login("flask@example.com", "correct horse").o, OUT_OK);
}

Test(accounts, a_password_change_needs_the_current_one)
{
    struct answer a = reg("frank@example.com", "old password");
    cr_assert_eq(a.o, OUT_OK, "%s", a.msg);
    struct answer c = change(a.user_id, "not it at all", "new password");
    cr_assert_eq(c.o, OUT_FORBIDDEN);
    cr_assert_str_eq(c.msg, "Current password is wrong");
    cr_assert_eq(login("frank@example.com", "old password").o, OUT_OK);
    c = change(a.user_id, "old password", "short");
    cr_assert_eq(c.o, OUT_INVALID);
    cr_assert_str_eq(c.msg, "Password must be at least 8 characters");
    cr_assert_eq(login("frank@example.com", "old password").o, OUT_OK);
    c = change(a.user_id, "old password", "new password");
    cr_assert_eq(c.o, OUT_OK, "%s", c.msg);
    cr_assert_eq(c.user_id, a.user_id);
    cr_assert_eq(login("frank@example.com", "old password").o, OUT_UNAUTHORIZED);
    cr_assert_eq(login("frank@example.com", "new password").o, OUT_OK);
}

Test(accounts, a_password_change_of_an_unknown_user_fails)
{
    struct answer c = change(4242, "old password", "new password");
    cr_assert_eq(c.o, OUT_ERROR);
    cr_assert_str_eq(c.msg, "The password could not be changed");
}

Test(accounts, the_offload_pool_answers_on_the_loop)
{
    struct event_base *base = event_base_new();
    cr_assert_not_null(base);
    struct offload *pool = offload_new(base, 1);
    cr_assert_not_null(pool);
    struct answer a = {0};
    accounts_register_async(db, pool, "grace@example.com", "correct horse", done, &a);
    /* The hash takes a while: the answer comes later, from the loop. */
    cr_assert_eq(a.calls, 0);
    for (int i = 0; i < 2000 && !a.calls; i++)
        event_base_loop(base, EVLOOP_ONCE);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(a.o, OUT_OK, "%s", a.msg);
    struct answer l = {0};
    accounts_authenticate_async(db, pool, "grace@example.com", "correct horse", done, &l);
    for (int i = 0; i < 2000 && !l.calls; i++)
        event_base_loop(base, EVLOOP_ONCE);
    cr_assert_eq(l.calls, 1);
    cr_assert_eq(l.o, OUT_OK, "%s", l.msg);
    cr_assert_eq(l.user_id, a.user_id);
    /* Invalid input is answered at once, without the pool. */
    struct answer bad = {0};
    accounts_register_async(db, pool, "grace", "correct horse", done, &bad);
    cr_assert_eq(bad.calls, 1);
    cr_assert_eq(bad.o, OUT_INVALID);
    offload_free(pool);
    event_base_free(base);
}

Test(accounts, admins_are_listed_without_case_or_spaces)
{
    struct admin_list *l = accounts_admins_parse(" Admin@Example.com , ,boss@example.com,");
    cr_assert(accounts_is_admin(l, "admin@example.com"));
    cr_assert(accounts_is_admin(l, "ADMIN@EXAMPLE.COM"));
    cr_assert(accounts_is_admin(l, "boss@example.com"));
    cr_assert_not(accounts_is_admin(l, "admin@example.co"));
    cr_assert_not(accounts_is_admin(l, "dmin@example.com"));
    cr_assert_not(accounts_is_admin(l, ""));
    cr_assert_not(accounts_is_admin(l, NULL));
    accounts_admins_free(l);
    l = accounts_admins_parse(NULL);
    cr_assert_not(accounts_is_admin(l, "admin@example.com"));
    accounts_admins_free(l);
    l = accounts_admins_parse("");
    cr_assert_not(accounts_is_admin(l, ""));
    accounts_admins_free(l);
    cr_assert_not(accounts_is_admin(NULL, "admin@example.com"));
}
