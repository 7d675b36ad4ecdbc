/* check: `shopd --check`, what `nginx -t` is to nginx.
 *
 * Reads everything shopd would read at start (settings, already parsed by the
 * caller; the templates; the database's schema version) without binding a
 * port, forking or writing the database, so an operator or systemd's
 * ExecStartPre/ExecReload can refuse a bad configuration before it is used. */
#ifndef SHOPD_CHECK_H
#define SHOPD_CHECK_H

#include "shopd/settings.h"

/* Prints one line "shopd: configuration OK: ..." and returns 0, or prints
 * every problem found (one line each) and returns 2. */
int check_run(const struct shopd_settings *settings);

#endif
