#include "settings.h"

#include "shared/config.h"
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct config_setting settings_table[] = {
    {.name = "BALANCER_LISTEN",
     .default_value = "0.0.0.0:8080",
     .help = "address:port of the public listener"},
    {.name = "BALANCER_BACKENDS",
     .default_value = "127.0.0.1:8081,127.0.0.1:8082",
     .help = "comma-separated host:port[=weight] of the shop servers"},
    {.name = "BALANCER_ADMIN_LISTEN",
     .default_value = "127.0.0.1:8090",
     .help = "address:port for /status and /metrics (empty: none)"},
    {.name = "BALANCER_HEALTH_PATH", .default_value = "/healthz", .help = "path of the active health check"},
    {.name = "BALANCER_HEALTH_INTERVAL_MS", .default_value = "2000", .help = "time between health checks"},
    {.name = "BALANCER_HEALTH_TIMEOUT_MS",
     .default_value = "1000",
     .help = "a health check slower than this fails"},
    {.name = "BALANCER_HEALTH_FALL",
     .default_value = "3",
     .help = "consecutive failures that mark a backend down"},
    {.name = "BALANCER_HEALTH_RISE",
     .default_value = "2",
     .help = "consecutive good checks that bring it back"},
    {.name = "BALANCER_CONNECT_TIMEOUT_MS", .default_value = "2000", .help = "connecting to a backend"},
    {.name = "BALANCER_HEADER_TIMEOUT_MS",
     .default_value = "10000",
     .help = "a client must send a whole request head within this time"},
    {.name = "BALANCER_IDLE_TIMEOUT_MS",
     .default_value = "60000",
     .help = "idle client keep-alive connections"},
    {.name = "BALANCER_CLIENT_TIMEOUT_MS",
     .default_value = "30000",
     .help = "a client that sends no body byte or reads no answer byte for this long is cut off"},
    {.name = "BALANCER_BACKEND_TIMEOUT_MS",
     .default_value = "30000",
     .help = "a backend that sends no answer byte for this long fails the request (504)"},
    {.name = "BALANCER_MAX_CONNECTIONS", .default_value = "10000", .help = "concurrent client connections"},
    {.name = "BALANCER_MAX_HEADER_BYTES", .default_value = "16384", .help = "request head size (431 beyond)"},
    {.name = "BALANCER_MAX_BODY_BYTES",
     .default_value = "10485760",
     .help = "request body size (413 beyond)"},
    {.name = "BALANCER_POOL_SIZE",
     .default_value = "1024",
     .help = "idle keep-alive connections kept per backend (above the peak load, or it reconnects)"},
    {.name = "BALANCER_POOL_IDLE_MS",
     .default_value = "20000",
     .help = "an idle pooled backend connection is closed after this"},
    {.name = "BALANCER_SHUTDOWN_TIMEOUT_MS",
     .default_value = "30000",
     .help = "SIGTERM waits this long for in-flight requests"},
    {.name = "BALANCER_ACCESS_LOG", .default_value = "1", .help = "one log line per request (1 or 0)"},
    {.name = "BALANCER_POLL_YIELD",
     .default_value = "1",
     .help = "before each poll, let other processes waiting for the core (shopd on this host) run first (1 "
             "or 0)"},
    {.name = "BALANCER_TRUSTED_PROXIES",
     .default_value = "",
     .help = "peers (a TLS terminator, a CDN) whose X-Forwarded-For and X-Forwarded-Proto are kept and "
             "appended to; "
             "from anyone else they are replaced"},
    {.name = "CHECK",
     .is_flag = true,
     .help = "check the settings and the backends list without listening, then exit (0: good)"},
    {.name = "BALANCER_TLS_LISTEN",
     .default_value = "",
     .help = "address:port of the HTTPS listener, beside the plain one (empty: no HTTPS)"},
    {.name = "BALANCER_TLS_CERT",
     .default_value = "",
     .help = "PEM file of the default certificate with its full chain (SIGHUP re-reads it)"},
    {.name = "BALANCER_TLS_KEY",
     .default_value = "",
     .help = "PEM private key of BALANCER_TLS_CERT (empty: in that file)"},
    {.name = "BALANCER_TLS_CERTS",
     .default_value = "",
     .help =
         "more certificates chosen by SNI: a folder of *.pem (chain and key in each) or a comma-separated "
         "list of cert.pem[:key.pem]"},
    {.name = "BALANCER_TLS_CIPHERS",
     .default_value = TLS_INTERMEDIATE_CIPHERS,
     .help =
         "TLS 1.2 cipher list (OpenSSL syntax; default Mozilla intermediate; TLS 1.3 suites are OpenSSL's)"},
    {.name = "BALANCER_HTTPS_REDIRECT",
     .default_value = "0",
     .help = "1: the plain listener answers every request with 308 to the same host and path over HTTPS"},
    {.name = "BALANCER_HTTPS_PORT",
     .default_value = "0",
     .help =
         "port named in those redirects (0: the port of BALANCER_TLS_LISTEN; 443 is left out of the URL)"},
    {.name = "BALANCER_HSTS_MAX_AGE",
     .default_value = "0",
     .help =
         "seconds of Strict-Transport-Security sent on HTTPS answers (0: no header; 63072000 is two years)"},
    {.name = "LOG_LEVEL", .default_value = "info", .help = "debug, info, warn or error"},
    {.name = "LOG_FILE",
     .default_value = "",
     .help = "append the log to this file (SIGUSR1 reopens); empty: stderr"},
    {0},
};

struct long_setting {
    const char *name;
    long min, max;
    size_t offset;
};

#define LS(n, lo, hi, field)                                                                                 \
    {                                                                                                        \
        n, lo, hi, offsetof(struct balancer_settings, field)                                                 \
    }
static const struct long_setting longs[] = {
    LS("BALANCER_HEALTH_INTERVAL_MS", 10, 3600000, health_interval_ms),
    LS("BALANCER_HEALTH_TIMEOUT_MS", 10, 600000, health_timeout_ms),
    LS("BALANCER_HEALTH_FALL", 1, 100, health_fall),
    LS("BALANCER_HEALTH_RISE", 1, 100, health_rise),
    LS("BALANCER_CONNECT_TIMEOUT_MS", 10, 600000, connect_timeout_ms),
    LS("BALANCER_HEADER_TIMEOUT_MS", 10, 3600000, header_timeout_ms),
    LS("BALANCER_IDLE_TIMEOUT_MS", 10, 86400000, idle_timeout_ms),
    LS("BALANCER_CLIENT_TIMEOUT_MS", 10, 86400000, client_timeout_ms),
    LS("BALANCER_BACKEND_TIMEOUT_MS", 10, 86400000, backend_timeout_ms),
    LS("BALANCER_MAX_CONNECTIONS", 1, 1000000, max_connections),
    LS("BALANCER_MAX_HEADER_BYTES", 1024, 1048576, max_header_bytes),
    LS("BALANCER_MAX_BODY_BYTES", 0, 1L << 40, max_body_bytes),
    LS("BALANCER_POOL_SIZE", 0, 100000, pool_size),
    LS("BALANCER_POOL_IDLE_MS", 10, 86400000, pool_idle_ms),
    LS("BALANCER_SHUTDOWN_TIMEOUT_MS", 0, 3600000, shutdown_timeout_ms),
    LS("BALANCER_HSTS_MAX_AGE", 0, 315360000, hsts_max_age),
    LS("BALANCER_HTTPS_PORT", 0, 65535, https_port),
};

static int check_hostport(const char *name, const char *value, char *err, size_t errlen)
{
    char host[256];
    int port;
    if (config_parse_hostport(value, host, sizeof(host), &port) < 0) {
        snprintf(err, errlen, "%s=%s is not address:port", name, value);
        return -1;
    }
    return 0;
}

/* Copies value into a fixed field, refusing what does not fit. */
static int copy_setting(char *dst, size_t cap, const char *name, const char *value, char *err, size_t errlen)
{
    if (strlen(value) >= cap) {
        snprintf(err, errlen, "%s is longer than %zu bytes", name, cap - 1);
        return -1;
    }
    memcpy(dst, value, strlen(value) + 1);
    return 0;
}

static int load_tls(struct config *cfg, struct balancer_settings *out, char *err, size_t errlen)
{
    const char *listen = config_get(cfg, "BALANCER_TLS_LISTEN");
    listen = listen ? listen : "";
    if (*listen && check_hostport("BALANCER_TLS_LISTEN", listen, err, errlen) < 0)
        return -1;
    struct {
        const char *name;
        char *dst;
        size_t cap;
    } strs[] = {
        {"BALANCER_TLS_LISTEN", out->tls_listen, sizeof(out->tls_listen)},
        {"BALANCER_TLS_CERT", out->tls_cert, sizeof(out->tls_cert)},
        {"BALANCER_TLS_KEY", out->tls_key, sizeof(out->tls_key)},
        {"BALANCER_TLS_CERTS", out->tls_certs, sizeof(out->tls_certs)},
        {"BALANCER_TLS_CIPHERS", out->tls_ciphers, sizeof(out->tls_ciphers)},
    };
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        const char *v = config_get(cfg, strs[i].name);
        if (copy_setting(strs[i].dst, strs[i].cap, strs[i].name, v ? v : "", err, errlen) < 0)
            return -1;
    }
    if (*listen && !out->tls_cert[0] && !out->tls_certs[0]) {
        snprintf(err, errlen, "BALANCER_TLS_LISTEN needs BALANCER_TLS_CERT or BALANCER_TLS_CERTS");
        return -1;
    }
    if (config_get_bool(cfg, "BALANCER_HTTPS_REDIRECT", &out->https_redirect, err, errlen) < 0)
        return -1;
    if (out->https_port == 0 && *listen) {
        char host[256];
        int port = 0;
        config_parse_hostport(listen, host, sizeof(host), &port);
        out->https_port = port;
    }
    if (out->https_redirect && out->https_port == 0) {
        snprintf(err, errlen, "BALANCER_HTTPS_REDIRECT=1 needs BALANCER_TLS_LISTEN or BALANCER_HTTPS_PORT");
        return -1;
    }
    return 0;
}

int balancer_settings_load(struct balancer_settings *out, int argc, char **argv, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct config *cfg = config_load("balancer", SHOP_VERSION,
                                     "Round-robin HTTP/1.1 load balancer in front of the shop servers.",
                                     settings_table, argc, argv, err, errlen);
    if (!cfg)
        return -1;
    int rc = -1;
    const char *listen = config_get(cfg, "BALANCER_LISTEN");
    const char *admin = config_get(cfg, "BALANCER_ADMIN_LISTEN");
    const char *path = config_get(cfg, "BALANCER_HEALTH_PATH");
    const char *level = config_get(cfg, "LOG_LEVEL");
    const char *file = config_get(cfg, "LOG_FILE");
    if (!listen || check_hostport("BALANCER_LISTEN", listen, err, errlen) < 0)
        goto done;
    snprintf(out->listen, sizeof(out->listen), "%s", listen);
    if (admin && *admin && check_hostport("BALANCER_ADMIN_LISTEN", admin, err, errlen) < 0)
        goto done;
    snprintf(out->admin_listen, sizeof(out->admin_listen), "%s", admin ? admin : "");
    if (!path || path[0] != '/' || strlen(path) >= sizeof(out->health_path) || strpbrk(path, " \r\n")) {
        snprintf(err, errlen, "BALANCER_HEALTH_PATH must be a path starting with /");
        goto done;
    }
    snprintf(out->health_path, sizeof(out->health_path), "%s", path);
    char why[400];
    if (backend_parse_list(config_get(cfg, "BALANCER_BACKENDS"), &out->backends, &out->nbackends, why,
                           sizeof(why)) < 0) {
        snprintf(err, errlen, "BALANCER_BACKENDS: %s", why);
        goto done;
    }
    for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++) {
        long *field = (long *)((char *)out + longs[i].offset);
        if (config_get_long(cfg, longs[i].name, longs[i].min, longs[i].max, field, err, errlen) < 0)
            goto done;
    }
    if (config_get_bool(cfg, "BALANCER_ACCESS_LOG", &out->access_log, err, errlen) < 0)
        goto done;
    if (config_get_bool(cfg, "BALANCER_POLL_YIELD", &out->poll_yield, err, errlen) < 0)
        goto done;
    if (load_tls(cfg, out, err, errlen) < 0)
        goto done;
    if (!level || !log_level_parse(level, &out->log_level)) {
        snprintf(err, errlen, "LOG_LEVEL=%s is not debug, info, warn or error", level ? level : "");
        goto done;
    }
    snprintf(out->log_file, sizeof(out->log_file), "%s", file ? file : "");
    out->check_only = config_get(cfg, "CHECK") && strcmp(config_get(cfg, "CHECK"), "1") == 0;
    const char *trusted = config_get(cfg, "BALANCER_TRUSTED_PROXIES");
    if (trusted && strlen(trusted) >= sizeof(out->trusted_proxies)) {
        snprintf(err, errlen, "BALANCER_TRUSTED_PROXIES is longer than %zu characters",
                 sizeof(out->trusted_proxies) - 1);
        goto done;
    }
    snprintf(out->trusted_proxies, sizeof(out->trusted_proxies), "%s", trusted ? trusted : "");
    rc = 0;
done:
    config_free(cfg);
    if (rc < 0)
        balancer_settings_cleanup(out);
    return rc;
}

void balancer_settings_cleanup(struct balancer_settings *s)
{
    free(s->backends);
    s->backends = NULL;
    s->nbackends = 0;
}
