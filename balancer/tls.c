#include "tls.h"

#include "shared/log.h"
#include "shared/prom.h"
#include "shared/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

/* A ticket key lives this long as the one that encrypts, then as long again as
 * one that still decrypts (and asks for a renewed ticket). */
#define TLS_TICKET_ROTATE_S 43200
/* Sessions kept by the server cache (TLS 1.2 session ids, for clients without
 * tickets), and how long a session may be resumed. */
#define TLS_CACHE_SIZE 20480
#define TLS_SESSION_TIMEOUT_S 600
#define TLS_NAMES_MAX 64
#define TLS13_CIPHERSUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

struct tls_cert {
    SSL_CTX *ctx;
    char file[1024];
    char name[256]; /* the first DNS name (or the CN): the metric label */
    char *names[TLS_NAMES_MAX];
    size_t nnames;
    time_t not_after;
};

struct tls_store {
    struct tls_cert *certs; /* certs[0] is the default */
    size_t n;
    int refs; /* the owner and each SSL not yet freed */
};

struct ticket_key {
    unsigned char name[16], aes[32], hmac[32];
    time_t made;
};

/* keys[0] encrypts; keys[1] (the previous one) only decrypts. */
static struct ticket_key keys[2];
static bool keys_made;

enum fail_reason {
    FR_HTTP,
    FR_VERSION,
    FR_CIPHER,
    FR_CLOSED,
    FR_INCOMPLETE,
    FR_MALFORMED,
    FR_OTHER,
    FR_COUNT
};
static const char *const fail_names[FR_COUNT] = {
    "http_request", "protocol_version", "no_shared_cipher", "closed", "incomplete", "malformed", "other"};
static uint64_t hs_full, hs_resumed, hs_failed[FR_COUNT];

/* ex_data slots on each SSL: its store, and whether its end was counted. */
static int ex_store = -1, ex_counted = -1;

static void ex_init(void)
{
    if (ex_store < 0) {
        ex_store = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
        ex_counted = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    }
}

/* --- ticket keys ------------------------------------------------------------ */

static void key_make(struct ticket_key *k)
{
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
        abort(); /* no randomness: nothing secure can be done */
    k->made = time(NULL);
}

static void keys_rotate_if_due(void)
{
    time_t now = time(NULL);
    if (!keys_made) {
        key_make(&keys[0]);
        key_make(&keys[1]);
        keys_made = true;
    } else if (now - keys[0].made >= TLS_TICKET_ROTATE_S) {
        keys[1] = keys[0];
        key_make(&keys[0]);
    }
}

static int ticket_cb(SSL *ssl, unsigned char *key_name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    keys_rotate_if_due();
    const struct ticket_key *k = NULL;
    if (enc) {
        k = &keys[0];
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
            return -1;
        memcpy(key_name, k->name, sizeof(k->name));
    } else {
        for (int i = 0; i < 2 && !k; i++)
            if (memcmp(key_name, keys[i].name, sizeof(keys[i].name)) == 0)
                k = &keys[i];
        if (!k)
            return 0; /* unknown (older) key: a full handshake */
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"sha256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    int ok = enc ? EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv)
                 : EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv);
    if (ok != 1)
        return -1;
    if (enc)
        return 1;
    /* 2: good, and issue a new ticket. Always in TLS 1.3: OpenSSL sends a
     * resumed TLS 1.3 client a fresh ticket only when asked to renew, and a
     * client that keeps just its latest session (wrk, many libraries) would
     * otherwise fall back to a full handshake every second connection. In TLS
     * 1.2 the ticket stays valid, so only one from the previous key is renewed. */
    return k == &keys[0] && SSL_version(ssl) < TLS1_3_VERSION ? 1 : 2;
}

/* --- SNI and ALPN -------------------------------------------------------------- */

static bool name_matches(const char *pattern, const char *host)
{
    if (strcasecmp(pattern, host) == 0)
        return true;
    if (pattern[0] != '*' || pattern[1] != '.')
        return false;
    const char *dot = strchr(host, '.'); /* a wildcard covers exactly one label */
    return dot && dot != host && strcasecmp(pattern + 1, dot) == 0;
}

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    (void)arg;
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    struct tls_store *s = SSL_get_ex_data(ssl, ex_store);
    if (!host || !s)
        return SSL_TLSEXT_ERR_OK;
    for (int wild = 0; wild < 2; wild++) /* exact names first, then wildcards */
        for (size_t i = 0; i < s->n; i++)
            for (size_t k = 0; k < s->certs[i].nnames; k++) {
                const char *p = s->certs[i].names[k];
                if ((p[0] == '*') != (wild == 1) || !name_matches(p, host))
                    continue;
                if (i > 0)
                    SSL_set_SSL_CTX(ssl, s->certs[i].ctx);
                return SSL_TLSEXT_ERR_OK;
            }
    return SSL_TLSEXT_ERR_OK; /* unknown name: the default certificate */
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const unsigned char h11[] = "\x08http/1.1";
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, h11, sizeof(h11) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no http/1.1 offered: go on without ALPN rather than fail */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* --- loading ----------------------------------------------------------------- */

static void openssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "%s", strerror(errno));
}

static void cert_names(struct tls_cert *c, X509 *x)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && c->nnames < TLS_NAMES_MAX; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_DNS)
            continue;
        const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
        int len = ASN1_STRING_length(g->d.dNSName);
        if (len > 0 && len < 256 && memchr(d, 0, (size_t)len) == NULL)
            c->names[c->nnames++] = xstrndup((const char *)d, (size_t)len);
    }
    GENERAL_NAMES_free(gens);
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) > 0) {
        if (c->nnames == 0)
            c->names[c->nnames++] = xstrdup(cn);
        snprintf(c->name, sizeof(c->name), "%s", c->nnames ? c->names[0] : cn);
    } else {
        snprintf(c->name, sizeof(c->name), "%.255s", c->nnames ? c->names[0] : c->file);
    }
    for (char *p = c->name; *p; p++) /* a metric label value */
        if (*p == '"' || *p == '\\' || *p < ' ')
            *p = '_';
}

/* Loads one certificate (full chain) and its key into a new context set up like
 * all the others. Returns 0, or -1 with the reason in err. */
static int cert_load(struct tls_cert *c, const char *cert, const char *key, const char *ciphers, char *err,
                     size_t errlen)
{
    char why[256];
    memset(c, 0, sizeof(*c));
    snprintf(c->file, sizeof(c->file), "%s", cert);
    if (!key || !*key)
        key = cert;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        abort();
    c->ctx = ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_dh_auto(ctx, 1);
    SSL_CTX_set1_groups_list(ctx, "X25519:prime256v1:secp384r1");
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        snprintf(err, errlen, "BALANCER_TLS_CIPHERS=%s: no usable cipher", ciphers);
        ERR_clear_error();
        return -1;
    }
    /* Mozilla's TLS 1.3 order, AES-128 first: OpenSSL's own puts AES-256-GCM with
     * SHA-384 first, and the server's preference wins, so every handshake paid
     * for SHA-384 in its key schedule and every record for 14 AES rounds. */
    if (SSL_CTX_set_ciphersuites(ctx, TLS13_CIPHERSUITES) != 1)
        abort(); /* a fixed list: only a broken OpenSSL refuses it */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, TLS_CACHE_SIZE);
    SSL_CTX_set_timeout(ctx, TLS_SESSION_TIMEOUT_S);
    static const unsigned char sid_ctx[] = "shop-balancer";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        openssl_reason(why, sizeof(why));
        snprintf(err, errlen, "certificate %s: cannot load (%s)", cert, why);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        openssl_reason(why, sizeof(why));
        snprintf(err, errlen, "key %s: cannot load (%s)", key, why);
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "key %s does not match certificate %s", key, cert);
        return -1;
    }
    X509 *x = SSL_CTX_get0_certificate(ctx);
    const ASN1_TIME *na = X509_get0_notAfter(x);
    struct tm tm;
    if (ASN1_TIME_to_tm(na, &tm) != 1) {
        snprintf(err, errlen, "certificate %s: unreadable expiry date", cert);
        return -1;
    }
    c->not_after = timegm(&tm);
    cert_names(c, x);
    if (X509_cmp_current_time(na) <= 0) {
        char when[64];
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
        snprintf(err, errlen, "certificate %s (%s) expired on %s", cert, c->name, when);
        return -1;
    }
    return 0;
}

static void cert_cleanup(struct tls_cert *c)
{
    SSL_CTX_free(c->ctx);
    for (size_t i = 0; i < c->nnames; i++)
        free(c->names[i]);
    c->ctx = NULL;
    c->nnames = 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends to *list the "cert[:key]" entries of spec: the *.pem files of a
 * folder (each holding chain and key), or a comma-separated list. */
static int spec_entries(const char *spec, char ***list, size_t *n, char *err, size_t errlen)
{
    struct stat st;
    if (stat(spec, &st) == 0 && S_ISDIR(st.st_mode)) {
        DIR *d = opendir(spec);
        if (!d) {
            snprintf(err, errlen, "BALANCER_TLS_CERTS=%s: %s", spec, strerror(errno));
            return -1;
        }
        size_t first = *n;
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t len = strlen(e->d_name);
            if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".pem") != 0)
                continue;
            *list = xrealloc(*list, (*n + 1) * sizeof(**list));
            (*list)[(*n)++] = xasprintf("%s/%s", spec, e->d_name);
        }
        closedir(d);
        qsort(*list + first, *n - first, sizeof(**list),
              by_name); /* a stable order: the first is the default */
        return 0;
    }
    const char *p = spec;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len > 0) {
            *list = xrealloc(*list, (*n + 1) * sizeof(**list));
            (*list)[(*n)++] = xstrndup(p, len);
        }
        p += len;
        while (*p && *p != ',')
            p++;
    }
    return 0;
}

/* Calls fn for each certificate of o with its cert and key paths. */
static int for_each_cert(const struct tls_options *o, int (*fn)(void *, const char *, const char *),
                         void *arg, char *err, size_t errlen)
{
    char **list = NULL;
    size_t n = 0;
    int rc = 0;
    if (o->certs && *o->certs && spec_entries(o->certs, &list, &n, err, errlen) < 0)
        return -1;
    if (o->cert && *o->cert)
        rc = fn(arg, o->cert, o->key);
    for (size_t i = 0; i < n; i++) {
        char *colon = strchr(list[i], ':');
        if (colon)
            *colon = '\0';
        if (rc == 0)
            rc = fn(arg, list[i], colon ? colon + 1 : NULL);
        free(list[i]);
    }
    free(list);
    return rc;
}

struct load_state {
    struct tls_store *s;
    const char *ciphers;
    char *err;
    size_t errlen;
};

static int load_one(void *arg, const char *cert, const char *key)
{
    struct load_state *ls = arg;
    struct tls_store *s = ls->s;
    s->certs = xrealloc(s->certs, (s->n + 1) * sizeof(*s->certs));
    if (cert_load(&s->certs[s->n], cert, key, ls->ciphers, ls->err, ls->errlen) < 0) {
        cert_cleanup(&s->certs[s->n]);
        return -1;
    }
    s->n++;
    return 0;
}

struct tls_store *tls_store_new(const struct tls_options *o, char *err, size_t errlen)
{
    ex_init();
    keys_rotate_if_due();
    struct tls_store *s = xcalloc(1, sizeof(*s));
    s->refs = 1;
    struct load_state ls = {s, o->ciphers && *o->ciphers ? o->ciphers : TLS_INTERMEDIATE_CIPHERS, err,
                            errlen};
    if (for_each_cert(o, load_one, &ls, err, errlen) < 0) {
        tls_store_free(s);
        return NULL;
    }
    if (s->n == 0) {
        snprintf(err, errlen,
                 "no certificate: set BALANCER_TLS_CERT (and BALANCER_TLS_KEY) or BALANCER_TLS_CERTS");
        tls_store_free(s);
        return NULL;
    }
    return s;
}

static void store_unref(struct tls_store *s)
{
    if (--s->refs > 0)
        return;
    for (size_t i = 0; i < s->n; i++)
        cert_cleanup(&s->certs[i]);
    free(s->certs);
    free(s);
}

void tls_store_free(struct tls_store *s)
{
    if (s)
        store_unref(s);
}

size_t tls_store_count(const struct tls_store *s)
{
    return s->n;
}

/* --- sessions ---------------------------------------------------------------- */

SSL *tls_session_new(struct tls_store *s, int fd)
{
    SSL *ssl = SSL_new(s->certs[0].ctx);
    if (!ssl)
        abort();
    SSL_set_fd(ssl, fd);
    SSL_set_accept_state(ssl);
    /* The SNI callback reads the store: it must outlive a reload while this handshake runs. */
    SSL_set_ex_data(ssl, ex_store, s);
    s->refs++;
    return ssl;
}

void tls_session_free(SSL *ssl)
{
    if (!SSL_is_init_finished(ssl) && !SSL_get_ex_data(ssl, ex_counted))
        hs_failed[FR_INCOMPLETE]++;
    struct tls_store *s = SSL_get_ex_data(ssl, ex_store);
    SSL_free(ssl);
    if (s)
        store_unref(s);
}

void tls_handshake_done(SSL *ssl)
{
    if (SSL_session_reused(ssl))
        hs_resumed++;
    else
        hs_full++;
    SSL_set_ex_data(ssl, ex_counted, (void *)1);
}

void tls_handshake_failed(SSL *ssl, int fd)
{
    unsigned long e = ERR_peek_error();
    int reason = e ? ERR_GET_REASON(e) : 0;
    enum fail_reason fr = FR_OTHER;
    if (!e)
        fr = FR_CLOSED;
    else if (reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST)
        fr = FR_HTTP;
    else if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_VERSION_TOO_LOW)
        fr = FR_VERSION;
    else if (reason == SSL_R_NO_SHARED_CIPHER || reason == SSL_R_NO_SHARED_GROUPS)
        fr = FR_CIPHER;
    else if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
             reason == SSL_R_RECORD_LENGTH_MISMATCH || reason == SSL_R_UNEXPECTED_MESSAGE ||
             reason == SSL_R_LENGTH_MISMATCH || reason == SSL_R_BAD_PACKET_LENGTH ||
             reason == SSL_R_UNEXPECTED_RECORD)
        fr = FR_MALFORMED;
    hs_failed[fr]++;
    SSL_set_ex_data(ssl, ex_counted, (void *)1);
    if (log_get_level() <= LOG_DEBUG)
        log_debug("TLS handshake failed (%s): %s", fail_names[fr], e ? ERR_reason_error_string(e) : "closed");
    ERR_clear_error();
    if (fr == FR_HTTP) {
        static const char answer[] =
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
            "Content-Length: 68\r\nConnection: close\r\n\r\n"
            "{\"message\": \"this port speaks HTTPS: use an https:// address here\"}\n";
        ssize_t w = send(fd, answer, sizeof(answer) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
    }
}

/* --- checks and metrics ---------------------------------------------------------- */

struct check_state {
    FILE *out;
    int bad;
};

static int check_one(void *arg, const char *cert, const char *key)
{
    struct check_state *cs = arg;
    struct tls_cert c;
    char err[512];
    if (cert_load(&c, cert, key, TLS_INTERMEDIATE_CIPHERS, err, sizeof(err)) < 0) {
        fprintf(cs->out, "error %s\n", err);
        cs->bad++;
    } else {
        long days = (long)((c.not_after - time(NULL)) / 86400);
        fprintf(cs->out, "ok %s: %s, %zu name%s, %ld days left%s\n", c.name, cert, c.nnames,
                c.nnames == 1 ? "" : "s", days, days < 14 ? " (renew soon)" : "");
    }
    cert_cleanup(&c);
    return 0;
}

int tls_check(const struct tls_options *o, FILE *out)
{
    struct check_state cs = {out, 0};
    char err[512];
    if (for_each_cert(o, check_one, &cs, err, sizeof(err)) < 0) {
        fprintf(out, "error %s\n", err);
        return -1;
    }
    if (o->ciphers && *o->ciphers) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        if (SSL_CTX_set_cipher_list(ctx, o->ciphers) != 1) {
            fprintf(out, "error BALANCER_TLS_CIPHERS=%s: no usable cipher\n", o->ciphers);
            cs.bad++;
        }
        ERR_clear_error();
        SSL_CTX_free(ctx);
    }
    return cs.bad ? -1 : 0;
}

void tls_metrics(const struct tls_store *s, struct strbuf *o)
{
    char labels[PROM_LABELS_MAX];
    prom_family(o, "balancer_tls_handshakes_total", PROM_COUNTER, "TLS handshakes completed.");
    prom_sample_u64(o, "balancer_tls_handshakes_total", "kind=\"full\"", hs_full);
    prom_sample_u64(o, "balancer_tls_handshakes_total", "kind=\"resumed\"", hs_resumed);
    prom_family(o, "balancer_tls_handshake_failures_total", PROM_COUNTER,
                "TLS handshakes that failed, by reason.");
    for (int i = 0; i < FR_COUNT; i++)
        prom_sample_u64(o, "balancer_tls_handshake_failures_total",
                        prom_labels(labels, sizeof(labels), "reason", fail_names[i], NULL), hs_failed[i]);
    if (!s)
        return;
    prom_family(o, "balancer_tls_certificate_expiry_seconds", PROM_GAUGE,
                "Seconds until the certificate expires.");
    time_t now = time(NULL);
    for (size_t i = 0; i < s->n; i++)
        prom_sample(o, "balancer_tls_certificate_expiry_seconds",
                    prom_labels(labels, sizeof(labels), "name", s->certs[i].name, NULL),
                    (double)(s->certs[i].not_after - now));
}
