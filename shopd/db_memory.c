#include "shopd/db.h"
#include "shared/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void db_memory_remove(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char file[600];
        snprintf(file, sizeof(file), "%s%s", path, suffixes[i]);
        unlink(file);
    }
}

/* Removes the databases of dir left by shopd processes that no longer run
 * (killed before they could remove their own). */
static void remove_stale(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int pid;
        char tail[16];
        if (sscanf(e->d_name, "shopd-memory-%d.d%15s", &pid, tail) == 2 && kill(pid, 0) < 0 &&
            errno == ESRCH) {
            char path[600];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

char *db_memory_create(void)
{
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    remove_stale(dir);
    char *path = xasprintf("%s/shopd-memory-%d.db", dir, (int)getpid());
    db_memory_remove(path);
    return path;
}
