#include "shopd/etag.h"

#include <string.h>

/* Skips optional whitespace. */
static const char *ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

bool etag_none_match_hit(const char *if_none_match, const char *etag)
{
    if (!if_none_match || !etag)
        return false;
    if (strncmp(etag, "W/", 2) == 0)
        etag += 2;
    size_t elen = strlen(etag);
    const char *p = ows(if_none_match);
    if (*p == '*')
        return *ows(p + 1) == '\0';
    bool hit = false;
    while (*p) {
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (*p != '"')
            return false; /* not an entity tag: the list is malformed */
        const char *end = strchr(p + 1, '"');
        if (!end)
            return false;
        size_t len = (size_t)(end + 1 - p);
        if (len == elen && memcmp(p, etag, len) == 0)
            hit = true;
        p = ows(end + 1);
        if (*p == ',')
            p = ows(p + 1);
        else if (*p)
            return false;
    }
    return hit;
}
