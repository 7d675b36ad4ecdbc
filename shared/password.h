/* password: password hashing in Werkzeug's storage format.
 *
 * New hashes are scrypt with the OWASP parameters (N=2^15, r=8, p=3), a 16
 * character salt and a 64-byte key, written as Werkzeug writes them:
 *
 *     scrypt:32768:8:3$<salt>$<128 lower-case hex digits>
 *
 * so a Flask application using werkzeug.security.check_password_hash accepts
 * them, and hashes imported from such an application (Werkzeug's scrypt and
 * pbkdf2 forms) verify here. Stored hashes may come from imported data, so
 * verification refuses parameters that would cost more than a few hundred MiB
 * or about a second instead of trusting them. */
#ifndef SHARED_PASSWORD_H
#define SHARED_PASSWORD_H

#include <stdbool.h>

/* Hashes password (a NUL-terminated UTF-8 string, may be empty) with scrypt
 * and a fresh random salt. Returns the stored form above (caller frees).
 * Never returns NULL: aborts if OpenSSL cannot derive the key, which only
 * happens when it is out of memory. */
char *password_hash(const char *password);

/* True when password matches stored. Accepts Werkzeug's forms:
 *   scrypt:N:r:p$salt$hex        (and "scrypt$salt$hex" meaning 32768:8:1)
 *   pbkdf2:DIGEST:ITER$salt$hex  (DIGEST sha1, sha224, sha256, sha384, sha512)
 *   pbkdf2:DIGEST$salt$hex, pbkdf2$salt$hex
 *                                (sha256 and 1000000 iterations, the defaults
 *                                 Werkzeug 3.1 applies to these forms)
 * The key is compared in constant time. Returns false, without crashing or
 * allocating more than a bounded amount, for a NULL argument, any malformed
 * stored string, an empty salt, a digest of the wrong length, or parameters
 * beyond the limits, which keep one verification to about a second of CPU:
 * scrypt N a power of two up to 2^20, r up to 32, p up to 16, N*r*p up to
 * 2^21 and memory up to 256 MiB; pbkdf2 up to 2 million iterations (1
 * million for sha384 and sha512). */
bool password_verify(const char *password, const char *stored);

/* True when stored is not an scrypt hash with the current parameters (or is
 * not a well-formed hash at all), so that a caller who has just verified the
 * password should store password_hash(password) in its place. */
bool password_needs_rehash(const char *stored);

/* Spends the time of one password_verify against a current-parameter hash and
 * discards the result. Call it when there is no stored hash to check (unknown
 * account) so that the answer takes as long as for a wrong password. */
void password_burn_time(const char *password);

#endif
