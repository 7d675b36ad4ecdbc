/* harness: real processes and real HTTP for the API and integration tests.
 *
 * Processes started here get their own process group, die with the test process
 * (PR_SET_PDEATHSIG) and are killed by an atexit hook if a test forgot them, so a
 * failing test never leaves a server behind. Everything listens on 127.0.0.1. */
#ifndef TESTS_SUPPORT_HARNESS_H
#define TESTS_SUPPORT_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct harness_proc;

/* Starts argv[0] (a path) with argv, the current environment plus env ("K=V",
 * NULL-terminated, may be NULL), in cwd (NULL: current), stdout and stderr
 * appended to log_path (NULL: /dev/null). Returns the process; aborts the test
 * on failure to fork/exec. */
struct harness_proc *harness_start(const char *const argv[], const char *const env[], const char *cwd,
                                   const char *log_path);
pid_t harness_pid(const struct harness_proc *p);
bool harness_alive(struct harness_proc *p);
/* Sends sig to the process (not its group). */
void harness_signal(struct harness_proc *p, int sig);
/* SIGTERM, then SIGKILL to the whole group after timeout_ms; reaps and frees p.
 * Returns the wait status (or -1). NULL is a no-op. */
int harness_stop(struct harness_proc *p, int timeout_ms);
/* Waits up to timeout_ms for the process to exit by itself; returns the wait
 * status, or -1 when it is still running (p stays valid then). On exit p is freed. */
int harness_wait_exit(struct harness_proc *p, int timeout_ms);

/* A loopback TCP port that was free a moment ago (bound to port 0, then closed). */
int harness_free_port(void);
/* True once 127.0.0.1:port accepts a connection, within timeout_ms. */
bool harness_wait_port(int port, int timeout_ms);
/* True once path (a unix socket) accepts a connection, within timeout_ms. */
bool harness_wait_unix(const char *path, int timeout_ms);

/* A fresh temporary folder (caller frees the string; harness_rmrf removes it). */
char *harness_tempdir(const char *prefix);
void harness_rmrf(const char *path);
/* Path of a built binary: $SHOP_BIN/name, or ./bin/name. Caller frees. */
char *harness_bin(const char *name);
/* The checkout: $SHOP_ROOT or ".". Not to be freed. */
const char *harness_root(void);

/* What a command said and how it ended (harness_run_bin). */
struct harness_run {
    int status; /* the exit status, -1 when it did not exit */
    char *out, *err;
};
/* Runs $SHOP_BIN/bin with args in dir, with only PATH and env (a shell line of
 * "K=V" words: quote what needs it) in its environment, capturing stdout and
 * stderr through files in dir. Free with harness_run_free. */
struct harness_run harness_run_bin(const char *dir, const char *env, const char *bin, const char *args);
void harness_run_free(struct harness_run *r);
/* A file path under $SHOP_TEST_OUTPUT (created), for logs and screenshots. Caller frees. */
char *harness_output_path(const char *name);
/* Prints the last lines of a log file to stderr (for failing tests). */
void harness_dump_log(const char *path, int lines);
/* True when a line of the file at path that starts at or after byte offset contains
 * text (0: the whole file). A log is appended to: pass its size before a restart to
 * look only at what the new process wrote. */
bool harness_log_contains(const char *path, long offset, const char *text);
/* The size of the file at path, 0 when it does not exist. */
long harness_file_size(const char *path);
/* How many times needle occurs in the file at path (0 when it cannot be read). */
int harness_count_in_file(const char *path, const char *needle);
/* Sleeps ms milliseconds. */
void harness_sleep_ms(int ms);

/* --- HTTP client (libcurl), with a cookie jar per client ---------------- */

struct http_resp {
    long status; /* 0 when the request failed at the transport level */
    char *body;  /* NUL-terminated */
    size_t len;
    char *headers; /* raw response header block */
    json_t *json;  /* parsed body when it is JSON, else NULL */
    char error[256];
    void *header_copies; /* internal: values handed out by http_resp_header */
};

struct http_client;

struct http_client *http_client_new(void);
void http_client_free(struct http_client *c);
/* Sends one request. body may be NULL; content_type NULL means none; headers are
 * extra "Name: value" lines (NULL-terminated, may be NULL). Never returns NULL;
 * the caller frees with http_resp_free. Follows no redirects; timeout 15 s. */
struct http_resp *http_request(struct http_client *c, const char *method, const char *url,
                               const char *content_type, const char *body, const char *const headers[]);
/* JSON shortcut: body is a JSON text or NULL; sets Content-Type: application/json when body is given. */
struct http_resp *http_json(struct http_client *c, const char *method, const char *url, const char *body);
/* Value of the first response header with that name (case-insensitive), copied
 * into a buffer owned by resp; NULL when absent. */
const char *http_resp_header(struct http_resp *r, const char *name);
/* Number of response headers with that name. */
int http_resp_header_count(const struct http_resp *r, const char *name);
void http_resp_free(struct http_resp *r);
/* The value of cookie `name` in the client's jar, or NULL (caller frees). */
char *http_client_cookie(struct http_client *c, const char *name);

#endif
