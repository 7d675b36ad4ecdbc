/* config: settings from defaults, .env, environment and command-line flags.
 *
 * Precedence, lowest first: the default, `.env` in the working directory (or the
 * file given by `--env FILE`), an environment variable of the same name, a flag.
 * A setting NAME_WITH_UNDERSCORES is given on the command line as
 * `--name-with-underscores VALUE` or `--name-with-underscores=VALUE`.
 * Keys in .env that no setting declares are ignored: one .env serves every daemon
 * (and the Flask app's FLASK_APP / FLASK_ENV); but a key in .env or the
 * environment that starts with the program's own prefix (SHOPD_ for shopd) and
 * names none of its settings is a typo: it is logged as a warning naming the
 * closest setting ("SHOPD_LISTN: unknown setting (in .env); did you mean
 * SHOPD_LISTEN?"). */
#ifndef SHARED_CONFIG_H
#define SHARED_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct config_setting {
    const char *name;          /* e.g. "SHOPD_LISTEN" */
    const char *default_value; /* NULL: unset unless given */
    const char *help;          /* one line for --help */
    const char *alias;         /* optional older name, weaker than name at each level (REGION_NAME) */
    bool is_flag;              /* a command-line switch without value (--create-table); reads as "1" */
};

struct config;

/* Loads every setting of the NULL-name-terminated table. `--help` prints usage
 * (summary line, then the settings) and exits 0; `--version` prints version and
 * exits 0; `--print-config` prints each setting in effect (NAME=value, secrets
 * hidden, and where it came from) and exits 0. Returns a config the caller frees with config_free(), or NULL
 * with a one-line reason in err. */
struct config *config_load(const char *program, const char *version, const char *summary,
                           const struct config_setting *settings, int argc, char **argv, char *err,
                           size_t errlen);
void config_free(struct config *cfg);

/* Value of a declared setting, or NULL when unset. Owned by cfg. */
const char *config_get(const struct config *cfg, const char *name);
/* Where the value came from: "default", ".env", "environment", "flag" (for messages). */
const char *config_source(const struct config *cfg, const char *name);

/* Parses a setting as an integer in [min, max]. Returns 0, or -1 with a one-line reason in err. */
int config_get_long(const struct config *cfg, const char *name, long min, long max, long *out, char *err,
                    size_t errlen);
/* Parses 1/0, true/false, yes/no, on/off. Returns 0, or -1 with a reason in err. */
int config_get_bool(const struct config *cfg, const char *name, bool *out, char *err, size_t errlen);

/* Parses one .env file into callback calls (key, value). Handles comments, blank
 * lines, `export KEY=...`, single and double quotes (with \n, \" escapes in double
 * quotes). Returns 0, or -1 with a reason (file and line) in err. Exposed for tests. */
int config_parse_env_file(const char *path, void (*cb)(void *ctx, const char *key, const char *value),
                          void *ctx, char *err, size_t errlen);

/* The same for an open stream; name is used in messages. Does not close f. */
#include <stdio.h>
int config_parse_env_stream(FILE *f, const char *name,
                            void (*cb)(void *ctx, const char *key, const char *value), void *ctx, char *err,
                            size_t errlen);

/* Splits "host:port" ("[v6]:port" too) into host and port. Returns 0 or -1. */
int config_parse_hostport(const char *text, char *host, size_t hostlen, int *port);

#endif
