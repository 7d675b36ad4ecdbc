/* shopd/visitor: visitor ids, their CSRF tokens and signed flash cookies. */
#include <criterion/criterion.h>
#include <string.h>

#include "shopd/visitor.h"

#define SECRET "test-secret-key-0123456789abcdef"

Test(visitor, ids_are_random_hex_and_checked_strictly)
{
    char a[VISITOR_ID_LEN + 1], b[VISITOR_ID_LEN + 1];
    visitor_new_id(a);
    visitor_new_id(b);
    cr_expect(visitor_id_valid(a), "%s", a);
    cr_expect_str_neq(a, b);
    const char *bad[] = {"",
                         "0123456789abcdef0123456789abcde",
                         "0123456789abcdef0123456789abcdef0",
                         "0123456789ABCDEF0123456789abcdef",
                         "0123456789abcdef0123456789abcdeg",
                         "x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_not(visitor_id_valid(bad[i]), "accepted %s", bad[i]);
}

Test(visitor, csrf_tokens_belong_to_one_id_and_one_key)
{
    char t1[65], t2[65], t3[65];
    visitor_csrf_token(SECRET, "0123456789abcdef0123456789abcdef", t1);
    visitor_csrf_token(SECRET, "0123456789abcdef0123456789abcdee", t2);
    visitor_csrf_token("another secret", "0123456789abcdef0123456789abcdef", t3);
    cr_expect_eq(strlen(t1), 64);
    cr_expect_str_neq(t1, t2, "two visitors share a token");
    cr_expect_str_neq(t1, t3, "the token does not depend on SECRET_KEY");
    char again[65];
    visitor_csrf_token(SECRET, "0123456789abcdef0123456789abcdef", again);
    cr_expect_str_eq(t1, again);
}

Test(visitor, flash_cookies_round_trip_once_signed_and_until_they_expire)
{
    char value[VISITOR_FLASH_COOKIE_MAX], kind[16], msg[512];
    const char *text = "Added 2 \xc3\x97 Apple; \"quotes\", commas & <tags>";
    cr_assert(visitor_flash_encode(SECRET, "success", text, 1000, value, sizeof(value)));
    /* Only cookie-safe characters: no space, quote, comma, semicolon or backslash. */
    cr_expect_eq(strcspn(value, " \",;\\\r\n"), strlen(value), "%s", value);
    cr_assert(visitor_flash_decode(SECRET, value, 1000, kind, sizeof(kind), msg, sizeof(msg)));
    cr_expect_str_eq(kind, "success");
    cr_expect_str_eq(msg, text);
    cr_expect_not(visitor_flash_decode(SECRET, value, 1001, kind, sizeof(kind), msg, sizeof(msg)), "expired");
    cr_expect_not(visitor_flash_decode("other", value, 1000, kind, sizeof(kind), msg, sizeof(msg)),
                  "other key");
    cr_expect_not(visitor_flash_encode(SECRET, "script", "x", 1000, value, sizeof(value)), "unknown kind");
}

Test(visitor, tampered_or_malformed_flash_cookies_are_ignored)
{
    char value[VISITOR_FLASH_COOKIE_MAX], kind[16], msg[512];
    cr_assert(visitor_flash_encode(SECRET, "info", "hello", 2000, value, sizeof(value)));
    char changed[VISITOR_FLASH_COOKIE_MAX];
    strcpy(changed, value);
    changed[strlen("info.2000.")] ^= 1; /* one hex digit of the message */
    cr_expect_not(visitor_flash_decode(SECRET, changed, 1000, kind, sizeof(kind), msg, sizeof(msg)));
    strcpy(changed, value);
    memcpy(changed, "eror", 4); /* another kind, same length */
    cr_expect_not(visitor_flash_decode(SECRET, changed, 1000, kind, sizeof(kind), msg, sizeof(msg)));
    strcpy(changed, value);
    changed[4 + 1] = '9'; /* a later expiry */
    cr_expect_not(visitor_flash_decode(SECRET, changed, 1000, kind, sizeof(kind), msg, sizeof(msg)));
    const char *junk[] = {
        "",
        ".",
        "...",
        "info.1.68656c6c6f.",
        "info.x.68656c6c6f.",
        "info.1.6.",
        "info.9999999999.68656c6c6f.0000000000000000000000000000000000000000000000000000000000000000"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        cr_expect_not(visitor_flash_decode(SECRET, junk[i], 0, kind, sizeof(kind), msg, sizeof(msg)), "%s",
                      junk[i]);
    /* A long message is cut, never overflows. */
    char big[2000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert(visitor_flash_encode(SECRET, "error", big, 2000, value, sizeof(value)));
    char small[8];
    cr_assert(visitor_flash_decode(SECRET, value, 1000, kind, sizeof(kind), small, sizeof(small)));
    cr_expect_str_eq(small, "aaaaaaa");
}
