/* catalog_cache: the catalog answers a worker builds once and reuses until the
 * catalog changes.
 *
 * The catalog changes only when an admin edits it or a checkout takes stock,
 * yet GET /products and the inventory page read it on every request. The
 * database keeps a version number that triggers bump in the same transaction
 * as every change to products (schema version 4), and a random epoch per
 * database. Per request this module reads SQLite's PRAGMA data_version (which
 * moves when another connection commits) and its own connection's change
 * count; only when one of them moved does it read the version row. So a
 * change made by any worker or any shopd on the same database is seen on the
 * next request, and nothing served is staler than the version it carries.
 *
 * Under load the worker gathers the catalog requests of one pass of its event
 * loop and confirms the version once for all of them (catalog_cache_confirm):
 * every one of them had arrived before that read began, so none is answered
 * from a version older than the last change committed before it arrived. On
 * PostgreSQL, where the read is a round trip, that is one per pass instead of
 * one per request.
 *
 * One cache per process (a worker is one thread); it belongs to one database
 * connection at a time and starts over when given another. */
#ifndef SHOPD_CATALOG_CACHE_H
#define SHOPD_CATALOG_CACHE_H

#include <stddef.h>

struct db;

/* Room for an entity tag, quotes included. */
#define CATALOG_ETAG_MAX 64

/* Reads the version now (when it may have moved) and trusts it for every call
 * until catalog_cache_unconfirm: for requests that all arrived before this
 * call. Returns 0, or -1 on a database error (nothing is trusted then, and
 * each call reads again). */
int catalog_cache_confirm(struct db *db);
void catalog_cache_unconfirm(void);

/* The catalog's entity tag, "\"<epoch>-<version>\"", into etag
 * (CATALOG_ETAG_MAX bytes). Returns 0, or -1 on a database error. */
int catalog_cache_etag(struct db *db, char *etag, size_t len);

/* The whole catalog as GET /products answers it (catalog_list's JSON and a
 * newline), built once per version: *len gets its length and etag (may be
 * NULL) its entity tag. Valid until the next call. NULL on a database error. */
const char *catalog_cache_list(struct db *db, size_t *len, char *etag, size_t etaglen);

/* Rendered pieces of pages that depend only on the catalog and a key (the
 * inventory's product cards for one search, sort and page), kept for the
 * catalog version etag was read at, together with two figures the page needs
 * besides (how many products matched, whether another page follows). A few
 * dozen are kept, the oldest replaced first; a new version makes them all
 * stale. */
struct catalog_fragment {
    const char *html; /* valid until the next catalog_cache_* call */
    size_t len;
    long long total;
    int has_more;
};
/* The fragment kept for key at the version etag; 0 when there is one, -1 when not. */
int catalog_cache_fragment(const char *key, const char *etag, struct catalog_fragment *out);
/* Keeps html (copied) as key's fragment for the version etag. */
void catalog_cache_keep_fragment(const char *key, const char *etag, const char *html, size_t len,
                                 long long total, int has_more);

/* The cache's own figures, for tests and metrics: how many times the list was
 * built and how many times it was served from the cache. */
struct catalog_cache_stats {
    unsigned long builds, hits;                   /* GET /products' list */
    unsigned long checks;                         /* times the version was checked */
    unsigned long fragment_builds, fragment_hits; /* kept fragments */
};
struct catalog_cache_stats catalog_cache_stats(void);

#endif
