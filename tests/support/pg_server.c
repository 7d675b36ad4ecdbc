#include "pg_server.h"

#include "harness.h"
#include "shared/xalloc.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG_START_TIMEOUT_MS 30000
#define PG_STOP_TIMEOUT_MS 30000

struct pg_server {
    char *dir;  /* the socket folder; the cluster is in dir/data */
    char *data; /* NULL for a server this process did not create */
    int port;
    pid_t pid; /* the postmaster when this process started it, else 0 */
    bool owns_dir;
    struct pg_server *next; /* servers still running, stopped at exit */
};

static struct pg_server *running;
static bool atexit_installed;

/* Debian installs each major version in /usr/lib/postgresql/<major>/bin; the
 * newest one present wins. Not to be freed. */
static const char *pg_bindir(void)
{
    static char *bindir;
    if (bindir)
        return bindir;
    glob_t g;
    long best = -1;
    if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            long major = strtol(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"), NULL, 10);
            if (major > best) {
                best = major;
                free(bindir);
                bindir = xstrdup(g.gl_pathv[i]);
                *strrchr(bindir, '/') = 0;
            }
        }
        globfree(&g);
    }
    cr_assert_not_null(bindir,
                       "no PostgreSQL server in /usr/lib/postgresql/*/bin (Debian package postgresql)");
    return bindir;
}

/* The user the server runs as: initdb and postgres refuse root, so root hands
 * them to the package's `postgres` user. NULL: stay who we are. */
static const struct passwd *server_user(void)
{
    if (geteuid() != 0)
        return NULL;
    const struct passwd *pw = getpwnam("postgres");
    cr_assert_not_null(pw, "running as root, but there is no postgres user to run the server as");
    return pw;
}

/* In a forked child: drop to the server's user, then make the parent's death
 * end the server (a credentials change clears the death signal, so it is set
 * after). */
static void child_become_server_user(const struct passwd *pw, int death_signal)
{
    if (pw && (setgid(pw->pw_gid) < 0 || initgroups(pw->pw_name, pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)) {
        perror("cannot become the postgres user");
        _exit(127);
    }
    if (death_signal)
        prctl(PR_SET_PDEATHSIG, death_signal);
}

static void child_redirect(const char *log_path)
{
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
        dup2(devnull, 0);
        close(devnull);
    }
}

/* Starts argv as the server's user, output appended to log_path. */
static pid_t spawn(const char *const argv[], const char *log_path, int death_signal)
{
    const struct passwd *pw = server_user();
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        child_redirect(log_path);
        child_become_server_user(pw, death_signal);
        if (death_signal && getppid() != parent)
            _exit(127);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

static bool run_to_end(const char *const argv[], const char *log_path)
{
    pid_t pid = spawn(argv, log_path, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static char *conninfo(const struct pg_server *s, const char *dbname)
{
    return xasprintf("host=%s port=%d user=postgres dbname=%s connect_timeout=5", s->dir, s->port, dbname);
}

static bool server_answers(const struct pg_server *s)
{
    char *ci = conninfo(s, "postgres");
    bool ok = PQping(ci) == PQPING_OK;
    free(ci);
    return ok;
}

static char *log_path(const struct pg_server *s)
{
    return xasprintf("%s/postgres.log", s->dir);
}

static void fail_with_log(struct pg_server *s, const char *what)
{
    char *log = log_path(s);
    harness_dump_log(log, 30);
    free(log);
    cr_assert_fail("PostgreSQL in %s: %s", s->dir, what);
}

static void write_text(const char *path, const char *mode, const char *text)
{
    FILE *f = fopen(path, mode);
    cr_assert_not_null(f, "cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* A new cluster in a new folder, owned by the server's user. */
static void create_cluster(struct pg_server *s)
{
    s->dir = harness_tempdir("shop-pg");
    s->data = xasprintf("%s/data", s->dir);
    s->port = harness_free_port();
    s->owns_dir = true;
    const struct passwd *pw = server_user();
    if (pw)
        cr_assert(chown(s->dir, pw->pw_uid, pw->pw_gid) == 0, "chown %s: %s", s->dir, strerror(errno));
    char *initdb = xasprintf("%s/initdb", pg_bindir());
    char *log = log_path(s);
    const char *argv[] = {
        initdb,       "-D",        s->data, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
        "--locale=C", "--no-sync", NULL};
    bool ok = run_to_end(argv, log);
    free(initdb);
    free(log);
    if (!ok)
        fail_with_log(s, "initdb failed");
    /* mmap for dynamic shared memory: a chroot may have no usable /dev/shm. */
    char *conf = xasprintf("\n# tests only: no TCP, no durability\n"
                           "listen_addresses = ''\n"
                           "unix_socket_directories = '%s'\n"
                           "port = %d\n"
                           "fsync = off\n"
                           "synchronous_commit = off\n"
                           "full_page_writes = off\n"
                           "dynamic_shared_memory_type = mmap\n"
                           "max_connections = 200\n"
                           "password_encryption = 'scram-sha-256'\n",
                           s->dir, s->port);
    char *conf_path = xasprintf("%s/postgresql.conf", s->data);
    write_text(conf_path, "a", conf);
    char *hba_path = xasprintf("%s/pg_hba.conf", s->data);
    write_text(hba_path, "w",
               "local all " PG_TEST_PASSWORD_ROLE " scram-sha-256\n"
               "local all all trust\n");
    free(conf);
    free(conf_path);
    free(hba_path);
}

static void stop_leftovers(void)
{
    while (running)
        pg_server_stop(running);
}

static void unlink_running(struct pg_server *s)
{
    for (struct pg_server **pp = &running; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            s->next = NULL;
            return;
        }
}

/* Starts the postmaster of s as a child (fast shutdown when this process dies)
 * and waits until it answers. */
static void launch(struct pg_server *s, int death_signal)
{
    if (!atexit_installed) {
        atexit(stop_leftovers);
        atexit_installed = true;
    }
    char *postgres = xasprintf("%s/postgres", pg_bindir());
    char *log = log_path(s);
    const char *argv[] = {postgres, "-D", s->data, NULL};
    s->pid = spawn(argv, log, death_signal);
    s->next = running;
    running = s;
    free(postgres);
    free(log);
    for (int waited = 0; waited < PG_START_TIMEOUT_MS; waited += 20) {
        if (server_answers(s))
            return;
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            unlink_running(s);
            fail_with_log(s, "the server exited while starting");
        }
        harness_sleep_ms(20);
    }
    fail_with_log(s, "the server did not accept connections within 30 s");
}

bool pg_server_exec(const struct pg_server *s, const char *dbname, const char *sql, char *err, size_t errlen)
{
    char *ci = conninfo(s, dbname);
    PGconn *c = PQconnectdb(ci);
    free(ci);
    bool ok = false;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
    }
    if (!ok && err)
        snprintf(err, errlen, "%s", PQerrorMessage(c));
    PQfinish(c);
    return ok;
}

struct pg_server *pg_server_start(void)
{
    struct pg_server *s = xcalloc(1, sizeof(*s));
    create_cluster(s);
    launch(s, SIGINT);
    char err[512];
    cr_assert(pg_server_exec(s, "postgres",
                             "CREATE ROLE " PG_TEST_PASSWORD_ROLE " LOGIN PASSWORD '" PG_TEST_PASSWORD "'",
                             err, sizeof(err)),
              "cannot create the password role: %s", err);
    return s;
}

void pg_server_stop(struct pg_server *s)
{
    unlink_running(s);
    if (s->pid <= 0)
        return;
    /* SIGINT is PostgreSQL's fast shutdown; SIGQUIT its immediate one. */
    kill(s->pid, SIGINT);
    int waited = 0;
    int sig = SIGQUIT;
    while (waitpid(s->pid, NULL, WNOHANG) != s->pid) {
        if (waited >= PG_STOP_TIMEOUT_MS) {
            kill(-s->pid, sig);
            kill(s->pid, sig);
            sig = SIGKILL;
            waited = PG_STOP_TIMEOUT_MS / 2;
        }
        harness_sleep_ms(10);
        waited += 10;
    }
    s->pid = 0;
}

void pg_server_resume(struct pg_server *s)
{
    cr_assert_not_null(s->data, "the shared server cannot be restarted by a test");
    cr_assert_eq(s->pid, 0, "the server is running already");
    launch(s, SIGINT);
}

void pg_server_restart(struct pg_server *s)
{
    pg_server_stop(s);
    pg_server_resume(s);
}

void pg_server_free(struct pg_server *s)
{
    if (!s)
        return;
    pg_server_stop(s);
    if (s->owns_dir)
        harness_rmrf(s->dir);
    free(s->dir);
    free(s->data);
    free(s);
}

const char *pg_server_host(const struct pg_server *s)
{
    return s->dir;
}

int pg_server_port(const struct pg_server *s)
{
    return s->port;
}

/* --- the server shared by one test binary ------------------------------------
 * Criterion runs each test in a process of its own, forked by the runner, so a
 * server per binary must outlive the test that starts it: a watcher process,
 * detached from the test, owns the postmaster and ends it, with its folder,
 * once the runner has exited. The folder is named after the runner's pid and a
 * lock file next to it makes tests that run in parallel start it once. */

static void watch_runner(struct pg_server *s, pid_t runner, const char *lock_path)
{
    /* The runner waits for its pipes to close: keep none of them open. */
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    char *watch_log = xasprintf("%s/watcher.log", s->dir);
    child_redirect(watch_log);
    free(watch_log);
    launch(s, SIGINT);
    char err[512];
    if (!pg_server_exec(s, "postgres",
                        "CREATE ROLE " PG_TEST_PASSWORD_ROLE " LOGIN PASSWORD '" PG_TEST_PASSWORD "'", err,
                        sizeof(err)))
        fprintf(stderr, "cannot create the password role: %s\n", err);
    char *ready = xasprintf("%s/ready", s->dir);
    write_text(ready, "w", "");
    free(ready);
    while (kill(runner, 0) == 0 || errno == EPERM) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            break;
        }
        harness_sleep_ms(200);
    }
    pg_server_stop(s);
    harness_rmrf(s->dir);
    unlink(lock_path);
    _exit(0);
}

static struct pg_server *binary_server(void)
{
    pid_t runner = getppid();
    struct pg_server *s = xcalloc(1, sizeof(*s));
    s->dir = xasprintf("/tmp/shop-pg-run-%ld", (long)runner);
    char *lock_path = xasprintf("%s.lock", s->dir);
    char *ready = xasprintf("%s/ready", s->dir);
    char *port_path = xasprintf("%s/port", s->dir);
    int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    cr_assert(lock >= 0 && flock(lock, LOCK_EX) == 0, "lock %s: %s", lock_path, strerror(errno));
    FILE *f = fopen(port_path, "r");
    if (f) {
        cr_assert_eq(fscanf(f, "%d", &s->port), 1, "unreadable %s", port_path);
        fclose(f);
    } else {
        struct pg_server fresh = {0};
        create_cluster(&fresh);
        /* The cluster moves to the folder named after the runner. */
        char *data = xasprintf("%s/data", s->dir);
        char *conf = xasprintf("%s/postgresql.conf", fresh.data);
        char *extra = xasprintf("unix_socket_directories = '%s'\n", s->dir);
        write_text(conf, "a", extra);
        cr_assert(rename(fresh.dir, s->dir) == 0, "rename %s: %s", fresh.dir, strerror(errno));
        s->port = fresh.port;
        free(fresh.data);
        fresh.data = data;
        free(fresh.dir);
        fresh.dir = xstrdup(s->dir);
        free(conf);
        free(extra);
        pid_t pid = fork();
        cr_assert(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0) {
            setsid();
            if (fork() == 0)
                watch_runner(&fresh, runner, lock_path);
            _exit(0);
        }
        waitpid(pid, NULL, 0);
        int waited = 0;
        while (access(ready, F_OK) != 0 && waited < PG_START_TIMEOUT_MS) {
            harness_sleep_ms(20);
            waited += 20;
        }
        free(fresh.dir);
        free(fresh.data);
        if (waited >= PG_START_TIMEOUT_MS)
            fail_with_log(s, "the test binary's server did not start");
        char port_text[16];
        snprintf(port_text, sizeof(port_text), "%d\n", s->port);
        write_text(port_path, "w", port_text);
    }
    close(lock);
    free(lock_path);
    free(ready);
    free(port_path);
    return s;
}

struct pg_server *pg_server_shared(void)
{
    static struct pg_server *shared;
    if (shared)
        return shared;
    const char *host = getenv("SHOP_TEST_PG_HOST");
    const char *port = getenv("SHOP_TEST_PG_PORT");
    if (host && *host && port && *port) {
        shared = xcalloc(1, sizeof(*shared));
        shared->dir = xstrdup(host);
        shared->port = atoi(port);
    } else {
        shared = binary_server();
    }
    cr_assert(server_answers(shared), "no PostgreSQL server answers on %s port %d", shared->dir,
              shared->port);
    return shared;
}

char *pg_test_database(struct pg_server *s, const char *prefix)
{
    static unsigned counter;
    char clean[24];
    size_t n = 0;
    for (const char *p = prefix ? prefix : "t"; *p && n < sizeof(clean) - 1; p++)
        clean[n++] = isalnum((unsigned char)*p) ? (char)tolower((unsigned char)*p) : '_';
    clean[n] = 0;
    /* The pid and a counter are unique among the live test processes; the clock
     * keeps a reused pid from meeting an older database on a run-wide server. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char *name = xasprintf("%s_%ld_%u_%lx", clean, (long)getpid(), ++counter, (unsigned long)now.tv_nsec);
    char *sql = xasprintf("CREATE DATABASE %s", name);
    char err[512];
    bool ok = pg_server_exec(s, "postgres", sql, err, sizeof(err));
    free(sql);
    cr_assert(ok, "CREATE DATABASE %s: %s", name, err);
    char *url = xasprintf("postgresql:///%s?host=%s&port=%d&user=postgres", name, s->dir, s->port);
    free(name);
    return url;
}
