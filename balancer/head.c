/* head: the bounded message-head store and the request rewrite (see head.h). */
#include "head.h"

#include "headers.h"
#include "shared/request_id.h"
#include "shared/strbuf.h"
#include "shared/xalloc.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest X-Forwarded-For chain kept from a trusted peer; a longer one is
 * replaced by the client address alone rather than cut in the middle. */
#define XFF_MAX 2048

void head_init(struct head *hd, uint32_t cap)
{
    hd->buf = xmalloc(cap);
    hd->cap = cap;
    head_reset(hd);
}

void head_cleanup(struct head *hd)
{
    free(hd->buf);
    hd->buf = NULL;
    hd->cap = 0;
}

void head_reset(struct head *hd)
{
    hd->len = hd->n = hd->flen = 0;
    hd->in_value = hd->overflow = false;
}

int head_append(struct head *hd, const char *at, size_t len)
{
    if (len > hd->cap - hd->len) {
        hd->overflow = true;
        return -1;
    }
    memcpy(hd->buf + hd->len, at, len);
    hd->len += (uint32_t)len;
    return 0;
}

int head_field(struct head *hd, const char *at, size_t len)
{
    if (hd->n == 0 || hd->in_value) {
        if (hd->n == HEAD_MAX_FIELDS) {
            hd->overflow = true;
            return -1;
        }
        hd->h[hd->n++] = (struct hdr){.name = hd->len};
        hd->in_value = false;
    }
    if (head_append(hd, at, len) < 0)
        return -1;
    hd->h[hd->n - 1].nlen += (uint32_t)len;
    return 0;
}

int head_value(struct head *hd, const char *at, size_t len)
{
    if (hd->n == 0)
        return -1;
    struct hdr *h = &hd->h[hd->n - 1];
    if (!hd->in_value) {
        h->value = hd->len;
        h->vlen = 0;
        hd->in_value = true;
    }
    if (head_append(hd, at, len) < 0)
        return -1;
    h->vlen += (uint32_t)len;
    return 0;
}

bool hdr_is(const struct head *hd, uint32_t i, const char *lit, size_t litlen)
{
    return hd->h[i].nlen == litlen && strncasecmp(hd->buf + hd->h[i].name, lit, litlen) == 0;
}

const char *hdr_value(const struct head *hd, uint32_t i, size_t *len)
{
    const char *v = hd->buf + hd->h[i].value;
    size_t n = hd->h[i].vlen;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    *len = n;
    return v;
}

/* True when one of the nconn Connection fields conn names field i (so that
 * field is hop-by-hop too). */
static bool hdr_listed_in_connection(const struct head *hd, uint32_t i, const uint32_t *conn, int nconn)
{
    for (int k = 0; k < nconn; k++) {
        size_t vlen;
        const char *v = hdr_value(hd, conn[k], &vlen);
        if (headers_list_has_token(v, vlen, hd->buf + hd->h[i].name, hd->h[i].nlen))
            return true;
    }
    return false;
}

int head_collect_connection(const struct head *hd, uint32_t *conn, int max)
{
    int n = 0;
    for (uint32_t i = 0; i < hd->n && n < max; i++)
        if (HDR_IS(hd, i, "connection"))
            conn[n++] = i;
    return n;
}

/* Appends "name: value\r\n" to sb. */
static void head_add_field(struct strbuf *sb, const char *name, size_t nlen, const char *value, size_t vlen)
{
    /* One reserve and plain copies: this runs for every forwarded field. */
    strbuf_reserve(sb, nlen + vlen + 4);
    char *p = sb->p + sb->len;
    memcpy(p, name, nlen);
    p += nlen;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value, vlen);
    p += vlen;
    *p++ = '\r';
    *p++ = '\n';
    *p = '\0';
    sb->len += nlen + vlen + 4;
}

#define SB_LIT(sb, lit) strbuf_add(sb, lit, sizeof(lit) - 1)

/* "http" or "https", any case: the only values worth passing on. */
static bool forwarded_proto_ok(const char *v, size_t len)
{
    return (len == 4 && strncasecmp(v, "http", 4) == 0) || (len == 5 && strncasecmp(v, "https", 5) == 0);
}

bool head_rewrite_request(const struct head_request *req, struct strbuf *out, struct head_rewrite *res)
{
    const struct head *hd = req->head;
    uint32_t conn[HEAD_MAX_FIELDS];
    int nconn = head_collect_connection(hd, conn, HEAD_MAX_FIELDS);
    char xff_in[XFF_MAX];
    size_t xff_len = 0;
    bool xff_ok = true;
    const char *rid = NULL;
    size_t rid_len = 0;
    const char *proto = NULL; /* kept from a trusted peer (a TLS terminator in front) */

    res->has_host = res->expect_continue = false;
    res->reqid[0] = '\0';
    strbuf_reset(out);
    strbuf_adds(out, http_method_str((enum http_method)req->method));
    SB_LIT(out, " ");
    strbuf_add(out, hd->buf, hd->flen);
    if (req->http_minor == 0)
        SB_LIT(out, " HTTP/1.0\r\n");
    else
        SB_LIT(out, " HTTP/1.1\r\n");
    for (uint32_t i = 0; i < hd->n; i++) {
        const char *name = hd->buf + hd->h[i].name;
        size_t nlen = hd->h[i].nlen, vlen;
        const char *v = hdr_value(hd, i, &vlen);
        if (!headers_value_ok(v, vlen))
            return false;
        if (headers_is_hop_by_hop(name, nlen) || (nconn && hdr_listed_in_connection(hd, i, conn, nconn)))
            continue;
        if (HDR_IS(hd, i, "host")) {
            res->has_host = true;
        } else if (HDR_IS(hd, i, "x-forwarded-for")) {
            if (!req->trusted_peer)
                continue; /* anyone else's is forged until shown otherwise: replaced */
            if (vlen && xff_len + vlen + 2 < sizeof(xff_in)) {
                if (xff_len) {
                    memcpy(xff_in + xff_len, ", ", 2);
                    xff_len += 2;
                }
                memcpy(xff_in + xff_len, v, vlen);
                xff_len += vlen;
            } else if (vlen) {
                xff_ok = false;
            }
            continue;
        } else if (HDR_IS(hd, i, "x-forwarded-proto")) {
            if (req->trusted_peer && !proto && forwarded_proto_ok(v, vlen))
                proto = vlen == 5 ? "https" : "http";
            continue;
        } else if (HDR_IS(hd, i, "x-request-id")) {
            rid = v;
            rid_len = vlen;
            continue;
        } else if (HDR_IS(hd, i, "expect")) {
            if (vlen == 12 && strncasecmp(v, "100-continue", 12) == 0)
                res->expect_continue = true;
            continue;
        }
        head_add_field(out, name, nlen, v, vlen);
    }
    char xff[XFF_MAX + INET6_ADDRSTRLEN + 4];
    long n = xff_ok ? headers_build_xff(xff_in, xff_len, req->client_ip, xff, sizeof(xff)) : -1;
    if (n < 0)
        n = headers_build_xff(NULL, 0, req->client_ip, xff, sizeof(xff));
    SB_LIT(out, "X-Forwarded-For: ");
    strbuf_add(out, xff, (size_t)n);
    SB_LIT(out, "\r\nX-Forwarded-Proto: ");
    strbuf_adds(out, req->tls ? "https" : proto ? proto : "http");
    SB_LIT(out, "\r\nX-Request-Id: ");
    if (rid && request_id_valid(rid, rid_len)) {
        memcpy(res->reqid, rid, rid_len);
        res->reqid[rid_len] = '\0';
    } else {
        request_id_next(req->ids, res->reqid);
    }
    strbuf_adds(out, res->reqid);
    SB_LIT(out, "\r\n\r\n");
    return true;
}

void head_rewrite_response(const struct head_response *resp, struct strbuf *out)
{
    const struct head *hd = resp->head;
    int code = resp->status;
    uint32_t conn[HEAD_MAX_FIELDS];
    int nconn = head_collect_connection(hd, conn, HEAD_MAX_FIELDS);
    bool has_rid = false;
    strbuf_reset(out);
    /* The status line by hand: snprintf here cost more than the rest of the head. */
    char line[32] = "HTTP/1.1 ";
    size_t n = 9;
    if (code >= 100 && code <= 999) {
        line[n++] = (char)('0' + code / 100);
        line[n++] = (char)('0' + code / 10 % 10);
        line[n++] = (char)('0' + code % 10);
        line[n++] = ' ';
    } else {
        n += (size_t)snprintf(line + n, sizeof(line) - n, "%d ", code);
    }
    strbuf_add(out, line, n);
    if (hd->flen)
        strbuf_add(out, hd->buf, hd->flen);
    else
        strbuf_adds(out, http_status_str((enum http_status)code));
    SB_LIT(out, "\r\n");
    for (uint32_t i = 0; i < hd->n; i++) {
        const char *name = hd->buf + hd->h[i].name;
        size_t nlen = hd->h[i].nlen, vlen;
        const char *v = hdr_value(hd, i, &vlen);
        if (!headers_value_ok(v, vlen) || headers_is_hop_by_hop(name, nlen) ||
            (nconn && hdr_listed_in_connection(hd, i, conn, nconn)))
            continue;
        if (HDR_IS(hd, i, "x-request-id"))
            has_rid = true;
        head_add_field(out, name, nlen, v, vlen);
    }
    if (!has_rid) {
        SB_LIT(out, "X-Request-Id: ");
        strbuf_adds(out, resp->reqid);
        SB_LIT(out, "\r\n");
    }
    if (resp->hsts_max_age > 0)
        strbuf_addf(out, "Strict-Transport-Security: max-age=%ld\r\n", resp->hsts_max_age);
    if (resp->close)
        SB_LIT(out, "Connection: close\r\n");
    else if (resp->client_http10)
        SB_LIT(out, "Connection: keep-alive\r\n");
    SB_LIT(out, "\r\n");
}

bool head_https_redirect(const struct head *hd, long https_port, bool head_req, struct strbuf *out)
{
    const char *host = NULL;
    size_t hlen = 0;
    for (uint32_t i = 0; i < hd->n && !host; i++)
        if (HDR_IS(hd, i, "host"))
            host = hdr_value(hd, i, &hlen);
    /* Only a plain name or address goes into Location (no header splitting, no userinfo). */
    size_t name_len = 0;
    if (host && hlen > 0 && host[0] == '[') {
        const char *end = memchr(host, ']', hlen);
        name_len = end ? (size_t)(end - host) + 1 : 0;
    } else if (host) {
        while (name_len < hlen && host[name_len] != ':')
            name_len++;
    }
    bool ok = name_len > 0 && name_len < 256 && hd->flen > 0 && hd->buf[0] == '/';
    for (size_t i = 0; ok && i < name_len; i++)
        ok = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-[]:", host[i]) != NULL;
    if (!ok)
        return false;
    static const char body[] = "{\"message\": \"this site uses HTTPS\"}\n";
    strbuf_reset(out);
    SB_LIT(out, "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://");
    strbuf_add(out, host, name_len);
    if (https_port != 443)
        strbuf_addf(out, ":%ld", https_port);
    strbuf_add(out, hd->buf, hd->flen);
    strbuf_addf(out, "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                sizeof(body) - 1);
    if (!head_req)
        strbuf_add(out, body, sizeof(body) - 1);
    return true;
}
