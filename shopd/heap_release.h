/* heap_release: gives a worker's free heap memory back to the system once a burst is over.
 *
 * A burst of connections (each with its buffers and an answer of up to tens of KB) grows
 * the heap by megabytes. When they close, glibc keeps the freed memory for reuse: it
 * returns only the free space at the top of the heap, and freed blocks among live ones
 * stay resident for good. A timer checks every HEAP_RELEASE_EVERY_MS how much the heap
 * holds free and, when that is more than HEAP_RELEASE_MIN_FREE, calls malloc_trim, which
 * hands every free page back (all arenas, the offload threads' too). Under steady load
 * the free space stays small, so it rarely runs; when it does, it costs a walk of the
 * free blocks and one madvise per free run of pages. */
#ifndef SHOPD_HEAP_RELEASE_H
#define SHOPD_HEAP_RELEASE_H

#include <stddef.h>

struct event_base;

#define HEAP_RELEASE_EVERY_MS 2000
#define HEAP_RELEASE_MIN_FREE ((size_t)256 << 10)

struct heap_release;

/* Starts the timer on base. */
struct heap_release *heap_release_start(struct event_base *base);
void heap_release_stop(struct heap_release *h);

/* Bytes the heap holds free now (all arenas), and, when that is at least min_free,
 * gives them back; returns the bytes free before. */
size_t heap_release_now(size_t min_free);

#endif
