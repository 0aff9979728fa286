/* The poller contract. One backend is compiled in, chosen by pyx/engine_features.h from the build probes.
 *
 *   int  eng_poller_open(eng_poller *p, int capacity, int backend)
 *          0 or -errno. backend: ENG_BACKEND_DEFAULT (the compiled-in readiness poller) or
 *          ENG_BACKEND_IO_URING, which falls back to the default when the kernel refuses io_uring
 *          (ENOSYS, EPERM from seccomp or kernel.io_uring_disabled, a kernel without EXT_ARG);
 *          eng_poller_kind(p) says which one opened.
 *   int  eng_poller_set(eng_poller *p, int fd, int old, int new) 0 or -errno
 *          masks are ENG_EV_READ | ENG_EV_WRITE, plus ENG_EV_EDGE for edge-triggered delivery;
 *          `old` is what the caller last registered for fd (0 = nothing), `new` what it wants now
 *          (no READ/WRITE = unregister).
 *   int  eng_poller_wait(eng_poller *p, int timeout_ms)         n events or -errno; touches no Python
 *          object, so it runs with the GIL released. timeout_ms < 0 blocks.
 *   void eng_poller_event(eng_poller *p, int i, int *fd, int *revents)
 *          revents: ENG_EV_READ / ENG_EV_WRITE, with ENG_EV_ERROR added on error/hang-up.
 *          One fd may be reported more than once in a batch (kqueue reports each filter).
 *   int  eng_poller_grow(eng_poller *p)                         doubles the event array; 0 or -errno
 *   void eng_poller_close(eng_poller *p)
 *
 *   Completion receives (io_uring only; elsewhere setup fails with -ENOTSUP and avail says -ENOTSUP):
 *   int  eng_poller_recv_setup(eng_poller *p, char **bufs, unsigned n, unsigned size)
 *          provide n receive buffers; from then on a reader registered with ENG_EV_RECV | ENG_EV_READ
 *          (a stream socket) is read by the kernel into them and reported READ when data, end of file
 *          or an error is queued for it.
 *   ssize_t eng_poller_recv_avail(eng_poller *p, int fd)
 *          bytes queued; 0 = end of file next; -EAGAIN = nothing yet; -ENOTSUP = read fd yourself;
 *          other -errno: that error is next.
 *   size_t eng_poller_recv_copy(eng_poller *p, int fd, char *dst, size_t cap)   takes queued bytes
 *   size_t eng_poller_recv_lend(eng_poller *p, int fd, char **ptr, unsigned *bid)   the head
 *          buffer taken out of the queue without a copy (lent to a protocol), until
 *   char *eng_poller_recv_return(eng_poller *p, unsigned bid, char *swap)   it goes back to the
 *          kernel; swap != NULL: the caller keeps its memory (returned), the kernel gets swap
 *   void eng_poller_recv_forget(eng_poller *p, int fd)   the reader is gone: drop its queue (or
 *          close the accepted fds queued for a listener)
 *   Completion accepts (io_uring with receives on): a listening socket's reader registered with
 *   ENG_EV_ACCEPT | ENG_EV_READ is served by a multishot accept request, reported READ when fds
 *   (or an error) are queued for it.
 *   int  eng_poller_accept_next(eng_poller *p, int lfd)   the next accepted fd (non-blocking,
 *          close-on-exec, owned by the caller); -EAGAIN = none yet; -ENOTSUP = call accept4(2)
 *          yourself; other -errno: the error accept4(2) would have met.
 *   Completion sends (io_uring with receives on): a writer registered with ENG_EV_SEND | ENG_EV_WRITE
 *   is reported WRITE when its send request completes, not on readiness.
 *   struct iovec *eng_poller_send_iov(eng_poller *p, int fd, int n)   room for the next send's buffers
 *   int  eng_poller_send(eng_poller *p, int fd, int n, int msg_flags)   queue it (one at a time per fd)
 *   int  eng_poller_send_result(eng_poller *p, int fd, ssize_t *res)   1 + bytes sent/-errno when done
 *   void eng_poller_send_cancel(eng_poller *p, int fd)   end it now; its buffers are free on return
 *
 *   int  eng_poller_holds_files(eng_poller *p)
 *          1 when a registration keeps its file open (io_uring poll requests): the loop must then
 *          never leave a registration on an fd it is not using.
 *
 * The loop never knows which backend it sits on.
 *
 * This file holds what every backend shares: the eng_poller struct (the kernel object's fd and a
 * preallocated event array that grows by doubling when a wait fills it), open/grow/close. The
 * backend chosen below names its event record (ENG_POLLER_EV) and the kernel object's constructor
 * (eng_backend_create: a close-on-exec fd or -errno), then supplies set/wait/event in
 * poller/<backend>.h.
 */
#ifndef ENGINE_POLLER_H
#define ENGINE_POLLER_H

#include "engine_features.h"

#define ENG_EV_READ   1
#define ENG_EV_WRITE  2
#define ENG_EV_EDGE   4
#define ENG_EV_ERROR  8
#define ENG_EV_RECV   16   /* a stream socket's reader takes queued receives (io_uring) */
#define ENG_EV_SEND   32   /* a stream socket's writer sends by send requests (io_uring) */
#define ENG_EV_ACCEPT 64   /* a listening socket's reader takes queued accepted sockets (io_uring) */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#if ENGINE_USE_EPOLL
#  include <sys/epoll.h>
#  define ENG_POLLER_EV struct epoll_event
#elif ENGINE_USE_KQUEUE
#  include <sys/types.h>
#  include <sys/event.h>
#  include <sys/time.h>
#  define ENG_POLLER_EV struct kevent
#endif

#define ENG_BACKEND_DEFAULT  0
#define ENG_BACKEND_IO_URING 1

struct eng_uring;

typedef struct eng_poller {
    int fd;                  /* the epoll, kqueue or io_uring descriptor, -1 once closed */
    int capacity;            /* events[] entries */
    ENG_POLLER_EV *events;   /* filled by eng_poller_wait (the default backend's) */
    struct eng_uring *ur;    /* the ring, when the io_uring backend opened (else NULL) */
} eng_poller;

static int eng_backend_create(void);   /* in the backend's header */

#if ENGINE_USE_IO_URING
#  include "poller/io_uring.h"
#endif

static int eng_poller_open(eng_poller *p, int capacity, int backend) {
    p->ur = NULL;
#if ENGINE_USE_IO_URING
    if (backend == ENG_BACKEND_IO_URING && eng_ur_create(p, capacity) == 0) return 0;
#else
    (void)backend;
#endif
    p->fd = eng_backend_create();
    if (p->fd < 0) return p->fd;
    p->capacity = capacity > 0 ? capacity : 64;
    p->events = (ENG_POLLER_EV *)malloc(sizeof(ENG_POLLER_EV) * (size_t)p->capacity);
    if (p->events == NULL) { close(p->fd); p->fd = -1; return -ENOMEM; }
    return 0;
}

static int eng_poller_grow(eng_poller *p) {
    int cap = p->capacity * 2;
    ENG_POLLER_EV *ev;
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) {
        eng_uev *uev = (eng_uev *)realloc(p->ur->ev, sizeof(eng_uev) * (size_t)cap);
        if (uev == NULL) return -ENOMEM;
        p->ur->ev = uev;
        p->ur->ev_cap = p->capacity = cap;
        return 0;
    }
#endif
    ev = (ENG_POLLER_EV *)realloc(p->events, sizeof(ENG_POLLER_EV) * (size_t)cap);
    if (ev == NULL) return -ENOMEM;
    p->events = ev;
    p->capacity = cap;
    return 0;
}

static void eng_poller_close(eng_poller *p) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) {
        eng_ur_close(p->ur);
        p->ur = NULL;
        p->fd = -1;
        p->capacity = 0;
        return;
    }
#endif
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
    free(p->events);
    p->events = NULL;
    p->capacity = 0;
}

#if ENGINE_USE_EPOLL
#  include "poller/epoll.h"
#elif ENGINE_USE_KQUEUE
#  include "poller/kqueue.h"
#endif

/* The contract: the default backend's set/wait/event, or the ring's when it opened. */
static inline int eng_poller_set(eng_poller *p, int fd, int old, int new_) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) return eng_ur_set(p->ur, fd, old, new_);
#endif
    return eng_backend_set(p, fd, old, new_);
}

static inline int eng_poller_wait(eng_poller *p, int timeout_ms) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) return eng_ur_wait(p->ur, timeout_ms);
#endif
    return eng_backend_wait(p, timeout_ms);
}

static inline void eng_poller_event(eng_poller *p, int i, int *fd, int *revents) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) {
        *fd = p->ur->ev[i].fd;
        *revents = p->ur->ev[i].revents;
        return;
    }
#endif
    eng_backend_event(p, i, fd, revents);
}

static inline int eng_poller_kind(eng_poller *p) {
    return p->ur != NULL ? ENG_BACKEND_IO_URING : ENG_BACKEND_DEFAULT;
}

static inline int eng_poller_holds_files(eng_poller *p) {
    return p->ur != NULL;
}

static inline int eng_poller_recv_setup(eng_poller *p, char **bufs, unsigned n, unsigned size) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) return eng_ur_recv_setup(p->ur, bufs, n, size);
#endif
    (void)p; (void)bufs; (void)n; (void)size;
    return -ENOTSUP;
}

static inline ssize_t eng_poller_recv_avail(eng_poller *p, int fd) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) return eng_ur_recv_avail(p->ur, fd);
#endif
    (void)p; (void)fd;
    return -ENOTSUP;
}

static inline size_t eng_poller_recv_copy(eng_poller *p, int fd, char *dst, size_t cap) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) return eng_ur_recv_copy(p->ur, fd, dst, cap);
#endif
    (void)p; (void)fd; (void)dst; (void)cap;
    return 0;
}

static inline size_t eng_poller_recv_lend(eng_poller *p, int fd, char **ptr, unsigned *bid) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) return eng_ur_recv_lend(p->ur, fd, ptr, bid);
#endif
    (void)p; (void)fd; (void)ptr; (void)bid;
    return 0;
}

static inline char *eng_poller_recv_return(eng_poller *p, unsigned bid, char *swap) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) return eng_ur_recv_return(p->ur, bid, swap);
#endif
    (void)p; (void)bid; (void)swap;
    return NULL;
}

static inline int eng_poller_accept_next(eng_poller *p, int lfd) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) return eng_ur_accept_next(p->ur, lfd);
#endif
    (void)p; (void)lfd;
    return -ENOTSUP;
}

static inline void eng_poller_recv_forget(eng_poller *p, int fd) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) eng_ur_recv_forget(p->ur, fd);
#endif
    (void)p; (void)fd;
}

static inline struct iovec *eng_poller_send_iov(eng_poller *p, int fd, int n) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) return eng_ur_send_iov(p->ur, fd, n);
#endif
    (void)p; (void)fd; (void)n;
    return NULL;
}

static inline int eng_poller_send(eng_poller *p, int fd, int n, int msg_flags) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) return eng_ur_send(p->ur, fd, n, msg_flags);
#endif
    (void)p; (void)fd; (void)n; (void)msg_flags;
    return -ENOTSUP;
}

static inline int eng_poller_send_result(eng_poller *p, int fd, ssize_t *res) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) return eng_ur_send_result(p->ur, fd, res);
#endif
    (void)p; (void)fd; (void)res;
    return 0;
}

static inline void eng_poller_send_cancel(eng_poller *p, int fd) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) eng_ur_send_cancel(p->ur, fd);
#endif
    (void)p; (void)fd;
}

/* The fds whose send request completed in the last wait without a WRITE event (their writers
 * did not ask): *fds points at them, valid until the next wait. */
static inline int eng_poller_sent(eng_poller *p, int **fds) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) { *fds = p->ur->sent.v; return p->ur->sent.n; }
#endif
    (void)p;
    *fds = NULL;
    return 0;
}

/* Submit what waits in the ring now, without waiting for anything. */
static inline void eng_poller_submit(eng_poller *p) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) (void)eng_ur_flush(p->ur);
#endif
    (void)p;
}

/* 1 when requests wait in the ring for the next io_uring_enter (sends written this iteration). */
static inline int eng_poller_submits(eng_poller *p) {
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) return eng_ur_pending(p->ur) != 0;
#endif
    (void)p;
    return 0;
}

/* out[0..7]: buffers, buffer size, buffers in the kernel's ring, completions, ENOBUFS ends,
 * bytes received, starved requests armed again, whether receives are on. */
static inline void eng_poller_recv_stats(eng_poller *p, unsigned long long *out) {
    memset(out, 0, sizeof(unsigned long long) * 10);
#if ENGINE_USE_IO_URING
    if (p->ur != NULL) {
        out[0] = p->ur->nbufs; out[1] = p->ur->bsize; out[2] = p->ur->bfree;
        out[3] = p->ur->st_cqes; out[4] = p->ur->st_enobufs; out[5] = p->ur->st_bytes;
        out[6] = p->ur->st_rearms; out[7] = (unsigned long long)p->ur->recv_on;
        out[8] = p->ur->st_accepts; out[9] = p->ur->st_accfull;
    }
#endif
}

#endif
