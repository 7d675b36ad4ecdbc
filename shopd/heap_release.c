#include "shopd/heap_release.h"

#include "shared/xalloc.h"

#include <event2/event.h>
#include <malloc.h>
#include <stdlib.h>

struct heap_release {
    struct event *timer;
};

size_t heap_release_now(size_t min_free)
{
    /* fordblks: free bytes inside the arenas, summed over all of them; blocks from
       mmap are returned when freed and are not counted. */
    struct mallinfo2 mi = mallinfo2();
    if (mi.fordblks >= min_free)
        malloc_trim(0);
    return mi.fordblks;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    heap_release_now(HEAP_RELEASE_MIN_FREE);
}

struct heap_release *heap_release_start(struct event_base *base)
{
    struct heap_release *h = xcalloc(1, sizeof(*h));
    h->timer = event_new(base, -1, EV_PERSIST, on_tick, h);
    struct timeval every = {HEAP_RELEASE_EVERY_MS / 1000, (HEAP_RELEASE_EVERY_MS % 1000) * 1000};
    event_add(h->timer, &every);
    return h;
}

void heap_release_stop(struct heap_release *h)
{
    if (!h)
        return;
    event_free(h->timer);
    free(h);
}
