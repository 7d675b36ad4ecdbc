/* multipart: a bounded parser of multipart/form-data bodies (RFC 7578), the
 * form encoding browsers use to upload files.
 *
 * No allocation and no copies: the parts point into the caller's body, which
 * must outlive them. Every limit is fixed and checked (boundary length, parts,
 * header bytes per part), so hostile input costs at most one pass over the
 * body; a body that does not follow the grammar is refused as a whole with a
 * short reason, never half read. */
#ifndef SHARED_MULTIPART_H
#define SHARED_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>

#define MULTIPART_MAX_BOUNDARY 70    /* RFC 2046 */
#define MULTIPART_MAX_PART_HEAD 2048 /* header bytes of one part */

struct multipart_part {
    const char *name; /* the form field's name (Content-Disposition name=) */
    size_t name_len;
    const char *filename; /* NULL unless the part is a file (filename=); may be empty */
    size_t filename_len;
    const char *content_type; /* the part's Content-Type value, NULL when absent (what the client claims) */
    size_t content_type_len;
    const char *data; /* the part's body */
    size_t len;
};

/* Copies the boundary parameter of a Content-Type value into out (at least
 * MULTIPART_MAX_BOUNDARY + 1 bytes). False unless the type is
 * multipart/form-data with a boundary of 1 to 70 allowed characters. */
bool multipart_boundary(const char *content_type, char *out, size_t outlen);

/* Splits body (len bytes) at boundary into at most max_parts parts. Returns
 * the number of parts, or -1 with a static reason in *reason for a malformed
 * body or one with more than max_parts parts. */
int multipart_parse(const char *boundary, const char *body, size_t len, struct multipart_part *parts,
                    size_t max_parts, const char **reason);

/* The first part whose name is name, or NULL. */
const struct multipart_part *multipart_find(const struct multipart_part *parts, size_t n, const char *name);

#endif
