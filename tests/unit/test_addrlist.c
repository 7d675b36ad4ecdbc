/* addrlist: the TRUSTED_PROXIES lists of shopd and the balancer. */
#include <criterion/criterion.h>

#include "shared/addrlist.h"

Test(addrlist, exact_entries_separated_by_commas_or_spaces)
{
    const char *list = "127.0.0.1, 10.0.0.2 ::1,192.0.2.10";
    cr_assert(addrlist_contains(list, "127.0.0.1"));
    cr_assert(addrlist_contains(list, "10.0.0.2"));
    cr_assert(addrlist_contains(list, "::1"));
    cr_assert(addrlist_contains(list, "192.0.2.10"));
    cr_assert_not(addrlist_contains(list, "192.0.2.1"), "a prefix of an entry is not the entry");
    cr_assert_not(addrlist_contains(list, "27.0.0.1"), "nor is a suffix");
    cr_assert_not(addrlist_contains(list, ""));
}

Test(addrlist, mapped_ipv4_and_empty_lists)
{
    cr_assert(addrlist_contains("127.0.0.1", "::ffff:127.0.0.1"));
    cr_assert_not(addrlist_contains("", "127.0.0.1"));
    cr_assert_not(addrlist_contains(NULL, "127.0.0.1"));
    cr_assert_not(addrlist_contains(" , ,", "127.0.0.1"));
}
