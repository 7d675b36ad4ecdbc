/* rules: the budgets of ratelimitd, read from the rules file.
 *
 * One rule per line:  name  rate/period  burst=N  [shadow]
 * e.g. "login 20/1m burst=10": refill 20 tokens a minute, hold at most 10.
 * period is a count with a unit s, m or h ("1m", "30s", "h"). '#' starts a comment. */
#ifndef RATELIMITD_RULES_H
#define RATELIMITD_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rld_rule {
    char name[65];
    long rate;           /* tokens per period */
    long period_s;       /* period in seconds */
    long burst;          /* bucket capacity */
    bool shadow;         /* decide and log, but always allow */
    int64_t interval_us; /* time to earn one token (GCRA emission interval), at least 1 */
    int64_t tau_us;      /* time to refill a whole burst: interval_us * burst */
    long window_s;       /* tau in whole seconds, rounded up: the window advertised to clients */
};

struct rld_rules {
    struct rld_rule *rules;
    size_t count;
};

/* Parses rules text of len bytes; origin names it in messages ("file:line: reason").
 * Returns a rule set the caller frees with rld_rules_free(), or NULL with a one-line
 * reason in err. An empty set (no rules at all) is an error. */
struct rld_rules *rld_rules_parse(const char *text, size_t len, const char *origin, char *err, size_t errlen);
/* Reads and parses the file at path, as rld_rules_parse(). */
struct rld_rules *rld_rules_load(const char *path, char *err, size_t errlen);
void rld_rules_free(struct rld_rules *rules);
/* The rule called name (len bytes, not NUL-terminated), or NULL. Owned by rules. */
const struct rld_rule *rld_rules_find(const struct rld_rules *rules, const char *name, size_t len);

#endif
