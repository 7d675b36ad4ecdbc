/* shopd/request: what a handler reads of a request: cookies, form fields and
 * JSON bodies, including what a hostile client sends. Built on evhttp request
 * objects, without a server. */
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

#include "shopd/request.h"

static struct evhttp_request *ev;
static struct request r;

static void setup(void)
{
    ev = evhttp_request_new(NULL, NULL);
    cr_assert_not_null(ev);
    memset(&r, 0, sizeof(r));
    r.ev = ev;
}

static void teardown(void)
{
    if (r.form) {
        evhttp_clear_headers(r.form);
        free(r.form);
    }
    if (r.json)
        json_decref(r.json);
    evhttp_request_free(ev);
}

TestSuite(request, .init = setup, .fini = teardown);

static void header(const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_input_headers(ev), name, value);
}

static void body(const char *text)
{
    evbuffer_add(evhttp_request_get_input_buffer(ev), text, strlen(text));
}

Test(request, cookies_by_exact_name_across_headers)
{
    header("Cookie", "a=1; session=abc; sessionx=no");
    header("Cookie", "visitor=v1");
    char buf[64];
    cr_assert(request_cookie(&r, "session", buf, sizeof(buf)));
    cr_expect_str_eq(buf, "abc");
    cr_assert(request_cookie(&r, "visitor", buf, sizeof(buf)));
    cr_expect_str_eq(buf, "v1");
    cr_assert(request_cookie(&r, "a", buf, sizeof(buf)));
    cr_expect_str_eq(buf, "1");
    cr_expect_not(request_cookie(&r, "sess", buf, sizeof(buf)), "a prefix of a name matched");
    cr_expect_not(request_cookie(&r, "missing", buf, sizeof(buf)));
}

Test(request, a_cookie_longer_than_the_buffer_is_refused_not_cut)
{
    header("Cookie", "session=0123456789abcdef");
    char small[8];
    cr_expect_not(request_cookie(&r, "session", small, sizeof(small)));
    header("Cookie", "broken; =x; ;;; session");
    char buf[64];
    cr_expect(request_cookie(&r, "session", buf, sizeof(buf)), "the well-formed header still counts");
}

Test(request, form_fields_are_decoded_only_for_form_bodies)
{
    header("Content-Type", "application/x-www-form-urlencoded");
    body("email=ann%40example.com&quantity=2&note=a+b&empty=");
    cr_expect_str_eq(request_form(&r, "email"), "ann@example.com");
    cr_expect_str_eq(request_form(&r, "quantity"), "2");
    cr_expect_str_eq(request_form(&r, "note"), "a b");
    cr_expect_str_eq(request_form(&r, "empty"), "");
    cr_expect_null(request_form(&r, "missing"));
}

Test(request, a_json_body_is_no_form)
{
    header("Content-Type", "application/json");
    body("email=ann%40example.com");
    cr_expect_null(request_form(&r, "email"));
}

Test(request, json_bodies_need_the_type_and_an_object)
{
    int status = 0;
    char msg[160];
    header("Content-Type", "text/plain");
    body("{\"a\":1}");
    cr_expect_null(request_json_body(&r, &status, msg, sizeof(msg)));
    cr_expect_eq(status, 415);
}

Test(request, json_bodies_refuse_duplicates_arrays_and_garbage)
{
    const char *bad[] = {"{\"a\":1,\"a\":2}", "[1,2]", "{\"a\":", "", "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct evhttp_request *e = evhttp_request_new(NULL, NULL);
        struct request q = {.ev = e};
        evhttp_add_header(evhttp_request_get_input_headers(e), "Content-Type",
                          "application/json; charset=utf-8");
        evbuffer_add(evhttp_request_get_input_buffer(e), bad[i], strlen(bad[i]));
        int status = 0;
        char msg[160];
        cr_expect_null(request_json_body(&q, &status, msg, sizeof(msg)), "accepted %s", bad[i]);
        cr_expect_eq(status, 400, "%s: %d", bad[i], status);
        cr_expect(msg[0], "no message for %s", bad[i]);
        evhttp_request_free(e);
    }
}

Test(request, a_json_object_is_parsed_once)
{
    header("Content-Type", "application/json");
    body("{\"product_id\": 3, \"quantity\": 2}");
    int status = 0;
    char msg[160];
    json_t *o = request_json_body(&r, &status, msg, sizeof(msg));
    cr_assert_not_null(o, "%s", msg);
    cr_expect_eq(json_integer_value(json_object_get(o, "quantity")), 2);
    cr_expect_eq(request_json_body(&r, &status, msg, sizeof(msg)), o, "parsed twice");
}
