/* h1frame: strict HTTP/1.1 request framing (RFC 9112), checked on the raw bytes.
 *
 * Both listeners (shopd's evhttp and the balancer's http_parser) run every
 * byte a client sends through one of these before their own parser sees it,
 * so that the two agree on where each request ends and a request hidden in
 * another's body is never answered. It checks the request line, field names
 * and values, Content-Length, Transfer-Encoding and Host, and the chunked body
 * (sizes, extensions, line ends, trailers); it does not keep the headers.
 *
 * No I/O and no allocation: the caller feeds bytes as they arrive, in pieces
 * of any size, and the fuzz target feeds arbitrary ones. */
#ifndef SHARED_H1FRAME_H
#define SHARED_H1FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum h1frame_event {
    H1FRAME_MORE,       /* every byte given was valid; give more */
    H1FRAME_DONE,       /* a whole request ended with the last byte used; the next byte starts the next one */
    H1FRAME_ERROR,      /* the byte after the ones used is not acceptable: see status and reason */
    H1FRAME_CHUNK_LINE, /* the next byte begins a chunk line (only with report_chunk_lines set) */
};

struct h1frame {
    /* limits, set by h1frame_init */
    size_t max_head;
    uint64_t max_body;
    /* what is known of the current request once its head ended */
    uint64_t content_length; /* valid when !chunked */
    bool chunked;
    bool http10;
    /* set by the caller: stop with H1FRAME_CHUNK_LINE before each chunk line */
    bool report_chunk_lines;
    /* set by the caller: the methods served, NULL-terminated (others: 501); NULL takes any */
    const char *const *allowed_methods;
    /* the refusal, once H1FRAME_ERROR was returned */
    int status;         /* 400, 413, 431, 501 or 505 */
    const char *reason; /* a static sentence for the answer and the log */
    /* scanner state (private) */
    int state, version_at;
    size_t head_bytes;
    uint64_t remaining, body_bytes, chunk_size;
    int leading_crlf, hex_digits, name_len, te_len, host_count, cl_count, cl_digits;
    bool cl_conflict, te_seen, te_bad, te_unsupported, cl_bad, cl_trailing_ws, in_trailer;
    char name[20];
    char method[16];
    int method_len;
    char te[64];
    uint64_t cl_value, cl_first;
    char major, minor;
};

/* Starts a new connection's scan: max_head is the most bytes a head (request
 * line and fields, or the trailer section) may take (431 above), max_body the
 * largest body (413 above). */
void h1frame_init(struct h1frame *f, size_t max_head, uint64_t max_body);

/* Scans up to len bytes of p, stopping after the first event. *used says how
 * many bytes were accepted (all of them for H1FRAME_MORE). After H1FRAME_ERROR
 * every later call returns H1FRAME_ERROR with *used 0. */
enum h1frame_event h1frame_scan(struct h1frame *f, const char *p, size_t len, size_t *used);

/* True while the scan is inside a chunk line (size or extensions), and
 * *in_extension when inside the extensions (from the ';' or blank after the
 * size to the CR): a listener whose parser cannot take extensions (evhttp)
 * feeds those lines byte by byte and drops the extension bytes, which RFC
 * 9112 lets a recipient ignore. */
bool h1frame_in_chunk_line(const struct h1frame *f, bool *in_extension);

/* True between requests: no byte of a next request has been seen yet. */
bool h1frame_idle(const struct h1frame *f);

#endif
