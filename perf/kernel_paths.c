/* kernel_paths.c: the kernel paths the io_uring backend could take instead of the ones it takes,
 * measured on this machine over loopback TCP (the paths every benchmark here uses).
 *
 *   file  -> socket:  sendfile(2)  |  splice(2) file -> pipe -> socket  |  pread(2) + send(2)
 *   bytes -> socket:  IORING_OP_SEND  |  IORING_OP_SEND_ZC (zero-copy, with its notification)
 *                     |  send(2)
 *
 * Usage: kernel_paths SENDER_CPU RECEIVER_CPU ROUNDS FILE
 * FILE is read through the page cache (warmed first). One line of JSON per measurement:
 *   {"path": ..., "size": bytes per call, "round": k, "gbps": GB/s, "us_per_call": ...}
 * The receiver, pinned to RECEIVER_CPU, drains the connection with recv(2) into 256 KiB.
 * perf/bench_kernel_paths.py compiles and runs this and writes the results file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef IORING_OP_SEND_ZC
#  define IORING_OP_SEND_ZC 47
#endif
#ifndef IORING_CQE_F_NOTIF
#  define IORING_CQE_F_NOTIF (1U << 3)
#endif

static void die(const char *what) { perror(what); exit(1); }

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (sched_setaffinity(0, sizeof(s), &s) < 0) die("sched_setaffinity");
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* --- a connected loopback pair; the far end is drained by a thread on the receiver CPU ------- */

typedef struct { int fd, cpu; volatile long long got; } drain_arg;

static void *drain(void *p) {
    drain_arg *a = (drain_arg *)p;
    char *buf = malloc(256 << 10);
    pin(a->cpu);
    for (;;) {
        ssize_t n = recv(a->fd, buf, 256 << 10, 0);
        if (n <= 0) break;
        a->got += n;
    }
    free(buf);
    return NULL;
}

typedef struct { int tx; drain_arg rx; pthread_t th; } conn;

static void conn_open(conn *c, int rx_cpu) {
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int one = 1;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0) die("listen");
    getsockname(l, (struct sockaddr *)&sa, &len);
    c->tx = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c->tx, (struct sockaddr *)&sa, sizeof(sa)) < 0) die("connect");
    c->rx.fd = accept(l, NULL, NULL);
    if (c->rx.fd < 0) die("accept");
    close(l);
    setsockopt(c->tx, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->rx.cpu = rx_cpu;
    c->rx.got = 0;
    pthread_create(&c->th, NULL, drain, &c->rx);
}

static void conn_close(conn *c) {
    shutdown(c->tx, SHUT_WR);
    pthread_join(c->th, NULL);
    close(c->tx);
    close(c->rx.fd);
}

/* --- a minimal ring: one request at a time (what a transport with one send in flight does) --- */

typedef struct {
    int fd;
    unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
} ring;

static int ring_open(ring *r) {
    struct io_uring_params p;
    void *sq, *sqes;
    memset(&p, 0, sizeof(p));
    r->fd = (int)syscall(__NR_io_uring_setup, 8, &p);
    if (r->fd < 0) return -errno;
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    sq = mmap(NULL, cq_len > sq_len ? cq_len : sq_len,
              PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
    sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
    if (sq == MAP_FAILED || sqes == MAP_FAILED || !(p.features & IORING_FEAT_SINGLE_MMAP)) return -ENOMEM;
    r->sq_tail = (unsigned *)((char *)sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)((char *)sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)((char *)sq + p.sq_off.array);
    r->cq_head = (unsigned *)((char *)sq + p.cq_off.head);
    r->cq_tail = (unsigned *)((char *)sq + p.cq_off.tail);
    r->cq_mask = (unsigned *)((char *)sq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)((char *)sq + p.cq_off.cqes);
    r->sqes = (struct io_uring_sqe *)sqes;
    return 0;
}

/* Submit one send (zc or not) of len bytes and wait for everything it posts: its result and,
 * for SEND_ZC, the notification that the kernel is done with the buffer. Returns bytes sent. */
static long ring_send(ring *r, int fd, const char *buf, size_t len, int zc) {
    unsigned tail = *r->sq_tail, head;
    struct io_uring_sqe *sqe = &r->sqes[tail & *r->sq_mask];
    long sent = -1;
    int want_notif = 0, done = 0;
    memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = zc ? IORING_OP_SEND_ZC : IORING_OP_SEND;
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)buf;
    sqe->len = (unsigned)len;
    sqe->user_data = 1;
    r->sq_array[tail & *r->sq_mask] = tail & *r->sq_mask;
    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) die("enter");
    while (!done) {
        head = *r->cq_head;
        while (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE)) {
            if (syscall(__NR_io_uring_enter, r->fd, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) die("enter");
        }
        {
            struct io_uring_cqe *cqe = &r->cqes[head & *r->cq_mask];
            if (cqe->flags & IORING_CQE_F_NOTIF) {
                want_notif = 0;
            } else {
                sent = cqe->res;
                want_notif = (cqe->flags & IORING_CQE_F_MORE) != 0;
            }
            __atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
        }
        done = sent != -1 && !want_notif;
    }
    return sent;
}

static void report(const char *path, size_t size, int round, long long bytes, double secs, long calls) {
    printf("{\"path\": \"%s\", \"size\": %zu, \"round\": %d, \"gbps\": %.3f, \"us_per_call\": %.2f}\n",
           path, size, round, bytes / secs / 1e9, secs * 1e6 / (double)calls);
    fflush(stdout);
}

#define SECS 1.0

int main(int argc, char **argv) {
    int tx_cpu, rx_cpu, rounds, ffd, round, zc;
    struct stat st;
    char *buf;
    ring r = {0};
    static const size_t sizes[] = {4096, 16384, 65536, 262144, 1048576};
    if (argc != 5) {
        fprintf(stderr, "usage: %s SENDER_CPU RECEIVER_CPU ROUNDS FILE\n", argv[0]);
        return 2;
    }
    tx_cpu = atoi(argv[1]);
    rx_cpu = atoi(argv[2]);
    rounds = atoi(argv[3]);
    ffd = open(argv[4], O_RDONLY);
    if (ffd < 0 || fstat(ffd, &st) < 0) die(argv[4]);
    pin(tx_cpu);
    buf = malloc(1 << 20);
    memset(buf, 'x', 1 << 20);
    {   /* warm the page cache */
        off_t off = 0;
        while (pread(ffd, buf, 1 << 20, off) > 0) off += 1 << 20;
    }
    for (round = 0; round < rounds; round++) {
        /* file -> socket: the whole file per call sequence, as loop.sendfile() sends a file */
        const char *fpaths[] = {"sendfile", "splice", "pread+send"};
        int k;
        for (k = 0; k < 3; k++) {
            conn c;
            long long bytes = 0;
            long calls = 0;
            double t0, t;
            int pfd[2] = {-1, -1};
            conn_open(&c, rx_cpu);
            if (k == 1) {
                if (pipe(pfd) < 0) die("pipe");
                fcntl(pfd[1], F_SETPIPE_SZ, 1 << 20);
            }
            t0 = now();
            do {
                off_t off = 0;
                while (off < st.st_size) {
                    ssize_t n;
                    if (k == 0) {
                        n = sendfile(c.tx, ffd, &off, (size_t)(st.st_size - off));
                        if (n <= 0) die("sendfile");
                    } else if (k == 1) {
                        loff_t lo = off;
                        ssize_t m = splice(ffd, &lo, pfd[1], NULL, 1 << 20, SPLICE_F_MOVE);
                        if (m <= 0) die("splice in");
                        n = 0;
                        while (n < m) {
                            ssize_t w = splice(pfd[0], NULL, c.tx, NULL, (size_t)(m - n), SPLICE_F_MOVE);
                            if (w <= 0) die("splice out");
                            n += w;
                            calls++;
                        }
                        off += n;
                    } else {
                        ssize_t m = pread(ffd, buf, 1 << 20, off), w = 0;
                        if (m <= 0) die("pread");
                        while (w < m) {
                            ssize_t x = send(c.tx, buf + w, (size_t)(m - w), 0);
                            if (x <= 0) die("send");
                            w += x;
                            calls++;
                        }
                        n = m;
                        off += m;
                    }
                    bytes += n;
                    calls++;
                }
                t = now() - t0;
            } while (t < SECS);
            conn_close(&c);
            if (pfd[0] >= 0) { close(pfd[0]); close(pfd[1]); }
            report(fpaths[k], (size_t)st.st_size, round, bytes, t, calls);
        }
        /* bytes -> socket, one send at a time, per size */
        if (ring_open(&r) < 0) { fprintf(stderr, "io_uring refused\n"); return 1; }
        for (k = 0; k < (int)(sizeof(sizes) / sizeof(sizes[0])); k++) {
            for (zc = 0; zc < 3; zc++) {
                conn c;
                long long bytes = 0;
                long calls = 0;
                double t0, t;
                conn_open(&c, rx_cpu);
                t0 = now();
                do {
                    long n;
                    if (zc == 2) {
                        n = send(c.tx, buf, sizes[k], 0);
                    } else {
                        n = ring_send(&r, c.tx, buf, sizes[k], zc);
                    }
                    if (n <= 0) { fprintf(stderr, "send: %ld\n", n); return 1; }
                    bytes += n;
                    calls++;
                    t = now() - t0;
                } while (t < SECS);
                conn_close(&c);
                report(zc == 2 ? "send(2)" : zc ? "IORING_OP_SEND_ZC" : "IORING_OP_SEND",
                       sizes[k], round, bytes, t, calls);
            }
        }
        close(r.fd);
    }
    return 0;
}
