/* copy_database: shopd --copy-database --from URL --to URL, moving a shop's
 * whole database to another one (any engine to any engine) through db.h. */
#ifndef SHOPD_COPY_DATABASE_H
#define SHOPD_COPY_DATABASE_H

#include "shopd/db.h"

/* Copies every table of from into the empty database to, in one transaction
 * on to; prints one line per table and a final line on stdout, errors as one
 * line on stderr. Returns the exit status: 0, or 2 on any failure. */
int copy_database_run(const struct db_target *from, const struct db_target *to);

#endif
