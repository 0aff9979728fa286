/* Policy: turns the facts in the generated engine_config.h into ENGINE_USE_* choices.
 * Every choice sits under #ifndef so a build can override it (-DENGINE_USE_EVENTFD=0 ...).
 * Code elsewhere tests only ENGINE_USE_*, never a platform name. */
#ifndef ENGINE_FEATURES_H
#define ENGINE_FEATURES_H

#include "engine_config.h"

/* Poller backend: exactly one. epoll is preferred where both exist (never in practice). */
#ifndef ENGINE_USE_EPOLL
#  if defined(HAVE_EPOLL_CREATE1) && defined(HAVE_SYS_EPOLL_H)
#    define ENGINE_USE_EPOLL 1
#  else
#    define ENGINE_USE_EPOLL 0
#  endif
#endif
#ifndef ENGINE_USE_KQUEUE
#  if !ENGINE_USE_EPOLL && defined(HAVE_KQUEUE)
#    define ENGINE_USE_KQUEUE 1
#  else
#    define ENGINE_USE_KQUEUE 0
#  endif
#endif
#if !ENGINE_USE_EPOLL && !ENGINE_USE_KQUEUE
#  error "engine needs epoll or kqueue; neither was found by the build probes"
#endif

/* io_uring: a second backend, chosen at run time (ENGINE_BACKEND) over the default one. Linux
 * only, next to epoll, which stays the fallback wherever the kernel refuses a ring. */
#ifndef ENGINE_USE_IO_URING
#  if ENGINE_USE_EPOLL && defined(HAVE_LINUX_IO_URING_H) && defined(HAVE_IORING_ENTER_EXT_ARG) \
      && defined(HAVE_NR_IO_URING_SETUP)
#    define ENGINE_USE_IO_URING 1
#  else
#    define ENGINE_USE_IO_URING 0
#  endif
#endif

/* Cross-thread wake-up: eventfd (one fd, 8-byte counter) or a non-blocking pipe. */
#ifndef ENGINE_USE_EVENTFD
#  if defined(HAVE_EVENTFD)
#    define ENGINE_USE_EVENTFD 1
#  else
#    define ENGINE_USE_EVENTFD 0
#  endif
#endif

#ifndef ENGINE_USE_PIPE2
#  if defined(HAVE_PIPE2)
#    define ENGINE_USE_PIPE2 1
#  else
#    define ENGINE_USE_PIPE2 0
#  endif
#endif

#ifndef ENGINE_USE_ACCEPT4
#  if defined(HAVE_ACCEPT4) && defined(HAVE_SOCK_NONBLOCK) && defined(HAVE_SOCK_CLOEXEC)
#    define ENGINE_USE_ACCEPT4 1
#  else
#    define ENGINE_USE_ACCEPT4 0
#  endif
#endif

/* SIGPIPE: per call (MSG_NOSIGNAL) where possible, else per socket. Never a global handler. */
#ifndef ENGINE_USE_MSG_NOSIGNAL
#  if defined(HAVE_MSG_NOSIGNAL)
#    define ENGINE_USE_MSG_NOSIGNAL 1
#  else
#    define ENGINE_USE_MSG_NOSIGNAL 0
#  endif
#endif
#ifndef ENGINE_USE_SO_NOSIGPIPE
#  if !ENGINE_USE_MSG_NOSIGNAL && defined(HAVE_SO_NOSIGPIPE)
#    define ENGINE_USE_SO_NOSIGPIPE 1
#  else
#    define ENGINE_USE_SO_NOSIGPIPE 0
#  endif
#endif

#ifndef ENGINE_USE_SENDFILE
#  if defined(HAVE_SENDFILE_LINUX) || defined(HAVE_SENDFILE_FREEBSD) || defined(HAVE_SENDFILE_DARWIN)
#    define ENGINE_USE_SENDFILE 1
#  else
#    define ENGINE_USE_SENDFILE 0
#  endif
#endif

#ifndef ENGINE_USE_TCP_CORK
#  if defined(HAVE_TCP_CORK)
#    define ENGINE_USE_TCP_CORK 1
#  else
#    define ENGINE_USE_TCP_CORK 0
#  endif
#endif
#ifndef ENGINE_USE_TCP_NOPUSH
#  if !ENGINE_USE_TCP_CORK && defined(HAVE_TCP_NOPUSH)
#    define ENGINE_USE_TCP_NOPUSH 1
#  else
#    define ENGINE_USE_TCP_NOPUSH 0
#  endif
#endif

#ifndef ENGINE_DEBUG
#  define ENGINE_DEBUG 0
#endif

#if ENGINE_USE_EPOLL
#  define ENGINE_BACKEND_NAME "epoll"
#else
#  define ENGINE_BACKEND_NAME "kqueue"
#endif

#endif /* ENGINE_FEATURES_H */
