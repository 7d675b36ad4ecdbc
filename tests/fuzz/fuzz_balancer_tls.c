/* libFuzzer target: the bytes a client sends first to the balancer's TLS
 * listener, fed to a server SSL of the real store (tls_store_new: the same
 * contexts, SNI, ALPN and ticket callbacks as in service) through memory BIOs,
 * in pieces whose sizes the first byte picks. The handshake cannot finish
 * (the input does not know the server's key share), but everything up to it
 * runs on the input: record and ClientHello parsing, the SNI callback choosing
 * a certificate, ALPN, the ticket callback with the input's key name, and the
 * classification of the failure. Checks: bytes starting like a plain HTTP
 * request are counted as one and get no TLS alert; nothing else is counted so.
 * The two certificates (localhost, shop.test; ECDSA P-256, valid to 2126) are
 * made for this target only. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "balancer/tls.h"
#include "shared/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char LOCALHOST_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                                    "MIIBoTCCAUigAwIBAgIUMQ95SmoOaMazKlb/sANLDkjM8VYwCgYIKoZIzj0EAwIw\n"
                                    "FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwMjA1MTYyOFoYDzIxMjYxMTA4\n"
                                    "MDUxNjI4WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO\n"
                                    "PQMBBwNCAAS8ANv8jYiYQlwLu8v7lw4plT2emSAx24mO33MxyFufWeFRMKkb+USM\n"
                                    "fH93g7JRgUQ3vy5OlSsg6eUyi6srfsUUo3YwdDAdBgNVHQ4EFgQUbOImwe71spQ0\n"
                                    "sN643015WpFuIaUwHwYDVR0jBBgwFoAUbOImwe71spQ0sN643015WpFuIaUwDwYD\n"
                                    "VR0TAQH/BAUwAwEB/zAhBgNVHREEGjAYgglsb2NhbGhvc3SCCyoubG9jYWxob3N0\n"
                                    "MAoGCCqGSM49BAMCA0cAMEQCIEZo0zNc+rFtUN4SVK+QecvRbSQ+nyPV8s0u8yjl\n"
                                    "w8y7AiBPuL5ZBf3rEBF6THVaxdrMBK3zSDfdaL5oxbk5KXIQhA==\n"
                                    "-----END CERTIFICATE-----\n"
                                    "-----BEGIN PRIVATE KEY-----\n"
                                    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgHsQ07QKkviI+1fFw\n"
                                    "NaL8PXOGOQI3CTP031kUD13N4o6hRANCAAS8ANv8jYiYQlwLu8v7lw4plT2emSAx\n"
                                    "24mO33MxyFufWeFRMKkb+USMfH93g7JRgUQ3vy5OlSsg6eUyi6srfsUU\n"
                                    "-----END PRIVATE KEY-----\n";

static const char SHOP_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIBozCCAUigAwIBAgIUNITrzFlqJSwIG68lP7yWVaJTfJowCgYIKoZIzj0EAwIw\n"
                               "FDESMBAGA1UEAwwJc2hvcC50ZXN0MCAXDTI2MTIwMjA1MTYyOFoYDzIxMjYxMTA4\n"
                               "MDUxNjI4WjAUMRIwEAYDVQQDDAlzaG9wLnRlc3QwWTATBgcqhkjOPQIBBggqhkjO\n"
                               "PQMBBwNCAASm4iABAfOLMdA8TRAT3aOg7EjLhZk95aAKKzkcWOC7iC+Vla0Y21hu\n"
                               "jhoEw4bzN5lou/gDXyP2xdRWWzTJCa+ao3YwdDAdBgNVHQ4EFgQUFMQlFf823J0Q\n"
                               "WobQXHMxwCufNJIwHwYDVR0jBBgwFoAUFMQlFf823J0QWobQXHMxwCufNJIwDwYD\n"
                               "VR0TAQH/BAUwAwEB/zAhBgNVHREEGjAYgglzaG9wLnRlc3SCCyouc2hvcC50ZXN0\n"
                               "MAoGCCqGSM49BAMCA0kAMEYCIQDmEx+geoGn17gYgaUF1YkkrePqWQfdFJeVqhtc\n"
                               "LklTzQIhAOolxHqDabPuAK0NX+4oGXSLPU0+sl7KPezsdskdlJrj\n"
                               "-----END CERTIFICATE-----\n"
                               "-----BEGIN PRIVATE KEY-----\n"
                               "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgCCt3qDhN9YTqDVU+\n"
                               "3ctrfop2ZRxivPORBSE7i5mmTO6hRANCAASm4iABAfOLMdA8TRAT3aOg7EjLhZk9\n"
                               "5aAKKzkcWOC7iC+Vla0Y21hujhoEw4bzN5lou/gDXyP2xdRWWzTJCa+a\n"
                               "-----END PRIVATE KEY-----\n";

static struct tls_store *store;

static void write_pem(char *path, const char *pem)
{
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, pem, strlen(pem)) != (ssize_t)strlen(pem) || close(fd) != 0)
        abort();
}

/* Loads the store once: both certificates, the default ciphers. */
static void init(void)
{
    char a[] = "/tmp/fuzz-tls-a-XXXXXX", b[] = "/tmp/fuzz-tls-b-XXXXXX";
    write_pem(a, LOCALHOST_PEM);
    write_pem(b, SHOP_PEM);
    struct tls_options o = {.cert = a, .key = "", .certs = b, .ciphers = ""};
    char err[512];
    store = tls_store_new(&o, err, sizeof(err));
    unlink(a);
    unlink(b);
    if (!store) {
        fprintf(stderr, "fuzz_balancer_tls: %s\n", err);
        abort();
    }
}

/* The count of plain HTTP requests seen on the TLS port, from the metrics text. */
static unsigned long long http_requests(void)
{
    struct strbuf o = {0};
    tls_metrics(NULL, &o);
    const char *key = "balancer_tls_handshake_failures_total{reason=\"http_request\"} ";
    const char *p = o.p ? strstr(o.p, key) : NULL;
    if (!p)
        abort();
    unsigned long long n = strtoull(p + strlen(key), NULL, 10);
    strbuf_free(&o);
    return n;
}

static bool looks_like_http(const uint8_t *d, size_t n)
{
    /* OpenSSL's own test, on the first record header's five bytes. */
    return n >= 5 && (memcmp(d, "GET ", 4) == 0 || memcmp(d, "POST ", 5) == 0 || memcmp(d, "HEAD ", 5) == 0 ||
                      memcmp(d, "PUT ", 4) == 0 || memcmp(d, "CONNE", 5) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!store)
        init();
    if (size == 0)
        return 0;
    size_t piece = (size_t)data[0] % 64 + 1; /* 1..64 bytes, or all at once when 64 */
    data++;
    size--;
    if (piece == 64)
        piece = size ? size : 1;

    unsigned long long before = http_requests();
    SSL *ssl = tls_session_new(store, -1);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(rb, -1); /* empty: "try again", as a socket with nothing yet */
    SSL_set_bio(ssl, rb, wb);
    size_t off = 0, alerts = 0;
    bool failed = false;
    while (!failed) {
        size_t n = size - off < piece ? size - off : piece;
        if (n > 0 && BIO_write(rb, data + off, (int)n) != (int)n)
            abort();
        off += n;
        int r = SSL_do_handshake(ssl);
        if (r == 1) {
            tls_handshake_done(ssl); /* not reachable without the key share, but harmless */
            break;
        }
        int e = SSL_get_error(ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            alerts = BIO_ctrl_pending(wb);
            tls_handshake_failed(ssl, -1); /* the plain-HTTP answer goes to no socket here */
            failed = true;
        }
        (void)BIO_reset(wb); /* what the server sent: dropped */
        if (off == size && !failed)
            break; /* the client went quiet: the deadline would end it */
    }
    tls_session_free(ssl);
    ERR_clear_error();

    unsigned long long counted = http_requests() - before;
    bool http = looks_like_http(data, size);
    if (counted > 1 || (counted == 1) != (http && failed))
        abort();
    if (http && !failed)
        abort(); /* five bytes of a request line are enough to tell */
    if (http && alerts > 0)
        abort(); /* a plain HTTP client gets the 400 answer, not TLS bytes it cannot read */
    return 0;
}
