/* tls: the balancer's TLS termination: certificates, SNI, resumption, checks.
 *
 * A store holds one OpenSSL server context per certificate, all configured the
 * same way (TLS 1.2 and 1.3 only, the configured TLS 1.2 cipher list, ALPN
 * http/1.1, renegotiation refused, a server session cache); the first is the
 * default and the others are chosen by the client's SNI name. Session tickets
 * are encrypted with keys made in memory at start and rotated every
 * TLS_TICKET_ROTATE_S; the previous key still decrypts, so resumption survives
 * a rotation and a reload (the keys live in this module, not in a store).
 * Handshake counters live here too, for /metrics. The socket I/O on an SSL is
 * conn.c's. */
#ifndef BALANCER_TLS_H
#define BALANCER_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct evbuffer;
struct strbuf;
struct tls_store;

/* Where the certificates come from (the BALANCER_TLS_* settings). */
struct tls_options {
    const char *cert;    /* PEM full chain of the default certificate ("": none) */
    const char *key;     /* its PEM private key ("": in the cert file) */
    const char *certs;   /* a folder of *.pem, or a comma-separated list of cert.pem[:key.pem] ("": none) */
    const char *ciphers; /* TLS 1.2 cipher list (OpenSSL syntax) */
};

/* The TLS 1.2 ciphers of Mozilla's "intermediate" configuration (TLS 1.3
 * uses its three suites in its order, AES-128-GCM first: fixed, not a setting). */
#define TLS_INTERMEDIATE_CIPHERS                                                                             \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"               \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                 \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

/* Loads every certificate of o into a new store. Refuses (NULL, one-line
 * reason in err) a file that cannot be read, a key that does not match its
 * certificate, an expired certificate, a bad cipher list, or no certificate at
 * all. The caller owns the store (tls_store_free). */
struct tls_store *tls_store_new(const struct tls_options *o, char *err, size_t errlen);
/* Frees s; connections already using its contexts keep them (refcounted). NULL is a no-op. */
void tls_store_free(struct tls_store *s);
/* Number of certificates in s. */
size_t tls_store_count(const struct tls_store *s);

/* A new server SSL on the connected socket fd (not owned), with s's default
 * context; SNI may switch it. The caller frees it with tls_session_free. */
SSL *tls_session_new(struct tls_store *s, int fd);
/* Frees ssl; a handshake that never finished (timeout, client gone) is counted
 * as failed with reason "incomplete" unless a failure was already counted. */
void tls_session_free(SSL *ssl);
/* Counts a finished handshake (full or resumed). */
void tls_handshake_done(SSL *ssl);
/* Counts a failed handshake by reason (the OpenSSL error queue is read and
 * cleared). When the client spoke plain HTTP to the TLS port, writes a plain
 * 400 answer explaining it on fd first. */
void tls_handshake_failed(SSL *ssl, int fd);

/* Validates the certificates of o the way tls_store_new would, writing one line
 * per certificate to out ("ok NAME: FILE, N days left" or the problem).
 * Returns 0 when all are usable, -1 otherwise (for balancer --check). */
int tls_check(const struct tls_options *o, FILE *out);

/* Appends the TLS metrics (Prometheus text) of s (may be NULL: counters only) to o. */
void tls_metrics(const struct tls_store *s, struct strbuf *o);

#endif
