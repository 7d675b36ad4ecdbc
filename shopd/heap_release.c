#include "shopd/heap_release.h"

#include <event2/event.h>
#include <malloc.h>

#define EVERY_MS 2000
#define MIN_FREE ((size_t)256 << 10)

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    /* fordblks: free bytes inside the arenas, summed over all of them; blocks from
       mmap are returned when freed and are not counted. */
    if (mallinfo2().fordblks >= MIN_FREE)
        malloc_trim(0);
}

struct event *heap_release_start(struct event_base *base)
{
    struct event *timer = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval every = {EVERY_MS / 1000, (EVERY_MS % 1000) * 1000};
    event_add(timer, &every);
    return timer;
}
