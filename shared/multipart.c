#include "shared/multipart.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* RFC 2046 bchars; a space may not end the boundary, which the caller checks. */
static bool bchar(unsigned char c)
{
    return c && (isalnum(c) || strchr("'()+_,-./:=? ", c) != NULL);
}

bool multipart_boundary(const char *ct, char *out, size_t outlen)
{
    if (!ct || outlen < MULTIPART_MAX_BOUNDARY + 1)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, "multipart/form-data", 19) != 0)
        return false;
    const char *p = ct + 19;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != ';')
            return false;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ';')
            p++;
        size_t nlen = (size_t)(p - name);
        if (*p != '=')
            return false;
        p++;
        const char *val;
        size_t vlen = 0;
        if (*p == '"') {
            val = ++p;
            while (p[vlen] && p[vlen] != '"')
                vlen++;
            if (p[vlen] != '"')
                return false;
            p += vlen + 1;
        } else {
            val = p;
            while (p[vlen] && p[vlen] != ';' && p[vlen] != ' ' && p[vlen] != '\t')
                vlen++;
            p += vlen;
        }
        if (nlen == 8 && strncasecmp(name, "boundary", 8) == 0) {
            if (vlen == 0 || vlen > MULTIPART_MAX_BOUNDARY)
                return false;
            for (size_t i = 0; i < vlen; i++)
                if (!bchar((unsigned char)val[i]))
                    return false;
            if (val[vlen - 1] == ' ')
                return false;
            memcpy(out, val, vlen);
            out[vlen] = '\0';
            return true;
        }
    }
    return false;
}

/* A parameter of a Content-Disposition value: name="value" (quoted, as browsers
 * send it; a quote inside is sent as %22) or name=token. */
static bool disposition_param(const char *v, size_t n, const char *param, const char **out, size_t *outlen)
{
    size_t plen = strlen(param);
    size_t i = 0;
    while (i < n) {
        while (i < n && v[i] != ';')
            i++;
        if (i >= n)
            return false;
        i++;
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (n - i > plen && strncasecmp(v + i, param, plen) == 0 && v[i + plen] == '=') {
            i += plen + 1;
            if (i < n && v[i] == '"') {
                size_t start = ++i;
                while (i < n && v[i] != '"')
                    i++;
                if (i >= n)
                    return false;
                *out = v + start;
                *outlen = i - start;
                return true;
            }
            size_t start = i;
            while (i < n && v[i] != ';' && v[i] != ' ' && v[i] != '\t')
                i++;
            *out = v + start;
            *outlen = i - start;
            return true;
        }
    }
    return false;
}

/* Reads the header lines of one part (head, n bytes, without the blank line). */
static bool part_head(const char *head, size_t n, struct multipart_part *part, const char **reason)
{
    bool disposition = false;
    size_t i = 0;
    while (i < n) {
        const char *line = head + i;
        const char *end = memmem(line, n - i, "\r\n", 2);
        size_t llen = end ? (size_t)(end - line) : n - i;
        i += llen + (end ? 2 : 0);
        const char *colon = memchr(line, ':', llen);
        if (!colon || colon == line) {
            *reason = "malformed part header";
            return false;
        }
        size_t nlen = (size_t)(colon - line);
        const char *v = colon + 1;
        size_t vlen = llen - nlen - 1;
        while (vlen && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        for (size_t k = 0; k < llen; k++)
            if ((unsigned char)line[k] < 0x20 && line[k] != '\t') {
                *reason = "control character in a part header";
                return false;
            }
        if (nlen == 19 && strncasecmp(line, "Content-Disposition", 19) == 0) {
            if (disposition || vlen < 9 || strncasecmp(v, "form-data", 9) != 0 ||
                !disposition_param(v, vlen, "name", &part->name, &part->name_len)) {
                *reason = "a part without a form-data name";
                return false;
            }
            disposition = true;
            if (!disposition_param(v, vlen, "filename", &part->filename, &part->filename_len))
                part->filename = NULL;
        } else if (nlen == 12 && strncasecmp(line, "Content-Type", 12) == 0) {
            part->content_type = v;
            part->content_type_len = vlen;
        }
    }
    if (!disposition) {
        *reason = "a part without Content-Disposition";
        return false;
    }
    return true;
}

int multipart_parse(const char *boundary, const char *body, size_t len, struct multipart_part *parts,
                    size_t max_parts, const char **reason)
{
    size_t blen = boundary ? strlen(boundary) : 0;
    if (blen == 0 || blen > MULTIPART_MAX_BOUNDARY) {
        *reason = "bad boundary";
        return -1;
    }
    /* "\r\n--" boundary: what ends each part's data. */
    char delim[MULTIPART_MAX_BOUNDARY + 5];
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary, blen);
    size_t dlen = blen + 4;

    /* The first delimiter may follow a preamble; it has no CRLF before it at the very start. */
    size_t pos;
    if (len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0) {
        pos = dlen - 2;
    } else {
        const char *first = memmem(body, len, delim, dlen);
        if (!first) {
            *reason = "no boundary in the body";
            return -1;
        }
        pos = (size_t)(first - body) + dlen;
    }
    size_t n = 0;
    for (;;) {
        /* After a delimiter: "--" closes the body, CRLF starts a part. */
        if (len - pos >= 2 && body[pos] == '-' && body[pos + 1] == '-')
            return (int)n;
        if (len - pos < 2 || body[pos] != '\r' || body[pos + 1] != '\n') {
            *reason = "malformed boundary line";
            return -1;
        }
        pos += 2;
        if (n == max_parts) {
            *reason = "too many parts";
            return -1;
        }
        size_t window = len - pos < MULTIPART_MAX_PART_HEAD + 4 ? len - pos : MULTIPART_MAX_PART_HEAD + 4;
        const char *blank = window >= 2 && body[pos] == '\r' && body[pos + 1] == '\n'
                                ? body + pos - 2 /* no header lines at all */
                                : memmem(body + pos, window, "\r\n\r\n", 4);
        if (!blank) {
            *reason =
                len - pos > MULTIPART_MAX_PART_HEAD ? "part header too long" : "unterminated part header";
            return -1;
        }
        struct multipart_part *part = &parts[n];
        memset(part, 0, sizeof(*part));
        size_t head_len = blank >= body + pos ? (size_t)(blank - (body + pos)) : 0;
        if (!part_head(body + pos, head_len, part, reason))
            return -1;
        pos = (size_t)(blank - body) + 4;
        const char *end = memmem(body + pos, len - pos, delim, dlen);
        if (!end) {
            *reason = "unterminated part";
            return -1;
        }
        part->data = body + pos;
        part->len = (size_t)(end - (body + pos));
        pos = (size_t)(end - body) + dlen;
        n++;
    }
}

const struct multipart_part *multipart_find(const struct multipart_part *parts, size_t n, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (parts[i].name_len == nl && memcmp(parts[i].name, name, nl) == 0)
            return &parts[i];
    return NULL;
}
