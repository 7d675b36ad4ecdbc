/* The balancer's request rewrite (balancer/head.c): what a backend receives
 * for a given client request, peer and connection. */
#include <criterion/criterion.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balancer/head.h"
#include "shared/request_id.h"
#include "shared/strbuf.h"

/* The head of one request, filled by http_parser as the proxy does. */
struct parsed {
    http_parser parser;
    struct head head;
    bool complete;
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
    return head_field(&((struct parsed *)p->data)->head, at, len);
}

static int on_value(http_parser *p, const char *at, size_t len)
{
    return head_value(&((struct parsed *)p->data)->head, at, len);
}

static int on_headers_complete(http_parser *p)
{
    ((struct parsed *)p->data)->complete = true;
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
};

static void parse(struct parsed *r, const char *text)
{
    memset(r, 0, sizeof(*r));
    head_init(&r->head, 8192);
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    size_t n = http_parser_execute(&r->parser, &settings, text, strlen(text));
    cr_assert_eq(HTTP_PARSER_ERRNO(&r->parser), HPE_OK, "%s", http_errno_name(HTTP_PARSER_ERRNO(&r->parser)));
    cr_assert_eq(n, strlen(text));
    cr_assert(r->complete);
}

/* Rewrites text as received from 192.0.2.7; returns the head sent (caller frees). */
static char *rewrite(const char *text, bool trusted, bool tls, struct head_rewrite *rw, bool *ok)
{
    static struct request_id_gen ids;
    request_id_gen_init(&ids);
    struct parsed r;
    parse(&r, text);
    struct head_request req = {
        .method = r.parser.method,
        .http_minor = r.parser.http_minor,
        .head = &r.head,
        .client_ip = "192.0.2.7",
        .trusted_peer = trusted,
        .tls = tls,
        .ids = &ids,
    };
    struct strbuf out = {0};
    *ok = head_rewrite_request(&req, &out, rw);
    head_cleanup(&r.head);
    return strbuf_take(&out, NULL);
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

Test(balancer_head, forwards_a_plain_request)
{
    struct head_rewrite rw;
    bool ok;
    char *out = rewrite("GET /p?q=1 HTTP/1.1\r\nHost: shop\r\nAccept: */*  \r\nX-Request-Id: abc-1\r\n\r\n",
                        false, false, &rw, &ok);
    cr_assert(ok);
    cr_assert(rw.has_host);
    cr_assert_not(rw.expect_continue);
    cr_assert_str_eq(rw.reqid, "abc-1");
    cr_assert_str_eq(out, "GET /p?q=1 HTTP/1.1\r\nHost: shop\r\nAccept: */*\r\nX-Forwarded-For: 192.0.2.7\r\n"
                          "X-Forwarded-Proto: http\r\nX-Request-Id: abc-1\r\n\r\n");
    free(out);
}

Test(balancer_head, untrusted_forwarded_headers_are_replaced)
{
    struct head_rewrite rw;
    bool ok;
    char *out =
        rewrite("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n",
                false, false, &rw, &ok);
    cr_assert(ok);
    cr_assert_not_null(strstr(out, "\r\nX-Forwarded-For: 192.0.2.7\r\n"), "%s", out);
    cr_assert_null(strstr(out, "10.0.0.1"), "%s", out);
    cr_assert_not_null(strstr(out, "\r\nX-Forwarded-Proto: http\r\n"), "%s", out);
    free(out);
}

Test(balancer_head, trusted_forwarded_headers_are_kept_and_appended)
{
    struct head_rewrite rw;
    bool ok;
    char *out =
        rewrite("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\n"
                "X-Forwarded-Proto: HTTPS\r\n\r\n",
                true, false, &rw, &ok);
    cr_assert(ok);
    cr_assert_not_null(strstr(out, "\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 192.0.2.7\r\n"), "%s", out);
    cr_assert_eq(count(out, "orwarded-For:") + count(out, "orwarded-for:"), 1, "%s", out);
    cr_assert_not_null(strstr(out, "\r\nX-Forwarded-Proto: https\r\n"), "%s", out);
    cr_assert_null(strstr(out, "x-forwarded-for"), "%s", out);
    free(out);

    /* A trusted peer's unknown scheme is not believed; our own TLS always wins. */
    out = rewrite("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: gopher\r\n\r\n", true, false, &rw, &ok);
    cr_assert_not_null(strstr(out, "\r\nX-Forwarded-Proto: http\r\n"), "%s", out);
    free(out);
    out = rewrite("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: http\r\n\r\n", true, true, &rw, &ok);
    cr_assert_not_null(strstr(out, "\r\nX-Forwarded-Proto: https\r\n"), "%s", out);
    free(out);
}

Test(balancer_head, hop_by_hop_and_connection_listed_fields_are_dropped)
{
    struct head_rewrite rw;
    bool ok;
    char *out = rewrite("POST /c HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n"
                        "Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Authorization: x\r\n"
                        "Content-Length: 3\r\nExpect: 100-continue\r\nX-Kept: k\r\n\r\n",
                        false, false, &rw, &ok);
    cr_assert(ok);
    cr_assert(rw.expect_continue);
    const char *gone[] = {"Connection",          "X-Secret", "Keep-Alive", "TE:", "Upgrade",
                          "Proxy-Authorization", "Expect"};
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
        cr_assert_null(strstr(out, gone[i]), "%s forwarded: %s", gone[i], out);
    cr_assert_not_null(strstr(out, "\r\nContent-Length: 3\r\n"), "%s", out);
    cr_assert_not_null(strstr(out, "\r\nX-Kept: k\r\n"), "%s", out);
    free(out);
}

Test(balancer_head, every_connection_field_counts)
{
    /* A client may split its Connection list over many fields; the last one
       still names a hop-by-hop field. */
    struct strbuf in = {0};
    strbuf_adds(&in, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 12; i++)
        strbuf_addf(&in, "Connection: x-hop-%d\r\n", i);
    strbuf_adds(&in, "X-Hop-11: secret\r\nX-Hop-0: secret\r\n\r\n");
    struct head_rewrite rw;
    bool ok;
    char *out = rewrite(in.p, false, false, &rw, &ok);
    cr_assert(ok);
    cr_assert_null(strstr(out, "secret"), "%s", out);
    free(out);
    strbuf_free(&in);
}

Test(balancer_head, invalid_request_id_is_replaced)
{
    struct head_rewrite rw;
    bool ok;
    char *out =
        rewrite("GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: has space\r\n\r\n", false, false, &rw, &ok);
    cr_assert(ok);
    cr_assert_str_neq(rw.reqid, "has space");
    cr_assert(request_id_valid(rw.reqid, strlen(rw.reqid)), "%s", rw.reqid);
    cr_assert_null(strstr(out, "has space"), "%s", out);
    char line[200];
    snprintf(line, sizeof(line), "\r\nX-Request-Id: %s\r\n\r\n", rw.reqid);
    cr_assert_not_null(strstr(out, line), "%s", out);
    cr_assert_eq(count(out, "X-Request-Id:"), 1, "%s", out);
    free(out);
}

Test(balancer_head, http_1_0_keeps_its_version)
{
    struct head_rewrite rw;
    bool ok;
    char *out = rewrite("GET /old HTTP/1.0\r\nUser-Agent: t\r\n\r\n", false, false, &rw, &ok);
    cr_assert(ok);
    cr_assert_not(rw.has_host);
    cr_assert_eq(strncmp(out, "GET /old HTTP/1.0\r\nUser-Agent: t\r\nX-Forwarded-For: 192.0.2.7\r\n", 61), 0,
                 "%s", out);
    free(out);
}

Test(balancer_head, value_with_a_line_break_is_refused)
{
    /* http_parser lets no CR through, so the field is put in by hand, as a
       lenient parser could. */
    struct head hd;
    head_init(&hd, 256);
    cr_assert_eq(head_append(&hd, "/", 1), 0);
    hd.flen = 1;
    cr_assert_eq(head_field(&hd, "X-A", 3), 0);
    cr_assert_eq(head_value(&hd, "a\r\nX-Evil: 1", 12), 0);
    struct request_id_gen ids;
    request_id_gen_init(&ids);
    struct head_request req = {
        .method = HTTP_GET, .http_minor = 1, .head = &hd, .client_ip = "::1", .ids = &ids};
    struct strbuf out = {0};
    struct head_rewrite rw;
    cr_assert_not(head_rewrite_request(&req, &out, &rw));
    cr_assert_str_eq(rw.reqid, "");
    strbuf_free(&out);
    head_cleanup(&hd);
}

Test(balancer_head, store_refuses_what_does_not_fit)
{
    struct head hd;
    head_init(&hd, 8);
    cr_assert_eq(head_field(&hd, "Host", 4), 0);
    cr_assert_eq(head_value(&hd, "abcd", 4), 0);
    cr_assert_eq(head_value(&hd, "e", 1), -1);
    cr_assert(hd.overflow);
    head_reset(&hd);
    cr_assert_not(hd.overflow);
    cr_assert_eq(head_value(&hd, "x", 1), -1, "a value before any name");
    for (int i = 0; i < HEAD_MAX_FIELDS; i++) {
        hd.len = 0; /* room for names: only the field count is under test */
        cr_assert_eq(head_field(&hd, "a", 1), 0);
        cr_assert_eq(head_value(&hd, "b", 1), 0);
    }
    cr_assert_eq(head_field(&hd, "a", 1), -1);
    cr_assert(hd.overflow);
    head_cleanup(&hd);
}

/* An answer head parsed into a store, as the backend side does. */
static void response_head(struct head *hd, const char *reason, const char *const *fields)
{
    head_init(hd, 1024);
    head_append(hd, reason, strlen(reason));
    hd->flen = (uint32_t)strlen(reason);
    for (const char *const *f = fields; *f; f += 2) {
        cr_assert_eq(head_field(hd, f[0], strlen(f[0])), 0);
        cr_assert_eq(head_value(hd, f[1], strlen(f[1])), 0);
    }
}

Test(balancer_head, response_head_for_the_client)
{
    const char *fields[] = {"Content-Length", "2",   "Connection", "keep-alive, X-Hop",
                            "X-Hop",          "1",   "Keep-Alive", "timeout=5",
                            "Set-Cookie",     "a=1", NULL};
    struct head hd;
    response_head(&hd, "OK", fields);
    struct head_response resp = {
        .status = 200, .head = &hd, .reqid = "r-1", .hsts_max_age = 60, .close = true};
    struct strbuf out = {0};
    head_rewrite_response(&resp, &out);
    cr_assert_str_eq(out.p, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\nX-Request-Id: r-1\r\n"
                            "Strict-Transport-Security: max-age=60\r\nConnection: close\r\n\r\n");

    /* An HTTP/1.0 client kept open is told so; no phrase gets the standard one. */
    head_cleanup(&hd);
    const char *with_id[] = {"X-Request-Id", "from-backend", NULL};
    response_head(&hd, "", with_id);
    resp = (struct head_response){.status = 404, .head = &hd, .reqid = "r-2", .client_http10 = true};
    head_rewrite_response(&resp, &out);
    cr_assert_str_eq(
        out.p, "HTTP/1.1 404 Not Found\r\nX-Request-Id: from-backend\r\nConnection: keep-alive\r\n\r\n");
    resp.client_http10 = false;
    head_rewrite_response(&resp, &out);
    cr_assert_str_eq(out.p, "HTTP/1.1 404 Not Found\r\nX-Request-Id: from-backend\r\n\r\n");
    strbuf_free(&out);
    head_cleanup(&hd);
}

static bool redirect(const char *request, long port, bool head_req, struct strbuf *out)
{
    struct parsed r;
    parse(&r, request);
    bool ok = head_https_redirect(&r.head, port, head_req, out);
    head_cleanup(&r.head);
    return ok;
}

Test(balancer_head, https_redirect_keeps_host_and_path)
{
    struct strbuf out = {0};
    cr_assert(redirect("GET /p?q=1 HTTP/1.1\r\nHost: shop.example:8080\r\n\r\n", 8443, false, &out));
    cr_assert_eq(strncmp(out.p,
                         "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://shop.example:8443/p?q=1\r\n",
                         75),
                 0, "%s", out.p);
    cr_assert_not_null(strstr(out.p, "\r\nConnection: close\r\n"), "%s", out.p);
    cr_assert_not_null(strstr(out.p, "\r\n\r\n{\"message\": \"this site uses HTTPS\"}\n"), "%s", out.p);
    /* The body is exactly what Content-Length says, with no NUL after it. */
    cr_assert_eq(strlen(out.p), out.len);
    cr_assert_not_null(strstr(out.p, "\r\nContent-Length: 36\r\n"), "%s", out.p);
    cr_assert_eq(strcmp(strstr(out.p, "\r\n\r\n") + 4, "{\"message\": \"this site uses HTTPS\"}\n"), 0, "%s",
                 out.p);

    cr_assert(redirect("HEAD / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 443, true, &out));
    cr_assert_eq(strncmp(out.p, "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://[::1]/\r\n", 58), 0,
                 "%s", out.p);
    cr_assert_eq(strcmp(out.p + out.len - 4, "\r\n\r\n"), 0, "a HEAD answer has no body: %s", out.p);
    strbuf_free(&out);
}

Test(balancer_head, https_redirect_refuses_what_could_split_location)
{
    struct strbuf out = {0};
    cr_assert_not(redirect("GET / HTTP/1.1\r\nHost: user@evil.example\r\n\r\n", 443, false, &out));
    cr_assert_not(redirect("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 443, false, &out));
    cr_assert_not(redirect("GET / HTTP/1.0\r\n\r\n", 443, false, &out), "no Host");
    cr_assert_not(redirect("GET / HTTP/1.1\r\nHost: \r\n\r\n", 443, false, &out), "empty Host");
    cr_assert_not(redirect("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 443, false, &out), "not a path");
    cr_assert_eq(out.len, 0, "nothing written: %s", out.p ? out.p : "");
    strbuf_free(&out);
}
