/* head: one parsed HTTP message head in a buffer of bounded size, and the pure
 * rewrite of a request head into the head sent to a backend.
 *
 * http_parser hands the start-line item and the header fields over in pieces;
 * the head store keeps them as offsets into one buffer whose size is the
 * header size limit, so a head never allocates per field. The rewrite does no
 * I/O: the proxy calls it on every request, the unit test and the fuzz target
 * call it on heads of their own. */
#ifndef BALANCER_HEAD_H
#define BALANCER_HEAD_H

#include "shared/request_id.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strbuf;

#define HEAD_MAX_FIELDS 128

/* One header field: name and value as offsets into the head's buffer. */
struct hdr {
    uint32_t name, nlen, value, vlen;
};

struct head {
    char *buf;
    uint32_t len, cap;
    struct hdr h[HEAD_MAX_FIELDS];
    uint32_t n;
    uint32_t flen; /* URL (request) or reason phrase (response) at offset 0 */
    bool in_value; /* the last piece was a value: a field piece starts a new field */
    bool overflow; /* over cap bytes or HEAD_MAX_FIELDS fields: the head was refused */
};

/* Gives hd a buffer of cap bytes (freed by head_cleanup) and empties it. */
void head_init(struct head *hd, uint32_t cap);
void head_cleanup(struct head *hd);
/* Empties hd for the next message, keeping its buffer. */
void head_reset(struct head *hd);
/* Append a piece of the start-line item (the caller adds len to flen), of a
 * field name or of a field value. Return 0, or -1 when the head is full
 * (overflow set) or a value comes before any name. */
int head_append(struct head *hd, const char *at, size_t len);
int head_field(struct head *hd, const char *at, size_t len);
int head_value(struct head *hd, const char *at, size_t len);

/* True when field i's name is lit (litlen bytes), case-insensitively. */
bool hdr_is(const struct head *hd, uint32_t i, const char *lit, size_t litlen);
#define HDR_IS(hd, i, lit) hdr_is(hd, i, lit, sizeof(lit) - 1)
/* Field i's value without trailing whitespace (points into hd's buffer). */
const char *hdr_value(const struct head *hd, uint32_t i, size_t *len);

/* Stores the indexes of up to max Connection fields of hd in conn; returns how
 * many. */
int head_collect_connection(const struct head *hd, uint32_t *conn, int max);

/* A parsed request and what the proxy knows about the connection it came on. */
struct head_request {
    unsigned method;            /* enum http_method */
    unsigned short http_minor;  /* 0: HTTP/1.0, anything else: HTTP/1.1 */
    const struct head *head;    /* URL at offset 0, then the fields */
    const char *client_ip;      /* the peer's numeric address */
    bool trusted_peer;          /* in BALANCER_TRUSTED_PROXIES: its X-Forwarded-* are believed */
    bool tls;                   /* the client connection is HTTPS */
    struct request_id_gen *ids; /* makes the id when the client sent none worth keeping */
};

/* What the rewrite found out about the request. */
struct head_rewrite {
    bool has_host;
    bool expect_continue;           /* Expect: 100-continue (not forwarded) */
    char reqid[REQUEST_ID_MAX + 1]; /* the X-Request-Id sent; empty when the head was refused */
};

/* Writes into out (emptied first) the head to send to the backend: the
 * request line, the fields without the hop-by-hop ones (those named by
 * Connection too) and without X-Forwarded-For, X-Forwarded-Proto, X-Request-Id
 * and Expect, then one X-Forwarded-For (the trusted peer's values, then
 * client_ip), one X-Forwarded-Proto ("https" on TLS, else a trusted peer's
 * "http"/"https", else "http") and one X-Request-Id (the client's when
 * request_id_valid, else a new one from ids), and the empty line.
 * Returns true, or false when a field value holds CR, LF or NUL: out is then
 * unspecified and res->reqid empty. The caller owns out. */
bool head_rewrite_request(const struct head_request *req, struct strbuf *out, struct head_rewrite *res);

/* A backend's answer head and how the client connection goes on after it. */
struct head_response {
    int status;              /* the answer's status code */
    const struct head *head; /* the reason phrase at offset 0 (may be empty), then the fields */
    const char *reqid;       /* sent as X-Request-Id unless the backend sent one */
    long hsts_max_age;       /* > 0: add Strict-Transport-Security (pass 0 on plain HTTP) */
    bool close;              /* the client connection closes after this answer */
    bool client_http10;      /* the client spoke HTTP/1.0: keeping it open needs saying so */
};

/* Writes into out (emptied first) the head to send to the client: an
 * HTTP/1.1 status line (the status' standard phrase when the backend sent
 * none), the fields with a value that may be forwarded and that are not
 * hop-by-hop (nor named by Connection), X-Request-Id when missing, HSTS, and
 * Connection: close, or keep-alive for an HTTP/1.0 client. The caller owns out. */
void head_rewrite_response(const struct head_response *resp, struct strbuf *out);

/* Writes into out (emptied first) the whole answer to a request hd (URL and
 * fields) on a plain listener that redirects to HTTPS: a 308 to the same host
 * and path on https_port (left out when 443), Connection: close, and a short
 * JSON body unless head_req. Returns false, writing nothing, when the Host
 * field is missing or not a plain name or address (so nothing a client sent
 * can split the Location header), or the URL is not a path. */
bool head_https_redirect(const struct head *hd, long https_port, bool head_req, struct strbuf *out);

#endif
