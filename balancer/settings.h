/* settings: the balancer's configuration (BALANCER_* settings, LOG_LEVEL, LOG_FILE).
 *
 * Loaded through shared/config.h, so every setting may come from its default,
 * .env (or --env FILE), the environment or a flag. SIGHUP loads them again the
 * same way. */
#ifndef BALANCER_SETTINGS_H
#define BALANCER_SETTINGS_H

#include "backend.h"
#include "shared/config.h"
#include "shared/log.h"

#include <stdbool.h>
#include <stddef.h>

struct balancer_settings {
    char listen[300];
    char admin_listen[300];        /* empty: no admin listener */
    struct backend_spec *backends; /* heap, nbackends entries */
    size_t nbackends;
    char health_path[256];
    long health_interval_ms, health_timeout_ms, health_fall, health_rise;
    long connect_timeout_ms, header_timeout_ms, idle_timeout_ms, client_timeout_ms, backend_timeout_ms;
    long max_connections, max_header_bytes, max_body_bytes, pool_size, pool_idle_ms, shutdown_timeout_ms;
    bool access_log;
    bool check_only; /* --check: validate and exit */
    bool poll_yield; /* sched_yield() before each poll (see balancer_run_loop) */
    /* TLS (see tls.h); tls_listen empty: no TLS listener. */
    char tls_listen[300];
    char tls_cert[1024], tls_key[1024], tls_certs[4096], tls_ciphers[1024];
    bool https_redirect; /* the plain listener answers 308 to https:// */
    long hsts_max_age;   /* Strict-Transport-Security max-age on TLS answers; 0: none */
    long https_port;     /* the port named in redirects (from tls_listen, or BALANCER_HTTPS_PORT) */
    enum log_level log_level;
    char log_file[1024];
    char trusted_proxies[1024]; /* BALANCER_TRUSTED_PROXIES */
};

/* The settings table (NULL-name terminated), for --help and tests. */
extern const struct config_setting settings_table[];

/* Loads and validates every setting. `--help`/`--version` print and exit 0.
 * Returns 0 and fills *out (free its backends with settings_cleanup), or -1 with
 * a one-line reason in err. */
int balancer_settings_load(struct balancer_settings *out, int argc, char **argv, char *err, size_t errlen);
void balancer_settings_cleanup(struct balancer_settings *s);

#endif
