#include "shopd/dispatcher.h"
#include "shopd/db.h"
#include "shopd/order_item.h"
#include "shopd/outbox.h"
#include "shared/clock.h"
#include "shared/crypto.h"
#include "shared/log.h"
#include "shared/xalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32
/* A lease outlives one PutItem with its timeouts several times over; it is
 * renewed before each send when less than LEASE_RENEW_SECONDS are left, so a
 * long batch against a slow DynamoDB keeps its orders. */
#define LEASE_SECONDS 30
#define LEASE_RENEW_SECONDS 15
/* Polling catches what no eventfd announces: orders of another shopd on the
 * same database, retries that fell due, leases of a dead dispatcher. */
#define POLL_MS 1000
/* Per order: the delay before that order is tried again. */
#define ORDER_BACKOFF_BASE_MS 1000
#define ORDER_BACKOFF_CAP_MS 60000
/* Dispatcher-wide pause after a retryable answer: while DynamoDB is down or
 * throttling, one order probes it instead of the whole backlog. Capped lower
 * than the per-order delay so that deliveries resume soon after an outage. */
#define PAUSE_BASE_MS 250
#define PAUSE_CAP_MS 15000
/* How often a setup problem (table missing, credentials refused) is re-checked. */
#define HOLD_MS 15000
/* How often leases of dead dispatchers on this machine are looked for. */
#define RECLAIM_MS 10000
#define CONDITION "attribute_not_exists(order_id)"

static volatile sig_atomic_t stop_requested;

static void on_term(int sig)
{
    (void)sig;
    stop_requested = 1;
}

struct dispatcher {
    const struct shopd_settings *settings;
    struct db *db;
    struct dynamo_client *dyn;
    int wake_fd;
    char owner[320];       /* host:pid:random:machine, unique per dispatcher process */
    char machine[17];      /* this boot and PID namespace, "" when unknown */
    uint64_t reclaimed_ms; /* last look for dead owners' leases */
    unsigned failures;     /* consecutive retryable answers */
    uint64_t resume_ms;    /* monotonic time before which nothing is sent */
    char *hold_reason;     /* the setup problem last logged, so it is logged once */
};

/* --- classification ------------------------------------------------------ */

/* Errors that say the credentials, the table or the endpoint are wrong. They
 * would fail every order alike, so parking the orders would only lose them. */
static bool is_setup_error(const struct dynamo_result *r)
{
    static const char *const types[] = {
        "MissingCredentials",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "UnknownOperationException",
        "TransportError",
        /* an answer without __type did not come from DynamoDB */
        "HttpError",
    };
    if (r->http_status == 401 || r->http_status == 403)
        return true;
    for (size_t i = 0; r->error_type && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(r->error_type, types[i]) == 0)
            return true;
    return false;
}

enum dispatcher_action dispatcher_action_for(const struct dynamo_result *r)
{
    switch (r->cls) {
    case DYNAMO_OK:
    case DYNAMO_CONDITION_FAILED:
        return DISPATCH_SENT;
    case DYNAMO_RETRYABLE:
        return DISPATCH_RETRY;
    case DYNAMO_FATAL:
        break;
    }
    return is_setup_error(r) ? DISPATCH_HOLD : DISPATCH_PARK;
}

bool dispatcher_table_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 3 || n > 255)
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
              *c == '-' || *c == '.'))
            return false;
    return true;
}

static struct dynamo_client *client_from_settings(const struct shopd_settings *s, char *err, size_t errlen)
{
    struct dynamo_config cfg = {
        .region = s->aws_region,
        .endpoint = s->dynamodb_endpoint,
        .access_key_id = s->aws_access_key_id,
        .secret_access_key = s->aws_secret_access_key,
        .session_token = s->aws_session_token,
    };
    return dynamo_client_new(&cfg, err, errlen);
}

static const char table_rule[] = "table names are 3 to 255 characters of a-z, A-Z, 0-9, '_', '-' and '.'";

int dispatcher_create_table(const struct shopd_settings *settings, char *err, size_t errlen)
{
    if (!dispatcher_table_name_valid(settings->dynamodb_table)) {
        snprintf(err, errlen, "DYNAMODB_TABLE=%s: %s", settings->dynamodb_table, table_rule);
        return -1;
    }
    struct dynamo_client *c = client_from_settings(settings, err, errlen);
    if (!c)
        return -1;
    struct dynamo_result r;
    enum dynamo_class cls = dynamo_ensure_table(c, settings->dynamodb_table, &r);
    if (cls != DYNAMO_OK)
        snprintf(err, errlen, "table %s at %s: %s: %s", settings->dynamodb_table, dynamo_client_endpoint(c),
                 r.error_type ? r.error_type : dynamo_class_name(cls),
                 r.message ? r.message : "no reason given");
    else
        log_info("table %s is ACTIVE at %s", settings->dynamodb_table, dynamo_client_endpoint(c));
    dynamo_result_cleanup(&r);
    dynamo_client_free(c);
    return cls == DYNAMO_OK ? 0 : -1;
}

/* --- leases of dead dispatchers ------------------------------------------- */

/* A digest of the boot id and the PID namespace: owners that share it run on
 * this machine where their pids can be checked. Empty when either is unknown,
 * and then no lease is ever taken over early. */
static void machine_id(char out[17])
{
    out[0] = '\0';
    char buf[200];
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, 64, f);
    fclose(f);
    struct stat st;
    if (n == 0 || stat("/proc/self/ns/pid", &st) != 0)
        return;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, ":%llu:%llu", (unsigned long long)st.st_dev,
                          (unsigned long long)st.st_ino);
    char hex[CRYPTO_SHA256_HEX_LEN];
    crypto_sha256_hex(buf, n, hex);
    memcpy(out, hex, 16);
    out[16] = '\0';
}

/* True when owner (host:pid:random:machine) is another dispatcher of this
 * machine whose process no longer exists. A pid reused by an unrelated process
 * reads as alive: that only delays the takeover until the lease runs out. */
static bool owner_is_dead(const struct dispatcher *d, const char *owner)
{
    if (!d->machine[0] || strcmp(owner, d->owner) == 0)
        return false;
    const char *m = strrchr(owner, ':');
    const char *p = strchr(owner, ':');
    if (!m || !p || m == p || strcmp(m + 1, d->machine) != 0)
        return false;
    char *end;
    errno = 0;
    long pid = strtol(p + 1, &end, 10);
    if (errno || *end != ':' || pid <= 0)
        return false;
    if (pid == (long)getpid())
        return true; /* an earlier process with our pid: we are alive, it is not */
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

struct owner_list {
    const struct dispatcher *d;
    char *dead[16];
    size_t n;
};

static void note_dead_owner(const char *owner, void *arg)
{
    struct owner_list *l = arg;
    if (l->n < sizeof(l->dead) / sizeof(l->dead[0]) && owner_is_dead(l->d, owner))
        l->dead[l->n++] = xstrdup(owner);
}

/* A dispatcher killed mid-batch (SIGKILL, OOM) leaves its leases behind; its
 * replacement takes them over at once instead of waiting LEASE_SECONDS. */
static void reclaim_dead_leases(struct dispatcher *d)
{
    d->reclaimed_ms = clock_mono_ms();
    struct owner_list l = {.d = d};
    if (outbox_each_lease_owner(d->db, (int64_t)time(NULL), note_dead_owner, &l) < 0)
        return;
    for (size_t i = 0; i < l.n; i++) {
        int n = outbox_release_all(d->db, l.dead[i]);
        if (n > 0)
            log_info("dispatcher: took over %d orders leased by %s, which is gone", n, l.dead[i]);
        free(l.dead[i]);
    }
}

/* --- waiting --------------------------------------------------------------- */

/* Sleeps up to ms, or less when a checkout writes the eventfd or a signal comes. */
static void wait_for_work(struct dispatcher *d, int ms)
{
    struct pollfd p = {d->wake_fd, POLLIN, 0};
    if (poll(&p, d->wake_fd >= 0 ? 1 : 0, ms) > 0 && (p.revents & POLLIN)) {
        uint64_t n;
        /* Reading resets the counter: one wake-up covers every checkout so far. */
        if (read(d->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
            log_debug("dispatcher: wake read: %s", strerror(errno));
    }
}

/* For dispatchers that can never send (no credentials, bad table name): stay
 * alive, so the master does not respawn and re-log in a loop, until SIGTERM. */
static void idle_until_stopped(struct dispatcher *d)
{
    while (!stop_requested)
        wait_for_work(d, 60000);
}

/* --- sending ------------------------------------------------------------- */

static void pause_for(struct dispatcher *d, long ms)
{
    uint64_t until = clock_mono_ms() + (uint64_t)(ms > 0 ? ms : 0);
    if (until > d->resume_ms)
        d->resume_ms = until;
}

static bool paused(const struct dispatcher *d)
{
    return clock_mono_ms() < d->resume_ms;
}

static char *error_text(const struct dynamo_result *r)
{
    return xasprintf("%s: %s", r->error_type ? r->error_type : dynamo_class_name(r->cls),
                     r->message ? r->message : "no message");
}

static void delivered(struct dispatcher *d, const struct outbox_order *o, const struct dynamo_result *r,
                      uint64_t ms)
{
    if (d->failures || d->hold_reason)
        log_info("dispatcher: DynamoDB accepts orders again");
    d->failures = 0;
    free(d->hold_reason);
    d->hold_reason = NULL;
    int rc = outbox_mark_sent(d->db, o->id, (int64_t)time(NULL));
    if (r->cls == DYNAMO_CONDITION_FAILED)
        log_info("order %s was already in DynamoDB (an earlier send got through); marked sent", o->id);
    else
        log_info("order %s sent to DynamoDB in %" PRIu64 " ms (attempt %" PRId64 ")", o->id, ms,
                 o->attempts + 1);
    if (rc == 0)
        log_info("order %s had been marked by another dispatcher already", o->id);
    /* rc < 0: the lease runs out and the next send finds the item: no loss, no double. */
}

static void retry_later(struct dispatcher *d, const struct outbox_order *o, const struct dynamo_result *r)
{
    unsigned attempt = o->attempts > 30 ? 30u : (unsigned)o->attempts;
    long delay_ms = dynamo_backoff_ms(attempt, ORDER_BACKOFF_BASE_MS, ORDER_BACKOFF_CAP_MS);
    long delay_s = (delay_ms + 999) / 1000;
    char *why = error_text(r);
    int rc = outbox_schedule_retry(d->db, o->id, d->owner, (int64_t)time(NULL) + delay_s, why);
    log_warn("order %s not sent (attempt %" PRId64 "): %s; next try in %ld s%s", o->id, o->attempts + 1, why,
             delay_s, rc == 0 ? " (lease lost: another dispatcher has it)" : "");
    free(why);
    pause_for(d, dynamo_backoff_ms(d->failures, PAUSE_BASE_MS, PAUSE_CAP_MS));
    if (d->failures < 1000)
        d->failures++;
}

static void hold(struct dispatcher *d, const struct outbox_order *o, const struct dynamo_result *r)
{
    outbox_release(d->db, o->id, d->owner);
    char *why = error_text(r);
    if (!d->hold_reason || strcmp(d->hold_reason, why) != 0) {
        log_error(
            "dispatcher: DynamoDB refuses the setup, not an order: %s; orders stay pending, checking again "
            "every %d s",
            why, HOLD_MS / 1000);
        free(d->hold_reason);
        d->hold_reason = why;
    } else {
        free(why);
    }
    pause_for(d, HOLD_MS);
}

static void park(struct dispatcher *d, const struct outbox_order *o, const char *why)
{
    int rc = outbox_mark_failed(d->db, o->id, d->owner, why);
    if (rc == 1)
        log_error("order %s failed and is parked: %s", o->id, why);
    else
        log_warn("order %s refused (%s) but no longer ours to park", o->id, why);
}

static void send_one(struct dispatcher *d, const struct outbox_order *o)
{
    json_t *item = order_item_build(o);
    if (!item) {
        park(d, o, "InvalidOrder: a text field is not valid UTF-8");
        return;
    }
    struct dynamo_result r;
    uint64_t t0 = clock_mono_ms();
    dynamo_put_item(d->dyn, d->settings->dynamodb_table, item, CONDITION, &r);
    uint64_t ms = clock_mono_ms() - t0;
    json_decref(item);
    switch (dispatcher_action_for(&r)) {
    case DISPATCH_SENT:
        delivered(d, o, &r, ms);
        break;
    case DISPATCH_RETRY:
        retry_later(d, o, &r);
        break;
    case DISPATCH_HOLD:
        hold(d, o, &r);
        break;
    case DISPATCH_PARK: {
        char *why = error_text(&r);
        park(d, o, why);
        free(why);
        break;
    }
    }
    dynamo_result_cleanup(&r);
}

/* Sends the claimed batch in order. After SIGTERM or a pause the rest is
 * released untouched (no attempt counted) for the next round or dispatcher. */
static void send_batch(struct dispatcher *d, struct outbox_order *orders, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct outbox_order *o = &orders[i];
        if (stop_requested || paused(d)) {
            outbox_release(d->db, o->id, d->owner);
            continue;
        }
        int64_t now = (int64_t)time(NULL);
        if (o->lease_until - now < LEASE_RENEW_SECONDS) {
            if (outbox_renew(d->db, o->id, d->owner, now + LEASE_SECONDS) != 1) {
                log_info("order %s: lease expired and taken over; skipping it", o->id);
                continue;
            }
            o->lease_until = now + LEASE_SECONDS;
        }
        send_one(d, o);
    }
}

static void run_loop(struct dispatcher *d)
{
    while (!stop_requested) {
        uint64_t now = clock_mono_ms();
        if (now < d->resume_ms) {
            uint64_t left = d->resume_ms - now;
            wait_for_work(d, left < POLL_MS ? (int)left : POLL_MS);
            continue;
        }
        if (now - d->reclaimed_ms >= RECLAIM_MS)
            reclaim_dead_leases(d);
        struct outbox_order *orders;
        int n = outbox_claim(d->db, d->owner, (int64_t)time(NULL), LEASE_SECONDS, BATCH, &orders);
        if (n > 0)
            send_batch(d, orders, (size_t)n);
        outbox_orders_free(orders, n > 0 ? (size_t)n : 0);
        /* A full batch means more may be due: go on without waiting. */
        if (n < BATCH)
            wait_for_work(d, POLL_MS);
    }
}

int dispatcher_run(const struct shopd_settings *settings, int wake_fd)
{
    /* No SA_RESTART: SIGTERM interrupts the idle poll at once; curl resumes
     * its own waits, so a send in flight still completes. */
    struct sigaction sa = {.sa_handler = on_term};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* Lets operators and tests tell the dispatcher from the workers (ps, /proc/PID/comm). */
    prctl(PR_SET_NAME, "shopd-dispatch", 0, 0, 0);

    struct dispatcher d = {.settings = settings, .wake_fd = wake_fd};
    char host[256] = "localhost";
    gethostname(host, sizeof(host) - 1);
    char *rnd = crypto_random_token_hex(4);
    machine_id(d.machine);
    snprintf(d.owner, sizeof(d.owner), "%s:%d:%s:%s", host, (int)getpid(), rnd, d.machine);
    free(rnd);

    char err[512];
    d.db = db_open(settings->db_path, err, sizeof(err));
    if (!d.db) {
        log_error("dispatcher: %s", err);
        return 1;
    }
    long long pending = (long long)outbox_pending_count(d.db);
    if (!settings->aws_access_key_id || !settings->aws_secret_access_key) {
        log_error(
            "dispatcher: AWS credentials missing (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); %lld "
            "orders pending stay pending and are sent once shopd runs with credentials",
            pending);
        idle_until_stopped(&d);
    } else if (!dispatcher_table_name_valid(settings->dynamodb_table)) {
        log_error("dispatcher: DYNAMODB_TABLE=%s: %s; %lld orders pending stay pending",
                  settings->dynamodb_table, table_rule, pending);
        idle_until_stopped(&d);
    } else if (!(d.dyn = client_from_settings(settings, err, sizeof(err)))) {
        log_error("dispatcher: %s; %lld orders pending stay pending", err, pending);
        idle_until_stopped(&d);
    } else {
        log_info("dispatcher started: pid %d, owner %s, table %s at %s, %lld orders pending", (int)getpid(),
                 d.owner, settings->dynamodb_table, dynamo_client_endpoint(d.dyn), pending);
        reclaim_dead_leases(&d);
        run_loop(&d);
    }
    int released = outbox_release_all(d.db, d.owner);
    if (released > 0)
        log_info("dispatcher: released %d claimed orders", released);
    log_info("dispatcher stopped");
    free(d.hold_reason);
    dynamo_client_free(d.dyn);
    db_close(d.db);
    return 0;
}
