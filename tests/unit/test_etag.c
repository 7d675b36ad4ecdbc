/* shopd/etag: If-None-Match against our entity tag. */
#include <criterion/criterion.h>

#include "shopd/etag.h"

Test(etag, matches_the_tag_in_a_list_weakly)
{
    const char *tag = "\"ab12-7\"";
    cr_expect(etag_none_match_hit("\"ab12-7\"", tag));
    cr_expect(etag_none_match_hit("W/\"ab12-7\"", tag));
    cr_expect(etag_none_match_hit("\"x\", \"ab12-7\"", tag));
    cr_expect(etag_none_match_hit("\"x\",W/\"ab12-7\" , \"y\"", tag));
    cr_expect(etag_none_match_hit("*", tag));
    cr_expect(etag_none_match_hit("  *  ", tag));
    cr_expect(etag_none_match_hit("\"ab12-7\"", "W/\"ab12-7\""));
}

Test(etag, other_tags_and_malformed_lists_do_not_match)
{
    const char *tag = "\"ab12-7\"";
    const char *miss[] = {"\"ab12-8\"", "\"ab12-7", "ab12-7",           "\"\"",
                          "",           "*, \"x\"", "\"x\" \"ab12-7\"", "\"x\";\"ab12-7\"",
                          "W/",         "W/ab12-7", "\"ab12-7\"x"};
    for (size_t i = 0; i < sizeof(miss) / sizeof(miss[0]); i++)
        cr_expect_not(etag_none_match_hit(miss[i], tag), "matched %s", miss[i]);
    cr_expect_not(etag_none_match_hit(NULL, tag));
}
