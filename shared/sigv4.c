#include "sigv4.h"
#include "crypto.h"
#include "strbuf.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "xalloc.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

/* --- encoding ------------------------------------------------------------ */

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

/* AWS URI encoding: unreserved bytes kept, every other byte %XX upper-case. */
static void uri_encode(struct strbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c)) {
            strbuf_addc(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            strbuf_add(b, e, 3);
        }
    }
}

/* Decodes %XX escapes of s[0..n) into b; a '%' without two hex digits stays
 * literal, so that it is encoded as %25 afterwards rather than rejected. */
static void uri_decode(struct strbuf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char byte;
        if (s[i] == '%' && i + 2 < n && crypto_hex_decode(s + i + 1, 2, &byte, 1)) {
            strbuf_addc(b, (char)byte);
            i += 2;
        } else {
            strbuf_addc(b, s[i]);
        }
    }
}

/* --- signing key cache --------------------------------------------------- */

/* A handful of entries covers one process talking to a few (region, service)
 * pairs; the secret is kept only as its SHA-256 so the cache holds no secret. */
#define KEY_CACHE_SIZE 8

struct key_entry {
    bool used;
    char date[9];
    char region[32];
    char service[32];
    unsigned char secret_hash[32];
    unsigned char key[32];
};

static struct key_entry key_cache[KEY_CACHE_SIZE];
static unsigned key_cache_next;
static pthread_mutex_t key_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static void derive_key(const char *secret, const char *date, const char *region, const char *service,
                       unsigned char out[32])
{
    char *k0 = xasprintf("AWS4%s", secret);
    unsigned char k1[32], k2[32], k3[32];
    crypto_hmac_sha256(k0, strlen(k0), date, strlen(date), k1);
    crypto_hmac_sha256(k1, 32, region, strlen(region), k2);
    crypto_hmac_sha256(k2, 32, service, strlen(service), k3);
    crypto_hmac_sha256(k3, 32, "aws4_request", 12, out);
    OPENSSL_cleanse(k0, strlen(k0));
    free(k0);
    OPENSSL_cleanse(k1, sizeof(k1));
    OPENSSL_cleanse(k2, sizeof(k2));
    OPENSSL_cleanse(k3, sizeof(k3));
}

void sigv4_signing_key(const char *secret, const char *date, const char *region, const char *service,
                       unsigned char out[32], bool *from_cache)
{
    unsigned char sh[32];
    crypto_sha256(secret, strlen(secret), sh);
    bool cacheable = strlen(date) < sizeof(key_cache[0].date) &&
                     strlen(region) < sizeof(key_cache[0].region) &&
                     strlen(service) < sizeof(key_cache[0].service);

    if (cacheable) {
        pthread_mutex_lock(&key_cache_lock);
        for (size_t i = 0; i < KEY_CACHE_SIZE; i++) {
            struct key_entry *e = &key_cache[i];
            if (e->used && strcmp(e->date, date) == 0 && strcmp(e->region, region) == 0 &&
                strcmp(e->service, service) == 0 && memcmp(e->secret_hash, sh, 32) == 0) {
                memcpy(out, e->key, 32);
                pthread_mutex_unlock(&key_cache_lock);
                if (from_cache)
                    *from_cache = true;
                return;
            }
        }
        pthread_mutex_unlock(&key_cache_lock);
    }

    derive_key(secret, date, region, service, out);
    if (from_cache)
        *from_cache = false;
    if (!cacheable)
        return;

    pthread_mutex_lock(&key_cache_lock);
    struct key_entry *e = &key_cache[key_cache_next++ % KEY_CACHE_SIZE];
    e->used = true;
    strcpy(e->date, date);
    strcpy(e->region, region);
    strcpy(e->service, service);
    memcpy(e->secret_hash, sh, 32);
    memcpy(e->key, out, 32);
    pthread_mutex_unlock(&key_cache_lock);
}

/* --- canonical parts ------------------------------------------------------ */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Appends the path segment by segment: URI-encoded, with dot segments removed
 * and empty segments dropped unless normalisation is off. */
static void canonical_uri(struct strbuf *b, const char *path, bool normalize)
{
    size_t n = strlen(path);
    if (!normalize) {
        if (path[0] != '/')
            strbuf_addc(b, '/');
        size_t start = 0;
        for (size_t i = 0; i <= n; i++) {
            if (i == n || path[i] == '/') {
                uri_encode(b, path + start, i - start);
                if (i < n)
                    strbuf_addc(b, '/');
                start = i + 1;
            }
        }
        return;
    }

    /* Segments kept so far, as (offset, length) into path. */
    size_t cap = n / 2 + 2, count = 0;
    size_t *off = xmalloc(cap * sizeof(*off)), *len = xmalloc(cap * sizeof(*len));
    bool trailing = false; /* the result ends in '/' (RFC 3986 5.2.4 keeps it after "." and "..") */
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && path[i] != '/')
            continue;
        size_t l = i - start;
        const char *seg = path + start;
        if (l == 0) {
            trailing = trailing || (i == n && count > 0 && start > 0);
        } else if (l == 1 && seg[0] == '.') {
            trailing = true;
        } else if (l == 2 && seg[0] == '.' && seg[1] == '.') {
            if (count > 0)
                count--;
            trailing = true;
        } else {
            off[count] = start;
            len[count] = l;
            count++;
            trailing = false;
        }
        start = i + 1;
    }
    for (size_t i = 0; i < count; i++) {
        strbuf_addc(b, '/');
        uri_encode(b, path + off[i], len[i]);
    }
    if (count == 0 || trailing)
        strbuf_addc(b, '/');
    free(off);
    free(len);
}

struct qparam {
    char *key; /* encoded */
    char *value;
};

static int qparam_cmp(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->value, y->value);
}

struct qlist {
    struct qparam *v;
    size_t n, cap;
};

/* Adds a parameter given unencoded (raw bytes of length klen and vlen). */
static void qlist_add(struct qlist *q, const char *k, size_t klen, const char *v, size_t vlen)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 8;
        q->v = xrealloc(q->v, q->cap * sizeof(*q->v));
    }
    struct strbuf kb = {0}, vb = {0};
    uri_encode(&kb, k, klen);
    uri_encode(&vb, v, vlen);
    q->v[q->n].key = strbuf_take(&kb, NULL);
    q->v[q->n].value = strbuf_take(&vb, NULL);
    q->n++;
}

/* Splits a raw query string; keys and values are decoded first so that an
 * already encoded parameter and a raw one canonicalise alike. */
static void qlist_parse(struct qlist *q, const char *query)
{
    if (!query)
        return;
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n > 0) {
            const char *eq = memchr(p, '=', n);
            size_t kl = eq ? (size_t)(eq - p) : n;
            struct strbuf k = {0}, v = {0};
            uri_decode(&k, p, kl);
            if (eq)
                uri_decode(&v, eq + 1, n - kl - 1);
            qlist_add(q, k.p ? k.p : "", k.len, v.p ? v.p : "", v.len);
            free(k.p);
            free(v.p);
        }
        if (!amp)
            break;
        p = amp + 1;
    }
}

static void qlist_free(struct qlist *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->v[i].key);
        free(q->v[i].value);
    }
    free(q->v);
    *q = (struct qlist){0};
}

struct chdr {
    char *name;  /* lower-case */
    char *value; /* trimmed, inner whitespace runs collapsed */
    size_t order;
};

static int chdr_cmp(const void *a, const void *b)
{
    const struct chdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return (x->order > y->order) - (x->order < y->order);
}

static char *canonical_value(const char *v)
{
    struct strbuf b = {0};
    while (is_space(*v))
        v++;
    bool pending = false;
    for (; *v; v++) {
        if (is_space(*v)) {
            pending = true;
            continue;
        }
        if (pending)
            strbuf_addc(&b, ' ');
        pending = false;
        strbuf_addc(&b, *v);
    }
    return strbuf_take(&b, NULL);
}

static bool is_reserved_header(const char *lname)
{
    return strcmp(lname, "authorization") == 0 || strcmp(lname, "x-amz-date") == 0 ||
           strcmp(lname, "x-amz-security-token") == 0 || strcmp(lname, "x-amz-content-sha256") == 0;
}

/* Everything the stages share, computed once per call. */
struct parts {
    char amz_date[17];
    char date[9];
    char *scope;          /* date/region/service/aws4_request */
    char *signed_headers; /* a;b;c */
    char *canonical;      /* the canonical request */
    char *query;          /* PRESIGN: the canonical query string */
    char payload_hash[65];
};

static void parts_free(struct parts *pt)
{
    free(pt->scope);
    free(pt->signed_headers);
    free(pt->canonical);
    free(pt->query);
    *pt = (struct parts){0};
}

static bool nonempty(const char *s)
{
    return s && *s;
}

static bool has_token(const struct sigv4_params *p)
{
    return nonempty(p->creds.session_token);
}

static int build_parts(const struct sigv4_request *req, const struct sigv4_params *p, struct parts *pt)
{
    *pt = (struct parts){0};
    if (!req || !p || !nonempty(req->method) || !req->path || !nonempty(p->region) || !nonempty(p->service) ||
        !nonempty(p->creds.access_key_id) || !nonempty(p->creds.secret_access_key))
        return -1;
    if (req->n_headers && !req->headers)
        return -1;
    if (req->body_len && !req->body)
        return -1;
    struct tm tm;
    if (!gmtime_r(&p->now, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
        return -1;
    strftime(pt->amz_date, sizeof(pt->amz_date), "%Y%m%dT%H%M%SZ", &tm);
    memcpy(pt->date, pt->amz_date, 8);
    pt->date[8] = '\0';
    pt->scope = xasprintf("%s/%s/%s/aws4_request", pt->date, p->region, p->service);
    crypto_sha256_hex(req->body ? req->body : "", req->body_len, pt->payload_hash);

    bool presign = p->flags & SIGV4_PRESIGN;
    bool sign_token = has_token(p) && !(p->flags & SIGV4_UNSIGNED_TOKEN);

    /* Headers: the caller's plus those the signer adds. */
    size_t n = 0, cap = req->n_headers + 3;
    struct chdr *h = xcalloc(cap, sizeof(*h));
    int rc = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *name = req->headers[i].name, *value = req->headers[i].value;
        if (!name || !value) {
            rc = -1;
            break;
        }
        char *lname = canonical_value(name);
        for (char *c = lname; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        if (!*lname || strchr(lname, ':') || strchr(lname, ' ')) {
            free(lname);
            rc = -1;
            break;
        }
        if (is_reserved_header(lname)) {
            free(lname);
            continue;
        }
        h[n].name = lname;
        h[n].value = canonical_value(value);
        h[n].order = n;
        n++;
    }
    if (rc == 0 && !presign) {
        h[n] = (struct chdr){xstrdup("x-amz-date"), xstrdup(pt->amz_date), n};
        n++;
        if (sign_token) {
            h[n] = (struct chdr){xstrdup("x-amz-security-token"), canonical_value(p->creds.session_token), n};
            n++;
        }
        if (p->flags & SIGV4_SIGN_BODY_HEADER) {
            h[n] = (struct chdr){xstrdup("x-amz-content-sha256"), xstrdup(pt->payload_hash), n};
            n++;
        }
    }

    struct strbuf hb = {0}, sh = {0};
    if (rc == 0) {
        qsort(h, n, sizeof(*h), chdr_cmp);
        for (size_t i = 0; i < n; i++) {
            bool same = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
            if (same) {
                strbuf_addc(&hb, ',');
            } else {
                if (i > 0)
                    strbuf_addc(&hb, '\n');
                strbuf_adds(&hb, h[i].name);
                strbuf_addc(&hb, ':');
                if (sh.len)
                    strbuf_addc(&sh, ';');
                strbuf_adds(&sh, h[i].name);
            }
            strbuf_adds(&hb, h[i].value);
        }
        if (n)
            strbuf_addc(&hb, '\n');
    }
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
    if (rc != 0) {
        free(hb.p);
        free(sh.p);
        parts_free(pt);
        return -1;
    }
    pt->signed_headers = strbuf_take(&sh, NULL);

    struct qlist q = {0};
    qlist_parse(&q, req->query);
    if (presign) {
        char *cred = xasprintf("%s/%s", p->creds.access_key_id, pt->scope);
        char *exp = xasprintf("%u", p->expires_seconds);
#define QADD(k, v) qlist_add(&q, k, strlen(k), v, strlen(v))
        QADD("X-Amz-Algorithm", ALGORITHM);
        QADD("X-Amz-Credential", cred);
        QADD("X-Amz-Date", pt->amz_date);
        QADD("X-Amz-Expires", exp);
        if (sign_token)
            QADD("X-Amz-Security-Token", p->creds.session_token);
        QADD("X-Amz-SignedHeaders", pt->signed_headers);
#undef QADD
        free(cred);
        free(exp);
    }
    if (q.n)
        qsort(q.v, q.n, sizeof(*q.v), qparam_cmp);
    struct strbuf qb = {0};
    for (size_t i = 0; i < q.n; i++) {
        if (i)
            strbuf_addc(&qb, '&');
        strbuf_adds(&qb, q.v[i].key);
        strbuf_addc(&qb, '=');
        strbuf_adds(&qb, q.v[i].value);
    }
    qlist_free(&q);
    char *query = strbuf_take(&qb, NULL);

    struct strbuf c = {0};
    strbuf_adds(&c, req->method);
    strbuf_addc(&c, '\n');
    canonical_uri(&c, req->path, !(p->flags & SIGV4_NO_NORMALIZE));
    strbuf_addc(&c, '\n');
    strbuf_adds(&c, query);
    strbuf_addc(&c, '\n');
    if (hb.p)
        strbuf_add(&c, hb.p, hb.len);
    strbuf_addc(&c, '\n');
    strbuf_adds(&c, pt->signed_headers);
    strbuf_addc(&c, '\n');
    strbuf_adds(&c, pt->payload_hash);
    free(hb.p);
    pt->canonical = strbuf_take(&c, NULL);
    if (presign)
        pt->query = query;
    else
        free(query);
    return 0;
}

static char *string_to_sign(const struct parts *pt)
{
    char hash[65];
    crypto_sha256_hex(pt->canonical, strlen(pt->canonical), hash);
    return xasprintf("%s\n%s\n%s\n%s", ALGORITHM, pt->amz_date, pt->scope, hash);
}

static void signature_hex(const struct parts *pt, const struct sigv4_params *p, char out[65])
{
    unsigned char key[32], sig[32];
    sigv4_signing_key(p->creds.secret_access_key, pt->date, p->region, p->service, key, NULL);
    char *sts = string_to_sign(pt);
    crypto_hmac_sha256(key, 32, sts, strlen(sts), sig);
    free(sts);
    OPENSSL_cleanse(key, sizeof(key));
    crypto_hex_encode(sig, 32, out);
}

static char *authorization(const struct parts *pt, const struct sigv4_params *p)
{
    char sig[65];
    signature_hex(pt, p, sig);
    return xasprintf("%s Credential=%s/%s, SignedHeaders=%s, Signature=%s", ALGORITHM, p->creds.access_key_id,
                     pt->scope, pt->signed_headers, sig);
}

/* --- public stages -------------------------------------------------------- */

char *sigv4_canonical_request(const struct sigv4_request *req, const struct sigv4_params *p)
{
    struct parts pt;
    if (build_parts(req, p, &pt) != 0)
        return NULL;
    char *s = pt.canonical;
    pt.canonical = NULL;
    parts_free(&pt);
    return s;
}

char *sigv4_string_to_sign(const struct sigv4_request *req, const struct sigv4_params *p)
{
    struct parts pt;
    if (build_parts(req, p, &pt) != 0)
        return NULL;
    char *s = string_to_sign(&pt);
    parts_free(&pt);
    return s;
}

char *sigv4_signature(const struct sigv4_request *req, const struct sigv4_params *p)
{
    struct parts pt;
    if (build_parts(req, p, &pt) != 0)
        return NULL;
    char *sig = xmalloc(65);
    signature_hex(&pt, p, sig);
    parts_free(&pt);
    return sig;
}

char *sigv4_authorization(const struct sigv4_request *req, const struct sigv4_params *p)
{
    struct parts pt;
    if (build_parts(req, p, &pt) != 0)
        return NULL;
    char *s = authorization(&pt, p);
    parts_free(&pt);
    return s;
}

int sigv4_sign(const struct sigv4_request *req, const struct sigv4_params *p, struct sigv4_signed *out)
{
    *out = (struct sigv4_signed){0};
    if (p && (p->flags & SIGV4_PRESIGN))
        return -1;
    struct parts pt;
    if (build_parts(req, p, &pt) != 0)
        return -1;
    out->amz_date = xstrdup(pt.amz_date);
    if (has_token(p))
        out->security_token = xstrdup(p->creds.session_token);
    if (p->flags & SIGV4_SIGN_BODY_HEADER)
        out->content_sha256 = xstrdup(pt.payload_hash);
    out->authorization = authorization(&pt, p);
    parts_free(&pt);
    return 0;
}

void sigv4_signed_free(struct sigv4_signed *s)
{
    if (!s)
        return;
    free(s->amz_date);
    free(s->security_token);
    free(s->content_sha256);
    free(s->authorization);
    *s = (struct sigv4_signed){0};
}

char *sigv4_presigned_query(const struct sigv4_request *req, const struct sigv4_params *p)
{
    if (!p || !(p->flags & SIGV4_PRESIGN))
        return NULL;
    struct parts pt;
    if (build_parts(req, p, &pt) != 0)
        return NULL;
    char sig[65];
    signature_hex(&pt, p, sig);
    struct strbuf b = {0};
    strbuf_adds(&b, pt.query);
    if (has_token(p) && (p->flags & SIGV4_UNSIGNED_TOKEN)) {
        strbuf_adds(&b, "&X-Amz-Security-Token=");
        uri_encode(&b, p->creds.session_token, strlen(p->creds.session_token));
    }
    strbuf_adds(&b, "&X-Amz-Signature=");
    strbuf_adds(&b, sig);
    parts_free(&pt);
    return strbuf_take(&b, NULL);
}

/* --- raw request parsing -------------------------------------------------- */

struct parsed {
    struct sigv4_request req; /* first, so that sigv4_request_free can cast back */
    struct sigv4_header *hdrs;
    size_t cap;
};

void sigv4_request_free(struct sigv4_request *req)
{
    if (!req)
        return;
    struct parsed *pr = (struct parsed *)req;
    free((char *)req->method);
    free((char *)req->path);
    free((char *)req->query);
    for (size_t i = 0; i < req->n_headers; i++) {
        free((char *)pr->hdrs[i].name);
        free((char *)pr->hdrs[i].value);
    }
    free(pr->hdrs);
    free((void *)req->body);
    free(pr);
}

static char *trim_dup(const char *s, size_t n)
{
    while (n && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return xstrndup(s, n);
}

struct sigv4_request *sigv4_request_parse(const char *raw, size_t len)
{
    if (!raw || memchr(raw, '\0', len))
        return NULL;
    struct parsed *pr = xcalloc(1, sizeof(*pr));
    struct sigv4_request *req = &pr->req;
    size_t pos = 0;
    bool first = true, blank = false;
    while (pos < len) {
        const char *line = raw + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        if (n && line[n - 1] == '\r')
            n--;
        if (first) {
            first = false;
            const char *sp1 = memchr(line, ' ', n);
            const char *sp2 = NULL;
            for (size_t i = n; i > 0; i--)
                if (line[i - 1] == ' ') {
                    sp2 = line + i - 1;
                    break;
                }
            if (!sp1 || sp1 == line || sp2 == sp1 || (size_t)(line + n - sp2 - 1) < 5 ||
                strncmp(sp2 + 1, "HTTP/", 5) != 0)
                goto bad;
            req->method = xstrndup(line, (size_t)(sp1 - line));
            const char *target = sp1 + 1;
            size_t tl = (size_t)(sp2 - target);
            if (tl == 0)
                goto bad;
            const char *qm = memchr(target, '?', tl);
            if (qm) {
                req->path = xstrndup(target, (size_t)(qm - target));
                req->query = xstrndup(qm + 1, tl - (size_t)(qm - target) - 1);
            } else {
                req->path = xstrndup(target, tl);
            }
            continue;
        }
        if (n == 0) {
            blank = true;
            break;
        }
        if (line[0] == ' ' || line[0] == '\t') {
            /* Folded line (obs-fold): RFC 7230 3.2.4 lets a recipient replace it by one space. */
            if (req->n_headers == 0)
                goto bad;
            struct sigv4_header *last = &pr->hdrs[req->n_headers - 1];
            char *more = trim_dup(line, n);
            char *joined = xasprintf("%s %s", last->value, more);
            free(more);
            free((char *)last->value);
            last->value = joined;
            continue;
        }
        const char *colon = memchr(line, ':', n);
        if (!colon || colon == line)
            goto bad;
        if (req->n_headers == pr->cap) {
            pr->cap = pr->cap ? pr->cap * 2 : 8;
            pr->hdrs = xrealloc(pr->hdrs, pr->cap * sizeof(*pr->hdrs));
            req->headers = pr->hdrs;
        }
        pr->hdrs[req->n_headers].name = xstrndup(line, (size_t)(colon - line));
        pr->hdrs[req->n_headers].value = trim_dup(colon + 1, n - (size_t)(colon - line) - 1);
        req->n_headers++;
    }
    if (first)
        goto bad;
    if (blank && pos < len) {
        char *body = xmalloc(len - pos);
        memcpy(body, raw + pos, len - pos);
        req->body = body;
        req->body_len = len - pos;
    }
    return req;
bad:
    sigv4_request_free(req);
    return NULL;
}
