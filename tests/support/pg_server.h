/* pg_server: a private PostgreSQL server for the suites that run on that engine.
 *
 * The server comes from Debian's package (/usr/lib/postgresql/<version>/bin),
 * lives in a temporary folder and listens only on a unix socket in that folder
 * (listen_addresses=''); the port number only names the socket. Durability is
 * off (fsync, synchronous_commit, full_page_writes): a test never survives a
 * crash of the machine. initdb refuses to run as root, so under root the server
 * runs as the `postgres` user the package creates. Local connections are trusted
 * for every role but PG_TEST_PASSWORD_ROLE, which must give its password (for
 * the tests of wrong credentials). */
#ifndef TESTS_SUPPORT_PG_SERVER_H
#define TESTS_SUPPORT_PG_SERVER_H

#include <stdbool.h>
#include <stddef.h>

/* A role that logs in only with PG_TEST_PASSWORD (scram-sha-256). */
#define PG_TEST_PASSWORD_ROLE "shop_pw"
#define PG_TEST_PASSWORD "shop-pw-secret"

struct pg_server;

/* Creates a cluster in a new temporary folder and starts it; waits until it
 * accepts connections. Aborts the test on failure (showing the server's log).
 * The server dies with the test process; pg_server_free stops it and removes
 * its folder. */
struct pg_server *pg_server_start(void);
/* Fast shutdown (SIGINT: open sessions are ended); the folder stays, so
 * pg_server_resume starts the same cluster on the same socket again. */
void pg_server_stop(struct pg_server *s);
/* Starts a stopped server again and waits until it accepts connections. */
void pg_server_resume(struct pg_server *s);
/* pg_server_stop, then pg_server_resume: the database restarting under load. */
void pg_server_restart(struct pg_server *s);
/* Stops the server when this process started it, removes its folder when this
 * process made it, and frees s. NULL is a no-op. */
void pg_server_free(struct pg_server *s);

/* The run-wide server: the one named by SHOP_TEST_PG_HOST (its socket folder)
 * and SHOP_TEST_PG_PORT when both are set (tests/run.sh starts it with
 * tools/pg-test-server.sh), else one that the first caller of this test binary
 * starts and that stops by itself once the test binary has exited. Owned by
 * this module: never free it. Aborts the test when no server can be had. */
struct pg_server *pg_server_shared(void);

/* The socket folder and port (libpq's host and port). Owned by s. */
const char *pg_server_host(const struct pg_server *s);
int pg_server_port(const struct pg_server *s);

/* Creates a new empty database with a unique name (prefix, then the process id
 * and a counter) and returns its URL in the form shopd reads:
 * postgresql:///NAME?host=SOCKETDIR&port=PORT&user=postgres. Caller frees.
 * Aborts the test on failure. The database lives as long as the server. */
char *pg_test_database(struct pg_server *s, const char *prefix);

/* Runs one SQL command (no parameters, no result rows) on database dbname of
 * the server as the superuser. Returns true on success; err (may be NULL)
 * gets the server's message on failure. */
bool pg_server_exec(const struct pg_server *s, const char *dbname, const char *sql, char *err, size_t errlen);

#endif
