#include "shopd/sessions.h"
#include "shared/crypto.h"
#include "shared/log.h"
#include "shared/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char SQL_INSERT[] =
    "INSERT INTO sessions (token_hash, user_id, csrf, created_at, last_seen) VALUES ($1, $2, $3, $4, $4)";
static const char SQL_LOOKUP[] =
    "SELECT s.user_id, coalesce(u.email, ''), s.csrf, s.created_at, s.last_seen"
    " FROM sessions s LEFT JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1";
static const char SQL_USER_EMAIL[] = "SELECT email FROM users WHERE id = $1";
static const char SQL_TOUCH[] = "UPDATE sessions SET last_seen = $2 WHERE token_hash = $1";
static const char SQL_DELETE[] = "DELETE FROM sessions WHERE token_hash = $1";
static const char SQL_DELETE_USER[] =
    "DELETE FROM sessions WHERE user_id = $1 AND (CAST($2 AS TEXT) IS NULL OR token_hash <> $2)";
static const char SQL_SET_FLASH[] = "UPDATE sessions SET flash = $2 WHERE token_hash = $1";
/* RETURNING shows the row after the update (flash already NULL), so the message is read
 * first and then cleared only if it is still the same, which keeps it shown once even when
 * two workers race for it. */
static const char SQL_PEEK_FLASH[] = "SELECT flash FROM sessions WHERE token_hash = $1 AND flash IS NOT NULL";
static const char SQL_TAKE_FLASH[] = "UPDATE sessions SET flash = NULL WHERE token_hash = $1 AND flash = $2";
static const char SQL_PURGE[] = "DELETE FROM sessions WHERE last_seen < $1 OR created_at < $2";

static void token_key(const struct session_policy *p, const char *token, char out[65])
{
    crypto_hmac_sha256_hex(p->secret, strlen(p->secret), token, strlen(token), out);
}

char *sessions_create(struct db *db, const struct session_policy *p, int64_t user_id, struct session *s)
{
    char *token = crypto_random_token_hex(SESSION_TOKEN_LEN / 2);
    char *csrf = crypto_random_token_hex(32);
    memset(s, 0, sizeof(*s));
    token_key(p, token, s->key);
    snprintf(s->csrf, sizeof(s->csrf), "%s", csrf);
    free(csrf);
    s->user_id = user_id;
    struct db_stmt *st = db_stmt(db, SQL_INSERT);
    db_bind_text(st, 1, s->key);
    if (user_id)
        db_bind_int64(st, 2, user_id);
    db_bind_text(st, 3, s->csrf);
    db_bind_int64(st, 4, (int64_t)time(NULL));
    int rc = db_step(st);
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "sessions: create failed");
        free(token);
        return NULL;
    }
    if (user_id) {
        /* Fill in the email for the caller, as lookup would. */
        struct db_stmt *q = db_stmt(db, SQL_USER_EMAIL);
        db_bind_int64(q, 1, user_id);
        if (db_step(q) == DB_ROW)
            snprintf(s->email, sizeof(s->email), "%s", db_column_text(q, 0));
        db_done(q);
    }
    return token;
}

static bool token_well_formed(const char *token)
{
    unsigned char raw[SESSION_TOKEN_LEN / 2];
    return crypto_hex_decode(token, strlen(token), raw, sizeof(raw));
}

bool sessions_lookup(struct db *db, const struct session_policy *p, const char *token, struct session *s)
{
    if (!token || !token_well_formed(token))
        return false;
    memset(s, 0, sizeof(*s));
    token_key(p, token, s->key);
    struct db_stmt *st = db_stmt(db, SQL_LOOKUP);
    db_bind_text(st, 1, s->key);
    if (db_step(st) != DB_ROW) {
        db_done(st);
        return false;
    }
    s->user_id = db_column_int64(st, 0);
    snprintf(s->email, sizeof(s->email), "%s", db_column_text(st, 1));
    snprintf(s->csrf, sizeof(s->csrf), "%s", db_column_text(st, 2));
    int64_t created = db_column_int64(st, 3), last_seen = db_column_int64(st, 4);
    db_done(st);
    int64_t now = (int64_t)time(NULL);
    if (now - last_seen > p->idle_seconds || now - created > p->max_seconds) {
        sessions_delete(db, s->key);
        return false;
    }
    if (now - last_seen >= 60) {
        struct db_stmt *t = db_stmt(db, SQL_TOUCH);
        db_bind_text(t, 1, s->key);
        db_bind_int64(t, 2, now);
        if (db_step(t) != DB_DONE)
            log_warn("sessions: touch failed: %s", db_errmsg(db));
        db_done(t);
    }
    return true;
}

int sessions_delete(struct db *db, const char *key)
{
    struct db_stmt *st = db_stmt(db, SQL_DELETE);
    db_bind_text(st, 1, key);
    int rc = db_step(st);
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "sessions: delete failed");
        return -1;
    }
    return 0;
}

int sessions_delete_user(struct db *db, int64_t user_id, const char *keep)
{
    struct db_stmt *st = db_stmt(db, SQL_DELETE_USER);
    db_bind_int64(st, 1, user_id);
    if (keep)
        db_bind_text(st, 2, keep);
    int rc = db_step(st);
    db_done(st);
    if (rc != DB_DONE) {
        db_log_error(db, "sessions: ending the sessions of user %lld failed", (long long)user_id);
        return -1;
    }
    return db_changes(db);
}

int sessions_set_flash(struct db *db, const char *key, const char *kind, const char *message)
{
    char *text = xasprintf("%s\t%s", kind, message);
    struct db_stmt *st = db_stmt(db, SQL_SET_FLASH);
    db_bind_text(st, 1, key);
    db_bind_text(st, 2, text);
    int rc = db_step(st);
    db_done(st);
    free(text);
    return rc == DB_DONE ? 0 : -1;
}

bool sessions_take_flash(struct db *db, const char *key, char *kind, size_t kindlen, char *message,
                         size_t msglen)
{
    struct db_stmt *st = db_stmt(db, SQL_PEEK_FLASH);
    db_bind_text(st, 1, key);
    char *text = NULL;
    if (db_step(st) == DB_ROW)
        text = xstrdup(db_column_text(st, 0));
    db_done(st);
    if (!text)
        return false;
    st = db_stmt(db, SQL_TAKE_FLASH);
    db_bind_text(st, 1, key);
    db_bind_text(st, 2, text);
    bool taken = db_step(st) == DB_DONE && db_changes(db) == 1;
    db_done(st);
    const char *tab = strchr(text, '\t');
    bool found = taken && tab;
    if (found) {
        snprintf(kind, kindlen, "%.*s", (int)(tab - text), text);
        snprintf(message, msglen, "%s", tab + 1);
    }
    free(text);
    return found;
}

int sessions_purge_expired(struct db *db, const struct session_policy *p)
{
    int64_t now = (int64_t)time(NULL);
    struct db_stmt *st = db_stmt(db, SQL_PURGE);
    db_bind_int64(st, 1, now - p->idle_seconds);
    db_bind_int64(st, 2, now - p->max_seconds);
    int rc = db_step(st);
    db_done(st);
    return rc == DB_DONE ? db_changes(db) : -1;
}
