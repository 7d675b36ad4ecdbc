/* Uploaded images: the type comes from the bytes, stored names are content
 * hashes, and only such names map to a Content-Type. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shared/xalloc.h"
#include "shopd/uploads.h"
#include "tests/support/harness.h"

Test(uploads, the_type_comes_from_the_magic_bytes)
{
    cr_assert_eq(uploads_sniff("\x89PNG\r\n\x1a\n....", 12), UPLOAD_PNG);
    cr_assert_eq(uploads_sniff("\xff\xd8\xff\xe0", 4), UPLOAD_JPEG);
    cr_assert_eq(uploads_sniff("RIFF\0\0\0\0WEBPVP8 ", 16), UPLOAD_WEBP);
    cr_assert_eq(uploads_sniff("RIFF\0\0\0\0WAVEfmt ", 16), UPLOAD_UNKNOWN, "a RIFF that is not WebP");
    cr_assert_eq(uploads_sniff("<svg xmlns=\"http://www.w3.org/2000/svg\"/>", 40), UPLOAD_UNKNOWN);
    cr_assert_eq(uploads_sniff("GIF89a", 6), UPLOAD_UNKNOWN);
    cr_assert_eq(uploads_sniff("\x89PNG\r\n\x1a", 7), UPLOAD_UNKNOWN, "too short for the signature");
    cr_assert_eq(uploads_sniff("", 0), UPLOAD_UNKNOWN);
}

Test(uploads, only_stored_names_have_a_content_type)
{
    cr_assert_str_eq(uploads_content_type("0123456789abcdef0123456789abcdef.png"), "image/png");
    cr_assert_str_eq(uploads_content_type("0123456789abcdef0123456789abcdef.jpg"), "image/jpeg");
    cr_assert_str_eq(uploads_content_type("0123456789abcdef0123456789abcdef.webp"), "image/webp");
    const char *bad[] = {"",
                         "x.png",
                         "0123456789abcdef0123456789abcdef.svg",
                         "0123456789ABCDEF0123456789abcdef.png",
                         "0123456789abcdef0123456789abcdef.png/..",
                         "../0123456789abcdef0123456789abcd.png",
                         "0123456789abcdef0123456789abcdef"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_null(uploads_content_type(bad[i]), "%s", bad[i]);
}

Test(uploads, store_names_the_file_by_its_content_and_creates_the_folder)
{
    char *tmp = harness_tempdir("uploads");
    char *dir = xasprintf("%s/images", tmp);
    const char png[] = "\x89PNG\r\n\x1a\nsome image bytes";
    char name[UPLOADS_NAME_MAX + 1], again[UPLOADS_NAME_MAX + 1], err[256];
    cr_assert_eq(uploads_store(dir, png, sizeof(png) - 1, UPLOAD_PNG, name, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(uploads_content_type(name), "image/png");
    cr_assert_eq(uploads_store(dir, png, sizeof(png) - 1, UPLOAD_PNG, again, err, sizeof(err)), 0);
    cr_assert_str_eq(name, again, "the same bytes, the same name");
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    char back[64];
    size_t n = fread(back, 1, sizeof(back), f);
    fclose(f);
    cr_assert_eq(n, sizeof(png) - 1);
    cr_assert(memcmp(back, png, n) == 0);
    cr_assert_eq(uploads_store(dir, png, 4, UPLOAD_UNKNOWN, name, err, sizeof(err)), -1, "an unknown type");
    char *missing = xasprintf("%s/no/such/parent", tmp);
    cr_assert_eq(uploads_store(missing, png, sizeof(png) - 1, UPLOAD_PNG, name, err, sizeof(err)), -1);
    cr_assert(strstr(err, "UPLOADS_DIR"), "%s", err);
    free(missing);
    free(path);
    harness_rmrf(tmp);
    free(dir);
    free(tmp);
}
