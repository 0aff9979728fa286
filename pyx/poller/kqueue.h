/* kqueue(2) backend (FreeBSD, NetBSD, OpenBSD, macOS).
 *
 * It is compiled when the build probes find kqueue and not epoll. It cannot run on the Linux machine
 * the project is developed on: it is written against the same contract as poller/epoll.h, and the
 * loop logic above it is tested there.
 *
 * Kernel facts this file relies on:
 *  - Read and write interest are two separate filters (EVFILT_READ, EVFILT_WRITE); one fd can be
 *    reported twice in one batch, once per filter.
 *  - EV_CLEAR resets the state after delivery: that is edge-triggered delivery, and whoever handles
 *    the event must read/write until EAGAIN.
 *  - Closing an fd removes its filters; a later EV_DELETE for it fails with ENOENT or EBADF, which
 *    means "already gone".
 *  - EV_EOF on the read filter still means "readable" (read() returns 0 or the pending error);
 *    EV_ERROR in a returned event carries an errno in `data`.
 *  - kevent() fails with EINTR when a signal handler runs; the caller retries.
 *  - kqueue descriptors are not inherited by fork() children.
 */
/* Included by poller/poller.h, which defines eng_poller (fd, capacity, events of struct kevent) and
 * open/grow/close; this file supplies eng_backend_create and set/wait/event. */
#ifndef ENGINE_POLLER_KQUEUE_H
#define ENGINE_POLLER_KQUEUE_H

#include <errno.h>
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <fcntl.h>

static int eng_backend_create(void) {
    int fd = kqueue();
    if (fd < 0) return -errno;
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

static int eng_backend_set(eng_poller *p, int fd, int old, int new_) {
    struct kevent ch[2];
    int n = 0, deletes_only = 1;
    int edge_changed = (old & ENG_EV_EDGE) != (new_ & ENG_EV_EDGE);
    unsigned short clear = (new_ & ENG_EV_EDGE) ? EV_CLEAR : 0;

    if ((new_ & ENG_EV_READ) && (!(old & ENG_EV_READ) || edge_changed)) {
        EV_SET(&ch[n++], fd, EVFILT_READ, EV_ADD | EV_ENABLE | clear, 0, 0, 0);
        deletes_only = 0;
    } else if (!(new_ & ENG_EV_READ) && (old & ENG_EV_READ)) {
        EV_SET(&ch[n++], fd, EVFILT_READ, EV_DELETE, 0, 0, 0);
    }
    if ((new_ & ENG_EV_WRITE) && (!(old & ENG_EV_WRITE) || edge_changed)) {
        EV_SET(&ch[n++], fd, EVFILT_WRITE, EV_ADD | EV_ENABLE | clear, 0, 0, 0);
        deletes_only = 0;
    } else if (!(new_ & ENG_EV_WRITE) && (old & ENG_EV_WRITE)) {
        EV_SET(&ch[n++], fd, EVFILT_WRITE, EV_DELETE, 0, 0, 0);
    }
    if (n == 0) return 0;
    if (kevent(p->fd, ch, n, NULL, 0, NULL) < 0) {
        if (deletes_only && (errno == ENOENT || errno == EBADF)) return 0;
        return -errno;
    }
    return 0;
}

static int eng_backend_wait(eng_poller *p, int timeout_ms) {
    struct timespec ts, *tsp = NULL;
    int n;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    n = kevent(p->fd, NULL, 0, p->events, p->capacity, tsp);
    return n < 0 ? -errno : n;
}

static void eng_backend_event(eng_poller *p, int i, int *fd, int *revents) {
    struct kevent *ev = &p->events[i];
    int r = 0;
    *fd = (int)ev->ident;
    if (ev->filter == EVFILT_READ) r |= ENG_EV_READ;
    else if (ev->filter == EVFILT_WRITE) r |= ENG_EV_WRITE;
    if (ev->flags & EV_ERROR) r |= ENG_EV_READ | ENG_EV_WRITE | ENG_EV_ERROR;
    if ((ev->flags & EV_EOF) && ev->filter == EVFILT_WRITE) r |= ENG_EV_ERROR;
    *revents = r;
}

#endif
