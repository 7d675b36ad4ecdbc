#include "shopd/offload.h"
#include "shared/log.h"
#include "shared/xalloc.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_THREADS 16

struct job {
    offload_fn work, done;
    void *arg;
    struct job *next;
};

struct offload {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct job *queue, *queue_tail; /* waiting for a thread */
    struct job *finished;           /* waiting for the loop */
    bool stopping;
    int nthreads;
    pthread_t threads[MAX_THREADS];
    int notify_fd; /* eventfd: a thread finished a job */
    struct event *notify_ev;
};

static void *thread_main(void *arg)
{
    struct offload *o = arg;
    pthread_mutex_lock(&o->lock);
    for (;;) {
        while (!o->queue && !o->stopping)
            pthread_cond_wait(&o->wake, &o->lock);
        if (o->stopping)
            break;
        struct job *j = o->queue;
        o->queue = j->next;
        if (!o->queue)
            o->queue_tail = NULL;
        pthread_mutex_unlock(&o->lock);
        j->work(j->arg);
        pthread_mutex_lock(&o->lock);
        j->next = o->finished;
        o->finished = j;
        uint64_t one = 1;
        ssize_t n = write(o->notify_fd, &one, sizeof(one));
        (void)n;
    }
    pthread_mutex_unlock(&o->lock);
    return NULL;
}

/* Runs the done callbacks of finished jobs, oldest first, on the loop thread. */
static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    struct offload *o = arg;
    uint64_t n;
    ssize_t got = read(fd, &n, sizeof(n));
    (void)got;
    pthread_mutex_lock(&o->lock);
    struct job *list = o->finished;
    o->finished = NULL;
    pthread_mutex_unlock(&o->lock);
    struct job *ordered = NULL;
    while (list) {
        struct job *next = list->next;
        list->next = ordered;
        ordered = list;
        list = next;
    }
    while (ordered) {
        struct job *next = ordered->next;
        ordered->done(ordered->arg);
        free(ordered);
        ordered = next;
    }
}

struct offload *offload_new(struct event_base *base, int threads)
{
    struct offload *o = xcalloc(1, sizeof(*o));
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->wake, NULL);
    o->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (o->notify_fd < 0) {
        log_error("offload: eventfd failed");
        free(o);
        return NULL;
    }
    o->notify_ev = event_new(base, o->notify_fd, EV_READ | EV_PERSIST, on_notify, o);
    event_add(o->notify_ev, NULL);
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&o->threads[i], NULL, thread_main, o) != 0) {
            log_error("offload: cannot start a thread; hashing runs on the event loop");
            break;
        }
        o->nthreads++;
    }
    if (o->nthreads == 0) {
        offload_free(o);
        return NULL;
    }
    return o;
}

void offload_run(struct offload *o, offload_fn work, offload_fn done, void *arg)
{
    if (!o) {
        work(arg);
        done(arg);
        return;
    }
    struct job *j = xcalloc(1, sizeof(*j));
    j->work = work;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&o->lock);
    if (o->queue_tail)
        o->queue_tail->next = j;
    else
        o->queue = j;
    o->queue_tail = j;
    pthread_cond_signal(&o->wake);
    pthread_mutex_unlock(&o->lock);
}

void offload_free(struct offload *o)
{
    if (!o)
        return;
    pthread_mutex_lock(&o->lock);
    o->stopping = true;
    pthread_cond_broadcast(&o->wake);
    pthread_mutex_unlock(&o->lock);
    for (int i = 0; i < o->nthreads; i++)
        pthread_join(o->threads[i], NULL);
    for (struct job *lists[2] = {o->queue, o->finished}, **l = lists; l < lists + 2; l++)
        while (*l) {
            struct job *next = (*l)->next;
            free(*l);
            *l = next;
        }
    if (o->notify_ev)
        event_free(o->notify_ev);
    close(o->notify_fd);
    pthread_mutex_destroy(&o->lock);
    pthread_cond_destroy(&o->wake);
    free(o);
}
