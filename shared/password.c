#include "password.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "crypto.h"
#include "xalloc.h"

/* Parameters of new hashes: OWASP password storage cheat sheet, scrypt row. */
#define SCRYPT_N 32768
#define SCRYPT_R 8
#define SCRYPT_P 3
#define SALT_LEN 16
/* Werkzeug derives 64 bytes for scrypt (hashlib's default dklen). */
#define SCRYPT_KEY_LEN 64

#define STR_(x) #x
#define STR(x) STR_(x)
#define CURRENT_METHOD "scrypt:" STR(SCRYPT_N) ":" STR(SCRYPT_R) ":" STR(SCRYPT_P)

/* What Werkzeug 3.1 assumes for "scrypt$..." and for pbkdf2 without a count. */
#define WERKZEUG_SCRYPT_N 32768
#define WERKZEUG_SCRYPT_R 8
#define WERKZEUG_SCRYPT_P 1
#define WERKZEUG_PBKDF2_ITERATIONS 1000000

/* Limits on stored parameters. A stored hash may come from imported data, and
 * one hostile row must not let a login request allocate gigabytes or hold a
 * worker for long. Each limit allows about a second of CPU, room above every
 * OWASP recommendation (scrypt N*r*p at most 2^20, the largest needing
 * 128 MiB) and every default Werkzeug ever had (pbkdf2 at most 1000000). Large
 * r*p makes scrypt's PBKDF2 step long, hence the caps on r and p themselves. */
#define MAX_SCRYPT_N (UINT64_C(1) << 20)
#define MAX_SCRYPT_R 32
#define MAX_SCRYPT_P 16
#define MAX_SCRYPT_MEM (UINT64_C(256) << 20)
#define MAX_SCRYPT_WORK (UINT64_C(1) << 21) /* N*r*p */
#define MAX_PBKDF2_ITERATIONS 2000000u
#define MAX_SALT_LEN 1024
#define MAX_KEY_LEN 64

/* Any well-formed hash with the current parameters costs what a real one
 * does; this one need not match any password. The salt and key were made once
 * with Python's hashlib.scrypt of a random password that was then discarded.
 * The method comes from the macros so that it follows parameter changes. */
static const char dummy_hash[] =
    CURRENT_METHOD "$WcjPC3aRn5tXdGZv$a42005b12d77f5207a3f693f86e839330e248b802f04fb662677c566092111605457033"
                   "b7b427d93d21ae3d79400111a2f964dee989cca7458266c2ee807f8e0";

enum kdf { KDF_SCRYPT, KDF_PBKDF2 };

struct stored_hash {
    enum kdf kdf;
    uint64_t n, r, p;    /* scrypt */
    const EVP_MD *md;    /* pbkdf2 */
    uint64_t iterations; /* pbkdf2 */
    const char *salt;    /* points into the stored string, not NUL-terminated */
    size_t salt_len;
    const char *hex; /* the rest of the stored string */
    size_t hex_len;
    size_t key_len;
};

/* Decimal digits only (Werkzeug's int() also takes signs, spaces and '_', but
 * nothing it writes has them), at most 10 of them, value in [1, max]. */
static bool parse_count(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 10)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < 1 || v > max)
        return false;
    *out = v;
    return true;
}

static bool field_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(s, word, len) == 0;
}

static const EVP_MD *pbkdf2_digest(const char *name, size_t len)
{
    if (field_is(name, len, "sha256"))
        return EVP_sha256();
    if (field_is(name, len, "sha512"))
        return EVP_sha512();
    if (field_is(name, len, "sha1"))
        return EVP_sha1();
    if (field_is(name, len, "sha384"))
        return EVP_sha384();
    if (field_is(name, len, "sha224"))
        return EVP_sha224();
    return NULL;
}

static bool check_scrypt_limits(const struct stored_hash *h)
{
    if (h->n < 2 || h->n > MAX_SCRYPT_N || (h->n & (h->n - 1)) != 0)
        return false;
    /* n <= 2^20, r <= 32 and p <= 16 here, so none of this overflows. */
    if (h->n * h->r * h->p > MAX_SCRYPT_WORK)
        return false;
    /* OpenSSL needs 128*r*(N+2) bytes for V and 128*r*p for B. */
    return 128 * h->r * (h->n + 2 + h->p) <= MAX_SCRYPT_MEM;
}

/* Splits "method$salt$hex" and checks the method's parameters. Pointers in h
 * point into stored. */
static bool parse_stored(const char *stored, struct stored_hash *h)
{
    const char *d1 = strchr(stored, '$');
    if (!d1)
        return false;
    const char *d2 = strchr(d1 + 1, '$');
    if (!d2)
        return false;

    memset(h, 0, sizeof(*h));
    h->salt = d1 + 1;
    h->salt_len = (size_t)(d2 - h->salt);
    h->hex = d2 + 1;
    h->hex_len = strlen(h->hex);
    if (h->salt_len == 0 || h->salt_len > MAX_SALT_LEN)
        return false;

    /* The method: up to four ':'-separated fields. */
    const char *field[4];
    size_t flen[4];
    size_t nfields = 0;
    const char *start = stored;
    for (const char *c = stored;; c++) {
        if (c == d1 || *c == ':') {
            if (nfields == 4)
                return false;
            field[nfields] = start;
            flen[nfields] = (size_t)(c - start);
            nfields++;
            start = c + 1;
            if (c == d1)
                break;
        }
    }

    if (field_is(field[0], flen[0], "scrypt")) {
        h->kdf = KDF_SCRYPT;
        h->key_len = SCRYPT_KEY_LEN;
        if (nfields == 1) {
            h->n = WERKZEUG_SCRYPT_N;
            h->r = WERKZEUG_SCRYPT_R;
            h->p = WERKZEUG_SCRYPT_P;
        } else if (nfields != 4 || !parse_count(field[1], flen[1], MAX_SCRYPT_N, &h->n) ||
                   !parse_count(field[2], flen[2], MAX_SCRYPT_R, &h->r) ||
                   !parse_count(field[3], flen[3], MAX_SCRYPT_P, &h->p)) {
            return false;
        }
        return check_scrypt_limits(h);
    }

    if (field_is(field[0], flen[0], "pbkdf2")) {
        h->kdf = KDF_PBKDF2;
        h->md = nfields >= 2 ? pbkdf2_digest(field[1], flen[1]) : EVP_sha256();
        h->iterations = WERKZEUG_PBKDF2_ITERATIONS;
        if (!h->md || nfields > 3)
            return false;
        int size = EVP_MD_get_size(h->md);
        int block = EVP_MD_get_block_size(h->md);
        if (size <= 0 || size > MAX_KEY_LEN || block < 64)
            return false;
        /* The limit is for 64-byte-block digests; SHA-384 and SHA-512 work on
         * 128-byte blocks and get half as many iterations. */
        uint64_t max_iterations = (uint64_t)MAX_PBKDF2_ITERATIONS * 64 / (uint64_t)block;
        if (nfields == 3 && !parse_count(field[2], flen[2], max_iterations, &h->iterations))
            return false;
        h->key_len = (size_t)size;
        return true;
    }

    return false;
}

/* Derives h->key_len bytes into key. False when OpenSSL refuses the
 * parameters (say scrypt N >= 2^(16r)) or runs out of memory. */
static bool derive(const char *password, size_t password_len, const struct stored_hash *h, unsigned char *key)
{
    int ok;
    if (h->kdf == KDF_SCRYPT) {
        uint64_t maxmem = 128 * h->r * (h->n + 2 + h->p);
        ok = EVP_PBE_scrypt(password, password_len, (const unsigned char *)h->salt, h->salt_len, h->n, h->r,
                            h->p, maxmem, key, h->key_len);
    } else {
        if (password_len > INT_MAX)
            return false;
        ok = PKCS5_PBKDF2_HMAC(password, (int)password_len, (const unsigned char *)h->salt, (int)h->salt_len,
                               (int)h->iterations, h->md, (int)h->key_len, key);
    }
    if (ok != 1) {
        /* Do not leave the refusal in the thread's error queue for whatever
         * OpenSSL call comes next to misreport. */
        ERR_clear_error();
        return false;
    }
    return true;
}

/* Werkzeug's gen_salt: characters drawn uniformly from [A-Za-z0-9]. */
static void make_salt(char out[SALT_LEN + 1])
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const unsigned span = sizeof(chars) - 1;  /* 62 */
    const unsigned limit = 256 / span * span; /* 248: bytes above are discarded to avoid bias */
    size_t n = 0;
    while (n < SALT_LEN) {
        unsigned char buf[32];
        crypto_random_bytes(buf, sizeof(buf));
        for (size_t i = 0; i < sizeof(buf) && n < SALT_LEN; i++)
            if (buf[i] < limit)
                out[n++] = chars[buf[i] % span];
    }
    out[SALT_LEN] = '\0';
}

char *password_hash(const char *password)
{
    char salt[SALT_LEN + 1];
    make_salt(salt);

    struct stored_hash h = {
        .kdf = KDF_SCRYPT,
        .n = SCRYPT_N,
        .r = SCRYPT_R,
        .p = SCRYPT_P,
        .salt = salt,
        .salt_len = SALT_LEN,
        .key_len = SCRYPT_KEY_LEN,
    };
    unsigned char key[SCRYPT_KEY_LEN];
    if (!derive(password, strlen(password), &h, key)) {
        /* Only out of memory gets here; stderr as in xalloc's OOM path. */
        fprintf(stderr, "fatal: scrypt key derivation failed\n");
        abort();
    }
    char hex[2 * SCRYPT_KEY_LEN + 1];
    crypto_hex_encode(key, sizeof(key), hex);
    OPENSSL_cleanse(key, sizeof(key));
    return xasprintf(CURRENT_METHOD "$%s$%s", salt, hex);
}

bool password_verify(const char *password, const char *stored)
{
    struct stored_hash h;
    unsigned char expected[MAX_KEY_LEN];
    unsigned char actual[MAX_KEY_LEN];

    if (!password || !stored || !parse_stored(stored, &h))
        return false;
    if (!crypto_hex_decode(h.hex, h.hex_len, expected, h.key_len))
        return false;
    if (!derive(password, strlen(password), &h, actual))
        return false;
    bool match = CRYPTO_memcmp(expected, actual, h.key_len) == 0;
    OPENSSL_cleanse(actual, sizeof(actual));
    return match;
}

bool password_needs_rehash(const char *stored)
{
    struct stored_hash h;
    if (!stored || !parse_stored(stored, &h) || h.hex_len != 2 * h.key_len)
        return true;
    return h.kdf != KDF_SCRYPT || h.n != SCRYPT_N || h.r != SCRYPT_R || h.p != SCRYPT_P;
}

void password_burn_time(const char *password)
{
    /* The result is meaningless: only the work matters. */
    (void)password_verify(password ? password : "", dummy_hash);
}
