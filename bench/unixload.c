/* unixload: an HTTP/1.1 keep-alive load generator over a Unix socket (wrk cannot do AF_UNIX).
 *
 *   unixload SOCKET PATH CONNECTIONS SECONDS
 *
 * Opens CONNECTIONS keep-alive connections, each with one request in flight at a time (no
 * pipelining), driven by one epoll loop. A response is complete when its headers and
 * Content-Length bytes of body have arrived (chunked responses are not supported: /_ping
 * sends Content-Length). Prints one line: "responses=N errors=E seconds=S rps=R".
 * Built by bench_api.py with `cc -O2` into a temp dir.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BUF 16384

struct conn {
    int fd;
    size_t have;
    char buf[BUF];
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("connect");
        exit(2);
    }
    return fd;
}

static int send_all(int fd, const char *req, size_t len) {
    while (len) {
        ssize_t n = write(fd, req, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        req += n;
        len -= n;
    }
    return 0;
}

/* bytes of one complete response at the start of buf, 0 if incomplete, -1 if malformed */
static long complete(const char *buf, size_t have) {
    const char *end = memmem(buf, have, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t hlen = end - buf + 4;
    long clen = 0;
    for (const char *p = buf; p < end; p++) {
        if ((p == buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
            clen = strtol(p + 15, NULL, 10);
            break;
        }
    }
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0) return -1;
    return hlen + clen <= have ? (long)(hlen + clen) : 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s SOCKET PATH CONNECTIONS SECONDS\n", argv[0]);
        return 2;
    }
    const char *sock = argv[1];
    int nconn = atoi(argv[3]);
    double secs = atof(argv[4]);
    char req[1024];
    int rlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: unixload\r\n\r\n", argv[2]);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct conn *cs = calloc(nconn, sizeof *cs);
    for (int i = 0; i < nconn; i++) {
        cs[i].fd = dial(sock);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    long responses = 0, errors = 0;
    double t0 = now(), deadline = t0 + secs;
    for (int i = 0; i < nconn; i++)
        if (send_all(cs[i].fd, req, rlen) < 0) errors++;
    struct epoll_event evs[256];
    while (now() < deadline) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            ssize_t r = read(c->fd, c->buf + c->have, BUF - c->have);
            if (r <= 0) {
                if (r < 0 && errno == EINTR) continue;
                errors++;  /* closed: reconnect and go on */
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = dial(sock);
                c->have = 0;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
                send_all(c->fd, req, rlen);
                continue;
            }
            c->have += r;
            long used;
            while ((used = complete(c->buf, c->have)) != 0) {
                if (used < 0) {
                    errors++;
                    fprintf(stderr, "bad response: %.80s\n", c->buf);
                    return 1;
                }
                responses++;
                memmove(c->buf, c->buf + used, c->have - used);
                c->have -= used;
                if (send_all(c->fd, req, rlen) < 0) errors++;
            }
            if (c->have == BUF) {
                fprintf(stderr, "response too large\n");
                return 1;
            }
        }
    }
    double el = now() - t0;
    printf("responses=%ld errors=%ld seconds=%.3f rps=%.1f\n", responses, errors, el, responses / el);
    for (int i = 0; i < nconn; i++) close(cs[i].fd);
    return 0;
}
