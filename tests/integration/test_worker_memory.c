/* What a burst leaves in shopd's workers. A burst of logins: each login derives scrypt
 * with a 16-32 MiB buffer on an offload thread, and that memory must go back to
 * the system once the logins are over, not stay with every worker for good.
 * A real shopd (2 workers) on a SQLite file; users whose stored hashes use
 * scrypt N=2^14 (16 MiB: Werkzeug hashes made with smaller parameters), the
 * size glibc would keep in a thread's arena once its dynamic mmap threshold
 * has risen. A burst of connections: each holds its buffers while it is open, and
 * the heap they grew must shrink again once they close. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"
#include "tests/support/raw_socket.h"
#include "tests/support/shop.h"
#include "tests/support/test_database.h"

#define PASSWORD "correct horse battery"
#define USERS 4

static char *dir;
static struct shop_server *shop;

static void setup(void)
{
    dir = harness_tempdir("worker-memory");
}

static void teardown(void)
{
    shop_stop(shop);
    shop = NULL;
    harness_rmrf(dir);
    free(dir);
}

TestSuite(worker_memory, .init = setup, .fini = teardown, .timeout = 120);

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A Werkzeug-format hash of PASSWORD with scrypt N=2^14, r=8, p=1 (caller frees). */
static char *werkzeug_scrypt_16mib(int i)
{
    char salt[32];
    snprintf(salt, sizeof(salt), "memtestsalt%05d", i);
    unsigned char key[64];
    cr_assert_eq(EVP_PBE_scrypt(PASSWORD, strlen(PASSWORD), (const unsigned char *)salt, strlen(salt), 16384,
                                8, 1, 64u << 20, key, sizeof(key)),
                 1);
    char hex[129];
    for (size_t k = 0; k < sizeof(key); k++)
        snprintf(hex + 2 * k, 3, "%02x", key[k]);
    return xasprintf("scrypt:16384:8:1$%s$%s", salt, hex);
}

static void insert_users(const char *database_url)
{
    for (int i = 0; i < USERS; i++) {
        char email[64];
        snprintf(email, sizeof(email), "mem%d@example.com", i);
        char *hash = werkzeug_scrypt_16mib(i);
        const char *params[] = {email, hash, NULL};
        cr_assert_eq(test_database_exec(
                         database_url,
                         "INSERT INTO users (email, password_hash, created_at) VALUES ($1, $2, 0)", params),
                     1);
        free(hash);
    }
}

/* The workers of master (its children) with the field of their /proc status given
 * ("VmRSS:", "RssAnon:"), in KiB; returns how many. */
static int worker_memory_field(pid_t master, const char *field, pid_t *pids, long *kb_out, int max)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)master, (int)master);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no %s", path);
    int n = 0, pid;
    while (n < max && fscanf(f, "%d", &pid) == 1) {
        char status[64], line[256];
        snprintf(status, sizeof(status), "/proc/%d/status", pid);
        FILE *s = fopen(status, "r");
        if (!s)
            continue;
        long kb = -1;
        while (fgets(line, sizeof(line), s))
            if (strncmp(line, field, strlen(field)) == 0)
                kb = atol(line + strlen(field));
        fclose(s);
        if (kb >= 0) {
            pids[n] = pid;
            kb_out[n++] = kb;
        }
    }
    fclose(f);
    return n;
}

static int worker_rss(pid_t master, pid_t *pids, long *rss_kb, int max)
{
    return worker_memory_field(master, "VmRSS:", pids, rss_kb, max);
}

/* The heap and other anonymous memory, without the pages of the program and its libraries. */
static int worker_anon(pid_t master, pid_t *pids, long *anon_kb, int max)
{
    return worker_memory_field(master, "RssAnon:", pids, anon_kb, max);
}

Test(worker_memory, a_burst_of_logins_gives_the_scrypt_memory_back)
{
#if defined(__SANITIZE_ADDRESS__)
    /* ASan's allocator keeps freed blocks in quarantine: RSS says nothing there. */
    cr_skip_test("RSS is not meaningful under AddressSanitizer");
#endif
    char *database_url = test_database_url(dir);
    char *e_db = xasprintf("DATABASE_URL=%s", database_url);
    const char *const env[] = {e_db, "SHOPD_WORKERS=2", NULL};
    shop = shop_start(env);
    pid_t master = harness_pid(shop->proc);
    insert_users(database_url);

    pid_t pids[8];
    long before[8], after[8];
    int n = worker_rss(master, pids, before, 8);
    cr_assert_eq(n, 2, "%d workers", n);

    /* Each login verifies a 16 MiB scrypt hash and rehashes it with the current
     * parameters (32 MiB); two rounds, so every offload thread derives more than once. */
    struct http_client *c = http_client_new();
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < USERS; i++) {
            char body[128];
            snprintf(body, sizeof(body), "{\"email\":\"mem%d@example.com\",\"password\":\"" PASSWORD "\"}",
                     i);
            struct http_resp *r = http_json(c, "POST", shop_url(shop, "/login"), body);
            cr_assert_eq(r->status, 200, "login %d: %ld %s", i, r->status, r->body);
            http_resp_free(r);
        }
    http_client_free(c);
    /* The first round replaced every hash: the second verified at 32 MiB. */
    char *old = test_database_value(
        database_url, "SELECT count(*) FROM users WHERE password_hash LIKE 'scrypt:16384:%'", NULL);
    cr_assert_str_eq(old, "0", "old hashes were not upgraded at login");
    free(old);

    /* Within 10 s every worker is back near where it started (a few MiB of
     * sessions and caches, not a scrypt buffer per thread). */
    uint64_t deadline = now_ms() + 10000;
    bool back = false;
    int m = 0;
    while (!back && now_ms() < deadline) {
        m = worker_rss(master, pids, after, 8);
        back = m == n;
        for (int i = 0; back && i < m; i++)
            back = after[i] <= before[i] + 8 * 1024;
        if (!back)
            harness_sleep_ms(200);
    }
    for (int i = 0; i < m; i++)
        cr_log_info("worker %d: %ld KiB before the logins, %ld KiB after", (int)pids[i], before[i], after[i]);
    cr_assert(back, "a worker kept the scrypt memory: %ld -> %ld KiB, %ld -> %ld KiB", before[0], after[0],
              m > 1 ? before[1] : 0, m > 1 ? after[1] : 0);
    free(e_db);
    free(database_url);
}

enum { BURST = 400 };

/* Opens BURST connections to port and sends on each an inventory page request whose
 * header (8 KB, as with large cookies) has not ended yet, as a slow client does, so
 * that the worker holds it; *held_kb is the worker's anonymous memory then. Then ends
 * every request and reads every answer to its end, leaving the connections open;
 * returns how many were answered. */
static int open_burst(int port, pid_t master, int *fds, long *held_kb)
{
    static char head[8192];
    int len = snprintf(head, sizeof(head), "GET /browser/inventory HTTP/1.1\r\nHost: shop.test\r\nX-Pad: ");
    memset(head + len, 'a', sizeof(head) - (size_t)len - 2);
    memcpy(head + sizeof(head) - 2, "\r\n", 2);
    for (int i = 0; i < BURST; i++) {
        fds[i] = test_raw_connect(port);
        cr_assert_geq(fds[i], 0, "connection %d", i);
        cr_assert_eq(write(fds[i], head, sizeof(head)), (ssize_t)sizeof(head));
    }
    /* Each connection's bytes are in the worker once it has read them all: wait until
       its memory stops growing. */
    pid_t pid;
    long last = -1;
    for (int i = 0; i < 50; i++) {
        harness_sleep_ms(100);
        cr_assert_eq(worker_anon(master, &pid, held_kb, 1), 1);
        if (*held_kb == last)
            break;
        last = *held_kb;
    }
    for (int i = 0; i < BURST; i++) {
        cr_assert_eq(write(fds[i], "\r\n", 2), 2);
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
    }
    bool done[BURST] = {false};
    char tail[BURST][8] = {{0}};
    int answered = 0;
    uint64_t deadline = now_ms() + 20000;
    while (answered < BURST && now_ms() < deadline) {
        struct pollfd p[BURST];
        for (int i = 0; i < BURST; i++)
            p[i] = (struct pollfd){.fd = done[i] ? -1 : fds[i], .events = POLLIN};
        if (poll(p, BURST, 200) <= 0)
            continue;
        for (int i = 0; i < BURST; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP)))
                continue;
            char buf[16384];
            ssize_t n;
            while ((n = read(fds[i], buf, sizeof(buf))) > 0) {
                /* The page ends with </html> and a newline; keep the last bytes seen. */
                size_t keep = n >= 8 ? 8 : (size_t)n;
                memmove(tail[i], tail[i] + keep, 8 - keep);
                memcpy(tail[i] + 8 - keep, buf + n - keep, keep);
            }
            if (memmem(tail[i], 8, "</html>", 7) && !done[i]) {
                done[i] = true;
                answered++;
            } else if (n == 0) {
                cr_assert_fail("connection %d closed before its answer ended", i);
            }
        }
    }
    return answered;
}

Test(worker_memory, a_burst_of_connections_gives_its_buffers_back)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("RSS is not meaningful under AddressSanitizer");
#endif
    const char *const env[] = {"SHOPD_WORKERS=1", NULL};
    shop = shop_start(env);
    pid_t master = harness_pid(shop->proc);
    /* A few pages first, so that what the first request sets up for good (the rendered
       catalog, prepared statements) is in the figure before. */
    static const char page[] =
        "GET /browser/inventory HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < 3; i++) {
        int fd = test_raw_connect(shop->port);
        cr_assert_geq(fd, 0);
        size_t len;
        char *answer = test_raw_exchange(fd, page, sizeof(page) - 1, 2000, &len);
        cr_assert(strstr(answer, "</html>"), "warm-up page %d: %s", i, answer);
        free(answer);
        close(fd);
    }
    pid_t pid;
    long before, peak, after = 0;
    cr_assert_eq(worker_anon(master, &pid, &before, 1), 1);

    int fds[BURST];
    cr_assert_eq(open_burst(shop->port, master, fds, &peak), BURST, "not every connection was answered");
    for (int i = 0; i < BURST; i++)
        close(fds[i]);
    /* The burst must have grown the heap for the test to say anything. */
    cr_assert_gt(peak - before, 1536, "%d open connections took only %ld KiB", BURST, peak - before);

    /* Within 10 s the worker gives back at least half of what the burst took. What
       stays is what its first burst sets up for good (arrays indexed by descriptor,
       the event loop's): five bursts in a row end at the same level (tried). */
    uint64_t deadline = now_ms() + 10000;
    bool back = false;
    while (!back && now_ms() < deadline) {
        cr_assert_eq(worker_anon(master, &pid, &after, 1), 1);
        back = after - before <= (peak - before) / 2;
        if (!back)
            harness_sleep_ms(200);
    }
    cr_log_info("worker %d: %ld KiB anonymous before, %ld KiB with %d connections open, %ld KiB after",
                (int)pid, before, peak, BURST, after);
    cr_assert(
        back,
        "the worker kept the burst's memory: %ld KiB before, %ld KiB with the connections, %ld KiB after",
        before, peak, after);
}
