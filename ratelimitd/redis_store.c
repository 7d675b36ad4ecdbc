#include "ratelimitd/redis_store.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
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

/* GCRA in one script. ARGV: interval_us, burst, cost. Returns {allowed, remaining tokens,
 * us until allowed, us until full}. The TAT is stored as a decimal string with a TTL equal
 * to the time until the bucket is full, so idle keys vanish exactly when they mean nothing. */
const char rld_redis_script[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local interval = tonumber(ARGV[1])\n"
    "local tau = interval * tonumber(ARGV[2])\n"
    "local cost = tonumber(ARGV[3])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0\n"
    "if tat < now then tat = now end\n"
    "local nxt = tat + cost * interval\n"
    "local allow_at = nxt - tau\n"
    "if allow_at > now then\n"
    "  return {0, math.floor((tau - (tat - now)) / interval), allow_at - now, tat - now}\n"
    "end\n"
    "if nxt > now then\n"
    "  redis.call('SET', KEYS[1], string.format('%.0f', nxt))\n"
    "  redis.call('PEXPIRE', KEYS[1], math.ceil((nxt - now) / 1000))\n"
    "end\n"
    "return {1, math.floor((tau - (nxt - now)) / interval), 0, nxt - now}\n";

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
};

struct call {
    struct rld_store *s;
    const struct rld_rule *rule;
    long cost;
    rld_store_done_fn cb;
    void *arg;
    bool answered;
    bool retried; /* already resent as EVAL after NOSCRIPT */
    uint64_t sent_us;
    struct event *timer;
    size_t key_len;
    char key[];
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

static void answer_locally(struct call *c, bool count_degraded)
{
    struct rld_store *s = c->s;
    struct rld_decision d;
    rld_buckets_check(s->local, c->rule, c->key, c->key_len, c->cost, (int64_t)clock_mono_us(), &d);
    if (count_degraded)
        s->stats->degraded_decisions++;
    c->answered = true;
    c->cb(&d, c->arg);
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

static void on_call_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct call *c = arg;
    struct rld_store *s = c->s;
    if (c->answered)
        return;
    s->stats->redis_timeouts++;
    answer_locally(c, true);
    if (s->state == ST_UP && clock_mono_us() - s->last_reply_us > (uint64_t)STALL_MS * 1000 && s->ac)
        drop_connection(s, "no answer for over a second");
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata);

static void send_call(struct rld_store *s, struct call *c, bool full_script)
{
    int rc;
    if (full_script)
        rc = redisAsyncCommand(s->ac, on_reply, c, "EVAL %s 1 rl:%s:%b %lld %ld %ld", rld_redis_script,
                               c->rule->name, c->key, c->key_len, (long long)c->rule->interval_us,
                               c->rule->burst, c->cost);
    else
        rc =
            redisAsyncCommand(s->ac, on_reply, c, "EVALSHA %s 1 rl:%s:%b %lld %ld %ld", s->sha, c->rule->name,
                              c->key, c->key_len, (long long)c->rule->interval_us, c->rule->burst, c->cost);
    if (rc != REDIS_OK) {
        if (!c->answered)
            answer_locally(c, true);
        event_free(c->timer);
        free(c);
    }
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct call *c = privdata;
    struct rld_store *s = c->s;
    redisReply *reply = r;
    if (reply)
        s->last_reply_us = clock_mono_us();
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0 && !c->retried &&
        s->ac == ac && !c->answered) {
        /* Redis restarted or SCRIPT FLUSH: EVAL runs it and caches it again under the same SHA. */
        c->retried = true;
        send_call(s, c, true);
        return;
    }
    if (!c->answered) {
        if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 4) {
            long long v[4];
            bool ok = true;
            for (int i = 0; i < 4; i++) {
                if (reply->element[i]->type != REDIS_REPLY_INTEGER)
                    ok = false;
                else
                    v[i] = reply->element[i]->integer;
            }
            if (ok) {
                rld_stats_redis_latency(s->stats, clock_mono_us() - c->sent_us);
                struct rld_decision d;
                rld_decision_fill(c->rule, v[0] == 1, v[1], v[2], v[3], &d);
                c->answered = true;
                c->cb(&d, c->arg);
            }
        }
        if (!c->answered) {
            if (reply && reply->type == REDIS_REPLY_ERROR)
                log_warn("redis script error: %s", reply->str);
            answer_locally(c, true);
        }
    }
    event_free(c->timer);
    free(c);
}

void rld_store_check(struct rld_store *s, const struct rld_rule *rule, const char *key, size_t key_len,
                     long cost, rld_store_done_fn cb, void *arg)
{
    struct call *c = xmalloc(sizeof(*c) + key_len);
    c->s = s;
    c->rule = rule;
    c->cost = cost;
    c->cb = cb;
    c->arg = arg;
    c->answered = false;
    c->retried = false;
    c->key_len = key_len;
    memcpy(c->key, key, key_len);
    if (s->state != ST_UP || !s->ac) {
        answer_locally(c, true);
        free(c);
        return;
    }
    c->sent_us = clock_mono_us();
    c->timer = evtimer_new(s->base, on_call_timeout, c);
    evtimer_add(c->timer, &s->call_timeout);
    send_call(s, c, false);
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
    redisAsyncContext *ac = s->ac;
    s->ac = NULL;
    if (ac)
        redisAsyncFree(ac);
    event_free(s->reconnect_ev);
    event_free(s->connect_timeout_ev);
    event_free(s->sweep_ev);
    rld_buckets_free(s->local);
    free(s);
}
