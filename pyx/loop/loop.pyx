# engine._loop: an asyncio event loop written in Cython on epoll (Linux) or kqueue (BSD/macOS).
#
# The loop is one compiled unit: this file (the Loop and its dispatch table) `include`s the
# fragments beside it in pyx/loop/ -- consts.pxi (tunables, watcher kinds), handles.pxi,
# watchers.pxi, sockops.pxi (loop.sock_*), bufpool.pxi, transports.pxi (stream transports,
# Server), endpoints.pxi (datagrams, pipes, subprocesses). What other modules may cimport is
# declared in pyx/engine/_loop.pxd (Cython reads it as this module's .pxd); the Python-facing
# types are in engine/_loop.pyi. It waits in exactly one place with the GIL released
# (Loop._run_once) and dispatches fd events through a table of C function pointers indexed by the
# watcher kind registered for the fd.

cimport cython
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF, Py_XDECREF, Py_CLEAR
from cpython.weakref cimport PyWeakref_GetObject
from cpython.list cimport PyList_New, PyList_SET_ITEM
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memset, memcpy, strerror
from libc.math cimport ceil
from libc.stdint cimport uint64_t, int64_t
from libc.errno cimport errno, EINTR, EAGAIN, EOPNOTSUPP
from posix.unistd cimport read, close

cdef extern from "<sched.h>" nogil:
    int sched_yield()

from includes.poller cimport (
    eng_poller, ENG_EV_READ, ENG_EV_WRITE, ENG_EV_EDGE, ENG_EV_ERROR,
    eng_poller_open, eng_poller_set, eng_poller_wait, eng_poller_event, eng_poller_grow,
    eng_poller_close, eng_poller_kind, eng_poller_holds_files, ENG_BACKEND_DEFAULT,
    ENG_BACKEND_IO_URING, ENGINE_USE_IO_URING, ENG_EV_RECV, ENG_EV_SEND, ENG_EV_ACCEPT, eng_poller_accept_next, eng_poller_recv_setup, eng_poller_send_iov, eng_poller_send,
    eng_poller_send_result, eng_poller_send_cancel, eng_poller_submits, eng_poller_sent, eng_poller_submit,
    eng_poller_recv_avail, eng_poller_recv_copy, eng_poller_recv_forget, eng_poller_recv_stats, eng_poller_recv_lend, eng_poller_recv_return)
from includes.sysdeps cimport (
    ENGINE_BACKEND_NAME, ENGINE_DEBUG, eng_monotonic, eng_pipe, eng_wakeup_open, eng_wakeup_send,
    eng_wakeup_drain, eng_close_wakeup, eng_probe, eng_probe_facts, eng_probe_policy,
    eng_probe_sockopts, eng_field, eng_tcp_info_fields, ENG_MSG_MORE, eng_sendfile)
from includes.python cimport (
    PyContext_Enter, PyContext_Exit, PyContext_CopyCurrent, PyErr_CheckSignals,
    PyThread_get_thread_ident, PyObject_GC_IsTracked, PyObject_GC_Track, PyObject_GC_UnTrack,
    PyObject_Vectorcall)

import asyncio as _asyncio
import collections.abc as _abc
import concurrent.futures as _cf
import errno as _errno
import os as _os
import signal as _signal
import socket as _socket
import sys as _sys
import threading as _threading
import time as _time
import traceback as _traceback
import warnings as _warnings
import weakref as _weakref
import collections as _collections
import subprocess as _subprocess

from asyncio import coroutines as _coroutines
from asyncio import events as _events
from asyncio import format_helpers as _format_helpers
from asyncio import futures as _futures
from asyncio import tasks as _tasks

include "consts.pxi"

cdef object aio_Task = _asyncio.Task
cdef object aio_Future = _asyncio.Future
cdef object aio_ensure_future = _asyncio.ensure_future
cdef object aio_isfuture = _futures.isfuture
cdef object aio_wrap_future = _futures.wrap_future
cdef object aio_iscoroutine = _coroutines.iscoroutine
cdef object aio_iscoroutinefunction = _coroutines.iscoroutinefunction
cdef object _get_ident = _threading.get_ident
from asyncio import base_events as _base_events


cdef inline object _logger():
    # asyncio's own logger object, looked up when needed (so patching
    # asyncio.base_events.logger, as CPython's tests do, also sees engine's messages)
    return _base_events.logger

cdef object _extract_stack = _format_helpers.extract_stack
cdef object _sys_getframe = _sys._getframe
cdef object _DEBUG_STACK_DEPTH = _asyncio.constants.DEBUG_STACK_DEPTH
cdef object _THREAD_JOIN_TIMEOUT = getattr(_asyncio.constants, 'THREAD_JOIN_TIMEOUT', 300)
cdef object _fmt_cb_source = _format_helpers._format_callback_source
cdef bint _PY312 = _sys.version_info >= (3, 12)
cdef tuple _TASK_KWNAMES = ("loop", "name")

DEBUG_BUILD = bool(ENGINE_DEBUG)
_DEFAULT_BACKEND = ENGINE_BACKEND_NAME.decode()
IO_URING_BUILT = bool(ENGINE_USE_IO_URING)

# Which poller new loops ask for: ENGINE_BACKEND=epoll|io_uring|auto (the default). `auto` is the
# default backend (epoll) until the A/B in perf/bench_backends.py shows io_uring ahead on a path
# (docs/loop.md, "Backends"); io_uring falls back to the default wherever the kernel refuses a ring.
cdef int _backend_want = ENG_BACKEND_DEFAULT


def _backend_choice(value):
    """ENGINE_BACKEND's value -> the backend new loops ask for ('io_uring' or the default)."""
    v = (value or 'auto').strip().lower().replace('-', '_')
    if v in ('io_uring', 'iouring', 'uring'):
        return 'io_uring'
    if v in ('auto', '', _DEFAULT_BACKEND):
        return _DEFAULT_BACKEND
    raise ValueError(f"ENGINE_BACKEND={value!r}: expected {_DEFAULT_BACKEND}, io_uring or auto")


cdef Py_ssize_t _env_int(str name, Py_ssize_t default, Py_ssize_t lo, Py_ssize_t hi) except -1:
    """An integer setting from the environment, lo..hi (ValueError naming the variable)."""
    env = _os.environ.get(name)
    if env is None:
        return default
    try:
        v = int(env)
    except ValueError:
        raise ValueError(f"{name}={env!r}: expected an integer") from None
    if not lo <= v <= hi:
        raise ValueError(f"{name}={env!r}: expected {lo}..{hi}")
    return v


def _probe_backend(name):
    """The backend a loop asking for `name` gets on this machine (a ring is opened and closed)."""
    cdef eng_poller p
    cdef int rc, kind
    if name != 'io_uring':
        return _DEFAULT_BACKEND
    rc = eng_poller_open(&p, 1, ENG_BACKEND_IO_URING)
    if rc < 0:
        raise _oserror(rc)
    kind = eng_poller_kind(&p)
    eng_poller_close(&p)
    return 'io_uring' if kind == ENG_BACKEND_IO_URING else _DEFAULT_BACKEND


def _set_backend(name):
    """Loops created from now on ask for `name` ('io_uring', 'epoll', 'auto'); returns what
    they get (engine.BACKEND is not changed). For tests and benchmarks."""
    global _backend_want
    got = _probe_backend(_backend_choice(name))
    _backend_want = ENG_BACKEND_IO_URING if got == 'io_uring' else ENG_BACKEND_DEFAULT
    return got


try:
    BACKEND = _set_backend(_os.environ.get('ENGINE_BACKEND'))
except ValueError as _exc:
    import warnings as _warnings
    _warnings.warn(f"{_exc}; using {_DEFAULT_BACKEND}", RuntimeWarning, stacklevel=2)
    BACKEND = _set_backend('auto')


cdef dict _probe_dict(const eng_probe *table):
    cdef dict out = {}
    cdef int i = 0
    while table[i].name != NULL:
        out[table[i].name.decode()] = bool(table[i].value)
        i += 1
    return out


# What the build probes found on this platform (facts), and what the build chose to use (policy).
PROBES = _probe_dict(eng_probe_facts)
FEATURES = _probe_dict(eng_probe_policy)
# For engine.tuning: option numbers from this build's headers, and where the struct tcp_info
# members the probes found sit (name -> (offset, size in bytes)); see pyx/sockopts.c.
SOCKOPTS = {}
TCP_INFO_FIELDS = {}
cdef int _i = 0
while eng_probe_sockopts[_i].name != NULL:
    SOCKOPTS[eng_probe_sockopts[_i].name.decode()] = eng_probe_sockopts[_i].value
    _i += 1
_i = 0
while eng_tcp_info_fields[_i].name != NULL:
    TCP_INFO_FIELDS[eng_tcp_info_fields[_i].name.decode()] = (
        eng_tcp_info_fields[_i].offset, eng_tcp_info_fields[_i].size)
    _i += 1


cdef _format_callback_source(callback, args):
    try:
        return _fmt_cb_source(callback, args)
    except Exception:
        return repr(callback)


cdef int _fileobj_to_fd(fileobj) except -1:
    # same rules and messages as selectors._fileobj_to_fd
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    if fd > 0x7fffffff:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


cdef int _check_signal(sig) except -1:
    if not isinstance(sig, int):
        raise TypeError(f'sig must be an int, not {sig!r}')
    if sig not in _signal.valid_signals():
        raise ValueError(f'invalid signal number {sig}')
    return 0


def _sighandler_noop(signum, frame):
    """Installed for signals the loop handles: the real work happens in the loop's thread."""
    pass


cdef _oserror(int neg_errno, str what=None):
    cdef int e = -neg_errno
    msg = _os.strerror(e)
    if what:
        return OSError(e, msg, what) if False else OSError(e, msg)
    return OSError(e, msg)


include "handles.pxi"
include "watchers.pxi"
include "sockops.pxi"
include "bufpool.pxi"
include "transports.pxi"
include "sslproto.pxi"
include "endpoints.pxi"


# --- dispatch table -------------------------------------------------------------------------------
# Indexed by the kind stored in the fd table: what to do when the poller reports the fd ready.

ctypedef int (*fd_dispatch_fn)(Loop loop, object obj, int revents) except -1

cdef int _dispatch_none(Loop loop, object obj, int revents) except -1:
    return 0

cdef int _dispatch_handle(Loop loop, object obj, int revents) except -1:
    # asyncio's add_reader/add_writer: the handle runs now, in event order, after the callbacks
    # that were ready before this iteration's poll (asyncio's batch order)
    cdef Handle h = <Handle>obj
    if not h._cancelled:
        if loop._debug:
            loop._run_handle_debug(h)
        else:
            h._run()
    return 0

cdef int _dispatch_io(Loop loop, object obj, int revents) except -1:
    cdef IO w = <IO>obj
    try:
        w._fire(revents & (w.events | ENG_EV_ERROR))
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        loop._report_watcher_error(w, exc)
    return 0

cdef inline int _user_kind(int kind) noexcept:
    """1 for the registrations of users of the loop, 0 for its own wake-up and signal fds."""
    return 0 if kind == KIND_WAKEUP or kind == KIND_SIGNALS or kind == KIND_NONE else 1


cdef int _dispatch_wakeup(Loop loop, object obj, int revents) except -1:
    eng_wakeup_drain(loop._wake_fds[0])
    loop._wakeup_pending = False
    return 0

cdef int _dispatch_signals(Loop loop, object obj, int revents) except -1:
    return loop._read_signals()

cdef fd_dispatch_fn _FD_DISPATCH[<int>KIND_COUNT]
_FD_DISPATCH[<int>KIND_NONE] = _dispatch_none
_FD_DISPATCH[<int>KIND_HANDLE] = _dispatch_handle
_FD_DISPATCH[<int>KIND_IO] = _dispatch_io
_FD_DISPATCH[<int>KIND_WAKEUP] = _dispatch_wakeup
_FD_DISPATCH[<int>KIND_SIGNALS] = _dispatch_signals
_FD_DISPATCH[<int>KIND_SOCKOP] = _dispatch_sockop
_FD_DISPATCH[<int>KIND_TRANSPORT] = _dispatch_transport
_FD_DISPATCH[<int>KIND_ACCEPT] = _dispatch_handle


# --- heap helpers ---------------------------------------------------------------------------------

cdef inline bint _entry_lt(HeapEntry *a, HeapEntry *b) noexcept nogil:
    return a.when < b.when or (a.when == b.when and a.seq < b.seq)


cdef inline void _sift_down(HeapEntry *heap, Py_ssize_t n, Py_ssize_t i,
                            HeapEntry e) noexcept nogil:
    """Put e at heap[i] (a hole) and move it down to its place in heap[0:n] (heapify: cheap
    when the entries are nearly in order already, as after a compaction)."""
    cdef Py_ssize_t child
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and _entry_lt(&heap[child + 1], &heap[child]):
            child += 1
        if not _entry_lt(&heap[child], &e):
            break
        heap[i] = heap[child]
        i = child
    heap[i] = e


cdef inline void _sift_down_bottom_up(HeapEntry *heap, Py_ssize_t n, Py_ssize_t i,
                                      HeapEntry e) noexcept nogil:
    """As _sift_down, bottom-up (CPython's heapq): the hole goes down to a leaf along the
    smaller children (one comparison per level), then e rises from there, not above i. For a
    pop, e is the heap's last entry, a late deadline that rises little: fewer comparisons."""
    cdef Py_ssize_t start = i, child = 2 * i + 1
    while child < n:
        if child + 1 < n and _entry_lt(&heap[child + 1], &heap[child]):
            child += 1
        heap[i] = heap[child]
        i = child
        child = 2 * i + 1
    _sift_up(heap, start, i, e)


cdef inline void _sift_up(HeapEntry *heap, Py_ssize_t top, Py_ssize_t i,
                          HeapEntry e) noexcept nogil:
    """Put e in the hole at i, moving it up past later-due parents, not above index top."""
    cdef Py_ssize_t parent
    while i > top:
        parent = (i - 1) >> 1
        if not _entry_lt(&e, &heap[parent]):
            break
        heap[i] = heap[parent]
        i = parent
    heap[i] = e


cdef Handle _call_soon(Loop loop, object callback, tuple args, object context):
    """Loop.call_soon(callback, *args, context=context)."""
    cdef Handle h
    if loop._closed:
        raise RuntimeError('Event loop is closed')
    if loop._debug:
        loop._check_thread()
        loop._check_callback(callback, 'call_soon')
    if context is None:
        context = PyContext_CopyCurrent()
    h = Handle.new(loop, callback, args, context)
    if loop._debug:
        h._source_traceback = _extract_stack(_sys_getframe(0))
    loop._ready_push(h)
    return h


@cython.no_gc_clear
cdef class Loop:
    """The engine event loop (an asyncio.AbstractEventLoop through engine.Loop)."""

    def __cinit__(self):
        cdef int rc
        cdef Py_ssize_t ring_bufs = 0, ring_size = 0
        self._wake_fds[0] = self._wake_fds[1] = -1
        self._sig_fds[0] = self._sig_fds[1] = -1
        if _backend_want == ENG_BACKEND_IO_URING and _os.environ.get("ENGINE_IO_URING_RECV", "1") != "0":
            # read (and refused, naming the variable) before anything is opened (and after
            # the fds above are marked unopened: __dealloc__ closes what is >= 0)
            ring_bufs = _env_int("ENGINE_IO_URING_BUFS", RING_BUFS_DEFAULT, 1, 32768)
            ring_size = _env_int("ENGINE_IO_URING_BUF_SIZE", RING_BUF_SIZE_DEFAULT, 512, 1 << 24)
        self._poller = malloc(sizeof(eng_poller))
        if self._poller == NULL:
            raise MemoryError()
        (<eng_poller*>self._poller).fd = -1
        (<eng_poller*>self._poller).events = NULL
        self._fds = NULL
        self._heap = NULL
        self._ready.items = NULL

        rc = eng_poller_open(<eng_poller*>self._poller, POLL_EVENTS_INITIAL, _backend_want)
        if rc < 0:
            raise _oserror(rc)

        self._fds = <FdSlot*>malloc(sizeof(FdSlot) * FD_TABLE_INITIAL)
        self._heap = <HeapEntry*>malloc(sizeof(HeapEntry) * HEAP_INITIAL_CAPACITY)
        self._ready.items = <PyObject**>malloc(sizeof(PyObject*) * READY_INITIAL_CAPACITY)
        if self._fds == NULL or self._heap == NULL or self._ready.items == NULL:
            raise MemoryError()
        memset(self._fds, 0, sizeof(FdSlot) * FD_TABLE_INITIAL)
        self._fds_cap = FD_TABLE_INITIAL
        self._heap_cap = HEAP_INITIAL_CAPACITY
        self._heap_n = 0
        self._ready.cap = READY_INITIAL_CAPACITY
        self._ready.head = 0
        self._ready.count = 0

        rc = eng_wakeup_open(self._wake_fds)
        if rc < 0:
            raise _oserror(rc)
        rc = eng_pipe(self._sig_fds)
        if rc < 0:
            raise _oserror(rc)

        self._signal_handlers = {}
        self._signal_watchers = {}
        self._idles = []
        self._rpool = BufferPool(128 * 1024, 1, 16)   # transports.pxi READ_MAX
        self._send_pending = []
        self._timed_idles = []
        self._asyncs = []
        self._prepoll = []
        self._idle_pending = True
        self._asyncgens = _weakref.WeakSet()
        self.slow_callback_duration = 0.1
        self._clock_resolution = _time.get_clock_info('monotonic').resolution
        self._debug = _coroutines._is_debug_mode()
        self._coroutine_origin_tracking_saved_depth = None
        env = _os.environ.get("ENGINE_BUSY_POLL_US")
        try:
            self.set_busy_poll(BUSY_POLL_DEFAULT_US if env is None else float(env))
        except ValueError as exc:
            raise ValueError(f"ENGINE_BUSY_POLL_US={env!r}: {exc}") from None
        env = _os.environ.get("ENGINE_POLL_GAP_US")
        try:
            self.set_poll_gap(POLL_GAP_DEFAULT_US if env is None else float(env))
        except ValueError as exc:
            raise ValueError(f"ENGINE_POLL_GAP_US={env!r}: {exc}") from None

        self._fd_set(self._wake_fds[0], ENG_EV_READ, None, KIND_WAKEUP)
        self._fd_set(self._sig_fds[0], ENG_EV_READ, None, KIND_SIGNALS)
        if ring_bufs and eng_poller_kind(<eng_poller*>self._poller) == ENG_BACKEND_IO_URING:
            self._ring_recv_setup(ring_bufs, ring_size)

    cdef int _ring_recv_setup(self, Py_ssize_t n, Py_ssize_t size) except -1:
        # io_uring: stream transports are read by multishot receives into buffers the kernel
        # takes from a provided-buffer ring, here the chunks of a BufferPool of their own
        # (docs/platforms.md, "io_uring"). ENGINE_IO_URING_RECV=0 keeps them on poll + recv(2).
        cdef BufferPool pool
        cdef char **addrs
        cdef Py_ssize_t i
        cdef int rc
        # slabs of 16 chunks, and room for RING_LEND_SLABS more: the memory put in the kernel's
        # place when a protocol keeps a view of a buffer lent to it (transports.pxi, _read_lent)
        pool = BufferPool(size, 16, (n + 15) // 16 + RING_LEND_SLABS)
        addrs = <char**>malloc(sizeof(char*) * n)
        if addrs == NULL:
            raise MemoryError()
        try:
            for i in range(n):
                addrs[i] = pool._take()
            rc = eng_poller_recv_setup(<eng_poller*>self._poller, addrs, <unsigned>n, <unsigned>size)
        finally:
            free(addrs)
        if rc == 0:
            self._ring_pool = pool       # the ring's memory: kept until the poller is closed
            self._uring_recv = True
            self._uring_send = _os.environ.get("ENGINE_IO_URING_SEND", "1") != "0"
            self._uring_accept = _os.environ.get("ENGINE_IO_URING_ACCEPT", "1") != "0"
        return 0

    def __init__(self):
        pass

    def __dealloc__(self):
        self._free_resources()

    cdef _free_resources(self):
        cdef Py_ssize_t i
        cdef int fd
        if self._ready.items != NULL:
            while self._ready.count:
                Py_DECREF(<object>self._ready.items[self._ready.head])
                self._ready.head = (self._ready.head + 1) & (self._ready.cap - 1)
                self._ready.count -= 1
            free(self._ready.items)
            self._ready.items = NULL
        if self._heap != NULL:
            for i in range(self._heap_n):
                (<TimerHandle>self._heap[i].timer)._scheduled = False
                _gc_retrack(self._heap[i].timer)
                Py_DECREF(<object>self._heap[i].timer)
            self._heap_n = 0
            self._heap_cancelled = 0
            free(self._heap)
            self._heap = NULL
        if self._fds != NULL:
            for fd in range(self._fds_cap):
                if self._fds[fd].reader != NULL:
                    Py_DECREF(<object>self._fds[fd].reader)
                    self._fds[fd].reader = NULL
                if self._fds[fd].writer != NULL:
                    Py_DECREF(<object>self._fds[fd].writer)
                    self._fds[fd].writer = NULL
                Py_CLEAR(self._fds[fd].kept)
            free(self._fds)
            self._fds = NULL
            self._fds_cap = 0
            self._user_fds = 0
        if self._poller != NULL:
            eng_poller_close(<eng_poller*>self._poller)
            free(self._poller)
            self._poller = NULL
        eng_close_wakeup(self._wake_fds)
        if self._sig_fds[0] >= 0:
            close(self._sig_fds[0])
        if self._sig_fds[1] >= 0:
            close(self._sig_fds[1])
        self._sig_fds[0] = self._sig_fds[1] = -1

    def __repr__(self):
        return (f'<{type(self).__name__} running={self.is_running()} '
                f'closed={self.is_closed()} debug={self.get_debug()}>')

    def __del__(self):
        if not self._closed and self._poller != NULL:   # (NULL: __cinit__ refused its settings)
            _warnings.warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self._running:
                self.close()

    # --- ready queue ------------------------------------------------------------------------------

    cdef int _ready_push(self, Handle h) except -1:
        cdef Ring *r = &self._ready
        cdef PyObject **items
        cdef Py_ssize_t i, ncap, first
        if r.count == r.cap:
            ncap = r.cap * 2
            items = <PyObject**>malloc(sizeof(PyObject*) * ncap)
            if items == NULL:
                raise MemoryError()
            first = r.cap - r.head          # unwrap: [head .. cap) then [0 .. head)
            memcpy(items, r.items + r.head, sizeof(PyObject*) * first)
            memcpy(items + first, r.items, sizeof(PyObject*) * r.head)
            free(r.items)
            r.items = items
            r.head = 0
            r.cap = ncap
        Py_INCREF(h)
        r.items[(r.head + r.count) & (r.cap - 1)] = <PyObject*>h
        r.count += 1
        return 0

    # --- timers: a binary heap of (when, seq, timer) entries in a C array, ordered by deadline
    # then insertion (FIFO for equal deadlines). Entries are compared without touching the
    # TimerHandle objects. cancel() only counts (O(1), as asyncio does): a cancelled timer is
    # dropped when it reaches the top, or all at once (_heap_compact) when they are at least
    # HEAP_COMPACT_MIN and over half of the heap.
    #
    # While in the heap, a TimerHandle is not tracked by the cyclic garbage collector: the heap
    # holds it, so neither it nor anything it refers to can be cyclic garbage, and a program
    # with many pending timers (one per connection's timeout) then does not have them all
    # scanned by every collection. Whatever takes it out of the heap tracks it again before
    # dropping the heap's reference (_heap_pop, _heap_compact, _free_resources).

    cdef int _heap_push(self, TimerHandle t) except -1:
        cdef HeapEntry *heap
        cdef HeapEntry e
        if self._heap_n == self._heap_cap:
            heap = <HeapEntry*>realloc(self._heap, sizeof(HeapEntry) * self._heap_cap * 2)
            if heap == NULL:
                raise MemoryError()
            self._heap = heap
            self._heap_cap *= 2
        heap = self._heap
        e.when = t._when
        e.seq = self._seq
        self._seq += 1
        e.timer = <PyObject*>t
        Py_INCREF(t)
        if PyObject_GC_IsTracked(<PyObject*>t):
            PyObject_GC_UnTrack(<void*>t)
        self._heap_n += 1
        _sift_up(heap, 0, self._heap_n - 1, e)
        return 0

    cdef PyObject *_heap_pop(self) noexcept:
        # Removes heap[0] (the heap is not empty) and returns it: the caller owns the reference
        # the heap held, and updates _scheduled / _heap_cancelled.
        cdef PyObject *top = self._heap[0].timer
        _gc_retrack(top)
        self._heap_n -= 1
        if self._heap_n:
            _sift_down_bottom_up(self._heap, self._heap_n, 0, self._heap[self._heap_n])
        return top

    cdef int _heap_drop_cancelled_head(self) except -1:
        # Pops the cancelled timers at the top, so that heap[0] (if any) is the next live one.
        cdef PyObject *p
        while self._heap_cancelled and (<TimerHandle>self._heap[0].timer)._cancelled:
            p = self._heap_pop()
            self._heap_cancelled -= 1
            (<TimerHandle>p)._scheduled = False
            Py_DECREF(<object>p)       # may run code (a finalizer): the heap is consistent
        return 0

    cdef int _heap_compact(self) except -1:
        # Drops every cancelled timer: the live ones move to the front (in array order), the
        # heap is rebuilt over them (Floyd's heapify, O(n)); the dropped references are released
        # once the heap is consistent again (a finalizer may schedule timers).
        cdef HeapEntry *heap = self._heap
        cdef Py_ssize_t i, j = 0, k = 0, n = self._heap_n
        cdef list dead = PyList_New(self._heap_cancelled)
        cdef PyObject *p
        for i in range(n):
            p = heap[i].timer
            if (<TimerHandle>p)._cancelled:
                (<TimerHandle>p)._scheduled = False
                _gc_retrack(p)
                if k < self._heap_cancelled:
                    PyList_SET_ITEM(dead, k, <object>p)    # steals the heap's reference
                    k += 1
                else:
                    Py_DECREF(<object>p)                   # not reached: the count is exact
            else:
                heap[j] = heap[i]
                j += 1
        self._heap_n = j
        self._heap_cancelled = 0
        i = j // 2 - 1
        while i >= 0:
            _sift_down(heap, j, i, heap[i])
            i -= 1
        del dead
        return 0

    cdef int _timer_cancel(self, TimerHandle t) except -1:
        # t was just cancelled (TimerHandle.cancel): count it if it is still in the heap
        if not t._scheduled or self._heap == NULL:
            return 0
        self._heap_cancelled += 1
        if (self._heap_cancelled >= HEAP_COMPACT_MIN
                and self._heap_cancelled * 2 > self._heap_n):
            self._heap_compact()
        return 0

    def _timer_handle_cancelled(self, handle):
        # asyncio.TimerHandle.cancel() calls this on the loop (for its own handles, which are
        # never in engine's heap); engine's TimerHandle.cancel() calls _timer_cancel.
        if isinstance(handle, TimerHandle):
            handle.cancel()

    # --- fd table ---------------------------------------------------------------------------------

    cdef int _fd_ensure(self, int fd) except -1:
        cdef Py_ssize_t ncap
        cdef FdSlot *fds
        if fd < self._fds_cap:
            return 0
        ncap = self._fds_cap
        while ncap <= fd:
            ncap *= 2
        fds = <FdSlot*>realloc(self._fds, sizeof(FdSlot) * ncap)
        if fds == NULL:
            raise MemoryError()
        memset(fds + self._fds_cap, 0, sizeof(FdSlot) * (ncap - self._fds_cap))
        self._fds = fds
        self._fds_cap = <int>ncap
        return 0

    cdef int _fd_apply(self, int fd, bint force=False) except -1:
        # force: re-register even if the mask is unchanged (a replaced watcher may belong to a new
        # file that reuses a closed fd's number; MOD then fails with ENOENT and the backend ADDs)
        cdef FdSlot *slot = &self._fds[fd]
        cdef int new_mask = 0
        cdef int rc
        if slot.reader != NULL:
            new_mask |= ENG_EV_READ
            if slot.rkind == KIND_IO and (<IO>slot.reader).edge:
                new_mask |= ENG_EV_EDGE
            elif slot.rkind == KIND_TRANSPORT and (<_FdTransport>slot.reader)._uring_recv:
                new_mask |= ENG_EV_RECV
            elif slot.rkind == KIND_ACCEPT:
                new_mask |= ENG_EV_ACCEPT
        if slot.writer != NULL:
            new_mask |= ENG_EV_WRITE
            if slot.wkind == KIND_IO and (<IO>slot.writer).edge:
                new_mask |= ENG_EV_EDGE
            elif slot.wkind == KIND_TRANSPORT and (<_FdTransport>slot.writer)._uring_send:
                new_mask |= ENG_EV_SEND
        if slot.kept != NULL:
            # a kept sock_*() registration: whatever the kernel has stays, edge-triggered
            new_mask |= slot.mask
        elif new_mask and _sockops_only(slot) and not eng_poller_holds_files(<eng_poller*>self._poller):
            # sock_*() operations wait edge-triggered: every one tries its syscall before it
            # waits, so a readiness change it must see always comes after it started waiting,
            # and the registration can be kept, without a spurious-event storm, once it is done.
            # Not on io_uring: a kept request would hold the socket's file open after its close;
            # there a one-shot poll request ends by itself when it fires, so nothing is left
            new_mask |= ENG_EV_EDGE
        if new_mask == slot.mask and not force:
            return 0
        self._poller_updates += 1
        rc = eng_poller_set(<eng_poller*>self._poller, fd, 0 if force else slot.mask, new_mask)
        if rc < 0:
            raise _oserror(rc)
        slot.mask = new_mask
        return 0

    cdef object _fd_set(self, int fd, int which, object obj, int kind):
        """Install obj as the reader or writer of fd; returns what was there (or None)."""
        cdef FdSlot *slot
        cdef PyObject *old
        cdef int old_kind
        cdef bint force = False
        self._fd_ensure(fd)
        slot = &self._fds[fd]
        if slot.kept != NULL:
            if not (kind == KIND_SOCKOP
                    and PyWeakref_GetObject(<object>slot.kept) == <PyObject*>(<_SockOp>obj).sock
                    and (slot.reader == NULL or slot.rkind == KIND_SOCKOP)
                    and (slot.writer == NULL or slot.wkind == KIND_SOCKOP)):
                # anyone else: the kept registration may belong to a closed file whose fd
                # number was reused; register afresh, level-triggered unless asked otherwise
                Py_CLEAR(slot.kept)
                force = True
        Py_INCREF(obj)
        if which == ENG_EV_READ:
            old = slot.reader
            old_kind = slot.rkind
            slot.reader = <PyObject*>obj
            slot.rkind = kind
        else:
            old = slot.writer
            old_kind = slot.wkind
            slot.writer = <PyObject*>obj
            slot.wkind = kind
        try:
            self._fd_apply(fd, old != NULL or force)
        except BaseException:
            if which == ENG_EV_READ:
                slot.reader = old
                slot.rkind = old_kind
            else:
                slot.writer = old
                slot.wkind = old_kind
            Py_DECREF(obj)
            raise
        self._user_fds += _user_kind(kind) - (_user_kind(old_kind) if old != NULL else 0)
        if old == NULL:
            return None
        result = <object>old
        Py_DECREF(result)
        return result

    cdef int _submit_sends_now(self) except -1:
        # io_uring: the loop stops (or closes) with writes not yet sent: they are submitted
        # now, so that what write() was given leaves as it would have under send(2) at write()
        # time, even if the loop never polls again (what the socket does not take at once
        # waits in the kernel's request, sent while the ring lives)
        if self._send_pending:
            self._flush_sends()
        if self._poller != NULL:
            eng_poller_submit(<eng_poller*>self._poller)
        return 0

    cdef int _take_sent(self) except -1:
        # io_uring: send requests that completed with no one waiting: their transports account
        # for them now, before this iteration's reads, so the buffers they held are freed (and
        # their memory reused by the reads' bytes) while still in the CPU's cache
        cdef int *fds
        cdef int i, fd
        cdef int ns = eng_poller_sent(<eng_poller*>self._poller, &fds)
        cdef FdSlot *slot
        for i in range(ns):
            fd = fds[i]
            if fd >= self._fds_cap:
                continue
            slot = &self._fds[fd]
            if (slot.reader != NULL and slot.rkind == KIND_TRANSPORT
                    and (<_FdTransport>slot.reader)._send_inflight):
                (<SocketTransport>slot.reader)._send_collect()
        return 0

    cdef int _flush_sends(self) except -1:
        cdef list todo = self._send_pending
        cdef SocketTransport t
        self._send_pending = []
        for t in todo:
            t._send_queued = False
            if t._send_inflight or not t._wbuf or t._conn_lost or self._poller == NULL:
                continue
            try:
                t._submit_send()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                t._fatal_error(exc, 'Fatal write error on socket transport')
        return 0

    cdef int _fd_forget(self, int fd) except -1:
        """fd's transport is done reading it (closing): what the poller received for it and
        no one will read is dropped, its buffers reused (io_uring's receive queues)."""
        if self._uring_recv and self._poller != NULL:
            eng_poller_recv_forget(<eng_poller*>self._poller, fd)
        return 0

    cdef object _fd_clear(self, int fd, int which):
        """Remove the reader or writer of fd; returns it (or None)."""
        cdef FdSlot *slot
        cdef PyObject *old
        cdef int old_kind
        if fd >= self._fds_cap:
            return None
        slot = &self._fds[fd]
        if which == ENG_EV_READ:
            old = slot.reader
            old_kind = slot.rkind
            slot.reader = NULL
            slot.rkind = KIND_NONE
        else:
            old = slot.writer
            old_kind = slot.wkind
            slot.writer = NULL
            slot.wkind = KIND_NONE
        if old == NULL:
            return None
        self._user_fds -= _user_kind(old_kind)
        result = <object>old
        Py_DECREF(result)
        if old_kind == KIND_SOCKOP and (slot.mask & ENG_EV_EDGE) and _sockops_only(slot) \
                and not eng_poller_holds_files(<eng_poller*>self._poller):
            # a sock_*() operation is done: keep its edge-triggered registration for the next
            # one on the same socket (a ping-pong then makes no epoll_ctl at all); a spurious
            # edge meanwhile finds no one waiting and is dropped
            if slot.kept == NULL:
                slot.kept = _weakref_or_null((<_SockOp>result).sock)
            if slot.kept != NULL:
                return result
        try:
            self._fd_apply(fd)
        except OSError:
            # The fd was closed or replaced behind our back: the kernel already forgot it.
            slot.mask = (ENG_EV_READ if slot.reader != NULL else 0) | \
                        (ENG_EV_WRITE if slot.writer != NULL else 0)
        return result

    # --- the run loop -----------------------------------------------------------------------------

    cdef int _run_once(self) except -1:
        cdef int timeout_ms, n, i, fd, revents, rc
        cdef double when, now, end, dt, t0, spin_end
        cdef Py_ssize_t ntodo
        cdef Ring *ready = &self._ready
        cdef PyObject *p
        cdef Handle h
        cdef TimerHandle t

        # 0. io_uring: the sends written since the last poll, one request per connection
        if self._send_pending:
            self._flush_sends()

        # 1. how long may we block? (the next deadline is that of a live timer)
        if self._heap_cancelled:
            self._heap_drop_cancelled_head()
        while True:
            if ready.count or self._stopping or self._async_pending or self._prepoll:
                timeout_ms = 0
            elif self._heap_n:
                dt = self._heap[0].when - eng_monotonic()
                if dt <= 0:
                    timeout_ms = 0
                else:
                    if dt > MAXIMUM_SELECT_TIMEOUT:
                        dt = MAXIMUM_SELECT_TIMEOUT
                    timeout_ms = <int>ceil(dt * 1000.0)
            else:
                timeout_ms = -1
            if timeout_ms != 0 and self._idle_pending and self._idles:
                # about to block: run idle watchers once, then look again
                self._run_idle()
                continue
            break

        # 2. wait: the one place the GIL is released. A zero-timeout poll cannot block, so it
        # keeps the GIL (saves a release/re-acquire per busy iteration). It is skipped when the
        # loop watches no fd but its own two and no signal handler is installed: then it cannot
        # return anything that matters to a loop with work to do (the wake-up fd is written
        # only to a sleeping loop; bytes on the signal fd are for signal handlers, and Python's
        # own handlers run from the interpreter), and a busy loop of callbacks, sleep(0)s or
        # timers saves a system call per iteration. A blocking poll (no work) always polls.
        if timeout_ms == 0:
            if self._user_fds == 0 and not self._signal_handlers and not self._signal_watchers:
                n = 0
            elif (ready.count and eng_monotonic() - self._last_poll < self._poll_gap
                  and not (self._uring_send and eng_poller_submits(<eng_poller*>self._poller))):
                # callbacks are waiting and the loop polled moments ago: run them first. The
                # events this poll would return are picked up by a later iteration's poll, at
                # most _poll_gap after the last one (a busy loop keeps polling that often);
                # a loop whose queue drains polls at once, as before. Sends waiting in the
                # ring (io_uring) are not held back: they go with a poll now
                n = 0
            else:
                n = eng_poller_wait(<eng_poller*>self._poller, 0)
                self._last_poll = eng_monotonic()
                if n > 0:
                    self._had_io = True
        else:
            self._sleeping = True
            with nogil:
                n = 0
                if self._had_io and self._busy_poll > 0.0:
                    # adaptive busy polling (KVM's halt-polling idea): right after I/O, the next
                    # event often comes within microseconds; polling for it without blocking
                    # saves the sleep/wake-up (a context switch, and on a VM an idle exit) that
                    # dominates a request/response round trip between two CPUs
                    t0 = eng_monotonic()
                    spin_end = t0 + self._busy_poll
                    while True:
                        n = eng_poller_wait(<eng_poller*>self._poller, 0)
                        if n != 0 or eng_monotonic() >= spin_end:
                            break
                        sched_yield()    # polite: another runnable task on this CPU goes first
                if n == 0:
                    t0 = eng_monotonic()
                    n = eng_poller_wait(<eng_poller*>self._poller, timeout_ms)
                    if self._busy_poll_max > 0.0 and n > 0:
                        # an event ended the sleep: had it come within the longest window,
                        # polling a little longer would have caught it (grow); else shrink
                        if eng_monotonic() - t0 < self._busy_poll_max:
                            self._busy_poll = self._busy_poll * 2.0
                            if self._busy_poll < BUSY_POLL_START:
                                self._busy_poll = BUSY_POLL_START
                            if self._busy_poll > self._busy_poll_max:
                                self._busy_poll = self._busy_poll_max
                        else:
                            self._busy_poll = self._busy_poll * 0.5
                            if self._busy_poll < BUSY_POLL_START:
                                self._busy_poll = 0.0
            self._had_io = n > 0
            self._last_poll = eng_monotonic()
        if n < 0:
            if n == -EINTR:
                PyErr_CheckSignals()      # runs Python signal handlers; may raise KeyboardInterrupt
                n = 0
            else:
                raise _oserror(n)

        # 3. asyncio's batch order for one iteration: first the callbacks that were ready before
        # the poll, then the fd events in the order the poller reported them (transports, sock
        # ops, watchers and add_reader handles all run at once, no queueing), then the timers
        # that are due. Callbacks scheduled meanwhile wait for the next iteration.
        ntodo = ready.count
        if ntodo or n:
            self._idle_pending = True
        # which timers are due is decided now, as asyncio does right after its select(): a timer
        # that falls due while the callbacks below run waits for the next iteration
        end = eng_monotonic() + self._clock_resolution if self._heap_n else 0.0
        self._run_ready(ntodo)

        if self._uring_send and self._poller != NULL:
            self._take_sent()
        for i in range(n):
            eng_poller_event(<eng_poller*>self._poller, i, &fd, &revents)
            self._dispatch_fd(fd, revents)
        if n == (<eng_poller*>self._poller).capacity:
            rc = eng_poller_grow(<eng_poller*>self._poller)
            if rc < 0:
                raise _oserror(rc)

        if self._async_pending:
            self._async_pending = False
            for w in list(self._asyncs):
                if (<Async>w)._pending and (<Async>w)._active:
                    (<Async>w)._pending = False
                    try:
                        (<Async>w)._fire(ASYNC)
                    except (SystemExit, KeyboardInterrupt):
                        raise
                    except BaseException as exc:
                        self._report_watcher_error(<Watcher>w, exc)

        # 4. due timers run, in deadline order
        if end != 0.0:
            while self._heap_n and self._heap[0].when <= end:
                t = <TimerHandle>self._heap_pop()
                Py_DECREF(t)           # drop the heap's reference; `t` holds one
                t._scheduled = False
                self._idle_pending = True
                if t._cancelled:
                    self._heap_cancelled -= 1
                else:
                    if self._debug:
                        self._run_handle_debug(t)
                    else:
                        t._run()
            t = None

        if self._timed_idles:
            now = eng_monotonic()
            if now >= self._timed_deadline:
                self._run_timed_idle(now)

        # 5. the iteration's last word: call_before_poll() callbacks (e.g. output a protocol
        # held back while this iteration's events were dispatched)
        if self._prepoll:
            self._run_prepoll()
        return 0

    cdef int _run_prepoll(self) except -1:
        cdef list todo = self._prepoll
        cdef Py_ssize_t i = 0, n = len(todo)
        cdef Handle h
        self._prepoll = []
        try:
            while i < n:
                h = <Handle>todo[i]
                i += 1
                if not h._cancelled:
                    if self._debug:
                        self._run_handle_debug(h)
                    else:
                        h._run()
        finally:
            if i < n:
                # a callback raised SystemExit/KeyboardInterrupt: the rest still run, first
                # thing in the next iteration's end
                self._prepoll[:0] = todo[i:]
        return 0

    cdef int _run_ready(self, Py_ssize_t ntodo) except -1:
        """Run the first ntodo callbacks of the ready queue."""
        cdef Ring *ready = &self._ready
        cdef PyObject *p
        cdef Handle h
        while ntodo > 0:
            ntodo -= 1
            p = ready.items[ready.head]
            ready.head = (ready.head + 1) & (ready.cap - 1)
            ready.count -= 1
            h = <Handle>p
            Py_DECREF(h)
            if not h._cancelled:
                if self._debug:
                    self._run_handle_debug(h)
                else:
                    h._run()
        return 0

    cdef int _run_handle_debug(self, Handle h) except -1:
        cdef double t0, dt
        self._current_handle = h
        try:
            t0 = eng_monotonic()
            h._run()
            dt = eng_monotonic() - t0
            if dt >= self.slow_callback_duration:
                _logger().warning('Executing %s took %.3f seconds', _format_handle(h), dt)
        finally:
            self._current_handle = None
        return 0

    cdef int _dispatch_fd(self, int fd, int revents) except -1:
        cdef FdSlot *slot
        cdef object reader, writer
        cdef int rkind, wkind
        if fd >= self._fds_cap:
            return 0
        slot = &self._fds[fd]
        if slot.reader != NULL and (revents & ENG_EV_READ):
            reader = <object>slot.reader
            rkind = slot.rkind
            if slot.writer == slot.reader:
                # one watcher for both directions: one call with the combined events
                _FD_DISPATCH[rkind](self, reader, revents)
                return 0
            _FD_DISPATCH[rkind](self, reader, revents)
            if fd >= self._fds_cap:
                return 0
            slot = &self._fds[fd]      # the table may have moved
        if slot.writer != NULL and (revents & ENG_EV_WRITE):
            writer = <object>slot.writer
            wkind = slot.wkind
            _FD_DISPATCH[wkind](self, writer, revents)
        return 0

    cdef int _run_idle(self) except -1:
        self._idle_pending = False
        for w in list(self._idles):
            if not (<Idle>w)._active:
                continue
            try:
                (<Idle>w)._fire(IDLE)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._report_watcher_error(<Watcher>w, exc)
        if self._timed_idles:
            self._recompute_timed_deadline()
        return 0

    cdef int _run_timed_idle(self, double now) except -1:
        for w in list(self._timed_idles):
            if (<TimedIdle>w)._active and now >= (<TimedIdle>w)._last_run + (<TimedIdle>w)._interval:
                try:
                    (<TimedIdle>w)._fire(IDLE | TIMEOUT)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._report_watcher_error(<Watcher>w, exc)
        self._recompute_timed_deadline()
        return 0

    cdef int _recompute_timed_deadline(self) except -1:
        cdef double d = 1e300, x
        for w in self._timed_idles:
            x = (<TimedIdle>w)._last_run + (<TimedIdle>w)._interval
            if x < d:
                d = x
        self._timed_deadline = d
        return 0

    cdef int _report_watcher_error(self, Watcher w, BaseException exc) except -1:
        self.call_exception_handler({
            'message': f'Exception in {type(w).__name__} watcher callback {w.callback!r}',
            'exception': exc,
            'watcher': w,
        })
        return 0

    cdef int _wakeup(self) except -1:
        # Called with the GIL held, from any thread. Only a sleeping loop needs the syscall.
        if self._sleeping and not self._wakeup_pending:
            self._wakeup_pending = True
            eng_wakeup_send(self._wake_fds[1])
        return 0

    cdef int _read_signals(self) except -1:
        cdef char buf[SIGNAL_READ_CHUNK]
        cdef ssize_t r, i
        cdef int sig
        while True:
            r = read(self._sig_fds[0], buf, SIGNAL_READ_CHUNK)
            if r < 0 and errno == EINTR:
                continue
            if r <= 0:
                break
            for i in range(r):
                sig = <unsigned char>buf[i]
                handle = self._signal_handlers.get(sig)
                if handle is not None and not (<Handle>handle)._cancelled:
                    self._ready_push(<Handle>handle)
                watchers = self._signal_watchers.get(sig)
                if watchers:
                    for w in list(watchers):
                        try:
                            (<Signal>w)._fire(SIGNAL)
                        except (SystemExit, KeyboardInterrupt):
                            raise
                        except BaseException as exc:
                            self._report_watcher_error(<Watcher>w, exc)
            if r < SIGNAL_READ_CHUNK:
                break
        # let Python-level handlers (KeyboardInterrupt, asyncio.Runner's SIGINT) run now
        PyErr_CheckSignals()
        return 0

    # --- checks -----------------------------------------------------------------------------------

    cdef int _check_closed(self) except -1:
        if self._closed:
            raise RuntimeError('Event loop is closed')
        return 0

    cdef int _check_thread(self) except -1:
        if self._thread_id is None:
            return 0
        if self._thread_id != _get_ident():
            raise RuntimeError(
                "Non-thread-safe operation invoked on an event loop other "
                "than the current one")
        return 0

    def _check_running(self):
        if self._running:
            raise RuntimeError('This event loop is already running')
        if _events._get_running_loop() is not None:
            raise RuntimeError('Cannot run the event loop while another loop is running')

    def _check_callback(self, callback, method):
        if aio_iscoroutine(callback) or aio_iscoroutinefunction(callback):
            raise TypeError(f"coroutines cannot be used with {method}()")
        if not callable(callback):
            raise TypeError(f'a callable object was expected by {method}(), got {callback!r}')

    cdef Handle _make_handle(self, callback, tuple args, context, str method):
        cdef Handle h
        if self._debug:
            self._check_callback(callback, method)
        if context is None:
            context = PyContext_CopyCurrent()
        h = Handle.new(self, callback, args, context)
        if self._debug:
            h._source_traceback = _extract_stack(_sys_getframe(0))
        return h

    cdef TimerHandle _timer_at(self, double when, callback, tuple args, context, str method):
        """call_at/call_later once the arguments are checked: a TimerHandle in the heap."""
        cdef TimerHandle t
        if self._debug:
            self._check_thread()
            self._check_callback(callback, method)
        if context is None:
            context = PyContext_CopyCurrent()
            # the copy is the timer's alone: untracked with it while it is in the heap
            PyObject_GC_UnTrack(<void*>context)
        t = TimerHandle.new_timer(self, when, callback, args, context)
        if self._debug:
            t._source_traceback = _extract_stack(_sys_getframe(0))
        self._heap_push(t)
        t._scheduled = True
        return t

    # --- scheduling -------------------------------------------------------------------------------

    def call_soon(self, callback, *args, context=None):
        """Arrange for callback(*args) to be called soon, in FIFO order."""
        # (replaced in the type by a METH_FASTCALL method doing the same: fastcall.pxi)
        return _call_soon(self, callback, args, context)

    def call_before_poll(self, callback, *args, context=None):
        """engine's own: arrange for callback(*args) to be called once, at the end of the
        current loop iteration -- after the ready callbacks, fd events and due timers of this
        iteration, before the loop polls (or sleeps) again. Called outside a running
        iteration, at the end of the next one. FIFO; returns a cancellable Handle.

        For work that should see everything an iteration did, at most once per iteration:
        engine's HTTP server hands all the responses of an iteration to the kernel together."""
        if self._closed:
            raise RuntimeError('Event loop is closed')
        if self._debug:
            self._check_thread()
        h = self._make_handle(callback, args, context, 'call_before_poll')
        self._prepoll.append(h)
        return h

    def call_soon_threadsafe(self, callback, *args, context=None):
        """Like call_soon(), but callable from any thread: wakes the loop up if it is waiting."""
        cdef Handle h
        if self._closed:
            raise RuntimeError('Event loop is closed')
        h = self._make_handle(callback, args, context, 'call_soon_threadsafe')
        self._ready_push(h)
        self._wakeup()
        return h

    def call_at(self, when, callback, *args, context=None):
        """Arrange for callback(*args) to be called at loop.time() == when."""
        # (replaced in the type by a METH_FASTCALL method doing the same: fastcall.pxi)
        if when is None:
            raise TypeError("when cannot be None")
        if self._closed:
            raise RuntimeError('Event loop is closed')
        return self._timer_at(when, callback, args, context, 'call_at')

    def call_later(self, delay, callback, *args, context=None):
        """Arrange for callback(*args) to be called after `delay` seconds."""
        # (replaced in the type by a METH_FASTCALL method doing the same: fastcall.pxi)
        if delay is None:
            raise TypeError('delay must not be None')
        if self._closed:
            raise RuntimeError('Event loop is closed')
        return self._timer_at(eng_monotonic() + <double>delay, callback, args, context,
                              'call_later')

    def time(self):
        """The loop's clock: the same clock as time.monotonic()."""
        return eng_monotonic()

    # --- running ----------------------------------------------------------------------------------

    def run_forever(self):
        """Run until stop() is called."""
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        old_agen_hooks = _sys.get_asyncgen_hooks()
        in_main = _threading.current_thread() is _threading.main_thread()
        old_wakeup = None
        try:
            self._thread_id = _get_ident()
            self._running = True
            _sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                    finalizer=self._asyncgen_finalizer_hook)
            _events._set_running_loop(self)
            if in_main:
                # signals delivered to any thread wake this loop (uvloop does the same)
                try:
                    old_wakeup = _signal.set_wakeup_fd(self._sig_fds[1], warn_on_full_buffer=False)
                except (ValueError, OSError):
                    old_wakeup = None
            while True:
                self._run_once()
                if self._stopping:
                    break
        finally:
            if self._uring_send:
                self._submit_sends_now()
            self._stopping = False
            self._running = False
            self._thread_id = None
            _events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            _sys.set_asyncgen_hooks(*old_agen_hooks)
            if in_main and old_wakeup is not None and not self._signal_handlers \
                    and not self._signal_watchers:
                try:
                    _signal.set_wakeup_fd(old_wakeup)
                except (ValueError, OSError):
                    pass

    def run_until_complete(self, future):
        """Run until the future (or coroutine) is done; return its result or raise its exception."""
        self._check_closed()
        self._check_running()
        new_task = not aio_isfuture(future)
        future = aio_ensure_future(future, loop=self)
        if new_task:
            # an exception escaping here is re-raised below; don't log it as never retrieved
            future._log_destroy_pending = False
        future.add_done_callback(_run_until_complete_cb)
        try:
            self.run_forever()
        except BaseException:
            if new_task and future.done() and not future.cancelled():
                future.exception()
            raise
        finally:
            future.remove_done_callback(_run_until_complete_cb)
        if not future.done():
            raise RuntimeError('Event loop stopped before Future completed.')
        return future.result()

    def stop(self):
        """Stop after the current iteration (callbacks already scheduled still run)."""
        self._stopping = True

    def is_running(self):
        return self._running

    def is_closed(self):
        return self._closed

    def close(self):
        """Close the loop: drop pending callbacks, release the poller. Not while running."""
        if self._running:
            raise RuntimeError("Cannot close a running event loop")
        if self._closed:
            return
        if self._debug:
            _logger().debug("Close %r", self)
        # signal handlers first (they need the loop open)
        if self._signal_handlers or self._signal_watchers:
            if _sys.is_finalizing():
                _warnings.warn(f"Closing the loop {self!r} on interpreter shutdown stage, "
                               f"skipping signal handlers removal", ResourceWarning, source=self)
            else:
                for sig in list(self._signal_handlers):
                    self.remove_signal_handler(sig)
                for sig, lst in list(self._signal_watchers.items()):
                    for w in list(lst):
                        (<Signal>w).stop()
        if self._uring_send:
            self._submit_sends_now()
        self._closed = True
        for lst in (self._idles, self._timed_idles, self._asyncs):
            for w in list(lst):
                (<Watcher>w)._active = False
            del lst[:]
        del self._prepoll[:]
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)
        self._free_resources()

    # --- fd watching (asyncio API) ----------------------------------------------------------------

    cdef object _add_fd_handle(self, fd, int which, callback, tuple args, str method):
        cdef int ifd = _fileobj_to_fd(fd)
        cdef FdSlot *slot
        self._check_closed()
        h = self._make_handle(callback, args, None, method)
        self._fd_ensure(ifd)
        slot = &self._fds[ifd]
        if (slot.rkind if which == ENG_EV_READ else slot.wkind) == KIND_IO:
            raise RuntimeError(f"fd {ifd} is watched by an engine.IO watcher; stop it first")
        old = self._fd_set(ifd, which, h, KIND_HANDLE)
        if isinstance(old, Handle):
            (<Handle>old).cancel()      # the previous reader/writer is replaced, as in asyncio
        return None

    cdef bint _remove_fd_handle(self, fd, int which) except -1:
        cdef int ifd = _fileobj_to_fd(fd)
        cdef int kind
        if self._closed or ifd >= self._fds_cap:
            return False
        kind = self._fds[ifd].rkind if which == ENG_EV_READ else self._fds[ifd].wkind
        # a pending sock_*() operation is a reader/writer too, as in asyncio
        if kind != KIND_HANDLE and kind != KIND_SOCKOP and kind != KIND_ACCEPT:
            return False
        old = self._fd_clear(ifd, which)
        if isinstance(old, Handle):
            (<Handle>old).cancel()
        return True

    def add_reader(self, fd, callback, *args):
        """Call callback(*args) whenever fd is readable (level-triggered)."""
        return self._add_fd_handle(fd, ENG_EV_READ, callback, args, 'add_reader')

    def remove_reader(self, fd):
        """Stop watching fd for reading; True if it was watched."""
        return self._remove_fd_handle(fd, ENG_EV_READ)

    def add_writer(self, fd, callback, *args):
        """Call callback(*args) whenever fd is writable (level-triggered)."""
        return self._add_fd_handle(fd, ENG_EV_WRITE, callback, args, 'add_writer')

    def remove_writer(self, fd):
        """Stop watching fd for writing; True if it was watched."""
        return self._remove_fd_handle(fd, ENG_EV_WRITE)

    # --- signals ----------------------------------------------------------------------------------

    cdef int _signal_install(self, int sig) except -1:
        try:
            _signal.set_wakeup_fd(self._sig_fds[1], warn_on_full_buffer=False)
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))
        try:
            _signal.signal(sig, _sighandler_noop)
            _signal.siginterrupt(sig, False)
        except OSError as exc:
            if exc.errno == _errno.EINVAL:
                raise RuntimeError(f'sig {sig:d} cannot be caught')
            raise
        return 0

    cdef int _signal_uninstall_if_unused(self, int sig) except -1:
        if sig in self._signal_handlers or self._signal_watchers.get(sig):
            return 0
        handler = _signal.default_int_handler if sig == _signal.SIGINT else _signal.SIG_DFL
        try:
            _signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == _errno.EINVAL:
                raise RuntimeError(f'sig {sig:d} cannot be caught')
            raise
        if not self._signal_handlers and not self._signal_watchers and not self._running:
            try:
                _signal.set_wakeup_fd(-1)
            except (ValueError, OSError) as exc:
                _logger().info('set_wakeup_fd(-1) failed: %s', exc)
        return 0

    def add_signal_handler(self, sig, callback, *args):
        """Call callback(*args) in the loop's thread when signal `sig` arrives. Main thread only."""
        if aio_iscoroutine(callback) or aio_iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        _check_signal(sig)
        self._check_closed()
        h = Handle.new(self, callback, args, PyContext_CopyCurrent())
        old = self._signal_handlers.get(sig)
        self._signal_handlers[sig] = h
        try:
            self._signal_install(sig)
        except BaseException:
            if old is None:
                del self._signal_handlers[sig]
            else:
                self._signal_handlers[sig] = old
            if not self._signal_handlers and not self._signal_watchers:
                try:
                    _signal.set_wakeup_fd(-1)
                except (ValueError, OSError) as nexc:
                    _logger().info('set_wakeup_fd(-1) failed: %s', nexc)
            raise

    def remove_signal_handler(self, sig):
        """Remove the handler for `sig`; True if there was one."""
        _check_signal(sig)
        try:
            del self._signal_handlers[sig]
        except KeyError:
            return False
        self._signal_uninstall_if_unused(sig)
        return True

    # --- tasks and futures ------------------------------------------------------------------------

    def create_future(self):
        return aio_Future(loop=self)

    def create_task(self, coro, *, name=None, context=None):
        cdef PyObject *argv[3]
        self._check_closed()
        if self._task_factory is None:
            if context is None:
                # Task(coro, loop=self, name=name) by vectorcall: no keyword dict per task
                argv[0] = <PyObject*>coro
                argv[1] = <PyObject*>self
                argv[2] = <PyObject*>name
                task = PyObject_Vectorcall(aio_Task, argv, 1, <PyObject*>_TASK_KWNAMES)
            else:
                task = aio_Task(coro, loop=self, name=name, context=context)
            if self._debug and task._source_traceback:
                del task._source_traceback[-1]
        else:
            if context is None:
                task = self._task_factory(self, coro)
            else:
                task = self._task_factory(self, coro, context=context)
            if name is not None:
                task.set_name(name)
        return task

    def set_task_factory(self, factory):
        if factory is not None and not callable(factory):
            raise TypeError('task factory must be a callable or None')
        self._task_factory = factory

    def get_task_factory(self):
        return self._task_factory

    # --- exceptions -------------------------------------------------------------------------------

    def get_exception_handler(self):
        return self._exception_handler

    def set_exception_handler(self, handler):
        if handler is not None and not callable(handler):
            raise TypeError(f'A callable object or None is expected, got {handler!r}')
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log the context with the 'asyncio' logger, formatted as asyncio does."""
        message = context.get('message')
        if not message:
            message = 'Unhandled exception in event loop'
        exception = context.get('exception')
        if exception is not None:
            exc_info = (type(exception), exception, exception.__traceback__)
        else:
            exc_info = False
        if ('source_traceback' not in context and self._current_handle is not None
                and self._current_handle._source_traceback):
            context['handle_traceback'] = self._current_handle._source_traceback
        lines = [message]
        for key in sorted(context):
            if key in {'message', 'exception'}:
                continue
            value = context[key]
            if key == 'source_traceback':
                tb = ''.join(_traceback.format_list(value))
                value = 'Object created at (most recent call last):\n' + tb.rstrip()
            elif key == 'handle_traceback':
                tb = ''.join(_traceback.format_list(value))
                value = 'Handle created at (most recent call last):\n' + tb.rstrip()
            else:
                value = repr(value)
            lines.append(f'{key}: {value}')
        _logger().error('\n'.join(lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        """Pass context to the exception handler (or the default one); never raises Exception."""
        if self._exception_handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                _logger().error('Exception in default exception handler', exc_info=True)
        else:
            try:
                ctx = None
                thing = context.get("task")
                if thing is None:
                    thing = context.get("future")
                if thing is None:
                    thing = context.get("handle")
                if thing is not None and hasattr(thing, "get_context"):
                    ctx = thing.get_context()
                if ctx is not None and hasattr(ctx, "run"):
                    ctx.run(self._exception_handler, self, context)
                else:
                    self._exception_handler(self, context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                try:
                    self.default_exception_handler({
                        'message': 'Unhandled error in exception handler',
                        'exception': exc,
                        'context': context,
                    })
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException:
                    _logger().error('Exception in default exception handler while handling an '
                                  'unexpected error in custom exception handler', exc_info=True)

    # --- debug ------------------------------------------------------------------------------------

    def set_busy_poll(self, max_us):
        """Set the longest adaptive busy-poll window in microseconds (0 turns it off).

        After a poll that returned events, the loop polls without blocking for up to the current
        window before it sleeps. The window grows (from 10 us, doubling, up to max_us) while
        events keep arriving soon after the loop went to sleep, and shrinks to nothing while
        they do not, so a loop with sparse traffic does not spin. Default 100 us, or the
        ENGINE_BUSY_POLL_US environment variable."""
        max_us = float(max_us)
        if not (0.0 <= max_us <= 1e6):
            raise ValueError(f"busy-poll window must be 0..1000000 microseconds, not {max_us}")
        self._busy_poll_max = max_us / 1e6
        self._busy_poll = 0.0

    def set_poll_gap(self, us):
        """Set how often, at least, a loop with callbacks always ready polls for I/O (microseconds).

        An iteration that has callbacks to run polls only if the last poll is at least this
        old; otherwise it runs them and leaves the poll to a later iteration. A request/response
        exchange then costs one poll per wait instead of one per iteration, and a loop kept busy
        by callbacks still sees I/O within this gap. 0 polls in every iteration, as asyncio
        does. Default 250 us, or the ENGINE_POLL_GAP_US environment variable."""
        us = float(us)
        if not (0.0 <= us <= 1e6):
            raise ValueError(f"poll gap must be 0..1000000 microseconds, not {us}")
        self._poll_gap = us / 1e6

    def get_poll_gap(self):
        """The poll gap in microseconds; see set_poll_gap()."""
        return self._poll_gap * 1e6

    def get_busy_poll(self):
        """The longest busy-poll window in microseconds (0: off); see set_busy_poll()."""
        return self._busy_poll_max * 1e6

    def get_debug(self):
        return self._debug

    def set_debug(self, enabled):
        self._debug = bool(enabled)
        if self._running:
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking, self._debug)

    def _set_coroutine_origin_tracking(self, bint enabled):
        if enabled == self._coroutine_origin_tracking_enabled:
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = _sys.get_coroutine_origin_tracking_depth()
            _sys.set_coroutine_origin_tracking_depth(_DEBUG_STACK_DEPTH)
        else:
            _sys.set_coroutine_origin_tracking_depth(self._coroutine_origin_tracking_saved_depth)
        self._coroutine_origin_tracking_enabled = enabled

    # --- async generators -------------------------------------------------------------------------

    def _asyncgen_finalizer_hook(self, agen):
        self._asyncgens.discard(agen)
        if not self._closed:
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    def _asyncgen_firstiter_hook(self, agen):
        if self._asyncgens_shutdown_called:
            _warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                f"loop.shutdown_asyncgens() call", ResourceWarning, source=self)
        self._asyncgens.add(agen)

    async def shutdown_asyncgens(self):
        """Close every asynchronous generator still open on this loop."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        closing = list(self._asyncgens)
        self._asyncgens.clear()
        results = await _tasks.gather(*[ag.aclose() for ag in closing], return_exceptions=True)
        for result, agen in zip(results, closing):
            if isinstance(result, Exception):
                self.call_exception_handler({
                    'message': f'an error occurred during closing of asynchronous generator {agen!r}',
                    'exception': result,
                    'asyncgen': agen,
                })

    # --- executor ---------------------------------------------------------------------------------

    def run_in_executor(self, executor, func, *args):
        self._check_closed()
        if self._debug:
            self._check_callback(func, 'run_in_executor')
        if executor is None:
            executor = self._default_executor
            if self._executor_shutdown_called:
                raise RuntimeError('Executor shutdown has been called')
            if executor is None:
                executor = _cf.ThreadPoolExecutor(thread_name_prefix='asyncio')
                self._default_executor = executor
        return aio_wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor):
        if not isinstance(executor, _cf.ThreadPoolExecutor):
            raise TypeError('executor must be ThreadPoolExecutor instance')
        self._default_executor = executor

    def _do_shutdown(self, future):
        try:
            self._default_executor.shutdown(wait=True)
            if not self._closed:
                self.call_soon_threadsafe(_set_result_unless_cancelled, future, None)
        except Exception as ex:
            if not self._closed and not future.cancelled():
                self.call_soon_threadsafe(future.set_exception, ex)

    async def shutdown_default_executor(self, timeout=None):
        """Shut the default executor down, waiting up to `timeout` seconds for its threads."""
        self._executor_shutdown_called = True
        if self._default_executor is None:
            return
        future = self.create_future()
        thread = _threading.Thread(target=self._do_shutdown, args=(future,))
        thread.start()
        try:
            async with _asyncio.timeout(timeout):
                await future
        except TimeoutError:
            _warnings.warn("The executor did not finishing joining "
                           f"its threads within {timeout} seconds.",
                           RuntimeWarning, stacklevel=2)
            self._default_executor.shutdown(wait=False)
        else:
            thread.join()

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        return await self.run_in_executor(None, _socket.getaddrinfo, host, port,
                                          family, type, proto, flags)

    async def getnameinfo(self, sockaddr, flags=0):
        return await self.run_in_executor(None, _socket.getnameinfo, sockaddr, flags)

    # --- low-level socket operations (sockops.pxi) ------------------------------------------------

    async def sock_recv(self, sock, n):
        """Receive up to n bytes from a non-blocking socket."""
        r = _sockop_now(self, sock, OP_RECV, n, None)
        if r is _NOT_READY:
            r = await _sockop_park(self, sock, OP_RECV, n, None)
        return r

    async def sock_recv_into(self, sock, buf):
        """Receive into buf; returns the number of bytes received."""
        r = _sockop_now(self, sock, OP_RECV_INTO, buf, None)
        if r is _NOT_READY:
            r = await _sockop_park(self, sock, OP_RECV_INTO, buf, None)
        return r

    async def sock_recvfrom(self, sock, bufsize):
        """Receive a datagram of up to bufsize bytes; returns (data, address)."""
        r = _sockop_now(self, sock, OP_RECVFROM, bufsize, None)
        if r is _NOT_READY:
            r = await _sockop_park(self, sock, OP_RECVFROM, bufsize, None)
        return r

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """Receive a datagram into buf; returns (nbytes, address)."""
        if not nbytes:
            nbytes = len(buf)
        r = _sockop_now(self, sock, OP_RECVFROM_INTO, buf, nbytes)
        if r is _NOT_READY:
            r = await _sockop_park(self, sock, OP_RECVFROM_INTO, buf, nbytes)
        return r

    async def sock_sendall(self, sock, data):
        """Send all of data; returns None once the kernel has taken every byte."""
        cdef _SockOp op
        _check_sock(self, sock)
        try:
            n = sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        if n == len(data):
            return
        fut = aio_Future(loop=self)
        op = _SockOp.new(self, fut, sock, OP_SENDALL, memoryview(data), None)
        op.pos = n
        _sockop_wait(self, op)
        return await fut

    async def sock_sendto(self, sock, data, address):
        """Send a datagram to address; returns the number of bytes sent."""
        r = _sockop_now(self, sock, OP_SENDTO, data, address)
        if r is _NOT_READY:
            r = await _sockop_park(self, sock, OP_SENDTO, data, address)
        return r

    async def sock_connect(self, sock, address):
        """Connect a non-blocking socket; host names are resolved with getaddrinfo first."""
        _check_sock(self, sock)
        if sock.family == _AF_INET or (_AF_INET6 is not None and sock.family == _AF_INET6):
            host, port = address[:2]
            info = _ipaddr_info(host, port, sock.family, sock.type, sock.proto, *address[2:])
            if info is None:
                infos = await self.getaddrinfo(host, port, family=sock.family, type=sock.type,
                                               proto=sock.proto)
                if not infos:
                    raise OSError(f'getaddrinfo({host!r}) returned empty list')
                info = infos[0]
            address = info[4]
        fut = aio_Future(loop=self)
        try:
            sock.connect(address)
        except (BlockingIOError, InterruptedError):
            _sockop_wait(self, _SockOp.new(self, fut, sock, OP_CONNECT, address, None))
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(None)
        try:
            return await fut
        finally:
            fut = None   # break the reference cycle through the exception's traceback

    async def sock_accept(self, sock):
        """Accept a connection; returns (conn, address), conn non-blocking."""
        r = _sockop_now(self, sock, OP_ACCEPT, None, None)
        if r is _NOT_READY:
            r = await _sockop_park(self, sock, OP_ACCEPT, None, None)
        return r

    async def sock_sendfile(self, sock, file, offset=0, count=None, *, fallback=True):
        """Send a file over a connected SOCK_STREAM socket with sendfile(2); returns bytes sent.

        Where sendfile(2) can't serve the file and fallback is true: an mmap(2) of the file sent
        with sock_sendall (no copy), else read/send in chunks as asyncio does. The file position
        ends just past the last byte sent.
        """
        _check_sock(self, sock)
        _check_sendfile_params(sock, file, offset, count)
        try:
            return await self._sock_sendfile_native(sock, file, offset, count)
        except _SendfileNotAvailableError:
            if not fallback:
                raise
        try:
            return await self._sock_sendfile_mmap(sock, file, offset, count)
        except _SendfileNotAvailableError:
            pass
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    async def sendfile(self, transport, file, offset=0, count=None, *, fallback=True):
        """Send a file over a transport; returns bytes sent (asyncio's semantics).

        engine's socket transports: pending writes are flushed, then sendfile(2) from the file
        straight to the socket (write() raises meanwhile, as asyncio's); where sendfile(2) can't
        serve the file and fallback is true, mmap(2) views written through the transport, else
        read/write. Other transports (TLS) use the read/write fallback.
        """
        if transport.is_closing():
            raise RuntimeError("Transport is closing")
        mode = getattr(transport, '_sendfile_compatible', _SendfileMode.UNSUPPORTED)
        if mode is _SendfileMode.UNSUPPORTED:
            raise RuntimeError(f"sendfile is not supported for transport {transport!r}")
        if mode is _SendfileMode.TRY_NATIVE and isinstance(transport, SocketTransport):
            try:
                return await self._sendfile_native(transport, file, offset, count)
            except _SendfileNotAvailableError:
                if not fallback:
                    raise
        if not fallback:
            raise RuntimeError(f"fallback is disabled and native sendfile is not supported "
                               f"for transport {transport!r}")
        return await self._sendfile_fallback(transport, file, offset, count)

    async def _sendfile_native(self, SocketTransport transport, file, offset, count):
        # Unlike asyncio's selector loop, reading goes on meanwhile: the sendfile waits in the
        # fd table's writer slot, the transport keeps the reader slot (no epoll_ctl per call)
        _check_sendfile_params(transport._sock, file, offset, count)
        transport._sendfile_busy = True
        try:
            await transport._drained()
            if transport._write_registered and not transport._wbuf:
                # io_uring: the drain was seen by the transport itself (its send completion
                # taken when asked), with its WRITE registration still in place; the sendfile
                # is about to take the writer slot, so the transport lets go of it now
                transport._watch(ENG_EV_WRITE, False)
            return await self._sock_sendfile_native(transport._sock, file, offset, count,
                                                    transport)
        finally:
            transport._sendfile_busy = False

    async def _sendfile_fallback(self, transport, file, offset, count):
        if isinstance(transport, SocketTransport):
            # zero-copy first: read-only mmap views go to the kernel without a copy
            try:
                return await self._sendfile_mmap(transport, file, offset, count)
            except _SendfileNotAvailableError:
                pass
        drain = _SendfileDrain(self, transport)
        try:
            return await self._sock_sendfile_fallback(None, file, offset, count, drain.write)
        finally:
            await drain.restore()

    async def _sendfile_mmap(self, SocketTransport transport, file, offset, count):
        m, end = _map_file(file, offset, count)
        if m is None:
            return 0
        await transport._drained()
        start = transport._sent_total
        try:
            whole = memoryview(m)
            pos = offset
            while pos < end:
                nxt = min(end, pos + <Py_ssize_t>_FALLBACK_BLOCK * 4)
                transport._write(whole[pos:nxt])     # read-only view: queued uncopied
                await transport._drained()
                pos = nxt
            return end - offset
        finally:
            # the file position: just past what the kernel took, even when the peer went away
            sent = transport._sent_total - start
            if sent > 0 and hasattr(file, 'seek'):
                file.seek(offset + sent)
            whole = None
            try:
                m.close()
            except BufferError:
                pass             # a view is still queued in a closing transport: GC frees it

    async def _sock_sendfile_native(self, sock, file, offset, count, owner=None):
        cdef _SockOp op
        try:
            fileno = file.fileno()
        except (AttributeError, _io_UnsupportedOperation):
            raise _SendfileNotAvailableError("not a regular file")
        try:
            fsize = _os.fstat(fileno).st_size
        except OSError:
            raise _SendfileNotAvailableError("not a regular file")
        if not (count if count else fsize):
            return 0
        fut = aio_Future(loop=self)
        op = _SockOp.new(self, fut, sock, OP_SENDFILE, None, None)
        op.file_fd = fileno
        op.offset = offset
        op.left = count if count else -1
        try:
            result = op._sendfile_step()           # at once: usually no wait at all
        except BaseException:
            _sendfile_update_filepos(fileno, op.offset, op.total)
            raise
        if result is not None:
            _sendfile_update_filepos(fileno, op.offset, op.total)
            return result
        _sockop_wait(self, op)
        if owner is None:
            return await fut
        (<SocketTransport>owner)._sendfile_op = op     # closing the transport unparks it
        try:
            return await fut
        finally:
            (<SocketTransport>owner)._sendfile_op = None

    async def _sock_sendfile_mmap(self, sock, file, offset, count):
        m, end = _map_file(file, offset, count)
        if m is None:
            return 0
        total = 0
        try:
            with memoryview(m) as whole:
                pos = offset
                while pos < end:
                    nxt = min(end, pos + <Py_ssize_t>_FALLBACK_BLOCK * 4)
                    with whole[pos:nxt] as chunk:
                        await self.sock_sendall(sock, chunk)
                    total += nxt - pos
                    pos = nxt
            return total
        finally:
            m.close()
            if total > 0 and hasattr(file, 'seek'):
                file.seek(offset + total)

    async def _sock_sendfile_fallback(self, sock, file, offset, count, send=None):
        if offset:
            file.seek(offset)
        blocksize = min(count, _FALLBACK_BLOCK) if count else _FALLBACK_BLOCK
        buf = bytearray(blocksize)
        total_sent = 0
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        break
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    break                               # EOF
                await (self.sock_sendall(sock, view[:read]) if send is None
                       else send(view[:read]))
                total_sent += read
            return total_sent
        finally:
            if total_sent > 0 and hasattr(file, 'seek'):
                file.seek(offset + total_sent)

    # --- stream transports and servers (transports.pxi) -------------------------------------------

    def _start_accepting(self, protocol_factory, sock, server, backlog):
        # io_uring: a multishot accept request accepts, and the handle takes what it queued
        # (docs/platforms.md, "Completion accepts"); elsewhere readiness and accept4(2)
        cdef bint ring = self._uring_accept and sock.type == _SOCK_STREAM
        h = Handle.new(self, self._accept_queued if ring else self._accept_connection,
                       (protocol_factory, sock, server, backlog), PyContext_CopyCurrent())
        old = self._fd_set(sock.fileno(), ENG_EV_READ, h, KIND_ACCEPT if ring else KIND_HANDLE)
        if isinstance(old, Handle):
            (<Handle>old).cancel()

    def _stop_accepting(self, sock):
        cdef int fd = sock.fileno()
        cdef int nfd
        cdef tuple args = None
        if not self._closed:
            if fd < self._fds_cap and self._fds[fd].rkind == KIND_ACCEPT:
                args = (<Handle>self._fds[fd].reader)._args
            self._remove_fd_handle(fd, ENG_EV_READ)
            if args is not None:
                # what the ring accepted before the close is served, not reset: on a listening
                # socket shared with other processes (worker recycling) accept4(2) would have
                # left it to them
                while True:
                    nfd = eng_poller_accept_next(<eng_poller*>self._poller, fd)
                    if nfd < 0:
                        break
                    conn, addr = self._adopt(sock, nfd)
                    self._accepted(conn, addr, args[0], args[2])
            self._fd_forget(fd)
        sock.close()

    def _resume_accepting(self, protocol_factory, sock, server, backlog):
        if server.is_serving() and not self._closed:
            self._start_accepting(protocol_factory, sock, server, backlog)

    def _accept_connection(self, protocol_factory, sock, server, backlog):
        for _ in range(backlog):
            try:
                conn, addr = sock.accept()
                conn.setblocking(False)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                self._accept_failed(exc, protocol_factory, sock, server, backlog)
                return
            self._accepted(conn, addr, protocol_factory, server)

    def _accept_queued(self, protocol_factory, sock, server, backlog):
        # io_uring: the sockets the listener's accept request queued, already non-blocking (so
        # the socket object is made with no system call). The request gets no address (one
        # buffer would serve every completion): getpeername(2) asks for it now, since asyncio's
        # transports have it from accept, still there after the peer has gone
        cdef int lfd = sock.fileno()
        cdef int fd
        for _ in range(backlog):
            fd = eng_poller_accept_next(<eng_poller*>self._poller, lfd)
            if fd < 0:
                if fd == -EAGAIN:
                    return
                if fd == -EOPNOTSUPP:    # the ring lost its receives: readiness and accept4(2)
                    self._accept_connection(protocol_factory, sock, server, backlog)
                    return
                exc = _oserror(fd)
                if not isinstance(exc, (BlockingIOError, InterruptedError, ConnectionAbortedError)):
                    self._accept_failed(exc, protocol_factory, sock, server, backlog)
                return
            conn, addr = self._adopt(sock, fd)
            self._accepted(conn, addr, protocol_factory, server)

    cdef tuple _adopt(self, sock, int fd):
        conn = _socket.socket(sock.family, sock.type | _SOCK_NONBLOCK, sock.proto, fd)
        try:
            addr = conn.getpeername()
        except OSError:
            addr = None          # reset already: the transport meets it when it reads
        return conn, addr

    cdef _accept_failed(self, exc, protocol_factory, sock, server, backlog):
        if exc.errno in (_errno.EMFILE, _errno.ENFILE, _errno.ENOBUFS, _errno.ENOMEM):
            # out of fds/memory: stop accepting for a moment instead of spinning
            self.call_exception_handler({
                'message': 'socket.accept() out of system resource',
                'exception': exc, 'socket': _TransportSocket(sock)})
            self._remove_fd_handle(sock.fileno(), ENG_EV_READ)
            self.call_later(_ACCEPT_RETRY_DELAY, self._resume_accepting,
                            protocol_factory, sock, server, backlog)
            return
        raise exc

    cdef _accepted(self, conn, addr, protocol_factory, server):
        try:
            protocol = protocol_factory()
        except (SystemExit, KeyboardInterrupt):
            conn.close()
            raise
        except BaseException as exc:
            conn.close()
            self.call_exception_handler({
                'message': 'Error on transport creation for incoming connection',
                'exception': exc})
            return
        extra = None if addr is None else {'peername': addr}
        if server._ssl_context is not None:
            self.create_task(self._accept_tls(conn, extra, protocol, server))
        else:
            SocketTransport.new(self, conn, protocol, None, extra, server)

    async def _accept_tls(self, conn, extra, protocol, server):
        # asyncio's semantics: a failed handshake closes the connection; it is reported to the
        # exception handler only in debug mode (SSLProtocol logs it itself).
        waiter = aio_Future(loop=self)
        transport = None
        try:
            transport = self._make_ssl_transport(
                conn, protocol, server._ssl_context, waiter, server_side=True,
                extra=extra, server=server,
                ssl_handshake_timeout=server._ssl_handshake_timeout,
                ssl_shutdown_timeout=server._ssl_shutdown_timeout)
            await _connected(waiter, transport, protocol)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if self._debug:
                context = {'message': 'Error on transport creation for incoming connection',
                           'exception': exc, 'protocol': protocol}
                if transport is not None:
                    context['transport'] = transport
                self.call_exception_handler(context)

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None, *,
                            server_side=False, server_hostname=None, extra=None, server=None,
                            ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                            call_connection_made=True):
        ssl_protocol = SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            call_connection_made=call_connection_made)
        SocketTransport.new(self, rawsock, ssl_protocol, None, extra, server)
        return ssl_protocol._app_transport

    async def _make_transport(self, sock, protocol_factory, ssl, extra=None, *,
                              server_side=False, server_hostname=None,
                              ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        sock.setblocking(False)
        protocol = protocol_factory()
        waiter = aio_Future(loop=self)
        if ssl:
            sslcontext = None if isinstance(ssl, bool) else ssl
            kwargs = {} if extra is None else {'extra': extra}
            transport = self._make_ssl_transport(
                sock, protocol, sslcontext, waiter, server_side=server_side,
                server_hostname=server_hostname, ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout, **kwargs)
        else:
            transport = SocketTransport.new(self, sock, protocol, waiter, extra, None)
        return await _connected(waiter, transport, protocol)

    async def start_tls(self, transport, protocol, sslcontext, *, server_side=False,
                        server_hostname=None, ssl_handshake_timeout=None,
                        ssl_shutdown_timeout=None):
        """Upgrade an existing transport to TLS; returns the new (TLS) transport."""
        if not isinstance(sslcontext, _SSLContext):
            raise TypeError(f'sslcontext is expected to be an instance of ssl.SSLContext, '
                            f'got {sslcontext!r}')
        if not getattr(transport, '_start_tls_compatible', False):
            raise TypeError(f'transport {transport!r} is not supported by start_tls()')
        waiter = aio_Future(loop=self)
        ssl_protocol = SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout, call_connection_made=False)
        # no bytes may reach the old protocol once TLS starts
        transport.pause_reading()
        transport.set_protocol(ssl_protocol)
        conmade_cb = self.call_soon(ssl_protocol.connection_made, transport)
        resume_cb = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            conmade_cb.cancel()
            resume_cb.cancel()
            raise
        return ssl_protocol._app_transport

    async def _connect_one(self, exceptions, addr_info, local_addr_infos=None):
        my_exceptions = []
        exceptions.append(my_exceptions)
        family, type_, proto, _, address = addr_info
        sock = None
        try:
            sock = _socket.socket(family=family, type=type_, proto=proto)
            sock.setblocking(False)
            if local_addr_infos is not None:
                for lfamily, _, _, _, laddr in local_addr_infos:
                    if lfamily != family:
                        continue
                    try:
                        sock.bind(laddr)
                        break
                    except OSError as exc:
                        my_exceptions.append(OSError(
                            exc.errno, f'error while attempting to bind on address {laddr!r}: '
                                       f'{exc.strerror.lower()}'))
                else:
                    if my_exceptions:
                        raise my_exceptions.pop()
                    raise OSError(f"no matching local address with family={family} found")
            await self.sock_connect(sock, address)
            return sock
        except OSError as exc:
            my_exceptions.append(exc)
            if sock is not None:
                sock.close()
            raise
        except BaseException:
            if sock is not None:
                sock.close()
            raise

    # --- datagrams, pipes, subprocesses (endpoints.pxi) --------------------------------------------

    async def create_datagram_endpoint(self, protocol_factory, local_addr=None, remote_addr=None,
                                       *, family=0, proto=0, flags=0, reuse_port=None,
                                       allow_broadcast=None, sock=None):
        """Open a datagram endpoint (UDP, Unix datagram); returns (transport, protocol)."""
        r_addr = None
        if sock is not None:
            if sock.type != _socket.SOCK_DGRAM:
                raise ValueError(_DGRAM_SOCK_EXPECTED + f', got {sock!r}')
            if (local_addr or remote_addr or family or proto or flags or reuse_port
                    or allow_broadcast):
                opts = dict(local_addr=local_addr, remote_addr=remote_addr, family=family,
                            proto=proto, flags=flags, reuse_port=reuse_port,
                            allow_broadcast=allow_broadcast)
                problems = ', '.join(f'{k}={v}' for k, v in opts.items() if v)
                raise ValueError(f'socket modifier keyword arguments can not be used '
                                 f'when sock is specified. ({problems})')
            sock.setblocking(False)
        else:
            if not (local_addr or remote_addr):
                if family == 0:
                    raise ValueError('unexpected address family')
                pairs = [((family, proto), (None, None))]
            elif _AF_UNIX is not None and family == _AF_UNIX:
                for addr in (local_addr, remote_addr):
                    if addr is not None and not isinstance(addr, str):
                        raise TypeError('string is expected')
                if local_addr and local_addr[0] not in (0, '\x00'):
                    try:
                        if _stat.S_ISSOCK(_os.stat(local_addr).st_mode):
                            _os.remove(local_addr)
                    except FileNotFoundError:
                        pass
                    except OSError as err:
                        _logger().error('Unable to check or remove stale UNIX socket %r: %r',
                                        local_addr, err)
                pairs = [((family, proto), (local_addr, remote_addr))]
            else:
                by_key = {}                   # (family, proto) -> [local, remote], in order
                for idx, addr in ((0, local_addr), (1, remote_addr)):
                    if addr is None:
                        continue
                    if not (isinstance(addr, tuple) and len(addr) == 2):
                        raise TypeError('2-tuple is expected')
                    infos = await self._resolve(addr, family, _socket.SOCK_DGRAM, proto, flags)
                    for fam, _, pro, _, address in infos:
                        by_key.setdefault((fam, pro), [None, None])[idx] = address
                pairs = [(key, pair) for key, pair in by_key.items()
                         if not ((local_addr and pair[0] is None)
                                 or (remote_addr and pair[1] is None))]
                if not pairs:
                    raise ValueError('can not get address information')
            exceptions = []
            for (fam, pro), (local_address, remote_address) in pairs:
                sock = None
                r_addr = None
                try:
                    sock = _socket.socket(family=fam, type=_socket.SOCK_DGRAM, proto=pro)
                    if reuse_port:
                        _set_reuseport(sock)
                    if allow_broadcast:
                        sock.setsockopt(_SOL_SOCKET, _socket.SO_BROADCAST, 1)
                    sock.setblocking(False)
                    if local_addr:
                        sock.bind(local_address)
                    if remote_addr:
                        if not allow_broadcast:
                            await self.sock_connect(sock, remote_address)
                        r_addr = remote_address
                except OSError as exc:
                    if sock is not None:
                        sock.close()
                    exceptions.append(exc)
                except BaseException:
                    if sock is not None:
                        sock.close()
                    raise
                else:
                    break
            else:
                raise exceptions[0]
        protocol = protocol_factory()
        waiter = aio_Future(loop=self)
        transport = DatagramTransport.new(self, sock, protocol, r_addr, waiter, None)
        if self._debug:
            _logger().debug("Datagram endpoint local_addr=%r remote_addr=%r created: (%r, %r)",
                            local_addr, remote_addr, transport, protocol)
        return await _connected(waiter, transport, protocol)

    async def connect_read_pipe(self, protocol_factory, pipe):
        """Wrap the read end of a pipe; returns (transport, protocol)."""
        protocol = protocol_factory()
        waiter = aio_Future(loop=self)
        transport = ReadPipeTransport.new(self, pipe, protocol, waiter)
        return await _connected(waiter, transport, protocol)

    async def connect_write_pipe(self, protocol_factory, pipe):
        """Wrap the write end of a pipe; returns (transport, protocol)."""
        protocol = protocol_factory()
        waiter = aio_Future(loop=self)
        transport = WritePipeTransport.new(self, pipe, protocol, waiter)
        return await _connected(waiter, transport, protocol)

    async def subprocess_exec(self, protocol_factory, program, *args, stdin=_subprocess.PIPE,
                              stdout=_subprocess.PIPE, stderr=_subprocess.PIPE,
                              universal_newlines=False, shell=False, bufsize=0,
                              encoding=None, errors=None, text=None, **kwargs):
        """Run program with args in a child process; returns (transport, protocol)."""
        if shell:
            raise ValueError("shell must be False")
        _check_subprocess_args(universal_newlines, bufsize, text, encoding, errors)
        protocol = protocol_factory()
        transport = await self._make_subprocess_transport(
            protocol, (program,) + args, False, stdin, stdout, stderr, bufsize, **kwargs)
        return transport, protocol

    async def subprocess_shell(self, protocol_factory, cmd, *, stdin=_subprocess.PIPE,
                               stdout=_subprocess.PIPE, stderr=_subprocess.PIPE,
                               universal_newlines=False, shell=True, bufsize=0,
                               encoding=None, errors=None, text=None, **kwargs):
        """Run cmd through the shell in a child process; returns (transport, protocol)."""
        if not isinstance(cmd, (bytes, str)):
            raise ValueError("cmd must be a string")
        if not shell:
            raise ValueError("shell must be True")
        _check_subprocess_args(universal_newlines, bufsize, text, encoding, errors)
        protocol = protocol_factory()
        transport = await self._make_subprocess_transport(
            protocol, cmd, True, stdin, stdout, stderr, bufsize, **kwargs)
        return transport, protocol

    async def _make_subprocess_transport(self, protocol, args, shell, stdin, stdout, stderr,
                                         bufsize, extra=None, **kwargs):
        waiter = aio_Future(loop=self)
        transport = SubprocessTransport(self, protocol, args, shell, stdin, stdout, stderr,
                                        bufsize, waiter=waiter, extra=extra, **kwargs)
        watch = _ChildWatch(self, transport, transport.get_pid())
        watch.start()
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transport.close()
            await transport._wait()
            raise
        return transport

    async def create_connection(self, protocol_factory, host=None, port=None, *, ssl=None,
                                family=0, proto=0, flags=0, sock=None, local_addr=None,
                                server_hostname=None, ssl_handshake_timeout=None,
                                ssl_shutdown_timeout=None, happy_eyeballs_delay=None,
                                interleave=None, all_errors=False):
        """Open a stream connection (TCP); returns (transport, protocol)."""
        if server_hostname is not None and not ssl:
            raise ValueError('server_hostname is only meaningful with ssl')
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError('ssl_handshake_timeout is only meaningful with ssl')
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError('ssl_shutdown_timeout is only meaningful with ssl')
        if server_hostname is None and ssl:
            # asyncio: use the host name unless it was not given (sock=) -- then it must be
            if not host:
                raise ValueError('You must set server_hostname when using ssl without a host')
            server_hostname = host
        if sock is not None:
            _check_ssl_socket(sock)
        if happy_eyeballs_delay is not None and interleave is None:
            interleave = 1
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError('host/port and sock can not be specified at the same time')
            infos = await self._resolve((host, port), family, _SOCK_STREAM, proto, flags)
            laddr_infos = None
            if local_addr is not None:
                laddr_infos = await self._resolve(local_addr, family, _SOCK_STREAM, proto, flags)
            if interleave:
                infos = _interleave_addrinfos(infos, interleave)
            exceptions = []
            if happy_eyeballs_delay is None:
                for addrinfo in infos:
                    try:
                        sock = await self._connect_one(exceptions, addrinfo, laddr_infos)
                        break
                    except OSError:
                        continue
            else:
                sock, _, _ = await _staggered_race(
                    [lambda ai=ai: self._connect_one(exceptions, ai, laddr_infos) for ai in infos],
                    happy_eyeballs_delay, loop=self)
            if sock is None:
                flat = [exc for sub in exceptions for exc in sub]
                try:
                    if all_errors:
                        raise ExceptionGroup("create_connection failed", flat)
                    if len(flat) == 1:
                        raise flat[0]
                    model = str(flat[0])
                    if all(str(exc) == model for exc in flat):
                        raise flat[0]
                    raise OSError('Multiple exceptions: {}'.format(
                        ', '.join(str(exc) for exc in flat)))
                finally:
                    flat = None
                    exceptions = None
        else:
            if sock is None:
                raise ValueError('host and port was not specified and no sock specified')
            if sock.type != _SOCK_STREAM:
                raise ValueError(f'A Stream Socket was expected, got {sock!r}')
        return await self._make_transport(
            sock, protocol_factory, ssl, server_hostname=server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)

    async def _resolve(self, address, family, type_, proto, flags):
        host, port = address[:2]
        info = _ipaddr_info(host, port, family, type_, proto, *address[2:])
        if info is not None:
            return [info]
        infos = await self.getaddrinfo(host, port, family=family, type=type_, proto=proto,
                                       flags=flags)
        if not infos:
            raise OSError(f'getaddrinfo({host!r}) returned empty list')
        return infos

    async def create_server(self, protocol_factory, host=None, port=None, *,
                            family=_socket.AF_UNSPEC, flags=_socket.AI_PASSIVE, sock=None,
                            backlog=100, ssl=None, reuse_address=None, reuse_port=None,
                            keep_alive=None, ssl_handshake_timeout=None,
                            ssl_shutdown_timeout=None, start_serving=True):
        """Listen on host/port (or sock); returns a Server."""
        if isinstance(ssl, bool):
            raise TypeError('ssl argument must be an SSLContext or None')
        if ssl_handshake_timeout is not None and ssl is None:
            raise ValueError('ssl_handshake_timeout is only meaningful with ssl')
        if ssl_shutdown_timeout is not None and ssl is None:
            raise ValueError('ssl_shutdown_timeout is only meaningful with ssl')
        if sock is not None:
            _check_ssl_socket(sock)
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError('host/port and sock can not be specified at the same time')
            if reuse_address is None:
                reuse_address = _os.name == "posix"
            if host == '':
                hosts = [None]
            elif isinstance(host, str) or not isinstance(host, _abc.Iterable):
                hosts = [host]
            else:
                hosts = host
            all_infos = await _tasks.gather(*[
                self._resolve((h, port), family, _SOCK_STREAM, 0, flags) for h in hosts])
            infos = set()
            for lst in all_infos:
                infos.update(lst)
            sockets = []
            completed = False
            try:
                for af, socktype, proto, canonname, sa in infos:
                    try:
                        s = _socket.socket(af, socktype, proto)
                    except OSError:
                        if self._debug:
                            _logger().warning('create_server() failed to create socket.socket'
                                              '(%r, %r, %r)', af, socktype, proto, exc_info=True)
                        continue
                    sockets.append(s)
                    if reuse_address:
                        s.setsockopt(_SOL_SOCKET, _socket.SO_REUSEADDR, True)
                    if reuse_port:
                        _set_reuseport(s)
                    if keep_alive:
                        s.setsockopt(_SOL_SOCKET, _socket.SO_KEEPALIVE, True)
                    if _AF_INET6 is not None and af == _AF_INET6 and hasattr(_socket, 'IPPROTO_IPV6'):
                        s.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, True)
                    try:
                        s.bind(sa)
                    except OSError as err:
                        msg = (f'error while attempting to bind on address {sa!r}: '
                               f'{str(err.strerror).lower()}')
                        if err.errno == _errno.EADDRNOTAVAIL:
                            msg += ' (address not available)'
                        raise OSError(err.errno, msg) from None
                if not sockets:
                    raise OSError('could not bind on any address out of %r' % ([i[4] for i in infos],))
                completed = True
            finally:
                if not completed:
                    for s in sockets:
                        s.close()
        else:
            if sock is None:
                raise ValueError('Neither host/port nor sock were specified')
            if sock.type != _SOCK_STREAM:
                raise ValueError(f'A Stream Socket was expected, got {sock!r}')
            sockets = [sock]
        for s in sockets:
            s.setblocking(False)
        server = Server(self, sockets, protocol_factory, backlog, None, ssl,
                        ssl_handshake_timeout, ssl_shutdown_timeout)
        if start_serving:
            server._start_serving()
            await _asyncio.sleep(0)
        return server

    async def connect_accepted_socket(self, protocol_factory, sock, *, ssl=None,
                                      ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        """Wrap an already accepted connection in a transport; returns (transport, protocol)."""
        if sock.type != _SOCK_STREAM:
            raise ValueError(f'A Stream Socket was expected, got {sock!r}')
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError('ssl_handshake_timeout is only meaningful with ssl')
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError('ssl_shutdown_timeout is only meaningful with ssl')
        _check_ssl_socket(sock)
        return await self._make_transport(
            sock, protocol_factory, ssl, server_side=True,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)

    async def create_unix_connection(self, protocol_factory, path=None, *, ssl=None, sock=None,
                                     server_hostname=None, ssl_handshake_timeout=None,
                                     ssl_shutdown_timeout=None):
        """Open a Unix-socket stream connection; returns (transport, protocol)."""
        if ssl:
            if server_hostname is None:
                raise ValueError('you have to pass server_hostname when using ssl')
        else:
            if server_hostname is not None:
                raise ValueError('server_hostname is only meaningful with ssl')
            if ssl_handshake_timeout is not None:
                raise ValueError('ssl_handshake_timeout is only meaningful with ssl')
            if ssl_shutdown_timeout is not None:
                raise ValueError('ssl_shutdown_timeout is only meaningful with ssl')
        if path is not None:
            if sock is not None:
                raise ValueError('path and sock can not be specified at the same time')
            path = _os.fspath(path)
            sock = _socket.socket(_AF_UNIX, _SOCK_STREAM, 0)
            try:
                sock.setblocking(False)
                await self.sock_connect(sock, path)
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError('no path and sock were specified')
            if sock.family != _AF_UNIX or sock.type != _SOCK_STREAM:
                raise ValueError(f'A UNIX Domain Stream Socket was expected, got {sock!r}')
        return await self._make_transport(
            sock, protocol_factory, ssl, server_hostname=server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)

    async def create_unix_server(self, protocol_factory, path=None, *, sock=None, backlog=100,
                                 ssl=None, ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                                 start_serving=True, cleanup_socket=True):
        """Listen on a Unix socket path (or sock); returns a Server."""
        import stat as _stat
        if isinstance(ssl, bool):
            raise TypeError('ssl argument must be an SSLContext or None')
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError('ssl_handshake_timeout is only meaningful with ssl')
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError('ssl_shutdown_timeout is only meaningful with ssl')
        unix_path = None
        if path is not None:
            if sock is not None:
                raise ValueError('path and sock can not be specified at the same time')
            path = _os.fspath(path)
            sock = _socket.socket(_AF_UNIX, _SOCK_STREAM)
            # a stale socket file from a dead server: remove it (never a regular file)
            if path[0] not in (0, '\x00'):
                try:
                    if _stat.S_ISSOCK(_os.stat(path).st_mode):
                        _os.remove(path)
                except FileNotFoundError:
                    pass
                except OSError as err:
                    _logger().error('Unable to check or remove stale UNIX socket %r: %r',
                                    path, err)
            try:
                sock.bind(path)
            except OSError as exc:
                sock.close()
                if exc.errno == _errno.EADDRINUSE:
                    raise OSError(_errno.EADDRINUSE, f'Address {path!r} is already in use') from None
                raise
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError('path was not specified, and no sock specified')
            if sock.family != _AF_UNIX or sock.type != _SOCK_STREAM:
                raise ValueError(f'A UNIX Domain Stream Socket was expected, got {sock!r}')
        if cleanup_socket:
            # as 3.13: the socket file goes away with the server -- unless it was replaced by
            # another file meanwhile (same path, other inode)
            bound = sock.getsockname()
            if bound and bound[0] not in (0, '\x00'):
                try:
                    unix_path = (bound, _os.stat(bound).st_ino)
                except FileNotFoundError:
                    pass
        sock.setblocking(False)
        server = Server(self, [sock], protocol_factory, backlog, unix_path, ssl,
                        ssl_handshake_timeout, ssl_shutdown_timeout)
        if start_serving:
            server._start_serving()
            await _asyncio.sleep(0)
        return server

    # --- introspection ----------------------------------------------------------------------------

    @property
    def buffer_pool(self):
        """The BufferPool this loop's transports receive into (stats() for usage)."""
        return self._rpool

    @property
    def backend(self):
        """'epoll', 'kqueue' or 'io_uring': the poller this loop runs on."""
        if self._poller != NULL and eng_poller_kind(<eng_poller*>self._poller) == ENG_BACKEND_IO_URING:
            return 'io_uring'
        return _DEFAULT_BACKEND

    def _ring_stats(self):
        """io_uring receive counters (for tests and benchmarks): None unless this loop reads
        stream transports by completion receives."""
        cdef unsigned long long st[10]
        if not self._uring_recv or self._poller == NULL:
            return None
        eng_poller_recv_stats(<eng_poller*>self._poller, st)
        return {'buffers': st[0], 'buffer_size': st[1], 'free': st[2], 'completions': st[3],
                'enobufs': st[4], 'bytes': st[5], 'rearmed': st[6], 'sends': self._uring_send,
                'accepts': st[8] if self._uring_accept else None, 'accept_queue_full': st[9],
                'pool_in_use': self._ring_pool.stats()['in_use']}

    def _stats(self):
        """Internal counters (for tests and debugging)."""
        cdef int fd, nfds = 0
        if self._fds != NULL:
            for fd in range(self._fds_cap):
                if self._fds[fd].reader != NULL or self._fds[fd].writer != NULL:
                    nfds += 1
        return {'ready': self._ready.count, 'timers': self._heap_n - self._heap_cancelled,
                'fds': nfds, 'poller_updates': self._poller_updates,
                'poll_capacity': (<eng_poller*>self._poller).capacity, 'idle_watchers': len(self._idles)}


cdef _format_handle(Handle h):
    cb = h._callback
    owner = getattr(cb, '__self__', None)
    if isinstance(owner, _asyncio.Task):
        return repr(owner)
    return str(h)


def _run_until_complete_cb(fut):
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            # the loop stops anyway: the exception propagates from run_forever
            return
    fut.get_loop().stop()


cdef int _check_subprocess_args(universal_newlines, bufsize, text, encoding, errors) except -1:
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if bufsize != 0:
        raise ValueError("bufsize must be 0")
    if text:
        raise ValueError("text must be False")
    if encoding is not None:
        raise ValueError("encoding must be None")
    if errors is not None:
        raise ValueError("errors must be None")
    return 0


class _SendfileDrain(_asyncio.Protocol):
    """Stands in for a transport's protocol during loop.sendfile()'s read/write fallback, so
    the fallback can wait for pause_writing/resume_writing; restore() puts the protocol back."""

    def __init__(self, loop, transport):
        self._loop = loop
        self._transport = transport
        self._proto = transport.get_protocol()
        self._should_resume_reading = transport.is_reading()
        self._should_resume_writing = transport._protocol_paused
        transport.pause_reading()
        transport.set_protocol(self)
        self._exc = None
        # a transport above its high-water mark: wait for resume_writing before the first write
        self._write_ready = loop.create_future() if self._should_resume_writing else None

    async def write(self, data):
        if self._exc is not None:
            raise self._exc
        if self._write_ready is not None:
            await self._write_ready
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        self._transport.write(data)
        if self._write_ready is not None:
            await self._write_ready

    def pause_writing(self):
        if self._write_ready is None:
            self._write_ready = self._loop.create_future()

    def resume_writing(self):
        fut = self._write_ready
        self._write_ready = None
        if fut is not None and not fut.done():
            fut.set_result(None)

    def connection_lost(self, exc):
        self._exc = exc if exc is not None else ConnectionError("Connection closed by peer")
        fut = self._write_ready
        self._write_ready = None
        if fut is not None and not fut.done():
            fut.set_exception(self._exc)
        self._proto.connection_lost(exc)

    def data_received(self, data):
        raise RuntimeError("Invalid state: reading should be paused")

    def eof_received(self):
        raise RuntimeError("Invalid state: reading should be paused")

    async def restore(self):
        self._transport.set_protocol(self._proto)
        if self._should_resume_reading:
            self._transport.resume_reading()
        fut = self._write_ready
        self._write_ready = None
        if fut is not None and not fut.done():
            fut.cancel()
        if self._should_resume_writing and not self._transport._protocol_paused:
            self._proto.resume_writing()


async def _connected(waiter, transport, protocol):
    """(transport, protocol) once the waiter says the new transport is connected (connection
    made, TLS handshake done); a failure or cancellation closes the transport."""
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport, protocol


def _set_result_unless_cancelled(fut, result):
    if fut.cancelled():
        return
    fut.set_result(result)


include "fastcall.pxi"
