/* metrics: shopd's Prometheus counters, shared by every process of one shopd.
 *
 * The master maps one anonymous shared region before it forks; each worker adds
 * to its own slot with relaxed atomics (a replacement worker keeps adding to the
 * slot of the one it replaces, so counters never go backwards while the master
 * lives), and GET /metrics on any worker sums the slots. */
#ifndef SHOPD_METRICS_H
#define SHOPD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct db;

enum metrics_checkout { METRICS_CHECKOUT_CREATED, METRICS_CHECKOUT_REPLAYED, METRICS_CHECKOUT_REFUSED };

/* Maps the shared region for `workers` slots (master, before forking). Returns 0 or -1. */
int metrics_init(int workers);
/* Selects the slot this worker writes to (worker, after the fork) and records
 * this process as worker `slot` for the process_* series. */
void metrics_use_slot(int slot);
/* The route table whose indexes metrics_request takes and whose names and
 * methods label the series (the worker's router table; borrowed). */
struct route;
void metrics_use_routes(const struct route *routes, size_t count);
/* Records this process as the dispatcher for the process_* series (after the fork). */
void metrics_dispatcher_process(void);

/* One answered request: route index in the table of metrics_use_routes (or
 * the route count for "no route"), status code, duration. */
void metrics_request(size_t route, int status, uint64_t micros);
void metrics_in_flight(int delta);
void metrics_checkout(enum metrics_checkout result);
void metrics_ratelimit(bool refused, bool unavailable);
/* One check of the catalog's version (catalog_cache.c), and requests answered
 * after one check made for all of them (pipeline.c). */
void metrics_catalog_version_check(void);
void metrics_catalog_gathering(size_t requests);
/* A child replaced by the master (counted in the master's slot). */
void metrics_worker_restart(void);

/* Writes the Prometheus text exposition, including order counts and the age of
 * the oldest pending order read from db, the client connections open on
 * listen_port (counted by the kernel) and the process_* series of the master,
 * each worker and the dispatcher, labelled by role. */
void metrics_render(struct evbuffer *out, struct db *db, int listen_port);

#endif
