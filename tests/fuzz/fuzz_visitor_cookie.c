/* Fuzzes the cookies a visitor without a session sends: the visitor id check and
 * the signed flash cookie reader, which must refuse anything it did not write
 * and never read or write out of bounds. A valid signature cannot be guessed,
 * so the target also signs the input as a message and checks that the reader
 * gives the same message back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shopd/visitor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char secret[] = "fuzz-secret";
    char text[VISITOR_FLASH_COOKIE_MAX + 64];
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    visitor_id_valid(text);
    char kind[16], msg[VISITOR_FLASH_MESSAGE_MAX + 1];
    if (visitor_flash_decode(secret, text, 0, kind, sizeof(kind), msg, sizeof(msg)))
        abort(); /* forged: the fuzzer cannot know the key */

    size_t mlen = strlen(text) > VISITOR_FLASH_MESSAGE_MAX ? VISITOR_FLASH_MESSAGE_MAX : strlen(text);
    char cookie[VISITOR_FLASH_COOKIE_MAX];
    if (!visitor_flash_encode(secret, "info", text, 100, cookie, sizeof(cookie)))
        abort();
    if (strcspn(cookie, " \",;\\\r\n") != strlen(cookie))
        abort(); /* not a valid cookie value */
    if (!visitor_flash_decode(secret, cookie, 100, kind, sizeof(kind), msg, sizeof(msg)) ||
        strcmp(kind, "info") != 0 || strlen(msg) != mlen || memcmp(msg, text, mlen) != 0)
        abort();
    if (visitor_flash_decode(secret, cookie, 101, kind, sizeof(kind), msg, sizeof(msg)))
        abort(); /* expired */
    return 0;
}
