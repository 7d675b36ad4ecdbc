#include "config.h"
#include "log.h"
#include "xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum source { SRC_DEFAULT, SRC_DOTENV, SRC_ENVIRON, SRC_FLAG };
static const char *const source_names[] = {"default", ".env", "environment", "flag"};

extern char **environ;

struct config {
    const struct config_setting *settings;
    char prefix[32]; /* "SHOPD_" for shopd: unknown keys with it are typos worth a warning */
    size_t count;
    char **values;
    enum source *sources;
    bool *from_alias; /* the current value came from the alias name at its level */
};

static long find_setting(const struct config *cfg, const char *name, bool *is_alias)
{
    for (size_t i = 0; i < cfg->count; i++) {
        if (strcmp(cfg->settings[i].name, name) == 0) {
            if (is_alias)
                *is_alias = false;
            return (long)i;
        }
        if (cfg->settings[i].alias && strcmp(cfg->settings[i].alias, name) == 0) {
            if (is_alias)
                *is_alias = true;
            return (long)i;
        }
    }
    return -1;
}

/* Sets a value at a level: a higher level always wins; at the same level the
 * primary name wins over its alias, whatever their order in the file. */
static void set_value(struct config *cfg, size_t i, const char *value, enum source src, bool is_alias)
{
    if (cfg->sources[i] > src)
        return;
    if (cfg->sources[i] == src && is_alias && !cfg->from_alias[i])
        return;
    free(cfg->values[i]);
    cfg->values[i] = xstrdup(value);
    cfg->sources[i] = src;
    cfg->from_alias[i] = is_alias;
}

/* Edit distance of a and b (both short setting names), for suggestions. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 64;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* One .env serves every daemon (and the Flask app), so only keys that carry
 * this program's own prefix and match none of its settings are typos. */
static void warn_if_ours(const struct config *cfg, const char *key, const char *where)
{
    size_t plen = strlen(cfg->prefix);
    if (plen == 0 || strncmp(key, cfg->prefix, plen) != 0 || find_setting(cfg, key, NULL) >= 0)
        return;
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < cfg->count; i++) {
        size_t d = distance(key, cfg->settings[i].name);
        if (d < best_d) {
            best_d = d;
            best = cfg->settings[i].name;
        }
    }
    size_t klen = strlen(key);
    if (best && best_d <= (klen < 12 ? 2 : klen / 4))
        log_warn("%s: unknown setting (in %s); did you mean %s?", key, where, best);
    else
        log_warn("%s: unknown setting (in %s); ignored", key, where);
}

static void dotenv_cb(void *ctx, const char *key, const char *value)
{
    struct config *cfg = ctx;
    bool alias;
    long i = find_setting(cfg, key, &alias);
    if (i >= 0 && !cfg->settings[i].is_flag)
        set_value(cfg, (size_t)i, value, SRC_DOTENV, alias);
    else if (i < 0)
        warn_if_ours(cfg, key, ".env");
}

/* Secrets show as "(set)"; a password inside a URL (redis://:pw@host) as "***". */
static void print_value(const char *name, const char *value)
{
    if (!value) {
        printf("(unset)");
        return;
    }
    if (strstr(name, "SECRET") || strstr(name, "TOKEN") || strstr(name, "PASSWORD")) {
        printf("%s", *value ? "(set, hidden)" : "");
        return;
    }
    const char *scheme = strstr(value, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *colon = scheme ? memchr(scheme + 3, ':', at ? (size_t)(at - scheme - 3) : 0) : NULL;
    if (at && colon) {
        printf("%.*s***%s", (int)(colon + 1 - value), value, at);
        return;
    }
    printf("%s", value);
}

static void print_config(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->count; i++) {
        const struct config_setting *s = &cfg->settings[i];
        if (s->is_flag)
            continue;
        printf("%s=", s->name);
        print_value(s->name, cfg->values[i]);
        printf("  # %s%s\n", source_names[cfg->sources[i]],
               cfg->from_alias[i] && cfg->sources[i] != SRC_DEFAULT ? " (as its older name)" : "");
    }
}

static void print_usage(const char *program, const char *summary, const struct config_setting *settings)
{
    printf("Usage: %s [--env FILE] [--setting-name VALUE ...]\n%s\n\n", program, summary);
    printf("Options:\n  --env FILE        read settings from FILE instead of ./.env\n");
    printf("  --help            show this help and exit\n  --version         show the version and exit\n");
    printf("  --print-config    print every setting in effect, where it came from, and exit\n\n");
    printf("Settings (flag, environment variable, default):\n");
    for (const struct config_setting *s = settings; s->name; s++) {
        char flag[128];
        size_t j = 0;
        flag[j++] = '-';
        flag[j++] = '-';
        for (const char *c = s->name; *c && j < sizeof(flag) - 1; c++)
            flag[j++] = *c == '_' ? '-' : (char)tolower((unsigned char)*c);
        flag[j] = '\0';
        if (s->is_flag)
            printf("  %s\n      %s\n", flag, s->help);
        else
            printf("  %s VALUE (%s, default: %s)\n      %s\n", flag, s->name,
                   s->default_value ? (*s->default_value ? s->default_value : "empty") : "none", s->help);
    }
}

/* Maps "--shopd-listen" to the setting SHOPD_LISTEN. */
static long find_flag(const struct config *cfg, const char *flag, size_t len)
{
    char name[128];
    if (len >= sizeof(name))
        return -1;
    for (size_t k = 0; k < len; k++)
        name[k] = flag[k] == '-' ? '_' : (char)toupper((unsigned char)flag[k]);
    name[len] = '\0';
    bool alias;
    return find_setting(cfg, name, &alias);
}

struct config *config_load(const char *program, const char *version, const char *summary,
                           const struct config_setting *settings, int argc, char **argv, char *err,
                           size_t errlen)
{
    struct config *cfg = xcalloc(1, sizeof(*cfg));
    cfg->settings = settings;
    while (settings[cfg->count].name)
        cfg->count++;
    cfg->values = xcalloc(cfg->count, sizeof(char *));
    cfg->sources = xcalloc(cfg->count, sizeof(enum source));
    cfg->from_alias = xcalloc(cfg->count, sizeof(bool));
    for (size_t i = 0; i < cfg->count; i++)
        cfg->values[i] = xstrdup(settings[i].default_value);
    size_t p = 0;
    for (const char *c = program; *c && p + 2 < sizeof(cfg->prefix); c++)
        cfg->prefix[p++] = (char)toupper((unsigned char)*c);
    cfg->prefix[p++] = '_';
    cfg->prefix[p] = '\0';
    bool print_only = false;

    /* First pass: --help, --version, --env. */
    const char *env_file = NULL;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
            print_usage(program, summary, settings);
            config_free(cfg);
            exit(0);
        }
        if (strcmp(argv[a], "--version") == 0) {
            printf("%s %s\n", program, version);
            config_free(cfg);
            exit(0);
        }
        if (strcmp(argv[a], "--print-config") == 0)
            print_only = true;
        if (strcmp(argv[a], "--env") == 0) {
            if (a + 1 >= argc) {
                snprintf(err, errlen, "--env needs a file name");
                goto fail;
            }
            env_file = argv[++a];
        } else if (strncmp(argv[a], "--env=", 6) == 0) {
            env_file = argv[a] + 6;
        }
    }

    if (env_file) {
        if (config_parse_env_file(env_file, dotenv_cb, cfg, err, errlen) < 0)
            goto fail;
    } else {
        FILE *dotenv = fopen(".env", "r"); /* optional: none is no error */
        if (dotenv) {
            int rc = config_parse_env_stream(dotenv, ".env", dotenv_cb, cfg, err, errlen);
            fclose(dotenv);
            if (rc < 0)
                goto fail;
        }
    }

    for (size_t i = 0; i < cfg->count; i++) {
        if (settings[i].is_flag)
            continue;
        if (settings[i].alias) {
            const char *v = getenv(settings[i].alias);
            if (v)
                set_value(cfg, i, v, SRC_ENVIRON, true);
        }
        const char *v = getenv(settings[i].name);
        if (v)
            set_value(cfg, i, v, SRC_ENVIRON, false);
    }
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        char key[128];
        if (!eq || (size_t)(eq - *e) >= sizeof(key))
            continue;
        memcpy(key, *e, (size_t)(eq - *e));
        key[eq - *e] = '\0';
        warn_if_ours(cfg, key, "the environment");
    }

    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--env") == 0) {
            a++;
            continue;
        }
        if (strncmp(arg, "--env=", 6) == 0 || strcmp(arg, "--print-config") == 0)
            continue;
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", arg);
            goto fail;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        long i = find_flag(cfg, name, len);
        if (i < 0) {
            snprintf(err, errlen, "unknown option '%.*s' (see --help)", (int)(len + 2), arg);
            goto fail;
        }
        if (settings[i].is_flag) {
            if (eq) {
                snprintf(err, errlen, "option '--%.*s' takes no value", (int)len, name);
                goto fail;
            }
            set_value(cfg, (size_t)i, "1", SRC_FLAG, false);
            continue;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (a + 1 < argc) {
            value = argv[++a];
        } else {
            snprintf(err, errlen, "option '%s' needs a value", arg);
            goto fail;
        }
        set_value(cfg, (size_t)i, value, SRC_FLAG, false);
    }
    if (print_only) {
        print_config(cfg);
        config_free(cfg);
        exit(0);
    }
    return cfg;

fail:
    config_free(cfg);
    return NULL;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->count; i++)
        free(cfg->values[i]);
    free(cfg->values);
    free(cfg->sources);
    free(cfg->from_alias);
    free(cfg);
}

const char *config_get(const struct config *cfg, const char *name)
{
    bool alias;
    long i = find_setting(cfg, name, &alias);
    return i < 0 ? NULL : cfg->values[i];
}

const char *config_source(const struct config *cfg, const char *name)
{
    bool alias;
    long i = find_setting(cfg, name, &alias);
    return i < 0 ? "unknown" : source_names[cfg->sources[i]];
}

int config_get_long(const struct config *cfg, const char *name, long min, long max, long *out, char *err,
                    size_t errlen)
{
    const char *v = config_get(cfg, name);
    if (!v || !*v) {
        snprintf(err, errlen, "%s is not set", name);
        return -1;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    while (*end && isspace((unsigned char)*end))
        end++;
    if (errno || *end || n < min || n > max) {
        snprintf(err, errlen, "%s=%s is not a whole number from %ld to %ld", name, v, min, max);
        return -1;
    }
    *out = n;
    return 0;
}

int config_get_bool(const struct config *cfg, const char *name, bool *out, char *err, size_t errlen)
{
    const char *v = config_get(cfg, name);
    if (!v)
        v = "";
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off", ""};
    for (size_t i = 0; i < 4; i++)
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
    for (size_t i = 0; i < 5; i++)
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    snprintf(err, errlen, "%s=%s is not a boolean (use 1 or 0)", name, v);
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int config_parse_env_file(const char *path, void (*cb)(void *ctx, const char *key, const char *value),
                          void *ctx, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = config_parse_env_stream(f, path, cb, ctx, err, errlen);
    fclose(f);
    return rc;
}

int config_parse_env_stream(FILE *f, const char *path,
                            void (*cb)(void *ctx, const char *key, const char *value), void *ctx, char *err,
                            size_t errlen)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0, rc = 0;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        if (strncmp(s, "export", 6) == 0 && isspace((unsigned char)s[6]))
            s = trim(s + 6);
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected KEY=VALUE", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s);
        bool key_ok = *key != '\0';
        for (char *k = key; *k; k++)
            if (!(isalnum((unsigned char)*k) || *k == '_'))
                key_ok = false;
        if (!key_ok) {
            snprintf(err, errlen, "%s:%d: invalid key '%s'", path, lineno, key);
            rc = -1;
            break;
        }
        char *v = trim(eq + 1);
        if (*v == '"' || *v == '\'') {
            char q = *v++;
            char *w = v, *r = v;
            while (*r && *r != q) {
                if (q == '"' && *r == '\\' && r[1]) {
                    r++;
                    *w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : *r;
                    r++;
                } else {
                    *w++ = *r++;
                }
            }
            if (*r != q) {
                snprintf(err, errlen, "%s:%d: unterminated quote", path, lineno);
                rc = -1;
                break;
            }
            *w = '\0';
        } else {
            /* Unquoted: an inline comment starts at " #". */
            for (char *c = v; *c; c++)
                if (*c == '#' && c > v && isspace((unsigned char)c[-1])) {
                    *c = '\0';
                    break;
                }
            v = trim(v);
        }
        cb(ctx, key, v);
    }
    free(line);
    return rc;
}

int config_parse_hostport(const char *text, char *host, size_t hostlen, int *port)
{
    const char *colon;
    const char *h = text;
    size_t hl;
    if (*text == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return -1;
        h = text + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - text);
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}
