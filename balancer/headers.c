#include "headers.h"

#include <string.h>
#include <strings.h>

static bool name_is(const char *name, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && strncasecmp(name, lit, n) == 0;
}

bool headers_is_hop_by_hop(const char *name, size_t len)
{
    switch (len) {
    case 2:
        return name_is(name, len, "te");
    case 7:
        return name_is(name, len, "upgrade") || name_is(name, len, "trailer");
    case 10:
        return name_is(name, len, "connection") || name_is(name, len, "keep-alive");
    case 16:
        return name_is(name, len, "proxy-connection");
    case 18:
        return name_is(name, len, "proxy-authenticate");
    case 19:
        return name_is(name, len, "proxy-authorization");
    default:
        return false;
    }
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

bool headers_list_has_token(const char *value, size_t vlen, const char *token, size_t tlen)
{
    size_t i = 0;
    while (i < vlen) {
        while (i < vlen && (is_ows(value[i]) || value[i] == ','))
            i++;
        size_t start = i;
        while (i < vlen && value[i] != ',')
            i++;
        size_t end = i;
        while (end > start && is_ows(value[end - 1]))
            end--;
        if (end - start == tlen && tlen > 0 && strncasecmp(value + start, token, tlen) == 0)
            return true;
    }
    return false;
}

long headers_build_xff(const char *existing, size_t elen, const char *client_ip, char *out, size_t outlen)
{
    size_t iplen = strlen(client_ip);
    while (existing && elen > 0 && is_ows(existing[elen - 1]))
        elen--;
    while (existing && elen > 0 && is_ows(existing[0])) {
        existing++;
        elen--;
    }
    size_t need = (existing && elen ? elen + 2 : 0) + iplen + 1;
    if (need > outlen)
        return -1;
    size_t n = 0;
    if (existing && elen) {
        memcpy(out, existing, elen);
        n = elen;
        out[n++] = ',';
        out[n++] = ' ';
    }
    memcpy(out + n, client_ip, iplen);
    n += iplen;
    out[n] = '\0';
    return (long)n;
}

bool headers_value_ok(const char *value, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
            return false;
    return true;
}
