/* addrlist: "is this peer one of ours", for the TRUSTED_PROXIES settings of
 * shopd and the balancer: one reading of the list for both daemons. */
#ifndef SHARED_ADDRLIST_H
#define SHARED_ADDRLIST_H

#include <stdbool.h>

/* True when addr (a numeric address as the socket layer prints it) is one of
 * the entries of list, separated by commas and/or spaces. An IPv4-mapped IPv6
 * address (::ffff:192.0.2.1) matches its IPv4 entry. NULL or empty lists hold
 * nothing. */
bool addrlist_contains(const char *list, const char *addr);

#endif
