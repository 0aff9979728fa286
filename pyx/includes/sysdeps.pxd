# What engine._loop takes from the platform layer: sysdeps.h (clock, wake-up fd, pipes, sendfile,
# MSG_MORE), probes.h (probe facts and policy as tables) and sockopts.c (option numbers, the
# struct tcp_info layout).
from libc.stdint cimport int64_t

cdef extern from "sysdeps.h" nogil:
    const char *ENGINE_BACKEND_NAME
    int ENGINE_USE_EPOLL
    int ENGINE_USE_KQUEUE
    int ENGINE_USE_EVENTFD
    int ENGINE_DEBUG
    double eng_monotonic()
    int eng_pipe(int fds[2])
    int eng_wakeup_open(int fds[2])
    void eng_wakeup_send(int wfd)
    void eng_wakeup_drain(int rfd)
    void eng_close_wakeup(int fds[2])
    int eng_set_nonblock_cloexec(int fd)
    int ENG_MSG_MORE
    ssize_t eng_sendfile(int out, int in_, int64_t *off, size_t n)

cdef extern from "probes.h" nogil:
    ctypedef struct eng_probe:
        const char *name
        int value
    const eng_probe *eng_probe_facts
    const eng_probe *eng_probe_policy
    const eng_probe *eng_probe_sockopts
    ctypedef struct eng_field:
        const char *name
        int offset
        int size
    const eng_field *eng_tcp_info_fields
