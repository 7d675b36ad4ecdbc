#include "shared/process_metrics.h"
#include "shared/prom.h"
#include "shared/strbuf.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* /proc/<pid>/<name>, or /proc/self/<name> for pid 0. */
static void proc_path(char *buf, size_t len, pid_t pid, const char *name)
{
    if (pid == 0)
        snprintf(buf, len, "/proc/self/%s", name);
    else
        snprintf(buf, len, "/proc/%ld/%s", (long)pid, name);
}

/* Boot time in seconds since the epoch ("btime" of /proc/stat), read once: it
 * does not change while the system runs. */
static long long boot_time(void)
{
    static long long btime = -1;
    if (btime >= 0)
        return btime;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    char line[256];
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "btime %lld", &btime) == 1)
            break;
    fclose(f);
    return btime;
}

static long count_fds(pid_t pid)
{
    char path[64];
    proc_path(path, sizeof(path), pid, "fd");
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return pid == 0 ? n - 1 : n; /* our own count includes the directory being read */
}

static long max_fds(pid_t pid)
{
    if (pid == 0) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
            return -1;
        return (long)rl.rlim_cur;
    }
    char path[64];
    proc_path(path, sizeof(path), pid, "limits");
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "Max open files", 14) == 0) {
            v = strtol(line + 14, NULL, 10);
            if (v <= 0)
                v = -1;
            break;
        }
    fclose(f);
    return v;
}

int procm_read(pid_t pid, struct procm_sample *out)
{
    char path[64], buf[1024];
    proc_path(path, sizeof(path), pid, "stat");
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: the fields
     * that follow start after its last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long utime, stime;
    unsigned long long start_ticks;
    long rss_pages;
    /* Fields 3 (state) to 24 (rss). */
    if (sscanf(p + 1,
               " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %llu %*u %ld",
               &utime, &stime, &start_ticks, &rss_pages) != 4)
        return -1;
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    long long btime = boot_time();
    if (tick <= 0 || page <= 0 || btime < 0)
        return -1;
    out->cpu_s = (double)(utime + stime) / (double)tick;
    out->start_time_s = (double)btime + (double)start_ticks / (double)tick;
    out->rss_bytes = rss_pages > 0 ? (uint64_t)rss_pages * (uint64_t)page : 0;
    out->open_fds = count_fds(pid);
    out->max_fds = max_fds(pid);
    return 0;
}

void procm_format(struct strbuf *out, const struct procm_row *rows, size_t nrows)
{
    static const struct {
        const char *name;
        enum prom_type type;
        const char *help;
    } m[] = {
        {"process_start_time_seconds", PROM_GAUGE,
         "Start time of the process since the Unix epoch in seconds."},
        {"process_cpu_seconds_total", PROM_COUNTER, "Total user and system CPU time spent in seconds."},
        {"process_resident_memory_bytes", PROM_GAUGE, "Resident memory size in bytes."},
        {"process_open_fds", PROM_GAUGE, "Number of open file descriptors."},
        {"process_max_fds", PROM_GAUGE, "Maximum number of open file descriptors."},
    };
    for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
        bool header = false;
        for (size_t i = 0; i < nrows; i++) {
            const struct procm_sample *s = &rows[i].sample;
            double value;
            switch (k) {
            case 0:
                value = s->start_time_s;
                break;
            case 1:
                value = s->cpu_s;
                break;
            case 2:
                value = (double)s->rss_bytes;
                break;
            case 3:
                if (s->open_fds < 0)
                    continue;
                value = (double)s->open_fds;
                break;
            default:
                if (s->max_fds < 0)
                    continue;
                value = (double)s->max_fds;
                break;
            }
            if (!header) {
                prom_family(out, m[k].name, m[k].type, m[k].help);
                header = true;
            }
            prom_sample(out, m[k].name, rows[i].labels, value);
        }
    }
}

void procm_build_info(struct strbuf *out, const char *daemon, const char *version)
{
    char name[96], labels[PROM_LABELS_MAX];
    snprintf(name, sizeof(name), "%s_build_info", daemon);
    prom_family(out, name, PROM_GAUGE, "Always 1; the version label names the running build.");
    prom_sample(out, name, prom_labels(labels, sizeof(labels), "version", version, NULL), 1);
}
