#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/password.h"

/* Werkzeug-format vectors. Each was computed once with Python's standard
 * library exactly as werkzeug.security._hash_internal does it, e.g.
 *
 *   h = hashlib.scrypt(pw.encode(), salt=salt.encode(), n=n, r=r, p=p,
 *                      maxmem=132*n*r*p, dklen=64).hex()
 *   h = hashlib.pbkdf2_hmac(digest, pw.encode(), salt.encode(), iterations).hex()
 *   stored = f"{method}${salt}${h}"
 *
 * with the salts written by hand in gen_salt's alphabet. */
static const char *const scrypt_8_1 =
    "scrypt:32768:8:1$Kq3xV9mPz2LwR7tB$882ffce43314c8e3d51ef8ec85013c6a9ee478315b4ec6b54e21361bbddf6dc195b2c"
    "8a436f8a1e5530a699a99cd3eef2e503dc70c46e100d2c33ef4d4f13359";
static const char *const scrypt_8_1_pw = "correct horse battery staple";

static const char *const scrypt_8_3 =
    "scrypt:32768:8:3$a1B2c3D4e5F6g7H8$d3ffe6f054996915490b07e270245d0a02d633b9dd3d5c290a9ba3a1ca4f33d81063c"
    "2da5419117e7ae8f6c9a89124f51c03f8b0bcd61c1f425f4a2a1a6b0bc7";
static const char *const scrypt_8_3_pw = "p\xc3\xa4ssw\xc3\xb6rd \xe2\x9c\x93"; /* "pässwörd ✓" */

/* OWASP's most memory-hungry scrypt setting: the limits must let it through. */
static const char *const scrypt_17_8_1 =
    "scrypt:131072:8:1$Big0Scrypt0Salt7$afcf6fce57034856bb798b8575a1982fff791a44b95a4e3b55ae63fd7b4447b5c6cd0"
    "7b5448d7984c43cd425d1c7bbe21a8e8a64059f252014fefbaae4dbb851";
static const char *const scrypt_17_8_1_pw = "owasp";

/* Method "scrypt" alone: Werkzeug reads it as 32768:8:1. */
static const char *const scrypt_bare =
    "scrypt$Dflt0Scrypt1Salt$fcd7deab630c98633b6959ed90bab47838b975c4cd04767effa26f30b7cd5d4ee42b4f986ce7dcff"
    "f60f277136167f28de5ff13aa3c98f0ea57673ba6703da8b";
static const char *const scrypt_bare_pw = "shop";

static const char *const pbkdf2_600k =
    "pbkdf2:sha256:600000$ZxCvBnMaSdFgHjKl$db0fcbdd02f41dfb91db1eef69aed4055863dc2f6341bdd346342c3c71ad39b0";
static const char *const pbkdf2_600k_pw = "hunter2";

static const char *const pbkdf2_260k =
    "pbkdf2:sha256:260000$QwErTyUiOpAsDfGh$798244540c53423cf42f86551ac56ab74e24d86c816097244f4ae183a3787a7a";
static const char *const pbkdf2_260k_pw = "Secret!123";

/* No iteration count: Werkzeug 3.1 uses 1000000. */
static const char *const pbkdf2_legacy =
    "pbkdf2:sha256$LgCy0123456789ab$e6817ac1398ba998e19a80cc7134d7ce1834f90e183f4b5c821ff7012aa9988b";
static const char *const pbkdf2_legacy_pw = "legacy";

static const char *const pbkdf2_sha512 =
    "pbkdf2:sha512:1000$S5l2SaltSaltSalt$78ef87d99555830101763f27fa25e00af8ba8b08fc71b11ade02b0f3999ebf1017d"
    "dbbb01eca84987e4f0675223a27e47fdb512a1d96f06bd0a20caa5604792b";
static const char *const pbkdf2_sha512_pw = "sha512 pw";

static const char *const pbkdf2_sha1 =
    "pbkdf2:sha1:1000$S1SaltSaltSaltSa$c5171346a08a4076470081a4b688689724e9915b";
static const char *const pbkdf2_sha1_pw = "sha1 pw";

/* 128 hex digits: the length an scrypt key has. */
#define HEX128                                                                                               \
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"                                       \
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(password, werkzeug_scrypt_vectors_verify)
{
    cr_assert(password_verify(scrypt_8_1_pw, scrypt_8_1));
    cr_assert(password_verify(scrypt_8_3_pw, scrypt_8_3));
    cr_assert(password_verify(scrypt_bare_pw, scrypt_bare));
}

Test(password, largest_owasp_scrypt_parameters_verify)
{
    cr_assert(password_verify(scrypt_17_8_1_pw, scrypt_17_8_1));
    cr_assert_not(password_verify("OWASP", scrypt_17_8_1));
}

Test(password, werkzeug_pbkdf2_vectors_verify)
{
    cr_assert(password_verify(pbkdf2_600k_pw, pbkdf2_600k));
    cr_assert(password_verify(pbkdf2_260k_pw, pbkdf2_260k));
    cr_assert(password_verify(pbkdf2_legacy_pw, pbkdf2_legacy));
    cr_assert(password_verify(pbkdf2_sha512_pw, pbkdf2_sha512));
    cr_assert(password_verify(pbkdf2_sha1_pw, pbkdf2_sha1));
}

Test(password, wrong_password_fails)
{
    cr_assert_not(password_verify("correct horse battery stapl", scrypt_8_1));
    cr_assert_not(password_verify("", scrypt_8_1));
    cr_assert_not(password_verify("p\xc3\xa4ssw\xc3\xb6rd", scrypt_8_3));
    cr_assert_not(password_verify("Hunter2", pbkdf2_600k));
    cr_assert_not(password_verify("secret!123", pbkdf2_260k));
    cr_assert_not(password_verify("sha1 pw ", pbkdf2_sha1));
    cr_assert_not(password_verify(NULL, scrypt_8_1));
}

Test(password, tampered_hash_fails)
{
    /* Same password, one parameter, salt character or key digit changed. */
    char *s = strdup(pbkdf2_sha1);
    char *last = s + strlen(s) - 1;
    *last = *last == '0' ? '1' : '0';
    cr_assert_not(password_verify(pbkdf2_sha1_pw, s));
    free(s);

    cr_assert_not(password_verify(
        pbkdf2_sha1_pw, "pbkdf2:sha1:1001$S1SaltSaltSaltSa$c5171346a08a4076470081a4b688689724e9915b"));
    cr_assert_not(password_verify(
        pbkdf2_sha1_pw, "pbkdf2:sha1:1000$S1SaltSaltSaltSb$c5171346a08a4076470081a4b688689724e9915b"));
    /* The same key read with another digest. */
    cr_assert_not(password_verify(
        pbkdf2_sha1_pw, "pbkdf2:sha256:1000$S1SaltSaltSaltSa$c5171346a08a4076470081a4b688689724e9915b"));
}

Test(password, upper_case_hex_is_accepted)
{
    char *s = strdup(pbkdf2_sha1);
    for (char *c = strrchr(s, '$'); *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    cr_assert(password_verify(pbkdf2_sha1_pw, s));
    free(s);
}

Test(password, malformed_stored_strings_fail_fast)
{
    static const char *const bad[] = {
        "",
        "scrypt",
        "$",
        "$$",
        "scrypt$$",
        "scrypt:0:0:0$a$b",
        "scrypt:0:8:1$abcdefgh$" HEX128,
        "scrypt:1:8:1$abcdefgh$" HEX128,                    /* N must be >= 2 */
        "scrypt:3:8:1$abcdefgh$" HEX128,                    /* N not a power of two */
        "scrypt:2097152:8:1$abcdefgh$" HEX128,              /* N above 2^20 */
        "scrypt:1048576:8:1$abcdefgh$" HEX128,              /* 1 GiB of memory */
        "scrypt:99999999999999999999:8:1$abcdefgh$" HEX128, /* overflow */
        "scrypt:32768:8:1000$abcdefgh$" HEX128,             /* too much work */
        "scrypt:32768:4096:1$abcdefgh$" HEX128,             /* too much memory */
        "scrypt:262144:8:1$abcdefgh$" HEX128,               /* N*r*p above 2^21 */
        "scrypt:32768:8:17$abcdefgh$" HEX128,               /* p above 16 */
        "scrypt:1024:64:1$abcdefgh$" HEX128,                /* r above 32 */
        "scrypt:2:1:1048576$abcdefgh$" HEX128,              /* long PBKDF2 step */
        "scrypt:65536:1:1$abcdefgh$" HEX128,                /* N >= 2^(16r): OpenSSL refuses */
        "scrypt:32768:8$abcdefgh$" HEX128,                  /* two parameters */
        "scrypt:32768:8:1:1$abcdefgh$" HEX128,              /* four parameters */
        "scrypt:32768:8:$abcdefgh$" HEX128,
        "scrypt:32768:-8:1$abcdefgh$" HEX128,
        "scrypt:32768:+8:1$abcdefgh$" HEX128,
        "scrypt:32768: 8:1$abcdefgh$" HEX128,
        "scrypt:0x8000:8:1$abcdefgh$" HEX128,
        "scrypt:32768:8:1$$" HEX128,        /* empty salt */
        "scrypt:32768:8:1$abcdefgh" HEX128, /* missing '$' */
        "scrypt:32768:8:1abcdefgh" HEX128,
        "scrypt:32768:8:1$abcdefgh$" HEX128 "0",  /* odd-length hex */
        "scrypt:32768:8:1$abcdefgh$" HEX128 "00", /* key too long */
        "scrypt:32768:8:1$abcdefgh$00112233",     /* key too short */
        "scrypt:32768:8:1$abcdefgh$",             /* no key */
        "scrypt:32768:8:1$abcdefgh$zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", /* non-hex */
        "scrypt:32768:8:1$abc$def$" HEX128,                                 /* '$' inside the key */
        "SCRYPT:32768:8:1$abcdefgh$" HEX128,
        "bcrypt:12$abcdefgh$" HEX128,
        "plain$$secret",
        "pbkdf2:sha256:0$abcdefgh$00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        "pbkdf2:sha512:1000001$abcdefgh$" HEX128,
        "pbkdf2:sha256:2000001$abcdefgh$00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        "pbkdf2:sha256:99999999999$abcdefgh$00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        "pbkdf2:sha256:1000:1$abcdefgh$00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        "pbkdf2:md5:1000$abcdefgh$00112233445566778899aabbccddeeff",
        "pbkdf2:sha3_256:1000$abcdefgh$00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        "pbkdf2::1000$abcdefgh$00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        "pbkdf2:sha256:1000$abcdefgh$" HEX128, /* 64-byte key for a 32-byte digest */
        "pbkdf2:sha256:1000$abcdefgh$0011",
        ":::$a$b",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        double t0 = now();
        cr_assert_not(password_verify("password", bad[i]), "accepted %s", bad[i]);
        /* Refused before any key derivation: nothing here should take long. */
        cr_assert_lt(now() - t0, 0.5, "slow to refuse %s", bad[i]);
        cr_assert(password_needs_rehash(bad[i]), "%s", bad[i]);
    }
    cr_assert_not(password_verify("password", NULL));
}

Test(password, hash_then_verify_round_trip)
{
    const char *pw = "Tr0ub4dor&3 \xc3\xa9t\xc3\xa9";
    char *h = password_hash(pw);
    cr_assert_not_null(h);
    cr_assert(password_verify(pw, h), "%s", h);
    cr_assert_not(password_verify("Tr0ub4dor&3", h));
    cr_assert_not(password_needs_rehash(h));
    free(h);

    char *empty = password_hash("");
    cr_assert(password_verify("", empty));
    cr_assert_not(password_verify(" ", empty));
    free(empty);
}

Test(password, hash_has_werkzeug_format)
{
    char *h = password_hash("x");
    cr_assert_eq(strlen(h), strlen("scrypt:32768:8:3$") + 16 + 1 + 128, "%s", h);
    cr_assert_eq(strncmp(h, "scrypt:32768:8:3$", 17), 0, "%s", h);
    const char *salt = h + 17;
    for (int i = 0; i < 16; i++)
        cr_assert_not_null(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", salt[i]),
                           "%s", h);
    cr_assert_eq(salt[16], '$', "%s", h);
    for (const char *c = salt + 17; *c; c++)
        cr_assert_not_null(strchr("0123456789abcdef", *c), "%s", h);
    free(h);
}

Test(password, two_hashes_of_one_password_differ)
{
    char *a = password_hash("same");
    char *b = password_hash("same");
    cr_assert_str_neq(a, b);
    cr_assert_neq(strncmp(a + 17, b + 17, 16), 0, "salts differ");
    cr_assert(password_verify("same", a));
    cr_assert(password_verify("same", b));
    free(a);
    free(b);
}

Test(password, needs_rehash_only_for_other_parameters)
{
    cr_assert(password_needs_rehash(scrypt_8_1));
    cr_assert(password_needs_rehash(scrypt_bare));
    cr_assert(password_needs_rehash(pbkdf2_600k));
    cr_assert(password_needs_rehash(pbkdf2_legacy));
    cr_assert_not(password_needs_rehash(scrypt_8_3));
    cr_assert(password_needs_rehash(NULL));
    cr_assert(password_needs_rehash("scrypt:32768:8:3$salt$00"));
}

Test(password, burn_time_costs_like_a_verify)
{
    /* A malformed dummy would return in microseconds; a real one costs about
     * what verifying a current hash does. The bound is loose so that a busy
     * machine cannot make it fail. */
    double t0 = now();
    cr_assert_not(password_verify("wrong", scrypt_8_3));
    double verify = now() - t0;
    t0 = now();
    password_burn_time("wrong");
    password_burn_time(NULL);
    double burn = (now() - t0) / 2;
    cr_assert_gt(burn, verify / 10, "burn %.3fs, verify %.3fs", burn, verify);
}
