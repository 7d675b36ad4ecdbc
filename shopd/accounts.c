#include "shopd/accounts.h"
#include "shopd/offload.h"
#include "shared/log.h"
#include "shared/password.h"
#include "shared/xalloc.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char SQL_INSERT_USER[] =
    "INSERT INTO users (email, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id";
/* Emails match whatever their case: SQLite's column is COLLATE NOCASE (and
   its index serves the lookup); PostgreSQL's unique index is on lower(email). */
static const char SQL_FIND_USER[] = "SELECT id, password_hash FROM users WHERE email = $1";
static const char SQL_FIND_USER_PG[] = "SELECT id, password_hash FROM users WHERE lower(email) = lower($1)";
static const char SQL_REHASH[] = "UPDATE users SET password_hash = $2 WHERE id = $1";
static const char SQL_USER_HASH[] = "SELECT password_hash FROM users WHERE id = $1";

bool accounts_email_valid(const char *email)
{
    size_t n = strlen(email);
    if (n < 3 || n > ACCOUNTS_MAX_EMAIL)
        return false;
    const char *at = strchr(email, '@');
    if (!at || at == email || strchr(at + 1, '@'))
        return false;
    for (const char *c = email; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f || *c == '<' || *c == '>' || *c == ',' || *c == '"')
            return false;
    const char *domain = at + 1;
    const char *dot = strrchr(domain, '.');
    if (!dot || dot == domain || dot[1] == '\0' || strstr(domain, ".."))
        return false;
    return domain[0] != '.';
}

static enum outcome validate_password(const char *password, char *msg, size_t msglen)
{
    size_t plen = strlen(password);
    if (plen < ACCOUNTS_MIN_PASSWORD) {
        snprintf(msg, msglen, "Password must be at least %d characters", ACCOUNTS_MIN_PASSWORD);
        return OUT_INVALID;
    }
    if (plen > ACCOUNTS_MAX_PASSWORD) {
        snprintf(msg, msglen, "Password must be at most %d characters", ACCOUNTS_MAX_PASSWORD);
        return OUT_INVALID;
    }
    return OUT_OK;
}

static enum outcome validate_new_account(const char *email, const char *password, char *msg, size_t msglen)
{
    if (!accounts_email_valid(email)) {
        snprintf(msg, msglen, "Invalid email address");
        return OUT_INVALID;
    }
    return validate_password(password, msg, msglen);
}

/* Writes the new user with an already computed hash. */
static enum outcome insert_user(struct db *db, const char *email, const char *hash, int64_t *user_id,
                                char *msg, size_t msglen)
{
    struct db_stmt *st = db_stmt(db, SQL_INSERT_USER);
    db_bind_text(st, 1, email);
    db_bind_text(st, 2, hash);
    db_bind_int64(st, 3, (int64_t)time(NULL));
    int rc = db_step(st);
    if (rc == DB_ROW) {
        *user_id = db_column_int64(st, 0);
        rc = db_step(st); /* the write is done (and may still fail) only then */
    }
    enum db_error e = rc == DB_ERROR ? db_error(db) : DB_ERR_NONE;
    db_done(st);
    if (e == DB_ERR_CONFLICT) {
        snprintf(msg, msglen, "Email already registered");
        return OUT_CONFLICT;
    }
    if (rc != DB_DONE) {
        db_log_error(db, "accounts: register failed");
        snprintf(msg, msglen, "Registration failed");
        return OUT_ERROR;
    }
    return OUT_OK;
}

/* --- asynchronous forms -------------------------------------------------- */

struct account_job {
    struct db *db;
    char *email, *password;
    char *stored; /* login: the stored hash (NULL: unknown email) */
    int64_t user_id;
    bool verified;
    char *new_hash; /* register: the hash; login: an upgraded hash when the stored one is outdated */
    accounts_done_fn done;
    void *arg;
};

static void job_free(struct account_job *j)
{
    OPENSSL_cleanse(j->password, strlen(j->password));
    free(j->password);
    free(j->email);
    free(j->stored);
    free(j->new_hash);
    free(j);
}

static struct account_job *job_new(struct db *db, const char *email, const char *password,
                                   accounts_done_fn done, void *arg)
{
    struct account_job *j = xcalloc(1, sizeof(*j));
    j->db = db;
    j->email = xstrdup(email);
    j->password = xstrdup(password);
    j->done = done;
    j->arg = arg;
    return j;
}

static void register_work(void *arg)
{
    struct account_job *j = arg;
    j->new_hash = password_hash(j->password);
}

static void register_done(void *arg)
{
    struct account_job *j = arg;
    char msg[256] = "";
    int64_t id = 0;
    enum outcome o = insert_user(j->db, j->email, j->new_hash, &id, msg, sizeof(msg));
    j->done(o, id, msg, j->arg);
    job_free(j);
}

void accounts_register_async(struct db *db, struct offload *pool, const char *email, const char *password,
                             accounts_done_fn done, void *arg)
{
    char msg[256];
    enum outcome o = validate_new_account(email, password, msg, sizeof(msg));
    if (o != OUT_OK) {
        done(o, 0, msg, arg);
        return;
    }
    offload_run(pool, register_work, register_done, job_new(db, email, password, done, arg));
}

static void login_work(void *arg)
{
    struct account_job *j = arg;
    if (!j->stored) {
        password_burn_time(j->password);
        return;
    }
    j->verified = password_verify(j->password, j->stored);
    if (j->verified && password_needs_rehash(j->stored))
        j->new_hash = password_hash(j->password);
}

static void login_done(void *arg)
{
    struct account_job *j = arg;
    if (j->verified && j->new_hash) {
        struct db_stmt *up = db_stmt(j->db, SQL_REHASH);
        db_bind_int64(up, 1, j->user_id);
        db_bind_text(up, 2, j->new_hash);
        if (db_step(up) != DB_DONE)
            log_warn("accounts: could not upgrade password hash of user %lld: %s", (long long)j->user_id,
                     db_errmsg(j->db));
        db_done(up);
    }
    if (j->verified)
        j->done(OUT_OK, j->user_id, "", j->arg);
    else
        j->done(OUT_UNAUTHORIZED, 0, "Invalid credentials", j->arg);
    job_free(j);
}

void accounts_authenticate_async(struct db *db, struct offload *pool, const char *email, const char *password,
                                 accounts_done_fn done, void *arg)
{
    struct db_stmt *st = db_stmt_for(db, SQL_FIND_USER, SQL_FIND_USER_PG);
    db_bind_text(st, 1, email);
    int rc = db_step(st);
    struct account_job *j = job_new(db, email, password, done, arg);
    if (rc == DB_ROW) {
        j->user_id = db_column_int64(st, 0);
        j->stored = xstrdup(db_column_text(st, 1));
    }
    db_done(st);
    if (rc != DB_ROW && rc != DB_DONE) {
        db_log_error(db, "accounts: lookup failed");
        job_free(j);
        done(OUT_ERROR, 0, "Login failed", arg);
        return;
    }
    offload_run(pool, login_work, login_done, j);
}

/* --- password change: j->email holds the new password, j->password the current one --- */

static void change_work(void *arg)
{
    struct account_job *j = arg;
    j->verified = password_verify(j->password, j->stored);
    if (j->verified)
        j->new_hash = password_hash(j->email);
}

static void change_done(void *arg)
{
    struct account_job *j = arg;
    enum outcome o = OUT_FORBIDDEN;
    const char *msg = "Current password is wrong";
    if (j->verified) {
        struct db_stmt *up = db_stmt(j->db, SQL_REHASH);
        db_bind_int64(up, 1, j->user_id);
        db_bind_text(up, 2, j->new_hash);
        int rc = db_step(up);
        db_done(up);
        o = rc == DB_DONE ? OUT_OK : OUT_ERROR;
        msg = rc == DB_DONE ? "" : "The password could not be changed";
        if (rc != DB_DONE)
            db_log_error(j->db, "accounts: password change of user %lld failed", (long long)j->user_id);
    }
    j->done(o, j->user_id, msg, j->arg);
    OPENSSL_cleanse(j->email, strlen(j->email));
    job_free(j);
}

void accounts_change_password_async(struct db *db, struct offload *pool, int64_t user_id, const char *current,
                                    const char *new_password, accounts_done_fn done, void *arg)
{
    char msg[256];
    enum outcome o = validate_password(new_password, msg, sizeof(msg));
    if (o != OUT_OK) {
        done(o, user_id, msg, arg);
        return;
    }
    struct db_stmt *st = db_stmt(db, SQL_USER_HASH);
    db_bind_int64(st, 1, user_id);
    int rc = db_step(st);
    char *stored = rc == DB_ROW ? xstrdup(db_column_text(st, 0)) : NULL;
    db_done(st);
    if (!stored) {
        if (rc != DB_DONE)
            db_log_error(db, "accounts: lookup of user %lld failed", (long long)user_id);
        done(OUT_ERROR, user_id, "The password could not be changed", arg);
        return;
    }
    struct account_job *j = job_new(db, new_password, current, done, arg);
    j->user_id = user_id;
    j->stored = stored;
    offload_run(pool, change_work, change_done, j);
}

struct admin_list {
    char **emails;
    size_t count;
};

struct admin_list *accounts_admins_parse(const char *csv)
{
    struct admin_list *l = xcalloc(1, sizeof(*l));
    if (!csv)
        return l;
    char *copy = xstrdup(csv), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*t))
            t++;
        char *e = t + strlen(t);
        while (e > t && isspace((unsigned char)e[-1]))
            *--e = '\0';
        if (!*t)
            continue;
        l->emails = xrealloc(l->emails, (l->count + 1) * sizeof(char *));
        l->emails[l->count++] = xstrdup(t);
    }
    free(copy);
    return l;
}

bool accounts_is_admin(const struct admin_list *list, const char *email)
{
    for (size_t i = 0; list && email && i < list->count; i++)
        if (strcasecmp(list->emails[i], email) == 0)
            return true;
    return false;
}

void accounts_admins_free(struct admin_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++)
        free(list->emails[i]);
    free(list->emails);
    free(list);
}
