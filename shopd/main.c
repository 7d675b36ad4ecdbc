/* shopd: the shop server. See master.h for the process model and README.md for
 * the settings. */
#include "shopd/check.h"
#include "shopd/copy_database.h"
#include "shopd/dispatcher.h"
#include "shopd/master.h"
#include "shopd/settings.h"
#include "shared/log.h"

#include <malloc.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    log_init("shopd");
    /* Large blocks come from mmap and go back to the system when freed. A
     * login's scrypt takes 16-32 MiB on an offload thread; with glibc's dynamic
     * threshold (raised by the first such free, up to 32 MiB) the next buffer
     * would come from that thread's arena and stay in every worker for good,
     * where malloc_trim does not reach it. Set before the fork: the master,
     * the workers and the dispatcher all inherit it. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    char err[512];
    struct shopd_settings *settings = shopd_settings_load(argc, argv, err, sizeof(err));
    if (!settings) {
        fprintf(stderr, "shopd: %s\n", err);
        return 2;
    }
    if (settings->copy_database) {
        int rc = copy_database_run(&settings->copy_from, &settings->copy_to);
        shopd_settings_free(settings);
        return rc;
    }
    if (settings->check_only) {
        int rc = check_run(settings);
        shopd_settings_free(settings);
        return rc;
    }
    if (settings->create_table) {
        /* A one-shot command for set-up scripts; no server starts. */
        int rc = dispatcher_create_table(settings, err, sizeof(err));
        if (rc < 0)
            fprintf(stderr, "shopd: --create-table: %s\n", err);
        shopd_settings_free(settings);
        return rc < 0 ? 1 : 0;
    }
    return master_run(settings, argc, argv);
}
