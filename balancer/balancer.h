/* balancer: the process: settings, listeners, backends, signals and reloads.
 *
 * One event loop, one thread (like HAProxy with nbthread 1). proxy.c moves
 * requests, health.c checks backends, admin.c answers /status and /metrics; all
 * of them share the struct balancer that this module owns. */
#ifndef BALANCER_BALANCER_H
#define BALANCER_BALANCER_H

#include "backend.h"
#include "settings.h"
#include "shared/request_id.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/time.h>

struct event_base;
struct evconnlistener;
struct admin_http;
struct event;
struct client;
struct tls_store;

struct balancer {
    struct event_base *base;
    struct balancer_settings set;
    int argc;
    char **argv;

    struct backend **backends; /* the current list, in configured order */
    size_t nbackends;
    struct backend **retired; /* dropped by reloads; kept until exit */
    size_t nretired;
    size_t least_bad_cursor;

    struct evconnlistener *listener;
    struct evconnlistener *tls_listener; /* NULL: no BALANCER_TLS_LISTEN */
    struct tls_store *tls;               /* the certificates; replaced whole by a reload */
    struct admin_http *admin;
    struct event *sig_term, *sig_int, *sig_hup, *sig_usr1, *drain_timer;
    struct event *log_flush; /* writes buffered log lines once per loop iteration */

    /* Common-timeout handles (event_base_init_common_timeout) for the settings. */
    const struct timeval *tv_connect, *tv_header, *tv_idle, *tv_client, *tv_backend, *tv_pool, *tv_linger;

    struct client *clients; /* every open client connection */
    long nclients;
    bool draining;

    uint64_t accepted, rejected, requests, local_errors, reloads;
    struct request_id_gen request_ids;
    struct timeval started;
};

/* Runs the balancer with the command line: loads settings, binds, serves until
 * SIGTERM/SIGINT have drained in-flight requests. Returns the exit status
 * (0 after a clean shutdown, 1 when it cannot start, 2 on bad configuration). */
int balancer_main(int argc, char **argv);

/* Called by proxy.c whenever a client connection ends (for draining). */
void balancer_client_closed(struct balancer *b);

#endif
