/* balancer: the process: settings, listeners, backends, signals and reloads.
 *
 * One event loop, one thread (like HAProxy with nbthread 1). proxy.c and
 * client.c move requests (proxy.h lists the files a request meets), health.c
 * checks backends, admin.c answers /status and /metrics; all of them share the
 * struct balancer of state.h, which this module owns. */
#ifndef BALANCER_BALANCER_H
#define BALANCER_BALANCER_H

/* Runs the balancer with the command line: loads settings, binds, serves until
 * SIGTERM/SIGINT have drained in-flight requests. Returns the exit status
 * (0 after a clean shutdown, 1 when it cannot start, 2 on bad configuration). */
int balancer_main(int argc, char **argv);

#endif
