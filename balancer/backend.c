#include "backend.h"

#include "shared/config.h"
#include "shared/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const uint64_t backend_lat_bounds_us[BACKEND_LAT_BUCKETS] = {500,   1000,  2500,   5000,   10000,
                                                             25000, 50000, 100000, 500000, 1000000};

/* Parses one entry (already trimmed, NUL-terminated). */
static int parse_entry(char *entry, struct backend_spec *spec, char *err, size_t errlen)
{
    spec->weight = 1;
    char *eq = strchr(entry, '=');
    if (eq) {
        *eq = '\0';
        const char *w = eq + 1;
        char *end;
        errno = 0;
        long weight = strtol(w, &end, 10);
        if (errno || end == w || *end || weight < 1 || weight > BACKEND_WEIGHT_MAX) {
            snprintf(err, errlen, "backend '%s': weight '%.32s' is not a whole number from 1 to %d", entry, w,
                     BACKEND_WEIGHT_MAX);
            return -1;
        }
        spec->weight = (int)weight;
    }
    int port;
    if (config_parse_hostport(entry, spec->host, sizeof(spec->host), &port) < 0) {
        snprintf(err, errlen, "backend '%.300s' is not host:port", entry);
        return -1;
    }
    if (port < 1) {
        snprintf(err, errlen, "backend '%.300s': port must be from 1 to 65535", entry);
        return -1;
    }
    for (const char *c = spec->host; *c; c++)
        if (isspace((unsigned char)*c) || (unsigned char)*c < 0x21 || *c == '/' || *c == '@') {
            snprintf(err, errlen, "backend '%.300s': invalid host", entry);
            return -1;
        }
    spec->port = port;
    return 0;
}

int backend_parse_list(const char *text, struct backend_spec **out, size_t *count, char *err, size_t errlen)
{
    *out = NULL;
    *count = 0;
    if (!text) {
        snprintf(err, errlen, "no backends given");
        return -1;
    }
    char *copy = xstrdup(text);
    struct backend_spec *specs = xcalloc(BACKEND_LIST_MAX, sizeof(*specs));
    size_t n = 0;
    int rc = 0;
    char *p = copy;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        char *s = p;
        while (isspace((unsigned char)*s))
            s++;
        char *e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
            *--e = '\0';
        if (!*s) {
            snprintf(err, errlen, "empty entry in backend list");
            rc = -1;
            break;
        }
        if (n == BACKEND_LIST_MAX) {
            snprintf(err, errlen, "more than %d backends", BACKEND_LIST_MAX);
            rc = -1;
            break;
        }
        if (parse_entry(s, &specs[n], err, errlen) < 0) {
            rc = -1;
            break;
        }
        for (size_t i = 0; i < n; i++)
            if (specs[i].port == specs[n].port && strcasecmp(specs[i].host, specs[n].host) == 0) {
                snprintf(err, errlen, "backend %s:%d is listed twice", specs[n].host, specs[n].port);
                rc = -1;
            }
        if (rc < 0)
            break;
        n++;
        if (!comma)
            break;
        p = comma + 1;
    }
    free(copy);
    if (rc < 0) {
        free(specs);
        return -1;
    }
    *out = specs;
    *count = n;
    return 0;
}

struct backend *backend_new(const struct backend_spec *spec, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", spec->port);
    int gai = getaddrinfo(spec->host, port, &hints, &res);
    if (gai != 0 || !res) {
        snprintf(err, errlen, "backend %s:%d: cannot resolve: %s", spec->host, spec->port, gai_strerror(gai));
        return NULL;
    }
    char host[sizeof(((struct backend *)0)->addr_host)];
    gai = getnameinfo(res->ai_addr, res->ai_addrlen, host, sizeof(host), NULL, 0, NI_NUMERICHOST);
    if (gai != 0) {
        snprintf(err, errlen, "backend %s:%d: %s", spec->host, spec->port, gai_strerror(gai));
        freeaddrinfo(res);
        return NULL;
    }
    struct backend *b = xcalloc(1, sizeof(*b));
    b->spec = *spec;
    memcpy(&b->addr, res->ai_addr, res->ai_addrlen);
    b->addrlen = res->ai_addrlen;
    memcpy(b->addr_host, host, sizeof(host));
    freeaddrinfo(res);
    if (strchr(spec->host, ':'))
        snprintf(b->name, sizeof(b->name), "[%s]:%d", spec->host, spec->port);
    else
        snprintf(b->name, sizeof(b->name), "%s:%d", spec->host, spec->port);
    b->up = true;
    return b;
}

void backend_free(struct backend *b)
{
    free(b);
}

static bool eligible(const struct backend *b, const bool *exclude, size_t i)
{
    return !b->removed && !(exclude && exclude[i]);
}

int backend_pick(struct backend *const *b, size_t n, const bool *exclude)
{
    long total = 0;
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        if (!b[i]->up || !eligible(b[i], exclude, i))
            continue;
        b[i]->current_weight += b[i]->spec.weight;
        total += b[i]->spec.weight;
        if (best < 0 || b[i]->current_weight > b[best]->current_weight)
            best = (int)i;
    }
    if (best >= 0)
        b[best]->current_weight -= total;
    return best;
}

int backend_pick_least_bad(struct backend *const *b, size_t n, const bool *exclude, size_t *cursor)
{
    int best = -1;
    if (n == 0)
        return -1;
    size_t start = *cursor % n;
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        if (!eligible(b[i], exclude, i))
            continue;
        if (best < 0 || b[i]->fails < b[best]->fails)
            best = (int)i;
    }
    *cursor = start + 1;
    return best;
}

bool backend_report_failure(struct backend *b, int fall, bool hard, const char *why)
{
    snprintf(b->last_error, sizeof(b->last_error), "%s", why ? why : "failure");
    b->successes = 0;
    b->fails = hard && b->fails < fall ? fall : b->fails + 1;
    if (b->up && b->fails >= fall) {
        b->up = false;
        return true;
    }
    return false;
}

bool backend_report_check_ok(struct backend *b, int rise)
{
    if (b->up) {
        b->fails = 0;
        return false;
    }
    if (++b->successes >= rise) {
        b->up = true;
        b->fails = 0;
        b->successes = 0;
        b->current_weight = 0;
        return true;
    }
    return false;
}

void backend_report_answer(struct backend *b)
{
    if (b->up)
        b->fails = 0;
}

void backend_record(struct backend *b, int status, uint64_t latency_us)
{
    int cls = status / 100;
    b->responses[cls >= 1 && cls <= 5 ? cls : 0]++;
    b->lat_count++;
    b->lat_sum_us += latency_us;
    if (latency_us > b->lat_max_us)
        b->lat_max_us = latency_us;
    size_t i = 0;
    while (i < BACKEND_LAT_BUCKETS && latency_us > backend_lat_bounds_us[i])
        i++;
    b->lat_buckets[i]++;
}
