/* delay_proxy: tests/support/delay_proxy.c as a program, for tools/bench-dispatcher.sh:
 * makes a local DynamoDB (dynalite) answer with a network's latency.
 *
 * Usage: delay_proxy PORT UPSTREAM_PORT DELAY_MS
 * Listens on 127.0.0.1:PORT, forwards to 127.0.0.1:UPSTREAM_PORT, holds each
 * answer DELAY_MS; GET /__proxy/stats reports connections and requests in
 * flight. Stops on SIGTERM. */
#include "tests/support/delay_proxy.h"

#include <stdio.h>
#include <stdlib.h>

static int number(const char *s, int min, int max)
{
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v >= min && v <= max ? (int)v : -1;
}

int main(int argc, char **argv)
{
    int port = argc == 4 ? number(argv[1], 1, 65535) : -1;
    int upstream = argc == 4 ? number(argv[2], 1, 65535) : -1;
    int delay = argc == 4 ? number(argv[3], 0, 600000) : -1;
    if (port < 0 || upstream < 0 || delay < 0) {
        fprintf(stderr, "usage: %s PORT UPSTREAM_PORT DELAY_MS\n", argv[0]);
        return 2;
    }
    struct delay_proxy_options o = {.upstream_port = upstream, .delay_ms = delay};
    return delay_proxy_serve(port, &o) == 0 ? 0 : 1;
}
