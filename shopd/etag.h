/* etag: conditional GET (RFC 9110 section 13.1.2): does an If-None-Match header
 * name the entity tag of what we would send? Then the answer is 304 with no
 * body. Pure; no I/O. */
#ifndef SHOPD_ETAG_H
#define SHOPD_ETAG_H

#include <stdbool.h>

/* True when if_none_match (the header's value, NULL when absent) is "*" or a
 * comma-separated list holding etag (a quoted tag such as "\"a1-7\""), compared
 * weakly: a W/ prefix on either side is ignored, as GET requires. A malformed
 * list matches nothing (so the full answer is sent). */
bool etag_none_match_hit(const char *if_none_match, const char *etag);

#endif
