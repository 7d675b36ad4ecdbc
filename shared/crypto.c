#include "crypto.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "xalloc.h"

static const char hex_digits[] = "0123456789abcdef";

/* OpenSSL only fails these operations when it has no entropy or no memory;
 * carrying on would hand out predictable tokens or wrong digests. Like
 * xalloc's out-of-memory path this writes straight to stderr, so that the
 * module needs nothing but xalloc (fuzz targets link it alone). */
static void fatal_openssl(const char *what)
{
    unsigned long err = ERR_get_error();
    char reason[256] = "unknown error";
    if (err)
        ERR_error_string_n(err, reason, sizeof(reason));
    fprintf(stderr, "fatal: %s failed: %s\n", what, reason);
    abort();
}

void crypto_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    /* RAND_bytes takes an int length: feed large requests in pieces. */
    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        if (RAND_bytes(p, chunk) != 1)
            fatal_openssl("RAND_bytes");
        p += chunk;
        n -= (size_t)chunk;
    }
}

char *crypto_random_token_hex(size_t nbytes)
{
    unsigned char *raw = xmalloc(nbytes);
    char *out = xmalloc(2 * nbytes + 1);
    crypto_random_bytes(raw, nbytes);
    crypto_hex_encode(raw, nbytes, out);
    OPENSSL_cleanse(raw, nbytes);
    free(raw);
    return out;
}

void crypto_hex_encode(const void *data, size_t len, char *out)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex_digits[p[i] >> 4];
        out[2 * i + 1] = hex_digits[p[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool crypto_hex_decode(const char *hex, size_t hexlen, unsigned char *out, size_t outlen)
{
    if (outlen > SIZE_MAX / 2 || hexlen != 2 * outlen)
        return false;
    for (size_t i = 0; i < outlen; i++) {
        int hi = hex_value(hex[2 * i]);
        int lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

char *crypto_base64url_encode(const void *data, size_t len)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = data;
    char *out = xmalloc(len / 3 * 4 + 4 + 1);
    size_t o = 0, i = 0;

    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
    }
    out[o] = '\0';
    return out;
}

void crypto_sha256(const void *data, size_t len, unsigned char out[CRYPTO_SHA256_LEN])
{
    unsigned int outlen = 0;
    if (EVP_Digest(data, len, out, &outlen, EVP_sha256(), NULL) != 1 || outlen != CRYPTO_SHA256_LEN)
        fatal_openssl("SHA-256");
}

void crypto_sha256_hex(const void *data, size_t len, char out[CRYPTO_SHA256_HEX_LEN])
{
    unsigned char md[CRYPTO_SHA256_LEN];
    crypto_sha256(data, len, md);
    crypto_hex_encode(md, sizeof(md), out);
}

void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                        unsigned char out[CRYPTO_SHA256_LEN])
{
    /* HMAC() treats a NULL key as "reuse the previous one"; an empty key must
     * be a real (empty) buffer. */
    static const unsigned char empty_key[1];
    unsigned int outlen = 0;
    if (keylen > INT_MAX)
        fatal_openssl("HMAC-SHA256 (key too long)");
    if (!HMAC(EVP_sha256(), keylen ? key : empty_key, (int)keylen, data, len, out, &outlen) ||
        outlen != CRYPTO_SHA256_LEN)
        fatal_openssl("HMAC-SHA256");
}

void crypto_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
                            char out[CRYPTO_SHA256_HEX_LEN])
{
    unsigned char mac[CRYPTO_SHA256_LEN];
    crypto_hmac_sha256(key, keylen, data, len, mac);
    crypto_hex_encode(mac, sizeof(mac), out);
}

bool crypto_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void crypto_uuid4(char out[CRYPTO_UUID_LEN])
{
    unsigned char b[16];
    crypto_random_bytes(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10xx (RFC 4122) */

    size_t o = 0;
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex_digits[b[i] >> 4];
        out[o++] = hex_digits[b[i] & 0x0f];
    }
    out[o] = '\0';
}
