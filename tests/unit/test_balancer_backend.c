/* Pure parts of the balancer: backend list parsing, smooth weighted round robin,
 * health bookkeeping, header helpers. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balancer/backend.h"
#include "balancer/headers.h"
#include "shared/request_id.h"

static struct backend *make(const char *host, int port, int weight)
{
    struct backend_spec s = {.port = port, .weight = weight};
    strcpy(s.host, host);
    char err[256];
    struct backend *b = backend_new(&s, err, sizeof(err));
    cr_assert_not_null(b, "%s", err);
    return b;
}

Test(balancer_backend, parses_lists)
{
    struct backend_spec *s;
    size_t n;
    char err[256];
    cr_assert_eq(
        backend_parse_list(" 127.0.0.1:8081 , localhost:8082=5,[::1]:9000=2", &s, &n, err, sizeof(err)), 0,
        "%s", err);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(s[0].host, "127.0.0.1");
    cr_assert_eq(s[0].port, 8081);
    cr_assert_eq(s[0].weight, 1);
    cr_assert_str_eq(s[1].host, "localhost");
    cr_assert_eq(s[1].weight, 5);
    cr_assert_str_eq(s[2].host, "::1");
    cr_assert_eq(s[2].port, 9000);
    cr_assert_eq(s[2].weight, 2);
    free(s);
}

Test(balancer_backend, refuses_bad_lists)
{
    static const char *const bad[] = {
        "",      "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "a:1,,b:2", "a:1,",   "a:1=0", "a:1=1001",
        "a:1=x", "a:1=2=3",   "a:1,a:1",     "[::1:80",         ":80",      "a b:80", "a:80x", "a:-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct backend_spec *s = (void *)1;
        size_t n = 7;
        char err[256] = "";
        cr_assert_eq(backend_parse_list(bad[i], &s, &n, err, sizeof(err)), -1, "accepted '%s'", bad[i]);
        cr_assert_null(s);
        cr_assert_eq(n, 0);
        cr_assert_neq(err[0], '\0', "no reason for '%s'", bad[i]);
    }
    struct backend_spec *s;
    size_t n;
    char err[256];
    cr_assert_eq(backend_parse_list(NULL, &s, &n, err, sizeof(err)), -1);
    /* 65 entries are too many. */
    char big[65 * 16] = "";
    for (int i = 0; i < 65; i++) {
        char one[16];
        snprintf(one, sizeof(one), "%sh:%d", i ? "," : "", 1000 + i);
        strcat(big, one);
    }
    cr_assert_eq(backend_parse_list(big, &s, &n, err, sizeof(err)), -1);
}

static void sequence(struct backend **b, size_t n, int count, char *out, const bool *exclude)
{
    for (int i = 0; i < count; i++) {
        int k = backend_pick(b, n, exclude);
        out[i] = k < 0 ? '-' : (char)('a' + k);
    }
    out[count] = '\0';
}

Test(balancer_backend, smooth_weighted_round_robin)
{
    struct backend *b[3] = {make("127.0.0.1", 1, 5), make("127.0.0.1", 2, 1), make("127.0.0.1", 3, 1)};
    char seq[15];
    sequence(b, 3, 14, seq, NULL);
    /* nginx's documented sequence for weights 5, 1, 1. */
    cr_assert_str_eq(seq, "aabacaaaabacaa");
    b[0]->up = false;
    sequence(b, 3, 4, seq, NULL);
    cr_assert_str_eq(seq, "bcbc");
    bool exclude[3] = {false, true, false};
    sequence(b, 3, 2, seq, exclude);
    cr_assert_str_eq(seq, "cc");
    b[2]->up = false;
    b[1]->up = false;
    cr_assert_eq(backend_pick(b, 3, NULL), -1);
    for (int i = 0; i < 3; i++)
        backend_free(b[i]);
}

Test(balancer_backend, equal_weights_are_plain_round_robin)
{
    struct backend *b[3] = {make("127.0.0.1", 1, 1), make("127.0.0.1", 2, 1), make("127.0.0.1", 3, 1)};
    char seq[10];
    sequence(b, 3, 9, seq, NULL);
    cr_assert_str_eq(seq, "abcabcabc");
    for (int i = 0; i < 3; i++)
        backend_free(b[i]);
}

Test(balancer_backend, fall_rise_and_least_bad)
{
    struct backend *b[2] = {make("127.0.0.1", 1, 1), make("127.0.0.1", 2, 1)};
    cr_assert_not(backend_report_failure(b[0], 3, false, "x"));
    cr_assert_not(backend_report_failure(b[0], 3, false, "x"));
    cr_assert(backend_report_failure(b[0], 3, false, "timeout"), "third failure must mark down");
    cr_assert_not(b[0]->up);
    cr_assert_str_eq(b[0]->last_error, "timeout");
    cr_assert(backend_report_failure(b[1], 3, true, "refused"), "a connect failure is a full fall");
    cr_assert_not(backend_report_check_ok(b[0], 2));
    cr_assert(backend_report_check_ok(b[0], 2));
    cr_assert(b[0]->up);
    cr_assert_eq(b[0]->fails, 0);
    /* Both down: the one with fewer failures is the least bad. */
    backend_report_failure(b[0], 1, false, "x");
    backend_report_failure(b[1], 1, false, "x");
    size_t cursor = 0;
    cr_assert_eq(backend_pick(b, 2, NULL), -1);
    cr_assert_eq(backend_pick_least_bad(b, 2, NULL, &cursor), 0);
    bool ex[2] = {true, false};
    cr_assert_eq(backend_pick_least_bad(b, 2, ex, &cursor), 1);
    bool all[2] = {true, true};
    cr_assert_eq(backend_pick_least_bad(b, 2, all, &cursor), -1);
    backend_free(b[0]);
    backend_free(b[1]);
}

Test(balancer_backend, latency_histogram)
{
    struct backend *b = make("127.0.0.1", 1, 1);
    backend_record(b, 200, 100);
    backend_record(b, 503, 2000000);
    backend_record(b, 0, 700);
    cr_assert_eq(b->responses[2], 1);
    cr_assert_eq(b->responses[5], 1);
    cr_assert_eq(b->responses[0], 1);
    cr_assert_eq(b->lat_buckets[0], 1);
    cr_assert_eq(b->lat_buckets[1], 1);
    cr_assert_eq(b->lat_buckets[BACKEND_LAT_BUCKETS], 1);
    cr_assert_eq(b->lat_max_us, 2000000);
    backend_free(b);
}

Test(balancer_headers, hop_by_hop_and_connection_tokens)
{
    static const char *const hop[] = {
        "Connection",          "keep-alive",        "TE", "Trailer", "Upgrade", "Proxy-Connection",
        "proxy-authorization", "Proxy-Authenticate"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        cr_assert(headers_is_hop_by_hop(hop[i], strlen(hop[i])), "%s", hop[i]);
    static const char *const end[] = {"Host", "Transfer-Encoding", "Set-Cookie",
                                      "TEx",  "Upgrades",          "Trailers"};
    for (size_t i = 0; i < sizeof(end) / sizeof(end[0]); i++)
        cr_assert_not(headers_is_hop_by_hop(end[i], strlen(end[i])), "%s", end[i]);
    const char *v = " keep-alive ,X-Secret,, x-other\t";
    cr_assert(headers_list_has_token(v, strlen(v), "x-secret", 8));
    cr_assert(headers_list_has_token(v, strlen(v), "X-OTHER", 7));
    cr_assert_not(headers_list_has_token(v, strlen(v), "x-sec", 5));
    cr_assert_not(headers_list_has_token(v, strlen(v), "", 0));
}

Test(balancer_headers, forwarded_for_and_request_id)
{
    char out[64];
    cr_assert_eq(headers_build_xff(NULL, 0, "10.0.0.1", out, sizeof(out)), 8);
    cr_assert_str_eq(out, "10.0.0.1");
    cr_assert_eq(headers_build_xff(" 1.2.3.4 ", 9, "10.0.0.1", out, sizeof(out)), 17);
    cr_assert_str_eq(out, "1.2.3.4, 10.0.0.1");
    cr_assert_eq(headers_build_xff("1.2.3.4", 7, "10.0.0.1", out, 17), -1, "must not overflow");
    cr_assert(request_id_valid("abc-123_X.y:z", 13));
    cr_assert_not(request_id_valid("", 0));
    cr_assert_not(request_id_valid("a b", 3));
    cr_assert_not(request_id_valid("a\"b", 3));
    char longid[200];
    memset(longid, 'a', sizeof(longid));
    cr_assert_not(request_id_valid(longid, sizeof(longid)));
    cr_assert(headers_value_ok("plain value", 11));
    cr_assert_not(headers_value_ok("a\r\nX-Injected: 1", 16));
}
