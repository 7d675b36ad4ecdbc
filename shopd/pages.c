#include "shopd/pages.h"
#include "shopd/cart.h"
#include "shopd/render.h"
#include "shopd/request.h"
#include "shopd/uploads.h"
#include "shared/crypto.h"
#include "shared/xalloc.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *static_root; /* realpath of STATIC_DIR */

int pages_init(const struct shopd_settings *settings, char *err, size_t errlen)
{
    free(static_root);
    static_root = realpath(settings->static_dir, NULL);
    if (!static_root) {
        snprintf(err, errlen, "STATIC_DIR=%s: %s", settings->static_dir, strerror(errno));
        return -1;
    }
    return render_load(settings->templates_dir, err, errlen);
}

void pages_cleanup(void)
{
    free(static_root);
    static_root = NULL;
    render_free();
}

void pages_error(struct request *r, int status, const char *message)
{
    render_error(r, status, message);
}

bool pages_ensure_session(struct request *r)
{
    /* Forms need only a CSRF token, which a visitor cookie carries: no session
       row (and no database write) until login. */
    char csrf[CRYPTO_SHA256_HEX_LEN];
    request_csrf_token(r, csrf);
    return true;
}

void pages_add_cart_notices(struct request *r, json_t *ctx)
{
    if (!request_logged_in(r))
        return;
    json_t *notices = cart_take_notices(r->db, r->session.user_id);
    if (notices && json_array_size(notices))
        json_object_set_new(ctx, "notices", notices);
    else
        json_decref(notices);
}

void pages_home(struct request *r)
{
    render_page(r, 200, "home", "Welcome", "home", NULL);
}

static const char *content_type_of(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},
        {".webp", "image/webp"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".woff2", "font/woff2"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* Sends the open file fd (taken) of st with the cache headers already added:
 * 304 for a matching If-None-Match, no body for HEAD. */
static void send_file(struct request *r, int fd, const struct stat *st, const char *type, const char *etag)
{
    const char *inm = request_header(r, "If-None-Match");
    reply_add_header(r, "ETag", etag);
    struct evbuffer *buf = evbuffer_new();
    if (inm && strcmp(inm, etag) == 0) {
        close(fd);
        reply_buffer(r, 304, NULL, buf);
    } else if (strcmp(r->method, "HEAD") == 0) {
        close(fd);
        reply_buffer(r, 200, type, buf);
    } else {
        evbuffer_add_file(buf, fd, 0, st->st_size); /* takes the fd */
        reply_buffer(r, 200, type, buf);
    }
    evbuffer_free(buf);
}

void pages_upload(struct request *r)
{
    const char *name = r->path + strlen("/uploads/");
    /* Only names that uploads_store makes: no path, no other type, nothing an admin did not upload. */
    const char *type = uploads_content_type(name);
    char *file = type ? xasprintf("%s/%s", r->settings->uploads_dir, name) : NULL;
    struct stat st;
    int fd = file ? open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
    free(file);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        pages_error(r, 404, "Not found");
        return;
    }
    /* The name is the content's hash: it never changes, so caches may keep it for good. */
    reply_add_header(r, "Cache-Control", "public, max-age=31536000, immutable");
    reply_add_header(r, "Content-Security-Policy", "default-src 'none'; sandbox");
    char etag[UPLOADS_NAME_MAX + 3];
    snprintf(etag, sizeof(etag), "\"%s\"", name);
    send_file(r, fd, &st, type, etag);
}

void pages_static(struct request *r)
{
    const char *rel = r->path + strlen("/static/");
    /* Resolve and check that the file is inside the static root: no "..", no symlink escapes. */
    char *joined = xasprintf("%s/%s", static_root, rel);
    char *real = realpath(joined, NULL);
    free(joined);
    size_t rootlen = strlen(static_root);
    struct stat st;
    if (!real || strncmp(real, static_root, rootlen) != 0 || real[rootlen] != '/' || stat(real, &st) < 0 ||
        !S_ISREG(st.st_mode)) {
        free(real);
        pages_error(r, 404, "Not found");
        return;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    const char *type = content_type_of(real);
    free(real);
    if (fd < 0) {
        pages_error(r, 404, "Not found");
        return;
    }
    char etag[64];
    snprintf(etag, sizeof(etag), "\"%lx-%lx\"", (unsigned long)st.st_mtime, (unsigned long)st.st_size);
    reply_add_header(r, "Cache-Control", "public, max-age=3600");
    send_file(r, fd, &st, type, etag);
}
