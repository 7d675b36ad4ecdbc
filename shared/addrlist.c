#include "shared/addrlist.h"

#include <string.h>

bool addrlist_contains(const char *list, const char *addr)
{
    if (!list || !addr)
        return false;
    if (strncmp(addr, "::ffff:", 7) == 0 && strchr(addr + 7, '.'))
        addr += 7;
    size_t n = strlen(addr);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',' && *end != ' ')
            end++;
        if ((size_t)(end - p) == n && n > 0 && strncmp(p, addr, n) == 0)
            return true;
        p = end;
    }
    return false;
}
