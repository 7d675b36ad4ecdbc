/* sessions: server-side sessions behind the `session` cookie.
 *
 * The cookie holds a random 256-bit token (64 hex digits). The database keeps
 * only HMAC-SHA256(SECRET_KEY, token), so a leaked database does not yield live
 * cookies, and deleting the row really ends the session (logout, expiry). A
 * session may be anonymous (user_id 0): browser forms need a CSRF token and a
 * place for flash messages before anyone logs in. */
#ifndef SHOPD_SESSIONS_H
#define SHOPD_SESSIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "shopd/db.h"

#define SESSION_TOKEN_LEN 64

struct session {
    char key[65];    /* HMAC of the token: the row's primary key */
    int64_t user_id; /* 0 when anonymous */
    char email[256]; /* the user's email, empty when anonymous */
    char csrf[65];   /* per-session CSRF token for HTML forms */
};

struct session_policy {
    const char *secret; /* SECRET_KEY */
    long idle_seconds;  /* a session unused this long is over */
    long max_seconds;   /* a session older than this is over, however busy */
};

/* Creates a session for user_id (0: anonymous) and fills *s. Returns the token
 * for the cookie (caller frees), or NULL on a database error (logged). */
char *sessions_create(struct db *db, const struct session_policy *p, int64_t user_id, struct session *s);
/* Finds the live session of a cookie token. Returns false for a malformed,
 * unknown or expired token (an expired row is deleted). Refreshes last_seen at
 * most once a minute, so browsing does not write on every request. */
bool sessions_lookup(struct db *db, const struct session_policy *p, const char *token, struct session *s);
/* Ends a session. Returns 0 or -1. */
int sessions_delete(struct db *db, const char *key);
/* Ends every session of user_id except the one whose key is keep (NULL: all of
 * them), as after a password change or "log out everywhere". Returns the number
 * ended, or -1. */
int sessions_delete_user(struct db *db, int64_t user_id, const char *keep);
/* Stores a one-time message shown on the next page ("kind" is success, error or info). */
int sessions_set_flash(struct db *db, const char *key, const char *kind, const char *message);
/* Takes the pending flash message: kind and message into the buffers; false if none. */
bool sessions_take_flash(struct db *db, const char *key, char *kind, size_t kindlen, char *message,
                         size_t msglen);
/* Deletes every expired session. Returns the number deleted, or -1. */
int sessions_purge_expired(struct db *db, const struct session_policy *p);

#endif
