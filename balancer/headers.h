/* headers: pure helpers for the header rewriting the proxy does.
 *
 * No I/O and no allocation: the proxy calls these on every request, and the
 * fuzz target calls them on arbitrary bytes. Names and values are (pointer,
 * length) pairs that need not be NUL-terminated. */
#ifndef BALANCER_HEADERS_H
#define BALANCER_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

/* True for the hop-by-hop headers of RFC 9110 section 7.6.1 that a proxy must
 * not forward: Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade,
 * Proxy-Authenticate, Proxy-Authorization. Transfer-Encoding is not in the list
 * because the proxy relays the message framing unchanged. */
bool headers_is_hop_by_hop(const char *name, size_t len);

/* True when the comma-separated token list value (a Connection header) names
 * token, case-insensitively, ignoring optional whitespace around tokens. */
bool headers_list_has_token(const char *value, size_t vlen, const char *token, size_t tlen);

/* Writes the X-Forwarded-For value to send: the incoming value (may be NULL or
 * empty), then ", " and client_ip; just client_ip when there was none. Writes a
 * NUL-terminated string into out. Returns its length, or -1 when it does not fit
 * in outlen (out is then unspecified). */
long headers_build_xff(const char *existing, size_t elen, const char *client_ip, char *out, size_t outlen);

/* True when a header value may be forwarded: no CR, LF or NUL inside. */
bool headers_value_ok(const char *value, size_t len);

#endif
