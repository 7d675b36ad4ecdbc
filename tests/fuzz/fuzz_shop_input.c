/* Fuzzes what shopd makes of a request before any handler logic: the router's
 * path matching and the validation of JSON bodies (products, quantities, emails). */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "shopd/accounts.h"
#include "shopd/api.h"
#include "shopd/catalog.h"
#include "shopd/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[4096];
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, data, n);
    text[n] = '\0';

    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"};
    const struct route *rt;
    int64_t param;
    char allow[64], segment[72];
    router_match(methods[size % 6], text, &rt, &param, segment, sizeof(segment), allow, sizeof(allow));
    router_path_is_page(text);
    accounts_email_valid(text);

    json_t *body = json_loadb((const char *)data, size, 0, NULL);
    if (body) {
        struct product_input in;
        char msg[256];
        catalog_parse_input(body, true, &in, msg, sizeof(msg));
        catalog_parse_input(body, false, &in, msg, sizeof(msg));
        int64_t v;
        api_int_field(body, "quantity", 0, 1000000, &v, msg, sizeof(msg));
        json_decref(body);
    }
    return 0;
}
