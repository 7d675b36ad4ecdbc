#include "shopd/uploads.h"
#include "shared/crypto.h"
#include "shared/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HASH_HEX 32

static const struct {
    enum upload_kind kind;
    const char *ext, *type;
} kinds[] = {
    {UPLOAD_PNG, "png", "image/png"},
    {UPLOAD_JPEG, "jpg", "image/jpeg"},
    {UPLOAD_WEBP, "webp", "image/webp"},
};

enum upload_kind uploads_sniff(const void *data, size_t len)
{
    const unsigned char *p = data;
    if (len >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
        return UPLOAD_PNG;
    if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return UPLOAD_JPEG;
    if (len >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
        return UPLOAD_WEBP;
    return UPLOAD_UNKNOWN;
}

static const char *ext_of(enum upload_kind kind)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (kinds[i].kind == kind)
            return kinds[i].ext;
    return NULL;
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int uploads_store(const char *dir, const void *data, size_t len, enum upload_kind kind, char *name, char *err,
                  size_t errlen)
{
    const char *ext = ext_of(kind);
    if (!ext) {
        snprintf(err, errlen, "not an image type that is stored");
        return -1;
    }
    char hex[CRYPTO_SHA256_HEX_LEN];
    crypto_sha256_hex(data, len, hex);
    snprintf(name, UPLOADS_NAME_MAX + 1, "%.*s.%s", HASH_HEX, hex, ext);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "UPLOADS_DIR=%s: %s", dir, strerror(errno));
        return -1;
    }
    char *tmp_hex = crypto_random_token_hex(8);
    char *tmp = xasprintf("%s/.upload-%s", dir, tmp_hex);
    char *final = xasprintf("%s/%s", dir, name);
    free(tmp_hex);
    int rc = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, final) < 0) {
        snprintf(err, errlen, "%s: %s", final, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    free(tmp);
    free(final);
    return rc;
}

const char *uploads_content_type(const char *name)
{
    size_t n = strlen(name);
    if (n <= HASH_HEX + 1 || name[HASH_HEX] != '.')
        return NULL;
    for (size_t i = 0; i < HASH_HEX; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
            return NULL;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(name + HASH_HEX + 1, kinds[i].ext) == 0)
            return kinds[i].type;
    return NULL;
}
