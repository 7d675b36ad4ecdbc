#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_program = "shop";
static pid_t log_pid; /* cached: getpid() per line is a system call on a hot path */
static enum log_level log_threshold = LOG_INFO;
static int log_fd = STDERR_FILENO;
static char log_path[4096];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* Buffered mode (log_set_buffered): whole lines wait here. PIPE_BUF bytes at
 * most, so one flush is one atomic write even on a pipe shared with others. */
static bool log_buffered;
static char log_buf[4096];
static size_t log_buf_len;
static void (*log_on_pending)(void *);
static void *log_pending_arg;

void log_init(const char *program)
{
    log_program = program;
    log_pid = getpid();
}

bool log_level_parse(const char *name, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = LOG_WARN;
        return true;
    }
    return false;
}

void log_set_level(enum log_level level)
{
    log_threshold = level;
}

enum log_level log_get_level(void)
{
    return log_threshold;
}

void log_flush(void)
{
    if (log_buf_len == 0)
        return;
    int saved = errno;
    ssize_t w = write(log_fd, log_buf, log_buf_len);
    (void)w;
    log_buf_len = 0;
    errno = saved;
}

void log_set_buffered(bool on, void (*on_pending)(void *), void *arg)
{
    log_flush();
    log_buffered = on;
    log_on_pending = on ? on_pending : NULL;
    log_pending_arg = on ? arg : NULL;
}

int log_open(const char *path)
{
    log_flush(); /* what was logged before goes where it was meant to go */
    if (!path || !*path) {
        if (log_fd != STDERR_FILENO)
            close(log_fd);
        log_fd = STDERR_FILENO;
        log_path[0] = '\0';
        return 0;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = fd;
    snprintf(log_path, sizeof(log_path), "%s", path);
    return 0;
}

void log_reopen(void)
{
    if (log_path[0]) {
        char path[sizeof(log_path)];
        memcpy(path, log_path, sizeof(path));
        int saved = errno;
        log_open(path);
        errno = saved;
    }
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < log_threshold)
        return;
    int saved = errno;
    char line[4096];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s[%d] ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000),
                     level_names[level], log_program, (int)(log_pid ? log_pid : getpid()));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    /* One event is one line: a newline inside a message (say, from a client) must not forge a second line. */
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    if (log_buffered && level < LOG_WARN) {
        if (len > sizeof(log_buf) - log_buf_len)
            log_flush();
        bool was_empty = log_buf_len == 0;
        memcpy(log_buf + log_buf_len, line, len);
        log_buf_len += len;
        if (was_empty && log_on_pending)
            log_on_pending(log_pending_arg);
        errno = saved;
        return;
    }
    /* Keeps the order of lines: what waits in the buffer was logged first. */
    if (log_buf_len)
        log_flush();
    /* One write() per line, so lines from several processes on one fd never interleave. */
    ssize_t w = write(log_fd, line, len);
    (void)w;
    errno = saved;
}
