/* Fuzzes the .env parser: operators' files and old Flask-era files are outside input. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shared/config.h"

static void sink(void *ctx, const char *key, const char *value)
{
    size_t *total = ctx;
    *total += strlen(key) + strlen(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        return 0;
    char err[256];
    size_t total = 0;
    config_parse_env_stream(f, "fuzz", sink, &total, err, sizeof(err));
    fclose(f);
    char host[64];
    int port;
    char text[128];
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    config_parse_hostport(text, host, sizeof(host), &port);
    return 0;
}
