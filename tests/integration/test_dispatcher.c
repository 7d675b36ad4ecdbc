/* The order dispatcher end to end: a real shopd (master, workers, dispatcher)
 * on a SQLite file, a real local DynamoDB (dynalite on a free loopback port,
 * kept in a LevelDB folder so that it survives a restart), the Orders table
 * made by `shopd --create-table`. Orders arrive with every field, exactly once,
 * through an outage, a SIGKILL of the dispatcher, and missing credentials; an
 * order DynamoDB refuses is parked as failed, shown with its error to admins
 * (/admin/orders) and as a plain notice to the shopper (/orders). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shared/dynamo.h"
#include "shared/strbuf.h"
#include "shared/xalloc.h"
#include "tests/support/delay_proxy.h"
#include "tests/support/harness.h"
#include "tests/support/services.h"
#include "tests/support/shop.h"
#include "tests/support/sigv4_front.h"
#include "tests/support/test_database.h"

#define TABLE "Orders"

static char *dir;          /* the test's folder: database and dynalite's data */
static char *database_url; /* the shop's database */
static int dyn_port;
static char endpoint[64];
static char *dyn_log;
static struct harness_proc *dynalite;
/* Every request of shopd goes through a front that checks its signature with
 * botocore (tests/support/sigv4_front.py) before dynalite, which checks none. */
static int front_port;
static char *front_log;
static struct harness_proc *front;
static struct dynamo_client *verify; /* reads back what the dispatcher wrote */
static struct shop_server *shop;
static struct delay_proxy *proxy; /* between shopd and dynalite, for tests that need one */
static struct shop_server *other; /* a second shopd on the same database */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* --- processes ------------------------------------------------------------- */

static void start_dynalite(void)
{
    char *data = xasprintf("%s/dynalite", dir);
    dynalite = services_start_dynalite(dir, dyn_port, data, dyn_log);
    free(data);
}

static void stop_dynalite(void)
{
    harness_stop(dynalite, 3000);
    dynalite = NULL;
}

/* `shopd --create-table` with the test's DynamoDB settings; returns the exit
 * status and leaves its output in out_log. */
static int create_table(const char *table, const char *key_id, const char *out_log)
{
    char *bin = harness_bin("shopd");
    char *e_endpoint = xasprintf("DYNAMODB_ENDPOINT=%s", endpoint);
    char *e_table = xasprintf("DYNAMODB_TABLE=%s", table);
    char *e_key = xasprintf("AWS_ACCESS_KEY_ID=%s", key_id);
    const char *const argv[] = {bin, "--create-table", NULL};
    const char *const env[] = {e_endpoint,
                               e_table,
                               e_key,
                               "AWS_SECRET_ACCESS_KEY=test",
                               "SHOP_ENV=test",
                               "SECRET_KEY=test-secret-key-0123456789abcdef",
                               "LOG_LEVEL=info",
                               NULL};
    struct harness_proc *p = harness_start(argv, env, dir, out_log);
    int st = harness_wait_exit(p, 30000);
    if (st == -1)
        harness_stop(p, 1000);
    free(bin);
    free(e_endpoint);
    free(e_table);
    free(e_key);
    return st;
}

static void start_shop(const char *key_id, const char *extra)
{
    char *e_db = xasprintf("DATABASE_URL=%s", database_url);
    char *e_endpoint = xasprintf("DYNAMODB_ENDPOINT=%s", endpoint);
    char *e_key = xasprintf("AWS_ACCESS_KEY_ID=%s", key_id);
    const char *const env[] = {e_db,
                               e_endpoint,
                               e_key,
                               "AWS_SECRET_ACCESS_KEY=test",
                               "DISPATCHER_ENABLED=1",
                               "DYNAMODB_TABLE=" TABLE,
                               extra ? extra : "LOG_LEVEL=info",
                               NULL};
    shop = shop_start(env);
    free(e_db);
    free(e_endpoint);
    free(e_key);
}

/* Keeps shopd's log (its folder goes away with it) and stops it. */
static void stop_shop(const char *name)
{
    if (!shop)
        return;
    char *keep = harness_output_path(name);
    FILE *in = fopen(shop->log_path, "r"), *out = fopen(keep, "a");
    char buf[8192];
    size_t n;
    while (in && out && (n = fread(buf, 1, sizeof(buf), in)) > 0)
        fwrite(buf, 1, n, out);
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    free(keep);
    shop_stop(shop);
    shop = NULL;
}

static void setup(void)
{
    dir = harness_tempdir("dispatcher");
    database_url = test_database_url(dir);
    dyn_port = harness_free_port();
    front_port = harness_free_port();
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", front_port);
    char *name = xasprintf("dispatcher-dynalite-%d.log", dyn_port);
    dyn_log = harness_output_path(name);
    free(name);
    name = xasprintf("dispatcher-sigv4-front-%d.log", dyn_port);
    front_log = harness_output_path(name);
    free(name);
    start_dynalite();
    const char *const keys[] = {"test:test", NULL};
    front = sigv4_front_start(front_port, dyn_port, keys, front_log);
    char *out = xasprintf("%s/create-table.log", dir);
    int st = create_table(TABLE, "test", out);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        harness_dump_log(out, 10);
        cr_assert_fail("shopd --create-table failed (status %d)", st);
    }
    free(out);
    char err[256];
    struct dynamo_config cfg = {.endpoint = endpoint, .access_key_id = "test", .secret_access_key = "test"};
    verify = dynamo_client_new(&cfg, err, sizeof(err));
    cr_assert_not_null(verify, "%s", err);
}

static void teardown(void)
{
    char name[64];
    snprintf(name, sizeof(name), "dispatcher-shopd-%d.log", dyn_port);
    stop_shop(name);
    shop_stop(other);
    other = NULL;
    delay_proxy_stop(proxy);
    proxy = NULL;
    harness_stop(front, 3000);
    front = NULL;
    /* Whatever the test did, no request of the shop had a signature that a
       separate SigV4 implementation disagrees with. */
    cr_expect_eq(sigv4_front_refused(front_log), 0, "the SigV4 front refused requests: see %s", front_log);
    free(front_log);
    stop_dynalite();
    dynamo_client_free(verify);
    verify = NULL;
    harness_rmrf(dir);
    free(dir);
    free(database_url);
    free(dyn_log);
}

TestSuite(dispatcher, .init = setup, .fini = teardown, .timeout = 80);

/* --- the shop's database, read and written beside shopd ------------------- */

static int64_t query_int(const char *sql, const char *arg)
{
    const char *params[] = {arg, NULL};
    char *v = test_database_value(database_url, sql, params);
    cr_assert_not_null(v, "no value: %s", sql);
    int64_t n = strtoll(v, NULL, 10);
    free(v);
    return n;
}

/* Column col of order id (caller frees); "(null)" for NULL. */
static char *order_column(const char *id, const char *col)
{
    cr_assert_eq(query_int("SELECT count(*) FROM orders WHERE id = $1", id), 1, "no order %s", id);
    char *sql = xasprintf("SELECT %s FROM orders WHERE id = $1", col);
    const char *params[] = {id, NULL};
    char *v = test_database_value(database_url, sql, params);
    free(sql);
    return v ? v : xstrdup("(null)");
}

static bool wait_status(const char *id, const char *status, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    do {
        char *s = order_column(id, "status");
        bool ok = strcmp(s, status) == 0;
        free(s);
        if (ok)
            return true;
        harness_sleep_ms(10);
    } while (now_ms() < deadline);
    return false;
}

static bool wait_sent_count(int64_t n, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    do {
        if (query_int("SELECT count(*) FROM orders WHERE status = 'sent'", NULL) >= n)
            return true;
        harness_sleep_ms(20);
    } while (now_ms() < deadline);
    return false;
}

/* A user made straight in the database, for tests that need no login. */
static int64_t insert_user(const char *email)
{
    const char *params[] = {email, NULL};
    cr_assert_eq(
        test_database_exec(
            database_url, "INSERT INTO users (email, password_hash, created_at) VALUES ($1, 'x', 0)", params),
        1);
    return query_int("SELECT id FROM users WHERE email = $1", email);
}

/* The id insert_orders gives the i-th order of user_id. */
static void order_id(int64_t user_id, int i, char out[40])
{
    snprintf(out, 40, "00000000-0000-4000-8000-%012d", i + 1000 * (int)user_id);
}

/* n pending orders written as checkout writes them (one transaction), with
 * one line whose name has name_len characters; ids (n of them) are filled.
 * The values are the test's own (ids, 'n' repeated), so they are written as
 * literals into one script. */
static void insert_orders(int64_t user_id, int n, size_t name_len, char (*ids)[40])
{
    char *name = xmalloc(name_len + 1);
    memset(name, 'n', name_len);
    name[name_len] = '\0';
    struct strbuf sql = {0};
    strbuf_adds(&sql, "BEGIN;\n");
    for (int i = 0; i < n; i++) {
        order_id(user_id, i, ids[i]);
        strbuf_addf(&sql,
                    "INSERT INTO orders (id, user_id, user_email, total_cents, created_at)"
                    " SELECT '%s', id, email, 150, '2026-11-26T21:40:00.000Z' FROM users WHERE id = %lld;\n"
                    "INSERT INTO order_lines VALUES ('%s', 1, '%s', 50, 3);\n",
                    ids[i], (long long)user_id, ids[i], name);
    }
    strbuf_adds(&sql, "COMMIT;\n");
    test_database_script(database_url, sql.p);
    strbuf_free(&sql);
    /* One query: the dispatcher starts on the orders at once, and a check per
       order (a connection each on PostgreSQL) would let it send them all before
       a test that wants to interrupt it begins. */
    char user[24];
    snprintf(user, sizeof(user), "%lld", (long long)user_id);
    cr_assert_geq(query_int("SELECT count(*) FROM orders WHERE user_id = CAST($1 AS BIGINT)", user), n);
    free(name);
}

/* --- shopd over HTTP ------------------------------------------------------- */

static struct http_resp *call(struct http_client *c, const char *method, const char *path, const char *body)
{
    return http_json(c, method, shop_url(shop, path), body);
}

/* Adds the (product, quantity) pairs to the cart and checks out; returns the
 * order id (caller frees). */
static char *place_order(struct http_client *c, const int64_t (*lines)[2], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char body[96];
        snprintf(body, sizeof(body), "{\"product_id\":%lld,\"quantity\":%lld}", (long long)lines[i][0],
                 (long long)lines[i][1]);
        struct http_resp *r = call(c, "POST", "/cart/items", body);
        cr_assert_eq(r->status, 201, "add to cart: %ld %s", r->status, r->body);
        http_resp_free(r);
    }
    struct http_resp *r = call(c, "POST", "/checkout", NULL);
    cr_assert_eq(r->status, 201, "checkout: %ld %s", r->status, r->body);
    const char *id = json_string_value(json_object_get(r->json, "order_id"));
    cr_assert_not_null(id);
    cr_assert_str_eq(json_string_value(json_object_get(r->json, "status")), "pending");
    char *out = xstrdup(id);
    http_resp_free(r);
    return out;
}

static const int64_t one_apple[][2] = {{1, 1}};

/* --- DynamoDB and the log -------------------------------------------------- */

static json_t *get_item(const char *id)
{
    json_t *key = json_pack("{s:{s:s}}", "order_id", "S", id);
    struct dynamo_result r;
    cr_assert_eq(dynamo_get_item(verify, TABLE, key, &r), DYNAMO_OK, "%s", r.message ? r.message : "");
    json_decref(key);
    json_t *item = json_incref(json_object_get(r.body, "Item"));
    dynamo_result_cleanup(&r);
    return item;
}

/* Every order id in the table, each once (a Scan page holds them all here). */
static json_t *scan_ids(void)
{
    struct dynamo_result r;
    cr_assert_eq(dynamo_scan(verify, TABLE, &r), DYNAMO_OK, "%s", r.message ? r.message : "");
    cr_assert_null(json_object_get(r.body, "LastEvaluatedKey"), "more than one Scan page");
    json_t *ids = json_object();
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(r.body, "Items"), i, item)
    {
        const char *id = json_string_value(json_object_get(json_object_get(item, "order_id"), "S"));
        cr_assert_not_null(id);
        cr_assert_null(json_object_get(ids, id), "order %s twice in the table", id);
        json_object_set_new(ids, id, json_true());
    }
    cr_assert_eq(json_integer_value(json_object_get(r.body, "Count")), (json_int_t)json_object_size(ids));
    dynamo_result_cleanup(&r);
    return ids;
}

/* Lines of shopd's log that contain every one of the NULL-terminated needles. */
static int log_count_in(const char *path, const char *needle, const char *also)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, needle) && (!also || strstr(line, also)))
            n++;
    fclose(f);
    return n;
}

static int log_count(const char *needle, const char *also)
{
    return log_count_in(shop->log_path, needle, also);
}

/* Each order was written by exactly one successful PutItem: a repeated send
 * can only have met the condition ("already in DynamoDB"). */
static void assert_written_once(char (*ids)[40], int n)
{
    for (int i = 0; i < n; i++) {
        int sent = log_count(ids[i], "sent to DynamoDB");
        int again = log_count(ids[i], "already in DynamoDB");
        cr_assert_leq(sent, 1, "order %s written %d times", ids[i], sent);
        cr_assert_geq(sent + again, 1, "order %s never reported delivered", ids[i]);
    }
}

static pid_t find_dispatcher(pid_t master)
{
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    struct dirent *e;
    pid_t found = 0;
    while (!found && (e = readdir(d)) != NULL) {
        char path[300], comm[64] = "";
        int pid = atoi(e->d_name), ppid = 0;
        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        /* "pid (comm) state ppid ...": comm has no spaces or parentheses here. */
        if (fscanf(f, "%*d (%63[^)]) %*c %d", comm, &ppid) == 2 && ppid == master &&
            strcmp(comm, "shopd-dispatch") == 0)
            found = pid;
        fclose(f);
    }
    closedir(d);
    return found;
}

static pid_t wait_dispatcher(pid_t master, pid_t not_this, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    do {
        pid_t p = find_dispatcher(master);
        if (p > 0 && p != not_this)
            return p;
        harness_sleep_ms(10);
    } while (now_ms() < deadline);
    return 0;
}

/* --- tests ----------------------------------------------------------------- */

static const char *attr(json_t *m, const char *name, const char *type)
{
    json_t *a = json_object_get(m, name);
    cr_assert(json_is_object(a), "attribute %s missing", name);
    const char *v = json_string_value(json_object_get(a, type));
    cr_assert_not_null(v, "attribute %s is not of type %s", name, type);
    return v;
}

Test(dispatcher, orders_arrive_with_every_field_soon_after_checkout)
{
    start_shop("test", NULL);
    struct http_client *c = http_client_new();
    shop_register_login(shop, c, "fields@example.com", "correct horse battery");
    int64_t user_id = query_int("SELECT id FROM users WHERE email = $1", "fields@example.com");

    /* Apple 0.50 x 2, Strawberries 3.50 x 1, Lemon 0.40 x 3: 1.00 + 3.50 + 1.20 = 5.70 */
    static const int64_t lines[][2] = {{1, 2}, {4, 1}, {8, 3}};
    char *id = place_order(c, lines, 3);
    cr_assert(wait_status(id, "sent", 5000), "order not sent");

    json_t *item = get_item(id);
    cr_assert_not_null(item, "order %s not in DynamoDB", id);
    cr_assert_eq(json_object_size(item), 8);
    cr_assert_str_eq(attr(item, "order_id", "S"), id);
    char uid[24];
    snprintf(uid, sizeof(uid), "%lld", (long long)user_id);
    cr_assert_str_eq(attr(item, "user_id", "N"), uid);
    cr_assert_str_eq(attr(item, "user_email", "S"), "fields@example.com");
    cr_assert_eq(strtod(attr(item, "total", "N"), NULL), 5.70);
    cr_assert_str_eq(attr(item, "total_cents", "N"), "570");
    cr_assert_str_eq(attr(item, "currency", "S"), "USD");
    char *created = order_column(id, "created_at");
    cr_assert_str_eq(attr(item, "created_at", "S"), created);
    struct tm tm = {0};
    const char *rest = strptime(created, "%Y-%m-%dT%H:%M:%S", &tm);
    cr_assert(rest && rest[strlen(rest) - 1] == 'Z', "created_at %s is not RFC 3339 UTC", created);
    free(created);

    json_t *items = json_object_get(json_object_get(item, "items"), "L");
    cr_assert_eq(json_array_size(items), 3);
    static const struct {
        const char *product_id, *name, *quantity;
        double unit_price;
    } want[] = {{"1", "Apple", "2", 0.50}, {"4", "Strawberries", "1", 3.50}, {"8", "Lemon", "3", 0.40}};
    for (size_t i = 0; i < 3; i++) {
        json_t *m = json_object_get(json_array_get(items, i), "M");
        cr_assert_eq(json_object_size(m), 4);
        cr_assert_str_eq(attr(m, "product_id", "N"), want[i].product_id);
        cr_assert_str_eq(attr(m, "name", "S"), want[i].name);
        cr_assert_str_eq(attr(m, "quantity", "N"), want[i].quantity);
        cr_assert_eq(strtod(attr(m, "unit_price", "N"), NULL), want[i].unit_price);
    }
    json_decref(item);

    /* /orders says sent, with no error. */
    struct http_resp *r = call(c, "GET", "/orders", NULL);
    cr_assert_eq(r->status, 200);
    json_t *o = json_array_get(r->json, 0);
    cr_assert_str_eq(json_string_value(json_object_get(o, "order_id")), id);
    cr_assert_str_eq(json_string_value(json_object_get(o, "status")), "sent");
    cr_assert(json_is_null(json_object_get(o, "error")));
    http_resp_free(r);
    free(id);

    /* Woken by the checkout, not found by the 1 s poll: each order goes out at once. */
    for (int i = 0; i < 3; i++) {
        char *next = place_order(c, one_apple, 1);
        uint64_t t0 = now_ms();
        cr_assert(wait_status(next, "sent", 5000));
        uint64_t took = now_ms() - t0;
        cr_assert_lt(took, 600, "order %d sent %llu ms after checkout", i, (unsigned long long)took);
        free(next);
    }
    json_t *ids = scan_ids();
    cr_assert_eq(json_object_size(ids), 4);
    json_decref(ids);
    cr_assert_eq(log_count("dispatcher started", NULL), 1);
    http_client_free(c);
}

Test(dispatcher, an_outage_delays_orders_but_loses_or_doubles_none)
{
    start_shop("test", NULL);
    struct http_client *c = http_client_new();
    shop_register_login(shop, c, "outage@example.com", "correct horse battery");
    enum { N = 6 };
    char ids[N][40];
    char *first = place_order(c, one_apple, 1);
    snprintf(ids[0], sizeof(ids[0]), "%s", first);
    free(first);
    cr_assert(wait_status(ids[0], "sent", 5000));

    /* DynamoDB unreachable: the front goes too, so the dispatcher meets a refused connection. */
    harness_stop(front, 3000);
    front = NULL;
    stop_dynalite();
    for (int i = 1; i < N; i++) {
        char *id = place_order(c, one_apple, 1);
        snprintf(ids[i], sizeof(ids[i]), "%s", id);
        free(id);
    }
    harness_sleep_ms(1500);
    for (int i = 1; i < N; i++) {
        char *s = order_column(ids[i], "status");
        cr_assert_str_eq(s, "pending", "order %d: %s while DynamoDB is down", i, s);
        free(s);
    }
    cr_assert_geq(query_int("SELECT max(attempts) FROM orders", NULL), 1, "no attempt was made");
    char *err = order_column(ids[1], "last_error");
    cr_assert(strstr(err, "TransportError"), "last_error: %s", err);
    free(err);
    cr_assert_geq(log_count("not sent (attempt", "TransportError"), 1);

    start_dynalite();
    const char *const keys[] = {"test:test", NULL};
    front = sigv4_front_start(front_port, dyn_port, keys, front_log);
    cr_assert(wait_sent_count(N, 40000), "not every order arrived after the outage");
    json_t *in_table = scan_ids();
    cr_assert_eq(json_object_size(in_table), N);
    for (int i = 0; i < N; i++) {
        cr_assert_not_null(json_object_get(in_table, ids[i]), "order %s missing", ids[i]);
        char *e = order_column(ids[i], "last_error");
        cr_assert_str_eq(e, "(null)", "a delivered order keeps no error");
        free(e);
    }
    json_decref(in_table);
    assert_written_once(ids, N);
    cr_assert_geq(log_count("accepts orders again", NULL), 1);
    http_client_free(c);
}

Test(dispatcher, sigkill_of_the_dispatcher_mid_flow_loses_or_doubles_none)
{
    start_shop("test", NULL);
    pid_t master = harness_pid(shop->proc);
    pid_t victim = wait_dispatcher(master, 0, 5000);
    cr_assert_gt(victim, 0, "no dispatcher child found");
    int64_t user = insert_user("kill@example.com");
    enum { N = 300 };
    static char ids[N][40];
    insert_orders(user, N, 20, ids);

    /* Kill it once it is well into the backlog. */
    uint64_t deadline = now_ms() + 10000;
    int64_t sent;
    while ((sent = query_int("SELECT count(*) FROM orders WHERE status = 'sent'", NULL)) < 20 &&
           now_ms() < deadline)
        harness_sleep_ms(2);
    cr_assert_eq(kill(victim, SIGKILL), 0);
    cr_assert_geq(sent, 20, "the dispatcher did not start sending");
    cr_assert_lt(sent, N, "everything was sent before the kill; nothing was tested");
    int64_t leased =
        query_int("SELECT count(*) FROM orders WHERE status = 'pending' AND lease_owner IS NOT NULL", NULL);

    pid_t successor = wait_dispatcher(master, victim, 10000);
    cr_assert_gt(successor, 0, "the master did not replace the dispatcher");
    cr_assert(wait_sent_count(N, 30000), "not every order arrived after the kill");
    json_t *in_table = scan_ids();
    cr_assert_eq(json_object_size(in_table), N);
    for (int i = 0; i < N; i++)
        cr_assert_not_null(json_object_get(in_table, ids[i]), "order %s missing", ids[i]);
    json_decref(in_table);
    assert_written_once(ids, N);
    cr_assert_eq(log_count("killed by signal 9", NULL), 1);
    if (leased > 0)
        cr_assert_geq(log_count("which is gone", NULL), 1,
                      "the dead dispatcher's leases were not taken over");
    cr_log_info("SIGKILL after %lld of %d orders, %lld leased by the victim", (long long)sent, N,
                (long long)leased);
}

Test(dispatcher, sigterm_finishes_the_send_in_flight_and_gives_the_rest_back)
{
    start_shop("test", NULL);
    pid_t master = harness_pid(shop->proc);
    pid_t first = wait_dispatcher(master, 0, 5000);
    cr_assert_gt(first, 0);
    int64_t user = insert_user("term@example.com");
    enum { N = 200 };
    static char ids[N][40];
    insert_orders(user, N, 20, ids);
    uint64_t deadline = now_ms() + 10000;
    while (query_int("SELECT count(*) FROM orders WHERE status = 'sent'", NULL) < 10 && now_ms() < deadline)
        harness_sleep_ms(2);
    cr_assert_eq(kill(first, SIGTERM), 0);
    /* It stops by itself with status 0 (the master reports it and starts another). */
    pid_t next = wait_dispatcher(master, first, 10000);
    cr_assert_gt(next, 0);
    cr_assert(wait_sent_count(N, 30000), "not every order arrived after SIGTERM");
    cr_assert_eq(log_count("exited with status 0", NULL), 1);
    cr_assert_eq(log_count("killed by signal", NULL), 0);
    cr_assert_eq(log_count("dispatcher stopped", NULL), 1);
    /* What it had claimed but not sent went back at once, not after the lease. */
    cr_assert_eq(log_count("which is gone", NULL), 0);
    /* Nothing was interrupted mid-send, so nothing had to be found "already there". */
    cr_assert_eq(log_count("already in DynamoDB", NULL), 0);
    assert_written_once(ids, N);
}

Test(dispatcher, an_order_dynamodb_refuses_is_parked_as_failed_and_shown)
{
    start_shop("test", NULL);
    struct http_client *c = http_client_new();
    shop_register_login(shop, c, "refused@example.com", "correct horse battery");
    int64_t user = query_int("SELECT id FROM users WHERE email = $1", "refused@example.com");
    /* An order whose item is over DynamoDB's 400 KB item limit (a line name
     * of 410 000 characters): DynamoDB and dynalite alike answer 400
     * ValidationException, which no retry can fix. */
    char ids[1][40];
    insert_orders(user, 1, 410000, ids);
    cr_assert(wait_status(ids[0], "failed", 10000), "oversized order not parked");
    char *err = order_column(ids[0], "last_error");
    cr_assert(strstr(err, "ValidationException"), "last_error: %s", err);
    cr_assert(strstr(err, "Item size"), "last_error: %s", err);
    free(err);
    cr_assert_eq(query_int("SELECT attempts FROM orders WHERE id = $1", ids[0]), 1,
                 "parked at the first answer");

    struct http_resp *r = call(c, "GET", "/orders", NULL);
    cr_assert_eq(r->status, 200);
    json_t *o = json_array_get(r->json, 0);
    cr_assert_str_eq(json_string_value(json_object_get(o, "order_id")), ids[0]);
    cr_assert_str_eq(json_string_value(json_object_get(o, "status")), "failed");
    /* The shopper reads a plain notice; DynamoDB's text is for the admins. */
    cr_assert(json_is_null(json_object_get(o, "error")), "a shopper must not read the stored error");
    cr_assert_str_eq(json_string_value(json_object_get(o, "notice")),
                     "We could not send your order yet; we are on it.");
    http_resp_free(r);
    struct http_client *admin = http_client_new();
    shop_register_login(shop, admin, "admin@example.com", "correct horse battery");
    r = call(admin, "GET", "/admin/orders", NULL);
    cr_assert_eq(r->status, 200);
    const char *shown = json_string_value(json_object_get(json_array_get(r->json, 0), "error"));
    cr_assert(shown && strstr(shown, "ValidationException"), "/admin/orders error: %s",
              shown ? shown : "null");
    http_resp_free(r);
    http_client_free(admin);
    cr_assert_eq(log_count(ids[0], "failed and is parked"), 1);

    /* The parked order blocks nothing: the next one goes out, and the parked one stays out of the table. */
    char *next = place_order(c, one_apple, 1);
    cr_assert(wait_status(next, "sent", 5000));
    json_t *item = get_item(ids[0]);
    cr_assert_null(item);
    harness_sleep_ms(1200);
    cr_assert_eq(log_count(ids[0], "failed and is parked"), 1, "a parked order is not tried again");
    free(next);
    http_client_free(c);
}

Test(dispatcher, missing_credentials_keep_orders_pending_until_shopd_has_them)
{
    start_shop("", NULL);
    int64_t user = insert_user("nocreds@example.com");
    char ids[3][40];
    insert_orders(user, 3, 10, ids);
    /* Several poll rounds pass; the log says why once, not per order or round. */
    harness_sleep_ms(2500);
    for (int i = 0; i < 3; i++) {
        char *s = order_column(ids[i], "status");
        cr_assert_str_eq(s, "pending");
        free(s);
    }
    cr_assert_eq(query_int("SELECT max(attempts) FROM orders", NULL), 0);
    cr_assert_eq(log_count("AWS credentials missing", NULL), 1);
    cr_assert_eq(log_count("AWS credentials missing", "AWS_ACCESS_KEY_ID"), 1);
    char name[64];
    snprintf(name, sizeof(name), "dispatcher-shopd-%d-nocreds.log", dyn_port);
    stop_shop(name);

    start_shop("test", NULL);
    cr_assert(wait_sent_count(3, 10000), "orders not sent once credentials are there");
    json_t *in_table = scan_ids();
    cr_assert_eq(json_object_size(in_table), 3);
    json_decref(in_table);
    cr_assert_eq(log_count("AWS credentials missing", NULL), 0);
}

Test(dispatcher, a_bad_table_setting_keeps_orders_pending_and_is_reported)
{
    char *out = xasprintf("%s/bad-table.log", dir);
    int st = create_table("x", "test", out);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "--create-table with table x: status %d", st);
    FILE *f = fopen(out, "r");
    char line[512] = "";
    cr_assert_not_null(fgets(line, sizeof(line), f));
    fclose(f);
    cr_assert(strstr(line, "DYNAMODB_TABLE=x") && strstr(line, "3 to 255"), "reason: %s", line);
    free(out);

    start_shop("test", "DYNAMODB_TABLE=x");
    int64_t user = insert_user("badtable@example.com");
    char ids[1][40];
    insert_orders(user, 1, 10, ids);
    harness_sleep_ms(1500);
    char *s = order_column(ids[0], "status");
    cr_assert_str_eq(s, "pending");
    free(s);
    cr_assert_eq(log_count("DYNAMODB_TABLE=x", NULL), 1);
}

Test(dispatcher, throughput_of_a_backlog)
{
    start_shop("test", "LOG_LEVEL=warn");
    int64_t user = insert_user("bench@example.com");
    enum { N = 300 };
    static char ids[N][40];
    insert_orders(user, N, 20, ids);
    /* Timed from the first delivery, so the poll delay does not count. */
    uint64_t deadline = now_ms() + 10000;
    while (query_int("SELECT count(*) FROM orders WHERE status = 'sent'", NULL) == 0 && now_ms() < deadline)
        harness_sleep_ms(1);
    uint64_t t0 = now_ms();
    cr_assert(wait_sent_count(N, 60000), "backlog not delivered");
    double secs = (double)(now_ms() - t0) / 1000.0;
    double rate = (N - 1) / (secs > 0.001 ? secs : 0.001);
    /* The rate is measured and judged by tools/bench-dispatcher.sh (make bench),
     * with DynamoDB's latency; here the backlog must arrive, each order once. */
    cr_log_info("dispatcher throughput: %.0f orders/s", rate);
    json_t *in_table = scan_ids();
    cr_assert_eq(json_object_size(in_table), N);
    for (int i = 0; i < N; i++)
        cr_assert_not_null(json_object_get(in_table, ids[i]), "order %s missing", ids[i]);
    json_decref(in_table);
    cr_assert_eq(query_int("SELECT count(*) FROM orders WHERE status = 'sent'", NULL), N);
}

/* --- several orders in flight ---------------------------------------------- */

/* Points shopd's endpoint at a port where start_proxy will put a delay_proxy
 * in front of dynalite (verify keeps reading dynalite directly). */
static int use_proxy(void)
{
    int port = harness_free_port();
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", port);
    return port;
}

static void start_proxy(int port, struct delay_proxy_options o)
{
    o.upstream_port = front_port;
    proxy = delay_proxy_start(port, &o);
}

static json_t *proxy_stats(void)
{
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/__proxy/stats", delay_proxy_port(proxy));
    struct http_client *c = http_client_new();
    struct http_resp *r = http_json(c, "GET", url, NULL);
    cr_assert_eq(r->status, 200, "proxy stats: %ld", r->status);
    json_t *stats = json_incref(r->json);
    cr_assert(json_is_object(stats));
    http_resp_free(r);
    http_client_free(c);
    return stats;
}

static long stat_of(json_t *stats, const char *name)
{
    json_t *v = json_object_get(stats, name);
    cr_assert(json_is_integer(v), "proxy stats without %s", name);
    return (long)json_integer_value(v);
}

Test(dispatcher, a_slow_order_does_not_hold_up_the_others)
{
    /* The oldest order of the backlog takes DynamoDB 3 s to answer. */
    enum { N = 40 };
    static char ids[N][40];
    int port = use_proxy();
    start_shop("test", NULL);
    int64_t user = insert_user("slow@example.com");
    char slow[40];
    order_id(user, 0, slow);
    start_proxy(port, (struct delay_proxy_options){.delay_ms = 5, .slow_match = slow, .slow_ms = 3000});
    insert_orders(user, N, 20, ids);
    cr_assert_str_eq(ids[0], slow);
    uint64_t t0 = now_ms();
    cr_assert(wait_sent_count(N - 1, 20000), "the others were not delivered");
    uint64_t took = now_ms() - t0;
    char *s = order_column(ids[0], "status");
    cr_assert_str_eq(s, "pending", "the other %d orders waited for the slow one (%llu ms)", N - 1,
                     (unsigned long long)took);
    free(s);
    cr_assert(wait_status(ids[0], "sent", 10000), "the slow order never arrived");
    json_t *stats = proxy_stats();
    cr_assert_eq(stat_of(stats, "slowed"), 1, "the slow order was sent more than once");
    json_decref(stats);
    json_t *in_table = scan_ids();
    cr_assert_eq(json_object_size(in_table), N);
    json_decref(in_table);
    assert_written_once(ids, N);
}

Test(dispatcher, a_failing_order_does_not_hold_up_the_others)
{
    /* DynamoDB answers 503 to one order, every time. */
    enum { N = 40 };
    static char ids[N][40];
    int port = use_proxy();
    start_shop("test", NULL);
    int64_t user = insert_user("failing@example.com");
    char failing[40];
    order_id(user, 0, failing);
    start_proxy(port, (struct delay_proxy_options){.delay_ms = 5, .fail_match = failing, .fail_status = 503});
    insert_orders(user, N, 20, ids);
    cr_assert_str_eq(ids[0], failing);
    cr_assert(wait_sent_count(N - 1, 20000), "the others were not delivered");
    char *s = order_column(ids[0], "status");
    cr_assert_str_eq(s, "pending", "a retryable error does not park an order");
    free(s);
    cr_assert_geq(query_int("SELECT attempts FROM orders WHERE id = $1", ids[0]), 1);
    char *err = order_column(ids[0], "last_error");
    cr_assert(strstr(err, "ServiceUnavailable"), "last_error: %s", err);
    free(err);
    json_t *in_table = scan_ids();
    cr_assert_eq(json_object_size(in_table), N - 1);
    cr_assert_null(json_object_get(in_table, ids[0]));
    json_decref(in_table);
    assert_written_once(ids + 1, N - 1);
}

Test(dispatcher, the_in_flight_bound_holds_over_kept_alive_connections)
{
    enum { N = 120 };
    static char ids[N][40];
    /* 20 ms a request: a dispatcher that can keep 4 in flight does. */
    start_proxy(use_proxy(), (struct delay_proxy_options){.delay_ms = 20});
    start_shop("test", "DISPATCHER_CONCURRENCY=4");
    int64_t user = insert_user("bound@example.com");
    insert_orders(user, N, 20, ids);
    cr_assert(wait_sent_count(N, 30000), "backlog not delivered");
    json_t *stats = proxy_stats();
    char *text = json_dumps(stats, JSON_COMPACT);
    cr_log_info("proxy: %s", text);
    free(text);
    cr_assert_eq(stat_of(stats, "max_in_flight"), 4, "not 4 requests in flight at most");
    cr_assert_leq(stat_of(stats, "max_open"), 4, "more connections open than requests in flight");
    cr_assert_leq(stat_of(stats, "connections"), 4, "connections were not kept alive");
    cr_assert_geq(stat_of(stats, "requests"), N);
    json_decref(stats);
    json_t *in_table = scan_ids();
    cr_assert_eq(json_object_size(in_table), N);
    json_decref(in_table);
    assert_written_once(ids, N);
    cr_assert_eq(log_count("dispatcher started", "4 in flight at most"), 1);
}

Test(dispatcher, sigterm_waits_for_every_send_in_flight)
{
    /* 8 sends in flight, each answered after 400 ms: SIGTERM comes while
     * they wait. Each one is recorded by the dispatcher that sent it, so its
     * successor never finds an order already written. */
    enum { N = 60 };
    static char ids[N][40];
    start_proxy(use_proxy(), (struct delay_proxy_options){.delay_ms = 400});
    start_shop("test", "DISPATCHER_CONCURRENCY=8");
    pid_t master = harness_pid(shop->proc);
    pid_t first = wait_dispatcher(master, 0, 5000);
    cr_assert_gt(first, 0);
    int64_t user = insert_user("inflight@example.com");
    insert_orders(user, N, 20, ids);
    uint64_t deadline = now_ms() + 10000;
    json_t *stats = NULL;
    while (now_ms() < deadline) {
        json_decref(stats);
        stats = proxy_stats();
        if (stat_of(stats, "in_flight") == 8)
            break;
        harness_sleep_ms(20);
    }
    cr_assert_eq(stat_of(stats, "in_flight"), 8, "the sends were not in flight");
    json_decref(stats);
    uint64_t t0 = now_ms();
    cr_assert_eq(kill(first, SIGTERM), 0);
    pid_t next = wait_dispatcher(master, first, 10000);
    cr_assert_gt(next, 0);
    uint64_t took = now_ms() - t0;
    cr_assert(wait_sent_count(N, 30000), "not every order arrived after SIGTERM");
    cr_assert_eq(log_count("exited with status 0", NULL), 1);
    cr_assert_eq(log_count("already in DynamoDB", NULL), 0, "a send in flight was abandoned at SIGTERM");
    cr_assert_eq(log_count("which is gone", NULL), 0, "claimed orders were not given back at SIGTERM");
    assert_written_once(ids, N);
    cr_log_info("the dispatcher stopped %llu ms after SIGTERM", (unsigned long long)took);
}

Test(dispatcher, two_dispatchers_share_a_backlog_and_send_each_order_once)
{
    /* Two shopd on one database, each with 4 sends in flight of 20 ms: both
     * take part, no order is claimed by both, none is written twice. */
    enum { N = 400 };
    static char ids[N][40];
    start_proxy(use_proxy(), (struct delay_proxy_options){.delay_ms = 20});
    start_shop("test", "DISPATCHER_CONCURRENCY=4");
    other = shop;
    start_shop("test", "DISPATCHER_CONCURRENCY=4");
    const struct shop_server *first = other, *second = shop;
    int64_t user = insert_user("shared@example.com");
    insert_orders(user, N, 20, ids);
    cr_assert(wait_sent_count(N, 40000), "backlog not delivered");
    const char *first_log = first->log_path;
    int by_first = log_count_in(first_log, "sent to DynamoDB", NULL);
    int by_second = log_count_in(second->log_path, "sent to DynamoDB", NULL);
    for (int i = 0; i < N; i++) {
        int sent = log_count_in(first_log, ids[i], "sent to DynamoDB") +
                   log_count_in(second->log_path, ids[i], "sent to DynamoDB");
        int again = log_count_in(first_log, ids[i], "already in DynamoDB") +
                    log_count_in(second->log_path, ids[i], "already in DynamoDB");
        cr_assert_eq(sent, 1, "order %s written %d times", ids[i], sent);
        cr_assert_eq(again, 0, "order %s was sent by both dispatchers", ids[i]);
    }
    cr_log_info("first dispatcher sent %d, second %d", by_first, by_second);
    cr_assert_eq(by_first + by_second, N);
    cr_assert(by_first > 0 && by_second > 0, "one dispatcher sent everything (%d, %d): nothing shared",
              by_first, by_second);
    json_t *in_table = scan_ids();
    cr_assert_eq(json_object_size(in_table), N);
    json_decref(in_table);
    json_t *stats = proxy_stats();
    cr_assert_eq(stat_of(stats, "requests"), N, "an order was sent more than once");
    cr_assert_leq(stat_of(stats, "max_in_flight"), 8);
    json_decref(stats);
}

Test(dispatcher, a_bad_concurrency_setting_is_refused)
{
    char *bin = harness_bin("shopd");
    char *out = xasprintf("%s/concurrency.log", dir);
    static const char *const values[] = {"0", "257", "many"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char *e = xasprintf("DISPATCHER_CONCURRENCY=%s", values[i]);
        const char *const argv[] = {bin, "--check", NULL};
        const char *const env[] = {e, "SHOP_ENV=test", "SECRET_KEY=test-secret-key-0123456789abcdef", NULL};
        struct harness_proc *p = harness_start(argv, env, dir, out);
        int st = harness_wait_exit(p, 10000);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "DISPATCHER_CONCURRENCY=%s accepted", values[i]);
        free(e);
    }
    FILE *f = fopen(out, "r");
    cr_assert_not_null(f);
    char line[512];
    int named = 0;
    while (fgets(line, sizeof(line), f))
        named += strstr(line, "DISPATCHER_CONCURRENCY") != NULL;
    fclose(f);
    cr_assert_geq(named, 3, "the reason does not name the setting");
    free(out);
    free(bin);
}

/* --- signatures, checked by a separate implementation ------------------------ */

Test(dispatcher, requests_with_a_session_token_are_signed_right)
{
    /* Temporary credentials (STS, an instance role) add X-Amz-Security-Token,
       which must be signed too; the front recomputes it with botocore. */
    start_shop("test", "AWS_SESSION_TOKEN=FwoGZXIvYXdzEBYaDH/a+token=with/odd+chars");
    struct http_client *c = http_client_new();
    shop_register_login(shop, c, "token@example.com", "correct horse battery");
    static const int64_t lines[][2] = {{1, 1}};
    char *id = place_order(c, lines, 1);
    cr_assert(wait_status(id, "sent", 10000), "order not sent");
    cr_expect_gt(sigv4_front_verified(front_log), 0);
    free(id);
    http_client_free(c);
}

Test(dispatcher, a_wrong_secret_is_refused_and_the_order_waits)
{
    /* The front must be able to say no: a secret it does not know gives a
       signature it does not compute, AWS's 400 InvalidSignatureException, and
       the order stays pending (retried later), never sent nor lost. */
    start_shop("test", "AWS_SECRET_ACCESS_KEY=not-the-secret");
    struct http_client *c = http_client_new();
    shop_register_login(shop, c, "wrongkey@example.com", "correct horse battery");
    static const int64_t lines[][2] = {{1, 1}};
    char *id = place_order(c, lines, 1);
    uint64_t deadline = now_ms() + 10000;
    while (sigv4_front_refused(front_log) == 0 && now_ms() < deadline)
        harness_sleep_ms(50);
    cr_expect_gt(sigv4_front_refused(front_log), 0, "the front accepted a wrong signature");
    char *status = order_column(id, "status");
    cr_expect_str_neq(status, "sent");
    free(status);
    cr_expect_null(get_item(id), "the order reached DynamoDB with a wrong signature");
    /* Refusals were the point here: the teardown's check is for the other tests. */
    fclose(fopen(front_log, "w"));
    free(id);
    http_client_free(c);
}
