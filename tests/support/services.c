#include "services.h"
#include "shared/xalloc.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

void services_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

struct harness_proc *services_start_redis(const char *dir, int port, const char *log_path)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    const char *argv[] = {"/usr/bin/redis-server", "--port", p,   "--bind", "127.0.0.1", "--save", "",
                          "--appendonly",          "no",     NULL};
    struct harness_proc *redis = harness_start(argv, NULL, dir, log_path);
    cr_assert(harness_wait_port(port, 5000), "redis-server did not start on port %d", port);
    return redis;
}

struct harness_proc *services_start_dynalite(const char *dir, int port, const char *data_dir,
                                             const char *log_path)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    char *script = xasprintf("%s/tools/dynalite.js", harness_root());
    const char *argv[] = {
        "/usr/bin/node", script, "--port", p, "--create-table-ms", "50", data_dir ? "--path" : NULL,
        data_dir,        NULL};
    /* The log is appended to: a restart must not take the last start's line. */
    long offset = harness_file_size(log_path);
    struct harness_proc *d = harness_start(argv, NULL, dir, log_path);
    free(script);
    char *want = xasprintf("Listening at http://127.0.0.1:%d", port);
    bool up = false;
    for (int waited = 0; !up && waited < 15000 && harness_alive(d); waited += 20) {
        up = harness_log_contains(log_path, offset, want);
        if (!up)
            harness_sleep_ms(20);
    }
    free(want);
    if (!up) {
        harness_dump_log(log_path, 20);
        cr_assert_fail("dynalite did not listen on 127.0.0.1:%d", port);
    }
    return d;
}

struct harness_proc *services_start_ratelimitd(const char *dir, const char *sock_path, int redis_port,
                                               const char *rules_path, const char *const extra_env[],
                                               const char *log_path)
{
    char *bin = harness_bin("ratelimitd");
    char *e_sock = xasprintf("RATELIMITD_SOCKET=%s", sock_path);
    char *e_redis = xasprintf("REDIS_URL=redis://127.0.0.1:%d/0", redis_port);
    char *e_rules = xasprintf("RATELIMIT_RULES=%s", rules_path);
    const char *env[32] = {e_sock, e_redis, e_rules};
    size_t n = 3;
    for (const char *const *e = extra_env; e && *e && n < 31; e++)
        env[n++] = *e;
    env[n] = NULL;
    const char *argv[] = {bin, NULL};
    struct harness_proc *p = harness_start(argv, env, dir, log_path);
    bool up = harness_wait_unix(sock_path, 5000);
    if (!up && log_path)
        harness_dump_log(log_path, 20);
    free(bin);
    free(e_sock);
    free(e_redis);
    free(e_rules);
    cr_assert(up, "ratelimitd did not start on %s", sock_path);
    return p;
}

void services_expect_start_failure(const char *const argv[], const char *const env[], const char *dir,
                                   const char *log_path, const char *msg)
{
    struct harness_proc *p = harness_start(argv, env, dir, log_path);
    int st = harness_wait_exit(p, 5000);
    if (st == -1) {
        harness_stop(p, 1000);
        cr_assert_fail("%s started, though it should refuse: %s", argv[0], msg);
    }
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "exit status %d", st);
    FILE *f = fopen(log_path, "r");
    cr_assert_not_null(f);
    char text[2048] = "";
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    text[len] = 0;
    fclose(f);
    cr_assert(strstr(text, msg), "want '%s' in: %s", msg, text);
}

long services_ratelimitd_stat(const char *sock_path, const char *name)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0, "ratelimitd at %s", sock_path);
    cr_assert_eq(write(fd, "STATS\r\n", 7), 7);
    char line[1024];
    size_t len = 0;
    while (len < sizeof(line) - 1 && !memchr(line, '\n', len)) {
        ssize_t n = read(fd, line + len, sizeof(line) - 1 - len);
        cr_assert_gt(n, 0, "no STATS answer");
        len += (size_t)n;
    }
    close(fd);
    line[len] = 0;
    return services_stats_field(line, name);
}

long services_stats_field(const char *line, const char *name)
{
    char key[64], padded[1100];
    snprintf(key, sizeof(key), " %s=", name);
    snprintf(padded, sizeof(padded), " %s", line);
    const char *p = strstr(padded, key);
    cr_assert_not_null(p, "no %s in %s", name, line);
    return strtol(p + strlen(key), NULL, 10);
}
