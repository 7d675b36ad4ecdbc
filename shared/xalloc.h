/* xalloc: allocation that never returns NULL.
 *
 * Every allocation in the project goes through these helpers. On out-of-memory
 * they log one line and abort, so callers never check for NULL (the Redis way:
 * a daemon that cannot allocate cannot do anything useful anyway). */
#ifndef SHARED_XALLOC_H
#define SHARED_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
/* Returns a heap copy of s (caller frees); NULL stays NULL. */
char *xstrdup(const char *s);
/* Returns a heap copy of the first n bytes of s, NUL-terminated (caller frees). */
char *xstrndup(const char *s, size_t n);
/* printf into a fresh heap string (caller frees). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
