#include "dynamo_multi.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "xalloc.h"

#define MAX_SLOTS 1024

enum slot_state {
    SLOT_FREE,
    SLOT_RUNNING, /* added to the multi handle */
    SLOT_DONE,    /* result waiting for dynamo_multi_next */
};

struct slot {
    enum slot_state state;
    CURL *h; /* kept across requests: only the connections are shared */
    struct dynamo_transfer *t;
    void *tag;
    uint64_t seq; /* when it finished, so results come out oldest first */
    struct dynamo_result r;
};

struct dynamo_multi {
    struct dynamo_client *c; /* endpoint, credentials, signing; its own handle stays unused */
    CURLM *multi;
    struct slot *slots;
    size_t n;
    size_t busy;
    uint64_t seq;
};

struct dynamo_multi *dynamo_multi_new(const struct dynamo_config *cfg, size_t slots, char *err, size_t errlen)
{
    if (slots < 1 || slots > MAX_SLOTS) {
        snprintf(err, errlen, "%zu requests in flight: 1 to %d are possible", slots, MAX_SLOTS);
        return NULL;
    }
    struct dynamo_client *c = dynamo_client_new(cfg, err, errlen);
    if (!c)
        return NULL;
    struct dynamo_multi *m = xcalloc(1, sizeof(*m));
    m->c = c;
    m->n = slots;
    m->slots = xcalloc(slots, sizeof(*m->slots));
    m->multi = curl_multi_init();
    bool ok = m->multi != NULL;
    for (size_t i = 0; ok && i < slots; i++) {
        m->slots[i].h = curl_easy_init();
        ok = m->slots[i].h != NULL;
    }
    if (!ok) {
        snprintf(err, errlen, "cannot create libcurl handles");
        dynamo_multi_free(m);
        return NULL;
    }
    /* The bound holds even if a caller starts more than it should: curl queues
     * transfers beyond it until a connection is free. HTTP/1.1 only (DynamoDB
     * speaks no HTTP/2), so one connection carries one request at a time. */
    curl_multi_setopt(m->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)slots);
    curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)slots);
    curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, (long)slots);
    curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    return m;
}

void dynamo_multi_free(struct dynamo_multi *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        struct slot *s = &m->slots[i];
        if (s->state == SLOT_RUNNING) {
            curl_multi_remove_handle(m->multi, s->h);
            struct dynamo_result r;
            dynamo_transfer_finish(s->t, CURLE_ABORTED_BY_CALLBACK, &r);
            dynamo_result_cleanup(&r);
        }
        dynamo_result_cleanup(&s->r);
        if (s->h)
            curl_easy_cleanup(s->h);
    }
    if (m->multi)
        curl_multi_cleanup(m->multi);
    free(m->slots);
    dynamo_client_free(m->c);
    free(m);
}

const char *dynamo_multi_endpoint(const struct dynamo_multi *m)
{
    return dynamo_client_endpoint(m->c);
}

long dynamo_multi_connects(const struct dynamo_multi *m)
{
    return dynamo_client_connects(m->c);
}

size_t dynamo_multi_busy(const struct dynamo_multi *m)
{
    return m->busy;
}

size_t dynamo_multi_slots(const struct dynamo_multi *m)
{
    return m->n;
}

static void finished(struct dynamo_multi *m, struct slot *s)
{
    s->state = SLOT_DONE;
    s->seq = ++m->seq;
}

int dynamo_multi_put_item(struct dynamo_multi *m, const char *table, json_t *item, const char *condition,
                          void *tag)
{
    struct slot *s = NULL;
    for (size_t i = 0; i < m->n && !s; i++)
        if (m->slots[i].state == SLOT_FREE)
            s = &m->slots[i];
    if (!s)
        return -1;
    json_t *req = dynamo_put_item_request(table, item, condition);
    s->tag = tag;
    s->t = dynamo_transfer_start(m->c, s->h, "PutItem", req, &s->r);
    json_decref(req);
    m->busy++;
    if (!s->t) {
        finished(m, s);
        return 0;
    }
    CURLMcode mc = curl_multi_add_handle(m->multi, s->h);
    if (mc != CURLM_OK) {
        /* Only a broken multi handle refuses; the request was never sent. */
        log_error("dynamo: cannot start a request: %s", curl_multi_strerror(mc));
        dynamo_transfer_finish(s->t, CURLE_FAILED_INIT, &s->r);
        s->t = NULL;
        finished(m, s);
        return 0;
    }
    s->state = SLOT_RUNNING;
    return 0;
}

/* Runs what can run now and collects the transfers curl has ended. */
static int perform(struct dynamo_multi *m)
{
    int running;
    CURLMcode mc = curl_multi_perform(m->multi, &running);
    if (mc != CURLM_OK) {
        log_error("dynamo: curl_multi_perform: %s", curl_multi_strerror(mc));
        return -1;
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct slot *s = NULL;
        for (size_t i = 0; i < m->n && !s; i++)
            if (m->slots[i].h == msg->easy_handle && m->slots[i].state == SLOT_RUNNING)
                s = &m->slots[i];
        if (!s)
            continue;
        CURLcode rc = msg->data.result;
        curl_multi_remove_handle(m->multi, s->h);
        dynamo_transfer_finish(s->t, rc, &s->r);
        s->t = NULL;
        finished(m, s);
    }
    return 0;
}

static bool any_done(const struct dynamo_multi *m)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->slots[i].state == SLOT_DONE)
            return true;
    return false;
}

int dynamo_multi_wait(struct dynamo_multi *m, const int *fds, bool *readable, size_t nfds, int timeout_ms)
{
    struct curl_waitfd extra[8];
    if (nfds > sizeof(extra) / sizeof(extra[0]))
        nfds = sizeof(extra) / sizeof(extra[0]);
    for (size_t i = 0; i < nfds; i++) {
        extra[i] = (struct curl_waitfd){.fd = fds[i], .events = CURL_WAIT_POLLIN};
        if (readable)
            readable[i] = false;
    }
    if (perform(m) < 0)
        return -1;
    if (any_done(m))
        return 0;
    /* curl shortens the wait to its own next timeout (connect, request timer). */
    CURLMcode mc = curl_multi_poll(m->multi, extra, (unsigned)nfds, timeout_ms < 0 ? 0 : timeout_ms, NULL);
    /* A signal ends the poll early with CURLM_OK (curl treats EINTR as a timeout). */
    if (mc != CURLM_OK) {
        log_error("dynamo: curl_multi_poll: %s", curl_multi_strerror(mc));
        return -1;
    }
    for (size_t i = 0; readable && i < nfds; i++)
        readable[i] = (extra[i].revents & CURL_WAIT_POLLIN) != 0;
    return perform(m);
}

bool dynamo_multi_next(struct dynamo_multi *m, void **tag, struct dynamo_result *out)
{
    struct slot *oldest = NULL;
    for (size_t i = 0; i < m->n; i++) {
        struct slot *s = &m->slots[i];
        if (s->state == SLOT_DONE && (!oldest || s->seq < oldest->seq))
            oldest = s;
    }
    if (!oldest)
        return false;
    *tag = oldest->tag;
    *out = oldest->r;
    oldest->r = (struct dynamo_result){0};
    oldest->tag = NULL;
    oldest->state = SLOT_FREE;
    m->busy--;
    return true;
}
