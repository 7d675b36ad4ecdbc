#include "ratelimitd/redis_store.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/clock.h"
#include "shared/log.h"
#include "shared/xalloc.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* Connecting plus AUTH, SELECT and SCRIPT LOAD must finish within this, or we try again. */
#define CONNECT_TIMEOUT_MS 1000
/* When calls keep timing out and nothing has come back for this long, Redis is treated as gone. */
#define STALL_MS 1000

/* GCRA in one script over one or more runs of decisions. A run is decisions on one key
 * with one cost; for run i, ARGV[4i-3..4i]: interval_us, burst, cost, count. All runs are
 * decided with one clock reading, one after another, so a key named in several runs sees
 * its own earlier spending. Within a run every decision sees the same clock, so the
 * first `allowed` of them pass and the rest are refused: the script finds that number
 * without a loop over the decisions and returns, per run in order, {allowed, TAT - now at
 * the run's start}, flattened; ratelimitd works each decision's answer out from those
 * (rld_gcra), exactly what one call per decision would give. A key is read once and
 * written once, with its last value: the calls into Redis are most of a call's cost. The
 * TAT is stored as a decimal string with a TTL equal to the time until the bucket is
 * full, so idle keys vanish exactly when they mean nothing. */
const char rld_redis_script[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local out, tats, written, order = {}, {}, {}, {}\n"
    "for i = 1, #KEYS do\n"
    "  local key = KEYS[i]\n"
    "  local interval = tonumber(ARGV[4 * i - 3])\n"
    "  local tau = interval * tonumber(ARGV[4 * i - 2])\n"
    "  local step = interval * tonumber(ARGV[4 * i - 1])\n"
    "  local count = tonumber(ARGV[4 * i])\n"
    "  local tat = tats[key]\n"
    "  if tat == nil then tat = tonumber(redis.call('GET', key) or 0) or 0 end\n"
    "  if tat < now then tat = now end\n"
    "  local allowed = 0\n"
    "  if step == 0 then\n"
    "    if tat - tau <= now then allowed = count end\n"
    "  else\n"
    "    allowed = math.floor((now + tau - tat) / step)\n"
    "    if allowed > count then allowed = count end\n"
    "    if allowed < 0 then allowed = 0 end\n"
    "    while allowed > 0 and tat + allowed * step - tau > now do allowed = allowed - 1 end\n"
    "    while allowed < count and tat + (allowed + 1) * step - tau <= now do allowed = allowed + 1 end\n"
    "  end\n"
    "  out[2 * i - 1] = allowed\n"
    "  out[2 * i] = tat - now\n"
    "  local nxt = tat + allowed * step\n"
    "  tats[key] = nxt\n"
    "  if allowed > 0 and nxt > now and not written[key] then\n"
    "    order[#order + 1] = key\n"
    "    written[key] = true\n"
    "  end\n"
    "end\n"
    "for _, key in ipairs(order) do\n"
    "  local nxt = tats[key]\n"
    "  redis.call('SET', key, string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000))\n"
    "end\n"
    "return out\n";

/* Decisions gathered in one pass of the event loop go out as one script call; a larger
 * batch is split so that one call stays short for Redis (it runs scripts one at a time). */
#define BATCH_MAX 128
/* Script calls waiting for Redis at once. While one waits, the decisions that arrive
 * gather into the next call, which leaves when it is answered (or times out): under load
 * the calls grow instead of multiplying, and Redis's cost per call is most of its cost
 * per decision. An idle daemon sends at once, so a lone decision waits for nothing. */
#define CALLS_IN_FLIGHT_MAX 1

enum state { ST_DOWN, ST_CONNECTING, ST_UP };

struct rld_store {
    struct event_base *base;
    struct rld_redis_addr addr;
    struct timeval call_timeout; /* a common timeout: O(1) timers for many calls */
    struct rld_stats *stats;
    struct rld_buckets *local;
    redisAsyncContext *ac;
    enum state state;
    bool freeing;
    bool outage_logged; /* the switch to local buckets was logged for this outage */
    char sha[41];
    int backoff_ms;
    uint64_t last_reply_us;
    struct event *reconnect_ev;
    struct event *connect_timeout_ev;
    struct event *sweep_ev;
    struct event *flush_ev; /* sends the open batch once this loop pass has read everything */
    struct batch *open;     /* decisions not sent yet, NULL when none */
    size_t calls_in_flight; /* batches sent, neither answered nor timed out */
};

/* One answer owed: up to `most` decisions of `cost` on one key, one after another,
 * stopping at the first refusal (most is 1 but for a LEASE). */
struct call {
    const struct rld_rule *rule;
    long cost;
    long most;
    rld_store_done_fn cb;
    void *arg;
    bool answered;
    size_t key_len;
    char key[];
};

/* Decisions of a batch on one key with one cost, in the order they arrived: one entry
 * of the script call however many they are. */
struct run {
    uint8_t first;  /* index of its first call in the batch */
    uint32_t count; /* decisions, the sum of its calls' most */
};

/* One script call: its decisions in the order they arrived, answered together. */
struct batch {
    struct rld_store *s;
    bool retried;   /* already resent as EVAL after NOSCRIPT */
    bool in_flight; /* counted in calls_in_flight */
    uint64_t sent_us;
    struct event *timer;
    size_t n;
    struct call *calls[BATCH_MAX];
    size_t n_runs;
    struct run runs[BATCH_MAX];
    uint8_t run_of[BATCH_MAX]; /* the run each call belongs to */
};

int rld_redis_parse_url(const char *url, struct rld_redis_addr *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7;
        const char *q = strchr(path, '?');
        size_t len = q ? (size_t)(q - path) : strlen(path);
        if (len == 0 || path[0] != '/' || len >= sizeof(out->host)) {
            snprintf(err, errlen, "REDIS_URL: unix:// needs an absolute socket path");
            return -1;
        }
        out->is_unix = true;
        memcpy(out->host, path, len);
        if (q) {
            char *end;
            if (strncmp(q, "?db=", 4) != 0 || (out->db = (int)strtol(q + 4, &end, 10), *end) ||
                end == q + 4 || out->db < 0 || out->db > 1000) {
                snprintf(err, errlen, "REDIS_URL: only ?db=N is understood after a unix socket path");
                return -1;
            }
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "REDIS_URL must start with redis:// or unix://, not '%.40s'", url);
        return -1;
    }
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *cred = p;
        const char *colon = memchr(cred, ':', (size_t)(at - cred));
        /* redis://:pw@host and redis://user:pw@host both carry the password after the colon. */
        const char *pw = colon ? colon + 1 : cred;
        size_t len = (size_t)(at - pw);
        if (len >= sizeof(out->password)) {
            snprintf(err, errlen, "REDIS_URL: password too long");
            return -1;
        }
        memcpy(out->password, pw, len);
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    size_t hp_len = slash ? (size_t)(slash - p) : strlen(p);
    char hostport[300];
    if (hp_len == 0 || hp_len >= sizeof(hostport)) {
        snprintf(err, errlen, "REDIS_URL: missing or overlong host");
        return -1;
    }
    memcpy(hostport, p, hp_len);
    hostport[hp_len] = 0;
    char *colon = strrchr(hostport, ':');
    if (colon && !strchr(colon, ']')) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || end == colon + 1 || port < 1 || port > 65535) {
            snprintf(err, errlen, "REDIS_URL: bad port '%s'", colon + 1);
            return -1;
        }
        out->port = (int)port;
        *colon = 0;
    }
    char *host = hostport;
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = 0;
        host++;
    }
    if (!*host || strlen(host) >= sizeof(out->host)) {
        snprintf(err, errlen, "REDIS_URL: missing host");
        return -1;
    }
    strcpy(out->host, host);
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 1000) {
            snprintf(err, errlen, "REDIS_URL: bad database number '%s'", slash + 1);
            return -1;
        }
        out->db = (int)db;
    }
    return 0;
}

/* Makes c's decisions with next_decision(ctx, &one) until c->most passed or one is
 * refused, and leaves c's answer in d. */
static void decide_call(const struct call *c, void (*next_decision)(void *ctx, struct rld_decision *one),
                        void *ctx, struct rld_decision *d)
{
    long granted = 0;
    struct rld_decision one;
    do {
        next_decision(ctx, &one);
        if (!one.allowed)
            break;
        *d = one;
        granted++;
    } while (granted < c->most);
    if (granted == 0)
        *d = one;
    d->granted = granted;
}

struct local_decision {
    struct rld_store *s;
    const struct call *c;
    int64_t now_us;
};

static void next_local_decision(void *ctx, struct rld_decision *one)
{
    struct local_decision *l = ctx;
    rld_buckets_check(l->s->local, l->c->rule, l->c->key, l->c->key_len, l->c->cost, l->now_us, one);
}

static void answer_locally(struct rld_store *s, struct call *c, bool count_degraded)
{
    struct rld_decision d;
    struct local_decision l = {s, c, (int64_t)clock_mono_us()};
    decide_call(c, next_local_decision, &l, &d);
    if (count_degraded)
        s->stats->degraded_decisions++;
    c->answered = true;
    c->cb(&d, c->arg);
}

/* Answers every decision of b not answered yet from the local buckets. */
static void batch_answer_locally(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (!b->calls[i]->answered)
            answer_locally(b->s, b->calls[i], true);
}

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->calls[i]);
    if (b->timer)
        event_free(b->timer);
    free(b);
}

static void schedule_reconnect(struct rld_store *s);

static void mark_down(struct rld_store *s, const char *why)
{
    bool was_up = s->state == ST_UP;
    s->state = ST_DOWN;
    s->stats->redis_up = false;
    if (!s->outage_logged && !s->freeing) {
        log_warn("redis %s (%s); deciding from local buckets until it is back",
                 was_up ? "lost" : "unreachable", why);
        s->outage_logged = true;
    } else {
        log_debug("redis: %s", why);
    }
    if (!s->freeing)
        schedule_reconnect(s);
}

/* Drops the connection from outside hiredis' callbacks: calls in flight are answered
 * locally by their callbacks (NULL reply) during redisAsyncFree. */
static void drop_connection(struct rld_store *s, const char *why)
{
    redisAsyncContext *ac = s->ac;
    s->ac = NULL;
    evtimer_del(s->connect_timeout_ev);
    mark_down(s, why);
    if (ac)
        redisAsyncFree(ac);
}

static void flush_open(struct rld_store *s);

/* b no longer holds back the next call: it was answered or timed out. */
static void batch_landed(struct rld_store *s, struct batch *b)
{
    if (!b->in_flight)
        return;
    b->in_flight = false;
    s->calls_in_flight--;
    if (s->open && !s->freeing)
        flush_open(s);
}

/* The call timeout runs from a batch's first decision, so a batch held back behind
 * another is answered in time too. */
static void on_batch_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct batch *b = arg;
    struct rld_store *s = b->s;
    for (size_t i = 0; i < b->n; i++)
        if (!b->calls[i]->answered)
            s->stats->redis_timeouts++;
    batch_answer_locally(b);
    if (b == s->open) {
        s->open = NULL; /* never sent */
        event_del(s->flush_ev);
        batch_free(b);
    } else {
        batch_landed(s, b);
    }
    if (s->state == ST_UP && clock_mono_us() - s->last_reply_us > (uint64_t)STALL_MS * 1000 && s->ac)
        drop_connection(s, "no answer for over a second");
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata);

static bool same_bucket(const struct call *a, const struct call *b)
{
    return a->rule == b->rule && a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/* Groups b's calls into runs: a call joins the latest run of its key when the cost is
 * the same, else starts a new one. Order within a key is kept, which is all that
 * matters: different keys do not affect each other. */
static void batch_group_runs(struct batch *b)
{
    /* Open addressing over the latest run of each key; twice BATCH_MAX slots. */
    int16_t slot_run[2 * BATCH_MAX];
    memset(slot_run, -1, sizeof(slot_run));
    b->n_runs = 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct call *c = b->calls[i];
        uint64_t h = (uint64_t)(uintptr_t)c->rule * 1099511628211ULL;
        for (size_t j = 0; j < c->key_len; j++)
            h = (h ^ (unsigned char)c->key[j]) * 1099511628211ULL;
        size_t slot = (size_t)(h % (2 * BATCH_MAX));
        while (slot_run[slot] >= 0 && !same_bucket(b->calls[b->runs[slot_run[slot]].first], c))
            slot = (slot + 1) % (2 * BATCH_MAX);
        struct run *r = slot_run[slot] >= 0 ? &b->runs[slot_run[slot]] : NULL;
        if (r && b->calls[r->first]->cost == c->cost) {
            r->count += (uint32_t)c->most;
        } else {
            slot_run[slot] = (int16_t)b->n_runs;
            r = &b->runs[b->n_runs++];
            r->first = (uint8_t)i;
            r->count = (uint32_t)c->most;
        }
        b->run_of[i] = (uint8_t)(r - b->runs);
    }
}

/* Sends b, already grouped into runs, as one EVALSHA (or EVAL with the script's text)
 * over all its runs. When it cannot, answers b locally and frees it, and returns false. */
static bool send_batch(struct rld_store *s, struct batch *b, bool full_script)
{
    /* argv: command, script or SHA, key count, one key per run, four numbers per run. */
    size_t argc = 3 + 5 * b->n_runs;
    const char **argv = xmalloc(argc * sizeof(*argv));
    size_t *argvlen = xmalloc(argc * sizeof(*argvlen));
    size_t text_len = 24;
    for (size_t i = 0; i < b->n_runs; i++) {
        const struct call *c = b->calls[b->runs[i].first];
        text_len += 4 + strlen(c->rule->name) + c->key_len + 4 * 24;
    }
    char *text = xmalloc(text_len);
    char *p = text;
    argv[0] = full_script ? "EVAL" : "EVALSHA";
    argvlen[0] = strlen(argv[0]);
    argv[1] = full_script ? rld_redis_script : s->sha;
    argvlen[1] = full_script ? sizeof(rld_redis_script) - 1 : 40;
    argv[2] = p;
    argvlen[2] = (size_t)sprintf(p, "%zu", b->n_runs);
    p += argvlen[2] + 1;
    for (size_t i = 0; i < b->n_runs; i++) {
        const struct call *c = b->calls[b->runs[i].first];
        size_t k = 3 + i;
        argv[k] = p;
        argvlen[k] = (size_t)sprintf(p, "rl:%s:", c->rule->name);
        memcpy(p + argvlen[k], c->key, c->key_len);
        argvlen[k] += c->key_len;
        p += argvlen[k] + 1;
        long long nums[4] = {(long long)c->rule->interval_us, (long long)c->rule->burst, (long long)c->cost,
                             (long long)b->runs[i].count};
        for (int j = 0; j < 4; j++) {
            k = 3 + b->n_runs + 4 * i + (size_t)j;
            argv[k] = p;
            argvlen[k] = (size_t)sprintf(p, "%lld", nums[j]);
            p += argvlen[k] + 1;
        }
    }
    int rc = redisAsyncCommandArgv(s->ac, on_reply, b, (int)argc, argv, argvlen);
    free(text);
    free(argv);
    free(argvlen);
    if (rc != REDIS_OK) {
        batch_answer_locally(b);
        batch_landed(s, b);
        batch_free(b);
        return false;
    }
    return true;
}

/* Reads run i of a flattened script answer: its key's TAT relative to the script's clock
 * when the run began. The count of decisions that passed is only checked for sense:
 * rld_gcra, the same arithmetic, works each answer out from the TAT. False when malformed. */
static bool read_run(const redisReply *reply, size_t i, const struct run *run, int64_t *tat_rel)
{
    const redisReply *allowed = reply->element[2 * i], *tat = reply->element[2 * i + 1];
    if (allowed->type != REDIS_REPLY_INTEGER || tat->type != REDIS_REPLY_INTEGER || allowed->integer < 0 ||
        allowed->integer > (long long)run->count || tat->integer < 0)
        return false;
    *tat_rel = tat->integer;
    return true;
}

/* The next decision of a call on its run's TAT, on the script's clock (now = 0). */
struct script_decision {
    const struct call *c;
    int64_t *tat;
};

static void next_script_decision(void *ctx, struct rld_decision *one)
{
    struct script_decision *sd = ctx;
    rld_gcra(sd->c->rule, *sd->tat, 0, sd->c->cost, one, sd->tat);
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct batch *b = privdata;
    struct rld_store *s = b->s;
    redisReply *reply = r;
    if (reply)
        s->last_reply_us = clock_mono_us();
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0 && !b->retried &&
        s->ac == ac) {
        /* Redis restarted or SCRIPT FLUSH: EVAL runs it and caches it again under the same SHA. */
        b->retried = true;
        send_batch(s, b, true); /* still in flight */
        return;
    }
    bool whole = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 * b->n_runs;
    /* Each run's TAT as its decisions spend it, on the script's clock (now = 0). */
    int64_t tat[BATCH_MAX];
    for (size_t i = 0; whole && i < b->n_runs; i++)
        whole = read_run(reply, i, &b->runs[i], &tat[i]);
    uint64_t latency = clock_mono_us() - b->sent_us;
    for (size_t i = 0; whole && i < b->n; i++) {
        struct call *c = b->calls[i];
        struct rld_decision d;
        struct script_decision sd = {c, &tat[b->run_of[i]]};
        decide_call(c, next_script_decision, &sd, &d);
        if (c->answered)
            continue;
        rld_stats_redis_latency(s->stats, latency);
        c->answered = true;
        c->cb(&d, c->arg);
    }
    if (reply && reply->type == REDIS_REPLY_ERROR)
        log_warn("redis script error: %s", reply->str);
    batch_answer_locally(b);
    batch_landed(s, b);
    batch_free(b);
}

static void flush_open(struct rld_store *s)
{
    struct batch *b = s->open;
    if (!b)
        return;
    s->open = NULL;
    event_del(s->flush_ev);
    if (s->state != ST_UP || !s->ac) {
        batch_answer_locally(b);
        batch_free(b);
        return;
    }
    batch_group_runs(b);
    b->sent_us = clock_mono_us();
    b->in_flight = true;
    s->calls_in_flight++;
    send_batch(s, b, false);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct rld_store *s = arg;
    if (s->calls_in_flight < CALLS_IN_FLIGHT_MAX)
        flush_open(s);
}

static void store_decide(struct rld_store *s, const struct rld_rule *rule, const char *key, size_t key_len,
                         long cost, long most, rld_store_done_fn cb, void *arg)
{
    struct call *c = xmalloc(sizeof(*c) + key_len);
    c->rule = rule;
    c->cost = cost;
    c->most = most < 1 ? 1 : most;
    c->cb = cb;
    c->arg = arg;
    c->answered = false;
    c->key_len = key_len;
    memcpy(c->key, key, key_len);
    if (s->state != ST_UP || !s->ac) {
        answer_locally(s, c, true);
        free(c);
        return;
    }
    if (!s->open) {
        struct batch *b = xcalloc(1, sizeof(*b));
        b->s = s;
        b->timer = evtimer_new(s->base, on_batch_timeout, b);
        evtimer_add(b->timer, &s->call_timeout);
        s->open = b;
        /* Runs after the callbacks already due in this pass: the reads of every ready connection. */
        event_active(s->flush_ev, EV_TIMEOUT, 0);
    }
    s->open->calls[s->open->n++] = c;
    if (s->open->n == BATCH_MAX)
        flush_open(s);
}

void rld_store_check(struct rld_store *s, const struct rld_rule *rule, const char *key, size_t key_len,
                     long cost, rld_store_done_fn cb, void *arg)
{
    store_decide(s, rule, key, key_len, cost, 1, cb, arg);
}

void rld_store_lease(struct rld_store *s, const struct rld_rule *rule, const char *key, size_t key_len,
                     long most, rld_store_done_fn cb, void *arg)
{
    store_decide(s, rule, key, key_len, 1, most, cb, arg);
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rld_store *s = privdata;
    redisReply *reply = r;
    if (!reply || ac != s->ac)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        log_error("redis refused setup: %s", reply->str);
        /* Not from inside hiredis' callback: let the connect timeout drop the connection. */
        return;
    }
}

static void on_script_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rld_store *s = privdata;
    redisReply *reply = r;
    if (!reply || ac != s->ac)
        return;
    if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
        log_error("redis SCRIPT LOAD failed: %s",
                  reply->type == REDIS_REPLY_ERROR ? reply->str : "odd reply");
        return;
    }
    memcpy(s->sha, reply->str, 40);
    s->sha[40] = 0;
    evtimer_del(s->connect_timeout_ev);
    s->state = ST_UP;
    s->stats->redis_up = true;
    s->backoff_ms = BACKOFF_MIN_MS;
    s->last_reply_us = clock_mono_us();
    if (s->outage_logged)
        log_info("redis back at %s; deciding from Redis again", s->addr.host);
    else
        log_info("redis connected at %s%s%d", s->addr.host, s->addr.is_unix ? "" : ":",
                 s->addr.is_unix ? s->addr.db : s->addr.port);
    s->outage_logged = false;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct rld_store *s = ac->data;
    if (ac != s->ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context itself after this callback. */
        s->ac = NULL;
        evtimer_del(s->connect_timeout_ev);
        mark_down(s, ac->errstr);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rld_store *s = ac->data;
    if (ac != s->ac)
        return;
    s->ac = NULL;
    evtimer_del(s->connect_timeout_ev);
    mark_down(s, status == REDIS_OK ? "connection closed" : ac->errstr);
}

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct rld_store *s = arg;
    if (s->state != ST_UP && s->ac)
        drop_connection(s, "connect or setup timed out");
}

static void start_connect(struct rld_store *s)
{
    redisAsyncContext *ac =
        s->addr.is_unix ? redisAsyncConnectUnix(s->addr.host) : redisAsyncConnect(s->addr.host, s->addr.port);
    if (!ac || ac->err) {
        const char *why = ac ? ac->errstr : "out of memory";
        char msg[160];
        snprintf(msg, sizeof(msg), "%s", why);
        if (ac)
            redisAsyncFree(ac);
        mark_down(s, msg);
        return;
    }
    ac->data = s;
    s->ac = ac;
    s->state = ST_CONNECTING;
    redisLibeventAttach(ac, s->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (s->addr.password[0])
        redisAsyncCommand(ac, on_setup_reply, s, "AUTH %s", s->addr.password);
    if (s->addr.db)
        redisAsyncCommand(ac, on_setup_reply, s, "SELECT %d", s->addr.db);
    redisAsyncCommand(ac, on_script_loaded, s, "SCRIPT LOAD %s", rld_redis_script);
    struct timeval tv = clock_ms_tv(CONNECT_TIMEOUT_MS);
    evtimer_add(s->connect_timeout_ev, &tv);
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    start_connect(arg);
}

static void schedule_reconnect(struct rld_store *s)
{
    if (evtimer_pending(s->reconnect_ev, NULL))
        return;
    struct timeval tv = clock_ms_tv(s->backoff_ms);
    evtimer_add(s->reconnect_ev, &tv);
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct rld_store *s = arg;
    rld_buckets_sweep(s->local, (int64_t)clock_mono_us());
}

struct rld_store *rld_store_new(struct event_base *base, const struct rld_redis_addr *addr, int timeout_ms,
                                struct rld_stats *stats)
{
    struct rld_store *s = xcalloc(1, sizeof(*s));
    s->base = base;
    s->addr = *addr;
    s->stats = stats;
    s->local = rld_buckets_new();
    s->backoff_ms = BACKOFF_MIN_MS;
    struct timeval tv = clock_ms_tv(timeout_ms);
    const struct timeval *common = event_base_init_common_timeout(base, &tv);
    s->call_timeout = common ? *common : tv;
    s->reconnect_ev = evtimer_new(base, on_reconnect, s);
    s->connect_timeout_ev = evtimer_new(base, on_connect_timeout, s);
    s->sweep_ev = event_new(base, -1, EV_PERSIST, on_sweep, s);
    s->flush_ev = event_new(base, -1, 0, on_flush, s);
    struct timeval sweep_tv = {10, 0};
    evtimer_add(s->sweep_ev, &sweep_tv);
    start_connect(s);
    return s;
}

void rld_store_free(struct rld_store *s)
{
    if (!s)
        return;
    s->freeing = true;
    if (s->open) {
        batch_answer_locally(s->open);
        batch_free(s->open);
        s->open = NULL;
    }
    redisAsyncContext *ac = s->ac;
    s->ac = NULL;
    if (ac)
        redisAsyncFree(ac);
    event_free(s->reconnect_ev);
    event_free(s->connect_timeout_ev);
    event_free(s->sweep_ev);
    event_free(s->flush_ev);
    rld_buckets_free(s->local);
    free(s);
}
