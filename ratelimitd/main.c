/* ratelimitd: token-bucket budgets for the shop's workers, kept in Redis. */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimitd/metrics_http.h"
#include "ratelimitd/redis_store.h"
#include "ratelimitd/rules.h"
#include "ratelimitd/server.h"
#include "ratelimitd/stats.h"
#include "shared/config.h"
#include "shared/log.h"
#include "shared/xalloc.h"

static const struct config_setting settings[] = {
    {.name = "RATELIMITD_SOCKET", .default_value = "run/ratelimitd.sock", .help = "unix socket to listen on"},
    {.name = "RATELIMITD_TCP",
     .default_value = "",
     .help = "also listen on this loopback host:port (empty: no TCP)"},
    {.name = "REDIS_URL",
     .default_value = "redis://127.0.0.1:6379/0",
     .help = "redis://[:password@]host:port/db or unix:///path/redis.sock[?db=N]"},
    {.name = "RATELIMIT_RULES", .default_value = "deploy/ratelimit.rules", .help = "the rules file"},
    {.name = "RATELIMITD_REDIS_TIMEOUT_MS",
     .default_value = "100",
     .help = "a Redis call slower than this is decided from local buckets"},
    {.name = "RATELIMITD_MAX_CONNECTIONS",
     .default_value = "1000",
     .help = "client connections open at once"},
    {.name = "RATELIMITD_METRICS_LISTEN",
     .default_value = "",
     .help = "serve Prometheus metrics at http://host:port/metrics (empty: off)"},
    {.name = "LOG_LEVEL", .default_value = "info", .help = "debug, info, warn or error"},
    {.name = "LOG_FILE", .help = "append the log to this file instead of stderr (SIGUSR1 reopens it)"},
    {0},
};

struct daemon {
    struct event_base *base;
    struct rld_server *server;
    struct event *deadline;
    bool stopping;
};

static void on_drained(void *arg)
{
    struct daemon *d = arg;
    event_base_loopexit(d->base, NULL);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    log_warn("connections still open after 3 s; stopping anyway");
    event_base_loopexit(d->base, NULL);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    if (d->stopping)
        return;
    d->stopping = true;
    log_info("signal %d: no new connections; answering what is pending", (int)sig);
    struct timeval tv = {3, 0};
    d->deadline = evtimer_new(d->base, on_deadline, d);
    evtimer_add(d->deadline, &tv);
    rld_server_shutdown(d->server, on_drained, d);
}

static void on_reopen_signal(evutil_socket_t sig, short what, void *arg)
{
    log_reopen();
    log_info("log reopened");
}

int main(int argc, char **argv)
{
    char err[512];
    int rc = 2;
    struct rld_rules *rules = NULL;
    struct daemon d = {0};
    struct rld_stats stats = {0};
    struct rld_store *store = NULL;
    struct rld_metrics_http *metrics = NULL;
    struct event *sigs[3] = {0};
    log_init("ratelimitd");
    struct config *cfg = config_load("ratelimitd", SHOP_VERSION,
                                     "rate-limiter daemon: token buckets in Redis behind a line protocol",
                                     settings, argc, argv, err, sizeof(err));
    if (!cfg)
        goto out;
    enum log_level level;
    if (!log_level_parse(config_get(cfg, "LOG_LEVEL"), &level)) {
        snprintf(err, sizeof(err), "LOG_LEVEL must be debug, info, warn or error, not '%s'",
                 config_get(cfg, "LOG_LEVEL"));
        goto out;
    }
    log_set_level(level);
    const char *log_file = config_get(cfg, "LOG_FILE");
    if (log_file && log_file[0] && log_open(log_file) < 0) {
        snprintf(err, sizeof(err), "LOG_FILE: cannot open %s: %s", log_file, strerror(errno));
        goto out;
    }
    long timeout_ms, max_conns;
    struct rld_redis_addr addr;
    if (config_get_long(cfg, "RATELIMITD_REDIS_TIMEOUT_MS", 1, 10000, &timeout_ms, err, sizeof(err)) < 0 ||
        config_get_long(cfg, "RATELIMITD_MAX_CONNECTIONS", 1, 1000000, &max_conns, err, sizeof(err)) < 0 ||
        rld_redis_parse_url(config_get(cfg, "REDIS_URL"), &addr, err, sizeof(err)) < 0 ||
        !(rules = rld_rules_load(config_get(cfg, "RATELIMIT_RULES"), err, sizeof(err))))
        goto out;
    const char *sock = config_get(cfg, "RATELIMITD_SOCKET");
    if (!sock || !sock[0]) {
        snprintf(err, sizeof(err), "RATELIMITD_SOCKET must not be empty");
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);

    d.base = event_base_new();
    stats.rule_results = xcalloc(rules->count * RLD_RESULTS, sizeof(*stats.rule_results));
    store = rld_store_new(d.base, &addr, (int)timeout_ms, &stats);
    struct rld_server_config scfg = {
        .unix_path = sock, .tcp = config_get(cfg, "RATELIMITD_TCP"), .max_connections = max_conns};
    d.server = rld_server_new(d.base, &scfg, rules, store, &stats, err, sizeof(err));
    if (!d.server)
        goto out;
    const char *metrics_listen = config_get(cfg, "RATELIMITD_METRICS_LISTEN");
    if (metrics_listen && metrics_listen[0]) {
        metrics = rld_metrics_http_new(d.base, metrics_listen, rules, &stats, err, sizeof(err));
        if (!metrics)
            goto out;
        log_info("metrics at http://%s/metrics", metrics_listen);
    }
    sigs[0] = evsignal_new(d.base, SIGTERM, on_stop_signal, &d);
    sigs[1] = evsignal_new(d.base, SIGINT, on_stop_signal, &d);
    sigs[2] = evsignal_new(d.base, SIGUSR1, on_reopen_signal, &d);
    for (int i = 0; i < 3; i++)
        evsignal_add(sigs[i], NULL);
    log_info("listening on %s%s%s; %zu rules from %s", sock, scfg.tcp && scfg.tcp[0] ? " and " : "",
             scfg.tcp ? scfg.tcp : "", rules->count, config_get(cfg, "RATELIMIT_RULES"));

    event_base_dispatch(d.base);
    rc = 0;

out:
    if (rc != 0)
        fprintf(stderr, "ratelimitd: %s\n", err);
    rld_metrics_http_free(metrics);
    /* The store first: calls still in flight are answered (locally) while their connections exist. */
    rld_store_free(store);
    rld_server_free(d.server);
    for (int i = 0; i < 3; i++)
        if (sigs[i])
            event_free(sigs[i]);
    if (d.deadline)
        event_free(d.deadline);
    if (d.base)
        event_base_free(d.base);
    rld_rules_free(rules);
    free(stats.rule_results);
    if (rc == 0)
        log_info("stopped");
    config_free(cfg);
    return rc;
}
