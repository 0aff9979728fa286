/* The poller contract. One backend is compiled in, chosen by pyx/engine_features.h from the build probes.
 *
 *   int  eng_poller_open(eng_poller *p, int capacity)          0 or -errno
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

#include <errno.h>
#include <stdlib.h>
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

typedef struct eng_poller {
    int fd;                  /* the epoll or kqueue descriptor, -1 once closed */
    int capacity;            /* events[] entries */
    ENG_POLLER_EV *events;   /* filled by eng_poller_wait */
} eng_poller;

static int eng_backend_create(void);   /* in the backend's header */

static int eng_poller_open(eng_poller *p, int capacity) {
    p->fd = eng_backend_create();
    if (p->fd < 0) return p->fd;
    p->capacity = capacity > 0 ? capacity : 64;
    p->events = (ENG_POLLER_EV *)malloc(sizeof(ENG_POLLER_EV) * (size_t)p->capacity);
    if (p->events == NULL) { close(p->fd); p->fd = -1; return -ENOMEM; }
    return 0;
}

static int eng_poller_grow(eng_poller *p) {
    int cap = p->capacity * 2;
    ENG_POLLER_EV *ev = (ENG_POLLER_EV *)realloc(p->events, sizeof(ENG_POLLER_EV) * (size_t)cap);
    if (ev == NULL) return -ENOMEM;
    p->events = ev;
    p->capacity = cap;
    return 0;
}

static void eng_poller_close(eng_poller *p) {
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

#endif
