/* The multipart/form-data parser: what browsers send, the boundary forms of
 * Content-Type, and refusal (never a partial answer) of bodies that break the
 * grammar or the limits. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "shared/multipart.h"

#define B "----WebKitFormBoundaryZ9"

static int parse(const char *body, struct multipart_part *parts, size_t max, const char **reason)
{
    *reason = NULL;
    return multipart_parse(B, body, strlen(body), parts, max, reason);
}

static bool equals(const char *p, size_t n, const char *text)
{
    return p && n == strlen(text) && memcmp(p, text, n) == 0;
}

Test(multipart, boundary_from_content_type)
{
    char b[MULTIPART_MAX_BOUNDARY + 1];
    cr_assert(multipart_boundary("multipart/form-data; boundary=" B, b, sizeof(b)));
    cr_assert_str_eq(b, B);
    cr_assert(multipart_boundary("Multipart/Form-Data; charset=utf-8; BOUNDARY=\"a b'c\"", b, sizeof(b)));
    cr_assert_str_eq(b, "a b'c");
    cr_assert_not(multipart_boundary("multipart/mixed; boundary=x", b, sizeof(b)));
    cr_assert_not(multipart_boundary("multipart/form-data", b, sizeof(b)));
    cr_assert_not(multipart_boundary("multipart/form-data; boundary=", b, sizeof(b)));
    cr_assert_not(multipart_boundary("multipart/form-data; boundary=\"unterminated", b, sizeof(b)));
    cr_assert_not(multipart_boundary("multipart/form-data; boundary=a<b", b, sizeof(b)));
    char long71[128] = "multipart/form-data; boundary=";
    memset(long71 + strlen(long71), 'x', 71);
    cr_assert_not(multipart_boundary(long71, b, sizeof(b)), "over 70 characters");
    cr_assert_not(multipart_boundary(NULL, b, sizeof(b)));
}

Test(multipart, a_browser_upload_form)
{
    const char *body = "--" B "\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\nabc\r\n"
                       "--" B "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"kiwi.png\"\r\n"
                       "Content-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n--not-the-end\r\n"
                       "--" B "--\r\n";
    struct multipart_part parts[4];
    const char *reason;
    cr_assert_eq(parse(body, parts, 4, &reason), 2, "%s", reason ? reason : "");
    cr_assert(equals(parts[0].name, parts[0].name_len, "csrf_token"));
    cr_assert_null(parts[0].filename);
    cr_assert(equals(parts[0].data, parts[0].len, "abc"));
    const struct multipart_part *img = multipart_find(parts, 2, "image");
    cr_assert_not_null(img);
    cr_assert(equals(img->filename, img->filename_len, "kiwi.png"));
    cr_assert(equals(img->content_type, img->content_type_len, "image/png"));
    cr_assert(equals(img->data, img->len, "\x89PNG\r\n\x1a\n--not-the-end"), "a near-boundary stays data");
    cr_assert_null(multipart_find(parts, 2, "other"));
}

Test(multipart, preamble_empty_values_and_an_empty_filename)
{
    const char *body =
        "ignored preamble\r\n--" B "\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n"
        "--" B "\r\ncontent-disposition: form-data; name=\"f\"; filename=\"\"\r\n\r\n\r\n--" B "--";
    struct multipart_part parts[4];
    const char *reason;
    cr_assert_eq(parse(body, parts, 4, &reason), 2, "%s", reason ? reason : "");
    cr_assert_eq(parts[0].len, 0);
    cr_assert(equals(parts[0].name, parts[0].name_len, "a"));
    cr_assert_not_null(parts[1].filename, "an empty file input still names a file part");
    cr_assert_eq(parts[1].filename_len, 0);
}

Test(multipart, malformed_bodies_are_refused_with_a_reason)
{
    const char *bad[] = {
        "",
        "no boundary at all",
        "--" B "\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
        "--" B "\r\nContent-Disposition: form-data; name=\"a\"\r\nno blank line",
        "--" B "\r\nContent-Type: text/plain\r\n\r\nno disposition\r\n--" B "--",
        "--" B "\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--" B "--",
        "--" B "\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--" B "--",
        "--" B "\r\nno colon here\r\n\r\nx\r\n--" B "--",
        "--" B "\r\nContent-Disposition: form-data; name=\"a\x01\"\r\n\r\nx\r\n--" B "--",
        "--" B "junk\r\n",
        "--" B "\r\n\r\nno headers\r\n--" B "--",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct multipart_part parts[4];
        const char *reason;
        cr_expect_eq(parse(bad[i], parts, 4, &reason), -1, "body %zu accepted", i);
        cr_expect_not_null(reason, "body %zu: no reason", i);
    }
}

Test(multipart, limits_on_parts_and_part_headers)
{
    const char *part = "--" B "\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n";
    char body[4096] = "";
    for (int i = 0; i < 5; i++)
        strcat(body, part);
    strcat(body, "--" B "--");
    struct multipart_part parts[4];
    const char *reason;
    cr_assert_eq(parse(body, parts, 4, &reason), -1);
    cr_assert_str_eq(reason, "too many parts");
    struct multipart_part five[5];
    cr_assert_eq(parse(body, five, 5, &reason), 5);

    char big[MULTIPART_MAX_PART_HEAD + 512];
    int n = snprintf(big, sizeof(big), "--" B "\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Pad: ");
    memset(big + n, 'p', MULTIPART_MAX_PART_HEAD);
    strcpy(big + n + MULTIPART_MAX_PART_HEAD, "\r\n\r\nx\r\n--" B "--");
    cr_assert_eq(parse(big, parts, 4, &reason), -1);
    cr_assert_str_eq(reason, "part header too long");
}
