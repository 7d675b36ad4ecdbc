#include "shopd/settings.h"
#include "shopd/db.h"
#include "shared/config.h"
#include "shared/log.h"
#include "shared/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct config_setting shopd_settings_table[] = {
    {.name = "SHOPD_LISTEN", .default_value = "127.0.0.1:8081", .help = "address:port shopd binds"},
    {.name = "SHOPD_WORKERS", .default_value = "", .help = "preforked HTTP workers (empty: number of CPUs)"},
    {.name = "SHOPD_USER", .default_value = "", .help = "user to switch to when started as root"},
    {.name = "DATABASE_URL",
     .default_value = "sqlite:///shop.db",
     .help = "sqlite:///relative.db, sqlite:////absolute.db or sqlite:///:memory:"},
    {.name = "SECRET_KEY", .help = "keys session and CSRF tokens; required outside SHOP_ENV=development"},
    {.name = "SHOP_ENV", .default_value = "production", .help = "production or development"},
    {.name = "ADMIN_EMAILS", .default_value = "", .help = "comma-separated emails of catalog admins"},
    {.name = "TRUSTED_PROXIES",
     .default_value = "127.0.0.1",
     .help = "comma-separated peer addresses whose X-Forwarded-For is believed"},
    {.name = "RATELIMITD_SOCKET", .default_value = "run/ratelimitd.sock", .help = "ratelimitd's unix socket"},
    {.name = "RATELIMIT_ENABLED", .default_value = "1", .help = "0 skips budget checks entirely"},
    {.name = "RATELIMIT_TIMEOUT_MS",
     .default_value = "50",
     .help = "how long a request waits for ratelimitd before it is served anyway"},
    {.name = "SHOPD_MAX_BODY",
     .default_value = "1048576",
     .help = "largest request body in bytes (413 above)"},
    {.name = "COOKIE_SECURE",
     .default_value = "0",
     .help = "1 marks the session cookie Secure (HTTPS sites)"},
    {.name = "SESSION_IDLE_SECONDS", .default_value = "86400", .help = "a session unused this long ends"},
    {.name = "SESSION_MAX_SECONDS",
     .default_value = "604800",
     .help = "a session ends this long after login"},
    {.name = "TEMPLATES_DIR", .default_value = "templates", .help = "HTML templates (Mustache)"},
    {.name = "STATIC_DIR", .default_value = "templates/static", .help = "files served under /static/"},
    {.name = "UPLOADS_DIR",
     .default_value = "uploads",
     .help = "folder of the product images admins upload, served under /uploads/ (created when missing)"},
    {.name = "UPLOAD_MAX_BYTES",
     .default_value = "2097152",
     .help = "largest product image an admin may upload, in bytes"},
    {.name = "AWS_REGION", .default_value = "us-east-1", .alias = "REGION_NAME", .help = "DynamoDB region"},
    {.name = "AWS_ACCESS_KEY_ID", .default_value = "", .help = "AWS credentials for DynamoDB"},
    {.name = "AWS_SECRET_ACCESS_KEY", .default_value = "", .help = "AWS credentials for DynamoDB"},
    {.name = "AWS_SESSION_TOKEN", .default_value = "", .help = "temporary AWS credentials (optional)"},
    {.name = "DYNAMODB_ENDPOINT",
     .default_value = "",
     .help = "DynamoDB endpoint (empty: https://dynamodb.<region>.amazonaws.com)"},
    {.name = "DYNAMODB_TABLE", .default_value = "Orders", .help = "the orders table"},
    {.name = "DISPATCHER_ENABLED", .default_value = "1", .help = "0 runs no dispatcher in this instance"},
    {.name = "DISPATCHER_CONCURRENCY",
     .default_value = "32",
     .help =
         "orders the dispatcher keeps in flight to DynamoDB, each on its own kept-alive connection (1-256)"},
    {.name = "LOG_LEVEL", .default_value = "info", .help = "debug, info, warn or error"},
    {.name = "LOG_FILE",
     .default_value = "",
     .help = "append logs to this file (SIGUSR1 reopens); empty: stderr"},
    {.name = "FLASK_APP", .default_value = "", .help = "accepted from the Flask app's .env and ignored"},
    {.name = "FLASK_ENV", .default_value = "", .help = "accepted from the Flask app's .env and ignored"},
    {.name = "CHECK",
     .is_flag = true,
     .help =
         "check the settings, templates and database schema without starting anything, then exit (0: good)"},
    {.name = "COPY_DATABASE",
     .is_flag = true,
     .help = "copy every row of --from into the empty database --to (any engine to any engine), then exit; "
             "both are migrated to this version's schema first, as a start of shopd would"},
    {.name = "FROM", .default_value = "", .help = "--copy-database: the database URL to copy from"},
    {.name = "TO", .default_value = "", .help = "--copy-database: the empty database URL to copy into"},
    {.name = "CREATE_TABLE",
     .is_flag = true,
     .help = "create the DynamoDB orders table if missing, then exit"},
    {0},
};

static int get_long(struct config *cfg, const char *name, long min, long max, long *out, char *err,
                    size_t errlen)
{
    return config_get_long(cfg, name, min, max, out, err, errlen);
}

static const char *nonempty(const char *s)
{
    return s && *s ? s : NULL;
}

struct shopd_settings *shopd_settings_load(int argc, char **argv, char *err, size_t errlen)
{
    struct config *cfg = config_load("shopd", SHOP_VERSION,
                                     "The shop server: accounts, catalog, carts and checkout over HTTP.",
                                     shopd_settings_table, argc, argv, err, errlen);
    if (!cfg)
        return NULL;
    struct shopd_settings *s = xcalloc(1, sizeof(*s));
    s->cfg = cfg;
    long n;

    enum log_level level;
    if (!log_level_parse(config_get(cfg, "LOG_LEVEL"), &level)) {
        snprintf(err, errlen, "LOG_LEVEL=%s is not one of debug, info, warn, error",
                 config_get(cfg, "LOG_LEVEL"));
        goto fail;
    }
    log_set_level(level);

    if (config_parse_hostport(config_get(cfg, "SHOPD_LISTEN"), s->listen_host, sizeof(s->listen_host),
                              &s->listen_port) < 0) {
        snprintf(err, errlen, "SHOPD_LISTEN=%s is not host:port", config_get(cfg, "SHOPD_LISTEN"));
        goto fail;
    }
    if (*config_get(cfg, "SHOPD_WORKERS")) {
        if (get_long(cfg, "SHOPD_WORKERS", 1, 256, &n, err, errlen) < 0)
            goto fail;
        s->workers = (int)n;
    } else {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        s->workers = cpus > 0 ? (int)(cpus > 64 ? 64 : cpus) : 2;
    }

    s->user = config_get(cfg, "SHOPD_USER");
    if (db_target_parse(config_get(cfg, "DATABASE_URL"), &s->database, err, errlen) < 0)
        goto fail;

    const char *env = config_get(cfg, "SHOP_ENV");
    if (strcmp(env, "development") != 0 && strcmp(env, "production") != 0 && strcmp(env, "test") != 0) {
        snprintf(err, errlen, "SHOP_ENV=%s is not production, development or test", env);
        goto fail;
    }
    s->development = strcmp(env, "production") != 0;
    s->create_table = config_get(cfg, "CREATE_TABLE") && strcmp(config_get(cfg, "CREATE_TABLE"), "1") == 0;
    s->copy_database = config_get(cfg, "COPY_DATABASE") && strcmp(config_get(cfg, "COPY_DATABASE"), "1") == 0;
    if (s->copy_database) {
        if (!nonempty(config_get(cfg, "FROM")) || !nonempty(config_get(cfg, "TO"))) {
            snprintf(err, errlen, "--copy-database needs --from URL and --to URL");
            goto fail;
        }
        if (db_target_parse(config_get(cfg, "FROM"), &s->copy_from, err, errlen) < 0 ||
            db_target_parse(config_get(cfg, "TO"), &s->copy_to, err, errlen) < 0)
            goto fail;
    }
    s->check_only = config_get(cfg, "CHECK") && strcmp(config_get(cfg, "CHECK"), "1") == 0;
    s->secret_key = config_get(cfg, "SECRET_KEY");
    if (!s->secret_key || !*s->secret_key) {
        /* --create-table and --copy-database make no sessions: they need no key. */
        if (!s->development && !s->create_table && !s->copy_database) {
            snprintf(err, errlen, "SECRET_KEY is not set (required unless SHOP_ENV=development)");
            goto fail;
        }
        s->secret_key = "development-only-secret-key";
        if (!s->create_table)
            log_warn("SECRET_KEY is not set: using a fixed development key; never do this in production");
    } else if (strlen(s->secret_key) < 16 && !s->development) {
        snprintf(err, errlen,
                 "SECRET_KEY is too short (at least 16 characters; 32 random bytes recommended)");
        goto fail;
    }

    s->admin_emails = config_get(cfg, "ADMIN_EMAILS");
    s->trusted_proxies = config_get(cfg, "TRUSTED_PROXIES");
    s->ratelimit_socket = config_get(cfg, "RATELIMITD_SOCKET");
    if (config_get_bool(cfg, "RATELIMIT_ENABLED", &s->ratelimit_enabled, err, errlen) < 0)
        goto fail;
    if (get_long(cfg, "RATELIMIT_TIMEOUT_MS", 1, 10000, &s->ratelimit_timeout_ms, err, errlen) < 0)
        goto fail;
    if (get_long(cfg, "SHOPD_MAX_BODY", 1024, 1L << 30, &s->max_body_bytes, err, errlen) < 0)
        goto fail;
    if (config_get_bool(cfg, "COOKIE_SECURE", &s->cookie_secure, err, errlen) < 0)
        goto fail;
    if (get_long(cfg, "SESSION_IDLE_SECONDS", 60, 365L * 86400, &s->session_idle_seconds, err, errlen) < 0 ||
        get_long(cfg, "SESSION_MAX_SECONDS", 60, 365L * 86400, &s->session_max_seconds, err, errlen) < 0)
        goto fail;
    s->templates_dir = config_get(cfg, "TEMPLATES_DIR");
    s->static_dir = config_get(cfg, "STATIC_DIR");
    s->uploads_dir = config_get(cfg, "UPLOADS_DIR");
    if (!s->uploads_dir || !*s->uploads_dir) {
        snprintf(err, errlen, "UPLOADS_DIR is empty");
        goto fail;
    }
    if (get_long(cfg, "UPLOAD_MAX_BYTES", 1024, 64L << 20, &s->upload_max_bytes, err, errlen) < 0)
        goto fail;

    s->aws_region = config_get(cfg, "AWS_REGION");
    if (!s->aws_region || !*s->aws_region) {
        snprintf(err, errlen, "AWS_REGION is empty");
        goto fail;
    }
    s->aws_access_key_id = nonempty(config_get(cfg, "AWS_ACCESS_KEY_ID"));
    s->aws_secret_access_key = nonempty(config_get(cfg, "AWS_SECRET_ACCESS_KEY"));
    s->aws_session_token = nonempty(config_get(cfg, "AWS_SESSION_TOKEN"));
    s->dynamodb_endpoint = nonempty(config_get(cfg, "DYNAMODB_ENDPOINT"));
    s->dynamodb_table = config_get(cfg, "DYNAMODB_TABLE");
    if (!s->dynamodb_table || !*s->dynamodb_table) {
        snprintf(err, errlen, "DYNAMODB_TABLE is empty");
        goto fail;
    }
    if (config_get_bool(cfg, "DISPATCHER_ENABLED", &s->dispatcher_enabled, err, errlen) < 0)
        goto fail;
    if (get_long(cfg, "DISPATCHER_CONCURRENCY", 1, 256, &s->dispatcher_concurrency, err, errlen) < 0)
        goto fail;

    const char *log_file = config_get(cfg, "LOG_FILE");
    if (log_file && *log_file && log_open(log_file) < 0) {
        snprintf(err, errlen, "LOG_FILE=%s cannot be opened", log_file);
        goto fail;
    }
    return s;
fail:
    shopd_settings_free(s);
    return NULL;
}

void shopd_settings_free(struct shopd_settings *s)
{
    if (!s)
        return;
    config_free(s->cfg);
    db_target_free(&s->database);
    db_target_free(&s->copy_from);
    db_target_free(&s->copy_to);
    free(s);
}
