# Declarations of engine._loop, cimportable from Cython:  from engine._loop cimport Loop, IO, Watcher
from cpython.object cimport PyObject
from libc.stdint cimport uint64_t



cdef struct FdSlot:
    PyObject *reader      # owned reference or NULL
    PyObject *writer      # owned reference or NULL (may be the same object as reader)
    int rkind             # KIND_* of reader
    int wkind             # KIND_* of writer
    int mask              # what is registered with the poller (ENG_EV_*)


cdef struct HeapEntry:
    double when
    uint64_t seq          # insertion order: timers due at the same time run FIFO
    PyObject *timer       # owned reference to a TimerHandle


cdef struct Ring:
    PyObject **items
    Py_ssize_t cap        # power of two
    Py_ssize_t head
    Py_ssize_t count


cdef class Loop


cdef class Handle:
    cdef:
        readonly Loop _loop
        readonly object _callback
        readonly tuple _args
        readonly object _context
        readonly bint _cancelled
        object _repr
        object __weakref__
        public object _source_traceback

    cdef int _run(self) except -1
    cdef _repr_info(self)

    @staticmethod
    cdef Handle new(Loop loop, object callback, tuple args, object context)


cdef class TimerHandle(Handle):
    cdef:
        double _when
        Py_ssize_t _heap_idx   # position in the loop's heap, -1 when not scheduled
        public bint _scheduled

    @staticmethod
    cdef TimerHandle new_timer(Loop loop, double when, object callback, tuple args, object context)


cdef class Watcher:
    cdef:
        readonly Loop loop
        int _kind
        bint _active
        public object callback
        public object data
        tuple _args

    cdef int _fire(self, int revents) except -1
    cdef int _check_loop(self) except -1


cdef class IO(Watcher):
    cdef:
        readonly int fd
        readonly int events
        readonly bint edge


cdef class Timer(Watcher):
    cdef:
        double _after
        double _repeat
        double _deadline
        TimerHandle _timer

    cdef int _schedule(self, double when) except -1


cdef class Idle(Watcher):
    pass


cdef class TimedIdle(Idle):
    cdef:
        double _interval
        double _last_run


cdef class Signal(Watcher):
    cdef:
        readonly int signum


cdef class Async(Watcher):
    cdef:
        bint _pending


cdef class Loop:
    cdef:
        void *_poller             # eng_poller (opaque here so Cython users need no C headers)
        FdSlot *_fds
        int _fds_cap
        Ring _ready
        HeapEntry *_heap
        Py_ssize_t _heap_n
        Py_ssize_t _heap_cap
        uint64_t _seq

        bint _closed
        bint _stopping
        bint _running
        bint _debug
        bint _sleeping            # inside the poll wait (read under the GIL by other threads)
        bint _wakeup_pending      # a wake-up byte is in flight
        bint _idle_pending        # work was done since idle watchers last ran
        public bint _async_pending  # an Async watcher was sent
        int _wake_fds[2]
        int _sig_fds[2]
        bint _sig_wakeup_set
        double _busy_poll_max     # adaptive busy polling: the longest window (s; 0 = off)
        double _busy_poll         # the current window (s), grown/shrunk by how waits end
        bint _had_io              # the last poll returned events

        object _thread_id
        object _exception_handler
        object _task_factory
        readonly object _default_executor
        bint _executor_shutdown_called
        object _asyncgens
        bint _asyncgens_shutdown_called
        object _old_agen_hooks
        object _old_wakeup_fd
        object _current_handle
        object _coroutine_origin_tracking_saved_depth
        bint _coroutine_origin_tracking_enabled
        dict _signal_handlers     # signum -> Handle (asyncio API)
        dict _signal_watchers     # signum -> list of Signal watchers
        list _idles               # active Idle / TimedIdle watchers
        object _rpool             # BufferPool the transports recv(2) into
        list _timed_idles         # active TimedIdle watchers
        double _timed_deadline
        list _asyncs              # active Async watchers
        list _prepoll             # Handles of call_before_poll(), run at the iteration's end
        public double slow_callback_duration
        readonly double _clock_resolution
        object __weakref__

    cdef _free_resources(self)
    # ready queue
    cdef int _ready_push(self, Handle h) except -1
    # timers
    cdef int _heap_push(self, TimerHandle t) except -1
    cdef int _heap_remove(self, Py_ssize_t i) except -1
    cdef int _timer_cancel(self, TimerHandle t) except -1
    # fds
    cdef int _fd_ensure(self, int fd) except -1
    cdef object _add_fd_handle(self, fd, int which, callback, tuple args, str method)
    cdef bint _remove_fd_handle(self, fd, int which) except -1
    cdef object _fd_set(self, int fd, int which, object obj, int kind)
    cdef object _fd_clear(self, int fd, int which)
    cdef int _fd_apply(self, int fd, bint force=*) except -1
    # running
    cdef int _run_once(self) except -1
    cdef int _dispatch_fd(self, int fd, int revents) except -1
    cdef int _run_idle(self) except -1
    cdef int _run_timed_idle(self, double now) except -1
    cdef int _recompute_timed_deadline(self) except -1
    cdef int _run_ready(self, Py_ssize_t ntodo) except -1
    cdef int _run_prepoll(self) except -1
    cdef int _run_handle_debug(self, Handle h) except -1
    cdef int _wakeup(self) except -1
    cdef int _read_signals(self) except -1
    cdef int _check_closed(self) except -1
    cdef int _check_thread(self) except -1
    cdef Handle _make_handle(self, callback, tuple args, context, str method)
    cdef int _report_watcher_error(self, Watcher w, BaseException exc) except -1
    cdef int _signal_install(self, int sig) except -1
    cdef int _signal_uninstall_if_unused(self, int sig) except -1
