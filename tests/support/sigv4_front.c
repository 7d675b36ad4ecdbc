#include "sigv4_front.h"

#include "harness.h"
#include "shared/xalloc.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

struct harness_proc *sigv4_front_start(int port, int upstream_port, const char *const keys[],
                                       const char *log_path)
{
    char *script = xasprintf("%s/tests/support/sigv4_front.py", harness_root());
    char p[16], up[16];
    snprintf(p, sizeof(p), "%d", port);
    snprintf(up, sizeof(up), "%d", upstream_port);
    const char *argv[16] = {"/usr/bin/python3", script, p, up};
    size_t n = 4;
    for (const char *const *k = keys; *k && n < 15; k++)
        argv[n++] = *k;
    argv[n] = NULL;
    struct harness_proc *front = harness_start(argv, NULL, NULL, log_path);
    free(script);
    if (!harness_wait_port(port, 15000)) {
        harness_dump_log(log_path, 20);
        cr_assert_fail("the SigV4 front did not listen on 127.0.0.1:%d (is python3-botocore installed?)",
                       port);
    }
    return front;
}

int sigv4_front_verified(const char *log_path)
{
    return harness_count_in_file(log_path, "\nverified ");
}

int sigv4_front_refused(const char *log_path)
{
    return harness_count_in_file(log_path, "\nrefused ");
}
