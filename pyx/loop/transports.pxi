# Stream transports (included by loop.pyx into engine._loop; the classes are declared in
# pyx/engine/_loop.pxd): _FdTransport, what every fd-backed transport shares (the datagram and
# pipe transports of endpoints.pxi derive from it too), SocketTransport over TCP and Unix
# sockets, and the Server object that create_server returns. The accept loop itself is
# Loop._accept_connection in loop.pyx.
#
# A SocketTransport sits in the fd table as both reader and writer (kind KIND_TRANSPORT); the
# dispatch table calls _on_readable / _on_writable directly, with no Handle per event.
# Writes are tried at once; only what the kernel did not take is queued (bytes are queued without
# copying, mutable buffers are copied because the caller may reuse them) and flushed with one
# sendmsg(2) -- writev semantics -- per writable event. MSG_NOSIGNAL is passed on every send where
# the platform has it, so a peer that went away gives EPIPE, never SIGPIPE.
#
# TLS is layered on top (sslproto.pxi): SSLProtocol (ssl.MemoryBIO, compiled, asyncio's semantics)
# runs as the protocol of a SocketTransport and writes to it by _write() directly.

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.memoryview cimport PyMemoryView_GET_BUFFER, PyMemoryView_FromObject
from posix.uio cimport iovec


cdef extern from "sys/socket.h" nogil:
    ssize_t c_recv "recv" (int fd, void *buf, size_t n, int flags)
    ssize_t c_send "send" (int fd, const void *buf, size_t n, int flags)



cdef object aio_BufferedProtocol = _asyncio.BufferedProtocol
cdef object _TransportSocket = _asyncio.trsock.TransportSocket
cdef object _SendfileMode = _asyncio.constants._SendfileMode
cdef object _staggered_race = _asyncio.staggered.staggered_race
cdef object _interleave_addrinfos = _base_events._interleave_addrinfos
cdef object _set_reuseport = _base_events._set_reuseport
cdef int _LOG_CONNLOST_WRITES = _asyncio.constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES
cdef double _ACCEPT_RETRY_DELAY = _asyncio.constants.ACCEPT_RETRY_DELAY
cdef int _MSG_NOSIGNAL = getattr(_socket, 'MSG_NOSIGNAL', 0)
cdef int _MSG_WAITALL = getattr(_socket, 'MSG_WAITALL', 0)
cdef object _AF_UNIX = getattr(_socket, 'AF_UNIX', None)
# bytes asked of recv() per readable event. 128 KiB, not asyncio's 256 KiB: measured with
# perf/bench_net.py proto_echo_100k (interleaved with uvloop), 256 KiB reads made the kernel's
# copy into the buffer ~3x slower per byte (perf: _copy_to_iter; cache misses), 0.58x uvloop;
# 64 KiB needs two reads per 100 KiB message, 0.95x; 128 KiB 1.06x. 1 KiB messages: no change.
cdef Py_ssize_t READ_MAX = 128 * 1024
# bytes taken from io_uring's receive queue per readable event: under 128 KiB, glibc's mmap
# threshold (a bytes object of READ_MAX would be mmap'd and page-faulted in for every read; the
# queue often holds that much, where one recv(2) returns less); see docs/pages/platforms.md
cdef Py_ssize_t READ_RING_MAX = 128 * 1024 - 1024
# io_uring: a write of at least this many bytes to a transport with nothing queued or in flight
# is sent at once by send(2), as under epoll, not held for the iteration's send request: for a
# large write the copy dominates the system call, and the object is released when write()
# returns instead of living until the completion (perf/bench_backends.py echo_100k_c64: with
# 64 connections' worth of 100 KiB objects alive across an iteration, glibc trimmed and regrew
# its heap every iteration, page-faulting it in again: 66 us of server CPU per message before,
# 32 us with direct sends; epoll 20 us. results/backends-20261204T203232Z-2ae39e3.json)
cdef Py_ssize_t URING_SEND_DIRECT_MIN = 16 * 1024
cdef Py_ssize_t WRITE_HIGH_DEFAULT = 64 * 1024  # asyncio's default high-water mark
cdef Py_ssize_t IOV_MAX_BATCH = 512             # buffers per sendmsg() call


cdef object _NOT_QUEUED = object()     # _read_ring: the fd is read by recv(2)


cdef int _release_view(object view) except -1:
    """Release a memoryview lent to data_received(): what the protocol kept of it (a slice, a
    write() queued without a copy) holds the memory itself; a buffer exported from the view
    (numpy.frombuffer...) makes release() refuse, and then that view stays."""
    try:
        view.release()
    except BufferError:
        pass
    return 0


cdef inline bint _is_lent_view(object data):
    """A view of a receive buffer lent to a protocol (data_received_memoryview): queued for the
    iteration's send request rather than sent at once, so that the pieces a protocol echoes
    leave together, from the buffers themselves (no copy, and no heap churn: the memory is
    the ring's pool's)."""
    return (type(data) is memoryview
            and type(<object>PyMemoryView_GET_BUFFER(data).obj) is _LentBuffer)


cdef inline int _check_bytes_like(object data) except -1:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f'data argument must be a bytes-like object, '
                        f'not {type(data).__name__!r}')
    return 0


cdef inline Py_ssize_t _bytes_like_size(object data) except -1:
    """The size in bytes of what write() may be given (TypeError for anything else): bytes,
    bytearray and memoryview (of any format: its nbytes) are read from their C structs, with
    no Python-level len() or attribute lookup."""
    cdef type tp = type(data)
    if tp is bytes:
        return PyBytes_GET_SIZE(data)
    if tp is memoryview:
        return PyMemoryView_GET_BUFFER(data).len
    _check_bytes_like(data)
    if isinstance(data, memoryview):
        return PyMemoryView_GET_BUFFER(data).len
    return len(data)


cdef list _repr_head(_FdTransport t):
    """The start of every transport's repr: type, closed/closing, fd."""
    info = [type(t).__name__]
    if t._sock is None:
        info.append('closed')
    elif t._closing:
        info.append('closing')
    info.append(f'fd={t._fd}')
    return info


cdef _set_nodelay(sock):
    if (sock.family in (_AF_INET, _AF_INET6) and sock.type == _SOCK_STREAM
            and sock.proto == _socket.IPPROTO_TCP):
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)


@cython.no_gc_clear
cdef class _FdTransport:
    """What every fd-backed transport shares: fd-table registration (kind KIND_TRANSPORT, so the
    dispatch table calls _on_readable/_on_writable directly), protocol, extra info, reading
    state and asyncio's write flow control (water marks, pause_writing/resume_writing)."""
    # fields and C methods: declared in pyx/engine/_loop.pxd

    def __init__(self, *args, **kwargs):
        raise TypeError("transports are created by the event loop")

    cdef int _init_base(self, Loop loop, object sock, int fd, object protocol) except -1:
        self._loop = loop
        self._sock = sock
        self._fd = fd
        self._extra = {}
        self._high = WRITE_HIGH_DEFAULT
        self._low = WRITE_HIGH_DEFAULT // 4
        self.set_protocol(protocol)
        loop._fd_ensure(fd)
        return 0

    def __repr__(self):
        info = _repr_head(self)
        if self._sock is not None:
            info.append('read=' + ('polling' if self._read_registered else 'idle'))
            info.append(f'write=<{"polling" if self._write_registered else "idle"}, '
                        f'bufsize={self._wsize}>')
        return '<' + ' '.join(info) + '>'

    def __del__(self):
        if self._sock is not None:
            _warnings.warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            if self._uring_recv and self._loop is not None and not self._loop._closed:
                self._loop._fd_forget(self._fd)
            self._sock.close()
            self._sock = None

    cdef int _on_readable(self) except -1:
        return 0

    cdef int _on_writable(self) except -1:
        return 0

    cdef object _read_chunk(self, bint is_socket):
        """One read of up to READ_MAX bytes into a chunk of the loop's buffer pool, copied into
        the bytes object returned (the chunk goes back before any Python code runs): b"" at
        EOF, None when nothing is there (EAGAIN/EINTR); any other error raises its OSError."""
        cdef BufferPool pool
        cdef char *buf
        cdef ssize_t n
        cdef int err = 0
        if self._uring_recv:
            data = self._read_ring()
            if data is not _NOT_QUEUED:
                return data
        pool = <BufferPool>self._loop._rpool
        buf = pool._take()
        try:
            if is_socket:
                n = c_recv(self._fd, buf, READ_MAX, 0)
            else:
                n = read(self._fd, buf, READ_MAX)
            if n > 0:
                return PyBytes_FromStringAndSize(buf, n)
            err = errno
        finally:
            pool._give(buf)
        if n == 0:
            return b""
        if err == EAGAIN or err == EINTR:
            return None
        raise _oserror(-err)                  # the errno's OSError subclass

    cdef object _read_ring(self):
        """_read_chunk from the poller's receive queue (io_uring): up to READ_MAX queued bytes
        copied into the bytes returned, b"" at EOF, None when nothing is queued yet;
        _NOT_QUEUED when the fd is not read by completion receives."""
        cdef eng_poller *p = <eng_poller*>self._loop._poller
        cdef ssize_t n
        if p == NULL:                            # the loop is closed
            return _NOT_QUEUED
        n = eng_poller_recv_avail(p, self._fd)
        if n > 0:
            if n > READ_RING_MAX:
                n = READ_RING_MAX
            data = PyBytes_FromStringAndSize(NULL, n)
            eng_poller_recv_copy(p, self._fd, PyBytes_AS_STRING(data), <size_t>n)
            return data
        if n == 0:
            return b""
        if n == -EAGAIN:
            return None
        if n == -EOPNOTSUPP:
            return _NOT_QUEUED
        raise _oserror(<int>n)

    cdef int _read_event(self, bint is_socket, str what) except -1:
        """A readable event of a Protocol-driven transport: read once, hand the bytes to
        data_received(); returns 1 at EOF (the caller decides what EOF means), else 0.
        Under io_uring's completion receives, what is queued is all handed over in this event
        (in READ_RING_MAX pieces, while the protocol keeps reading): the buffers holding it go
        back to the kernel at once, instead of starving the ring across iterations.
        A protocol with data_received_memoryview = True gets a read-only memoryview, released
        when the call returns: of the kernel's receive buffer itself under io_uring
        (_read_lent), of the bytes read otherwise."""
        cdef int r
        cdef bint lend
        if self._lend and self._uring_recv:
            r = self._read_lent()
            if r != -1:
                return r
        while True:
            try:
                data = self._read_chunk(is_socket)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, f'Fatal read error on {what} transport')
                return 0
            if data is None:
                return 0
            if not data:
                return 1
            lend = self._lend
            if lend:
                data = PyMemoryView_FromObject(data)
            try:
                self._protocol.data_received(data)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, 'Fatal error: protocol.data_received() call failed.')
                return 0
            finally:
                if lend:
                    _release_view(data)
            if not (self._uring_recv and self._read_registered and not self._closing
                    and not self._conn_lost):
                return 0

    cdef int _read_lent(self) except -2:
        """_read_event for a protocol that takes memoryviews, under io_uring's completion
        receives: each queued buffer is lent to data_received() as it is, no copy. When the
        call returns, a buffer no view still sees goes back to the kernel; one that is still
        seen (a slice kept, a write() queued without a copy) stays the view's, and the kernel
        gets another chunk of the ring's pool under its id (when the pool has none left, the
        bytes are copied first instead). Returns 1 at EOF, 0 otherwise, -1 when the fd is not
        read by completion receives."""
        cdef Loop loop = self._loop
        cdef eng_poller *p
        cdef ssize_t n
        cdef size_t k
        cdef char *ptr
        cdef char *base
        cdef unsigned bid = 0
        cdef BufferPool pool
        cdef _LentBuffer lent
        while True:
            p = <eng_poller*>loop._poller
            if p == NULL:
                return -1
            n = eng_poller_recv_avail(p, self._fd)
            if n == -EOPNOTSUPP:
                return -1
            if n == -EAGAIN:
                return 0
            if n == 0:
                return 1
            if n < 0:
                self._fatal_error(_oserror(<int>n), 'Fatal read error on socket transport')
                return 0
            pool = <BufferPool>loop._ring_pool
            k = eng_poller_recv_lend(p, self._fd, &ptr, &bid)
            lent = _LentBuffer.__new__(_LentBuffer)
            if pool._can_take():
                lent._ptr = ptr
                lent._size = <Py_ssize_t>k
            else:
                # no memory to put in the kernel's place if a view were kept: a copy
                data = PyBytes_FromStringAndSize(ptr, <Py_ssize_t>k)
                eng_poller_recv_return(p, bid, NULL)
                lent = None
            view = PyMemoryView_FromObject(lent if lent is not None else data)
            try:
                self._protocol.data_received(view)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, 'Fatal error: protocol.data_received() call failed.')
                return 0
            finally:
                _release_view(view)
                if lent is not None:
                    self._give_lent(lent, bid)
            if not (self._read_registered and not self._closing and not self._conn_lost):
                return 0
            if not self._lend:       # set_protocol() to one that takes bytes: on with those
                return self._read_event(True, 'socket')

    cdef int _give_lent(self, object lent_obj, unsigned bid) except -1:
        cdef _LentBuffer lent = <_LentBuffer>lent_obj
        cdef eng_poller *p = <eng_poller*>self._loop._poller
        cdef BufferPool pool = <BufferPool>self._loop._ring_pool
        cdef char *swap = NULL
        cdef char *base
        if lent._exports:
            swap = pool._take()      # _can_take() said yes, and only this method takes from it
        if p == NULL:                # the loop closed meanwhile: nothing to give back to
            if swap != NULL:
                pool._give(swap)
            lent._ptr = NULL
            return 0
        base = eng_poller_recv_return(p, bid, swap)
        if swap != NULL:
            lent._chunk = base       # the view's now; back to the pool when the last view goes
            lent._pool = pool
        else:
            lent._ptr = NULL         # a view made from it later refuses (ValueError)
        return 0

    # --- fd registration ----------------------------------------------------------------------

    cdef int _watch(self, int which, bint on) except -1:
        cdef Loop loop = self._loop
        if loop is None or loop._closed:
            return 0
        if which == ENG_EV_READ:
            if on == self._read_registered:
                return 0
            self._read_registered = on
        else:
            if on == self._write_registered:
                return 0
            self._write_registered = on
        if on:
            old = loop._fd_set(self._fd, which, self, KIND_TRANSPORT)
            if isinstance(old, Handle):
                (<Handle>old).cancel()
        else:
            loop._fd_clear(self._fd, which)
        return 0

    def _start_reading(self):
        if not self._closing and not self._paused and self._sock is not None:
            self._watch(ENG_EV_READ, True)

    # --- asyncio.BaseTransport ------------------------------------------------------------------

    def get_extra_info(self, name, default=None):
        return self._extra.get(name, default)

    def is_closing(self):
        return self._closing

    def set_protocol(self, protocol):
        self._protocol = protocol
        self._protocol_connected = True

    def get_protocol(self):
        return self._protocol

    def is_reading(self):
        return not self._paused and not self._closing

    def pause_reading(self):
        if not self.is_reading():
            return
        self._paused = True         # the fd is unwatched lazily (see _dispatch_transport)

    def resume_reading(self):
        if self._closing or not self._paused:
            return
        self._paused = False
        self._watch(ENG_EV_READ, True)

    # --- write flow control ---------------------------------------------------------------------

    def get_write_buffer_size(self):
        return self._wsize

    def get_write_buffer_limits(self):
        return (self._low, self._high)

    def set_write_buffer_limits(self, high=None, low=None):
        if high is None:
            high = WRITE_HIGH_DEFAULT if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f'high ({high!r}) must be >= low ({low!r}) must be >= 0')
        self._high = high
        self._low = low
        self._maybe_pause_protocol()

    cdef int _maybe_pause_protocol(self) except -1:
        if self._wsize <= self._high or self._protocol_paused:
            return 0
        self._protocol_paused = True
        if self._send_inflight and not self._write_registered:
            # io_uring: resume_writing() comes from the completion of the send in flight
            self._watch(ENG_EV_WRITE, True)
        return self._tell_protocol(True)

    cdef int _maybe_resume_protocol(self) except -1:
        if self._protocol_paused and self._wsize <= self._low:
            self._protocol_paused = False
            return self._tell_protocol(False)
        return 0

    cdef int _tell_protocol(self, bint pause) except -1:
        # protocol.pause_writing() / resume_writing(); what they raise goes to the loop's
        # exception handler, as asyncio's
        try:
            if pause:
                self._protocol.pause_writing()
            else:
                self._protocol.resume_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                'message': ('protocol.pause_writing() failed' if pause
                            else 'protocol.resume_writing() failed'),
                'exception': exc, 'transport': self, 'protocol': self._protocol})
        return 0

    # --- teardown -----------------------------------------------------------------------------

    def close(self):
        """Stop reading; the connection is lost once what is queued has been written (the
        socket and datagram transports; a read pipe has nothing to write; the write pipe has
        its own close)."""
        if self._closing:
            return
        self._closing = True
        self._watch(ENG_EV_READ, False)
        if not self._writes_pending():
            self._conn_lost += 1
            self._watch(ENG_EV_WRITE, False)
            self._loop.call_soon(self._call_connection_lost, None)

    cdef int _writes_pending(self) except -1:
        return 0

    def abort(self):
        self._close_now(None)

    def _force_close(self, exc):
        # asyncio's SSLProtocol calls this on the transport under it
        self._close_now(exc)

    cdef int _drop_write_buffer(self) except -1:
        self._wsize = 0
        return 0

    cdef int _write_after_lost(self, str warning) except -1:
        # a write after the connection was lost is dropped; asyncio warns once there were many
        if self._conn_lost >= _LOG_CONNLOST_WRITES:
            _logger().warning(warning)
        self._conn_lost += 1
        return 0

    cdef int _fatal_error(self, exc, str message) except -1:
        if isinstance(exc, OSError):
            if self._loop._debug:
                _logger().debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler({
                'message': message, 'exception': exc,
                'transport': self, 'protocol': self._protocol})
        self._close_now(exc)
        return 0

    cdef int _close_now(self, exc) except -1:
        if self._conn_lost:
            return 0
        if self._wsize:
            self._drop_write_buffer()
            self._watch(ENG_EV_WRITE, False)
        if not self._closing:
            self._closing = True
            self._watch(ENG_EV_READ, False)
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc)
        return 0

    cdef int _detach(self) except -1:
        return 0

    cdef int _release_waiters(self) except -1:
        return 0

    def _call_connection_lost(self, exc):
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            self._watch(ENG_EV_READ, False)
            self._watch(ENG_EV_WRITE, False)
            self._release_waiters()
            if self._uring_recv:
                self._loop._fd_forget(self._fd)
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            self._protocol = None
            self._detach()


@cython.no_gc_clear
cdef class SocketTransport(_FdTransport):
    """asyncio.Transport for stream sockets (TCP, Unix)."""
    _start_tls_compatible = True
    # fields and C methods: declared in pyx/engine/_loop.pxd

    _sendfile_compatible = _SendfileMode.TRY_NATIVE

    @staticmethod
    cdef SocketTransport new(Loop loop, object sock, object protocol, object waiter,
                             object extra, object server):
        cdef SocketTransport t = SocketTransport.__new__(SocketTransport)
        t._wbuf = []
        t._init_base(loop, sock, sock.fileno(), protocol)
        t._uring_recv = loop._uring_recv
        t._uring_send = loop._uring_send
        # extra info is looked up when first asked for (and before the socket closes): an
        # idle connection carries no tuples or wrapper objects it may never need
        if extra:
            t._extra.update(extra)
        t._server = server
        if server is not None:
            server._attach(t)
        _set_nodelay(sock)
        loop.call_soon(protocol.connection_made, t)
        loop.call_soon(t._start_reading)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter, None)
        return t

    def get_extra_info(self, name, default=None):
        if name in self._extra:
            return self._extra[name]
        if name in ('socket', 'sockname', 'peername') and self._sock is not None:
            self._fill_extra()
            return self._extra[name]
        return default

    cdef int _fill_extra(self) except -1:
        sock = self._sock
        if 'socket' not in self._extra:
            self._extra['socket'] = _TransportSocket(sock)
        if 'sockname' not in self._extra:
            try:
                self._extra['sockname'] = sock.getsockname()
            except OSError:
                self._extra['sockname'] = None
        if 'peername' not in self._extra:
            try:
                self._extra['peername'] = sock.getpeername()
            except OSError:
                self._extra['peername'] = None
        return 0

    def set_protocol(self, protocol):
        self._buffered = isinstance(protocol, aio_BufferedProtocol)
        self._lend = (not self._buffered
                      and getattr(protocol, 'data_received_memoryview', False) is True)
        self._protocol = protocol
        self._protocol_connected = True

    cdef int _writes_pending(self) except -1:
        # under completion sends, a send request that completed is accounted for first, and
        # whoever waits for the rest (close, write_eof, drain) is told through a WRITE event
        if self._uring_send:
            self._send_collect()
            if self._wbuf and not self._write_registered:
                self._watch(ENG_EV_WRITE, True)
        return 1 if self._wbuf else 0

    def get_write_buffer_size(self):
        if self._send_inflight:
            self._send_collect()
        return self._wsize

    # --- reading ------------------------------------------------------------------------------

    cdef int _on_readable(self) except -1:
        if self._conn_lost:
            return 0
        if self._buffered:
            return self._read_buffered()
        if self._read_event(True, 'socket'):
            return self._on_eof()
        return 0

    cdef int _read_buffered(self) except -1:
        try:
            buf = self._protocol.get_buffer(-1)
            if not len(buf):
                raise RuntimeError('get_buffer() returned an empty buffer')
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal error: protocol.get_buffer() call failed.')
            return 0
        try:
            if self._uring_recv:
                nbytes = self._read_ring_into(buf)
                if nbytes < 0:
                    return 0                     # nothing queued yet
            else:
                nbytes = self._sock.recv_into(buf)
        except (BlockingIOError, InterruptedError):
            return 0
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal read error on socket transport')
            return 0
        if not nbytes:
            return self._on_eof()
        try:
            self._protocol.buffer_updated(nbytes)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal error: protocol.buffer_updated() call failed.')
        return 0

    cdef Py_ssize_t _read_ring_into(self, object buf) except -2:
        """recv_into(buf) from the poller's receive queue: bytes copied, 0 at EOF, -1 when
        nothing is queued yet (recv_into itself when the fd is not read by receives)."""
        cdef eng_poller *p = <eng_poller*>self._loop._poller
        cdef ssize_t n
        cdef Py_buffer view
        if p == NULL:                            # the loop is closed
            return self._sock.recv_into(buf)
        n = eng_poller_recv_avail(p, self._fd)
        if n > 0:
            PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
            try:
                if n > view.len:
                    n = view.len
                eng_poller_recv_copy(p, self._fd, <char*>view.buf, <size_t>n)
            finally:
                PyBuffer_Release(&view)
            return n
        if n == 0:
            return 0
        if n == -EAGAIN:
            return -1
        if n == -EOPNOTSUPP:
            return self._sock.recv_into(buf)
        raise _oserror(<int>n)

    cdef int _on_eof(self) except -1:
        if self._loop._debug:
            _logger().debug("%r received EOF", self)
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Fatal error: protocol.eof_received() call failed.')
            return 0
        if keep_open:
            # we're keeping the connection open so the protocol can write; no more reading
            self._watch(ENG_EV_READ, False)
        else:
            self.close()
        return 0

    # --- writing ------------------------------------------------------------------------------

    def write(self, data):
        if self._sendfile_busy:
            raise RuntimeError('unable to write; sendfile is in progress')
        self._write(data)

    cdef int _write(self, object data) except -1:
        cdef Py_ssize_t n = 0, size
        cdef Py_buffer view
        size = _bytes_like_size(data)
        if self._eof:
            raise RuntimeError('Cannot call write() after write_eof()')
        if not size:
            return 0
        if self._conn_lost:
            self._write_after_lost('socket.send() raised exception.')
            return 0
        if self._uring_send and self._loop._poller != NULL:
            # io_uring: queued, and sent by one send request per connection at a time, submitted
            # with the iteration's wait (what else was written meanwhile goes in the next one).
            # Its completion is taken when the transport next writes (or is asked about its
            # buffer); a WRITE event is asked for only when something waits on it
            if self._send_inflight:
                self._send_collect()
                if self._conn_lost:
                    return 0
            if (size >= URING_SEND_DIRECT_MIN and not self._wbuf and not self._send_inflight
                    and not _is_lent_view(data)):
                try:
                    n = self._send_now(data)
                except (BlockingIOError, InterruptedError):
                    n = 0
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._fatal_error(exc, 'Fatal write error on socket transport')
                    return 0
                self._sent_total += n
                if n == size:
                    return 0
            try:
                if type(data) is not bytes:
                    # a buffer that is not C-contiguous: BufferError, as on the send(2) path
                    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
                    PyBuffer_Release(&view)
                self._queue(data, n, size)
            except BufferError as exc:
                self._fatal_error(exc, 'Fatal write error on socket transport')
                return 0
            if not self._send_inflight:
                self._send_soon()
            elif not self._write_registered:
                self._watch(ENG_EV_WRITE, True)  # the rest goes once the one in flight is done
            self._maybe_pause_protocol()
            return 0
        if not self._wbuf:
            try:
                n = self._send_now(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, 'Fatal write error on socket transport')
                return 0
            self._sent_total += n
            if n == size:
                return 0
            self._watch(ENG_EV_WRITE, True)
        self._queue(data, n, size)
        self._maybe_pause_protocol()
        return 0

    cdef Py_ssize_t _send_now(self, object data) except -1:
        # one send(2) straight from the object's memory: bytes directly, any other contiguous
        # buffer (bytearray, memoryview: asyncpg writes memoryviews of its WriteBuffer) through
        # the buffer protocol -- not through the Python socket's send() method, which parses
        # its arguments and sets up its own buffer and timeout handling on every call
        cdef ssize_t r
        cdef int err = 0
        cdef Py_buffer view
        if type(data) is bytes:
            r = c_send(self._fd, PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data),
                       _MSG_NOSIGNAL)
            if r < 0:
                err = errno
        else:
            # (a buffer that is not C-contiguous raises BufferError, as socket.send() does)
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            r = c_send(self._fd, view.buf, <size_t>view.len, _MSG_NOSIGNAL)
            if r < 0:
                err = errno
            PyBuffer_Release(&view)
        if r < 0:
            if err == EAGAIN or err == EINTR:
                return 0
            raise _oserror(-err)                  # the errno's OSError subclass
        return r

    cdef int _queue(self, object data, Py_ssize_t start, Py_ssize_t size) except -1:
        # bytes and read-only views (of bytes, of a read-only mmap...) can't change: queue them
        # (or a view of their rest) without copying. Writable buffers may be reused by the
        # caller as soon as write() returns: those are copied.
        if isinstance(data, bytes):
            self._wbuf.append(memoryview(data)[start:] if start else data)
        elif isinstance(data, memoryview) and PyMemoryView_GET_BUFFER(data).readonly:
            self._wbuf.append((<object>data).cast('B')[start:])
        else:
            self._wbuf.append(bytes(memoryview(data).cast('B')[start:]))
        self._wsize += size - start
        return 0

    def writelines(self, list_of_data):
        if self._eof:
            raise RuntimeError('Cannot call writelines() after write_eof()')
        if self._conn_lost:
            for data in list_of_data:
                self.write(data)
            return
        if self._send_inflight:
            self._send_collect()
        was_empty = not self._wbuf
        for data in list_of_data:
            size = _bytes_like_size(data)
            if size:
                self._queue(data, 0, size)
        if self._uring_send and self._loop._poller != NULL:
            if self._wbuf and not self._send_inflight:
                self._send_soon()
            elif self._wbuf and not self._write_registered:
                self._watch(ENG_EV_WRITE, True)
        elif was_empty and self._wbuf:
            self._on_writable()                  # one sendmsg() for the lot
            if self._wbuf:
                self._watch(ENG_EV_WRITE, True)
        self._maybe_pause_protocol()

    cdef int _send_soon(self) except -1:
        """io_uring: the queued buffers leave in one send request built just before the loop
        next polls (Loop._flush_sends), with everything else written until then."""
        if not self._send_queued:
            self._send_queued = True
            self._loop._send_pending.append(self)
        return 0

    cdef int _submit_send(self) except -1:
        """io_uring: one send request for the queued buffers (up to IOV_MAX_BATCH of them). They
        stay in _wbuf, alive and unchanged, until its completion comes to _on_writable."""
        cdef eng_poller *p = <eng_poller*>self._loop._poller
        cdef Py_ssize_t i, n = len(self._wbuf)
        cdef iovec *iov
        cdef Py_buffer *pb
        cdef int rc
        if n > IOV_MAX_BATCH:
            n = IOV_MAX_BATCH
        iov = eng_poller_send_iov(p, self._fd, <int>n)
        if iov == NULL:
            raise MemoryError()
        for i in range(n):
            item = self._wbuf[i]
            if type(item) is bytes:
                iov[i].iov_base = PyBytes_AS_STRING(item)
                iov[i].iov_len = <size_t>PyBytes_GET_SIZE(item)
            else:                                # _queue's memoryviews are C-contiguous bytes
                pb = PyMemoryView_GET_BUFFER(item)
                iov[i].iov_base = pb.buf
                iov[i].iov_len = <size_t>pb.len
        # MSG_WAITALL: io_uring retries a short send of a stream socket until all is sent, so
        # a completion is all or an error, never a remainder that would wait for a next write
        rc = eng_poller_send(p, self._fd, <int>n, _MSG_NOSIGNAL | _MSG_WAITALL)
        if rc < 0:
            raise _oserror(rc)
        self._send_inflight = True
        if self._protocol_paused and not self._write_registered:
            self._watch(ENG_EV_WRITE, True)      # resume_writing() comes from its completion
        return 0

    cdef int _send_collect(self) except -1:
        """io_uring: account for the send request in flight if it completed (the bytes it sent
        leave _wbuf); an error is fatal, as send(2)'s."""
        cdef ssize_t res
        if not self._send_inflight:
            return 0
        if self._loop._poller == NULL:
            # the loop closed, and its ring with it: the request ended there
            self._send_inflight = False
            return 0
        if not eng_poller_send_result(<eng_poller*>self._loop._poller, self._fd, &res):
            return 0
        self._send_inflight = False
        if self._conn_lost or not self._wbuf:
            return 0
        if res == -EAGAIN or res == -EINTR:
            res = 0
        if res < 0:
            self._watch(ENG_EV_WRITE, False)
            del self._wbuf[:]
            self._wsize = 0
            self._fatal_error(_oserror(<int>res), 'Fatal write error on socket transport')
            return 0
        return self._consume_sent(res)

    cdef int _consume_sent(self, Py_ssize_t n) except -1:
        """n bytes of _wbuf's head were sent."""
        cdef Py_ssize_t ln
        self._wsize -= n
        self._sent_total += n
        while n:
            first = self._wbuf[0]
            ln = _bytes_like_size(first)
            if n >= ln:
                n -= ln
                del self._wbuf[0]
            else:
                self._wbuf[0] = memoryview(first).cast('B')[n:]
                n = 0
        self._maybe_resume_protocol()
        return 0

    cdef int _on_writable(self) except -1:
        cdef Py_ssize_t n
        if self._uring_send and self._loop._poller != NULL:
            # a WRITE event under completion sends: the send request in flight completed
            self._send_collect()
            if self._conn_lost or self._send_inflight:
                return 0
            if self._wbuf:
                self._submit_send()              # the rest, and what was written meanwhile
                return 0
            return self._drained_now()
        if self._conn_lost or not self._wbuf:
            return 0
        try:
            n = self._sock.sendmsg(self._wbuf[:IOV_MAX_BATCH], (), _MSG_NOSIGNAL)
        except (BlockingIOError, InterruptedError):
            return 0
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._watch(ENG_EV_WRITE, False)
            del self._wbuf[:]
            self._wsize = 0
            self._fatal_error(exc, 'Fatal write error on socket transport')
            return 0
        self._consume_sent(n)
        if not self._wbuf:
            self._drained_now()
        return 0

    cdef int _drained_now(self) except -1:
        """Everything written is in the kernel: stop watching, wake who waited for it."""
        self._watch(ENG_EV_WRITE, False)
        if self._empty_waiter is not None:
            if not self._empty_waiter.done():
                self._empty_waiter.set_result(None)
            self._empty_waiter = None
        if self._closing:
            self._call_connection_lost(None)
        elif self._eof:
            self._sock.shutdown(_socket.SHUT_WR)
        return 0

    # --- loop.sendfile support ------------------------------------------------------------------

    cpdef Py_ssize_t _write_then_sendfile(self, bytes head, int file_fd, Py_ssize_t offset,
                                          Py_ssize_t count) except -1:
        """write(head), then as much of file_fd[offset:offset+count] as the kernel takes now
        with sendfile(2), without waiting: returns the file bytes sent; the rest (the socket
        buffer was full, an error, a platform without Linux's sendfile) is for loop.sendfile(),
        which also reports any error. The head goes with MSG_MORE so that it leaves in one
        segment with the file's first bytes (what TCP_CORK around the two would do, without
        two setsockopt calls). Anything already queued, or a head the kernel did not take in
        full, means no sendfile here (0): the file must follow the queue."""
        cdef ssize_t r
        cdef int64_t off = offset
        cdef Py_ssize_t size = len(head), sent = 0
        if self._sendfile_busy:
            raise RuntimeError('unable to write; sendfile is in progress')
        if self._send_inflight:
            self._send_collect()
        if self._wbuf or self._conn_lost or self._eof or self._sock is None or not size:
            self._write(head)
            return 0
        r = c_send(self._fd, PyBytes_AS_STRING(head), <size_t>size,
                   _MSG_NOSIGNAL | (ENG_MSG_MORE if count > 0 else 0))
        if r != size:
            if r < 0:
                if errno != EAGAIN and errno != EINTR:
                    self._write(head)            # sees the error again and reports it
                    return 0
                r = 0
            self._sent_total += r
            self._queue(head, r, size)
            self._watch(ENG_EV_WRITE, True)
            self._maybe_pause_protocol()
            return 0
        self._sent_total += size
        while sent < count:
            r = eng_sendfile(self._fd, file_fd, &off, <size_t>(count - sent))
            if r <= 0:
                break                            # full, EOF or an error: loop.sendfile's
            sent += r
        return sent

    def _drained(self):
        """A future resolved once everything written so far is in the kernel."""
        if self._conn_lost or self._sock is None:
            fut = self._loop.create_future()
            fut.set_exception(ConnectionError("Connection is closed by peer"))
            return fut
        if not self._writes_pending():
            fut = self._loop.create_future()
            fut.set_result(None)
            return fut
        if self._empty_waiter is None:
            self._empty_waiter = self._loop.create_future()
        return self._empty_waiter

    cdef int _release_waiters(self) except -1:
        if self._sock is not None:
            self._fill_extra()          # still answerable after close, as asyncio's
        waiter = self._empty_waiter
        self._empty_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("Connection is closed by peer"))
        op = self._sendfile_op
        self._sendfile_op = None
        if op is not None:
            # unpark the sendfile before its fd is closed (and maybe reused)
            (<_SockOp>op)._detach()
            if not (<_SockOp>op).fut.done():
                (<_SockOp>op).fut.set_exception(ConnectionError("Connection is closed by peer"))
        return 0

    def write_eof(self):
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._writes_pending():
            self._sock.shutdown(_socket.SHUT_WR)

    def can_write_eof(self):
        return True

    cdef int _drop_write_buffer(self) except -1:
        if (self._uring_send and self._wbuf and not self._send_inflight
                and self._loop._poller != NULL):
            # abort(): what write() was given goes with what the socket takes at once, as it
            # would have under send(2) at write() time; the rest is dropped
            try:
                self._submit_send()
            except (MemoryError, OSError):
                pass
        if self._send_inflight:
            # the kernel must be done with the buffers before they are let go
            if self._loop._poller != NULL:
                eng_poller_send_cancel(<eng_poller*>self._loop._poller, self._fd)
            self._send_inflight = False
        del self._wbuf[:]
        self._wsize = 0
        return 0

    cdef int _detach(self) except -1:
        server = self._server
        self._server = None
        if server is not None:
            server._detach(self)
        return 0


cdef int _dispatch_transport(Loop loop, object obj, int revents) except -1:
    cdef _FdTransport t = <_FdTransport>obj
    if (revents & ENG_EV_READ) and t._read_registered:
        if t._paused:
            # pause_reading() is lazy: the fd leaves the poller only when it becomes readable
            # while paused (a request/response protocol pauses and resumes once per message,
            # which would otherwise cost two epoll_ctl calls per message)
            t._watch(ENG_EV_READ, False)
        else:
            t._on_readable()
    if (revents & ENG_EV_WRITE) and t._write_registered:
        t._on_writable()
    return 0


class Server(_asyncio.AbstractServer):
    """asyncio.AbstractServer of engine's create_server / create_unix_server."""

    def __init__(self, loop, sockets, protocol_factory, backlog, unix_path=None,
                 ssl_context=None, ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        self._loop = loop
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._sockets = sockets
        self._active_count = 0
        self._waiters = []
        self._protocol_factory = protocol_factory
        self._backlog = backlog
        self._serving = False
        self._serving_forever_fut = None
        self._clients = _weakref.WeakSet()
        self._unix_path = unix_path

    def __repr__(self):
        return f'<{type(self).__name__} sockets={self.sockets!r}>'

    def _attach(self, transport=None):
        # (3.12's asyncio.Server._attach() takes no transport; 3.13's does)
        self._active_count += 1
        if transport is not None:
            self._clients.add(transport)

    def _detach(self, transport=None):
        self._active_count -= 1
        if transport is not None:
            self._clients.discard(transport)
        if self._active_count == 0 and self._sockets is None:
            self._wakeup()

    def _wakeup(self):
        waiters = self._waiters
        self._waiters = None
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _start_serving(self):
        if self._serving:
            return
        self._serving = True
        for sock in self._sockets:
            sock.listen(self._backlog)
            (<Loop>self._loop)._start_accepting(self._protocol_factory, sock, self, self._backlog)

    def get_loop(self):
        return self._loop

    def is_serving(self):
        return self._serving

    @property
    def sockets(self):
        if self._sockets is None:
            return ()
        return tuple(_TransportSocket(s) for s in self._sockets)

    def close(self):
        sockets = self._sockets
        if sockets is None:
            return
        self._sockets = None
        for sock in sockets:
            (<Loop>self._loop)._stop_accepting(sock)
        self._serving = False
        if self._unix_path is not None:
            path, ino = self._unix_path
            self._unix_path = None
            try:
                if _os.stat(path).st_ino == ino:
                    _os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as err:
                _logger().error('Unable to clean up listening UNIX socket %r: %r', path, err)
        if self._serving_forever_fut is not None and not self._serving_forever_fut.done():
            self._serving_forever_fut.cancel()
            self._serving_forever_fut = None
        if self._active_count == 0:
            self._wakeup()

    def close_clients(self):
        for transport in list(self._clients):
            transport.close()

    def abort_clients(self):
        for transport in list(self._clients):
            transport.abort()

    async def start_serving(self):
        self._start_serving()
        await _asyncio.sleep(0)

    async def serve_forever(self):
        if self._serving_forever_fut is not None:
            raise RuntimeError(f'server {self!r} is already being awaited on serve_forever()')
        if self._sockets is None:
            raise RuntimeError(f'server {self!r} is closed')
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except _asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self):
        """Wait until the server is closed and every connection it accepted is gone."""
        if self._waiters is None:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        await self.wait_closed()
