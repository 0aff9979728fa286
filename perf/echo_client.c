/* Echo load generator for perf/bench_backends.py: CONNS connections to 127.0.0.1:PORT, each with
 * one SIZE-byte message in flight (send it, wait for SIZE bytes back, send again), driven by one
 * epoll loop in one thread, so the client costs little next to the server it measures.
 *
 *   echo_client PORT CONNS SIZE SECONDS [WARMUP]   prints "<round trips per second> <round trips>"
 *
 * The first WARMUP seconds (default 0.5) are a warm-up and are not counted. Exits non-zero on any error, and when a
 * connection is closed by the server.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct { int fd; size_t sent, got; int want_out; } conn_t;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) { perror(what); exit(2); }

static void watch(int ep, conn_t *c, int out) {
    struct epoll_event ev;
    ev.events = EPOLLIN | (out ? EPOLLOUT : 0);
    ev.data.ptr = c;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
    c->want_out = out;
}

/* send what is left of the message; 0 when all of it went out */
static int pump(int ep, conn_t *c, const char *msg, size_t size) {
    while (c->sent < size) {
        ssize_t n = send(c->fd, msg + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) { if (!c->want_out) watch(ep, c, 1); return 1; }
            die("send");
        }
        c->sent += (size_t)n;
    }
    if (c->want_out) watch(ep, c, 0);
    return 0;
}

int main(int argc, char **argv) {
    int port, nconns, ep, i;
    size_t size;
    double seconds, t0, start, end;
    long long count = 0;
    char *msg, *buf;
    conn_t *conns;
    struct sockaddr_in sa;
    struct epoll_event *evs;
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: echo_client PORT CONNS SIZE SECONDS [WARMUP]\n");
        return 2;
    }
    port = atoi(argv[1]);
    nconns = atoi(argv[2]);
    size = (size_t)atol(argv[3]);
    seconds = atof(argv[4]);
    msg = malloc(size);
    buf = malloc(size > 65536 ? size : 65536);
    conns = calloc((size_t)nconns, sizeof(conn_t));
    evs = malloc(sizeof(struct epoll_event) * (size_t)nconns);
    if (!msg || !buf || !conns || !evs) die("malloc");
    memset(msg, 'm', size);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    for (i = 0; i < nconns; i++) {
        struct epoll_event ev;
        int one = 1;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) die("socket");
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) die("connect");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) die("fcntl");
        conns[i].fd = fd;
        ev.events = EPOLLIN;
        ev.data.ptr = &conns[i];
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    }
    for (i = 0; i < nconns; i++) pump(ep, &conns[i], msg, size);
    t0 = now();
    start = t0 + (argc == 6 ? atof(argv[5]) : 0.5);
    end = start + seconds;
    for (;;) {
        double t = now();
        int n;
        if (t >= end) break;
        n = epoll_wait(ep, evs, nconns, 100);
        if (n < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        for (i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT) pump(ep, c, msg, size);
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    ssize_t r = recv(c->fd, buf, size - c->got, 0);
                    if (r < 0) { if (errno == EAGAIN) break; die("recv"); }
                    if (r == 0) { fprintf(stderr, "server closed a connection\n"); return 3; }
                    c->got += (size_t)r;
                    if (c->got == size) {
                        c->got = 0;
                        c->sent = 0;
                        if (now() >= start) count++;
                        pump(ep, c, msg, size);
                        break;
                    }
                }
            }
        }
    }
    printf("%.1f %lld\n", (double)count / seconds, count);
    return 0;
}
