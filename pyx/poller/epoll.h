/* epoll(7) backend.
 *
 * Kernel facts this file relies on:
 *  - Registrations are level-triggered unless EPOLLET is set. With EPOLLET an event is reported only
 *    when readiness changes, so whoever handles it must read (or write) until EAGAIN.
 *  - A registration belongs to the open file description, not to the fd number: when the last fd
 *    referring to a file is closed the kernel drops the registration by itself. A later fd with the
 *    same number is therefore unknown to epoll (EPOLL_CTL_MOD gives ENOENT), and deleting a closed fd
 *    gives EBADF. Both are treated as "already gone" / "add again".
 *  - Regular files and directories cannot be polled: EPOLL_CTL_ADD fails with EPERM.
 *  - EPOLLERR and EPOLLHUP are always reported, requested or not.
 *  - epoll_wait() fails with EINTR when a signal handler runs; the caller retries after running
 *    Python's signal handlers. Its timeout is in milliseconds; callers round up so that a timer is
 *    never woken for early.
 */
/* Included by poller/poller.h, which defines eng_poller (fd, capacity, events of struct epoll_event) and
 * open/grow/close; this file supplies eng_backend_create and set/wait/event. */
#ifndef ENGINE_POLLER_EPOLL_H
#define ENGINE_POLLER_EPOLL_H

#include <errno.h>
#include <sys/epoll.h>

static int eng_backend_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static int eng_backend_set(eng_poller *p, int fd, int old, int new_) {
    struct epoll_event ev;
    int old_rw = old & (ENG_EV_READ | ENG_EV_WRITE);
    int new_rw = new_ & (ENG_EV_READ | ENG_EV_WRITE);
    ev.events = 0;
    ev.data.u64 = 0;
    ev.data.fd = fd;
    if (new_rw & ENG_EV_READ) ev.events |= EPOLLIN | EPOLLRDHUP;
    if (new_rw & ENG_EV_WRITE) ev.events |= EPOLLOUT;
    if (new_ & ENG_EV_EDGE) ev.events |= EPOLLET;

    if (!new_rw) {
        if (!old_rw) return 0;
        if (epoll_ctl(p->fd, EPOLL_CTL_DEL, fd, &ev) < 0) {
            if (errno == ENOENT || errno == EBADF) return 0;  /* closed behind our back: gone */
            return -errno;
        }
        return 0;
    }
    if (!old_rw) {
        if (epoll_ctl(p->fd, EPOLL_CTL_ADD, fd, &ev) == 0) return 0;
        if (errno != EEXIST) return -errno;
        if (epoll_ctl(p->fd, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
        return -errno;
    }
    if (epoll_ctl(p->fd, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
    if (errno != ENOENT) return -errno;
    /* the fd number was closed and reused since we registered it */
    if (epoll_ctl(p->fd, EPOLL_CTL_ADD, fd, &ev) == 0) return 0;
    return -errno;
}

static int eng_backend_wait(eng_poller *p, int timeout_ms) {
    int n = epoll_wait(p->fd, p->events, p->capacity, timeout_ms);
    return n < 0 ? -errno : n;
}

static void eng_backend_event(eng_poller *p, int i, int *fd, int *revents) {
    uint32_t e = p->events[i].events;
    int r = 0;
    *fd = p->events[i].data.fd;
    if (e & (EPOLLIN | EPOLLRDHUP | EPOLLPRI)) r |= ENG_EV_READ;
    if (e & EPOLLOUT) r |= ENG_EV_WRITE;
    if (e & (EPOLLERR | EPOLLHUP)) r |= ENG_EV_READ | ENG_EV_WRITE | ENG_EV_ERROR;
    *revents = r;
}

#endif
