/* crypto: small cryptographic helpers over OpenSSL 3.
 *
 * Randomness, SHA-256, HMAC-SHA256, hex and base64url encodings, constant-time
 * comparison and random UUIDs: what sessions, CSRF tokens, password hashing and
 * AWS request signing need. OpenSSL failing at any of these means the process
 * cannot work safely (no entropy, no memory), so the helpers log one line and
 * abort instead of returning errors that every caller would have to handle. */
#ifndef SHARED_CRYPTO_H
#define SHARED_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#define CRYPTO_SHA256_LEN 32
#define CRYPTO_SHA256_HEX_LEN 65 /* 64 hex digits and the NUL */
#define CRYPTO_UUID_LEN 37       /* 36 characters and the NUL */

/* Fills buf with n bytes from OpenSSL's CSPRNG. Aborts if the generator fails. */
void crypto_random_bytes(void *buf, size_t n);

/* Returns nbytes random bytes as 2*nbytes lower-case hex digits (caller frees). */
char *crypto_random_token_hex(size_t nbytes);

/* Writes len bytes of data as 2*len lower-case hex digits and a NUL into out,
 * which must hold 2*len+1 bytes. */
void crypto_hex_encode(const void *data, size_t len, char *out);

/* Decodes exactly 2*outlen hex digits (either case) from the first hexlen
 * characters of hex into out. Returns false, leaving out unspecified, when
 * hexlen != 2*outlen or a character is not a hex digit. */
bool crypto_hex_decode(const char *hex, size_t hexlen, unsigned char *out, size_t outlen);

/* Returns data encoded as base64url (RFC 4648 section 5) without '=' padding,
 * NUL-terminated (caller frees). len 0 gives "". */
char *crypto_base64url_encode(const void *data, size_t len);

/* SHA-256 of data into out (32 bytes). */
void crypto_sha256(const void *data, size_t len, unsigned char out[CRYPTO_SHA256_LEN]);

/* SHA-256 of data as 64 lower-case hex digits and a NUL into out. */
void crypto_sha256_hex(const void *data, size_t len, char out[CRYPTO_SHA256_HEX_LEN]);

/* HMAC-SHA256 of data under key into out (32 bytes). keylen may be 0. */
void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                        unsigned char out[CRYPTO_SHA256_LEN]);

/* HMAC-SHA256 as 64 lower-case hex digits and a NUL into out. */
void crypto_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
                            char out[CRYPTO_SHA256_HEX_LEN]);

/* True when the n bytes at a and b are equal. The time taken depends only on n,
 * never on where the buffers differ, so secrets can be compared with it. */
bool crypto_equal(const void *a, const void *b, size_t n);

/* Writes a random RFC 4122 version 4 UUID, lower-case, with hyphens
 * ("xxxxxxxx-xxxx-4xxx-Yxxx-xxxxxxxxxxxx", Y one of 8 9 a b), and a NUL. */
void crypto_uuid4(char out[CRYPTO_UUID_LEN]);

#endif
