/* state: the state every part of the balancer shares (settings, backends,
 * listeners, timers, the open clients, counters). balancer.c owns and changes
 * the whole of it (start, reloads, stop); the other modules read it and keep
 * their own part of it (client.c the client list, admin.c nothing). A header
 * of its own, so that the modules depend on the state and not on the process
 * module that starts them. */
#ifndef BALANCER_STATE_H
#define BALANCER_STATE_H

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
    struct event *sig_term, *sig_int, *sig_hup, *sig_usr1, *drain_timer, *drain_poll;
    struct event *log_flush; /* writes buffered log lines once per loop iteration */

    /* Common-timeout handles (event_base_init_common_timeout) for the settings. */
    const struct timeval *tv_connect, *tv_header, *tv_idle, *tv_client, *tv_backend, *tv_pool, *tv_linger;

    struct client *clients; /* every open client connection (kept by client.c; proxy_client_count) */
    long nclients;
    bool draining;

    uint64_t accepted, rejected, requests, local_errors, reloads;
    struct request_id_gen request_ids;
    struct timeval started;
};

#endif
