/* shopd as a process: prefork respawn, reload without refused connections,
 * draining stop, the stock race, configuration errors and a Flask-era .env. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/harness.h"
#include "tests/support/raw_socket.h"
#include "tests/support/services.h"
#include "tests/support/shop.h"
#include "shared/xalloc.h"

TestSuite(shopd_process, .timeout = 120);

/* Child pids of pid, from /proc (the workers of a shopd master). */
static int children_of(pid_t pid, pid_t *out, int max)
{
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && n < max) {
        int child = atoi(e->d_name);
        if (child <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof(path), "/proc/%d/stat", child);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        const char *close_paren = strrchr(buf, ')');
        char state;
        int ppid;
        if (close_paren && sscanf(close_paren + 2, "%c %d", &state, &ppid) == 2 && ppid == pid &&
            state != 'Z')
            out[n++] = child;
    }
    if (d)
        closedir(d);
    return n;
}

static long get_status(struct shop_server *s, struct http_client *c, const char *path)
{
    struct http_resp *r = http_request(c, "GET", shop_url(s, path), NULL, NULL, NULL);
    long st = r->status;
    http_resp_free(r);
    return st;
}

/* shop_start returns once one worker answers; the second may still be starting
 * (slowly, under AddressSanitizer). Waits up to 5 s for two workers; returns how
 * many there are, their pids in out (room for 16). */
static int wait_for_two_workers(struct shop_server *s, pid_t *out)
{
    int n = 0;
    for (int i = 0; i < 250 && (n = children_of(harness_pid(s->proc), out, 16)) != 2; i++)
        harness_sleep_ms(20);
    return n;
}

Test(shopd_process, killed_worker_is_replaced_quickly)
{
    struct shop_server *s = shop_start(NULL);
    pid_t kids[16];
    int n = wait_for_two_workers(s, kids);
    cr_assert_eq(n, 2, "two workers, got %d after 5 s", n);
    kill(kids[0], SIGKILL);
    /* Within a second there are two live workers again, one of them new. */
    bool replaced = false;
    for (int i = 0; i < 50 && !replaced; i++) {
        harness_sleep_ms(20);
        pid_t now[16];
        int m = children_of(harness_pid(s->proc), now, 16);
        bool old_gone = true;
        for (int k = 0; k < m; k++)
            if (now[k] == kids[0])
                old_gone = false;
        replaced = m == 2 && old_gone;
    }
    cr_expect(replaced, "the killed worker was replaced within a second");
    struct http_client *c = http_client_new();
    for (int i = 0; i < 20; i++)
        cr_expect_eq(get_status(s, c, "/products"), 200, "request %d after the kill", i);
    http_client_free(c);
    cr_expect_eq(shop_stop(s), 0);
}

struct hammer {
    struct shop_server *s;
    volatile bool stop;
    int ok, failed;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    while (!h->stop) {
        /* A new connection each time, so that refused connections would show. */
        struct http_client *c = http_client_new();
        long st = get_status(h->s, c, "/products");
        http_client_free(c);
        if (st == 200)
            h->ok++;
        else
            h->failed++;
    }
    return NULL;
}

Test(shopd_process, sighup_replaces_workers_without_refusing)
{
    struct shop_server *s = shop_start(NULL);
    pid_t before[16];
    int nb = wait_for_two_workers(s, before);
    cr_assert_eq(nb, 2, "%d workers", nb);
    struct hammer h = {.s = s};
    pthread_t t;
    pthread_create(&t, NULL, hammer_run, &h);
    harness_sleep_ms(200);
    harness_signal(s->proc, SIGHUP);
    harness_sleep_ms(1500);
    h.stop = true;
    pthread_join(t, NULL);
    cr_expect_eq(h.failed, 0, "%d requests failed during the reload (%d succeeded)", h.failed, h.ok);
    cr_expect_gt(h.ok, 10);
    pid_t after[16];
    int na = children_of(harness_pid(s->proc), after, 16);
    cr_expect_eq(na, 2, "two workers after the reload, got %d", na);
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            cr_expect_neq(after[i], before[j], "worker %d was replaced", (int)before[j]);
    cr_expect_eq(shop_stop(s), 0);
}

/* A registration, which hashes its password with scrypt (a noticeable fraction of a
 * second), on a thread of its own: drain%d@example.com. */
struct registration {
    struct shop_server *s;
    int index;
    long status;
};

static void *register_run(void *arg)
{
    struct registration *reg = arg;
    char body[128];
    snprintf(body, sizeof(body), "{\"email\":\"drain%d@example.com\",\"password\":\"password123\"}",
             reg->index);
    struct http_client *c = http_client_new();
    struct http_resp *r = http_json(c, "POST", shop_url(reg->s, "/register"), body);
    reg->status = r->status;
    http_resp_free(r);
    http_client_free(c);
    return NULL;
}

/* Waits until shopd holds a request (in flight besides the scrape itself): a
 * connection still in the kernel's accept queue is not "in flight". */
static bool holds_a_request(struct shop_server *s)
{
    struct http_client *probe = http_client_new();
    bool holding = false;
    for (int i = 0; i < 200 && !holding; i++) {
        struct http_resp *m = http_request(probe, "GET", shop_url(s, "/metrics"), NULL, NULL, NULL);
        const char *line = m->body ? strstr(m->body, "\nshopd_http_requests_in_flight ") : NULL;
        holding = line && atoi(line + strlen("\nshopd_http_requests_in_flight ")) >= 2;
        http_resp_free(m);
        if (!holding)
            harness_sleep_ms(5);
    }
    http_client_free(probe);
    return holding;
}

Test(shopd_process, sigterm_finishes_requests_in_flight)
{
    struct shop_server *s = shop_start(NULL);
    struct registration l = {.s = s};
    pthread_t t;
    pthread_create(&t, NULL, register_run, &l);
    cr_assert(holds_a_request(s), "the registration never reached shopd");
    harness_signal(s->proc, SIGTERM);
    pthread_join(t, NULL);
    cr_expect_eq(l.status, 201, "the request in flight was answered (got %ld)", l.status);
    int st = harness_wait_exit(s->proc, 20000);
    cr_assert_neq(st, -1, "shopd stopped");
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "clean exit, status %d", st);
    s->proc = NULL;
    shop_stop(s);
}

/* CPU time (user + system, clock ticks) of the thread tid of process pid: the
 * worker's event loop runs on its main thread, password hashing on others. Not
 * procm_read (shared/process_metrics.h): /proc/<pid>/stat sums every thread. */
static long thread_ticks(pid_t pid, pid_t tid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    const char *p = strrchr(buf, ')');
    long utime = 0, stime = 0;
    /* After ")": state, then fields 4..13 (ppid .. cmajflt), then utime and stime. */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) != 2)
        return -1;
    return utime + stime;
}

/* A worker that stops taking connections closes its copy of the listening socket,
 * which the master and the other workers keep open: the kernel then keeps the
 * socket in that worker's epoll set unless the worker removed it first, and a
 * connection waiting to be accepted would wake the draining worker's loop again
 * and again. */
Test(shopd_process, a_draining_worker_does_not_spin_on_waiting_connections)
{
    const char *env[] = {"SHOPD_WORKERS=2", NULL};
    struct shop_server *s = shop_start(env);
    pid_t workers[16];
    int n = wait_for_two_workers(s, workers);
    cr_assert_eq(n, 2, "%d workers", n);
    /* Only the first worker takes the registrations: hashing them keeps it draining. */
    kill(workers[1], SIGSTOP);
    enum { REGISTRATIONS = 12 };
    struct registration regs[REGISTRATIONS];
    pthread_t t[REGISTRATIONS];
    for (int i = 0; i < REGISTRATIONS; i++) {
        regs[i] = (struct registration){.s = s, .index = i};
        pthread_create(&t[i], NULL, register_run, &regs[i]);
    }
    cr_assert(holds_a_request(s), "the registrations never reached shopd");
    kill(workers[0], SIGTERM);
    harness_sleep_ms(50);
    /* Nobody accepts this one now: it waits in the listening socket's queue. */
    int waiting = test_raw_connect(s->port);
    cr_assert_geq(waiting, 0);
    long before = thread_ticks(workers[0], workers[0]);
    harness_sleep_ms(200);
    long after = thread_ticks(workers[0], workers[0]);
    int answered = 0;
    for (int i = 0; i < REGISTRATIONS; i++)
        answered += regs[i].status != 0;
    kill(workers[1], SIGCONT);
    for (int i = 0; i < REGISTRATIONS; i++)
        pthread_join(t[i], NULL);
    close(waiting);
    cr_assert(before >= 0 && after >= 0, "the draining worker's loop thread is gone");
    cr_assert_lt(answered, REGISTRATIONS, "every registration finished before the measurement ended");
    long hz = sysconf(_SC_CLK_TCK);
    cr_expect_leq((after - before) * 1000 / hz, 40, "the draining worker's loop used %ld ms of CPU in 200 ms",
                  (after - before) * 1000 / hz);
    for (int i = 0; i < REGISTRATIONS; i++)
        cr_expect_eq(regs[i].status, 201, "registration %d in flight was answered (got %ld)", i,
                     regs[i].status);
    cr_expect_eq(shop_stop(s), 0);
}

#define RACERS 12
#define STOCK 5

struct racer {
    char url[96];
    struct http_client *c;
    pthread_barrier_t *start;
    long status;
};

static void *race_run(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(r->start);
    struct http_resp *resp = http_request(r->c, "POST", r->url, NULL, NULL, NULL);
    r->status = resp->status;
    http_resp_free(resp);
    return NULL;
}

Test(shopd_process, twelve_buyers_five_items_no_oversell)
{
    struct shop_server *s = shop_start(NULL);
    struct http_client *admin = http_client_new();
    shop_register_login(s, admin, "admin@example.com", "password123");
    struct http_resp *p = http_json(admin, "POST", shop_url(s, "/products"),
                                    "{\"name\":\"Rare mango\",\"price\":9.99,\"stock\":5}");
    cr_assert_eq(p->status, 201);
    long long id = (long long)json_integer_value(json_object_get(p->json, "id"));
    http_resp_free(p);

    struct racer racers[RACERS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, RACERS);
    char body[128], email[64];
    snprintf(body, sizeof(body), "{\"product_id\":%lld,\"quantity\":1}", id);
    for (int i = 0; i < RACERS; i++) {
        racers[i] = (struct racer){.c = http_client_new(), .start = &start};
        snprintf(racers[i].url, sizeof(racers[i].url), "%s", shop_url(s, "/checkout"));
        snprintf(email, sizeof(email), "racer%d@example.com", i);
        shop_register_login(s, racers[i].c, email, "password123");
        struct http_resp *r = http_json(racers[i].c, "POST", shop_url(s, "/cart/items"), body);
        cr_assert_eq(r->status, 201, "racer %d cart: %s", i, r->body);
        http_resp_free(r);
    }
    pthread_t threads[RACERS];
    for (int i = 0; i < RACERS; i++)
        pthread_create(&threads[i], NULL, race_run, &racers[i]);
    int created = 0, conflicts = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(threads[i], NULL);
        created += racers[i].status == 201;
        conflicts += racers[i].status == 409;
        http_client_free(racers[i].c);
    }
    char statuses[128] = "";
    for (int i = 0; i < RACERS; i++)
        snprintf(statuses + strlen(statuses), sizeof(statuses) - strlen(statuses), " %ld", racers[i].status);
    cr_expect_eq(created, STOCK, "exactly %d orders, got %d (statuses:%s)", STOCK, created, statuses);
    cr_expect_eq(conflicts, RACERS - STOCK, "the others get 409, got %d (statuses:%s)", conflicts, statuses);
    char path[64];
    snprintf(path, sizeof(path), "/products/%lld", id);
    struct http_resp *r = http_request(admin, "GET", shop_url(s, path), NULL, NULL, NULL);
    cr_expect_eq(json_integer_value(json_object_get(r->json, "stock")), 0);
    http_resp_free(r);
    http_client_free(admin);
    pthread_barrier_destroy(&start);
    shop_stop(s);
}

/* Runs shopd with env and args to completion; returns its exit status and its output in out. */
static int run_shopd(const char *const env[], const char *const args[], const char *cwd, char *out,
                     size_t outlen)
{
    char *bin = harness_bin("shopd");
    const char *argv[8] = {bin};
    int i = 1;
    for (const char *const *a = args; a && *a && i < 7; a++)
        argv[i++] = *a;
    argv[i] = NULL;
    char *dir = harness_tempdir("shopd-out");
    char *log = xasprintf("%s/out.log", dir);
    struct harness_proc *p = harness_start(argv, env, cwd, log);
    int st = harness_wait_exit(p, 10000);
    if (st == -1)
        st = harness_stop(p, 2000);
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(out, 1, outlen - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    harness_rmrf(dir);
    free(dir);
    free(log);
    free(bin);
    return st;
}

Test(shopd_process, bad_configuration_exits_with_one_line)
{
    char out[4096];
    const char *no_secret[] = {"SHOP_ENV=production", "SECRET_KEY=", "SHOPD_LISTEN=127.0.0.1:0", NULL};
    int st = run_shopd(no_secret, NULL, "/tmp", out, sizeof(out));
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    cr_expect(strstr(out, "SECRET_KEY") != NULL, "%s", out);
    cr_expect_eq(strchr(out, '\n'), strrchr(out, '\n'), "one line: %s", out);

    const char *bad_workers[] = {"SHOP_ENV=development", "SHOPD_WORKERS=zero", NULL};
    st = run_shopd(bad_workers, NULL, "/tmp", out, sizeof(out));
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    cr_expect(strstr(out, "SHOPD_WORKERS") != NULL, "%s", out);

    const char *bad_db[] = {"SHOP_ENV=development", "DATABASE_URL=postgres://x/y", NULL};
    st = run_shopd(bad_db, NULL, "/tmp", out, sizeof(out));
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    cr_expect(strstr(out, "DATABASE_URL") != NULL, "%s", out);

    const char *bad_listen[] = {"SHOP_ENV=development", "SHOPD_LISTEN=nowhere", NULL};
    st = run_shopd(bad_listen, NULL, "/tmp", out, sizeof(out));
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    cr_expect(strstr(out, "SHOPD_LISTEN") != NULL, "%s", out);

    const char *flag[] = {"--no-such-flag", NULL};
    st = run_shopd(NULL, flag, "/tmp", out, sizeof(out));
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    cr_expect(strstr(out, "--no-such-flag") != NULL, "%s", out);

    const char *help[] = {"--help", NULL};
    st = run_shopd(NULL, help, "/tmp", out, sizeof(out));
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cr_expect(strstr(out, "SHOPD_LISTEN") && strstr(out, "DATABASE_URL"), "%s", out);
    const char *version[] = {"--version", NULL};
    st = run_shopd(NULL, version, "/tmp", out, sizeof(out));
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cr_expect(strncmp(out, "shopd ", 6) == 0, "%s", out);
}

Test(shopd_process, flask_dotenv_starts_unchanged)
{
    char *dir = harness_tempdir("shopd-flask");
    char *path = xasprintf("%s/.env", dir);
    int port = harness_free_port();
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "FLASK_APP=app.py\nFLASK_ENV=development\nSECRET_KEY='flask-secret-key-0123456789'\n"
               "DATABASE_URL=sqlite:///:memory:\nREGION_NAME=eu-west-1\nAWS_ACCESS_KEY_ID=AKIDEXAMPLE\n"
               "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n");
    fclose(f);
    char listen[64];
    snprintf(listen, sizeof(listen), "SHOPD_LISTEN=127.0.0.1:%d", port);
    char *root = realpath(harness_root(), NULL);
    char *templates = xasprintf("TEMPLATES_DIR=%s/templates", root);
    char *statics = xasprintf("STATIC_DIR=%s/templates/static", root);
    const char *env[] = {listen, templates, statics, "RATELIMIT_ENABLED=0", "DISPATCHER_ENABLED=0", NULL};
    char *bin = harness_bin("shopd");
    const char *argv[] = {bin, NULL};
    char *log = xasprintf("%s/shopd.log", dir);
    struct harness_proc *p = harness_start(argv, env, dir, log);
    bool up = harness_wait_port(port, 5000);
    if (!up)
        harness_dump_log(log, 20);
    cr_expect(up, "shopd started from a Flask .env");
    struct http_client *c = http_client_new();
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/products", port);
    struct http_resp *r = http_request(c, "GET", url, NULL, NULL, NULL);
    cr_expect_eq(r->status, 200);
    http_resp_free(r);
    http_client_free(c);
    cr_expect_eq(harness_stop(p, 10000), 0);
    harness_rmrf(dir);
    free(dir);
    free(path);
    free(root);
    free(templates);
    free(statics);
    free(bin);
    free(log);
}

struct timed_login {
    struct shop_server *s;
    long status;
    uint64_t done_us;
};

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void *timed_login_run(void *arg)
{
    struct timed_login *l = arg;
    struct http_client *c = http_client_new();
    struct http_resp *r = http_json(c, "POST", shop_url(l->s, "/login"),
                                    "{\"email\":\"slow@example.com\",\"password\":\"password123\"}");
    l->status = r->status;
    l->done_us = mono_us();
    http_resp_free(r);
    http_client_free(c);
    return NULL;
}

Test(shopd_process, password_hashing_does_not_stall_the_worker)
{
    /* One worker: if hashing ran on its event loop, the health check would wait for every login. */
    const char *env[] = {"SHOPD_WORKERS=1", NULL};
    struct shop_server *s = shop_start(env);
    struct http_client *c = http_client_new();
    struct http_resp *r = http_json(c, "POST", shop_url(s, "/register"),
                                    "{\"email\":\"slow@example.com\",\"password\":\"password123\"}");
    cr_assert_eq(r->status, 201);
    http_resp_free(r);
    struct timed_login logins[4];
    pthread_t threads[4];
    uint64_t start = mono_us();
    for (int i = 0; i < 4; i++) {
        logins[i] = (struct timed_login){.s = s};
        pthread_create(&threads[i], NULL, timed_login_run, &logins[i]);
    }
    harness_sleep_ms(30);
    r = http_request(c, "GET", shop_url(s, "/healthz"), NULL, NULL, NULL);
    uint64_t health_done = mono_us();
    cr_expect_eq(r->status, 200);
    http_resp_free(r);
    uint64_t first_login = UINT64_MAX;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        cr_expect_eq(logins[i].status, 200);
        if (logins[i].done_us < first_login)
            first_login = logins[i].done_us;
    }
    /* An order of events, not a duration: the check that runs on the event loop overtakes
       the logins that were sent before it and hash off the loop. */
    cr_expect_lt(health_done, first_login,
                 "the health check was answered before any login finished hashing "
                 "(health check at %.1f ms, first login at %.1f ms after the logins started)",
                 (double)(health_done - start) / 1000.0, (double)(first_login - start) / 1000.0);
    http_client_free(c);
    shop_stop(s);
}

static int count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static long post_body_of(struct shop_server *s, size_t size)
{
    char *body = xmalloc(size + 1);
    memset(body, ' ', size);
    body[0] = '{';
    body[size - 1] = '}';
    body[size] = '\0';
    struct http_client *c = http_client_new();
    struct http_resp *r = http_json(c, "POST", shop_url(s, "/login"), body);
    long status = r->status;
    http_resp_free(r);
    http_client_free(c);
    free(body);
    return status;
}

/* SIGHUP re-reads .env: a good new value takes effect in the new workers; a bad
 * one is refused with one log line and shopd keeps serving with the old one. */
Test(shopd_process, sighup_applies_a_good_setting_and_refuses_a_bad_one)
{
    struct shop_server *s = shop_start(NULL);
    cr_assert_eq(post_body_of(s, 4096), 400, "a 4 KB body is read (and is no valid login)");
    char *envfile = xasprintf("%s/.env", s->dir);
    services_write_file(envfile, "SHOPD_MAX_BODY=2048\n");
    harness_signal(s->proc, SIGHUP);
    long status = 0;
    for (int i = 0; i < 100 && status != 413; i++) {
        status = post_body_of(s, 4096);
        if (status != 413)
            harness_sleep_ms(50);
    }
    cr_expect_eq(status, 413, "the new limit applies after the reload");

    services_write_file(envfile, "SHOPD_MAX_BODY=lots\n");
    harness_signal(s->proc, SIGHUP);
    for (int i = 0; i < 100 && count_in_file(s->log_path, "keeping the current settings") == 0; i++)
        harness_sleep_ms(50);
    cr_expect_eq(count_in_file(s->log_path, "keeping the current settings"), 1,
                 "one log line for the refusal");
    cr_expect(harness_alive(s->proc), "shopd survived a bad reload");
    cr_expect_eq(post_body_of(s, 4096), 413, "the last good limit stays");
    cr_expect_eq(post_body_of(s, 1024), 400, "and shopd serves");
    free(envfile);
    cr_expect_eq(shop_stop(s), 0);
}
