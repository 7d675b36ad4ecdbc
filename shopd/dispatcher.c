#include "shopd/dispatcher.h"
#include "shopd/db.h"
#include "shopd/order_item.h"
#include "shopd/outbox.h"
#include "shared/clock.h"
#include "shared/crypto.h"
#include "shared/dynamo_multi.h"
#include "shared/log.h"
#include "shared/xalloc.h"

#include <errno.h>
#include <fcntl.h>
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
/* Dispatcher-wide pause after a failed probe: while DynamoDB is down or
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

static int signal_pipe[2] = {-1, -1}; /* written by on_term, so the wait ends at once */

static void on_term(int sig)
{
    (void)sig;
    int saved = errno;
    stop_requested = 1;
    if (signal_pipe[1] >= 0 && write(signal_pipe[1], "t", 1) < 0) {
        /* full: a wake-up is pending anyway */
    }
    errno = saved;
}

struct dispatcher {
    const struct shopd_settings *settings;
    struct db *db;
    struct dynamo_multi *dyn;
    size_t concurrency; /* PutItems in flight at most */
    int wake_fd;
    char owner[320];            /* host:pid:random:machine, unique per dispatcher process */
    char machine[17];           /* this boot and PID namespace, "" when unknown */
    uint64_t reclaimed_ms;      /* last look for dead owners' leases */
    unsigned failures;          /* consecutive retryable answers (sends in flight together count once) */
    unsigned fail_epoch;        /* bumped by each counted failure */
    uint64_t resume_ms;         /* monotonic time before which nothing is sent */
    uint64_t claim_after_ms;    /* none was due: no claim before this, unless a checkout wakes us */
    char *hold_reason;          /* the setup problem last logged, so it is logged once */
    struct outbox_order *batch; /* claimed; [next, claimed) not sent yet */
    size_t claimed, next;
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

static struct dynamo_multi *multi_from_settings(const struct shopd_settings *s, size_t slots, char *err,
                                                size_t errlen)
{
    struct dynamo_config cfg = {
        .region = s->aws_region,
        .endpoint = s->dynamodb_endpoint,
        .access_key_id = s->aws_access_key_id,
        .secret_access_key = s->aws_secret_access_key,
        .session_token = s->aws_session_token,
    };
    return dynamo_multi_new(&cfg, slots, err, errlen);
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

static void drain(int fd)
{
    char buf[64];
    while (fd >= 0 && read(fd, buf, sizeof(buf)) > 0)
        ;
}

/* For dispatchers that can never send (no credentials, bad table name): stay
 * alive, so the master does not respawn and re-log in a loop, until SIGTERM. */
static void idle_until_stopped(struct dispatcher *d)
{
    while (!stop_requested) {
        struct pollfd p[2] = {{d->wake_fd, POLLIN, 0}, {signal_pipe[0], POLLIN, 0}};
        if (poll(p, 2, 60000) > 0) {
            /* Reading resets the counter: one wake-up covers every checkout so far. */
            if (p[0].revents & POLLIN)
                drain(d->wake_fd);
            drain(signal_pipe[0]);
        }
    }
}

/* --- sending ------------------------------------------------------------- */

/* One order in flight: the claimed row and what its answer is compared with. */
struct send {
    struct outbox_order order;
    uint64_t started_ms;
    unsigned epoch; /* d->fail_epoch when it was sent */
};

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

/* While DynamoDB fails or refuses the setup, one order probes it at a time;
 * the first delivery opens all the slots again. */
static size_t send_limit(const struct dispatcher *d)
{
    return d->failures || d->hold_reason ? 1 : d->concurrency;
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
    /* What DynamoDB answered is logged before the outbox learns it: a
       dispatcher killed in between leaves the order pending, its successor's
       send then finds the item (and says so), and the log names every write. */
    if (r->cls == DYNAMO_CONDITION_FAILED)
        log_info("order %s was already in DynamoDB (an earlier send got through); marked sent", o->id);
    else
        log_info("order %s sent to DynamoDB in %" PRIu64 " ms (attempt %" PRId64 ")", o->id, ms,
                 o->attempts + 1);
    int rc = outbox_mark_sent(d->db, o->id, (int64_t)time(NULL));
    if (rc == 0)
        log_info("order %s had been marked by another dispatcher already", o->id);
    /* rc < 0: the lease runs out and the next send finds the item: no loss, no double. */
}

static void retry_later(struct dispatcher *d, const struct send *s, const struct dynamo_result *r)
{
    const struct outbox_order *o = &s->order;
    unsigned attempt = o->attempts > 30 ? 30u : (unsigned)o->attempts;
    long delay_ms = dynamo_backoff_ms(attempt, ORDER_BACKOFF_BASE_MS, ORDER_BACKOFF_CAP_MS);
    long delay_s = (delay_ms + 999) / 1000;
    char *why = error_text(r);
    int rc = outbox_schedule_retry(d->db, o->id, d->owner, (int64_t)time(NULL) + delay_s, why);
    log_warn("order %s not sent (attempt %" PRId64 "): %s; next try in %ld s%s", o->id, o->attempts + 1, why,
             delay_s, rc == 0 ? " (lease lost: another dispatcher has it)" : "");
    free(why);
    /* The sends that were in flight together fail together (an outage): they
     * count as one failure, so the pause grows per probe, not per slot. */
    if (s->epoch != d->fail_epoch)
        return;
    d->fail_epoch++;
    if (d->failures < 1000)
        d->failures++;
    /* A first failure only narrows the sends to one probe: a lone 500 among
     * a thousand deliveries a second pauses nothing. Each failed probe
     * pauses, longer every time, while DynamoDB stays down. */
    if (d->failures > 1)
        pause_for(d, dynamo_backoff_ms(d->failures - 2, PAUSE_BASE_MS, PAUSE_CAP_MS));
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

static void send_free(struct send *s)
{
    outbox_order_cleanup(&s->order);
    free(s);
}

/* Acts on the answer to one PutItem; frees s. */
static void finish_send(struct dispatcher *d, struct send *s, const struct dynamo_result *r)
{
    uint64_t ms = clock_mono_ms() - s->started_ms;
    switch (dispatcher_action_for(r)) {
    case DISPATCH_SENT:
        delivered(d, &s->order, r, ms);
        break;
    case DISPATCH_RETRY:
        retry_later(d, s, r);
        break;
    case DISPATCH_HOLD:
        hold(d, &s->order, r);
        break;
    case DISPATCH_PARK: {
        char *why = error_text(r);
        park(d, &s->order, why);
        free(why);
        break;
    }
    }
    send_free(s);
}

/* Starts the PutItem of claimed order o, whose fields the send takes over (o
 * is left empty). An order that needs no request (lease lost, not UTF-8) is
 * dealt with here. */
static void start_send(struct dispatcher *d, struct outbox_order *o)
{
    struct send *s = xcalloc(1, sizeof(*s));
    s->order = *o;
    *o = (struct outbox_order){0};
    int64_t now = (int64_t)time(NULL);
    if (s->order.lease_until - now < LEASE_RENEW_SECONDS) {
        if (outbox_renew(d->db, s->order.id, d->owner, now + LEASE_SECONDS) != 1) {
            log_info("order %s: lease expired and taken over; skipping it", s->order.id);
            send_free(s);
            return;
        }
        s->order.lease_until = now + LEASE_SECONDS;
    }
    json_t *item = order_item_build(&s->order);
    if (!item) {
        park(d, &s->order, "InvalidOrder: a text field is not valid UTF-8");
        send_free(s);
        return;
    }
    s->started_ms = clock_mono_ms();
    s->epoch = d->fail_epoch;
    /* A free slot is there: the caller checked dynamo_multi_busy. */
    if (dynamo_multi_put_item(d->dyn, d->settings->dynamodb_table, item, CONDITION, s) != 0) {
        outbox_release(d->db, s->order.id, d->owner);
        send_free(s);
    }
    json_decref(item);
}

/* Gives back the claimed orders not sent yet (no attempt counted), for the
 * next round or another dispatcher. */
static void release_unsent(struct dispatcher *d)
{
    for (size_t i = d->next; i < d->claimed; i++)
        outbox_release(d->db, d->batch[i].id, d->owner);
    outbox_orders_free(d->batch, d->claimed);
    d->batch = NULL;
    d->claimed = d->next = 0;
}

/* The next claimed order to send, claiming a batch when none is left; NULL
 * when none is due (and then no claim is tried again before a wake-up or the
 * poll interval). */
static struct outbox_order *next_order(struct dispatcher *d)
{
    if (d->next < d->claimed)
        return &d->batch[d->next++];
    release_unsent(d);
    uint64_t now = clock_mono_ms();
    if (now < d->claim_after_ms)
        return NULL;
    if (now - d->reclaimed_ms >= RECLAIM_MS)
        reclaim_dead_leases(d);
    /* Twice the slots: the next sends are at hand as answers come in. */
    size_t want = d->concurrency * 2 > BATCH ? d->concurrency * 2 : BATCH;
    struct outbox_order *orders;
    int n = outbox_claim(d->db, d->owner, (int64_t)time(NULL), LEASE_SECONDS, want, &orders);
    if (n <= 0) {
        d->claim_after_ms = now + POLL_MS;
        return NULL;
    }
    /* A short batch means the backlog is done: look again after a wake-up. */
    if ((size_t)n < want)
        d->claim_after_ms = now + POLL_MS;
    d->batch = orders;
    d->claimed = (size_t)n;
    d->next = 1;
    return &d->batch[0];
}

static void fill_slots(struct dispatcher *d)
{
    while (!stop_requested && !paused(d) && dynamo_multi_busy(d->dyn) < send_limit(d)) {
        struct outbox_order *o = next_order(d);
        if (!o)
            return;
        start_send(d, o);
    }
    /* Paused: what is claimed goes back, so another dispatcher may send it. */
    if (paused(d) || stop_requested)
        release_unsent(d);
}

static int wait_ms(const struct dispatcher *d)
{
    uint64_t now = clock_mono_ms();
    uint64_t until = now + POLL_MS;
    if (d->resume_ms > now && d->resume_ms < until)
        until = d->resume_ms;
    if (d->claim_after_ms > now && d->claim_after_ms < until)
        until = d->claim_after_ms;
    /* A free slot with orders claimed or claimable: no waiting. */
    if (!paused(d) && dynamo_multi_busy(d->dyn) < send_limit(d) &&
        (d->next < d->claimed || d->claim_after_ms <= now))
        until = now;
    return (int)(until - now);
}

/* Sends until SIGTERM, then lets the sends in flight finish and gives the
 * rest back. */
static void run_loop(struct dispatcher *d)
{
    const int fds[2] = {d->wake_fd, signal_pipe[0]};
    while (!stop_requested || dynamo_multi_busy(d->dyn) > 0) {
        fill_slots(d);
        bool readable[2];
        if (dynamo_multi_wait(d->dyn, fds, readable, 2, stop_requested ? POLL_MS : wait_ms(d)) < 0)
            pause_for(d, 100);
        if (readable[0]) {
            /* Reading resets the counter: one wake-up covers every checkout so far. */
            drain(d->wake_fd);
            d->claim_after_ms = 0;
        }
        if (readable[1])
            drain(signal_pipe[0]);
        void *tag;
        struct dynamo_result r;
        while (dynamo_multi_next(d->dyn, &tag, &r)) {
            finish_send(d, tag, &r);
            dynamo_result_cleanup(&r);
        }
    }
    release_unsent(d);
}

int dispatcher_run(const struct shopd_settings *settings, int wake_fd)
{
    /* No SA_RESTART: SIGTERM interrupts the idle poll at once, and the
     * self-pipe ends a wait for answers; the sends in flight still complete. */
    struct sigaction sa = {.sa_handler = on_term};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* Lets operators and tests tell the dispatcher from the workers (ps, /proc/PID/comm). */
    prctl(PR_SET_NAME, "shopd-dispatch", 0, 0, 0);

    struct dispatcher d = {
        .settings = settings,
        .wake_fd = wake_fd,
        .concurrency = (size_t)settings->dispatcher_concurrency, /* 1..256, checked by the settings */
    };
    char host[256] = "localhost";
    gethostname(host, sizeof(host) - 1);
    char *rnd = crypto_random_token_hex(4);
    machine_id(d.machine);
    snprintf(d.owner, sizeof(d.owner), "%s:%d:%s:%s", host, (int)getpid(), rnd, d.machine);
    free(rnd);

    if (pipe2(signal_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        log_warn("dispatcher: no signal pipe (%s): SIGTERM is seen within %d ms", strerror(errno), POLL_MS);

    char err[512];
    d.db = db_open(&settings->database, err, sizeof(err));
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
    } else if (!(d.dyn = multi_from_settings(settings, d.concurrency, err, sizeof(err)))) {
        log_error("dispatcher: %s; %lld orders pending stay pending", err, pending);
        idle_until_stopped(&d);
    } else {
        log_info("dispatcher started: pid %d, owner %s, table %s at %s, %zu in flight at most, %lld orders "
                 "pending",
                 (int)getpid(), d.owner, settings->dynamodb_table, dynamo_multi_endpoint(d.dyn),
                 d.concurrency, pending);
        reclaim_dead_leases(&d);
        run_loop(&d);
    }
    int released = outbox_release_all(d.db, d.owner);
    if (released > 0)
        log_info("dispatcher: released %d claimed orders", released);
    log_info("dispatcher stopped");
    free(d.hold_reason);
    dynamo_multi_free(d.dyn);
    db_close(d.db);
    return 0;
}
