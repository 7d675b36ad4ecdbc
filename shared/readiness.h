/* readiness: tells the service manager (systemd, Type=notify) when the daemon
 * serves, reloads and stops, through sd_notify. Each call does nothing when
 * NOTIFY_SOCKET is unset, so a daemon started by hand or by a test is unaffected. */
#ifndef SHARED_READINESS_H
#define SHARED_READINESS_H

/* READY=1: the daemon accepts and answers requests (after binding). Also ends a reload. */
void readiness_ready(void);
/* RELOADING=1 with MONOTONIC_USEC (systemd wants the clock to tell reloads
 * apart); follow it with readiness_ready once the reload is done or refused. */
void readiness_reloading(void);
/* STOPPING=1: the daemon drains and will exit. */
void readiness_stopping(void);

#endif
