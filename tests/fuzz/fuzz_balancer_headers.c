/* libFuzzer target: the balancer's header helpers on arbitrary bytes. The first
 * byte splits the input into a header value and a token/name; checks that
 * X-Forwarded-For building never overflows and keeps the client address last,
 * and that accepted request ids and values cannot break a header line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "balancer/headers.h"
#include "shared/request_id.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t split = data[0] % size;
    const char *value = (const char *)data + 1;
    size_t vlen = split > 0 ? split - 1 : 0;
    const char *token = (const char *)data + 1 + vlen;
    size_t tlen = size - 1 - vlen;

    (void)headers_is_hop_by_hop(token, tlen);
    bool listed = headers_list_has_token(value, vlen, token, tlen);
    if (listed && tlen == 0)
        abort();

    char out[300];
    long n = headers_build_xff(value, vlen, "192.0.2.1", out, (size_t)(data[0] % sizeof(out)));
    if (n >= 0) {
        if ((size_t)n >= sizeof(out) || out[n] != '\0' || (size_t)n >= (size_t)(data[0] % sizeof(out)))
            abort();
        if (n < 9 || memcmp(out + n - 9, "192.0.2.1", 9) != 0)
            abort();
    }
    if (request_id_valid(value, vlen)) {
        if (vlen == 0 || vlen > REQUEST_ID_MAX || memchr(value, '\r', vlen) || memchr(value, '\n', vlen) ||
            memchr(value, ' ', vlen) || memchr(value, '"', vlen))
            abort();
    }
    if (headers_value_ok(value, vlen) && (memchr(value, '\r', vlen) || memchr(value, '\n', vlen)))
        abort();
    return 0;
}
