/* libFuzzer target: the balancer's request rewrite on arbitrary bytes. The
 * first byte picks the peer's trust, TLS and address; the rest goes, as in the
 * proxy, through the strict framing check and then (what passed it) through
 * http_parser into the head store, and a complete head is rewritten.
 * What goes to the backend must hold no CR or LF inside a field, exactly one
 * X-Forwarded-For, X-Forwarded-Proto and X-Request-Id, no hop-by-hop field
 * (nor one the client's Connection named), and must parse again as one whole
 * request head. */
#include <http_parser.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "balancer/head.h"
#include "balancer/headers.h"
#include "shared/h1frame.h"
#include "shared/request_id.h"
#include "shared/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct parsed {
    struct head head;
    bool headers, message;
};

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct parsed *r = p->data;
    if (head_append(&r->head, at, len) < 0)
        return -1;
    r->head.flen += (uint32_t)len;
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t len)
{
    struct parsed *r = p->data;
    if (head_field(&r->head, at, len) < 0)
        return -1;
    /* As the proxy does: a repeated Content-Length is left to the framing check. */
    if ((p->flags & F_CONTENTLENGTH) && HDR_IS(&r->head, r->head.n - 1, "content-length"))
        p->flags &= (unsigned)~F_CONTENTLENGTH & 0xffu;
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
    return head_value(&((struct parsed *)p->data)->head, at, len);
}

static int on_headers_complete(http_parser *p)
{
    ((struct parsed *)p->data)->headers = true;
    return 1; /* only the head matters: no body follows */
}

static int on_message_complete(http_parser *p)
{
    ((struct parsed *)p->data)->message = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

static size_t parse(http_parser *p, struct parsed *r, const char *buf, size_t len)
{
    head_reset(&r->head);
    r->headers = r->message = false;
    http_parser_init(p, HTTP_REQUEST);
    p->data = r;
    return http_parser_execute(p, &settings, buf, len);
}

static int count_named(const struct head *hd, const char *name, size_t nlen)
{
    int n = 0;
    for (uint32_t i = 0; i < hd->n; i++)
        n += hdr_is(hd, i, name, nlen);
    return n;
}

#define COUNT(hd, lit) count_named(hd, lit, sizeof(lit) - 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct request_id_gen ids;
    static struct parsed in, out;
    static bool ready;
    if (!ready) {
        request_id_gen_init(&ids);
        head_init(&in.head, 4096);
        head_init(&out.head, 16384);
        ready = true;
    }
    if (size == 0)
        return 0;
    const char *bytes = (const char *)data + 1;
    size_t len = size - 1, passed = 0;
    struct h1frame frame;
    h1frame_init(&frame, 4096, 1 << 20);
    while (passed < len && frame.status == 0) {
        size_t used = 0;
        h1frame_scan(&frame, bytes + passed, len - passed, &used);
        passed += used;
    }
    http_parser p;
    parse(&p, &in, bytes, passed);
    enum http_errno err = HTTP_PARSER_ERRNO(&p);
    if (!in.headers || (err != HPE_OK && err != HPE_PAUSED))
        return 0;

    const char *ip = data[0] & 4 ? "2001:db8::7" : "192.0.2.7";
    struct head_request req = {
        .method = p.method,
        .http_minor = p.http_minor,
        .head = &in.head,
        .client_ip = ip,
        .trusted_peer = data[0] & 1,
        .tls = data[0] & 2,
        .ids = &ids,
    };
    struct strbuf sent = {0};
    struct head_rewrite rw;
    if (!head_rewrite_request(&req, &sent, &rw)) {
        if (rw.reqid[0])
            abort();
        strbuf_free(&sent);
        return 0;
    }
    if (!request_id_valid(rw.reqid, strlen(rw.reqid)))
        abort();

    /* Every CR starts a CRLF and every LF ends one: no bare line break. */
    for (size_t i = 0; i < sent.len; i++)
        if ((sent.p[i] == '\r' && (i + 1 == sent.len || sent.p[i + 1] != '\n')) ||
            (sent.p[i] == '\n' && (i == 0 || sent.p[i - 1] != '\r')))
            abort();

    size_t used = parse(&p, &out, sent.p, sent.len);
    err = HTTP_PARSER_ERRNO(&p);
    if ((err != HPE_OK && err != HPE_PAUSED) || !out.headers || !out.message || used != sent.len)
        abort();
    const struct head *hd = &out.head;
    if (COUNT(hd, "x-forwarded-for") != 1 || COUNT(hd, "x-forwarded-proto") != 1 ||
        COUNT(hd, "x-request-id") != 1)
        abort();
    uint32_t conn[HEAD_MAX_FIELDS];
    int nconn = head_collect_connection(&in.head, conn, HEAD_MAX_FIELDS);
    for (uint32_t i = 0; i < hd->n; i++) {
        const char *name = hd->buf + hd->h[i].name;
        size_t nlen = hd->h[i].nlen, vlen;
        const char *v = hdr_value(hd, i, &vlen);
        if (memchr(name, '\r', nlen) || memchr(name, '\n', nlen) || memchr(v, '\r', vlen) ||
            memchr(v, '\n', vlen))
            abort();
        if (headers_is_hop_by_hop(name, nlen))
            abort();
        /* The three fields the balancer writes itself may carry a name the
           client's Connection listed: the client's own field was dropped. */
        bool ours = HDR_IS(hd, i, "x-forwarded-for") || HDR_IS(hd, i, "x-forwarded-proto") ||
                    HDR_IS(hd, i, "x-request-id");
        for (int k = 0; k < nconn && !ours; k++) {
            size_t cl;
            const char *cv = hdr_value(&in.head, conn[k], &cl);
            if (headers_list_has_token(cv, cl, name, nlen))
                abort();
        }
        if (HDR_IS(hd, i, "x-request-id") && (vlen != strlen(rw.reqid) || memcmp(v, rw.reqid, vlen) != 0))
            abort();
        if (HDR_IS(hd, i, "x-forwarded-for") &&
            (vlen < strlen(ip) || memcmp(v + vlen - strlen(ip), ip, strlen(ip))))
            abort();
        if (HDR_IS(hd, i, "x-forwarded-proto") && req.tls && (vlen != 5 || memcmp(v, "https", 5) != 0))
            abort();
    }
    strbuf_free(&sent);
    return 0;
}
