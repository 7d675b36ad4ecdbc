#include "shopd/metrics.h"
#include "shopd/db.h"
#include "shopd/route.h"
#include "shared/log.h"
#include "shared/process_metrics.h"
#include "shared/prom.h"
#include "shared/strbuf.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_ROUTES 64
#define MAX_SLOTS 257 /* 256 workers and the master */

/* Status codes kept apart; anything else is counted under "other". */
static const int tracked_codes[] = {200, 201, 204, 303, 304, 400, 401, 403,
                                    404, 405, 409, 413, 415, 429, 500, 503};
#define NCODES (sizeof(tracked_codes) / sizeof(tracked_codes[0]) + 1)

/* Histogram bounds in microseconds (Prometheus "le" in seconds). */
static const uint64_t bucket_us[] = {1000,   2500,   5000,   10000,   25000,  50000,
                                     100000, 250000, 500000, 1000000, 2500000};
#define NBUCKETS (sizeof(bucket_us) / sizeof(bucket_us[0]) + 1)

struct metrics_slot {
    uint64_t requests[MAX_ROUTES][NCODES];
    uint64_t buckets[MAX_ROUTES][NBUCKETS]; /* not cumulative here; summed at render */
    uint64_t micros[MAX_ROUTES];
    int64_t in_flight;
    uint64_t checkouts[3];
    uint64_t rl_refused, rl_unavailable;
    uint64_t worker_restarts;
    uint64_t catalog_checks, catalog_gathered;
};

/* The processes of one shopd, for the process_* series: worker slots first,
 * then the master, then the dispatcher. A replacement overwrites the pid of the
 * process it replaces; a pid that no longer exists is skipped at render. */
#define PROC_MASTER (MAX_SLOTS - 1)
#define PROC_DISPATCHER MAX_SLOTS
#define NPROCS (MAX_SLOTS + 1)

static struct metrics_slot *slots;
static size_t nslots;
static struct metrics_slot *mine;
static int32_t *pids; /* NPROCS entries in the shared region, 0: none */

int metrics_init(int workers)
{
    nslots = (size_t)workers + 1 > MAX_SLOTS ? MAX_SLOTS : (size_t)workers + 1;
    /* Sized for the largest worker count so that a reload may add workers. */
    size_t len = sizeof(struct metrics_slot) * MAX_SLOTS + sizeof(int32_t) * NPROCS;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    slots = p;
    nslots = MAX_SLOTS;
    mine = &slots[MAX_SLOTS - 1]; /* the master's own slot */
    pids = (int32_t *)(slots + MAX_SLOTS);
    __atomic_store_n(&pids[PROC_MASTER], (int32_t)getpid(), __ATOMIC_RELAXED);
    return 0;
}

void metrics_use_slot(int slot)
{
    if (slots && slot >= 0 && slot < MAX_SLOTS - 1) {
        mine = &slots[slot];
        __atomic_store_n(&pids[slot], (int32_t)getpid(), __ATOMIC_RELAXED);
    }
}

void metrics_dispatcher_process(void)
{
    if (pids)
        __atomic_store_n(&pids[PROC_DISPATCHER], (int32_t)getpid(), __ATOMIC_RELAXED);
}

static inline void add(uint64_t *p, uint64_t v)
{
    __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

static size_t code_index(int status)
{
    for (size_t i = 0; i < NCODES - 1; i++)
        if (tracked_codes[i] == status)
            return i;
    return NCODES - 1;
}

void metrics_request(size_t route, int status, uint64_t micros)
{
    if (!mine)
        return;
    if (route >= MAX_ROUTES)
        route = MAX_ROUTES - 1;
    add(&mine->requests[route][code_index(status)], 1);
    size_t b = 0;
    while (b < NBUCKETS - 1 && micros > bucket_us[b])
        b++;
    add(&mine->buckets[route][b], 1);
    add(&mine->micros[route], micros);
}

void metrics_in_flight(int delta)
{
    if (mine)
        __atomic_fetch_add(&mine->in_flight, delta, __ATOMIC_RELAXED);
}

void metrics_checkout(enum metrics_checkout result)
{
    if (mine)
        add(&mine->checkouts[result], 1);
}

void metrics_ratelimit(bool refused, bool unavailable)
{
    if (!mine)
        return;
    if (refused)
        add(&mine->rl_refused, 1);
    if (unavailable)
        add(&mine->rl_unavailable, 1);
}

void metrics_catalog_version_check(void)
{
    if (mine)
        add(&mine->catalog_checks, 1);
}

void metrics_catalog_gathering(size_t requests)
{
    if (mine)
        add(&mine->catalog_gathered, requests);
}

void metrics_worker_restart(void)
{
    if (mine)
        add(&mine->worker_restarts, 1);
}

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* The route label of index i: the route's name and method, or "none" for unmatched requests. */
static const char *route_labels(size_t i, const struct route *routes, size_t nroutes, char *buf, size_t len)
{
    if (i < nroutes)
        return prom_labels(buf, len, "route", routes[i].name, "method", routes[i].method, NULL);
    return prom_labels(buf, len, "route", "none", "method", "any", NULL);
}

/* Established TCP connections whose local port is port, from /proc/net/tcp and
 * tcp6: the kernel's count covers every worker, including idle keep-alive
 * connections that no request is using. -1 when /proc cannot be read. */
static long count_connections(int port)
{
    static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    long n = 0;
    bool any = false;
    for (size_t t = 0; t < 2; t++) {
        FILE *f = fopen(tables[t], "r");
        if (!f)
            continue;
        any = true;
        char line[512];
        if (!fgets(line, sizeof(line), f)) { /* header */
            fclose(f);
            continue;
        }
        while (fgets(line, sizeof(line), f)) {
            char local[128];
            unsigned state;
            if (sscanf(line, "%*s %127s %*s %x", local, &state) != 2)
                continue;
            const char *colon = strrchr(local, ':');
            if (colon && state == 0x01 && (int)strtol(colon + 1, NULL, 16) == port)
                n++;
        }
        fclose(f);
    }
    return any ? n : -1;
}

/* process_* of every process of this shopd (only this one without the shared region). */
static void render_processes(struct strbuf *out)
{
    static struct procm_row rows[NPROCS];
    static char labels[NPROCS][48];
    size_t n = 0;
    for (int i = 0; i < NPROCS; i++) {
        pid_t pid = pids ? (pid_t)__atomic_load_n(&pids[i], __ATOMIC_RELAXED) : (i == PROC_MASTER ? 0 : -1);
        if (pid < 0 || (pids && pid == 0) || procm_read(pid, &rows[n].sample) < 0)
            continue;
        if (i == PROC_MASTER)
            snprintf(labels[n], sizeof(labels[n]), "role=\"master\"");
        else if (i == PROC_DISPATCHER)
            snprintf(labels[n], sizeof(labels[n]), "role=\"dispatcher\"");
        else
            snprintf(labels[n], sizeof(labels[n]), "role=\"worker\",worker=\"%d\"", i);
        rows[n].labels = labels[n];
        n++;
    }
    procm_format(out, rows, n);
    procm_build_info(out, "shopd", SHOP_VERSION);
}

/* Seconds since the oldest order still waiting for the dispatcher was placed; 0 when none waits. */
static void render_outbox_age(struct strbuf *out, struct db *db)
{
    static const char SQL_OLDEST_PENDING[] = "SELECT coalesce((julianday('now') - julianday((SELECT "
                                             "created_at FROM orders WHERE status = 'pending'"
                                             " ORDER BY seq LIMIT 1))) * 86400.0, 0)";
    static const char SQL_OLDEST_PENDING_PG[] =
        "SELECT coalesce(extract(epoch FROM now() - (SELECT created_at::timestamptz FROM orders"
        " WHERE status = 'pending' ORDER BY seq LIMIT 1)), 0)";
    double age = 0;
    struct db_stmt *st = db_stmt_for(db, SQL_OLDEST_PENDING, SQL_OLDEST_PENDING_PG);
    if (db_step(st) == DB_ROW)
        age = db_column_double(st, 0);
    db_done(st);
    prom_gauge(out, "shopd_outbox_oldest_pending_age_seconds",
               "Age of the oldest order not yet sent by the dispatcher (0 when none is pending).",
               age > 0 ? age : 0);
}

static const struct route *route_table;
static size_t route_count;

void metrics_use_routes(const struct route *routes, size_t count)
{
    route_table = routes;
    route_count = count;
}

void metrics_render(struct evbuffer *out, struct db *db, int listen_port)
{
    size_t nroutes = route_count;
    const struct route *routes = route_table;
    size_t nrows = nroutes + 1 < MAX_ROUTES ? nroutes + 1 : MAX_ROUTES;
    static struct metrics_slot sum; /* one scrape at a time per worker */
    memset(&sum, 0, sizeof(sum));
    for (size_t s = 0; slots && s < nslots; s++) {
        for (size_t r = 0; r < nrows; r++) {
            for (size_t c = 0; c < NCODES; c++)
                sum.requests[r][c] += load(&slots[s].requests[r][c]);
            for (size_t b = 0; b < NBUCKETS; b++)
                sum.buckets[r][b] += load(&slots[s].buckets[r][b]);
            sum.micros[r] += load(&slots[s].micros[r]);
        }
        sum.in_flight += __atomic_load_n(&slots[s].in_flight, __ATOMIC_RELAXED);
        for (size_t k = 0; k < 3; k++)
            sum.checkouts[k] += load(&slots[s].checkouts[k]);
        sum.rl_refused += load(&slots[s].rl_refused);
        sum.rl_unavailable += load(&slots[s].rl_unavailable);
        sum.worker_restarts += load(&slots[s].worker_restarts);
        sum.catalog_checks += load(&slots[s].catalog_checks);
        sum.catalog_gathered += load(&slots[s].catalog_gathered);
    }
    /* Rows of the unmatched requests use the last row. */
    struct strbuf text = {0};
    struct strbuf *o = &text;
    char labels[PROM_LABELS_MAX], all[PROM_LABELS_MAX];
    prom_family(o, "shopd_http_requests_total", PROM_COUNTER,
                "HTTP requests answered, by route and status code.");
    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < NCODES; c++) {
            if (!sum.requests[r][c])
                continue;
            char code[16];
            snprintf(code, sizeof(code), "%d", c < NCODES - 1 ? tracked_codes[c] : 0);
            if (r < nroutes)
                prom_labels(all, sizeof(all), "route", routes[r].name, "method", routes[r].method, "code",
                            c < NCODES - 1 ? code : "other", NULL);
            else
                prom_labels(all, sizeof(all), "route", "none", "method", "any", "code",
                            c < NCODES - 1 ? code : "other", NULL);
            prom_sample_u64(o, "shopd_http_requests_total", all, sum.requests[r][c]);
        }
    }
    prom_family(o, "shopd_http_request_duration_seconds", PROM_HISTOGRAM,
                "Time from request to answer, by route.");
    double bounds[NBUCKETS - 1];
    for (size_t b = 0; b < NBUCKETS - 1; b++)
        bounds[b] = (double)bucket_us[b] / 1e6;
    for (size_t r = 0; r < nrows; r++) {
        uint64_t total = 0;
        for (size_t b = 0; b < NBUCKETS; b++)
            total += sum.buckets[r][b];
        if (!total)
            continue;
        prom_histogram(o, "shopd_http_request_duration_seconds",
                       route_labels(r, routes, nroutes, labels, sizeof(labels)), bounds, sum.buckets[r],
                       NBUCKETS - 1, (double)sum.micros[r] / 1e6);
    }
    prom_gauge(o, "shopd_http_requests_in_flight", "Requests being handled now.",
               (double)(sum.in_flight > 0 ? sum.in_flight : 0));
    prom_family(o, "shopd_checkouts_total", PROM_COUNTER, "Checkout attempts by result.");
    prom_sample_u64(o, "shopd_checkouts_total", "result=\"created\"",
                    sum.checkouts[METRICS_CHECKOUT_CREATED]);
    prom_sample_u64(o, "shopd_checkouts_total", "result=\"replayed\"",
                    sum.checkouts[METRICS_CHECKOUT_REPLAYED]);
    prom_sample_u64(o, "shopd_checkouts_total", "result=\"refused\"",
                    sum.checkouts[METRICS_CHECKOUT_REFUSED]);
    prom_counter(o, "shopd_ratelimit_refusals_total", "Requests refused with 429 by a budget.",
                 sum.rl_refused);
    prom_counter(o, "shopd_ratelimit_unavailable_total",
                 "Budget checks that found ratelimitd unavailable (served anyway).", sum.rl_unavailable);
    prom_counter(o, "shopd_worker_restarts_total", "Workers and dispatchers replaced after dying.",
                 sum.worker_restarts);
    prom_counter(o, "shopd_catalog_version_checks_total",
                 "Checks of the catalog's version (on PostgreSQL each is a round trip).", sum.catalog_checks);
    prom_counter(o, "shopd_catalog_requests_gathered_total",
                 "Catalog requests answered after one check made for all that arrived together.",
                 sum.catalog_gathered);
    long connections = count_connections(listen_port);
    if (connections >= 0)
        prom_gauge(o, "shopd_connections", "Client connections open now (all workers).", (double)connections);
    prom_family(o, "shopd_orders", PROM_GAUGE, "Orders in the database by dispatch status.");
    static const char SQL_ORDERS_BY_STATUS[] =
        "SELECT s.status, (SELECT count(*) FROM orders o WHERE o.status = s.status)"
        " FROM (SELECT 'pending' AS status UNION ALL SELECT 'sent' UNION ALL SELECT 'failed') s";
    struct db_stmt *st = db_stmt(db, SQL_ORDERS_BY_STATUS);
    while (db_step(st) == DB_ROW)
        prom_sample(o, "shopd_orders",
                    prom_labels(labels, sizeof(labels), "status", db_column_text(st, 0), NULL),
                    (double)db_column_int64(st, 1));
    db_done(st);
    render_outbox_age(o, db);
    render_processes(o);
    evbuffer_add(out, text.p, text.len);
    strbuf_free(&text);
}
