/* heap_release: gives a worker's free heap memory back to the system once a burst is over.
 *
 * A burst of connections (each with its buffers and an answer of up to tens of KB) grows
 * the heap by megabytes. When they close, glibc keeps the freed memory for reuse: it
 * returns only the free space at the top of the heap, and freed blocks among live ones
 * stay resident for good. A timer checks every 2 s how much the heap holds free and,
 * when that is more than 256 KiB, calls malloc_trim, which hands every free page back
 * (all arenas, the offload threads' too). Under steady load the free space stays small,
 * so it rarely runs; when it does, it costs a walk of the free blocks and one madvise per
 * free run of pages. */
#ifndef SHOPD_HEAP_RELEASE_H
#define SHOPD_HEAP_RELEASE_H

struct event;
struct event_base;

/* Starts the timer on base; the caller frees it with event_free. */
struct event *heap_release_start(struct event_base *base);

#endif
