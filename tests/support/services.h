/* services: the real helper daemons that several suites need (redis-server,
 * ratelimitd, dynalite), started the same way everywhere on top of harness.h. */
#ifndef TESTS_SUPPORT_SERVICES_H
#define TESTS_SUPPORT_SERVICES_H

#include "harness.h"

/* Writes text to path; aborts the test on failure. */
void services_write_file(const char *path, const char *text);
/* Starts a private redis-server on 127.0.0.1:port without persistence, working
 * in dir, its log in log_path (may be NULL); waits until it accepts connections
 * (asserts). Stop it with harness_stop. */
struct harness_proc *services_start_redis(const char *dir, int port, const char *log_path);
/* Starts $SHOP_BIN/ratelimitd on unix socket sock_path with rules_path, against
 * the redis on redis_port, with extra settings ("K=V", NULL-terminated, may be
 * NULL); waits until the socket accepts (asserts, showing the log on failure). */
struct harness_proc *services_start_ratelimitd(const char *dir, const char *sock_path, int redis_port,
                                               const char *rules_path, const char *const extra_env[],
                                               const char *log_path);

/* Starts tools/dynalite.js (a local DynamoDB) on 127.0.0.1:port, its tables in
 * data_dir (NULL: in memory), a new table CREATING for 50 ms, working in dir (NULL:
 * current), its output in log_path. Waits for its own "Listening at" line, not just
 * for the port, so that a port taken meanwhile by another process fails here with
 * dynalite's log rather than later as a refused connection (asserts). */
struct harness_proc *services_start_dynalite(const char *dir, int port, const char *data_dir,
                                             const char *log_path);

/* Starts argv with env in dir, logging to log_path, and asserts that it refuses
 * to start: it exits within 5 s with a non-zero status and its log contains msg. */
void services_expect_start_failure(const char *const argv[], const char *const env[], const char *dir,
                                   const char *log_path, const char *msg);

/* One counter of ratelimitd's STATS line (decisions, lease_tokens, ...), asked on a
 * connection of its own to the unix socket at sock_path. */
long services_ratelimitd_stat(const char *sock_path, const char *name);
/* The counter name of a STATS line ("key=value ..."); fails the test when it is missing. */
long services_stats_field(const char *line, const char *name);

#endif
