/* test_backend: a small libevent HTTP server that tests fork as a backend.
 *
 * Endpoints (every answer carries `X-Backend: <name>`):
 *   /healthz            200 "ok" (or the code set by /set-health)
 *   /set-health?code=N  later /healthz answers N
 *   /whoami             the backend's name
 *   /big?bytes=N        N bytes ('a'..'z' repeating) streamed with chunked encoding
 *   /fixed?bytes=N      N bytes with Content-Length
 *   /echo               JSON {name, method, uri, body_len, body_sum, body (when < 64 KiB),
 *                       headers: {lower-case name: value, repeats joined by "\n"}}
 *   /slow?ms=N          answers after N ms
 *   /status?code=N      answers with status N
 *   /cookies            two Set-Cookie headers
 *   /close              resets the connection without answering
 *   /count              how many requests this backend has seen (before this one)
 *   anything else       200 with the name
 * The child dies with the test process (PDEATHSIG) and never runs the test's
 * atexit handlers. */
#ifndef TESTS_SUPPORT_TEST_BACKEND_H
#define TESTS_SUPPORT_TEST_BACKEND_H

#include <stdbool.h>
#include <sys/types.h>

struct test_backend_options {
    int health_status; /* 0: 200 */
    int delay_ms;      /* added to every answer except /healthz */
};

struct test_backend;

/* Forks a backend listening on 127.0.0.1:port, named name, and waits until it
 * accepts connections. options may be NULL. Aborts the test when it cannot
 * start. Stop it with test_backend_stop. */
struct test_backend *test_backend_start(int port, const char *name,
                                        const struct test_backend_options *options);
/* SIGKILLs the backend, reaps it and frees tb. NULL is a no-op. */
void test_backend_stop(struct test_backend *tb);
pid_t test_backend_pid(const struct test_backend *tb);
int test_backend_port(const struct test_backend *tb);

/* The body of an echo or a request, counted the way /echo does (sum of bytes). */
unsigned long long test_backend_body_sum(const char *data, size_t len);

#endif
