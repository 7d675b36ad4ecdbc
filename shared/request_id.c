#include "shared/request_id.h"
#include "shared/crypto.h"

#include <string.h>

bool request_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == ':' || c == '+' || c == '/' || c == '=' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

void request_id_gen_init(struct request_id_gen *gen)
{
    unsigned char rnd[8];
    crypto_random_bytes(rnd, sizeof(rnd));
    crypto_hex_encode(rnd, sizeof(rnd), gen->prefix);
    gen->counter = 0;
}

size_t request_id_next(struct request_id_gen *gen, char *out)
{
    /* Formatted by hand: one id per request, and snprintf was a tenth of the
     * balancer's instructions per request. At least 8 counter digits keep ids
     * of one process the same width for a long while. */
    static const char hex[] = "0123456789abcdef";
    uint64_t v = ++gen->counter;
    size_t plen = strlen(gen->prefix);
    memcpy(out, gen->prefix, plen);
    out[plen] = '-';
    int digits = 8;
    while (digits < 16 && (v >> (4 * digits)) != 0)
        digits++;
    char *p = out + plen + 1;
    for (int i = digits - 1; i >= 0; i--)
        *p++ = hex[(v >> (4 * i)) & 0xf];
    *p = '\0';
    return (size_t)(p - out);
}
