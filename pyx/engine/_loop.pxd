# Declarations of engine._loop (implemented in pyx/loop/loop.pyx and its pyx/loop/*.pxi
# fragments), cimportable from Cython:  from engine._loop cimport Loop, IO, Watcher, SocketTransport
# The fd table, timer heap and ready ring (structs), handles (handles.pxi), watchers (watchers.pxi),
# the stream transports (transports.pxi) and the Loop (loop.pyx).
from cpython.object cimport PyObject
from libc.stdint cimport uint64_t


cdef struct FdSlot:
    PyObject *reader      # owned reference or NULL
    PyObject *writer      # owned reference or NULL (may be the same object as reader)
    int rkind             # KIND_* of reader
    int wkind             # KIND_* of writer
    int mask              # what is registered with the poller (ENG_EV_*)
    PyObject *kept        # owned weak reference to the socket whose sock_*() registration is kept
                          # (edge-triggered) while no operation waits; NULL when none is kept


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
        public bint _scheduled  # in the loop's heap (cancelled ones stay until popped)

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
        Py_ssize_t _user_fds      # readers + writers installed but the wake-up and signal fds'
        Ring _ready
        HeapEntry *_heap
        Py_ssize_t _heap_n
        Py_ssize_t _heap_cap
        Py_ssize_t _heap_cancelled   # cancelled timers still in the heap (removed lazily)
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
        double _poll_gap          # a busy iteration polls only if the last poll is this old (s)
        double _last_poll         # eng_monotonic() after the last poll
        uint64_t _poller_updates  # registrations changed with the kernel (for tests, _stats())

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
        object _ring_pool         # BufferPool whose chunks are the io_uring receive buffers
        bint _uring_recv          # stream transports read by completion receives (io_uring)
        bint _uring_send          # ... and written by send requests
        bint _uring_accept        # servers accept by multishot accept requests (io_uring)
        list _send_pending        # transports whose writes go in a send request before the poll
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
    cdef PyObject *_heap_pop(self) noexcept
    cdef int _heap_compact(self) except -1
    cdef int _heap_drop_cancelled_head(self) except -1
    cdef int _timer_cancel(self, TimerHandle t) except -1
    # fds
    cdef int _fd_ensure(self, int fd) except -1
    cdef object _add_fd_handle(self, fd, int which, callback, tuple args, str method)
    cdef bint _remove_fd_handle(self, fd, int which) except -1
    cdef object _fd_set(self, int fd, int which, object obj, int kind)
    cdef object _fd_clear(self, int fd, int which)
    cdef int _fd_forget(self, int fd) except -1
    cdef int _flush_sends(self) except -1
    cdef _accept_failed(self, exc, protocol_factory, sock, server, backlog)
    cdef _accepted(self, conn, addr, protocol_factory, server)
    cdef tuple _adopt(self, sock, int fd)
    cdef int _take_sent(self) except -1
    cdef int _submit_sends_now(self) except -1
    cdef int _ring_recv_setup(self, Py_ssize_t n, Py_ssize_t size) except -1
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
    cdef TimerHandle _timer_at(self, double when, callback, tuple args, context, str method)
    cdef int _report_watcher_error(self, Watcher w, BaseException exc) except -1
    cdef int _signal_install(self, int sig) except -1
    cdef int _signal_uninstall_if_unused(self, int sig) except -1


# --- stream transports (pyx/loop/transports.pxi) ------------------------------------------------

cdef class _FdTransport:
    # what every fd-backed transport shares (the datagram and pipe transports of endpoints.pxi
    # derive from it too): fd-table registration, protocol, extra info, write flow control
    cdef:
        Loop _loop
        readonly object _sock       # the socket or pipe file object; None once closed
        int _fd
        object _protocol
        dict _extra
        bint _closing
        bint _paused
        bint _read_registered
        bint _write_registered
        bint _uring_recv            # read from the poller's receive queue (io_uring), not recv(2)
        bint _uring_send            # written by send requests (io_uring), not send(2)
        bint _lend                  # the protocol takes memoryviews (data_received_memoryview)
        bint _send_inflight         # a send request is in flight (its buffers head _wbuf)
        bint _send_queued           # on the loop's list of sends to submit before it polls
        bint _protocol_connected
        readonly bint _protocol_paused     # read by loop.sendfile's fallback (as asyncio's)
        int _conn_lost
        Py_ssize_t _wsize
        Py_ssize_t _high
        Py_ssize_t _low
        object __weakref__
        dict __dict__               # attributes set by users/tests (asyncio's are Python objects)

    cdef int _init_base(self, Loop loop, object sock, int fd, object protocol) except -1
    cdef int _on_readable(self) except -1
    cdef int _on_writable(self) except -1
    cdef object _read_chunk(self, bint is_socket)
    cdef object _read_ring(self)
    cdef int _read_lent(self) except -2
    cdef int _give_lent(self, object lent, unsigned bid) except -1
    cdef int _read_event(self, bint is_socket, str what) except -1
    cdef int _watch(self, int which, bint on) except -1
    cdef int _maybe_pause_protocol(self) except -1
    cdef int _maybe_resume_protocol(self) except -1
    cdef int _tell_protocol(self, bint pause) except -1
    cdef int _writes_pending(self) except -1     # close() waits for these to be written
    cdef int _drop_write_buffer(self) except -1
    cdef int _write_after_lost(self, str warning) except -1
    cdef int _fatal_error(self, exc, str message) except -1
    cdef int _close_now(self, exc) except -1
    cdef int _detach(self) except -1
    cdef int _release_waiters(self) except -1


cdef class SocketTransport(_FdTransport):
    # asyncio.Transport for stream sockets (TCP, Unix); what engine._asgi writes responses to
    cdef:
        bint _buffered
        object _server
        bint _eof
        list _wbuf
        object _empty_waiter        # future: the write buffer drained (loop.sendfile)
        object _sendfile_op         # the _SockOp of a loop.sendfile() in progress
        bint _sendfile_busy         # native sendfile in progress: write() refuses
        readonly long long _sent_total   # bytes the kernel has taken from write() so far

    @staticmethod
    cdef SocketTransport new(Loop loop, object sock, object protocol, object waiter,
                             object extra, object server)
    cdef int _fill_extra(self) except -1
    cdef int _read_buffered(self) except -1
    cdef Py_ssize_t _read_ring_into(self, object buf) except -2
    cdef int _on_eof(self) except -1
    # write(data) without the Python call: what write() does once sendfile is not in progress
    cdef int _write(self, object data) except -1
    cdef Py_ssize_t _send_now(self, object data) except -1
    cdef int _queue(self, object data, Py_ssize_t start, Py_ssize_t size) except -1
    cdef int _submit_send(self) except -1
    cdef int _send_soon(self) except -1
    cdef int _send_collect(self) except -1
    cdef int _consume_sent(self, Py_ssize_t n) except -1
    cdef int _drained_now(self) except -1
    # write(head), then sendfile(2) of file_fd[offset:offset+count] as far as the kernel takes it
    # now: the file bytes sent (the rest is for loop.sendfile)
    cpdef Py_ssize_t _write_then_sendfile(self, bytes head, int file_fd, Py_ssize_t offset,
                                          Py_ssize_t count) except -1
