/* libFuzzer target: BALANCER_BACKENDS lists through backend_parse_list. For any
 * accepted list, checks the invariants the balancer relies on (1..64 entries,
 * ports and weights in range, no duplicates, hosts without spaces). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "balancer/backend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct backend_spec *specs;
    size_t n;
    char err[512];
    if (backend_parse_list(text, &specs, &n, err, sizeof(err)) == 0) {
        if (n < 1 || n > BACKEND_LIST_MAX)
            abort();
        for (size_t i = 0; i < n; i++) {
            if (specs[i].port < 1 || specs[i].port > 65535 || specs[i].weight < 1 ||
                specs[i].weight > BACKEND_WEIGHT_MAX || !specs[i].host[0] || strchr(specs[i].host, ' ') ||
                strchr(specs[i].host, ','))
                abort();
            for (size_t k = 0; k < i; k++)
                if (specs[k].port == specs[i].port && strcasecmp(specs[k].host, specs[i].host) == 0)
                    abort();
        }
        free(specs);
    } else if (specs != NULL || n != 0 || !err[0]) {
        abort();
    }
    free(text);
    return 0;
}
