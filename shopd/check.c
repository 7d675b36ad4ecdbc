#include "shopd/check.h"

#include "shopd/db.h"
#include "shopd/pages.h"

#include <stdio.h>

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
    if (!s->database.memory) {
        /* Read only: --check creates and migrates nothing. */
        const char *name = s->database.display;
        int v;
        if (db_schema_version(&s->database, &v, err, sizeof(err)) < 0) {
            fprintf(stderr, "shopd: %s\n", err);
            problems++;
        } else if (v > DB_SCHEMA_VERSION) {
            fprintf(stderr, "shopd: database %s has schema version %d, newer than this shopd (%d)\n", name, v,
                    DB_SCHEMA_VERSION);
            problems++;
        } else if (v == 0) {
            snprintf(db_note, sizeof(db_note), "database %s will be created", name);
        } else if (v < DB_SCHEMA_VERSION) {
            snprintf(db_note, sizeof(db_note), "database %s will be migrated from schema %d to %d", name, v,
                     DB_SCHEMA_VERSION);
        } else {
            snprintf(db_note, sizeof(db_note), "database %s at schema %d", name, v);
        }
    }
    if (problems)
        return 2;
    printf("shopd: configuration OK: listen %s:%d, %s, templates from %s\n", s->listen_host, s->listen_port,
           db_note, s->templates_dir);
    return 0;
}
