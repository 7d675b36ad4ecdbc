/* settings: shopd's configuration, read with shared/config.h and checked once.
 *
 * The table of settings (names, defaults, help) lives in settings.c; this struct
 * is the parsed, validated form the master and the workers use. SIGHUP builds a
 * new one; a worker keeps the one it was started with. */
#ifndef SHOPD_SETTINGS_H
#define SHOPD_SETTINGS_H

#include "shopd/db.h"

#include <stdbool.h>
#include <stddef.h>

struct shopd_settings {
    struct config *cfg; /* the raw settings (owned) */
    char listen_host[256];
    int listen_port;
    int workers;
    const char *user; /* SHOPD_USER: switch to it when started as root */
    /* DATABASE_URL; for sqlite:///:memory: the master sets .path to a file on /dev/shm */
    struct db_target database;
    const char *secret_key; /* never logged */
    bool development;       /* SHOP_ENV=development */
    const char *admin_emails;
    const char *trusted_proxies;
    const char *ratelimit_socket;
    bool ratelimit_enabled;
    long ratelimit_timeout_ms;
    long max_body_bytes;
    bool cookie_secure;
    long session_idle_seconds;
    long session_max_seconds;
    const char *templates_dir;
    const char *static_dir;
    /* UPLOADS_DIR, the uploaded product images; UPLOAD_MAX_BYTES, the largest
       one (upload routes take bodies this large, however small SHOPD_MAX_BODY). */
    const char *uploads_dir;
    long upload_max_bytes;
    bool create_table;          /* --create-table: make the DynamoDB table and exit */
    bool copy_database;         /* --copy-database --from URL --to URL */
    struct db_target copy_from; /* parsed only for --copy-database */
    struct db_target copy_to;
    bool check_only; /* --check: validate everything it would read, start nothing */
    /* DynamoDB (the dispatcher) */
    const char *aws_region;
    const char *aws_access_key_id;
    const char *aws_secret_access_key;
    const char *aws_session_token;
    const char *dynamodb_endpoint; /* NULL: the region's AWS endpoint */
    const char *dynamodb_table;
    bool dispatcher_enabled;
    long dispatcher_concurrency; /* PutItem requests in flight at once */
};

/* Loads and validates the settings from argv (see shared/config.h for the
 * sources). Returns a new struct (free with settings_free) or NULL with a
 * one-line reason in err. --help and --version exit from inside. */
struct shopd_settings *shopd_settings_load(int argc, char **argv, char *err, size_t errlen);
void shopd_settings_free(struct shopd_settings *s);

#endif
