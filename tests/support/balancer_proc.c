#include "balancer_proc.h"

#include "harness.h"
#include "shared/xalloc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void write_env(const char *path, const char *backends, const char *const extra[])
{
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fprintf(f, "BALANCER_BACKENDS=%s\n", backends);
    for (const char *const *e = extra; e && *e; e++)
        fprintf(f, "%s\n", *e);
    fclose(f);
}

struct test_balancer *test_balancer_start(const char *name, const char *backends, const char *const extra[])
{
    struct test_balancer *lb = xcalloc(1, sizeof(*lb));
    lb->port = harness_free_port();
    lb->admin_port = harness_free_port();
    while (lb->admin_port == lb->port)
        lb->admin_port = harness_free_port();
    char *logname = xasprintf("balancer-%s-%d.log", name, (int)getpid());
    lb->log = harness_output_path(logname);
    free(logname);
    unlink(lb->log);
    lb->envfile = xasprintf("%s.env", lb->log);
    write_env(lb->envfile, backends, extra);
    char *bin = harness_bin("balancer");
    char *listen = xasprintf("--balancer-listen=127.0.0.1:%d", lb->port);
    char *admin = xasprintf("--balancer-admin-listen=127.0.0.1:%d", lb->admin_port);
    char *envarg = xasprintf("--env=%s", lb->envfile);
    const char *argv[] = {bin, envarg, listen, admin, NULL};
    /* Defaults the tests rely on unless the .env says otherwise: the environment
     * beats .env, so they are only set when extra does not name them. */
    static const char *const defaults[] = {"BALANCER_HEALTH_INTERVAL_MS=100",
                                           "BALANCER_HEALTH_TIMEOUT_MS=500", "BALANCER_HEALTH_FALL=2",
                                           "BALANCER_HEALTH_RISE=2", NULL};
    const char *env[8];
    int n = 0;
    for (const char *const *d = defaults; *d; d++) {
        size_t klen = strcspn(*d, "=");
        bool given = false;
        for (const char *const *e = extra; e && *e; e++)
            given |= strncmp(*e, *d, klen + 1) == 0;
        if (!given)
            env[n++] = *d;
    }
    env[n] = NULL;
    unsetenv("BALANCER_BACKENDS");
    unsetenv("BALANCER_LISTEN");
    unsetenv("BALANCER_ADMIN_LISTEN");
    lb->proc = harness_start(argv, env, NULL, lb->log);
    free(bin);
    free(listen);
    free(admin);
    free(envarg);
    if (!harness_wait_port(lb->port, 5000)) {
        harness_dump_log(lb->log, 20);
        harness_stop(lb->proc, 1000);
        fprintf(stderr, "balancer did not start\n");
        abort();
    }
    return lb;
}

void test_balancer_rewrite_env(struct test_balancer *lb, const char *backends, const char *const extra[])
{
    write_env(lb->envfile, backends, extra);
}

int test_balancer_stop(struct test_balancer *lb)
{
    if (!lb)
        return -1;
    int st = harness_stop(lb->proc, 5000);
    unlink(lb->envfile);
    free(lb->envfile);
    free(lb->log);
    free(lb);
    return st;
}

char *test_balancer_url(const struct test_balancer *lb, bool admin, const char *path)
{
    return xasprintf("http://127.0.0.1:%d%s", admin ? lb->admin_port : lb->port, path);
}

int test_balancer_log_count(const struct test_balancer *lb, const char *needle)
{
    FILE *f = fopen(lb->log, "r");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) >= 0)
        if (strstr(line, needle))
            n++;
    free(line);
    fclose(f);
    return n;
}
