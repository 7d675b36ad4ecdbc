#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/sigv4.h"
#include "shared/xalloc.h"

/* --- the AWS signing test suite (tests/spec/sigv4/, copied from aws-c-auth) --- */

static char *spec_dir(void)
{
    const char *root = getenv("SHOP_ROOT");
    if (root && *root)
        return xasprintf("%s/tests/spec/sigv4", root);
    return xstrdup("tests/spec/sigv4");
}

/* Whole file, NUL-terminated; NULL when it cannot be read. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static char *case_file(const char *dir, const char *name, const char *file)
{
    char *path = xasprintf("%s/%s/%s", dir, name, file);
    char *text = slurp(path, NULL);
    free(path);
    /* The expected files carry no trailing newline; tolerate one if an editor added it. */
    if (text) {
        size_t n = strlen(text);
        if (n && text[n - 1] == '\n')
            text[n - 1] = '\0';
    }
    return text;
}

struct spec_case {
    json_t *ctx;
    struct sigv4_request *req;
    struct sigv4_params params;
};

static bool load_case(const char *dir, const char *name, struct spec_case *c)
{
    memset(c, 0, sizeof(*c));
    char *path = xasprintf("%s/%s/context.json", dir, name);
    json_error_t err;
    c->ctx = json_load_file(path, 0, &err);
    free(path);
    cr_expect_not_null(c->ctx, "%s: context.json: %s", name, err.text);
    if (!c->ctx)
        return false;

    path = xasprintf("%s/%s/request.txt", dir, name);
    size_t len = 0;
    char *raw = slurp(path, &len);
    free(path);
    cr_expect_not_null(raw, "%s: request.txt unreadable", name);
    if (!raw)
        return false;
    c->req = sigv4_request_parse(raw, len);
    free(raw);
    cr_expect_not_null(c->req, "%s: request.txt does not parse", name);
    if (!c->req)
        return false;

    json_t *creds = json_object_get(c->ctx, "credentials");
    c->params.creds.access_key_id = json_string_value(json_object_get(creds, "access_key_id"));
    c->params.creds.secret_access_key = json_string_value(json_object_get(creds, "secret_access_key"));
    c->params.creds.session_token = json_string_value(json_object_get(creds, "token"));
    c->params.region = json_string_value(json_object_get(c->ctx, "region"));
    c->params.service = json_string_value(json_object_get(c->ctx, "service"));
    struct tm tm = {0};
    const char *ts = json_string_value(json_object_get(c->ctx, "timestamp"));
    cr_expect(ts && strptime(ts, "%Y-%m-%dT%H:%M:%SZ", &tm), "%s: bad timestamp", name);
    c->params.now = timegm(&tm);
    if (json_is_false(json_object_get(c->ctx, "normalize")))
        c->params.flags |= SIGV4_NO_NORMALIZE;
    if (json_is_true(json_object_get(c->ctx, "sign_body")))
        c->params.flags |= SIGV4_SIGN_BODY_HEADER;
    if (json_is_true(json_object_get(c->ctx, "omit_session_token")))
        c->params.flags |= SIGV4_UNSIGNED_TOKEN;
    c->params.expires_seconds =
        (unsigned)json_integer_value(json_object_get(c->ctx, "expiration_in_seconds"));
    return true;
}

static void free_case(struct spec_case *c)
{
    sigv4_request_free(c->req);
    json_decref(c->ctx);
}

/* Compares one stage; returns true when equal (failure is reported with the case name). */
static bool same(const char *name, const char *stage, const char *got, const char *want)
{
    cr_expect_not_null(want, "%s: expected %s file missing", name, stage);
    cr_expect_not_null(got, "%s: %s not produced", name, stage);
    if (!got || !want)
        return false;
    cr_expect_str_eq(got, want, "%s: %s differs\n--- got\n%s\n--- want\n%s", name, stage, got, want);
    return strcmp(got, want) == 0;
}

/* Runs every case folder in mode "header" or "query"; returns the number of cases run. */
static int run_suite(const char *mode)
{
    char *dir = spec_dir();
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open %s (set SHOP_ROOT)", dir);
    int cases = 0, failed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *ctxpath = xasprintf("%s/%s/context.json", dir, e->d_name);
        FILE *probe = fopen(ctxpath, "r");
        free(ctxpath);
        if (!probe)
            continue;
        fclose(probe);

        const char *name = e->d_name;
        struct spec_case c;
        cases++;
        if (!load_case(dir, name, &c)) {
            free_case(&c);
            failed++;
            continue;
        }
        bool query = strcmp(mode, "query") == 0;
        if (query)
            c.params.flags |= SIGV4_PRESIGN;

        char *f_creq = xasprintf("%s-canonical-request.txt", mode);
        char *f_sts = xasprintf("%s-string-to-sign.txt", mode);
        char *f_sig = xasprintf("%s-signature.txt", mode);
        char *want_creq = case_file(dir, name, f_creq);
        char *want_sts = case_file(dir, name, f_sts);
        char *want_sig = case_file(dir, name, f_sig);
        char *creq = sigv4_canonical_request(c.req, &c.params);
        char *sts = sigv4_string_to_sign(c.req, &c.params);
        char *sig = sigv4_signature(c.req, &c.params);
        bool ok = same(name, f_creq, creq, want_creq);
        ok = same(name, f_sts, sts, want_sts) && ok;
        ok = same(name, f_sig, sig, want_sig) && ok;

        if (!query) {
            /* The Authorization line of the signed request must match too. */
            char *signed_req = case_file(dir, name, "header-signed-request.txt");
            char *auth = sigv4_authorization(c.req, &c.params);
            cr_expect_not_null(signed_req, "%s: header-signed-request.txt missing", name);
            cr_expect_not_null(auth, "%s: no Authorization", name);
            if (signed_req && auth) {
                char *line = xasprintf("\nAuthorization:%s\n", auth);
                bool found = strstr(signed_req, line) != NULL;
                cr_expect(found, "%s: Authorization %s not in the signed request", name, auth);
                ok = found && ok;
                free(line);
            }
            free(signed_req);
            free(auth);
        } else {
            /* The presigned query carries exactly the expected signature. */
            char *pq = sigv4_presigned_query(c.req, &c.params);
            cr_expect_not_null(pq, "%s: no presigned query", name);
            if (pq && want_sig) {
                char *tail = xasprintf("X-Amz-Signature=%s", want_sig);
                cr_expect(strstr(pq, tail) != NULL, "%s: presigned query %s lacks %s", name, pq, tail);
                ok = strstr(pq, tail) != NULL && ok;
                free(tail);
            }
            free(pq);
        }
        if (!ok)
            failed++;
        free(creq);
        free(sts);
        free(sig);
        free(want_creq);
        free(want_sts);
        free(want_sig);
        free(f_creq);
        free(f_sts);
        free(f_sig);
        free_case(&c);
    }
    closedir(d);
    free(dir);
    cr_expect_eq(failed, 0, "%d of %d %s-signing cases failed", failed, cases, mode);
    return cases;
}

Test(sigv4_suite, header_signing_cases)
{
    int n = run_suite("header");
    cr_assert_geq(n, 30, "only %d cases found", n);
}

Test(sigv4_suite, query_signing_cases)
{
    int n = run_suite("query");
    cr_assert_geq(n, 30, "only %d cases found", n);
}

/* --- the API directly ------------------------------------------------------- */

static const struct sigv4_header dynamo_headers[] = {
    {"Host", "dynamodb.us-east-1.amazonaws.com"},
    {"Content-Type", "application/x-amz-json-1.0"},
    {"X-Amz-Target", "DynamoDB_20120810.PutItem"},
};

static struct sigv4_request dynamo_request(void)
{
    static const char body[] = "{\"TableName\":\"Orders\"}";
    return (struct sigv4_request){.method = "POST",
                                  .path = "/",
                                  .headers = dynamo_headers,
                                  .n_headers = 3,
                                  .body = body,
                                  .body_len = sizeof(body) - 1};
}

static struct sigv4_params example_params(void)
{
    return (struct sigv4_params){
        .creds = {.access_key_id = "AKIDEXAMPLE",
                  .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
        .region = "us-east-1",
        .service = "dynamodb",
        .now = 1440938160, /* 2015-08-30T12:36:00Z */
    };
}

Test(sigv4, sign_fills_headers_and_matches_stages)
{
    struct sigv4_request req = dynamo_request();
    struct sigv4_params p = example_params();
    p.creds.session_token = "TOKEN";
    struct sigv4_signed s;
    cr_assert_eq(sigv4_sign(&req, &p, &s), 0);
    cr_assert_str_eq(s.amz_date, "20150830T123600Z");
    cr_assert_str_eq(s.security_token, "TOKEN");
    cr_assert_null(s.content_sha256);
    char *auth = sigv4_authorization(&req, &p);
    cr_assert_str_eq(s.authorization, auth);
    cr_assert(strstr(auth, "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target,") !=
                  NULL,
              "%s", auth);
    cr_assert(strstr(auth, "Credential=AKIDEXAMPLE/20150830/us-east-1/dynamodb/aws4_request,") != NULL, "%s",
              auth);
    free(auth);
    sigv4_signed_free(&s);
    cr_assert_null(s.authorization);
}

Test(sigv4, signature_depends_on_body_time_and_secret)
{
    struct sigv4_request req = dynamo_request();
    struct sigv4_params p = example_params();
    char *a = sigv4_signature(&req, &p);
    req.body_len--;
    char *b = sigv4_signature(&req, &p);
    req.body_len++;
    p.now += 1;
    char *c = sigv4_signature(&req, &p);
    p.now -= 1;
    p.creds.secret_access_key = "other";
    char *d = sigv4_signature(&req, &p);
    cr_assert_eq(strlen(a), 64);
    cr_assert_str_neq(a, b);
    cr_assert_str_neq(a, c);
    cr_assert_str_neq(a, d);
    free(a);
    free(b);
    free(c);
    free(d);
}

Test(sigv4, caller_supplied_signer_headers_are_ignored)
{
    struct sigv4_header h[] = {
        {"Host", "example.amazonaws.com"}, {"X-Amz-Date", "19990101T000000Z"}, {"Authorization", "stale"}};
    struct sigv4_request with = {.method = "GET", .path = "/", .headers = h, .n_headers = 3};
    struct sigv4_request without = {.method = "GET", .path = "/", .headers = h, .n_headers = 1};
    struct sigv4_params p = example_params();
    char *a = sigv4_canonical_request(&with, &p);
    char *b = sigv4_canonical_request(&without, &p);
    cr_assert_str_eq(a, b);
    cr_assert(strstr(a, "x-amz-date:20150830T123600Z\n") != NULL);
    free(a);
    free(b);
}

Test(sigv4, refuses_missing_credentials_and_bad_input)
{
    struct sigv4_request req = dynamo_request();
    struct sigv4_params p = example_params();
    struct sigv4_signed s;

    p.creds.access_key_id = NULL;
    cr_assert_null(sigv4_authorization(&req, &p));
    cr_assert_eq(sigv4_sign(&req, &p, &s), -1);
    cr_assert_null(s.authorization);
    p = example_params();
    p.creds.secret_access_key = "";
    cr_assert_null(sigv4_signature(&req, &p));
    p = example_params();
    p.region = NULL;
    cr_assert_null(sigv4_canonical_request(&req, &p));
    p = example_params();
    req.method = NULL;
    cr_assert_null(sigv4_string_to_sign(&req, &p));
    req = dynamo_request();
    struct sigv4_header bad[] = {{"", "x"}};
    req.headers = bad;
    req.n_headers = 1;
    cr_assert_null(sigv4_canonical_request(&req, &p));
    cr_assert_null(sigv4_canonical_request(NULL, &p));
    cr_assert_null(sigv4_presigned_query(&req, &p), "presigning needs SIGV4_PRESIGN");
}

Test(sigv4, signing_key_is_cached_per_day_region_service_secret)
{
    unsigned char k1[32], k2[32], k3[32];
    bool cached = true;
    sigv4_signing_key("cache-secret", "20200101", "eu-west-1", "dynamodb", k1, &cached);
    cr_assert_not(cached);
    sigv4_signing_key("cache-secret", "20200101", "eu-west-1", "dynamodb", k2, &cached);
    cr_assert(cached);
    cr_assert_eq(memcmp(k1, k2, 32), 0);
    sigv4_signing_key("cache-secret", "20200102", "eu-west-1", "dynamodb", k3, &cached);
    cr_assert_not(cached, "a new day derives a new key");
    cr_assert_neq(memcmp(k1, k3, 32), 0);
    sigv4_signing_key("cache-secret2", "20200101", "eu-west-1", "dynamodb", k3, &cached);
    cr_assert_not(cached, "another secret derives another key");
    cr_assert_neq(memcmp(k1, k3, 32), 0);
}

Test(sigv4, signing_key_matches_the_documented_example)
{
    /* AWS documentation example: secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20120215, us-east-1, iam.
     */
    unsigned char k[32];
    sigv4_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam", k, NULL);
    static const unsigned char want[32] = {0xf4, 0x78, 0x0e, 0x2d, 0x9f, 0x65, 0xfa, 0x89, 0x5f, 0x9c, 0x67,
                                           0xb3, 0x2c, 0xe1, 0xba, 0xf0, 0xb0, 0xd8, 0xa4, 0x35, 0x05, 0xa0,
                                           0x00, 0xa1, 0xa9, 0xe0, 0x90, 0xd4, 0x14, 0xdb, 0x40, 0x4d};
    cr_assert_eq(memcmp(k, want, 32), 0);
}

Test(sigv4, path_normalisation_and_query_encoding)
{
    struct sigv4_header h[] = {{"Host", "h"}};
    struct sigv4_params p = example_params();
    struct {
        const char *path, *query, *want_prefix;
    } cases[] = {
        {"/a/b/../c/./d", NULL, "GET\n/a/c/d\n\n"},
        {"/a/b/..", NULL, "GET\n/a/\n\n"},
        {"/../..", NULL, "GET\n/\n\n"},
        {"", NULL, "GET\n/\n\n"},
        {"/a%2Fb", NULL, "GET\n/a%252Fb\n\n"},
        {"/", "b=2&a=3&a=1&c", "GET\n/\na=1&a=3&b=2&c=\n"},
        {"/", "k=a+b&x=%zz&y=%2f&&", "GET\n/\nk=a%2Bb&x=%25zz&y=%2F\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sigv4_request req = {
            .method = "GET", .path = cases[i].path, .query = cases[i].query, .headers = h, .n_headers = 1};
        char *c = sigv4_canonical_request(&req, &p);
        cr_assert_not_null(c);
        cr_expect(strncmp(c, cases[i].want_prefix, strlen(cases[i].want_prefix)) == 0, "case %zu: %s", i, c);
        free(c);
    }
}

Test(sigv4, parse_rejects_what_is_not_a_request)
{
    const char *bad[] = {
        "",        "GET\n",         "GET / HTTP/1.1\nNoColon\n", "GET / HTTP/1.1\n continuation-first\n",
        "GET /\n", " / HTTP/1.1\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_null(sigv4_request_parse(bad[i], strlen(bad[i])), "accepted: %s", bad[i]);
    const char nul[] = "GET / HTTP/1.1\nHost:a\0b\n";
    cr_expect_null(sigv4_request_parse(nul, sizeof(nul) - 1));

    const char ok[] = "POST /x?y=1 HTTP/1.1\r\nHost: a \r\nX: 1\r\n  2\r\n\r\nbody";
    struct sigv4_request *r = sigv4_request_parse(ok, sizeof(ok) - 1);
    cr_assert_not_null(r);
    cr_assert_str_eq(r->method, "POST");
    cr_assert_str_eq(r->path, "/x");
    cr_assert_str_eq(r->query, "y=1");
    cr_assert_eq(r->n_headers, 2);
    cr_assert_str_eq(r->headers[0].value, "a");
    cr_assert_str_eq(r->headers[1].value, "1 2");
    cr_assert_eq(r->body_len, 4);
    cr_assert_eq(memcmp(r->body, "body", 4), 0);
    sigv4_request_free(r);
}
