/* rl_bench: load client for ratelimitd. Keeps `depth` CHECKs in flight on each of
 * `conns` unix-socket connections (pipelined, as shopd workers do) until `total`
 * answers arrived, then prints one line: decisions per second and latency percentiles.
 *
 *   rl_bench SOCKET TOTAL DEPTH CONNS RULE KEYS
 *
 * Built by tools/bench-ratelimitd.sh; not part of the daemon or the test suite. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    uint64_t *sent_at; /* ring of send times, one per request in flight */
    size_t head, inflight;
    char in[65536];
    size_t inlen;
    long next_key;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s SOCKET TOTAL DEPTH CONNS RULE KEYS\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    long total = atol(argv[2]), depth = atol(argv[3]), nconns = atol(argv[4]), keys = atol(argv[6]);
    const char *rule = argv[5];
    if (total < 1 || depth < 1 || nconns < 1 || keys < 1) {
        fprintf(stderr, "rl_bench: TOTAL, DEPTH, CONNS and KEYS must be positive\n");
        return 2;
    }
    struct conn *cs = calloc((size_t)nconns, sizeof(*cs));
    struct pollfd *pfds = calloc((size_t)nconns, sizeof(*pfds));
    uint64_t *lat = malloc((size_t)total * sizeof(*lat));
    for (long i = 0; i < nconns; i++) {
        cs[i].fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
        if (connect(cs[i].fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            fprintf(stderr, "rl_bench: connect %s: %s\n", path, strerror(errno));
            return 1;
        }
        cs[i].sent_at = calloc((size_t)depth, sizeof(uint64_t));
        cs[i].next_key = i;
    }
    long sent = 0, done = 0, allowed = 0, denied = 0, errors = 0;
    uint64_t start = now_us();
    while (done < total) {
        for (long i = 0; i < nconns; i++) {
            struct conn *c = &cs[i];
            char out[65536];
            size_t outlen = 0;
            while ((long)c->inflight < depth && sent < total && outlen + 400 < sizeof(out)) {
                outlen += (size_t)snprintf(out + outlen, sizeof(out) - outlen, "CHECK %s k%ld\r\n", rule,
                                           c->next_key % keys);
                c->next_key += nconns;
                c->sent_at[(c->head + c->inflight) % (size_t)depth] = now_us();
                c->inflight++;
                sent++;
            }
            for (size_t off = 0; off < outlen;) {
                ssize_t n = write(c->fd, out + off, outlen - off);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0) {
                    fprintf(stderr, "rl_bench: write: %s\n", strerror(errno));
                    return 1;
                }
                off += (size_t)n;
            }
            pfds[i].fd = c->fd;
            pfds[i].events = c->inflight ? POLLIN : 0;
        }
        if (poll(pfds, (nfds_t)nconns, 5000) <= 0) {
            fprintf(stderr, "rl_bench: no answer within 5 s\n");
            return 1;
        }
        for (long i = 0; i < nconns; i++) {
            if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            struct conn *c = &cs[i];
            ssize_t n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
            if (n <= 0) {
                fprintf(stderr, "rl_bench: connection closed\n");
                return 1;
            }
            c->inlen += (size_t)n;
            char *p = c->in, *end = c->in + c->inlen, *nl;
            uint64_t t = now_us();
            while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
                if (c->inflight == 0) {
                    fprintf(stderr, "rl_bench: unexpected answer\n");
                    return 1;
                }
                allowed += p[0] == 'A';
                denied += p[0] == 'D';
                errors += p[0] == 'E';
                lat[done++] = t - c->sent_at[c->head];
                c->head = (c->head + 1) % (size_t)depth;
                c->inflight--;
                p = nl + 1;
            }
            c->inlen = (size_t)(end - p);
            memmove(c->in, p, c->inlen);
        }
    }
    double secs = (double)(now_us() - start) / 1e6;
    qsort(lat, (size_t)total, sizeof(*lat), cmp_u64);
    printf("decisions_per_s=%.0f p50_us=%llu p99_us=%llu max_us=%llu allowed=%ld denied=%ld errors=%ld\n",
           (double)total / secs, (unsigned long long)lat[total / 2],
           (unsigned long long)lat[total * 99 / 100], (unsigned long long)lat[total - 1], allowed, denied,
           errors);
    for (long i = 0; i < nconns; i++) {
        close(cs[i].fd);
        free(cs[i].sent_at);
    }
    free(cs);
    free(pfds);
    free(lat);
    return errors ? 1 : 0;
}
