/* backend: the list of upstream servers, their health state, statistics and
 * the smooth weighted round robin that picks one per request.
 *
 * A backend is created from a `host:port[=weight]` entry of BALANCER_BACKENDS.
 * Its health is a small state machine: `fall` consecutive failures (active
 * checks or passive ones seen by the proxy) mark it down, `rise` consecutive
 * successful checks mark it up again. A connect failure counts as a full fall:
 * nothing is listening, so there is no point in sending it more traffic. */
#ifndef BALANCER_BACKEND_H
#define BALANCER_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define BACKEND_HOST_MAX 256
#define BACKEND_WEIGHT_MAX 1000
#define BACKEND_LIST_MAX 64
/* Latency histogram bucket bounds in microseconds (the last bucket is +Inf). */
#define BACKEND_LAT_BUCKETS 10

/* One parsed entry of BALANCER_BACKENDS. */
struct backend_spec {
    char host[BACKEND_HOST_MAX];
    int port;
    int weight;
};

struct pool;
struct evhttp_connection;
struct event;

struct backend {
    char name[BACKEND_HOST_MAX + 8]; /* "host:port", as configured */
    struct backend_spec spec;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char addr_host[64]; /* addr's numeric host: the health checks connect to it without a lookup */

    /* Selection and health. */
    long current_weight; /* smooth weighted round robin state */
    bool up;
    int fails;     /* consecutive failures */
    int successes; /* consecutive successful checks while down */
    bool removed;  /* dropped by a reload: no new requests; freed when unused */
    char last_error[96];

    /* Statistics. */
    uint64_t requests, retries, failures, checks_failed;
    uint64_t responses[6]; /* index status/100 (0: no answer) */
    uint64_t bytes_out;    /* response bytes relayed */
    long in_flight;
    long connections; /* open connections (busy and idle) */
    uint64_t lat_count, lat_sum_us, lat_max_us;
    uint64_t lat_buckets[BACKEND_LAT_BUCKETS + 1];

    /* Idle keep-alive connections (pool.c); NULL until the first is kept. */
    struct pool *pool;

    /* Active health checking (health.c). */
    struct event *check_timer;
    struct evhttp_connection *check_conn;
    bool check_pending;
};

/* Histogram bucket bounds, microseconds, ascending, BACKEND_LAT_BUCKETS entries. */
extern const uint64_t backend_lat_bounds_us[BACKEND_LAT_BUCKETS];

/* Parses a comma-separated `host:port[=weight]` list (IPv6 as `[addr]:port`,
 * spaces around entries allowed). On success returns 0 and a heap array the
 * caller frees in *out, with *count entries (at least one). On failure returns -1
 * with a one-line reason in err and *out NULL. Duplicate host:port entries,
 * ports outside 1..65535, weights outside 1..1000 and more than 64 entries are
 * refused. */
int backend_parse_list(const char *text, struct backend_spec **out, size_t *count, char *err, size_t errlen);

/* Resolves spec into a fresh backend (numeric addresses or a host name via
 * getaddrinfo, which may block: call at start-up or reload only). Returns the
 * backend (caller frees with backend_free) or NULL with a reason in err. The new
 * backend starts up, as HAProxy and nginx assume. backend_free expects no pool
 * left (pool_close first). */
struct backend *backend_new(const struct backend_spec *spec, char *err, size_t errlen);
void backend_free(struct backend *b);

/* Smooth weighted round robin (nginx's algorithm) over the n backends. Only
 * backends that are up, not removed and not excluded take part; exclude may be
 * NULL, else exclude[i] true skips b[i]. Returns an index, or -1 when none is
 * eligible. With equal weights this is plain round robin. */
int backend_pick(struct backend *const *b, size_t n, const bool *exclude);

/* The least-bad backend when none is up: the fewest consecutive failures, ties
 * broken by round robin order starting at *cursor (advanced). Skips removed and
 * excluded ones. Returns an index or -1. */
int backend_pick_least_bad(struct backend *const *b, size_t n, const bool *exclude, size_t *cursor);

/* Health bookkeeping. Each returns true when the up/down state changed (the
 * caller logs). why is copied into last_error. */
bool backend_report_failure(struct backend *b, int fall, bool hard, const char *why);
bool backend_report_check_ok(struct backend *b, int rise);
/* A proxied answer arrived: resets the consecutive failure count of an up backend. */
void backend_report_answer(struct backend *b);
/* Records one finished request: status (0 for none) and its latency. */
void backend_record(struct backend *b, int status, uint64_t latency_us);

#endif
