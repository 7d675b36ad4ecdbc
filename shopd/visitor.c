#include "shopd/visitor.h"
#include "shared/crypto.h"
#include "shared/xalloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool visitor_id_valid(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++)
        if (!((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f')) || n >= VISITOR_ID_LEN)
            return false;
    return n == VISITOR_ID_LEN;
}

void visitor_new_id(char *out)
{
    unsigned char rnd[VISITOR_ID_LEN / 2];
    crypto_random_bytes(rnd, sizeof(rnd));
    crypto_hex_encode(rnd, sizeof(rnd), out);
}

void visitor_csrf_token(const char *secret, const char *id, char *out)
{
    /* The purpose is part of the signed text, so a CSRF token can never be
     * replayed as another signature of the same key (a flash cookie's). */
    char text[8 + VISITOR_ID_LEN + 1];
    size_t idlen = strnlen(id, VISITOR_ID_LEN);
    memcpy(text, "csrf", 5);
    memcpy(text + 5, id, idlen);
    crypto_hmac_sha256_hex(secret, strlen(secret), text, 5 + idlen, out);
}

static bool kind_ok(const char *kind, size_t len)
{
    return (len == 7 && memcmp(kind, "success", 7) == 0) || (len == 5 && memcmp(kind, "error", 5) == 0) ||
           (len == 4 && memcmp(kind, "info", 4) == 0);
}

/* The signature of the cookie's first three fields (text, len bytes). */
static void flash_sign(const char *secret, const char *text, size_t len, char *out)
{
    char *signed_text = xmalloc(len + 6);
    memcpy(signed_text, "flash", 6);
    memcpy(signed_text + 6, text, len);
    crypto_hmac_sha256_hex(secret, strlen(secret), signed_text, len + 6, out);
    free(signed_text);
}

bool visitor_flash_encode(const char *secret, const char *kind, const char *message, time_t expires,
                          char *out, size_t outlen)
{
    size_t klen = strlen(kind), mlen = strlen(message);
    if (!kind_ok(kind, klen) || outlen < VISITOR_FLASH_COOKIE_MAX)
        return false;
    if (mlen > VISITOR_FLASH_MESSAGE_MAX)
        mlen = VISITOR_FLASH_MESSAGE_MAX;
    int n = snprintf(out, outlen, "%s.%" PRId64 ".", kind, (int64_t)expires);
    crypto_hex_encode(message, mlen, out + n);
    size_t len = (size_t)n + 2 * mlen;
    out[len++] = '.';
    flash_sign(secret, out, len - 1, out + len);
    return true;
}

bool visitor_flash_decode(const char *secret, const char *value, time_t now, char *kind, size_t kindlen,
                          char *message, size_t msglen)
{
    const char *dot1 = strchr(value, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    const char *dot3 = dot2 ? strchr(dot2 + 1, '.') : NULL;
    if (!dot3 || strlen(dot3 + 1) != 64 || strchr(dot3 + 1, '.'))
        return false;
    size_t signed_len = (size_t)(dot3 - value);
    if (signed_len > VISITOR_FLASH_COOKIE_MAX)
        return false;
    char sig[CRYPTO_SHA256_HEX_LEN];
    flash_sign(secret, value, signed_len, sig);
    if (!crypto_equal(sig, dot3 + 1, 64))
        return false;
    /* Signed by us: the fields are as visitor_flash_encode wrote them. */
    size_t klen = (size_t)(dot1 - value);
    if (!kind_ok(value, klen) || klen >= kindlen)
        return false;
    char *end = NULL;
    long long expires = strtoll(dot1 + 1, &end, 10);
    if (end != dot2 || expires < (long long)now)
        return false;
    size_t hexlen = (size_t)(dot3 - dot2 - 1);
    size_t mlen = hexlen / 2;
    if (hexlen % 2 || mlen > VISITOR_FLASH_MESSAGE_MAX)
        return false;
    unsigned char text[VISITOR_FLASH_MESSAGE_MAX];
    if (!crypto_hex_decode(dot2 + 1, hexlen, text, mlen))
        return false;
    memcpy(kind, value, klen);
    kind[klen] = '\0';
    if (msglen == 0)
        return true;
    size_t cut = mlen < msglen - 1 ? mlen : msglen - 1;
    memcpy(message, text, cut);
    message[cut] = '\0';
    return true;
}
