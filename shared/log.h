/* log: one line per event on stderr (or a log file), with time, level, program and pid.
 *
 * Format: 2026-11-26T21:40:00.123Z info shopd[1234] message
 * journald picks stderr up under systemd; LOG_FILE makes the daemons append to a
 * file instead, and log_reopen() (called on SIGUSR1) reopens it after rotation. */
#ifndef SHARED_LOG_H
#define SHARED_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the program name shown in every line (the string must outlive the logger). */
void log_init(const char *program);
/* (log_init also records the pid shown in each line: call it again in a forked child.) */
/* Parses "debug", "info", "warn" or "error"; returns false for anything else. */
bool log_level_parse(const char *name, enum log_level *out);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Appends to path from now on (NULL or "" means stderr). Returns 0, or -1 with errno. */
int log_open(const char *path);
/* Reopens the current log file (after logrotate moved it). No-op for stderr. */
void log_reopen(void);

/* Buffered mode, for a busy single-threaded daemon that logs a line per request
 * (off by default; the other daemons write each line at once). While on,
 * debug and info lines are kept in a buffer of at most PIPE_BUF bytes, still
 * whole lines, and written with one write() by log_flush() or when the next
 * line does not fit; a warn or error line flushes what waits, then itself, at
 * once. on_pending(arg) (may be NULL) is called when a line lands in an empty
 * buffer, so the owner can schedule a log_flush() soon (say, at the end of the
 * current event-loop iteration). Switching on or off, log_open and log_reopen
 * flush first. Not thread-safe. */
void log_set_buffered(bool on, void (*on_pending)(void *), void *arg);
/* Writes what buffered mode holds (no-op when empty). */
void log_flush(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
