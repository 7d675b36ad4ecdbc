/* shared/prom: the exposition text the three daemons write. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "shared/prom.h"
#include "shared/strbuf.h"

static char *take(struct strbuf *b)
{
    return strbuf_take(b, NULL);
}

Test(prom, families_and_plain_samples)
{
    struct strbuf b = {0};
    prom_counter(&b, "x_total", "Things\\done\nhere.", 18446744073709551615u);
    prom_gauge(&b, "x_up_seconds", "Up.", 1764651234.567);
    prom_gauge(&b, "x_ratio", "Ratio.", 0.25);
    prom_gauge(&b, "x_count", "Count.", 3);
    char *s = take(&b);
    cr_assert_str_eq(s, "# HELP x_total Things\\\\done\\nhere.\n# TYPE x_total counter\n"
                        "x_total 18446744073709551615\n"
                        "# HELP x_up_seconds Up.\n# TYPE x_up_seconds gauge\nx_up_seconds 1764651234.567\n"
                        "# HELP x_ratio Ratio.\n# TYPE x_ratio gauge\nx_ratio 0.25\n"
                        "# HELP x_count Count.\n# TYPE x_count gauge\nx_count 3\n");
    free(s);
}

Test(prom, label_values_are_escaped_and_cut_at_a_pair)
{
    char buf[PROM_LABELS_MAX];
    cr_assert_str_eq(prom_labels(buf, sizeof(buf), "rule", "a\"b\\c\nd", "result", "allowed", NULL),
                     "rule=\"a\\\"b\\\\c\\nd\",result=\"allowed\"");
    char small[20];
    cr_assert_str_eq(prom_labels(small, sizeof(small), "a", "1", "long", "too long to fit", NULL), "a=\"1\"");
    struct strbuf b = {0};
    prom_sample(&b, "m", buf, 1.5);
    prom_sample(&b, "m", "", 2);
    prom_sample(&b, "m", NULL, 1.0 / 0.0);
    char *s = take(&b);
    cr_assert_str_eq(s, "m{rule=\"a\\\"b\\\\c\\nd\",result=\"allowed\"} 1.5\nm 2\nm +Inf\n");
    free(s);
}

Test(prom, histograms_are_cumulative_with_inf_sum_and_count)
{
    const double bounds[] = {0.001, 0.0025, 0.1};
    const uint64_t counts[] = {2, 0, 3, 1};
    struct strbuf b = {0};
    prom_family(&b, "h_seconds", PROM_HISTOGRAM, "Time.");
    prom_histogram(&b, "h_seconds", "route=\"a\"", bounds, counts, 3, 0.5);
    prom_histogram(&b, "h_seconds", NULL, bounds, counts, 3, 0.25);
    char *s = take(&b);
    cr_assert_str_eq(s, "# HELP h_seconds Time.\n# TYPE h_seconds histogram\n"
                        "h_seconds_bucket{route=\"a\",le=\"0.001\"} 2\n"
                        "h_seconds_bucket{route=\"a\",le=\"0.0025\"} 2\n"
                        "h_seconds_bucket{route=\"a\",le=\"0.1\"} 5\n"
                        "h_seconds_bucket{route=\"a\",le=\"+Inf\"} 6\n"
                        "h_seconds_sum{route=\"a\"} 0.5\nh_seconds_count{route=\"a\"} 6\n"
                        "h_seconds_bucket{le=\"0.001\"} 2\nh_seconds_bucket{le=\"0.0025\"} 2\n"
                        "h_seconds_bucket{le=\"0.1\"} 5\nh_seconds_bucket{le=\"+Inf\"} 6\n"
                        "h_seconds_sum 0.25\nh_seconds_count 6\n");
    free(s);
}
