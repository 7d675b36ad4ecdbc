#include "balancer.h"
#include "state.h"

#include "admin.h"
#include "health.h"
#include "pool.h"
#include "proxy.h"
#include "shared/clock.h"
#include "shared/crypto.h"
#include "shared/log.h"
#include "shared/readiness.h"
#include "shared/xalloc.h"
#include "tls.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#define LINGER_MS 2000

static const struct timeval *common_timeout(struct event_base *base, long ms)
{
    struct timeval tv = clock_ms_tv(ms);
    const struct timeval *c = event_base_init_common_timeout(base, &tv);
    if (!c)
        abort();
    return c;
}

static void apply_timeouts(struct balancer *b)
{
    b->tv_connect = common_timeout(b->base, b->set.connect_timeout_ms);
    b->tv_header = common_timeout(b->base, b->set.header_timeout_ms);
    b->tv_idle = common_timeout(b->base, b->set.idle_timeout_ms);
    b->tv_client = common_timeout(b->base, b->set.client_timeout_ms);
    b->tv_backend = common_timeout(b->base, b->set.backend_timeout_ms);
    b->tv_pool = common_timeout(b->base, b->set.pool_idle_ms);
    b->tv_linger = common_timeout(b->base, LINGER_MS);
}

/* Runs the event loop until a loopexit. With BALANCER_POLL_YIELD each pass
 * first offers the core to any other runnable process (sched_yield) and only
 * then polls again. On a host shared with the backends, a shopd worker just
 * handed a request runs before the balancer looks for more work, so each poll
 * finds more events: the balancer wakes, and preempts the backends, less often.
 * Measured on 2 cores with 2 shopd and wrk (tools/bench-balancer.sh): 3.5 -> 14
 * requests per epoll_wait, p99 lower by 4-15% at the same requests/s. With no
 * other runnable process the call returns at once (one syscall per loop pass,
 * not per request). */
static void run_loop(struct balancer *b)
{
    while (!event_base_got_exit(b->base) && !event_base_got_break(b->base)) {
        if (event_base_loop(b->base, EVLOOP_ONCE) != 0)
            return;
        if (b->set.poll_yield) /* read each pass: a reload may change it */
            sched_yield();
    }
}

/* While draining, looks every DRAIN_POLL_MS whether the proxy's last client
 * has gone: asking keeps calls going one way (the proxy never calls up), and
 * the short period keeps the stop prompt. */
#define DRAIN_POLL_MS 10

static void on_drain_poll(evutil_socket_t fd, short what, void *arg)
{
    struct balancer *b = arg;
    (void)fd;
    (void)what;
    if (proxy_client_count(b) == 0) {
        log_info("all connections finished; stopping");
        event_base_loopexit(b->base, NULL);
    }
}

/* Makes specs the backend list. Backends already known (same host:port) keep
 * their health state, statistics and pool; new ones start up and get checked;
 * dropped ones are retired. Returns 0, or -1 with a reason (nothing changed). */
static int apply_backends(struct balancer *b, const struct backend_spec *specs, size_t n, char *err,
                          size_t errlen)
{
    struct backend **next = xcalloc(n, sizeof(*next));
    bool *fresh = xcalloc(n, sizeof(*fresh));
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < b->nbackends; k++) {
            struct backend *old = b->backends[k];
            if (old->spec.port == specs[i].port && strcasecmp(old->spec.host, specs[i].host) == 0)
                next[i] = old;
        }
        if (!next[i]) {
            next[i] = backend_new(&specs[i], err, errlen);
            if (!next[i]) {
                for (size_t k = 0; k < i; k++)
                    if (fresh[k])
                        backend_free(next[k]);
                free(next);
                free(fresh);
                return -1;
            }
            fresh[i] = true;
        } else if (next[i]->spec.weight != specs[i].weight) {
            log_info("backend %s: weight %d -> %d", next[i]->name, next[i]->spec.weight, specs[i].weight);
            next[i]->spec.weight = specs[i].weight;
            next[i]->current_weight = 0;
        }
    }
    for (size_t k = 0; k < b->nbackends; k++) {
        struct backend *old = b->backends[k];
        bool kept = false;
        for (size_t i = 0; i < n; i++)
            kept |= next[i] == old;
        if (kept)
            continue;
        log_info("backend %s removed", old->name);
        old->removed = true;
        health_stop(old);
        pool_close(old);
        b->retired = xrealloc(b->retired, (b->nretired + 1) * sizeof(*b->retired));
        b->retired[b->nretired++] = old;
    }
    for (size_t i = 0; i < n; i++)
        if (fresh[i]) {
            log_info("backend %s added (weight %d)", next[i]->name, next[i]->spec.weight);
            health_start(b, next[i]);
        }
    free(b->backends);
    b->backends = next;
    b->nbackends = n;
    free(fresh);
    return 0;
}

static void apply_logging(const struct balancer_settings *s)
{
    log_set_level(s->log_level);
    if (log_open(s->log_file) < 0)
        log_error("cannot open LOG_FILE=%s: %s", s->log_file, strerror(errno));
}

static void tls_options_of(const struct balancer_settings *s, struct tls_options *o)
{
    o->cert = s->tls_cert;
    o->key = s->tls_key;
    o->certs = s->tls_certs;
    o->ciphers = s->tls_ciphers;
}

/* Loads the certificates of s into a new store that replaces b->tls; open
 * connections keep the contexts they started with. On failure the running
 * certificates stay. Returns 0 or -1 (reason in err). */
static int apply_tls(struct balancer *b, const struct balancer_settings *s, char *err, size_t errlen)
{
    if (!s->tls_listen[0] && !b->tls_listener)
        return 0;
    struct tls_options o;
    tls_options_of(s, &o);
    struct tls_store *next = tls_store_new(&o, err, errlen);
    if (!next)
        return -1;
    tls_store_free(b->tls);
    b->tls = next;
    return 0;
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    struct balancer *b = arg;
    (void)sig;
    (void)what;
    struct balancer_settings ns;
    char err[512];
    readiness_reloading();
    if (balancer_settings_load(&ns, b->argc, b->argv, err, sizeof(err)) < 0) {
        log_warn("reload refused, keeping the running configuration: %s", err);
        readiness_ready();
        return;
    }
    if (b->tls_listener && apply_tls(b, &ns, err, sizeof(err)) < 0)
        log_warn("TLS certificates not reloaded, keeping the running ones: %s", err);
    else if (b->tls_listener)
        log_info("TLS certificates reloaded: %zu", tls_store_count(b->tls));
    if (strcmp(ns.listen, b->set.listen) != 0 || strcmp(ns.admin_listen, b->set.admin_listen) != 0 ||
        strcmp(ns.tls_listen, b->set.tls_listen) != 0)
        log_warn("reload: listen addresses change only with a restart (still %s, admin %s)", b->set.listen,
                 b->set.admin_listen[0] ? b->set.admin_listen : "off");
    if (apply_backends(b, ns.backends, ns.nbackends, err, sizeof(err)) < 0) {
        log_warn("reload refused, keeping the running configuration: %s", err);
        balancer_settings_cleanup(&ns);
        readiness_ready();
        return;
    }
    bool checks_changed = ns.health_interval_ms != b->set.health_interval_ms ||
                          ns.health_timeout_ms != b->set.health_timeout_ms ||
                          strcmp(ns.health_path, b->set.health_path) != 0;
    memcpy(ns.listen, b->set.listen, sizeof(ns.listen));
    memcpy(ns.admin_listen, b->set.admin_listen, sizeof(ns.admin_listen));
    memcpy(ns.tls_listen, b->set.tls_listen, sizeof(ns.tls_listen));
    balancer_settings_cleanup(&b->set);
    b->set = ns;
    apply_timeouts(b);
    apply_logging(&b->set);
    if (checks_changed)
        for (size_t i = 0; i < b->nbackends; i++) {
            health_stop(b->backends[i]);
            health_start(b, b->backends[i]);
        }
    b->reloads++;
    log_info("configuration reloaded: %zu backends, %ld connections kept", b->nbackends,
             proxy_client_count(b));
    readiness_ready();
}

static void on_reopen(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    log_reopen();
    log_info("log file reopened");
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct balancer *b = arg;
    (void)fd;
    (void)what;
    log_warn("shutdown timeout: closing %ld connections still open", proxy_client_count(b));
    event_base_loopexit(b->base, NULL);
}

static void on_terminate(evutil_socket_t sig, short what, void *arg)
{
    struct balancer *b = arg;
    (void)what;
    if (b->draining) {
        log_info("signal %d again: stopping now", (int)sig);
        event_base_loopexit(b->base, NULL);
        return;
    }
    b->draining = true;
    readiness_stopping();
    log_info("signal %d: no new connections; finishing %ld open ones", (int)sig, proxy_client_count(b));
    if (b->listener) {
        evconnlistener_free(b->listener);
        b->listener = NULL;
    }
    if (b->tls_listener) {
        evconnlistener_free(b->tls_listener);
        b->tls_listener = NULL;
    }
    proxy_drain(b);
    if (proxy_client_count(b) == 0) {
        event_base_loopexit(b->base, NULL);
        return;
    }
    struct timeval tv = clock_ms_tv(b->set.shutdown_timeout_ms);
    b->drain_timer = evtimer_new(b->base, on_drain_deadline, b);
    evtimer_add(b->drain_timer, &tv);
    struct timeval poll = clock_ms_tv(DRAIN_POLL_MS);
    b->drain_poll = event_new(b->base, -1, EV_PERSIST, on_drain_poll, b);
    event_add(b->drain_poll, &poll);
}

static void on_log_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_flush();
}

/* The first line buffered in an iteration: the flush runs after the callbacks
 * already active, so a busy loop writes its access lines in one write() per
 * iteration instead of one per request. */
static void log_pending(void *arg)
{
    struct balancer *b = arg;
    event_active(b->log_flush, EV_TIMEOUT, 0);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    proxy_accept(arg, fd, sa, (socklen_t)salen);
}

static void on_accept_tls(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                          void *arg)
{
    (void)l;
    proxy_accept_tls(arg, fd, sa, (socklen_t)salen);
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evconnlistener_enable(arg);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)arg;
    int err = EVUTIL_SOCKET_ERROR();
    log_error("accept: %s", evutil_socket_error_to_string(err));
    if (err == EMFILE || err == ENFILE) {
        /* Out of descriptors: stop accepting for a moment instead of spinning. */
        evconnlistener_disable(l);
        struct timeval tv = {0, 200000};
        event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT, on_accept_resume, l, &tv);
    }
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Binds addr (numeric address:port) with accept callback cb. Returns the
 * listener or NULL with a message on stderr. */
static struct evconnlistener *listen_on(struct balancer *b, const char *name, const char *addr,
                                        evconnlistener_cb cb)
{
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) < 0) {
        fprintf(stderr, "balancer: %s=%s is not a numeric address:port\n", name, addr);
        return NULL;
    }
    struct evconnlistener *l = evconnlistener_new_bind(
        b->base, cb, b, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024,
        (struct sockaddr *)&ss, sslen);
    if (!l) {
        fprintf(stderr, "balancer: cannot listen on %s: %s\n", addr, strerror(errno));
        return NULL;
    }
    evconnlistener_set_error_cb(l, on_accept_error);
    return l;
}

/* --check: everything balancer_main would read, bound and started nothing.
 * The certificates are checked (and their days left printed) by tls_check. */
static int check_configuration(struct balancer *b)
{
    int problems = 0;
    if (b->set.tls_listen[0] || b->set.tls_cert[0] || b->set.tls_certs[0]) {
        struct tls_options o;
        tls_options_of(&b->set, &o);
        if (tls_check(&o, stdout) < 0)
            problems++;
    }
    const char *listens[] = {b->set.listen, b->set.tls_listen, b->set.admin_listen};
    const char *names[] = {"BALANCER_LISTEN", "BALANCER_TLS_LISTEN", "BALANCER_ADMIN_LISTEN"};
    for (int i = 0; i < 3; i++) {
        struct sockaddr_storage ss;
        int sslen = sizeof(ss);
        if (listens[i][0] && evutil_parse_sockaddr_port(listens[i], (struct sockaddr *)&ss, &sslen) < 0) {
            fprintf(stderr, "balancer: %s=%s is not a numeric address:port\n", names[i], listens[i]);
            problems++;
        }
    }
    if (problems)
        return 2;
    printf("balancer: configuration OK: listen %s%s%s, %zu backends, admin %s\n", b->set.listen,
           b->set.tls_listen[0] ? ", HTTPS " : "", b->set.tls_listen, b->set.nbackends,
           b->set.admin_listen[0] ? b->set.admin_listen : "off");
    return 0;
}

int balancer_main(int argc, char **argv)
{
    log_init("balancer");
    struct balancer *b = xcalloc(1, sizeof(*b));
    b->argc = argc;
    b->argv = argv;
    char err[512];
    if (balancer_settings_load(&b->set, argc, argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "balancer: %s\n", err);
        free(b);
        return 2;
    }
    apply_logging(&b->set);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    gettimeofday(&b->started, NULL);
    request_id_gen_init(&b->request_ids);

    struct event_config *ec = event_config_new();
    /* No EPOLL_USE_CHANGELIST: connections close their fd in the same loop pass as
       their events go, and a new connection may get the same fd number at once; the
       deferred epoll changes could then leave the new socket unregistered. */
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    b->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (!b->base) {
        fprintf(stderr, "balancer: cannot create the event loop\n");
        return 1;
    }
    apply_timeouts(b);
    int rc = 1;
    if (apply_backends(b, b->set.backends, b->set.nbackends, err, sizeof(err)) < 0) {
        fprintf(stderr, "balancer: %s\n", err);
        rc = 2;
        goto out;
    }
    if (b->set.check_only) {
        rc = check_configuration(b);
        goto out;
    }
    if (b->set.tls_listen[0] && apply_tls(b, &b->set, err, sizeof(err)) < 0) {
        fprintf(stderr, "balancer: TLS: %s\n", err);
        rc = 2;
        goto out;
    }
    b->listener = listen_on(b, "BALANCER_LISTEN", b->set.listen, on_accept);
    if (!b->listener)
        goto out;
    if (b->set.tls_listen[0]) {
        b->tls_listener = listen_on(b, "BALANCER_TLS_LISTEN", b->set.tls_listen, on_accept_tls);
        if (!b->tls_listener)
            goto out;
    }
    if (admin_start(b, err, sizeof(err)) < 0) {
        fprintf(stderr, "balancer: %s\n", err);
        goto out;
    }
    b->sig_term = evsignal_new(b->base, SIGTERM, on_terminate, b);
    b->sig_int = evsignal_new(b->base, SIGINT, on_terminate, b);
    b->sig_hup = evsignal_new(b->base, SIGHUP, on_reload, b);
    b->sig_usr1 = evsignal_new(b->base, SIGUSR1, on_reopen, b);
    event_add(b->sig_term, NULL);
    event_add(b->sig_int, NULL);
    event_add(b->sig_hup, NULL);
    event_add(b->sig_usr1, NULL);

    log_info("listening on %s (admin %s), %zu backends, version %s", b->set.listen,
             b->set.admin_listen[0] ? b->set.admin_listen : "off", b->nbackends, SHOP_VERSION);
    if (b->tls_listener)
        log_info("listening for HTTPS on %s with %zu certificate%s", b->set.tls_listen,
                 tls_store_count(b->tls), tls_store_count(b->tls) == 1 ? "" : "s");
    b->log_flush = event_new(b->base, -1, 0, on_log_flush, b);
    log_set_buffered(true, log_pending, b);
    readiness_ready();
    run_loop(b);
    log_set_buffered(false, NULL, NULL);
    rc = 0;
    log_info("stopped: %llu requests served", (unsigned long long)b->requests);

out:
    proxy_close_all(b);
    for (size_t i = 0; i < b->nbackends; i++) {
        health_stop(b->backends[i]);
        backend_free(b->backends[i]);
    }
    for (size_t i = 0; i < b->nretired; i++)
        backend_free(b->retired[i]);
    free(b->backends);
    free(b->retired);
    admin_stop(b);
    if (b->listener)
        evconnlistener_free(b->listener);
    if (b->tls_listener)
        evconnlistener_free(b->tls_listener);
    tls_store_free(b->tls);
    struct event *evs[] = {b->sig_term,    b->sig_int,    b->sig_hup,  b->sig_usr1,
                           b->drain_timer, b->drain_poll, b->log_flush};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i])
            event_free(evs[i]);
    event_base_free(b->base);
    balancer_settings_cleanup(&b->set);
    free(b);
    return rc;
}
