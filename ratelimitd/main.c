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
#include "shared/readiness.h"
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
    {.name = "CHECK",
     .is_flag = true,
     .help = "check the settings and the rules file without listening or connecting, then exit (0: good)"},
    {.name = "LOG_LEVEL", .default_value = "info", .help = "debug, info, warn or error"},
    {.name = "LOG_FILE", .help = "append the log to this file instead of stderr (SIGUSR1 reopens it)"},
    {0},
};

/* A rule set replaced by a reload: checks sent before it may still point into it. */
struct retired_rules {
    struct rld_rules *rules;
    struct retired_rules *next;
};

struct daemon {
    struct event_base *base;
    struct rld_server *server;
    struct rld_metrics_http *metrics;
    struct rld_stats *stats;
    struct rld_rules *rules; /* in force */
    struct retired_rules *retired;
    const struct config *started; /* the settings at start: what a restart would change */
    int argc;
    char **argv;
    struct event *deadline;
    bool stopping;
    unsigned long reloads;
};

/* Settings read once at start; a reload that changes them says a restart is needed. */
static const char *const restart_settings[] = {"RATELIMITD_SOCKET",
                                               "RATELIMITD_TCP",
                                               "REDIS_URL",
                                               "RATELIMITD_REDIS_TIMEOUT_MS",
                                               "RATELIMITD_MAX_CONNECTIONS",
                                               "RATELIMITD_METRICS_LISTEN",
                                               "LOG_FILE",
                                               NULL};

static struct config *load_config(int argc, char **argv, char *err, size_t errlen)
{
    return config_load("ratelimitd", SHOP_VERSION,
                       "rate-limiter daemon: token buckets in Redis behind a line protocol", settings, argc,
                       argv, err, errlen);
}

/* The per-rule counters for a new rule set, carried over by rule name. */
static uint64_t *carry_rule_results(const struct rld_rules *old, const uint64_t *old_results,
                                    const struct rld_rules *fresh)
{
    uint64_t *results = xcalloc(fresh->count * RLD_RESULTS, sizeof(*results));
    for (size_t i = 0; i < fresh->count; i++) {
        const struct rld_rule *was = rld_rules_find(old, fresh->rules[i].name, strlen(fresh->rules[i].name));
        if (was)
            memcpy(results + i * RLD_RESULTS, old_results + (size_t)(was - old->rules) * RLD_RESULTS,
                   RLD_RESULTS * sizeof(*results));
    }
    return results;
}

/* SIGHUP: read the settings and the rules file again. Anything wrong keeps the
 * daemon on what it had, with one log line; buckets live in Redis (and the
 * local fallback keys them by rule name), so they carry over. */
static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    char err[512];
    readiness_reloading();
    struct config *cfg = load_config(d->argc, d->argv, err, sizeof(err));
    if (!cfg) {
        log_warn("reload refused: %s; keeping the settings and %zu rules in force", err, d->rules->count);
        readiness_ready();
        return;
    }
    enum log_level level;
    const char *path = config_get(cfg, "RATELIMIT_RULES");
    struct rld_rules *rules = NULL;
    if (!log_level_parse(config_get(cfg, "LOG_LEVEL"), &level)) {
        log_warn("reload refused: LOG_LEVEL must be debug, info, warn or error, not '%s'; keeping the "
                 "settings in force",
                 config_get(cfg, "LOG_LEVEL"));
    } else if (!(rules = rld_rules_load(path, err, sizeof(err)))) {
        log_warn("reload refused: %s; keeping the %zu rules in force", err, d->rules->count);
    } else {
        for (const char *const *name = restart_settings; *name; name++) {
            const char *was = config_get(d->started, *name), *now = config_get(cfg, *name);
            if (strcmp(was ? was : "", now ? now : "") != 0)
                log_warn("reload: %s changed; it takes effect when ratelimitd restarts", *name);
        }
        log_set_level(level);
        uint64_t *results = carry_rule_results(d->rules, d->stats->rule_results, rules);
        free(d->stats->rule_results);
        d->stats->rule_results = results;
        rld_server_set_rules(d->server, rules);
        if (d->metrics)
            rld_metrics_http_set_rules(d->metrics, rules);
        struct retired_rules *r = xmalloc(sizeof(*r));
        *r = (struct retired_rules){d->rules, d->retired};
        d->retired = r;
        d->rules = rules;
        d->reloads++;
        log_info("reloaded: %zu rules from %s", rules->count, path);
    }
    config_free(cfg);
    readiness_ready();
}

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
    readiness_stopping();
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
    struct event *sigs[4] = {0};
    log_init("ratelimitd");
    struct config *cfg = load_config(argc, argv, err, sizeof(err));
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
    const char *check = config_get(cfg, "CHECK");
    if (check && strcmp(check, "1") == 0) {
        printf("ratelimitd: configuration OK: %zu rules from %s, socket %s, Redis %s%s%.0d\n", rules->count,
               config_get(cfg, "RATELIMIT_RULES"), sock, addr.host, addr.is_unix ? "" : ":",
               addr.is_unix ? 0 : addr.port);
        rc = 0;
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
    sigs[3] = evsignal_new(d.base, SIGHUP, on_reload_signal, &d);
    d.metrics = metrics;
    d.stats = &stats;
    d.rules = rules;
    d.started = cfg;
    d.argc = argc;
    d.argv = argv;
    for (int i = 0; i < 4; i++)
        evsignal_add(sigs[i], NULL);
    log_info("listening on %s%s%s; %zu rules from %s", sock, scfg.tcp && scfg.tcp[0] ? " and " : "",
             scfg.tcp ? scfg.tcp : "", rules->count, config_get(cfg, "RATELIMIT_RULES"));
    readiness_ready();

    event_base_dispatch(d.base);
    rc = 0;

out:
    if (rc != 0)
        fprintf(stderr, "ratelimitd: %s\n", err);
    rld_metrics_http_free(metrics);
    /* The store first: calls still in flight are answered (locally) while their connections exist. */
    rld_store_free(store);
    rld_server_free(d.server);
    for (int i = 0; i < 4; i++)
        if (sigs[i])
            event_free(sigs[i]);
    if (d.deadline)
        event_free(d.deadline);
    if (d.base)
        event_base_free(d.base);
    rld_rules_free(d.rules ? d.rules : rules);
    while (d.retired) {
        struct retired_rules *r = d.retired;
        d.retired = r->next;
        rld_rules_free(r->rules);
        free(r);
    }
    free(stats.rule_results);
    if (rc == 0 && d.base)
        log_info("stopped");
    config_free(cfg);
    return rc;
}
