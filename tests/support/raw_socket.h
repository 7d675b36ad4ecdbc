/* raw_socket: bytes on a plain TCP socket, for tests that must send what no
 * HTTP client would (malformed framing, half requests, pipelines). */
#ifndef TESTS_SUPPORT_RAW_SOCKET_H
#define TESTS_SUPPORT_RAW_SOCKET_H

#include <stddef.h>

/* A connected, blocking TCP socket to 127.0.0.1:port, or -1. */
int test_raw_connect(int port);
/* Sends len bytes of data on fd and reads until the peer closes or timeout_ms
 * passes; returns what was read, NUL-terminated (caller frees), *outlen its length. */
char *test_raw_exchange(int fd, const char *data, size_t len, int timeout_ms, size_t *outlen);

#endif
