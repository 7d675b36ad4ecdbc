/* accounts: registration, credential checks and the admin list.
 *
 * Passwords are stored as Werkzeug-format scrypt hashes (shared/password.h);
 * hashes imported from the Flask app (scrypt or pbkdf2) verify and are upgraded
 * to the current parameters on the next successful login. */
#ifndef SHOPD_ACCOUNTS_H
#define SHOPD_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shopd/db.h"
#include "shopd/outcome.h"

#define ACCOUNTS_MIN_PASSWORD 8
#define ACCOUNTS_MAX_PASSWORD 1024
#define ACCOUNTS_MAX_EMAIL 254

/* True for a plausible address: one @, a non-empty local part, a dotted domain,
 * no spaces or control characters, at most 254 bytes. */
bool accounts_email_valid(const char *email);

struct offload;
/* Called on the loop thread when an asynchronous account operation ends: the
 * outcome, the user's id on OUT_OK, and a message for the user otherwise. */
typedef void (*accounts_done_fn)(enum outcome o, int64_t user_id, const char *msg, void *arg);
/* Creates a user (OUT_INVALID for a bad email or short password, OUT_CONFLICT
 * for an email taken, case-insensitively) or checks credentials (OUT_UNAUTHORIZED
 * for an unknown email or a wrong password: same message, similar time), with
 * the password hashing done on the offload pool so the event loop keeps serving
 * meanwhile. email and password are copied; db must stay open until done runs.
 * Invalid input is answered at once (done runs before this returns). */
void accounts_register_async(struct db *db, struct offload *pool, const char *email, const char *password,
                             accounts_done_fn done, void *arg);
void accounts_authenticate_async(struct db *db, struct offload *pool, const char *email, const char *password,
                                 accounts_done_fn done, void *arg);

/* Changes user_id's password to new_password once current verifies against the
 * stored hash (hashing on the offload pool). OUT_INVALID for a new password
 * that is too short or too long, OUT_FORBIDDEN for a wrong current one, with a
 * message; the caller ends the user's other sessions. Passwords are copied. */
void accounts_change_password_async(struct db *db, struct offload *pool, int64_t user_id, const char *current,
                                    const char *new_password, accounts_done_fn done, void *arg);

/* Parses ADMIN_EMAILS (comma-separated) and answers membership, case-insensitively. */
struct admin_list;
struct admin_list *accounts_admins_parse(const char *csv);
bool accounts_is_admin(const struct admin_list *list, const char *email);
void accounts_admins_free(struct admin_list *list);

#endif
