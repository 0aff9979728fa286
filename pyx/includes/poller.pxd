# The poller contract of pyx/poller/poller.h (one backend compiled in, chosen by
# engine_features.h). `events` is the backend's event array, opaque here.
cdef extern from "poller/poller.h" nogil:
    ctypedef struct eng_poller:
        int fd
        int capacity
        void *events
    int ENG_EV_READ
    int ENG_EV_WRITE
    int ENG_EV_EDGE
    int ENG_EV_ERROR
    int eng_poller_open(eng_poller *p, int capacity)
    int eng_poller_set(eng_poller *p, int fd, int old, int new_)
    int eng_poller_wait(eng_poller *p, int timeout_ms)
    void eng_poller_event(eng_poller *p, int i, int *fd, int *revents)
    int eng_poller_grow(eng_poller *p)
    void eng_poller_close(eng_poller *p)
