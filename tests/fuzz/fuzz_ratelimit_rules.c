/* libFuzzer target: ratelimitd rules files. Whatever the parser accepts must be a rule set
 * the daemon can use safely: unique names, positive budgets, no overflow in the bucket
 * arithmetic. Errors must name the file and line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimitd/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "";
    struct rld_rules *r = rld_rules_parse((const char *)data, size, "f.rules", err, sizeof(err));
    if (!r) {
        if (strncmp(err, "f.rules:", 8) != 0)
            abort();
        return 0;
    }
    if (r->count == 0)
        abort();
    for (size_t i = 0; i < r->count; i++) {
        const struct rld_rule *x = &r->rules[i];
        size_t n = strlen(x->name);
        if (n == 0 || n > 64 || x->rate < 1 || x->burst < 1 || x->period_s < 1 || x->interval_us < 1 ||
            x->tau_us != x->interval_us * x->burst || x->window_s < 1)
            abort();
        if (rld_rules_find(r, x->name, n) != x)
            abort();
    }
    rld_rules_free(r);
    return 0;
}
