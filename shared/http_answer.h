/* http_answer: the parts of an HTTP answer that every daemon writes alike.
 *
 * The standard reason phrases (RFC 9110 section 15), the security headers
 * every answer carries, and the whole of an error answer that a daemon makes
 * itself without a framework (a refused request, an unreachable backend):
 * JSON {"message": ...}, Connection: close. */
#ifndef SHARED_HTTP_ANSWER_H
#define SHARED_HTTP_ANSWER_H

#include <stdbool.h>
#include <stddef.h>

/* The reason phrase of status ("Too Many Requests", "Content Too Large"), or a
 * class name ("Client Error") for a status RFC 9110 does not name. Static. */
const char *http_reason(int status);

/* Header lines (each ending in CRLF) that every answer carries, so that a
 * browser never sniffs, frames or leaks the referrer of an error page either. */
#define HTTP_SECURITY_HEADERS                                                                                \
    "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\nReferrer-Policy: same-origin\r\n"

/* Writes a complete error answer into out (NUL-terminated): the status line,
 * Content-Type: application/json, the security headers, X-Request-Id, any
 * extra header lines (each ending in CRLF; may be NULL), Connection: close,
 * and the body {"message": message} unless head_only (an answer to HEAD).
 * The message is escaped for JSON and cut to fit. Returns the length
 * written; out must hold at least 1024 bytes. */
size_t http_error_answer(char *out, size_t cap, int status, const char *request_id, const char *extra_headers,
                         const char *message, bool head_only);

#endif
