#include "shopd/catalog_cache.h"
#include "shopd/catalog.h"
#include "shopd/db.h"
#include "shopd/metrics.h"
#include "shared/log.h"
#include "shared/strbuf.h"
#include "shared/xalloc.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SQL_VERSION[] = "SELECT epoch, version FROM catalog_version WHERE id = 1";

static struct {
    struct db *db;               /* the connection the figures below belong to */
    struct db_mark seen;         /* what the connection had seen when the version was read */
    char etag[CATALOG_ETAG_MAX]; /* the version then, as an entity tag ("" before the first read) */
    char list_etag[CATALOG_ETAG_MAX];
    struct strbuf list; /* GET /products' body for list_etag */
    bool confirmed;     /* catalog_cache_confirm's read holds until catalog_cache_unconfirm */
    struct catalog_cache_stats stats;
} cache;

/* Reads the version row when anything could have changed it since the last
 * read. Returns 0 or -1. */
static int refresh(struct db *db)
{
    if (cache.db != db) {
        cache.db = db;
        cache.etag[0] = cache.list_etag[0] = '\0';
        cache.confirmed = false;
    }
    if (cache.confirmed)
        return 0;
    cache.stats.checks++;
    metrics_catalog_version_check();
    if (cache.etag[0] && db_unchanged_since(db, &cache.seen))
        return 0;
    /* The mark before the read: a change committed in between shows next time. */
    struct db_mark seen;
    db_mark_take(db, &seen);
    struct db_stmt *st = db_stmt(db, SQL_VERSION);
    int rc = -1;
    if (db_step(st) == DB_ROW) {
        snprintf(cache.etag, sizeof(cache.etag), "\"%s-%lld\"", db_column_text(st, 0),
                 (long long)db_column_int64(st, 1));
        cache.seen = seen;
        rc = 0;
    } else {
        db_log_error(db, "catalog version");
        cache.etag[0] = '\0';
    }
    db_done(st);
    return rc;
}

int catalog_cache_confirm(struct db *db)
{
    cache.confirmed = false;
    if (refresh(db) < 0)
        return -1;
    cache.confirmed = true;
    return 0;
}

void catalog_cache_unconfirm(void)
{
    cache.confirmed = false;
}

int catalog_cache_etag(struct db *db, char *etag, size_t len)
{
    if (refresh(db) < 0)
        return -1;
    snprintf(etag, len, "%s", cache.etag);
    return 0;
}

const char *catalog_cache_list(struct db *db, size_t *len, char *etag, size_t etaglen)
{
    if (refresh(db) < 0)
        return NULL;
    if (strcmp(cache.list_etag, cache.etag) != 0) {
        /* The version is read before the rows, so the rows are at least as new
           as the tag they are kept under: a change in between only makes the
           next request build again. */
        char tag[CATALOG_ETAG_MAX];
        snprintf(tag, sizeof(tag), "%s", cache.etag);
        json_t *list = catalog_list(db);
        if (!list)
            return NULL;
        char *text = json_dumps(list, JSON_COMPACT | JSON_REAL_PRECISION(12));
        json_decref(list);
        if (!text)
            return NULL;
        strbuf_reset(&cache.list);
        strbuf_adds(&cache.list, text);
        strbuf_addc(&cache.list, '\n');
        free(text);
        snprintf(cache.list_etag, sizeof(cache.list_etag), "%s", tag);
        cache.stats.builds++;
    } else {
        cache.stats.hits++;
    }
    *len = cache.list.len;
    if (etag)
        snprintf(etag, etaglen, "%s", cache.list_etag);
    return cache.list.p;
}

#define FRAGMENTS 32

static struct fragment_slot {
    char *key;
    char etag[CATALOG_ETAG_MAX];
    struct strbuf html;
    long long total;
    int has_more;
} fragments[FRAGMENTS];
static size_t next_slot;

int catalog_cache_fragment(const char *key, const char *etag, struct catalog_fragment *out)
{
    for (size_t i = 0; i < FRAGMENTS; i++) {
        struct fragment_slot *f = &fragments[i];
        if (f->key && strcmp(f->key, key) == 0 && strcmp(f->etag, etag) == 0) {
            *out = (struct catalog_fragment){f->html.p, f->html.len, f->total, f->has_more};
            cache.stats.fragment_hits++;
            return 0;
        }
    }
    return -1;
}

void catalog_cache_keep_fragment(const char *key, const char *etag, const char *html, size_t len,
                                 long long total, int has_more)
{
    struct fragment_slot *f = NULL;
    for (size_t i = 0; i < FRAGMENTS && !f; i++)
        if (fragments[i].key && strcmp(fragments[i].key, key) == 0)
            f = &fragments[i]; /* an older version of the same key */
    if (!f) {
        f = &fragments[next_slot];
        next_slot = (next_slot + 1) % FRAGMENTS;
        free(f->key);
        f->key = xstrdup(key);
    }
    snprintf(f->etag, sizeof(f->etag), "%s", etag);
    strbuf_reset(&f->html);
    strbuf_add(&f->html, html, len);
    f->total = total;
    f->has_more = has_more;
    cache.stats.fragment_builds++;
}

struct catalog_cache_stats catalog_cache_stats(void)
{
    return cache.stats;
}
