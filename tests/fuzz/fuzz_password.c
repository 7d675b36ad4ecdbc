/* libFuzzer target: arbitrary bytes as a stored password hash.
 *
 * Stored hashes come from the database, which may hold data imported from
 * elsewhere, so password_verify must refuse anything malformed without crashing
 * and must bound the memory and time that hostile parameters can demand. The
 * limits still allow inputs that take a couple of seconds (scrypt at N*r*p =
 * 2^22, pbkdf2 at 10 million iterations): run with -timeout=30.
 *
 * The corpus holds well-formed hashes of "password" with cheap parameters so
 * that mutations reach the key derivation and the comparison. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/password.h"
#include "shared/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The database hands out NUL-terminated text; an embedded NUL just ends it. */
    char *stored = xstrndup((const char *)data, size);
    bool ok = password_verify("password", stored);
    bool rehash = password_needs_rehash(stored);
    /* A hash that verifies is well-formed, and only scrypt with the current
     * parameters escapes a rehash, so both cannot say "current" for junk. */
    if (!ok && !rehash && strncmp(stored, "scrypt:32768:8:3$", 17) != 0)
        abort();
    free(stored);
    return 0;
}
