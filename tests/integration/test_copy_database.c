/* shopd --copy-database on the real binary: a populated SQLite database into
 * a fresh target of the run's engine (PostgreSQL with SHOP_TEST_DATABASE),
 * then the refusal of a second copy and of a bad URL. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "shared/strbuf.h"
#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/shop.h"
#include "tests/support/shop_client.h"
#include "tests/support/test_database.h"

static char *dir;

static void setup(void)
{
    dir = harness_tempdir("copydb");
}

static void teardown(void)
{
    harness_rmrf(dir);
    free(dir);
}

TestSuite(copy_database, .init = setup, .fini = teardown, .timeout = 60);

/* Runs shopd with args in the suite's folder, capturing stdout and stderr. */
static struct harness_run run_shopd(const char *args)
{
    return harness_run_bin(dir, "SHOP_ENV=development", "shopd", args);
}

static char *copy_args(const char *from, const char *to)
{
    return xasprintf("--copy-database --from '%s' --to '%s'", from, to);
}

Test(copy_database, copies_every_table_with_ids_and_refuses_a_second_copy)
{
    char *from = xasprintf("sqlite:///%s/old.db", dir);
    char *to = test_database_url_named(dir, "new.db");
    /* An empty copy first: it makes the source's schema. */
    char *empty_target = xasprintf("sqlite:///%s/scratch.db", dir);
    char *args = copy_args(from, empty_target);
    struct harness_run r = run_shopd(args);
    cr_assert_eq(r.status, 0, "exit %d: %s%s", r.status, r.out, r.err);
    harness_run_free(&r);
    free(args);

    test_database_script(
        from, "BEGIN;"
              "INSERT INTO users (email, password_hash, created_at) VALUES "
              "('a@example.com', 'hash-a', 1), ('b@example.com', 'hash-b', 2),"
              " ('gone@example.com', 'hash-c', 3);"
              "DELETE FROM users WHERE email = 'gone@example.com';"
              "INSERT INTO products (name, price_cents, stock, created_at, updated_at) "
              "VALUES ('Lamp', 1500, 4, 1, 1);"
              "INSERT INTO sessions (token_hash, user_id, csrf, created_at, last_seen) "
              "VALUES ('tok', 1, 'csrf', 1, 1);"
              "INSERT INTO cart_items (user_id, product_id, quantity, added_at) VALUES (2, 1, 2, 5);"
              "INSERT INTO orders (id, user_id, user_email, total_cents, status, created_at, "
              "lease_owner, lease_until, attempts, last_error) VALUES ('o1', 1, 'a@example.com',"
              " 1500, 'pending', '2026-01-01T00:00:00Z', 'old-dispatcher', 99, 3, 'timeout');"
              "INSERT INTO order_lines VALUES ('o1', 1, 'Lamp', 1500, 1);"
              "COMMIT;");

    args = copy_args(from, to);
    r = run_shopd(args);
    cr_assert_eq(r.status, 0, "exit %d: %s%s", r.status, r.out, r.err);
    cr_expect(strstr(r.out, "users         2 rows copied"), "%s", r.out);
    cr_expect(strstr(r.out, "orders        1 rows copied"), "%s", r.out);
    cr_expect(strstr(r.out, "order_lines   1 rows copied"), "%s", r.out);
    harness_run_free(&r);

    char *hash = test_database_value(to, "SELECT password_hash FROM users WHERE id = 2", NULL);
    cr_expect_str_eq(hash ? hash : "(none)", "hash-b");
    free(hash);
    char *lease = test_database_value(to,
                                      "SELECT coalesce(lease_owner, '-') || lease_until || ':' || attempts "
                                      "FROM orders WHERE id = 'o1'",
                                      NULL);
    cr_expect_str_eq(lease ? lease : "(none)", "-0:3");
    free(lease);
    /* The id of the deleted user is never handed out again. */
    test_database_exec(
        to, "INSERT INTO users (email, password_hash, created_at) VALUES ('c@example.com', 'h', 9)", NULL);
    char *id = test_database_value(to, "SELECT id FROM users WHERE email = 'c@example.com'", NULL);
    cr_expect_str_eq(id ? id : "(none)", "4");
    free(id);

    r = run_shopd(args);
    cr_expect_eq(r.status, 2, "exit %d: %s%s", r.status, r.out, r.err);
    cr_expect(strstr(r.err, "is not empty"), "%s", r.err);
    harness_run_free(&r);
    free(args);
    free(empty_target);
    free(to);
    free(from);
}

Test(copy_database, a_bad_url_is_one_line_without_the_password)
{
    char *from = xasprintf("sqlite:///%s/old.db", dir);
    char *args = copy_args(from, "postgresql://shop:s3cret@127.0.0.1:1/shop");
    struct harness_run r = run_shopd(args);
    cr_expect_eq(r.status, 2, "exit %d: %s%s", r.status, r.out, r.err);
    cr_expect(!strstr(r.err, "s3cret") && !strstr(r.out, "s3cret"), "%s%s", r.out, r.err);
    cr_expect(strstr(r.err, "shopd: --to: "), "%s", r.err);
    harness_run_free(&r);
    free(args);
    free(from);
}

Test(copy_database, a_shop_used_through_shopd_goes_on_after_the_copy)
{
    char *source_file = xasprintf("%s/used.db", dir);
    char *from = xasprintf("sqlite:///%s", source_file);
    char *from_env = xasprintf("DATABASE_URL=%s", from);
    const char *source_env[] = {from_env, NULL};
    struct shop_server *shop = shop_start(source_env);
    struct http_client *c = http_client_new();
    shop_register_login(shop, c, "old-shopper@example.com", "an old password 1");
    struct http_resp *resp =
        shop_send_json(shop, c, "POST", "/cart/items", "{\"product_id\":2,\"quantity\":3}");
    cr_assert_eq(resp->status, 201, "%s", resp->body);
    http_resp_free(resp);
    http_client_free(c);
    shop_stop(shop);

    char *to = test_database_url_named(dir, "moved.db");
    char *args = copy_args(from, to);
    struct harness_run r = run_shopd(args);
    cr_assert_eq(r.status, 0, "exit %d: %s%s", r.status, r.out, r.err);
    harness_run_free(&r);

    /* On the new database: the old password logs in, the cart is there, and
       checkout takes the stock. */
    char *to_env = xasprintf("DATABASE_URL=%s", to);
    const char *target_env[] = {to_env, NULL};
    shop = shop_start(target_env);
    c = http_client_new();
    resp = shop_send_json(shop, c, "POST", "/login",
                          "{\"email\":\"old-shopper@example.com\",\"password\":\"an old password 1\"}");
    cr_assert_eq(resp->status, 200, "login after the copy: %s", resp->body);
    http_resp_free(resp);
    resp = http_json(c, "GET", shop_url(shop, "/cart"), NULL);
    cr_assert_eq(resp->status, 200);
    cr_assert_eq(json_integer_value(json_object_get(resp->json, "count")), 3, "%s", resp->body);
    http_resp_free(resp);
    resp = http_request(c, "POST", shop_url(shop, "/checkout"), NULL, NULL, NULL);
    cr_assert_eq(resp->status, 201, "checkout after the copy: %s", resp->body);
    http_resp_free(resp);
    resp = http_json(c, "GET", shop_url(shop, "/products/2"), NULL);
    cr_assert_eq(json_integer_value(json_object_get(resp->json, "stock")), 150 - 3, "%s", resp->body);
    http_resp_free(resp);
    http_client_free(c);
    shop_stop(shop);
    free(to_env);
    free(args);
    free(to);
    free(from_env);
    free(from);
    free(source_file);
}
