/* Sessions against a real SQLite file with the shop's schema: a token finds its
 * session and nothing else does, idle and absolute expiry end a session, logout
 * and "log out elsewhere" really remove rows, flash messages are shown once and
 * purging keeps live sessions. Ages are set by moving a row's timestamps back,
 * which is what the passing of time does to them. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/xalloc.h"
#include "shopd/db.h"
#include "shopd/sessions.h"
#include "tests/support/harness.h"
#include "tests/support/test_db.h"

static struct test_db tdb;
static struct db *db;
static const struct session_policy policy = {
    .secret = "test-secret", .idle_seconds = 3600, .max_seconds = 86400};

static void setup(void)
{
    test_db_open(&tdb, "sessions");
    db = tdb.db;
    test_db_add_users(db);
}

static void teardown(void)
{
    test_db_close(&tdb);
}

TestSuite(sessions, .init = setup, .fini = teardown);

/* Moves a session's clock: created and last seen that many seconds ago. */
static void age(const char *key, long created_ago, long seen_ago)
{
    long long now = (long long)time(NULL);
    char *sql = xasprintf("UPDATE sessions SET created_at = %lld, last_seen = %lld WHERE token_hash = '%s'",
                          now - created_ago, now - seen_ago, key);
    cr_assert_eq(db_exec(db, sql), 0);
    free(sql);
}

static long long count_rows(void)
{
    return test_db_int(db, "SELECT count(*) FROM sessions");
}

Test(sessions, a_token_finds_its_user_session)
{
    struct session s, found;
    char *token = sessions_create(db, &policy, 7, &s);
    cr_assert_not_null(token);
    cr_assert_eq(strlen(token), SESSION_TOKEN_LEN);
    cr_assert_eq(s.user_id, 7);
    cr_assert_str_eq(s.email, "u7@example.com");
    cr_assert_eq(strlen(s.csrf), 64);
    cr_assert(sessions_lookup(db, &policy, token, &found));
    cr_assert_eq(found.user_id, 7);
    cr_assert_str_eq(found.email, "u7@example.com");
    cr_assert_str_eq(found.key, s.key);
    cr_assert_str_eq(found.csrf, s.csrf);
    free(token);
}

Test(sessions, the_database_keeps_no_token)
{
    struct session s;
    char *token = sessions_create(db, &policy, 7, &s);
    cr_assert_str_neq(s.key, token);
    char *sql = xasprintf("SELECT count(*) FROM sessions WHERE token_hash = '%s'", token);
    cr_assert_eq(test_db_int(db, sql), 0);
    free(sql);
    free(token);
}

Test(sessions, an_anonymous_session_has_no_user)
{
    struct session s, found;
    char *token = sessions_create(db, &policy, 0, &s);
    cr_assert_not_null(token);
    cr_assert(sessions_lookup(db, &policy, token, &found));
    cr_assert_eq(found.user_id, 0);
    cr_assert_str_eq(found.email, "");
    cr_assert_eq(strlen(found.csrf), 64);
    free(token);
}

Test(sessions, every_session_gets_its_own_token_and_csrf)
{
    struct session a, b;
    char *ta = sessions_create(db, &policy, 7, &a);
    char *tb = sessions_create(db, &policy, 7, &b);
    cr_assert_str_neq(ta, tb);
    cr_assert_str_neq(a.key, b.key);
    cr_assert_str_neq(a.csrf, b.csrf);
    free(ta);
    free(tb);
}

Test(sessions, malformed_unknown_and_other_secret_tokens_find_nothing)
{
    struct session s, found;
    char *token = sessions_create(db, &policy, 7, &s);
    cr_assert_not(sessions_lookup(db, &policy, NULL, &found));
    cr_assert_not(sessions_lookup(db, &policy, "", &found));
    cr_assert_not(sessions_lookup(db, &policy, "not-hex", &found));
    char shorter[SESSION_TOKEN_LEN];
    snprintf(shorter, sizeof(shorter), "%s", token);
    cr_assert_not(sessions_lookup(db, &policy, shorter, &found));
    char other[SESSION_TOKEN_LEN + 1];
    snprintf(other, sizeof(other), "%s", token);
    other[0] = other[0] == '0' ? '1' : '0';
    cr_assert_not(sessions_lookup(db, &policy, other, &found));
    /* The key is the token's HMAC under SECRET_KEY: another key finds nothing. */
    struct session_policy rotated = policy;
    rotated.secret = "another-secret";
    cr_assert_not(sessions_lookup(db, &rotated, token, &found));
    /* The key itself is no token either (a leaked row gives no cookie). */
    cr_assert_not(sessions_lookup(db, &policy, s.key, &found));
    cr_assert(sessions_lookup(db, &policy, token, &found));
    free(token);
}

Test(sessions, an_idle_session_ends_and_its_row_goes)
{
    struct session s, found;
    char *token = sessions_create(db, &policy, 7, &s);
    age(s.key, 100, policy.idle_seconds - 10);
    cr_assert(sessions_lookup(db, &policy, token, &found));
    age(s.key, 100, policy.idle_seconds + 10);
    cr_assert_not(sessions_lookup(db, &policy, token, &found));
    cr_assert_eq(count_rows(), 0);
    /* Once ended it stays ended, even if the clock were right again. */
    cr_assert_not(sessions_lookup(db, &policy, token, &found));
    free(token);
}

Test(sessions, a_busy_session_still_ends_at_its_absolute_age)
{
    struct session s, found;
    char *token = sessions_create(db, &policy, 7, &s);
    age(s.key, policy.max_seconds - 10, 0);
    cr_assert(sessions_lookup(db, &policy, token, &found));
    age(s.key, policy.max_seconds + 10, 0);
    cr_assert_not(sessions_lookup(db, &policy, token, &found));
    cr_assert_eq(count_rows(), 0);
    free(token);
}

Test(sessions, a_lookup_keeps_an_active_session_alive)
{
    struct session s, found;
    char *token = sessions_create(db, &policy, 7, &s);
    /* Seen 50 minutes ago: the lookup refreshes last_seen, so another 20
       minutes later it is 20 minutes idle, not 70. */
    age(s.key, 3000, 3000);
    cr_assert(sessions_lookup(db, &policy, token, &found));
    long long now = (long long)time(NULL);
    char *sql = xasprintf("UPDATE sessions SET last_seen = last_seen - 1200, created_at = created_at - 1200"
                          " WHERE token_hash = '%s' AND last_seen >= %lld",
                          s.key, now - 5);
    cr_assert_eq(db_exec(db, sql), 0);
    free(sql);
    cr_assert_eq(db_changes(db), 1, "last_seen was not refreshed");
    cr_assert(sessions_lookup(db, &policy, token, &found));
    free(token);
}

Test(sessions, delete_ends_one_session)
{
    struct session a, b, found;
    char *ta = sessions_create(db, &policy, 7, &a);
    char *tb = sessions_create(db, &policy, 7, &b);
    cr_assert_eq(sessions_delete(db, a.key), 0);
    cr_assert_not(sessions_lookup(db, &policy, ta, &found));
    cr_assert(sessions_lookup(db, &policy, tb, &found));
    /* Deleting again is no error (a double logout). */
    cr_assert_eq(sessions_delete(db, a.key), 0);
    free(ta);
    free(tb);
}

Test(sessions, ending_a_users_other_sessions_keeps_the_current_one_and_other_users)
{
    struct session a, b, c, other, found;
    char *ta = sessions_create(db, &policy, 7, &a);
    char *tb = sessions_create(db, &policy, 7, &b);
    char *tc = sessions_create(db, &policy, 7, &c);
    char *to = sessions_create(db, &policy, 8, &other);
    cr_assert_eq(sessions_delete_user(db, 7, a.key), 2);
    cr_assert(sessions_lookup(db, &policy, ta, &found));
    cr_assert_not(sessions_lookup(db, &policy, tb, &found));
    cr_assert_not(sessions_lookup(db, &policy, tc, &found));
    cr_assert(sessions_lookup(db, &policy, to, &found));
    cr_assert_eq(found.user_id, 8);
    cr_assert_eq(sessions_delete_user(db, 7, NULL), 1);
    cr_assert_not(sessions_lookup(db, &policy, ta, &found));
    cr_assert(sessions_lookup(db, &policy, to, &found));
    cr_assert_eq(sessions_delete_user(db, 7, NULL), 0);
    free(ta);
    free(tb);
    free(tc);
    free(to);
}

Test(sessions, a_flash_message_is_taken_once)
{
    struct session s;
    char *token = sessions_create(db, &policy, 0, &s);
    char kind[16], msg[256];
    cr_assert_not(sessions_take_flash(db, s.key, kind, sizeof(kind), msg, sizeof(msg)));
    cr_assert_eq(sessions_set_flash(db, s.key, "success", "Added 2 x Apple to your cart"), 0);
    cr_assert(sessions_take_flash(db, s.key, kind, sizeof(kind), msg, sizeof(msg)));
    cr_assert_str_eq(kind, "success");
    cr_assert_str_eq(msg, "Added 2 x Apple to your cart");
    cr_assert_not(sessions_take_flash(db, s.key, kind, sizeof(kind), msg, sizeof(msg)));
    free(token);
}

Test(sessions, a_newer_flash_replaces_an_unread_one_and_stays_in_its_session)
{
    struct session a, b;
    char *ta = sessions_create(db, &policy, 0, &a);
    char *tb = sessions_create(db, &policy, 0, &b);
    char kind[16], msg[256];
    cr_assert_eq(sessions_set_flash(db, a.key, "info", "first"), 0);
    cr_assert_eq(sessions_set_flash(db, a.key, "error", "second\twith a tab"), 0);
    cr_assert_not(sessions_take_flash(db, b.key, kind, sizeof(kind), msg, sizeof(msg)));
    cr_assert(sessions_take_flash(db, a.key, kind, sizeof(kind), msg, sizeof(msg)));
    cr_assert_str_eq(kind, "error");
    cr_assert_str_eq(msg, "second\twith a tab");
    free(ta);
    free(tb);
}

Test(sessions, purge_removes_only_expired_sessions)
{
    struct session live, idle, old, found;
    char *tl = sessions_create(db, &policy, 7, &live);
    char *ti = sessions_create(db, &policy, 7, &idle);
    char *to = sessions_create(db, &policy, 0, &old);
    age(idle.key, 100, policy.idle_seconds + 10);
    age(old.key, policy.max_seconds + 10, 0);
    cr_assert_eq(sessions_purge_expired(db, &policy), 2);
    cr_assert_eq(count_rows(), 1);
    cr_assert(sessions_lookup(db, &policy, tl, &found));
    cr_assert_eq(sessions_purge_expired(db, &policy), 0);
    free(tl);
    free(ti);
    free(to);
}

Test(sessions, a_deleted_user_takes_their_sessions)
{
    struct session s, found;
    char *token = sessions_create(db, &policy, 8, &s);
    cr_assert_eq(db_exec(db, "DELETE FROM users WHERE id = 8"), 0);
    cr_assert_not(sessions_lookup(db, &policy, token, &found));
    free(token);
}
