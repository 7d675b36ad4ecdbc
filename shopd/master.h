/* master: the shopd process that binds the port, forks the workers (and the
 * dispatcher), and supervises them. It does no request work.
 *
 * Signals: SIGTERM/SIGINT drain the workers and stop; SIGHUP re-reads the
 * settings and replaces the workers one at a time (a new one is serving before
 * an old one is asked to stop, on the same listening socket, so no connection is
 * refused); SIGUSR1 reopens the log file everywhere. A child that dies is
 * replaced at once, or with back-off when it keeps dying young. */
#ifndef SHOPD_MASTER_H
#define SHOPD_MASTER_H

#include "shopd/settings.h"

/* Runs the master until it is told to stop. Takes ownership of settings;
 * argc/argv are kept to re-read the settings on SIGHUP. Returns the exit code. */
int master_run(struct shopd_settings *settings, int argc, char **argv);

#endif
