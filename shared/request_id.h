/* request_id: the X-Request-Id contract between the balancer and shopd.
 *
 * One rule for which client-supplied ids are kept and one generator for new
 * ones, so that an id the balancer forwards is the id shopd logs: both
 * daemons' access logs and answers name the same request. */
#ifndef SHARED_REQUEST_ID_H
#define SHARED_REQUEST_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest id kept; buffers for an id hold REQUEST_ID_MAX + 1 bytes. */
#define REQUEST_ID_MAX 128

/* True when id (len bytes, no NUL needed) may be forwarded and logged as it
 * is: 1 to REQUEST_ID_MAX characters from [A-Za-z0-9._:+/=-], which covers
 * UUIDs, trace ids ("trace:42") and base64, and cannot break a header or a
 * log line. */
bool request_id_valid(const char *id, size_t len);

/* Makes ids "<16 hex of a random prefix>-<hex counter>", unique per generator
 * and, through the random prefix, across processes. */
struct request_id_gen {
    char prefix[17];
    uint64_t counter;
};

/* Seeds a generator with a fresh random prefix. */
void request_id_gen_init(struct request_id_gen *gen);
/* Writes the next id and its NUL into out (REQUEST_ID_MAX + 1 bytes at least);
 * returns its length. */
size_t request_id_next(struct request_id_gen *gen, char *out);

#endif
