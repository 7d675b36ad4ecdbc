/* Honest health: when the database cannot take writes (disk full, another
 * process holding the write lock, read-only), /healthz answers 503 with the
 * reason, so the balancer steers traffic away, and a failing write answers 503
 * with Retry-After and a clear message instead of 500. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/time.h>
#include <unistd.h>

#include "shared/strbuf.h"
#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/shop.h"
#include "tests/support/test_database.h"

static struct shop_server *shop;
static struct harness_proc *holder;
static struct http_client *client;
static char *dir;
static bool mounted;

static void teardown(void)
{
    harness_stop(holder, 2000);
    holder = NULL;
    shop_stop(shop);
    shop = NULL;
    http_client_free(client);
    client = NULL;
    if (mounted)
        umount2(dir, MNT_DETACH);
    mounted = false;
    if (dir)
        harness_rmrf(dir);
    free(dir);
    dir = NULL;
}

TestSuite(db_health, .fini = teardown, .timeout = 60);

/* shopd with one worker (the failure record is per process) on a file database in dir. */
static void start_on_file(void)
{
    char *url = xasprintf("DATABASE_URL=sqlite:///%s/shop.db", dir);
    const char *env[] = {url, "SHOPD_WORKERS=1", NULL};
    shop = shop_start(env);
    free(url);
    client = http_client_new();
}

static struct http_resp *register_user(const char *email)
{
    char body[200];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"correct horse\"}", email);
    return http_json(client, "POST", shop_url(shop, "/register"), body);
}

static void expect_503(struct http_resp *r, const char *reason_part, const char *what)
{
    cr_expect_eq(r->status, 503, "%s: %ld %s", what, r->status, r->body);
    const char *retry = http_resp_header(r, "Retry-After");
    cr_expect(retry && atoi(retry) > 0, "%s: Retry-After %s", what, retry ? retry : "(none)");
    cr_expect(strstr(r->body, "\"message\"") && strstr(r->body, reason_part), "%s: %s", what, r->body);
}

Test(db_health, a_full_disk_is_503_and_unhealthy)
{
    TEST_DATABASE_ONLY_SQLITE("fills the filesystem of the database file");
    dir = harness_tempdir("dbfull");
    if (mount("tmpfs", dir, "tmpfs", 0, "size=2m") != 0)
        cr_skip_test("cannot mount a small tmpfs here (%m): the full-disk case needs one");
    mounted = true;
    start_on_file();
    struct http_resp *r = http_request(client, "GET", shop_url(shop, "/healthz"), NULL, NULL, NULL);
    cr_assert_eq(r->status, 200, "healthy at first: %s", r->body);
    http_resp_free(r);

    char *fill = xasprintf("%s/fill", dir);
    FILE *f = fopen(fill, "w");
    cr_assert_not_null(f);
    static char block[4096];
    while (fwrite(block, 1, sizeof(block), f) == sizeof(block) && fflush(f) == 0)
        ;
    fclose(f);

    r = register_user("full@example.com");
    expect_503(r, "full", "register on a full disk");
    http_resp_free(r);
    r = http_request(client, "GET", shop_url(shop, "/healthz"), NULL, NULL, NULL);
    expect_503(r, "full", "healthz on a full disk");
    http_resp_free(r);
    cr_expect_eq(harness_count_in_file(shop->log_path, "the disk holding the database is full"), 1,
                 "the cause is logged once");
    r = register_user("full2@example.com");
    http_resp_free(r);
    cr_expect_eq(harness_count_in_file(shop->log_path, "register failed"), 0,
                 "and not again for each request");

    unlink(fill);
    free(fill);
    long status = 0;
    for (int i = 0; i < 150 && status != 200; i++) {
        r = http_request(client, "GET", shop_url(shop, "/healthz"), NULL, NULL, NULL);
        status = r->status;
        http_resp_free(r);
        if (status != 200)
            harness_sleep_ms(100);
    }
    cr_expect_eq(status, 200, "healthy again once there is room");
    r = register_user("room@example.com");
    cr_expect_eq(r->status, 201, "%ld %s", r->status, r->body);
    http_resp_free(r);
}

Test(db_health, a_write_lock_held_elsewhere_is_503)
{
    TEST_DATABASE_ONLY_SQLITE("holds the file's write lock with another connection");
    dir = harness_tempdir("dblock");
    start_on_file();
    char *db = xasprintf("%s/shop.db", dir);
    /* Another process takes the write lock and keeps it. */
    const char *argv[] = {"/bin/sh", "-c", "(echo 'BEGIN IMMEDIATE;'; sleep 20) | sqlite3 \"$1\"",
                          "sh",      db,   NULL};
    holder = harness_start(argv, NULL, NULL, NULL);
    harness_sleep_ms(300);
    struct timeval t0, t1;
    gettimeofday(&t0, NULL);
    struct http_resp *r = http_request(client, "GET", shop_url(shop, "/healthz"), NULL, NULL, NULL);
    gettimeofday(&t1, NULL);
    expect_503(r, "locked", "healthz while locked");
    http_resp_free(r);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
    /* The probe gives up after 250 ms; waiting out the 5 s busy timeout of queries is the bug. */
    cr_expect_lt(ms, 3000,
                 "the health check waited %ld ms on the lock (the probe waits 250 ms, queries 5000 ms)", ms);

    r = register_user("locked@example.com");
    expect_503(r, "locked", "register while locked");
    http_resp_free(r);

    harness_stop(holder, 2000);
    holder = NULL;
    r = register_user("unlocked@example.com");
    cr_expect_eq(r->status, 201, "%ld %s", r->status, r->body);
    http_resp_free(r);
    r = http_request(client, "GET", shop_url(shop, "/healthz"), NULL, NULL, NULL);
    cr_expect_eq(r->status, 200, "%s", r->body);
    http_resp_free(r);
    free(db);
}
