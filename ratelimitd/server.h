/* server: ratelimitd's listeners, client connections and the line protocol over them.
 *
 * Each connection reads request lines, starts a decision per line and writes the answers
 * strictly in request order, however the decisions complete. Reading pauses while a
 * connection has too many answers pending or too much unsent output (backpressure); a line
 * longer than RL_PROTO_MAX_LINE is answered "ERR line too long" and the connection closed. */
#ifndef RATELIMITD_SERVER_H
#define RATELIMITD_SERVER_H

#include <stddef.h>

#include "ratelimitd/redis_store.h"
#include "ratelimitd/rules.h"
#include "ratelimitd/stats.h"

struct event_base;

struct rld_server_config {
    const char *unix_path; /* required: the unix socket */
    const char *tcp;       /* NULL or "": no TCP; otherwise a loopback host:port */
    long max_connections;
};

struct rld_server;

/* Binds the listeners (creating the socket's folder, replacing a stale socket file,
 * mode 0660) and starts serving. rules, store and stats are borrowed and must outlive
 * the server. Returns NULL with a one-line reason in err (e.g. a non-loopback TCP address). */
struct rld_server *rld_server_new(struct event_base *base, const struct rld_server_config *cfg,
                                  const struct rld_rules *rules, struct rld_store *store,
                                  struct rld_stats *stats, char *err, size_t errlen);
/* Stops accepting and removes the socket file; connections stop reading, get their pending
 * answers and close. done(arg) runs from the event loop once the last connection closed. */
void rld_server_shutdown(struct rld_server *srv, void (*done)(void *arg), void *arg);
/* Closes whatever is left and frees the server. */
void rld_server_free(struct rld_server *srv);
/* Decides new checks by rules from now on (a reload). Checks already sent to
 * the store finish with the rules they started with, so the old set must stay
 * allocated while the server lives. rules is borrowed. */
void rld_server_set_rules(struct rld_server *srv, const struct rld_rules *rules);

/* True when host (an address literal or "localhost") is a loopback address. */
int rld_server_is_loopback(const char *host);

#endif
