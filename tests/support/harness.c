#include "harness.h"
#include "shared/strbuf.h"
#include "shared/xalloc.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct harness_proc {
    pid_t pid;
    int status;
    bool exited;
    struct harness_proc *next;
};

static struct harness_proc *live_procs;

/* Folders from harness_tempdir not yet removed with harness_rmrf. */
struct tempdir {
    char *path;
    struct tempdir *next;
};
static struct tempdir *live_dirs;

/* The process whose exit cleans up: a forked child that calls exit() must not
   stop its parent's processes or remove its folders. */
static pid_t cleanup_owner;

static void unlink_proc(struct harness_proc *p)
{
    for (struct harness_proc **pp = &live_procs; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            return;
        }
}

static void rmrf_now(const char *path);

/* At exit, whatever a test left: also when it failed or was skipped, which ends it
 * without its suite's .fini. Processes go first: they may still write into the
 * folders. */
static void clean_up_leftovers(void)
{
    if (getpid() != cleanup_owner)
        return;
    for (struct harness_proc *p = live_procs; p; p = p->next) {
        kill(-p->pid, SIGKILL);
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
    }
    live_procs = NULL;
    for (struct tempdir *d = live_dirs; d; d = d->next)
        rmrf_now(d->path);
    live_dirs = NULL;
}

static void clean_up_at_exit(void)
{
    pid_t me = getpid();
    if (cleanup_owner == me)
        return;
    if (cleanup_owner != 0) {
        /* A forked child: the lists it inherited are its parent's. */
        live_procs = NULL;
        live_dirs = NULL;
    } else {
        atexit(clean_up_leftovers); /* inherited by children, where it checks the owner */
    }
    cleanup_owner = me;
}

void harness_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

struct harness_proc *harness_start(const char *const argv[], const char *const env[], const char *cwd,
                                   const char *log_path)
{
    clean_up_at_exit();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        abort();
    }
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log_path ? log_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
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
        if (cwd && chdir(cwd) < 0) {
            perror("chdir");
            _exit(127);
        }
        for (const char *const *e = env; e && *e; e++)
            putenv((char *)*e);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    struct harness_proc *p = xcalloc(1, sizeof(*p));
    p->pid = pid;
    p->next = live_procs;
    live_procs = p;
    return p;
}

pid_t harness_pid(const struct harness_proc *p)
{
    return p->pid;
}

bool harness_alive(struct harness_proc *p)
{
    if (p->exited)
        return false;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        p->exited = true;
        p->status = st;
        return false;
    }
    return true;
}

void harness_signal(struct harness_proc *p, int sig)
{
    kill(p->pid, sig);
}

int harness_wait_exit(struct harness_proc *p, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        if (!harness_alive(p)) {
            int st = p->status;
            kill(-p->pid, SIGKILL); /* anything it left in its group */
            unlink_proc(p);
            free(p);
            return st;
        }
        harness_sleep_ms(10);
    }
    return -1;
}

int harness_stop(struct harness_proc *p, int timeout_ms)
{
    if (!p)
        return -1;
    if (!p->exited)
        kill(p->pid, SIGTERM);
    int st = harness_wait_exit(p, timeout_ms);
    if (st != -1)
        return st;
    kill(-p->pid, SIGKILL);
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &st, 0);
    unlink_proc(p);
    free(p);
    return st;
}

/* True when nothing holds 127.0.0.1:port: a bind without SO_REUSEADDR succeeds. */
static bool port_is_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        abort();
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* The first port of the kernel's ephemeral range, 32768 when it cannot be read. */
static int ephemeral_low(void)
{
    int lo = 32768, hi;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2)
            lo = 32768;
        fclose(f);
    }
    return lo;
}

/* Ports come from below the kernel's ephemeral range. A port from inside it (what
 * binding port 0 gives) can be taken as the local port of any outgoing connection on
 * the machine before the server binds it, and the other lane of make test makes many:
 * dynalite once failed on EADDRINUSE that way while a port check passed. The last
 * ports handed out are skipped, since a test often picks several before it binds any. */
#define PORT_RANGE_LOW 10000
int harness_free_port(void)
{
    static unsigned seed;
    static pid_t seeded_by;
    static int recent[64];
    static size_t n_recent;
    if (seeded_by != getpid()) {
        /* Each test runs in a process of its own: a forked copy of the seed would hand
         * two tests the same ports. */
        seeded_by = getpid();
        seed = (unsigned)seeded_by * 2654435761u ^ (unsigned)time(NULL);
        n_recent = 0;
    }
    static int high; /* read once: the range does not change during a run */
    if (!high)
        high = ephemeral_low();
    for (int tries = 0; high - PORT_RANGE_LOW >= 1000 && tries < 1000; tries++) {
        int port = PORT_RANGE_LOW + (int)(rand_r(&seed) % (unsigned)(high - PORT_RANGE_LOW));
        bool used = false;
        for (size_t i = 0; i < n_recent && i < 64; i++)
            used |= recent[i] == port;
        if (used || !port_is_free(port))
            continue;
        recent[n_recent++ % 64] = port;
        return port;
    }
    /* No room below the ephemeral range: the kernel's choice. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        abort();
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Tries to connect to addr every 20 ms until it accepts or timeout_ms passes. */
static bool wait_connect(int domain, const struct sockaddr *addr, socklen_t len, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        int fd = socket(domain, SOCK_STREAM, 0);
        int ok = connect(fd, addr, len);
        close(fd);
        if (ok == 0)
            return true;
        harness_sleep_ms(20);
    }
    return false;
}

bool harness_wait_port(int port, int timeout_ms)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    return wait_connect(AF_INET, (struct sockaddr *)&a, sizeof(a), timeout_ms);
}

bool harness_wait_unix(const char *path, int timeout_ms)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    return wait_connect(AF_UNIX, (struct sockaddr *)&a, sizeof(a), timeout_ms);
}

char *harness_tempdir(const char *prefix)
{
    char *dir = xasprintf("/tmp/%s-XXXXXX", prefix ? prefix : "shop-test");
    if (!mkdtemp(dir))
        abort();
    clean_up_at_exit();
    struct tempdir *d = xcalloc(1, sizeof(*d));
    d->path = xstrdup(dir);
    d->next = live_dirs;
    live_dirs = d;
    return dir;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rmrf_now(const char *path)
{
    if (path && strncmp(path, "/tmp/", 5) == 0)
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void harness_rmrf(const char *path)
{
    rmrf_now(path);
    for (struct tempdir **dp = &live_dirs; path && *dp; dp = &(*dp)->next)
        if (strcmp((*dp)->path, path) == 0) {
            struct tempdir *d = *dp;
            *dp = d->next;
            free(d->path);
            free(d);
            return;
        }
}

char *harness_bin(const char *name)
{
    const char *dir = getenv("SHOP_BIN");
    return xasprintf("%s/%s", dir && *dir ? dir : "bin", name);
}

const char *harness_root(void)
{
    const char *root = getenv("SHOP_ROOT");
    return root && *root ? root : ".";
}

char *harness_output_path(const char *name)
{
    const char *dir = getenv("SHOP_TEST_OUTPUT");
    if (!dir || !*dir)
        dir = "/tmp/shop-test-output";
    mkdir(dir, 0755);
    return xasprintf("%s/%s", dir, name);
}

bool harness_log_contains(const char *path, long offset, const char *text)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[8192];
    bool found = false;
    if (fseek(f, offset, SEEK_SET) == 0)
        while (!found && fgets(line, sizeof(line), f))
            found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

long harness_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

void harness_dump_log(const char *path, int lines)
{
    char *cmd = xasprintf("tail -n %d '%s' >&2", lines, path);
    int rc = system(cmd);
    (void)rc;
    free(cmd);
}

int harness_count_in_file(const char *path, const char *needle)
{
    struct strbuf b = {0};
    int n = 0;
    if (strbuf_read_file(&b, path, 64u << 20) == 0 && b.p)
        for (const char *p = b.p; (p = strstr(p, needle)) != NULL; p += strlen(needle))
            n++;
    strbuf_free(&b);
    return n;
}

/* --- HTTP ----------------------------------------------------------------- */

struct http_client {
    CURL *curl;
};

static size_t grow_write(char *ptr, size_t size, size_t n, void *ud)
{
    strbuf_add(ud, ptr, size * n);
    return size * n;
}

struct http_client *http_client_new(void)
{
    static bool inited;
    if (!inited) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        inited = true;
    }
    struct http_client *c = xcalloc(1, sizeof(*c));
    c->curl = curl_easy_init();
    curl_easy_setopt(c->curl, CURLOPT_COOKIEFILE, "");
    return c;
}

void http_client_free(struct http_client *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->curl);
    free(c);
}

struct http_resp *http_request(struct http_client *c, const char *method, const char *url,
                               const char *content_type, const char *body, const char *const headers[])
{
    struct http_resp *r = xcalloc(1, sizeof(*r));
    struct strbuf b = {0}, h = {0};
    CURL *k = c->curl;
    struct curl_slist *hl = NULL;
    if (content_type) {
        char *line = xasprintf("Content-Type: %s", content_type);
        hl = curl_slist_append(hl, line);
        free(line);
    } else {
        /* No type given: send none (libcurl would add a form type to every POST). */
        hl = curl_slist_append(hl, "Content-Type:");
    }
    hl = curl_slist_append(hl, "Expect:");
    for (const char *const *x = headers; x && *x; x++)
        hl = curl_slist_append(hl, *x);

    curl_easy_setopt(k, CURLOPT_URL, url);
    curl_easy_setopt(k, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(k, CURLOPT_HTTPGET, 1L);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(k, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(k, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(k, CURLOPT_CUSTOMREQUEST,
                     strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ? NULL : method);
    if (!body && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        curl_easy_setopt(k, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(k, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, grow_write);
    curl_easy_setopt(k, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(k, CURLOPT_HEADERFUNCTION, grow_write);
    curl_easy_setopt(k, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(k, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(k, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(k);
    if (rc != CURLE_OK)
        snprintf(r->error, sizeof(r->error), "%s", curl_easy_strerror(rc));
    else
        curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_setopt(k, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(k, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(hl);
    r->body = strbuf_take(&b, &r->len);
    r->headers = strbuf_take(&h, NULL);
    if (r->len)
        r->json = json_loadb(r->body, r->len, 0, NULL);
    return r;
}

struct http_resp *http_json(struct http_client *c, const char *method, const char *url, const char *body)
{
    return http_request(c, method, url, body ? "application/json" : NULL, body, NULL);
}

/* Header values handed out by http_resp_header live until http_resp_free. */
struct header_copy {
    struct header_copy *next;
    char value[];
};

static void release_copies(struct http_resp *r)
{
    struct header_copy *c = r->header_copies;
    while (c) {
        struct header_copy *n = c->next;
        free(c);
        c = n;
    }
    r->header_copies = NULL;
}

static const char *find_header(const char *headers, const char *name, const char **from)
{
    size_t nl = strlen(name);
    for (const char *line = *from; line && *line;) {
        const char *eol = strstr(line, "\r\n");
        if (!eol)
            eol = line + strlen(line);
        if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            *from = *eol ? eol + 2 : eol;
            return line + nl + 1;
        }
        line = *eol ? eol + 2 : eol;
    }
    (void)headers;
    return NULL;
}

const char *http_resp_header(struct http_resp *r, const char *name)
{
    /* Only the last response's headers count (curl records 1xx and redirects before it). */
    const char *start = r->headers, *p;
    while ((p = strstr(start + 1, "\r\n\r\nHTTP/")) != NULL)
        start = p + 4;
    const char *from = start;
    const char *v = find_header(r->headers, name, &from);
    if (!v)
        return NULL;
    while (*v == ' ' || *v == '\t')
        v++;
    const char *end = strstr(v, "\r\n");
    size_t n = end ? (size_t)(end - v) : strlen(v);
    struct header_copy *copy = xmalloc(sizeof(*copy) + n + 1);
    memcpy(copy->value, v, n);
    copy->value[n] = '\0';
    copy->next = r->header_copies;
    r->header_copies = copy;
    return copy->value;
}

int http_resp_header_count(const struct http_resp *r, const char *name)
{
    int n = 0;
    const char *from = r->headers;
    while (find_header(r->headers, name, &from))
        n++;
    return n;
}

void http_resp_free(struct http_resp *r)
{
    if (!r)
        return;
    release_copies(r);
    free(r->body);
    free(r->headers);
    if (r->json)
        json_decref(r->json);
    free(r);
}

char *http_client_cookie(struct http_client *c, const char *name)
{
    struct curl_slist *cookies = NULL;
    char *found = NULL;
    curl_easy_getinfo(c->curl, CURLINFO_COOKIELIST, &cookies);
    for (struct curl_slist *s = cookies; s; s = s->next) {
        /* Netscape format: domain, flag, path, secure, expiry, name, value (tab-separated). */
        char *fields[7] = {0};
        char *copy = xstrdup(s->data), *save = NULL;
        int i = 0;
        for (char *t = strtok_r(copy, "\t", &save); t && i < 7; t = strtok_r(NULL, "\t", &save))
            fields[i++] = t;
        if (i >= 6 && strcmp(fields[5], name) == 0)
            found = xstrdup(i == 7 ? fields[6] : "");
        free(copy);
        if (found)
            break;
    }
    curl_slist_free_all(cookies);
    return found;
}

struct harness_run harness_run_bin(const char *dir, const char *env, const char *bin, const char *args)
{
    char *exe = harness_bin(bin);
    char *out = xasprintf("%s/out", dir), *err = xasprintf("%s/err", dir);
    char *cmd = xasprintf("cd '%s' && env -i PATH=/usr/bin:/bin %s '%s' %s >'%s' 2>'%s'", dir, env, exe, args,
                          out, err);
    struct harness_run r = {0};
    int st = system(cmd);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    struct strbuf b = {0};
    strbuf_read_file(&b, out, 1 << 20);
    r.out = strbuf_take(&b, NULL);
    strbuf_read_file(&b, err, 1 << 20);
    r.err = strbuf_take(&b, NULL);
    free(cmd);
    free(out);
    free(err);
    free(exe);
    return r;
}

void harness_run_free(struct harness_run *r)
{
    free(r->out);
    free(r->err);
}
