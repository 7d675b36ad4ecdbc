#include "shopd/master.h"
#include "shopd/catalog.h"
#include "shopd/db.h"
#include "shopd/dispatcher.h"
#include "shopd/metrics.h"
#include "shopd/pages.h"
#include "shopd/worker.h"
#include "shared/clock.h"
#include "shared/log.h"
#include "shared/readiness.h"
#include "shared/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 300
#define STOP_GRACE_SECONDS 15
#define YOUNG_DEATH_US 1000000u /* a child that dies sooner than this after start gets back-off */
#define MAX_BACKOFF_US 5000000u

enum child_kind { CHILD_WORKER, CHILD_DISPATCHER };

struct child {
    pid_t pid;
    enum child_kind kind;
    int slot;      /* worker index */
    bool retiring; /* asked to stop by a reload: not to be replaced */
    uint64_t started_us;
};

/* A slot whose child died and waits for its (possibly delayed) replacement. */
struct respawn {
    bool pending;
    uint64_t due_us;
    uint64_t backoff_us;
};

struct master {
    struct shopd_settings *settings;
    int argc;
    char **argv;
    int listen_fd;
    int signal_fd;
    int wake_fd;
    sigset_t old_mask;
    struct child children[MAX_CHILDREN];
    size_t nchildren;
    struct respawn workers[256];
    struct respawn dispatcher;
    bool stopping;
    char *memory_db_path; /* the /dev/shm file behind sqlite:///:memory:, removed at exit */
};

/* --- setup ----------------------------------------------------------------- */

static int bind_listener(const struct shopd_settings *s, char *err, size_t errlen)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char port[16];
    snprintf(port, sizeof(port), "%d", s->listen_port);
    int rc = getaddrinfo(s->listen_host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "SHOPD_LISTEN %s: %s", s->listen_host, gai_strerror(rc));
        return -1;
    }
    int fd =
        socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0); /* evconnlistener needs it */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", s->listen_host, s->listen_port, strerror(errno));
        freeaddrinfo(res);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void log_bound_address(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
            port = ntohs(a->sin_port);
        } else {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
            port = ntohs(a->sin6_port);
        }
    }
    log_info("listening on %s:%d", host, port);
}

/* sqlite:///:memory: is one database shared by every worker, in a file the
 * database module makes and the master removes when it stops. */
static int prepare_database(struct master *m, char *err, size_t errlen)
{
    struct shopd_settings *s = m->settings;
    if (s->database.memory) {
        m->memory_db_path = db_memory_create();
        free(s->database.path);
        s->database.path = xstrdup(m->memory_db_path);
    }
    struct db *db = db_open(&s->database, err, errlen);
    if (!db)
        return -1;
    int rc = catalog_seed_if_empty(db);
    db_close(db);
    if (rc < 0) {
        snprintf(err, errlen, "cannot write the default inventory into %s", s->database.display);
        return -1;
    }
    /* Load the templates once here too, so that a broken template stops the start
       with its reason instead of sending every worker into a respawn loop. */
    if (pages_init(s, err, errlen) < 0)
        return -1;
    pages_cleanup();
    return 0;
}

static int drop_privileges(const struct shopd_settings *s, char *err, size_t errlen)
{
    const char *user = s->user;
    if (getuid() != 0 || !user || !*user)
        return 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        snprintf(err, errlen, "SHOPD_USER=%s: no such user", user);
        return -1;
    }
    if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
        snprintf(err, errlen, "cannot switch to user %s: %s", user, strerror(errno));
        return -1;
    }
    log_info("running as user %s", user);
    return 0;
}

/* --- children -------------------------------------------------------------- */

static void child_common_setup(struct master *m)
{
    /* The child must not share the master's signal plumbing. */
    close(m->signal_fd);
    sigprocmask(SIG_SETMASK, &m->old_mask, NULL);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    /* Only the master speaks to the service manager. */
    unsetenv("NOTIFY_SOCKET");
}

/* fork(); the child comes back without the master's signal plumbing and with
 * its log lines named log_name. */
static pid_t fork_child(struct master *m, const char *log_name)
{
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork: %s", strerror(errno));
    } else if (pid == 0) {
        child_common_setup(m);
        log_init(log_name);
    }
    return pid;
}

static void add_child(struct master *m, pid_t pid, enum child_kind kind, int slot)
{
    if (m->nchildren == MAX_CHILDREN) {
        log_error("too many children; not tracking pid %d", (int)pid);
        return;
    }
    m->children[m->nchildren++] = (struct child){pid, kind, slot, false, clock_mono_us()};
}

/* Forks worker `slot`. When wait_ready, returns only once it serves (or failed). */
static pid_t spawn_worker(struct master *m, int slot, bool wait_ready)
{
    int ready[2] = {-1, -1};
    if (wait_ready && pipe2(ready, O_CLOEXEC) < 0)
        wait_ready = false;
    pid_t pid = fork_child(m, "shopd-worker");
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (wait_ready)
            close(ready[0]);
        struct worker_params params = {m->settings, m->listen_fd, wait_ready ? ready[1] : -1, m->wake_fd,
                                       slot};
        _exit(worker_run(&params));
    }
    add_child(m, pid, CHILD_WORKER, slot);
    if (wait_ready) {
        close(ready[1]);
        struct pollfd p = {ready[0], POLLIN, 0};
        char c;
        if (poll(&p, 1, 10000) <= 0 || read(ready[0], &c, 1) != 1)
            log_warn("worker %d (pid %d) did not report ready", slot, (int)pid);
        close(ready[0]);
    }
    return pid;
}

static pid_t spawn_dispatcher(struct master *m)
{
    pid_t pid = fork_child(m, "shopd-dispatcher");
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(m->listen_fd);
        metrics_dispatcher_process();
        _exit(dispatcher_run(m->settings, m->wake_fd));
    }
    add_child(m, pid, CHILD_DISPATCHER, 0);
    return pid;
}

static struct child *find_child(struct master *m, pid_t pid)
{
    for (size_t i = 0; i < m->nchildren; i++)
        if (m->children[i].pid == pid)
            return &m->children[i];
    return NULL;
}

static void remove_child(struct master *m, struct child *c)
{
    *c = m->children[--m->nchildren];
}

static void schedule_respawn(struct respawn *r, uint64_t lived_us)
{
    if (lived_us < YOUNG_DEATH_US) {
        r->backoff_us = r->backoff_us ? r->backoff_us * 2 : 100000u;
        if (r->backoff_us > MAX_BACKOFF_US)
            r->backoff_us = MAX_BACKOFF_US;
    } else {
        r->backoff_us = 0;
    }
    r->pending = true;
    r->due_us = clock_mono_us() + r->backoff_us;
}

static void reap_children(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct child *c = find_child(m, pid);
        if (!c)
            continue;
        const char *what = c->kind == CHILD_WORKER ? "worker" : "dispatcher";
        uint64_t lived = clock_mono_us() - c->started_us;
        if (!m->stopping && !c->retiring) {
            if (WIFSIGNALED(status))
                log_warn("%s %d (pid %d) killed by signal %d; replacing it", what, c->slot, (int)pid,
                         WTERMSIG(status));
            else
                log_warn("%s %d (pid %d) exited with status %d; replacing it", what, c->slot, (int)pid,
                         WEXITSTATUS(status));
            metrics_worker_restart();
            schedule_respawn(c->kind == CHILD_WORKER ? &m->workers[c->slot] : &m->dispatcher, lived);
        } else {
            log_debug("%s pid %d stopped", what, (int)pid);
        }
        remove_child(m, c);
    }
}

static int run_due_respawns(struct master *m)
{
    uint64_t now = clock_mono_us(), next = UINT64_MAX;
    for (int i = 0; i < m->settings->workers; i++) {
        struct respawn *r = &m->workers[i];
        if (!r->pending)
            continue;
        if (r->due_us <= now) {
            r->pending = false;
            spawn_worker(m, i, false);
        } else if (r->due_us < next) {
            next = r->due_us;
        }
    }
    if (m->dispatcher.pending) {
        if (m->dispatcher.due_us <= now) {
            m->dispatcher.pending = false;
            spawn_dispatcher(m);
        } else if (m->dispatcher.due_us < next) {
            next = m->dispatcher.due_us;
        }
    }
    if (next == UINT64_MAX)
        return -1;
    return (int)((next - now) / 1000 + 1);
}

static void signal_children(struct master *m, int sig)
{
    for (size_t i = 0; i < m->nchildren; i++)
        kill(m->children[i].pid, sig);
}

/* --- reload -------------------------------------------------------------- */

static void reload(struct master *m)
{
    char err[512];
    readiness_reloading();
    struct shopd_settings *fresh = shopd_settings_load(m->argc, m->argv, err, sizeof(err));
    if (!fresh) {
        log_error("reload: %s; keeping the current settings", err);
        readiness_ready();
        return;
    }
    struct shopd_settings *old = m->settings;
    if (strcmp(fresh->listen_host, old->listen_host) != 0 || fresh->listen_port != old->listen_port)
        log_warn("reload: SHOPD_LISTEN changed; a restart is needed for that, keeping %s:%d",
                 old->listen_host, old->listen_port);
    /* The in-memory database keeps its file; any other change of DATABASE_URL
       would split the workers between two databases. */
    if (fresh->database.memory && old->database.memory) {
        free(fresh->database.path);
        fresh->database.path = xstrdup(old->database.path);
    } else if (!db_target_same(&fresh->database, &old->database)) {
        log_warn("reload: DATABASE_URL changed; a restart is needed for that, keeping the current database");
        db_target_free(&fresh->database);
        db_target_copy(&fresh->database, &old->database);
    }
    m->settings = fresh;
    log_info("reload: replacing %d workers one by one", fresh->workers);

    /* Old children: every one is retired once its replacement serves. */
    pid_t old_pids[MAX_CHILDREN];
    enum child_kind old_kinds[MAX_CHILDREN];
    size_t nold = 0;
    for (size_t i = 0; i < m->nchildren; i++) {
        old_pids[nold] = m->children[i].pid;
        old_kinds[nold++] = m->children[i].kind;
    }
    memset(m->workers, 0, sizeof(m->workers));
    int slot = 0;
    for (size_t i = 0; i < nold; i++) {
        if (old_kinds[i] != CHILD_WORKER)
            continue;
        if (slot < fresh->workers)
            spawn_worker(m, slot++, true);
        struct child *c = find_child(m, old_pids[i]);
        if (c) {
            c->retiring = true;
            kill(c->pid, SIGTERM);
        }
    }
    for (; slot < fresh->workers; slot++)
        spawn_worker(m, slot, true);
    for (size_t i = 0; i < nold; i++) {
        if (old_kinds[i] != CHILD_DISPATCHER)
            continue;
        struct child *c = find_child(m, old_pids[i]);
        if (c) {
            c->retiring = true;
            kill(c->pid, SIGTERM);
        }
    }
    m->dispatcher.pending = false;
    if (fresh->dispatcher_enabled)
        spawn_dispatcher(m);
    shopd_settings_free(old);
    log_info("reload: done");
    readiness_ready();
}

/* --- stop ----------------------------------------------------------------- */

static void stop_children(struct master *m)
{
    m->stopping = true;
    log_info("stopping: draining %zu children", m->nchildren);
    signal_children(m, SIGTERM);
    uint64_t deadline = clock_mono_us() + (uint64_t)STOP_GRACE_SECONDS * 1000000u;
    while (m->nchildren && clock_mono_us() < deadline) {
        reap_children(m);
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    if (m->nchildren) {
        log_warn("stopping: %zu children did not stop in %d s; killing them", m->nchildren,
                 STOP_GRACE_SECONDS);
        signal_children(m, SIGKILL);
        while (m->nchildren) {
            int status;
            pid_t pid = waitpid(-1, &status, 0);
            if (pid < 0)
                break;
            struct child *c = find_child(m, pid);
            if (c)
                remove_child(m, c);
        }
    }
}

int master_run(struct shopd_settings *settings, int argc, char **argv)
{
    struct master *m = xcalloc(1, sizeof(*m));
    m->settings = settings;
    m->argc = argc;
    m->argv = argv;
    char err[512];
    int rc = 1;

    m->listen_fd = bind_listener(settings, err, sizeof(err));
    if (m->listen_fd < 0 || drop_privileges(settings, err, sizeof(err)) < 0 ||
        prepare_database(m, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out;
    }
    log_bound_address(m->listen_fd);
    if (metrics_init(settings->workers) < 0)
        log_warn("metrics: cannot map shared memory; /metrics will show this worker only");

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGUSR1);
    sigprocmask(SIG_BLOCK, &mask, &m->old_mask);
    m->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC);
    m->wake_fd = eventfd(0, EFD_NONBLOCK);
    signal(SIGPIPE, SIG_IGN);

    /* The first worker is waited for, so that READY means requests are answered. */
    for (int i = 0; i < settings->workers; i++)
        spawn_worker(m, i, i == 0);
    if (settings->dispatcher_enabled)
        spawn_dispatcher(m);
    log_info("shopd %s started: %d workers%s, database %s", SHOP_VERSION, settings->workers,
             settings->dispatcher_enabled ? " and the dispatcher" : "",
             settings->database.memory ? "in memory" : settings->database.display);
    readiness_ready();

    for (;;) {
        int timeout = run_due_respawns(m);
        struct pollfd p = {m->signal_fd, POLLIN, 0};
        int n = poll(&p, 1, timeout);
        if (n <= 0)
            continue;
        struct signalfd_siginfo si;
        if (read(m->signal_fd, &si, sizeof(si)) != sizeof(si))
            continue;
        if (si.ssi_signo == SIGCHLD) {
            reap_children(m);
        } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            readiness_stopping();
            stop_children(m);
            rc = 0;
            break;
        } else if (si.ssi_signo == SIGHUP) {
            reload(m);
        } else if (si.ssi_signo == SIGUSR1) {
            log_reopen();
            signal_children(m, SIGUSR1);
        }
    }
    log_info("stopped");
out:
    if (m->memory_db_path)
        db_memory_remove(m->memory_db_path);
    if (m->listen_fd >= 0)
        close(m->listen_fd);
    shopd_settings_free(m->settings);
    free(m->memory_db_path);
    free(m);
    return rc;
}
