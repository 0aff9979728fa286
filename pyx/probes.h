/* Probe facts and ENGINE_USE_* policy as a table, so Python can report them
 * (engine._loop.PROBES / FEATURES, engine.tuning.capabilities()). */
#ifndef ENGINE_PROBES_H
#define ENGINE_PROBES_H
#include "engine_features.h"

typedef struct { const char *name; int value; } eng_probe;

static const eng_probe eng_probe_facts[] = {
#ifdef HAVE_ACCEPT4
    {"accept4", 1},
#else
    {"accept4", 0},
#endif
#ifdef HAVE_CLOCK_GETTIME
    {"clock_gettime", 1},
#else
    {"clock_gettime", 0},
#endif
#ifdef HAVE_EPOLL_CREATE1
    {"epoll_create1", 1},
#else
    {"epoll_create1", 0},
#endif
#ifdef HAVE_EPOLL_PWAIT2
    {"epoll_pwait2", 1},
#else
    {"epoll_pwait2", 0},
#endif
#if defined(HAVE_LINUX_IO_URING_H) && defined(HAVE_IORING_ENTER_EXT_ARG) && defined(HAVE_NR_IO_URING_SETUP)
    {"io_uring", 1},
#else
    {"io_uring", 0},
#endif
#ifdef HAVE_EVENTFD
    {"eventfd", 1},
#else
    {"eventfd", 0},
#endif
#ifdef HAVE_F_SETNOSIGPIPE
    {"f_setnosigpipe", 1},
#else
    {"f_setnosigpipe", 0},
#endif
#ifdef HAVE_KQUEUE
    {"kqueue", 1},
#else
    {"kqueue", 0},
#endif
#ifdef HAVE_MMAP
    {"mmap", 1},
#else
    {"mmap", 0},
#endif
#ifdef HAVE_MSG_NOSIGNAL
    {"msg_nosignal", 1},
#else
    {"msg_nosignal", 0},
#endif
#ifdef HAVE_PIDFD_OPEN
    {"pidfd_open", 1},
#else
    {"pidfd_open", 0},
#endif
#ifdef HAVE_PIPE2
    {"pipe2", 1},
#else
    {"pipe2", 0},
#endif
#ifdef HAVE_SENDFILE_DARWIN
    {"sendfile_darwin", 1},
#else
    {"sendfile_darwin", 0},
#endif
#ifdef HAVE_SENDFILE_FREEBSD
    {"sendfile_freebsd", 1},
#else
    {"sendfile_freebsd", 0},
#endif
#ifdef HAVE_SENDFILE_LINUX
    {"sendfile_linux", 1},
#else
    {"sendfile_linux", 0},
#endif
#ifdef HAVE_SENDMMSG
    {"sendmmsg", 1},
#else
    {"sendmmsg", 0},
#endif
#ifdef HAVE_SIGNALFD
    {"signalfd", 1},
#else
    {"signalfd", 0},
#endif
#ifdef HAVE_SOCK_CLOEXEC
    {"sock_cloexec", 1},
#else
    {"sock_cloexec", 0},
#endif
#ifdef HAVE_SOCK_NONBLOCK
    {"sock_nonblock", 1},
#else
    {"sock_nonblock", 0},
#endif
#ifdef HAVE_SO_NOSIGPIPE
    {"so_nosigpipe", 1},
#else
    {"so_nosigpipe", 0},
#endif
#ifdef HAVE_SO_REUSEPORT
    {"so_reuseport", 1},
#else
    {"so_reuseport", 0},
#endif
#ifdef HAVE_SO_REUSEPORT_LB
    {"so_reuseport_lb", 1},
#else
    {"so_reuseport_lb", 0},
#endif
#ifdef HAVE_TCP_CORK
    {"tcp_cork", 1},
#else
    {"tcp_cork", 0},
#endif
#ifdef HAVE_TCP_INFO
    {"tcp_info", 1},
#else
    {"tcp_info", 0},
#endif
#ifdef HAVE_TCP_KEEPALIVE
    {"tcp_keepalive", 1},
#else
    {"tcp_keepalive", 0},
#endif
#ifdef HAVE_TCP_KEEPCNT
    {"tcp_keepcnt", 1},
#else
    {"tcp_keepcnt", 0},
#endif
#ifdef HAVE_TCP_KEEPIDLE
    {"tcp_keepidle", 1},
#else
    {"tcp_keepidle", 0},
#endif
#ifdef HAVE_TCP_KEEPINTVL
    {"tcp_keepintvl", 1},
#else
    {"tcp_keepintvl", 0},
#endif
#ifdef HAVE_TCP_NOPUSH
    {"tcp_nopush", 1},
#else
    {"tcp_nopush", 0},
#endif
#ifdef HAVE_TCP_NOTSENT_LOWAT
    {"tcp_notsent_lowat", 1},
#else
    {"tcp_notsent_lowat", 0},
#endif
#ifdef HAVE_TCP_QUICKACK
    {"tcp_quickack", 1},
#else
    {"tcp_quickack", 0},
#endif
#ifdef HAVE_WRITEV
    {"writev", 1},
#else
    {"writev", 0},
#endif
    {0, 0}
};

static const eng_probe eng_probe_policy[] = {
    {"epoll", ENGINE_USE_EPOLL},
    {"kqueue", ENGINE_USE_KQUEUE},
    {"io_uring", ENGINE_USE_IO_URING},
    {"eventfd", ENGINE_USE_EVENTFD},
    {"pipe2", ENGINE_USE_PIPE2},
    {"accept4", ENGINE_USE_ACCEPT4},
    {"msg_nosignal", ENGINE_USE_MSG_NOSIGNAL},
    {"so_nosigpipe", ENGINE_USE_SO_NOSIGPIPE},
    {"sendfile", ENGINE_USE_SENDFILE},
    {"tcp_cork", ENGINE_USE_TCP_CORK},
    {"tcp_nopush", ENGINE_USE_TCP_NOPUSH},
    {0, 0}
};

/* Defined in sockopts.c, a unit of its own so that its TCP headers (<linux/tcp.h> where the
 * probes found it: glibc's <netinet/tcp.h> has an older struct tcp_info) stay out of this one. */
typedef struct { const char *name; int offset; int size; } eng_field;
extern const eng_probe eng_probe_sockopts[];     /* option name -> number, options found only */
extern const eng_field eng_tcp_info_fields[];    /* struct tcp_info member -> offset, size */

#endif
