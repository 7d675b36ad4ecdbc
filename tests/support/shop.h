/* shop: start a real shopd for a test, on a free loopback port, with its own
 * temporary folder, and stop it (and its workers) afterwards. */
#ifndef TESTS_SUPPORT_SHOP_H
#define TESTS_SUPPORT_SHOP_H

#include "harness.h"

struct shop_server {
    struct harness_proc *proc;
    int port;
    char base[64];      /* "http://127.0.0.1:PORT" */
    char *dir;          /* temporary working folder */
    char *log_path;     /* shopd's stderr */
    char *database_url; /* the DATABASE_URL it runs on (a relative SQLite path made absolute) */
};

/* Starts shopd with an in-memory database (on PostgreSQL, see test_database.h:
 * a fresh database of the run-wide server), 2 workers, rate limiting and the
 * dispatcher off, ADMIN_EMAILS=admin@example.com, templates from the checkout;
 * extra_env ("K=V", NULL-terminated, may be NULL) overrides or adds settings.
 * Waits until /healthz answers; aborts the test (cr_assert) if it does not. */
struct shop_server *shop_start(const char *const extra_env[]);
/* SIGTERM, wait, clean up; returns shopd's wait status. NULL is a no-op. */
int shop_stop(struct shop_server *s);
/* "base + path" in a buffer of the calling thread (valid until its next call). */
const char *shop_url(const struct shop_server *s, const char *path);

/* Registers email/password and logs the client in (asserts success). */
void shop_register_login(struct shop_server *s, struct http_client *c, const char *email,
                         const char *password);

#endif
