/* strbuf: a growing, always NUL-terminated byte string, and whole-file reads
 * into one. A zeroed struct strbuf is empty and ready. */
#ifndef SHARED_STRBUF_H
#define SHARED_STRBUF_H

#include <stddef.h>

struct strbuf {
    char *p; /* NULL until something is added or reserved */
    size_t len, cap;
};

/* Makes room for at least more further bytes (and the NUL). */
void strbuf_reserve(struct strbuf *b, size_t more);
void strbuf_add(struct strbuf *b, const void *data, size_t n);
void strbuf_adds(struct strbuf *b, const char *s);
void strbuf_addc(struct strbuf *b, char c);
/* Appends printf-style formatted text. */
void strbuf_addf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empties b but keeps its memory for the next use. */
void strbuf_reset(struct strbuf *b);
/* Returns the string, never NULL (an empty one when nothing was added), and
 * *len its length when len is not NULL; b is empty again. Caller frees. */
char *strbuf_take(struct strbuf *b, size_t *len);
void strbuf_free(struct strbuf *b);

/* Appends the whole file at path to b. Returns 0, or -1 with errno set (EFBIG
 * when the file holds more than max bytes); b keeps what it had plus, on
 * failure, possibly part of the file. */
int strbuf_read_file(struct strbuf *b, const char *path, size_t max);

#endif
