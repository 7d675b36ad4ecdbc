/* The DynamoDB client against a real local DynamoDB (dynalite via
 * tools/dynalite.js on a free loopback port, one per test), behind a front that
 * checks every request's signature with botocore (dynalite checks none). */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shared/dynamo.h"
#include "shared/dynamo_multi.h"
#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/services.h"
#include "tests/support/sigv4_front.h"

#define TABLE "Orders"

static struct harness_proc *dynalite, *front;
static char *dynalite_log, *front_log;
static char endpoint[64];
static struct dynamo_client *client;

static struct dynamo_client *new_client(const char *url, const char *key, const char *secret, long timeout_ms)
{
    char err[256];
    struct dynamo_config cfg = {
        .region = "us-east-1",
        .endpoint = url,
        .access_key_id = key,
        .secret_access_key = secret,
        .connect_timeout_ms = 1000,
        .timeout_ms = timeout_ms,
    };
    struct dynamo_client *c = dynamo_client_new(&cfg, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    return c;
}

static void start_dynalite(void)
{
    int port = harness_free_port();
    char *name = xasprintf("dynalite-%d.log", port);
    dynalite_log = harness_output_path(name);
    dynalite = services_start_dynalite(NULL, port, NULL, dynalite_log);
    free(name);
    int front_port = harness_free_port();
    name = xasprintf("dynamo-sigv4-front-%d.log", port);
    front_log = harness_output_path(name);
    free(name);
    const char *const keys[] = {"AKIDLOCAL:local-secret", "ASIATEMP:s", NULL};
    front = sigv4_front_start(front_port, port, keys, front_log);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", front_port);
    client = new_client(endpoint, "AKIDLOCAL", "local-secret", 5000);
}

static void stop_dynalite(void)
{
    dynamo_client_free(client);
    client = NULL;
    harness_stop(front, 3000);
    front = NULL;
    cr_expect_eq(sigv4_front_refused(front_log), 0, "the SigV4 front refused requests: see %s", front_log);
    free(front_log);
    front_log = NULL;
    harness_stop(dynalite, 3000);
    dynalite = NULL;
    free(dynalite_log);
    dynalite_log = NULL;
}

TestSuite(dynamo, .init = start_dynalite, .fini = stop_dynalite, .timeout = 60);

static json_t *order_item(const char *id)
{
    return json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:[{s:{s:{s:s}, s:{s:s}}}]}}", "order_id", "S", id,
                     "user_email", "S", "a@example.com", "total_cents", "N", "1299", "items", "L", "M",
                     "product_id", "N", "7", "quantity", "N", "2");
}

static void ensure(void)
{
    struct dynamo_result r;
    enum dynamo_class cls = dynamo_ensure_table(client, TABLE, &r);
    cr_assert_eq(cls, DYNAMO_OK, "ensure_table: %s %s", r.error_type ? r.error_type : "",
                 r.message ? r.message : "");
    dynamo_result_cleanup(&r);
}

Test(dynamo, ensure_table_creates_once_and_is_idempotent)
{
    struct dynamo_result r;
    cr_assert_eq(dynamo_describe_table(client, TABLE, &r), DYNAMO_FATAL);
    cr_assert_str_eq(r.error_type, "ResourceNotFoundException");
    cr_assert_eq(r.http_status, 400);
    dynamo_result_cleanup(&r);

    ensure();
    cr_assert_eq(dynamo_describe_table(client, TABLE, &r), DYNAMO_OK);
    json_t *t = json_object_get(r.body, "Table");
    cr_assert_str_eq(json_string_value(json_object_get(t, "TableStatus")), "ACTIVE");
    json_t *key = json_array_get(json_object_get(t, "KeySchema"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(key, "AttributeName")), "order_id");
    cr_assert_str_eq(json_string_value(json_object_get(key, "KeyType")), "HASH");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(t, "BillingModeSummary"), "BillingMode")),
        "PAY_PER_REQUEST");
    dynamo_result_cleanup(&r);

    /* A second run finds the table and changes nothing; out may be NULL. */
    cr_assert_eq(dynamo_ensure_table(client, TABLE, NULL), DYNAMO_OK);
}

Test(dynamo, conditional_put_writes_once)
{
    ensure();
    json_t *item = order_item("0b7e4c8e-1111-4a7c-9d2e-000000000001");
    struct dynamo_result r;
    cr_assert_eq(dynamo_put_item(client, TABLE, item, "attribute_not_exists(order_id)", &r), DYNAMO_OK, "%s",
                 r.message ? r.message : "");
    cr_assert_eq(r.http_status, 200);
    cr_assert_null(r.error_type);
    dynamo_result_cleanup(&r);

    cr_assert_eq(dynamo_put_item(client, TABLE, item, "attribute_not_exists(order_id)", &r),
                 DYNAMO_CONDITION_FAILED);
    cr_assert_eq(r.http_status, 400);
    cr_assert_str_eq(r.error_type, "ConditionalCheckFailedException");
    cr_assert_not_null(r.message);
    dynamo_result_cleanup(&r);

    /* Without a condition the same put simply overwrites. */
    cr_assert_eq(dynamo_put_item(client, TABLE, item, NULL, &r), DYNAMO_OK);
    dynamo_result_cleanup(&r);
    json_decref(item);

    cr_assert_eq(dynamo_scan(client, TABLE, &r), DYNAMO_OK);
    cr_assert_eq(json_integer_value(json_object_get(r.body, "Count")), 1);
    dynamo_result_cleanup(&r);
    cr_assert_eq(dynamo_client_connects(client), 1,
                 "every call reused the kept-alive connection (%ld connects)",
                 dynamo_client_connects(client));
}

Test(dynamo, get_item_returns_the_fields)
{
    ensure();
    const char *id = "0b7e4c8e-2222-4a7c-9d2e-000000000002";
    json_t *item = order_item(id);
    struct dynamo_result r;
    cr_assert_eq(dynamo_put_item(client, TABLE, item, "attribute_not_exists(order_id)", &r), DYNAMO_OK);
    dynamo_result_cleanup(&r);
    json_decref(item);

    json_t *key = json_pack("{s:{s:s}}", "order_id", "S", id);
    cr_assert_eq(dynamo_get_item(client, TABLE, key, &r), DYNAMO_OK, "%s", r.message ? r.message : "");
    json_t *got = json_object_get(r.body, "Item");
    cr_assert_not_null(got);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(got, "order_id"), "S")), id);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(got, "user_email"), "S")),
                     "a@example.com");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(got, "total_cents"), "N")), "1299");
    json_t *line =
        json_object_get(json_array_get(json_object_get(json_object_get(got, "items"), "L"), 0), "M");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(line, "quantity"), "N")), "2");
    dynamo_result_cleanup(&r);
    json_decref(key);

    key = json_pack("{s:{s:s}}", "order_id", "S", "no-such-order");
    cr_assert_eq(dynamo_get_item(client, TABLE, key, &r), DYNAMO_OK);
    cr_assert_null(json_object_get(r.body, "Item"));
    dynamo_result_cleanup(&r);
    json_decref(key);
}

Test(dynamo, validation_errors_are_fatal)
{
    ensure();
    struct dynamo_result r;
    /* An item without its hash key. */
    json_t *item = json_pack("{s:{s:s}}", "user_email", "S", "a@example.com");
    cr_assert_eq(dynamo_put_item(client, TABLE, item, NULL, &r), DYNAMO_FATAL);
    cr_assert_eq(r.http_status, 400);
    cr_assert_str_eq(r.error_type, "ValidationException");
    cr_assert_not_null(r.message);
    dynamo_result_cleanup(&r);
    json_decref(item);

    /* A key of the wrong type. */
    json_t *key = json_pack("{s:{s:s}}", "order_id", "N", "12");
    cr_assert_eq(dynamo_get_item(client, TABLE, key, &r), DYNAMO_FATAL);
    cr_assert_str_eq(r.error_type, "ValidationException");
    dynamo_result_cleanup(&r);
    json_decref(key);

    /* An unknown operation. */
    json_t *req = json_object();
    cr_assert_eq(dynamo_call(client, "NoSuchOperation", req, &r), DYNAMO_FATAL);
    cr_assert_geq(r.http_status, 400);
    cr_assert_lt(r.http_status, 500);
    dynamo_result_cleanup(&r);
    json_decref(req);
}

Test(dynamo, unknown_table_is_fatal)
{
    struct dynamo_result r;
    json_t *item = order_item("x");
    cr_assert_eq(dynamo_put_item(client, "NoSuchTable", item, NULL, &r), DYNAMO_FATAL);
    cr_assert_str_eq(r.error_type, "ResourceNotFoundException");
    dynamo_result_cleanup(&r);
    json_decref(item);
}

Test(dynamo, missing_credentials_are_refused)
{
    struct dynamo_client *anon = new_client(endpoint, NULL, NULL, 5000);
    struct dynamo_result r;
    json_t *item = order_item("0b7e4c8e-3333-4a7c-9d2e-000000000003");
    cr_assert_eq(dynamo_put_item(anon, TABLE, item, NULL, &r), DYNAMO_FATAL);
    cr_assert_eq(r.http_status, 0, "nothing was sent");
    cr_assert_str_eq(r.error_type, "MissingCredentials");
    dynamo_result_cleanup(&r);
    cr_assert_eq(dynamo_ensure_table(anon, TABLE, NULL), DYNAMO_FATAL);
    json_decref(item);
    dynamo_client_free(anon);

    /* Nothing reached the table. */
    ensure();
    cr_assert_eq(dynamo_scan(client, TABLE, &r), DYNAMO_OK);
    cr_assert_eq(json_integer_value(json_object_get(r.body, "Count")), 0);
    dynamo_result_cleanup(&r);
}

Test(dynamo, session_token_is_sent_and_accepted)
{
    char err[256];
    struct dynamo_config cfg = {.endpoint = endpoint,
                                .access_key_id = "ASIATEMP",
                                .secret_access_key = "s",
                                .session_token = "session-token-value"};
    struct dynamo_client *c = dynamo_client_new(&cfg, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    struct dynamo_result r;
    cr_assert_eq(dynamo_ensure_table(c, TABLE, &r), DYNAMO_OK, "%s", r.message ? r.message : "");
    dynamo_result_cleanup(&r);
    dynamo_client_free(c);
}

Test(dynamo, signatures_verify_against_an_independent_implementation)
{
    /* ListTables and PutItem, with and without a session token: each request's
       signature is recomputed by the front (botocore) and must match. */
    ensure();
    struct dynamo_result r;
    int before = sigv4_front_verified(front_log);
    json_t *list = json_object();
    cr_assert_eq(dynamo_call(client, "ListTables", list, &r), DYNAMO_OK, "%s", r.message ? r.message : "");
    dynamo_result_cleanup(&r);
    json_decref(list);
    json_t *item = order_item("signed-1");
    cr_assert_eq(dynamo_put_item(client, TABLE, item, "attribute_not_exists(order_id)", &r), DYNAMO_OK, "%s",
                 r.message ? r.message : "");
    dynamo_result_cleanup(&r);
    json_decref(item);
    char err[256];
    struct dynamo_config cfg = {.endpoint = endpoint,
                                .access_key_id = "ASIATEMP",
                                .secret_access_key = "s",
                                .session_token = "tok/en+="};
    struct dynamo_client *temp = dynamo_client_new(&cfg, err, sizeof(err));
    cr_assert_not_null(temp, "%s", err);
    item = order_item("signed-2");
    cr_assert_eq(dynamo_put_item(temp, TABLE, item, "attribute_not_exists(order_id)", &r), DYNAMO_OK, "%s",
                 r.message ? r.message : "");
    dynamo_result_cleanup(&r);
    json_decref(item);
    dynamo_client_free(temp);
    cr_expect_eq(sigv4_front_verified(front_log) - before, 3);
}

Test(dynamo, a_wrong_secret_fails_as_an_invalid_signature)
{
    struct dynamo_client *c = new_client(endpoint, "AKIDLOCAL", "not-the-secret", 5000);
    struct dynamo_result r;
    cr_expect_eq(dynamo_ensure_table(c, TABLE, &r), DYNAMO_FATAL);
    cr_expect(r.error_type && strstr(r.error_type, "InvalidSignatureException"), "type %s",
              r.error_type ? r.error_type : "(none)");
    dynamo_result_cleanup(&r);
    dynamo_client_free(c);
    cr_expect_gt(sigv4_front_refused(front_log), 0);
    fclose(fopen(front_log, "w")); /* refused on purpose: not the teardown's business */
}

/* --- failures below HTTP (no DynamoDB needed) --------------------------------- */

/* --- several requests in flight (dynamo_multi) ----------------------------- */

static struct dynamo_multi *new_multi(const char *url, const char *key, size_t slots, long timeout_ms)
{
    char err[256];
    struct dynamo_config cfg = {
        .endpoint = url,
        .access_key_id = key,
        .secret_access_key = key ? "local-secret" : NULL,
        .connect_timeout_ms = 1000,
        .timeout_ms = timeout_ms,
    };
    struct dynamo_multi *m = dynamo_multi_new(&cfg, slots, err, sizeof(err));
    cr_assert_not_null(m, "%s", err);
    return m;
}

/* Waits until every started request has an answer; results[i] gets the
 * class of the request tagged &results[i]. */
static void drain_multi(struct dynamo_multi *m, enum dynamo_class *results, size_t n, size_t *taken)
{
    for (int rounds = 0; dynamo_multi_busy(m) > 0 && rounds < 1000; rounds++) {
        cr_assert_eq(dynamo_multi_wait(m, NULL, NULL, 0, 100), 0);
        void *tag;
        struct dynamo_result r;
        while (dynamo_multi_next(m, &tag, &r)) {
            enum dynamo_class *slot = tag;
            cr_assert(slot >= results && slot < results + n, "a tag that was never given");
            *slot = r.cls;
            (*taken)++;
            dynamo_result_cleanup(&r);
        }
    }
    cr_assert_eq(dynamo_multi_busy(m), 0, "requests still in flight");
}

Test(dynamo, multi_puts_each_item_once_over_its_slots)
{
    ensure();
    enum { N = 60, SLOTS = 8 };
    struct dynamo_multi *m = new_multi(endpoint, "AKIDLOCAL", SLOTS, 5000);
    cr_assert_eq(dynamo_multi_slots(m), SLOTS);
    enum dynamo_class results[N];
    size_t started = 0, taken = 0;
    for (int round = 0; round < 2; round++) {
        /* The second round repeats every item: the condition refuses each. */
        started = taken = 0;
        for (size_t i = 0; i < N; i++)
            results[i] = DYNAMO_RETRYABLE; /* what no answer looks like below */
        while (taken < N) {
            while (started < N && dynamo_multi_busy(m) < SLOTS) {
                char id[40];
                snprintf(id, sizeof(id), "0b7e4c8e-2222-4a7c-9d2e-%012zu", started);
                json_t *item = order_item(id);
                cr_assert_eq(dynamo_multi_put_item(m, TABLE, item, "attribute_not_exists(order_id)",
                                                   &results[started]),
                             0);
                json_decref(item);
                started++;
            }
            if (dynamo_multi_busy(m) == SLOTS) {
                json_t *extra = order_item("0b7e4c8e-2222-4a7c-9d2e-ffffffffffff");
                cr_assert_eq(dynamo_multi_put_item(m, TABLE, extra, NULL, NULL), -1,
                             "a request started with every slot taken");
                json_decref(extra);
            }
            cr_assert_eq(dynamo_multi_wait(m, NULL, NULL, 0, 1000), 0);
            void *tag;
            struct dynamo_result r;
            while (dynamo_multi_next(m, &tag, &r)) {
                *(enum dynamo_class *)tag = r.cls;
                if (r.cls != (round == 0 ? DYNAMO_OK : DYNAMO_CONDITION_FAILED))
                    cr_log_warn("round %d, item %zu: %s %s", round,
                                (size_t)((enum dynamo_class *)tag - results),
                                r.error_type ? r.error_type : "", r.message ? r.message : "");
                taken++;
                dynamo_result_cleanup(&r);
            }
        }
        for (size_t i = 0; i < N; i++)
            cr_assert_eq(results[i], round == 0 ? DYNAMO_OK : DYNAMO_CONDITION_FAILED,
                         "round %d, item %zu: %s", round, i, dynamo_class_name(results[i]));
    }
    struct dynamo_result r;
    cr_assert_eq(dynamo_scan(client, TABLE, &r), DYNAMO_OK);
    cr_assert_eq(json_integer_value(json_object_get(r.body, "Count")), N);
    dynamo_result_cleanup(&r);
    long connects = dynamo_multi_connects(m);
    cr_assert(connects >= 1 && connects <= SLOTS, "%ld connections for %d slots: not kept alive", connects,
              SLOTS);
    dynamo_multi_free(m);
}

Test(dynamo, multi_without_credentials_answers_at_once)
{
    struct dynamo_multi *m = new_multi(endpoint, NULL, 2, 5000);
    json_t *item = order_item("0b7e4c8e-3333-4a7c-9d2e-000000000001");
    enum dynamo_class results[2];
    cr_assert_eq(dynamo_multi_put_item(m, TABLE, item, NULL, &results[0]), 0);
    void *tag;
    struct dynamo_result r;
    cr_assert(dynamo_multi_next(m, &tag, &r), "the refusal is not waiting");
    cr_assert_eq(tag, &results[0]);
    cr_assert_eq(r.cls, DYNAMO_FATAL);
    cr_assert_str_eq(r.error_type, "MissingCredentials");
    dynamo_result_cleanup(&r);
    cr_assert_not(dynamo_multi_next(m, &tag, &r));
    cr_assert_eq(dynamo_multi_busy(m), 0);
    json_decref(item);
    dynamo_multi_free(m);
}

Test(dynamo, multi_refuses_bad_slot_counts_and_endpoints)
{
    char err[256];
    struct dynamo_config cfg = {.endpoint = endpoint, .access_key_id = "a", .secret_access_key = "b"};
    cr_assert_null(dynamo_multi_new(&cfg, 0, err, sizeof(err)));
    cr_assert(strstr(err, "1 to"), "reason: %s", err);
    cr_assert_null(dynamo_multi_new(&cfg, 100000, err, sizeof(err)));
    cfg.endpoint = "ftp://127.0.0.1:1";
    cr_assert_null(dynamo_multi_new(&cfg, 4, err, sizeof(err)));
    cr_assert(strstr(err, "http://"), "reason: %s", err);
}

/* No .timeout here: each test bounds itself with curl timeouts, and Criterion
 * 2.4's runner leaks under ASan when two suites in one binary set one. */
TestSuite(dynamo_network);

/* A listening socket on a free loopback port that nobody accepts on; url gets
 * its "http://127.0.0.1:PORT". */
static int listen_loopback(char *url, size_t urllen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, 4), 0);
    socklen_t len = sizeof(sa);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(url, urllen, "http://127.0.0.1:%d", ntohs(sa.sin_port));
    return fd;
}

Test(dynamo_network, closed_port_is_retryable)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", harness_free_port());
    struct dynamo_client *c = new_client(url, "AKID", "secret", 2000);
    struct dynamo_result r;
    cr_assert_eq(dynamo_describe_table(c, TABLE, &r), DYNAMO_RETRYABLE);
    cr_assert_eq(r.http_status, 0);
    cr_assert_str_eq(r.error_type, "TransportError");
    cr_assert_not_null(r.message);
    dynamo_result_cleanup(&r);
    dynamo_client_free(c);
}

Test(dynamo_network, multi_closed_port_is_retryable_for_every_request)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", harness_free_port());
    struct dynamo_multi *m = new_multi(url, "AKID", 4, 2000);
    enum dynamo_class results[4];
    json_t *item = order_item("0b7e4c8e-4444-4a7c-9d2e-000000000001");
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(dynamo_multi_put_item(m, TABLE, item, NULL, &results[i]), 0);
    json_decref(item);
    size_t taken = 0;
    drain_multi(m, results, 4, &taken);
    cr_assert_eq(taken, 4);
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(results[i], DYNAMO_RETRYABLE);
    dynamo_multi_free(m);
}

Test(dynamo_network, multi_wait_returns_when_a_caller_fd_is_readable)
{
    /* Nothing in flight, a pipe with a byte in it: the wait ends at once and says which. */
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", harness_free_port());
    struct dynamo_multi *m = new_multi(url, "AKID", 2, 2000);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(write(p[1], "x", 1), 1);
    int fds[2] = {p[0], p[1]};
    bool readable[2] = {false, true};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(dynamo_multi_wait(m, fds, readable, 1, 5000), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    cr_assert(readable[0], "the pipe was not reported readable");
    /* Half the 5 s timeout: a wait that missed the readable fd would last all of it. */
    cr_assert_lt(ms, 2500, "waited %ld ms with a readable fd (the wait's timeout is 5000 ms)", ms);
    close(p[0]);
    close(p[1]);
    dynamo_multi_free(m);
}

Test(dynamo_network, silent_server_times_out_as_retryable)
{
    /* A socket that listens but never answers: the kernel completes the connection, nobody replies. */
    char url[64];
    int fd = listen_loopback(url, sizeof(url));

    struct dynamo_client *c = new_client(url, "AKID", "secret", 300);
    struct dynamo_result r;
    cr_assert_eq(dynamo_describe_table(c, TABLE, &r), DYNAMO_RETRYABLE);
    cr_assert_str_eq(r.error_type, "Timeout");
    dynamo_result_cleanup(&r);
    dynamo_client_free(c);
    close(fd);
}

Test(dynamo_network, non_dynamodb_answer_is_classified)
{
    /* A tiny forked responder that is not DynamoDB: first a 5xx without a JSON
     * body, then a 200 with HTML (a captive proxy, a wrong endpoint). */
    char url[64];
    int fd = listen_loopback(url, sizeof(url));

    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* Never outlive the test, even if it fails before reaping us. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        alarm(20);
        const char *answers[] = {
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
            "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\n<html>",
        };
        for (int i = 0; i < 2; i++) {
            int cfd = accept(fd, NULL, NULL);
            if (cfd < 0)
                _exit(1);
            char buf[8192];
            ssize_t n = read(cfd, buf, sizeof(buf));
            (void)n;
            ssize_t w = write(cfd, answers[i], strlen(answers[i]));
            (void)w;
            close(cfd);
        }
        _exit(0);
    }
    struct dynamo_client *c = new_client(url, "AKID", "secret", 3000);
    struct dynamo_result r;
    enum dynamo_class cls1 = dynamo_describe_table(c, TABLE, &r);
    long status1 = r.http_status;
    char *type1 = xstrdup(r.error_type);
    dynamo_result_cleanup(&r);
    enum dynamo_class cls2 = dynamo_describe_table(c, TABLE, &r);
    dynamo_client_free(c);
    close(fd);
    int st;
    waitpid(pid, &st, 0);

    cr_assert_eq(cls1, DYNAMO_RETRYABLE);
    cr_assert_eq(status1, 503);
    cr_assert_str_eq(type1, "HttpError");
    cr_assert_eq(cls2, DYNAMO_RETRYABLE);
    cr_assert_str_eq(r.error_type, "InvalidResponse");
    free(type1);
    dynamo_result_cleanup(&r);
}
