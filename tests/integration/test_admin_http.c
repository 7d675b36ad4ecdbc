/* shared/admin_http as operators meet it on the balancer's admin port: the
 * pages it serves, and clear answers for other paths and methods. (ratelimitd's
 * /metrics listener is the same module: tests/integration/test_ratelimitd_metrics.c.) */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/harness.h"
#include "tests/support/balancer_proc.h"

static struct test_balancer *lb;
static struct http_client *client;

static void setup(void)
{
    lb = test_balancer_start("admin_http", "127.0.0.1:1", NULL);
    client = http_client_new();
}

static void teardown(void)
{
    http_client_free(client);
    test_balancer_stop(lb);
}

TestSuite(admin_http, .init = setup, .fini = teardown, .timeout = 30);

static struct http_resp *admin(const char *method, const char *path)
{
    char *url = test_balancer_url(lb, true, path);
    struct http_resp *r = http_request(client, method, url, NULL, NULL, NULL);
    free(url);
    return r;
}

Test(admin_http, serves_status_and_metrics_uncached)
{
    struct http_resp *r = admin("GET", "/status");
    cr_assert_eq(r->status, 200);
    cr_expect_str_eq(http_resp_header(r, "Content-Type"), "application/json");
    cr_expect_str_eq(http_resp_header(r, "Cache-Control"), "no-store");
    cr_expect(strstr(r->body, "\"backends\"") != NULL, "%s", r->body);
    http_resp_free(r);
    r = admin("GET", "/metrics");
    cr_assert_eq(r->status, 200);
    cr_expect_str_eq(http_resp_header(r, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    cr_expect(strstr(r->body, "# TYPE balancer_requests_total counter\n") != NULL, "%s", r->body);
    http_resp_free(r);
    r = admin("HEAD", "/metrics");
    cr_assert_eq(r->status, 200);
    cr_expect_eq(r->len, 0, "HEAD sent a body");
    http_resp_free(r);
}

Test(admin_http, other_paths_name_the_pages_and_other_methods_get_405)
{
    struct http_resp *r = admin("GET", "/nowhere");
    cr_expect_eq(r->status, 404);
    cr_expect_str_eq(r->body, "not found: try /status or /metrics\n");
    http_resp_free(r);
    const char *methods[] = {"POST", "PUT", "DELETE"};
    for (size_t i = 0; i < 3; i++) {
        r = admin(methods[i], "/metrics");
        cr_expect_eq(r->status, 405, "%s", methods[i]);
        const char *allow = http_resp_header(r, "Allow");
        cr_expect(allow && strcmp(allow, "GET, HEAD") == 0, "%s: Allow %s", methods[i],
                  allow ? allow : "(none)");
        http_resp_free(r);
    }
}
