#include "shopd/db_failures.h"
#include "shared/clock.h"
#include "shared/log.h"

/* What the engines reported last, for this process: every failing statement
   passes through db_note_failure, whichever module ran it. */
static struct {
    enum db_failure last;
    uint64_t count;
    uint64_t last_ms;
    enum db_failure logged; /* the cause named in the log, so it is named once */
} failures;

void db_note_failure(enum db_failure cause, const char *message)
{
    if (cause == DB_FAIL_NONE)
        return;
    failures.last = cause;
    failures.count++;
    failures.last_ms = clock_mono_ms();
    if (failures.logged != cause) {
        failures.logged = cause;
        log_warn("database: %s (%s); answering 503 while it lasts", db_failure_text(cause), message);
    }
}

const char *db_failure_text(enum db_failure f)
{
    switch (f) {
    case DB_FAIL_BUSY:
        return "the database is locked by another writer";
    case DB_FAIL_FULL:
        return "the disk holding the database is full";
    case DB_FAIL_READONLY:
        return "the database is read-only";
    case DB_FAIL_IO:
        return "the database cannot be read or written";
    case DB_FAIL_UNREACHABLE:
        return "the database server cannot be reached";
    default:
        return "the database is available";
    }
}

uint64_t db_failure_count(void)
{
    return failures.count;
}

enum db_failure db_last_failure(void)
{
    return failures.last;
}

enum db_failure db_failure_after_probe(void)
{
    enum { RECENT_MS = 10000 };
    /* The probe can pass on a full disk (SQLite's WAL reuses its space after a
       checkpoint), so a recent write failure of a request counts too; a busy
       lock or a server that was away and is back does not. */
    if (failures.last != DB_FAIL_NONE && failures.last != DB_FAIL_BUSY &&
        failures.last != DB_FAIL_UNREACHABLE && clock_mono_ms() - failures.last_ms < RECENT_MS)
        return failures.last;
    if (failures.logged != DB_FAIL_NONE) {
        log_info("database: writable again");
        failures.logged = DB_FAIL_NONE;
    }
    return DB_FAIL_NONE;
}
