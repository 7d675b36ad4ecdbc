#include "shop.h"
#include "shared/xalloc.h"
#include "test_database.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The last DATABASE_URL of env (the one shopd reads), a relative SQLite path
 * resolved against shopd's folder dir, so that a test can reach the same
 * database. Caller frees. */
static char *absolute_database_url(const char *const env[], const char *dir)
{
    const char *url = NULL;
    for (const char *const *e = env; *e; e++)
        if (strncmp(*e, "DATABASE_URL=", 13) == 0)
            url = *e + 13;
    const char *path = strncmp(url, "sqlite:///", 10) == 0 ? url + 10 : NULL;
    if (path && *path != '/' && strcmp(path, ":memory:") != 0)
        return xasprintf("sqlite:///%s/%s", dir, path);
    return xstrdup(url);
}

struct shop_server *shop_start(const char *const extra_env[])
{
    struct shop_server *s = xcalloc(1, sizeof(*s));
    s->port = harness_free_port();
    snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port);
    s->dir = harness_tempdir("shopd-test");
    s->log_path = xasprintf("%s/shopd.log", s->dir);
    const char *root = harness_root();
    char *root_abs = realpath(root, NULL);
    char *listen = xasprintf("SHOPD_LISTEN=127.0.0.1:%d", s->port);
    char *templates = xasprintf("TEMPLATES_DIR=%s/templates", root_abs);
    char *statics = xasprintf("STATIC_DIR=%s/templates/static", root_abs);
    char *database = test_database_is_postgres() ? test_database_url(s->dir) : xstrdup("sqlite:///:memory:");
    char *database_env = xasprintf("DATABASE_URL=%s", database);
    const char *base_env[] = {listen,
                              database_env,
                              "SHOP_ENV=test",
                              "SECRET_KEY=test-secret-key-0123456789abcdef",
                              "RATELIMIT_ENABLED=0",
                              "DISPATCHER_ENABLED=0",
                              "SHOPD_WORKERS=2",
                              "ADMIN_EMAILS=admin@example.com",
                              "LOG_LEVEL=info",
                              templates,
                              statics,
                              NULL};
    /* Extra settings come after the defaults so that they win (putenv order). */
    const char *env[64];
    size_t n = 0;
    for (const char *const *e = base_env; *e; e++)
        env[n++] = *e;
    for (const char *const *e = extra_env; e && *e && n < 63; e++)
        env[n++] = *e;
    env[n] = NULL;
    s->database_url = absolute_database_url(env, s->dir);
    char *bin = harness_bin("shopd");
    const char *argv[] = {bin, NULL};
    s->proc = harness_start(argv, env, s->dir, s->log_path);
    free(bin);
    bool up = false;
    struct http_client *c = http_client_new();
    for (int i = 0; i < 250 && !up; i++) {
        struct http_resp *r = http_request(c, "GET", shop_url(s, "/healthz"), NULL, NULL, NULL);
        up = r->status == 200;
        http_resp_free(r);
        if (!up)
            harness_sleep_ms(20);
    }
    http_client_free(c);
    /* The strings stay referenced by the child's environment only; the parent may free them. */
    free(listen);
    free(templates);
    free(statics);
    free(root_abs);
    free(database);
    free(database_env);
    if (!up) {
        harness_dump_log(s->log_path, 30);
        cr_assert_fail("shopd did not become healthy on port %d", s->port);
    }
    return s;
}

int shop_stop(struct shop_server *s)
{
    if (!s)
        return -1;
    int st = harness_stop(s->proc, 20000);
    harness_rmrf(s->dir);
    free(s->dir);
    free(s->log_path);
    free(s->database_url);
    free(s);
    return st;
}

const char *shop_url(const struct shop_server *s, const char *path)
{
    /* One buffer per thread: the race tests call this from several at once. */
    static _Thread_local char url[512];
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    return url;
}

void shop_register_login(struct shop_server *s, struct http_client *c, const char *email,
                         const char *password)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
    struct http_resp *r = http_json(c, "POST", shop_url(s, "/register"), body);
    cr_assert(r->status == 201 || r->status == 409, "register %s: %ld %s", email, r->status, r->body);
    http_resp_free(r);
    r = http_json(c, "POST", shop_url(s, "/login"), body);
    cr_assert_eq(r->status, 200, "login %s: %ld %s", email, r->status, r->body);
    http_resp_free(r);
}
