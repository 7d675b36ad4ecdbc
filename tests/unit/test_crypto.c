#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "shared/crypto.h"

static bool is_lower_hex(const char *s)
{
    for (; *s; s++)
        if (!strchr("0123456789abcdef", *s))
            return false;
    return true;
}

Test(crypto, sha256_known_vectors)
{
    char hex[CRYPTO_SHA256_HEX_LEN];
    crypto_sha256_hex("abc", 3, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    crypto_sha256_hex("", 0, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    unsigned char raw[CRYPTO_SHA256_LEN];
    crypto_sha256("abc", 3, raw);
    cr_assert_eq(raw[0], 0xba);
    cr_assert_eq(raw[31], 0xad);
}

/* RFC 4231 section 4.2, test case 1. */
Test(crypto, hmac_sha256_rfc4231_case1)
{
    unsigned char key[20];
    memset(key, 0x0b, sizeof(key));
    char hex[CRYPTO_SHA256_HEX_LEN];
    crypto_hmac_sha256_hex(key, sizeof(key), "Hi There", 8, hex);
    cr_assert_str_eq(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

/* RFC 4231 section 4.3, test case 2 (a key shorter than the block). */
Test(crypto, hmac_sha256_rfc4231_case2)
{
    const char *data = "what do ya want for nothing?";
    char hex[CRYPTO_SHA256_HEX_LEN];
    crypto_hmac_sha256_hex("Jefe", 4, data, strlen(data), hex);
    cr_assert_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    unsigned char raw[CRYPTO_SHA256_LEN];
    crypto_hmac_sha256("Jefe", 4, data, strlen(data), raw);
    cr_assert_eq(raw[0], 0x5b);
    cr_assert_eq(raw[31], 0x43);
}

Test(crypto, hmac_sha256_empty_key_and_data)
{
    char hex[CRYPTO_SHA256_HEX_LEN];
    crypto_hmac_sha256_hex(NULL, 0, "", 0, hex);
    cr_assert_str_eq(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

Test(crypto, equal_compares_all_bytes)
{
    cr_assert(crypto_equal("abcdef", "abcdef", 6));
    cr_assert_not(crypto_equal("abcdef", "abcdeg", 6));
    cr_assert_not(crypto_equal("xbcdef", "abcdef", 6));
    cr_assert(crypto_equal("abc", "abd", 2));
    cr_assert(crypto_equal("", "", 0));
}

Test(crypto, hex_encode_and_decode)
{
    const unsigned char bytes[] = {0x00, 0x01, 0xab, 0xff};
    char hex[9];
    crypto_hex_encode(bytes, sizeof(bytes), hex);
    cr_assert_str_eq(hex, "0001abff");

    unsigned char back[4];
    cr_assert(crypto_hex_decode("0001ABff", 8, back, sizeof(back)));
    cr_assert_arr_eq(back, bytes, sizeof(bytes));

    cr_assert_not(crypto_hex_decode("0001abf", 7, back, sizeof(back)), "odd length");
    cr_assert_not(crypto_hex_decode("0001abfg", 8, back, sizeof(back)), "non-hex digit");
    cr_assert_not(crypto_hex_decode("0001ab", 6, back, sizeof(back)), "too short");
    cr_assert_not(crypto_hex_decode("0001abff00", 10, back, sizeof(back)), "too long");
    cr_assert_not(crypto_hex_decode("00 1abff", 8, back, sizeof(back)), "space");
}

static void check_b64(const void *data, size_t len, const char *expected)
{
    char *s = crypto_base64url_encode(data, len);
    cr_assert_str_eq(s, expected, "encoding %zu bytes", len);
    free(s);
}

/* RFC 4648 section 10 vectors, without padding, plus the two characters that
 * differ from standard base64. */
Test(crypto, base64url_known_inputs)
{
    check_b64("", 0, "");
    check_b64("f", 1, "Zg");
    check_b64("fo", 2, "Zm8");
    check_b64("foo", 3, "Zm9v");
    check_b64("foob", 4, "Zm9vYg");
    check_b64("fooba", 5, "Zm9vYmE");
    check_b64("foobar", 6, "Zm9vYmFy");
    check_b64("\xfb\xff", 2, "-_8");
    check_b64("\xfb\xef\xbe", 3, "----");
    check_b64("\xff\xff\xff", 3, "____");
    check_b64("\0\0", 2, "AAA");
}

Test(crypto, random_token_length_and_alphabet)
{
    char *a = crypto_random_token_hex(32);
    char *b = crypto_random_token_hex(32);
    cr_assert_eq(strlen(a), 64);
    cr_assert(is_lower_hex(a), "%s", a);
    cr_assert_str_neq(a, b, "two tokens must differ");
    free(a);
    free(b);

    char *empty = crypto_random_token_hex(0);
    cr_assert_str_eq(empty, "");
    free(empty);
}

Test(crypto, random_bytes_fill_the_buffer)
{
    /* 64 zero bytes staying all zero has probability 2^-512. */
    unsigned char buf[64] = {0};
    unsigned char zero[64] = {0};
    crypto_random_bytes(buf, sizeof(buf));
    cr_assert_neq(memcmp(buf, zero, sizeof(buf)), 0);
}

Test(crypto, uuid4_format_version_and_variant)
{
    char seen[CRYPTO_UUID_LEN] = "";
    for (int n = 0; n < 200; n++) {
        char u[CRYPTO_UUID_LEN];
        memset(u, 'Z', sizeof(u));
        crypto_uuid4(u);
        cr_assert_eq(strlen(u), 36);
        for (int i = 0; i < 36; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23)
                cr_assert_eq(u[i], '-', "%s", u);
            else
                cr_assert_not_null(strchr("0123456789abcdef", u[i]), "%s", u);
        }
        cr_assert_eq(u[14], '4', "version nibble in %s", u);
        cr_assert_not_null(strchr("89ab", u[19]), "variant nibble in %s", u);
        cr_assert_str_neq(u, seen);
        memcpy(seen, u, sizeof(seen));
    }
}
