#include "shared/readiness.h"

#include <systemd/sd-daemon.h>
#include <time.h>

/* The environment is kept (unset_environment 0): a daemon notifies more than once. */

void readiness_ready(void)
{
    sd_notify(0, "READY=1");
}

void readiness_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long usec =
        (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u;
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", usec);
}

void readiness_stopping(void)
{
    sd_notify(0, "STOPPING=1");
}
