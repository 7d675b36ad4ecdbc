/* h1frame: strict request framing on raw bytes, fed whole and byte by byte. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "shared/h1frame.h"

struct outcome {
    int requests; /* whole requests seen before the end or the refusal */
    int status;   /* 0, or the refusal's status */
    size_t accepted;
};

/* Scans input in pieces of step bytes (0: all at once). */
static struct outcome scan(const char *input, size_t step, uint64_t max_body)
{
    struct h1frame f;
    h1frame_init(&f, 8192, max_body);
    struct outcome o = {0};
    size_t len = strlen(input), at = 0;
    while (at < len) {
        size_t piece = step && len - at > step ? step : len - at;
        size_t off = 0;
        while (off < piece) {
            size_t used = 0;
            enum h1frame_event ev = h1frame_scan(&f, input + at + off, piece - off, &used);
            off += used;
            if (ev == H1FRAME_DONE)
                o.requests++;
            if (ev == H1FRAME_ERROR) {
                o.status = f.status;
                o.accepted = at + off;
                return o;
            }
        }
        at += piece;
    }
    o.accepted = len;
    return o;
}

static struct outcome both(const char *input, uint64_t max_body)
{
    struct outcome whole = scan(input, 0, max_body);
    struct outcome bytes = scan(input, 1, max_body);
    cr_assert_eq(whole.requests, bytes.requests, "%s", input);
    cr_assert_eq(whole.status, bytes.status, "%s", input);
    cr_assert_eq(whole.accepted, bytes.accepted, "%s", input);
    return whole;
}

#define SMUGGLED "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

Test(h1frame, keeps_apart_pipelined_requests)
{
    struct outcome o = both("GET / HTTP/1.1\r\nHost: a\r\n\r\n"
                            "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                            "POST /y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "5;name=\"v\\\"x\"\r\nhello\r\n3 ; a=b\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"
                            "GET /old HTTP/1.0\r\n\r\n",
                            1 << 20);
    cr_assert_eq(o.status, 0);
    cr_assert_eq(o.requests, 4);
}

Test(h1frame, identical_content_lengths_are_one)
{
    struct outcome o =
        both("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length:  2 \r\n\r\nab", 100);
    cr_assert_eq(o.status, 0);
    cr_assert_eq(o.requests, 1);
}

/* Each probe must be refused before the request hidden behind it is reached. */
static void refused(const char *head, int status)
{
    struct outcome o = both(head, 1 << 20);
    cr_assert_eq(o.status, status, "%s: status %d", head, o.status);
    cr_assert_eq(o.requests, 0, "%s", head);
}

Test(h1frame, refuses_ambiguous_framing)
{
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\nab" SMUGGLED, 400);
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\nab" SMUGGLED, 400);
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2,2\r\n\r\nab" SMUGGLED, 400);
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\nab" SMUGGLED, 400);
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n" SMUGGLED, 400);
    refused("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: "
            "4\r\n\r\n0\r\n\r\n" SMUGGLED,
            400);
    refused("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: "
            "4\r\n\r\n0\r\n\r\n" SMUGGLED,
            400);
    refused("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" SMUGGLED,
            400);
    refused("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
            "chunked\r\n\r\n" SMUGGLED,
            400);
    refused("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" SMUGGLED, 501);
    refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" SMUGGLED, 400);
}

Test(h1frame, refuses_bad_chunks)
{
    const char *head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    const char *bodies[] = {
        "2 x\r\nab\r\n0\r\n\r\n",       "x\r\nab\r\n0\r\n\r\n",  "2\nab\r\n0\r\n\r\n",
        "2\r\nabc\r\n0\r\n\r\n",        "-2\r\nab\r\n0\r\n\r\n", "2;\r\nab\r\n0\r\n\r\n",
        "ffffffffffffffffff\r\nab\r\n", "2;a=\"b\r\nab\r\n",     "0\r\nContent-Length: 5\r\n\r\n"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        char buf[512];
        snprintf(buf, sizeof(buf), "%s%s%s", head, bodies[i], SMUGGLED);
        refused(buf, 400);
    }
}

Test(h1frame, refuses_bad_heads)
{
    refused("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\001b\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\nHost: x\r\n X-Folded: b\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    refused("GET / HTTX/1.1\r\nHost: x\r\n\r\n", 400);
    refused("GET / HTTP/1.1x\r\nHost: x\r\n\r\n", 400);
    refused("GET /  HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    refused("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505);
    refused("GET / HTTP/1.1\nHost: x\r\n\r\n", 400);
}

Test(h1frame, a_nul_byte_in_a_value_is_refused)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n";
    struct h1frame f;
    h1frame_init(&f, 8192, 100);
    size_t used = 0;
    cr_assert_eq(h1frame_scan(&f, req, sizeof(req) - 1, &used), H1FRAME_ERROR);
    cr_assert_eq(f.status, 400);
    cr_assert_eq(used, (size_t)(strchr(req + 30, 'a') - req) + 1, "stops at the NUL");
}

Test(h1frame, limits)
{
    cr_assert_eq(both("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 100).status, 413);
    struct outcome o = both("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n", 63);
    cr_assert_eq(o.status, 413);
    char big[9000];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET / HTTP/1.1\r\nHost: x\r\nX-Long: ", 33);
    big[sizeof(big) - 1] = '\0';
    o = both(big, 100);
    cr_assert_eq(o.status, 431);
}

Test(h1frame, only_the_methods_served)
{
    static const char *const served[] = {"GET", "POST", NULL};
    struct h1frame f;
    h1frame_init(&f, 8192, 100);
    f.allowed_methods = served;
    size_t used = 0;
    const char get[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(h1frame_scan(&f, get, sizeof(get) - 1, &used), H1FRAME_DONE);
    const char brew[] = "BREW / HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(h1frame_scan(&f, brew, sizeof(brew) - 1, &used), H1FRAME_ERROR);
    cr_assert_eq(f.status, 501);
    h1frame_init(&f, 8192, 100);
    f.allowed_methods = served;
    const char longer[] = "GETTTTTTTTTTTTTTTTTTTTTTT / HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(h1frame_scan(&f, longer, sizeof(longer) - 1, &used), H1FRAME_ERROR);
    cr_assert_eq(f.status, 501);
}
