/* visitor: what a browser without a session carries, in signed cookies, so
 * that a page view writes nothing to the database and anonymous pages never
 * wait for SQLite's write lock.
 *
 *   visitor=<32 hex>   a random per-browser id. The CSRF token of its forms is
 *                      HMAC-SHA256(SECRET_KEY, "csrf" NUL id): OWASP's signed
 *                      double-submit cookie, so a token is good only together
 *                      with the cookie it was made for, and forging one needs
 *                      SECRET_KEY.
 *   flash=<kind>.<expires>.<hex message>.<hmac>
 *                      one message for the next page (after a redirect), signed
 *                      so a third party cannot plant text in the page, and
 *                      short-lived.
 *
 * A session row is created only at login; logged-in pages keep their CSRF token
 * and flash message in the session row as before. Pure functions: no I/O. */
#ifndef SHOPD_VISITOR_H
#define SHOPD_VISITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define VISITOR_ID_LEN 32
/* A flash message longer than this (in bytes) is cut. */
#define VISITOR_FLASH_MESSAGE_MAX 600
/* Room for any flash cookie value visitor_flash_encode writes. */
#define VISITOR_FLASH_COOKIE_MAX (16 + 24 + 2 * VISITOR_FLASH_MESSAGE_MAX + 64 + 8)
/* How long a flash message waits for the next page. */
#define VISITOR_FLASH_SECONDS 120

/* True for exactly VISITOR_ID_LEN lower-case hex digits. */
bool visitor_id_valid(const char *id);
/* A fresh random id and its NUL into out (VISITOR_ID_LEN + 1 bytes). */
void visitor_new_id(char *out);
/* The CSRF token of a visitor id: 64 hex digits and a NUL into out. */
void visitor_csrf_token(const char *secret, const char *id, char *out);

/* Writes the flash cookie value for kind ("success", "error" or "info") and
 * message, valid until expires, into out (VISITOR_FLASH_COOKIE_MAX bytes).
 * Returns false for another kind. */
bool visitor_flash_encode(const char *secret, const char *kind, const char *message, time_t expires,
                          char *out, size_t outlen);
/* Reads a flash cookie value: true, with kind and message (NUL-terminated,
 * cut to their buffers), when its signature is right and it has not expired
 * at now; false for anything else. */
bool visitor_flash_decode(const char *secret, const char *value, time_t now, char *kind, size_t kindlen,
                          char *message, size_t msglen);

#endif
