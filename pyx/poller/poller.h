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
 */
#ifndef ENGINE_POLLER_H
#define ENGINE_POLLER_H

#include "engine_features.h"

#define ENG_EV_READ   1
#define ENG_EV_WRITE  2
#define ENG_EV_EDGE   4
#define ENG_EV_ERROR  8

#if ENGINE_USE_EPOLL
#  include "poller/epoll.h"
#elif ENGINE_USE_KQUEUE
#  include "poller/kqueue.h"
#endif

#endif
