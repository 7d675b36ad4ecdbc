/* delay_proxy: an HTTP/1.1 proxy on loopback that makes a fast local server
 * (dynalite) answer like a distant one, and reports what its clients did.
 *
 * Each client connection gets its own upstream connection, kept alive like
 * the client's; each request is forwarded whole and its answer held back for
 * delay_ms before the client sees it. A request whose body contains
 * slow_match is held slow_ms instead; one whose body contains fail_match is
 * not forwarded but answered fail_status with a DynamoDB-style
 * ServiceUnavailable body (after delay_ms).
 *
 * GET /__proxy/stats is answered by the proxy itself, as JSON:
 *   connections     client connections that carried a request, so far
 *   max_open        most such connections open at once
 *   requests        requests answered (forwarded or failed), so far
 *   in_flight       requests received and not yet answered
 *   max_in_flight   most requests in flight at once
 *   slowed, failed  requests that matched slow_match, fail_match
 * Used by the integration tests (forked) and by tools/bench-dispatcher.sh
 * (tests/load/delay_proxy.c, a standalone program). */
#ifndef TESTS_SUPPORT_DELAY_PROXY_H
#define TESTS_SUPPORT_DELAY_PROXY_H

#include <sys/types.h>

struct delay_proxy_options {
    int upstream_port; /* on 127.0.0.1 */
    int delay_ms;
    const char *slow_match; /* NULL: none */
    int slow_ms;
    const char *fail_match; /* NULL: none */
    int fail_status;        /* 0: 503 */
};

/* Serves on 127.0.0.1:port until SIGTERM or SIGINT. Returns 0, or -1 when
 * it cannot listen (reason on stderr). */
int delay_proxy_serve(int port, const struct delay_proxy_options *o);

struct delay_proxy;

/* Forks a proxy on 127.0.0.1:port (strings in o are copied by the fork) and
 * waits until it accepts connections; aborts the test when it cannot. The
 * child dies with the test process. Stop it with delay_proxy_stop. */
struct delay_proxy *delay_proxy_start(int port, const struct delay_proxy_options *o);
/* SIGKILLs the proxy, reaps it and frees p. NULL is a no-op. */
void delay_proxy_stop(struct delay_proxy *p);
int delay_proxy_port(const struct delay_proxy *p);

#endif
