#include "shopd/dispatcher.h"
#include "shopd/db.h"
#include "shared/log.h"

#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_term(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int64_t count_pending(struct db *db)
{
    sqlite3_stmt *st = db_stmt(db, "SELECT count(*) FROM orders WHERE status = 'pending'");
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    db_done(st);
    return n;
}

int dispatcher_run(const struct shopd_settings *settings, int wake_fd)
{
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    char err[512];
    struct db *db = db_open(settings->db_path, err, sizeof(err));
    if (!db) {
        log_error("dispatcher: %s", err);
        return 1;
    }
    while (!stop_requested) {
        struct pollfd p = {wake_fd, POLLIN, 0};
        if (poll(&p, 1, 1000) > 0) {
            uint64_t n;
            if (read(wake_fd, &n, sizeof(n)) == sizeof(n))
                log_debug("dispatcher: %lld orders pending", (long long)count_pending(db));
        }
    }
    db_close(db);
    return 0;
}
