/* libFuzzer target: strict request framing on arbitrary bytes. The input is
 * scanned whole and again in pieces whose sizes come from its first byte; both
 * scans must find the same requests and the same refusal at the same byte, and
 * a scan never reports more bytes used than it was given. */
#include <stdint.h>
#include <stdlib.h>

#include "shared/h1frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct result {
    int requests, status;
    size_t at;
};

static struct result run(const char *p, size_t len, size_t step)
{
    struct h1frame f;
    h1frame_init(&f, 512, 4096);
    struct result r = {0, 0, 0};
    size_t at = 0;
    while (at < len) {
        size_t piece = len - at > step ? step : len - at;
        size_t off = 0;
        while (off < piece) {
            size_t used = 0;
            enum h1frame_event ev = h1frame_scan(&f, p + at + off, piece - off, &used);
            if (used > piece - off)
                abort();
            off += used;
            if (ev == H1FRAME_DONE)
                r.requests++;
            if (ev == H1FRAME_ERROR) {
                if (f.status < 400 || f.reason == NULL)
                    abort();
                r.status = f.status;
                r.at = at + off;
                return r;
            }
            if (ev == H1FRAME_MORE && off != piece)
                abort();
        }
        at += piece;
    }
    r.at = len;
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    const char *p = (const char *)data + 1;
    struct result whole = run(p, size - 1, size);
    struct result pieces = run(p, size - 1, step);
    if (whole.requests != pieces.requests || whole.status != pieces.status || whole.at != pieces.at)
        abort();
    return 0;
}
