#include "shopd/check.h"

#include "shopd/db.h"
#include "shopd/pages.h"

#include <sqlite3.h>
#include <stdio.h>
#include <unistd.h>

/* The schema version of an existing file, opened read-only (nothing is created
 * or migrated). Returns 0 and *version (-1: no such file yet), or -1 with err. */
static int schema_version(const char *path, int *version, char *err, size_t errlen)
{
    *version = -1;
    if (access(path, F_OK) != 0)
        return 0;
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        *version = sqlite3_column_int(st, 0);
    } else {
        snprintf(err, errlen, "database %s cannot be read: %s", path,
                 h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
        rc = -1;
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return rc == -1 ? -1 : 0;
}

int check_run(const struct shopd_settings *s)
{
    int problems = 0;
    char err[512];
    if (pages_init(s, err, sizeof(err)) < 0) {
        fprintf(stderr, "shopd: templates: %s\n", err);
        problems++;
    } else {
        pages_cleanup();
    }
    char db_note[160] = "database in memory";
    if (!s->db_memory) {
        int v;
        if (schema_version(s->db_path, &v, err, sizeof(err)) < 0) {
            fprintf(stderr, "shopd: %s\n", err);
            problems++;
        } else if (v > DB_SCHEMA_VERSION) {
            fprintf(stderr, "shopd: database %s has schema version %d, newer than this shopd (%d)\n",
                    s->db_path, v, DB_SCHEMA_VERSION);
            problems++;
        } else if (v < 0) {
            snprintf(db_note, sizeof(db_note), "database %s will be created", s->db_path);
        } else if (v < DB_SCHEMA_VERSION) {
            snprintf(db_note, sizeof(db_note), "database %s will be migrated from schema %d to %d",
                     s->db_path, v, DB_SCHEMA_VERSION);
        } else {
            snprintf(db_note, sizeof(db_note), "database %s at schema %d", s->db_path, v);
        }
    }
    if (problems)
        return 2;
    printf("shopd: configuration OK: listen %s:%d, %s, templates from %s\n", s->listen_host, s->listen_port,
           db_note, s->templates_dir);
    return 0;
}
