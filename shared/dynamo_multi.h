/* dynamo_multi: several DynamoDB requests in flight at once (libcurl multi).
 *
 * One DynamoDB request takes a network round trip (5-10 ms to AWS); sent one
 * after another they cap a sender at a few hundred a second. This module keeps
 * up to `slots` requests in flight over at most as many kept-alive connections
 * (curl's connection cache, shared by the slots), each request signed and
 * classified exactly as dynamo_call does (see dynamo.h). It runs in the
 * caller's own loop: start requests, wait (which also watches the caller's
 * file descriptors), take finished results. No threads, no callbacks; not
 * thread-safe (one per process or thread). */
#ifndef SHARED_DYNAMO_MULTI_H
#define SHARED_DYNAMO_MULTI_H

#include "dynamo.h"

#include <stdbool.h>
#include <stddef.h>

struct dynamo_multi;

/* Creates a sender with `slots` (1 to 1024) request slots and as many
 * connections at most, for the endpoint and credentials in cfg (copied).
 * Returns NULL with a one-line reason in err (bad endpoint, bad slot count).
 * Free with dynamo_multi_free. */
struct dynamo_multi *dynamo_multi_new(const struct dynamo_config *cfg, size_t slots, char *err,
                                      size_t errlen);
/* Abandons what is in flight, closes the connections, frees m (NULL is a no-op). */
void dynamo_multi_free(struct dynamo_multi *m);

/* The endpoint URL in use (owned by m). */
const char *dynamo_multi_endpoint(const struct dynamo_multi *m);
/* New connections opened so far by finished requests (stays at most `slots`
 * while connections are kept alive). */
long dynamo_multi_connects(const struct dynamo_multi *m);
/* Slots taken: requests in flight plus finished ones not yet taken. */
size_t dynamo_multi_busy(const struct dynamo_multi *m);
/* The number of slots. */
size_t dynamo_multi_slots(const struct dynamo_multi *m);

/* Starts PutItem of item (borrowed, serialised now) into table, with
 * condition as in dynamo_put_item; tag comes back with its result. Returns 0,
 * or -1 when every slot is taken (nothing started). A request that cannot be
 * built (missing credentials) finishes at once: its result is waiting. */
int dynamo_multi_put_item(struct dynamo_multi *m, const char *table, json_t *item, const char *condition,
                          void *tag);

/* Moves the transfers along and waits up to timeout_ms for one of them to
 * finish or for one of the caller's fds (nfds of them, may be 0) to become
 * readable; readable[i] tells which (may be NULL). Returns at once when a
 * result is already waiting. Returns 0, or -1 when curl fails (logged). */
int dynamo_multi_wait(struct dynamo_multi *m, const int *fds, bool *readable, size_t nfds, int timeout_ms);

/* Takes the oldest finished request: fills *tag and out (the caller cleans
 * it up with dynamo_result_cleanup) and frees its slot. Returns false when none
 * has finished. */
bool dynamo_multi_next(struct dynamo_multi *m, void **tag, struct dynamo_result *out);

#endif
