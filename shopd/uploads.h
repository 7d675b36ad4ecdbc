/* uploads: product images that admins upload, kept as files in UPLOADS_DIR.
 *
 * An image is accepted by what its bytes are (the PNG, JPEG or WebP magic),
 * never by the name or the Content-Type the client gave, so no SVG, HTML or
 * script can be stored and later served from the shop's own origin. A stored
 * file is named by the SHA-256 of its content and the extension of its real
 * type ("3f2a...c1.png"): the name never changes meaning, so it may be cached
 * for ever, and uploading the same image twice stores it once. No HTTP here. */
#ifndef SHOPD_UPLOADS_H
#define SHOPD_UPLOADS_H

#include <stdbool.h>
#include <stddef.h>

enum upload_kind { UPLOAD_UNKNOWN, UPLOAD_PNG, UPLOAD_JPEG, UPLOAD_WEBP };

/* The stored file name: 32 hex digits, a dot, an extension of at most 4. */
#define UPLOADS_NAME_MAX 40
/* Where stored images are served: "/uploads/<name>". */
#define UPLOADS_URL_PREFIX "/uploads/"

/* The image type of data by its magic bytes, UPLOAD_UNKNOWN for anything else. */
enum upload_kind uploads_sniff(const void *data, size_t len);

/* Writes data (of kind, not UPLOAD_UNKNOWN) into dir, creating dir when it is
 * missing, through a temporary file and a rename so that a reader never sees a
 * half-written image. name (UPLOADS_NAME_MAX + 1 bytes) receives the file's
 * name. Returns 0, or -1 with a reason in err. */
int uploads_store(const char *dir, const void *data, size_t len, enum upload_kind kind, char *name, char *err,
                  size_t errlen);

/* The Content-Type for a stored file name, or NULL when name is not one that
 * uploads_store makes (anything else under /uploads/ is not ours to serve). */
const char *uploads_content_type(const char *name);

#endif
