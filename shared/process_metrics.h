/* process_metrics: the standard process_* series of a Prometheus client, read
 * from /proc, and a <daemon>_build_info series, as exposition text.
 *
 * Any process of the same user can be read, so that shopd's worker answering a
 * scrape reports its master and siblings too. */
#ifndef SHARED_PROCESS_METRICS_H
#define SHARED_PROCESS_METRICS_H

#include <stdint.h>
#include <sys/types.h>

struct strbuf;

struct procm_sample {
    double start_time_s; /* since the Unix epoch */
    double cpu_s;        /* user and system time */
    uint64_t rss_bytes;
    long open_fds; /* -1 when /proc/<pid>/fd cannot be read (another user's process) */
    long max_fds;  /* soft RLIMIT_NOFILE; -1 when unknown */
};

/* Reads the figures of process pid (0: this process). Returns 0, or -1 when the
 * process does not exist or its /proc/<pid>/stat cannot be parsed. */
int procm_read(pid_t pid, struct procm_sample *out);

/* One process of the exposition: labels is the text inside {} (e.g.
 * `role="worker",worker="0"`) or "" for none. */
struct procm_row {
    const char *labels;
    struct procm_sample sample;
};

/* Appends HELP, TYPE and one line per row for each process_* metric; a row whose
 * open_fds or max_fds is -1 leaves that series out. */
void procm_format(struct strbuf *out, const struct procm_row *rows, size_t nrows);

/* Appends `<daemon>_build_info{version="<version>"} 1` with HELP and TYPE. */
void procm_build_info(struct strbuf *out, const char *daemon, const char *version);

#endif
