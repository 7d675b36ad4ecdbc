/* shopd: the shop server. See master.h for the process model and README.md for
 * the settings. */
#include "shopd/master.h"
#include "shopd/settings.h"
#include "shared/log.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    log_init("shopd");
    char err[512];
    struct shopd_settings *settings = settings_load(argc, argv, err, sizeof(err));
    if (!settings) {
        fprintf(stderr, "shopd: %s\n", err);
        return 2;
    }
    return master_run(settings, argc, argv);
}
