# The poller contract of pyx/poller/poller.h (a default backend compiled in, chosen by
# engine_features.h, and io_uring chosen at run time where built). `events` is opaque here.
from posix.uio cimport iovec

cdef extern from "poller/poller.h" nogil:
    ctypedef struct eng_poller:
        int fd
        int capacity
        void *events
    int ENG_EV_READ
    int ENG_EV_WRITE
    int ENG_EV_EDGE
    int ENG_EV_ERROR
    int ENG_EV_RECV
    int ENG_EV_SEND
    int ENG_EV_ACCEPT
    int ENG_BACKEND_DEFAULT
    int ENG_BACKEND_IO_URING
    int ENGINE_USE_IO_URING
    int eng_poller_open(eng_poller *p, int capacity, int backend)
    int eng_poller_kind(eng_poller *p)
    int eng_poller_holds_files(eng_poller *p)
    int eng_poller_set(eng_poller *p, int fd, int old, int new_)
    int eng_poller_wait(eng_poller *p, int timeout_ms)
    void eng_poller_event(eng_poller *p, int i, int *fd, int *revents)
    int eng_poller_grow(eng_poller *p)
    void eng_poller_close(eng_poller *p)
    int eng_poller_recv_setup(eng_poller *p, char **bufs, unsigned n, unsigned size)
    ssize_t eng_poller_recv_avail(eng_poller *p, int fd)
    size_t eng_poller_recv_copy(eng_poller *p, int fd, char *dst, size_t cap)
    void eng_poller_recv_forget(eng_poller *p, int fd)
    size_t eng_poller_recv_lend(eng_poller *p, int fd, char **ptr, unsigned *bid)
    char *eng_poller_recv_return(eng_poller *p, unsigned bid, char *swap)
    int eng_poller_accept_next(eng_poller *p, int lfd)
    void eng_poller_recv_stats(eng_poller *p, unsigned long long *out)
    iovec *eng_poller_send_iov(eng_poller *p, int fd, int n)
    int eng_poller_send(eng_poller *p, int fd, int n, int msg_flags)
    int eng_poller_send_result(eng_poller *p, int fd, ssize_t *res)
    void eng_poller_send_cancel(eng_poller *p, int fd)
    int eng_poller_submits(eng_poller *p)
    int eng_poller_sent(eng_poller *p, int **fds)
    void eng_poller_submit(eng_poller *p)
