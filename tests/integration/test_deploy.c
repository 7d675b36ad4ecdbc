/* Deployment: `make install` (tools/install.sh) into a temporary DESTDIR puts every
 * file in place with the right modes and paths, keeps an operator's files, and the
 * installed systemd units pass `systemd-analyze verify` (which checks every
 * ExecStart= binary, so the units are verified against the installed tree). The
 * installed tree, started with the production environment example, serves the shop. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shared/xalloc.h"
#include "tests/support/harness.h"

static char *dest;   /* the DESTDIR */
static char *root;   /* the checkout, absolute */
static char *bindir; /* the built binaries, absolute */

static const char *const units[] = {"shop.target", "shop-ratelimitd.service", "shopd@.service",
                                    "shop-balancer.service"};
#define N_UNITS (sizeof(units) / sizeof(units[0]))

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2)
            buf = xrealloc(buf, cap *= 2);
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* text with every `from` replaced by `to` (new string). */
static char *replace_all(const char *text, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), count = 0;
    for (const char *p = text; (p = strstr(p, from)) != NULL; p += fl)
        count++;
    char *out = xmalloc(strlen(text) + count * (tl > fl ? tl - fl : 0) + 1);
    char *o = out;
    const char *p = text, *hit;
    while ((hit = strstr(p, from)) != NULL) {
        memcpy(o, p, (size_t)(hit - p));
        o += hit - p;
        memcpy(o, to, tl);
        o += tl;
        p = hit + fl;
    }
    strcpy(o, p);
    return out;
}

/* Replaces the line starting with `key=` by `key=value` in text (new string). */
static char *set_line(char *text, const char *key, const char *value)
{
    char *needle = xasprintf("\n%s=", key);
    char *hit = strstr(text, needle);
    cr_assert_not_null(hit, "no %s= line", key);
    char *eol = strchr(hit + 1, '\n');
    char *out = xasprintf("%.*s\n%s=%s%s", (int)(hit - text), text, key, value, eol ? eol : "");
    free(needle);
    free(text);
    return out;
}

/* Runs argv in cwd, output (stdout and stderr) into *out (caller frees); returns the
 * exit status, or -1 when it did not end within timeout_ms (it is killed then). */
static int run(const char *const argv[], const char *const env[], const char *cwd, char **out, int timeout_ms)
{
    char *log = xasprintf("%s/cmd-%d.log", dest, (int)getpid());
    unlink(log);
    struct harness_proc *p = harness_start(argv, env, cwd, log);
    int status = harness_wait_exit(p, timeout_ms);
    if (status == -1)
        harness_stop(p, 1000);
    *out = read_text(log);
    if (!*out)
        *out = xstrdup("");
    unlink(log);
    free(log);
    if (status == -1 || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* tools/install.sh DESTDIR PREFIX BIN; asserts success. */
static void install_into(const char *destdir, const char *prefix)
{
    char *script = xasprintf("%s/tools/install.sh", root);
    const char *argv[] = {script, destdir, prefix, bindir, NULL};
    char *out;
    int rc = run(argv, NULL, root, &out, 60000);
    cr_assert_eq(rc, 0, "tools/install.sh %s %s failed (%d):\n%s", destdir, prefix, rc, out);
    free(out);
    free(script);
}

static char *path_in(const char *a, const char *b)
{
    return xasprintf("%s%s", a, b);
}

static void assert_file(const char *path, mode_t mode)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s is missing", path);
    cr_assert(S_ISREG(st.st_mode), "%s is not a regular file", path);
    cr_assert_eq(st.st_mode & 07777, mode, "%s has mode %o, not %o", path, st.st_mode & 07777, mode);
}

static void setup(void)
{
    dest = harness_tempdir("deploy");
    char buf[PATH_MAX];
    cr_assert_not_null(realpath(harness_root(), buf));
    root = xstrdup(buf);
    char *shopd = harness_bin("shopd");
    cr_assert_not_null(realpath(shopd, buf), "no built %s", shopd);
    free(shopd);
    *strrchr(buf, '/') = '\0';
    bindir = xstrdup(buf);
}

static void teardown(void)
{
    harness_rmrf(dest);
    free(dest);
    free(root);
    free(bindir);
}

TestSuite(deploy, .init = setup, .fini = teardown, .timeout = 120);

Test(deploy, install_puts_every_file_in_place)
{
    install_into(dest, "/usr/local");

    const char *bins[] = {"shopd", "balancer", "ratelimitd"};
    for (size_t i = 0; i < 3; i++) {
        char *p = xasprintf("%s/usr/local/bin/%s", dest, bins[i]);
        assert_file(p, 0755);
        free(p);
    }
    for (size_t i = 0; i < N_UNITS; i++) {
        char *p = xasprintf("%s/etc/systemd/system/%s", dest, units[i]);
        assert_file(p, 0644);
        free(p);
    }
    const char *etc[] = {"/etc/shop/ratelimit.rules", "/etc/shop/shop.env.example",
                         "/etc/sysusers.d/shop.conf", "/usr/local/share/doc/shop/README.md",
                         "/usr/local/share/doc/shop/env_example"};
    for (size_t i = 0; i < sizeof(etc) / sizeof(etc[0]); i++) {
        char *p = path_in(dest, etc[i]);
        assert_file(p, 0644);
        free(p);
    }
    /* The secrets file is the operator's to write. */
    char *env = path_in(dest, "/etc/shop/shop.env");
    cr_assert_neq(access(env, F_OK), 0, "install wrote %s", env);
    free(env);

    /* Every template and static file of the checkout, byte for byte. */
    char *cmd = xasprintf("cd '%s/templates' && find . -type f | sort", root);
    FILE *list = popen(cmd, "r");
    cr_assert_not_null(list);
    char line[PATH_MAX];
    int files = 0;
    while (fgets(line, sizeof(line), list)) {
        line[strcspn(line, "\n")] = '\0';
        char *src = xasprintf("%s/templates/%s", root, line + 2);
        char *dst = xasprintf("%s/usr/local/share/shop/templates/%s", dest, line + 2);
        assert_file(dst, 0644);
        char *a = read_text(src), *b = read_text(dst);
        cr_assert(a && b && strcmp(a, b) == 0, "%s differs from %s", dst, src);
        free(a);
        free(b);
        free(src);
        free(dst);
        files++;
    }
    pclose(list);
    free(cmd);
    cr_assert_gt(files, 10, "only %d template files found", files);
    char *css = path_in(dest, "/usr/local/share/shop/templates/static/style.css");
    assert_file(css, 0644);
    free(css);
}

Test(deploy, install_rewrites_paths_to_the_prefix)
{
    install_into(dest, "/opt/shop");
    for (size_t i = 0; i < N_UNITS; i++) {
        char *p = xasprintf("%s/etc/systemd/system/%s", dest, units[i]);
        char *text = read_text(p);
        cr_assert_not_null(text);
        cr_assert_null(strstr(text, "/usr/local"), "%s still names /usr/local", p);
        free(text);
        free(p);
    }
    char *p = path_in(dest, "/etc/systemd/system/shopd@.service");
    char *text = read_text(p);
    cr_assert_not_null(strstr(text, "\nExecStart=/opt/shop/bin/shopd --env /etc/shop/shop.env --shopd-listen "
                                    "127.0.0.1:%i\n"),
                       "shopd@.service:\n%s", text);
    free(text);
    free(p);
    p = path_in(dest, "/etc/shop/shop.env.example");
    text = read_text(p);
    cr_assert_not_null(strstr(text, "\nTEMPLATES_DIR=/opt/shop/share/shop/templates\n"));
    cr_assert_not_null(strstr(text, "\nSTATIC_DIR=/opt/shop/share/shop/templates/static\n"));
    free(text);
    free(p);
    p = path_in(dest, "/opt/shop/bin/shopd");
    assert_file(p, 0755);
    free(p);
}

Test(deploy, install_keeps_the_operators_files)
{
    char *etc = path_in(dest, "/etc/shop");
    char *mk = xasprintf("mkdir -p '%s'", etc);
    cr_assert_eq(system(mk), 0);
    free(mk);
    char *env = path_in(dest, "/etc/shop/shop.env");
    char *rules = path_in(dest, "/etc/shop/ratelimit.rules");
    write_text(env, "SECRET_KEY=the-sites-own\n");
    write_text(rules, "page 1/1s burst=1\n");

    install_into(dest, "/usr/local");
    install_into(dest, "/usr/local"); /* twice: an upgrade over an installed tree */

    char *text = read_text(env);
    cr_assert_str_eq(text, "SECRET_KEY=the-sites-own\n");
    free(text);
    text = read_text(rules);
    cr_assert_str_eq(text, "page 1/1s burst=1\n");
    free(text);
    char *dist = path_in(dest, "/etc/shop/ratelimit.rules.dist");
    assert_file(dist, 0644);
    free(dist);
    free(env);
    free(rules);
    free(etc);
}

/* Copies the installed units to dir with /usr/local pointing into the DESTDIR, so
 * that verify checks the installed binaries; `mutate` (may be NULL) edits each text. */
static void verifiable_units(const char *dir, char *(*mutate)(char *text))
{
    cr_assert_eq(mkdir(dir, 0755), 0);
    char *local = path_in(dest, "/usr/local");
    for (size_t i = 0; i < N_UNITS; i++) {
        char *src = xasprintf("%s/etc/systemd/system/%s", dest, units[i]);
        char *dst = xasprintf("%s/%s", dir, units[i]);
        char *text = read_text(src);
        cr_assert_not_null(text, "%s is missing", src);
        char *fixed = replace_all(text, "/usr/local", local);
        if (mutate)
            fixed = mutate(fixed);
        write_text(dst, fixed);
        free(fixed);
        free(text);
        free(src);
        free(dst);
    }
    free(local);
}

/* systemd-analyze verify on every unit in dir (shopd@ as instance 8081). */
static int verify_units(const char *dir, char **out)
{
    char *paths[N_UNITS];
    const char *argv[N_UNITS + 3];
    size_t n = 0;
    argv[n++] = "/usr/bin/systemd-analyze";
    argv[n++] = "verify";
    for (size_t i = 0; i < N_UNITS; i++) {
        if (strcmp(units[i], "shopd@.service") == 0)
            paths[i] = xasprintf("%s/shopd@8081.service", dir);
        else
            paths[i] = xasprintf("%s/%s", dir, units[i]);
        argv[n++] = paths[i];
    }
    argv[n] = NULL;
    int rc = run(argv, NULL, dir, out, 60000);
    for (size_t i = 0; i < N_UNITS; i++)
        free(paths[i]);
    return rc;
}

Test(deploy, installed_units_pass_systemd_analyze_verify)
{
    cr_assert_eq(access("/usr/bin/systemd-analyze", X_OK), 0, "systemd-analyze is missing (make deps)");
    install_into(dest, "/usr/local");
    char *dir = path_in(dest, "/verify");
    verifiable_units(dir, NULL);
    char *out;
    int rc = verify_units(dir, &out);
    /* verify exits 0 on unknown keys and bad values, and only says so: any word is a failure. */
    cr_assert(rc == 0 && out[strspn(out, " \n")] == '\0', "systemd-analyze verify (exit %d):\n%s", rc, out);
    free(out);
    free(dir);
}

static char *misspell_key(char *text)
{
    char *out = replace_all(text, "\nRestartSec=", "\nRestartSecs=");
    free(text);
    return out;
}

static char *missing_binary(char *text)
{
    char *out = replace_all(text, "/bin/shopd ", "/bin/no-such-shopd ");
    free(text);
    return out;
}

static char *bad_value(char *text)
{
    char *out = replace_all(text, "\nProtectSystem=strict\n", "\nProtectSystem=very\n");
    free(text);
    return out;
}

/* The check above is only worth something if verify speaks up here. */
Test(deploy, systemd_analyze_verify_catches_broken_units)
{
    install_into(dest, "/usr/local");
    char *(*breakers[])(char *) = {misspell_key, missing_binary, bad_value};
    for (size_t i = 0; i < sizeof(breakers) / sizeof(breakers[0]); i++) {
        char *dir = xasprintf("%s/broken%zu", dest, i);
        verifiable_units(dir, breakers[i]);
        char *out;
        int rc = verify_units(dir, &out);
        cr_assert(rc != 0 || out[strspn(out, " \n")] != '\0', "verify found nothing wrong with breakage %zu",
                  i);
        free(out);
        free(dir);
    }
}

/* Each line of `required` must appear in the unit (whole line). */
static void assert_lines(const char *unit, const char *const required[])
{
    char *p = xasprintf("%s/deploy/%s", root, unit);
    char *text = read_text(p);
    cr_assert_not_null(text, "%s is missing", p);
    char *padded = xasprintf("\n%s\n", text);
    for (const char *const *r = required; *r; r++) {
        char *needle = xasprintf("\n%s\n", *r);
        cr_assert_not_null(strstr(padded, needle), "%s lacks the line '%s'", unit, *r);
        free(needle);
    }
    free(padded);
    free(text);
    free(p);
}

Test(deploy, units_run_unprivileged_and_hardened)
{
    const char *common[] = {"Type=notify",
                            "User=shop",
                            "Group=shop",
                            "EnvironmentFile=/etc/shop/shop.env",
                            "Restart=on-failure",
                            "ExecReload=/bin/kill -HUP $MAINPID",
                            "NoNewPrivileges=yes",
                            "ProtectSystem=strict",
                            "ProtectHome=yes",
                            "PrivateTmp=yes",
                            "PrivateDevices=yes",
                            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                            "CapabilityBoundingSet=",
                            "SystemCallFilter=@system-service",
                            "LimitNOFILE=65536",
                            "PartOf=shop.target",
                            NULL};
    assert_lines("shop-ratelimitd.service", common);
    assert_lines("shopd@.service", common);
    assert_lines("shop-balancer.service", common);
    const char *rld[] = {"Wants=redis-server.service", "After=network.target redis-server.service",
                         "RuntimeDirectory=shop",      "RuntimeDirectoryPreserve=yes",
                         "ReadWritePaths=/run/shop",   NULL};
    assert_lines("shop-ratelimitd.service", rld);
    const char *shopd[] = {
        "After=network.target redis-server.service shop-ratelimitd.service",
        "ExecStart=/usr/local/bin/shopd --env /etc/shop/shop.env --shopd-listen 127.0.0.1:%i",
        "StateDirectory=shop",
        "RuntimeDirectoryPreserve=yes",
        "WorkingDirectory=/var/lib/shop",
        "ReadWritePaths=/var/lib/shop /run/shop",
        "KillMode=mixed",
        NULL};
    assert_lines("shopd@.service", shopd);
    const char *target[] = {
        "Wants=redis-server.service shop-ratelimitd.service shopd@8081.service shopd@8082.service "
        "shop-balancer.service",
        "WantedBy=multi-user.target", NULL};
    assert_lines("shop.target", target);
}

/* The installed tree, with the production example filled in as an operator would
 * (SECRET_KEY) and its host paths moved into the test folder, serves pages and
 * static files through the balancer. As shipped (no SECRET_KEY) shopd refuses. */
Test(deploy, installed_tree_serves_the_shop_with_the_example_settings)
{
    install_into(dest, "/usr/local");
    char *example_path = path_in(dest, "/etc/shop/shop.env.example");
    char *text = read_text(example_path);
    cr_assert_not_null(text);

    char *state = path_in(dest, "/var/lib/shop");
    char *runtime = path_in(dest, "/run/shop");
    char *etc = path_in(dest, "/etc/shop");
    char *local = path_in(dest, "/usr/local");
    char *mk = xasprintf("mkdir -p '%s' '%s'", state, runtime);
    cr_assert_eq(system(mk), 0);
    free(mk);
    char *t1 = replace_all(text, "/var/lib/shop", state);
    char *t2 = replace_all(t1, "/run/shop", runtime);
    char *t3 = replace_all(t2, "/etc/shop", etc);
    char *env_text = replace_all(t3, "/usr/local", local);
    free(t1);
    free(t2);
    free(t3);
    free(text);

    int shopd_port = harness_free_port(), bal_port = harness_free_port(), admin_port = harness_free_port();
    char listen[64], backends[64], admin[64], redis[PATH_MAX];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", bal_port);
    snprintf(backends, sizeof(backends), "127.0.0.1:%d", shopd_port);
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", admin_port);
    /* No Redis here: ratelimitd decides from local buckets. */
    snprintf(redis, sizeof(redis), "unix://%s/no-redis.sock", dest);
    env_text = set_line(env_text, "BALANCER_LISTEN", listen);
    env_text = set_line(env_text, "BALANCER_BACKENDS", backends);
    env_text = set_line(env_text, "BALANCER_ADMIN_LISTEN", admin);
    env_text = set_line(env_text, "REDIS_URL", redis);
    env_text = set_line(env_text, "SHOPD_WORKERS", "1");

    char *env_path = path_in(dest, "/etc/shop/shop.env");
    write_text(env_path, env_text);
    char *shopd = xasprintf("%s/bin/shopd", local);
    char *rld = xasprintf("%s/bin/ratelimitd", local);
    char *bal = xasprintf("%s/bin/balancer", local);
    char listen_flag[64];
    snprintf(listen_flag, sizeof(listen_flag), "127.0.0.1:%d", shopd_port);

    /* As installed, without a SECRET_KEY: a one-line refusal. */
    const char *refuse[] = {shopd, "--env", env_path, "--shopd-listen", listen_flag, NULL};
    char *out;
    int rc = run(refuse, NULL, state, &out, 20000);
    cr_assert(rc > 0 && strstr(out, "SECRET_KEY"), "shopd without SECRET_KEY: exit %d\n%s", rc, out);
    free(out);

    env_text =
        set_line(env_text, "SECRET_KEY", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    write_text(env_path, env_text);

    char *rld_log = path_in(dest, "/ratelimitd.log");
    char *shopd_log = path_in(dest, "/shopd.log");
    char *bal_log = path_in(dest, "/balancer.log");
    const char *a1[] = {rld, "--env", env_path, NULL};
    struct harness_proc *p1 = harness_start(a1, NULL, runtime, rld_log);
    char *sock = xasprintf("%s/ratelimitd.sock", runtime);
    if (!harness_wait_unix(sock, 10000)) {
        harness_dump_log(rld_log, 20);
        cr_assert_fail("ratelimitd did not start with the example settings");
    }
    const char *a2[] = {shopd, "--env", env_path, "--shopd-listen", listen_flag, NULL};
    struct harness_proc *p2 = harness_start(a2, NULL, state, shopd_log);
    if (!harness_wait_port(shopd_port, 15000)) {
        harness_dump_log(shopd_log, 20);
        cr_assert_fail("shopd did not start with the example settings");
    }
    const char *a3[] = {bal, "--env", env_path, NULL};
    struct harness_proc *p3 = harness_start(a3, NULL, "/", bal_log);
    if (!harness_wait_port(bal_port, 10000)) {
        harness_dump_log(bal_log, 20);
        cr_assert_fail("balancer did not start with the example settings");
    }

    struct http_client *c = http_client_new();
    char url[128];
    long status = 0;
    time_t deadline = time(NULL) + 20;
    while (status != 200 && time(NULL) < deadline) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", bal_port);
        struct http_resp *r = http_request(c, "GET", url, NULL, NULL, NULL);
        status = r->status;
        http_resp_free(r);
        if (status != 200)
            harness_sleep_ms(100);
    }
    if (status != 200) {
        harness_dump_log(shopd_log, 30);
        harness_dump_log(bal_log, 10);
        cr_assert_fail("no healthy shop behind the balancer (last status %ld)", status);
    }
    const char *paths[] = {"/", "/browser/inventory", "/static/style.css", "/static/favicon.svg"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", bal_port, paths[i]);
        struct http_resp *r = http_request(c, "GET", url, NULL, NULL, NULL);
        cr_assert_eq(r->status, 200, "GET %s: %ld\n%s", paths[i], r->status, r->body);
        cr_assert_gt(r->len, 100, "GET %s: only %zu bytes", paths[i], r->len);
        http_resp_free(r);
    }
    http_client_free(c);

    /* The database landed in the state folder (DATABASE_URL of the example). */
    char *db = path_in(state, "/shop.db");
    cr_assert_eq(access(db, F_OK), 0, "no database at %s", db);
    free(db);

    harness_stop(p3, 10000);
    harness_stop(p2, 10000);
    harness_stop(p1, 10000);
    free(sock);
    free(rld_log);
    free(shopd_log);
    free(bal_log);
    free(shopd);
    free(rld);
    free(bal);
    free(env_path);
    free(env_text);
    free(example_path);
    free(state);
    free(runtime);
    free(etc);
    free(local);
}
