/* db_failures: this process's record of the database being unavailable.
 *
 * When a write fails because of the database, not the request (locked, full,
 * read-only, unreadable, the server gone), the answer is 503 with Retry-After
 * (never 500), /healthz says so, and the log names the cause once when it
 * starts. The engines report every failing statement here; the request layer
 * and the health check read it. */
#ifndef SHOPD_DB_FAILURES_H
#define SHOPD_DB_FAILURES_H

#include "shopd/db_types.h"

#include <stdbool.h>
#include <stdint.h>

/* Counts a failing statement whose cause is one of the above (DB_FAIL_NONE,
 * the request's own fault, is ignored) and logs the cause when it is new. */
void db_note_failure(enum db_failure cause, const char *message);

/* How many statements of this process failed for one of those causes so far:
 * a request compares it before and after to learn whether its failure was one. */
uint64_t db_failure_count(void);
enum db_failure db_last_failure(void);
/* A sentence for the answer and the log. Static. */
const char *db_failure_text(enum db_failure f);

/* After the health probe wrote: the cause of a failure of a request within the
 * last seconds that the probe cannot see (a full disk whose write-ahead log
 * still had room), or DB_FAIL_NONE, and then the log says once that the
 * database is writable again. */
enum db_failure db_failure_after_probe(void);

#endif
