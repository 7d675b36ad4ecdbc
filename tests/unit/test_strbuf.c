/* strbuf: growth, NUL termination, take, and whole-file reads with a limit. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/strbuf.h"

Test(strbuf, grows_and_stays_terminated)
{
    struct strbuf b = {0};
    for (int i = 0; i < 1000; i++)
        strbuf_addc(&b, (char)('a' + i % 26));
    strbuf_adds(&b, "END");
    strbuf_add(&b, "\0x", 2); /* bytes, not a C string */
    cr_assert_eq(b.len, 1005);
    cr_assert_eq(b.p[b.len], '\0');
    cr_assert_eq(memcmp(b.p + 1000, "END\0x", 5), 0);
    size_t len = 0;
    char *s = strbuf_take(&b, &len);
    cr_assert_eq(len, 1005);
    cr_assert_eq(s[0], 'a');
    cr_assert_null(b.p, "take leaves the buffer empty");
    cr_assert_eq(b.len, 0);
    free(s);
}

Test(strbuf, take_of_nothing_is_an_empty_string)
{
    struct strbuf b = {0};
    size_t len = 99;
    char *s = strbuf_take(&b, &len);
    cr_assert_not_null(s);
    cr_assert_str_eq(s, "");
    cr_assert_eq(len, 0);
    free(s);
}

Test(strbuf, reads_a_file_and_refuses_one_over_the_limit)
{
    char path[] = "/tmp/shop-strbuf-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    char data[10000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)('0' + i % 10);
    cr_assert_eq(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
    close(fd);

    struct strbuf b = {0};
    strbuf_adds(&b, "head:");
    cr_assert_eq(strbuf_read_file(&b, path, sizeof(data)), 0);
    cr_assert_eq(b.len, 5 + sizeof(data));
    cr_assert_eq(memcmp(b.p + 5, data, sizeof(data)), 0);
    cr_assert_eq(b.p[b.len], '\0');
    strbuf_free(&b);

    cr_assert_eq(strbuf_read_file(&b, path, sizeof(data) - 1), -1);
    cr_assert_eq(errno, EFBIG);
    strbuf_free(&b);

    unlink(path);
    errno = 0;
    cr_assert_eq(strbuf_read_file(&b, path, 100), -1);
    cr_assert_eq(errno, ENOENT);
    strbuf_free(&b);
}

Test(strbuf, addf_formats_short_and_long_text_and_reset_keeps_memory)
{
    struct strbuf b = {0};
    strbuf_addf(&b, "%s=%d;", "a", 1);
    cr_assert_str_eq(b.p, "a=1;");
    char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    strbuf_addf(&b, "[%s]%d", big, 42); /* longer than the room reserved at first */
    cr_assert_eq(b.len, 4 + 1 + 4999 + 1 + 2);
    cr_assert_eq(memcmp(b.p + b.len - 4, "x]42", 4), 0);
    cr_assert_eq(b.p[b.len], '\0');
    char *mem = b.p;
    size_t cap = b.cap;
    strbuf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(b.p, "");
    cr_assert_eq(b.p, mem, "reset gave the memory back");
    cr_assert_eq(b.cap, cap);
    strbuf_addf(&b, "%05.1f", 3.14159);
    cr_assert_str_eq(b.p, "003.1");
    strbuf_free(&b);
}
