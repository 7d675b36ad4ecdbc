/* Fuzzes what shopd makes of an upload form: the Content-Type's boundary, the
 * multipart/form-data body, and the image check of each file part. Input: the
 * Content-Type value, a newline, then the body. Every part must lie inside the
 * body, and the parser must take one bounded pass whatever the bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/multipart.h"
#include "shopd/uploads.h"

static int inside(const char *p, size_t n, const char *body, size_t len)
{
    return p >= body && n <= len && (size_t)(p - body) <= len - n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl || (size_t)(nl - data) > 512)
        return 0;
    char ct[513];
    memcpy(ct, data, (size_t)(nl - data));
    ct[nl - data] = '\0';
    char boundary[MULTIPART_MAX_BOUNDARY + 1];
    if (!multipart_boundary(ct, boundary, sizeof(boundary)))
        return 0;
    size_t len = size - (size_t)(nl - data) - 1;
    /* A copy of exactly the body, so that a read past it is caught. */
    char *body = malloc(len ? len : 1);
    memcpy(body, nl + 1, len);
    struct multipart_part parts[16];
    const char *reason = NULL;
    int n = multipart_parse(boundary, body, len, parts, 16, &reason);
    if (n < 0 && !reason)
        abort();
    for (int i = 0; i < n; i++) {
        const struct multipart_part *p = &parts[i];
        if (!inside(p->name, p->name_len, body, len) || !inside(p->data, p->len, body, len) ||
            (p->filename && !inside(p->filename, p->filename_len, body, len)) ||
            (p->content_type && !inside(p->content_type, p->content_type_len, body, len)))
            abort();
        uploads_sniff(p->data, p->len);
    }
    if (n > 0)
        multipart_find(parts, (size_t)n, "image");
    free(body);
    return 0;
}
