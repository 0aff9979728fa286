# Datagram transports (UDP, Unix datagram), pipe transports and subprocess transports (included
# by loop.pyx into engine._loop; declared only here: nothing outside the module cimports them).
#
# They derive from _FdTransport (transports.pxi; declared in pyx/engine/_loop.pxd): registration
# in the fd table as KIND_TRANSPORT, so the dispatch table calls their _on_readable/_on_writable
# directly, asyncio's flow control, close() and teardown.
#
# Pipes: a write pipe also watches its fd for *readability*: on Linux a pipe's write end (and a
# socket) polls readable when the read end is closed, which is how asyncio notices a reader that
# went away without writing anything (EPOLLERR/EPOLLHUP arrive on the same registration).
#
# Subprocesses: asyncio's BaseSubprocessTransport drives the pipes through this loop's
# connect_read_pipe/connect_write_pipe. The child is reaped without any SIGCHLD handler: with
# pidfd_open(2) (Linux 5.3+) the loop polls the process's pidfd, which becomes readable when it
# exits; elsewhere one thread per child blocks in waitpid() and wakes the loop when it returns.

import stat as _stat
import subprocess as _subprocess
from asyncio import base_subprocess as _base_subprocess


cdef Py_ssize_t DGRAM_READ_MAX = 256 * 1024      # asyncio's max_size for datagram transports
# 3.13 accepts empty datagrams and counts 8 header bytes per queued datagram; 3.11/3.12 drop
# empty writes. engine follows the running Python.
cdef bint _DGRAM_EMPTY_OK = _sys.version_info >= (3, 13)
cdef Py_ssize_t _DGRAM_OVERHEAD = 8 if _sys.version_info >= (3, 13) else 0
cdef str _DGRAM_SOCK_EXPECTED = ('A datagram socket was expected' if _sys.version_info >= (3, 13)
                                 else 'A UDP Socket was expected')


@cython.no_gc_clear
cdef class DatagramTransport(_FdTransport):
    """asyncio.DatagramTransport for datagram sockets (UDP, Unix datagram)."""
    cdef:
        object _address           # the connected peer, or None
        object _queue             # deque of (bytes, addr) waiting for a writable socket

    max_size = DGRAM_READ_MAX

    @staticmethod
    cdef DatagramTransport new(Loop loop, object sock, object protocol, object address,
                               object waiter, object extra):
        cdef DatagramTransport t = DatagramTransport.__new__(DatagramTransport)
        t._queue = _collections.deque()
        t._init_base(loop, sock, sock.fileno(), protocol)
        t._address = address
        t._extra['socket'] = _TransportSocket(sock)
        try:
            t._extra['sockname'] = sock.getsockname()
        except OSError:
            t._extra['sockname'] = None
        try:
            t._extra['peername'] = sock.getpeername()
        except OSError:
            t._extra['peername'] = None
        if extra:
            t._extra.update(extra)
        loop.call_soon(protocol.connection_made, t)
        loop.call_soon(t._start_reading)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter, None)
        return t

    cdef int _writes_pending(self) except -1:
        return 1 if self._queue else 0

    cdef int _on_readable(self) except -1:
        if self._conn_lost:
            return 0
        try:
            data, addr = self._sock.recvfrom(DGRAM_READ_MAX)
        except (BlockingIOError, InterruptedError):
            return 0
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            return self._io_error(exc, 'Fatal read error on datagram transport')
        self._protocol.datagram_received(data, addr)
        return 0

    cdef int _io_error(self, exc, str message) except -1:
        # as asyncio's: an OSError goes to the protocol's error_received() and the transport
        # stays open; anything else is fatal
        if isinstance(exc, OSError):
            self._protocol.error_received(exc)
        else:
            self._fatal_error(exc, message)
        return 0

    cdef int _send(self, data, addr) except -1:
        if self._extra['peername']:
            self._sock.send(data)
        else:
            self._sock.sendto(data, addr)
        return 0

    def sendto(self, data, addr=None):
        _check_bytes_like(data)
        if not data and not _DGRAM_EMPTY_OK:
            return
        if self._address:
            if addr not in (None, self._address):
                raise ValueError(f'Invalid address: must be None or {self._address}')
            addr = self._address
        if self._conn_lost and self._address:
            self._write_after_lost('socket.send() raised exception.')
            return
        if not self._queue:
            try:
                self._send(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                self._watch(ENG_EV_WRITE, True)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._io_error(exc, 'Fatal write error on datagram transport')
                return
        # the caller may reuse a mutable buffer: queue an immutable copy
        data = bytes(data)
        self._queue.append((data, addr))
        self._wsize += len(data) + _DGRAM_OVERHEAD
        self._maybe_pause_protocol()

    cdef int _on_writable(self) except -1:
        while self._queue:
            data, addr = self._queue.popleft()
            self._wsize -= len(data) + _DGRAM_OVERHEAD
            try:
                self._send(data, addr)
            except (BlockingIOError, InterruptedError):
                self._queue.appendleft((data, addr))
                self._wsize += len(data) + _DGRAM_OVERHEAD
                break
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                return self._io_error(exc, 'Fatal write error on datagram transport')
        self._maybe_resume_protocol()
        if not self._queue:
            self._watch(ENG_EV_WRITE, False)
            if self._closing:
                self._call_connection_lost(None)
        return 0

    cdef int _drop_write_buffer(self) except -1:
        self._queue.clear()
        self._wsize = 0
        return 0


cdef object _open_pipe(_FdTransport t, Loop loop, object pipe, object protocol, object waiter,
                       bint reader):
    """What both pipe transports do to start: check the fd's kind, make it non-blocking, schedule
    connection_made, reading and the waiter. The read end always reads; the write end reads only
    on pipes and sockets, where readable means the reader went away (a character device's fd,
    a pty's say, is readable whenever the other side writes)."""
    mode = _os.fstat(pipe.fileno()).st_mode
    if not (_stat.S_ISFIFO(mode) or _stat.S_ISSOCK(mode) or _stat.S_ISCHR(mode)):
        raise ValueError("Pipe transport is for pipes/sockets only.")
    t._init_base(loop, pipe, pipe.fileno(), protocol)
    t._extra['pipe'] = pipe
    _os.set_blocking(t._fd, False)
    loop.call_soon(protocol.connection_made, t)
    if reader or _stat.S_ISFIFO(mode) or _stat.S_ISSOCK(mode):
        loop.call_soon(t._start_reading)
    if waiter is not None:
        loop.call_soon(_set_result_unless_cancelled, waiter, None)
    return t


@cython.no_gc_clear
cdef class ReadPipeTransport(_FdTransport):
    """asyncio.ReadTransport over the read end of a pipe (or a socket / character device)."""

    @staticmethod
    cdef ReadPipeTransport new(Loop loop, object pipe, object protocol, object waiter):
        cdef ReadPipeTransport t = ReadPipeTransport.__new__(ReadPipeTransport)
        return _open_pipe(t, loop, pipe, protocol, waiter, True)

    cdef int _on_readable(self) except -1:
        if self._conn_lost:
            return 0
        if self._read_event(False, 'pipe'):
            if self._loop._debug:
                _logger().info("%r was closed by peer", self)
            self._closing = True
            self._watch(ENG_EV_READ, False)
            self._conn_lost += 1
            self._loop.call_soon(self._protocol.eof_received)
            self._loop.call_soon(self._call_connection_lost, None)
        return 0

    def get_write_buffer_size(self):
        raise AttributeError('get_write_buffer_size')

    def __repr__(self):
        return _pipe_repr(self)


@cython.no_gc_clear
cdef class WritePipeTransport(_FdTransport):
    """asyncio.WriteTransport over the write end of a pipe (or a socket / character device)."""
    cdef:
        bytearray _buf
        bint _eof

    @staticmethod
    cdef WritePipeTransport new(Loop loop, object pipe, object protocol, object waiter):
        cdef WritePipeTransport t = WritePipeTransport.__new__(WritePipeTransport)
        t._buf = bytearray()
        return _open_pipe(t, loop, pipe, protocol, waiter, False)

    cdef int _on_readable(self) except -1:
        # the read end closed
        if self._buf:
            self._close_with(BrokenPipeError())
        else:
            self._close_with(None)
        return 0

    cdef int _close_with(self, exc) except -1:
        self._closing = True
        self._close_now(exc)
        return 0

    def write(self, data):
        cdef Py_ssize_t n = 0, size
        _check_bytes_like(data)
        if isinstance(data, bytearray):
            data = memoryview(data)
        size = len(data) if not isinstance(data, memoryview) else (<object>data).nbytes
        if not size:
            return
        if self._conn_lost or self._closing:
            self._write_after_lost('pipe closed by peer or os.write(pipe, data) raised exception.')
            return
        if not self._buf:
            try:
                n = _os.write(self._fd, data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._conn_lost += 1
                self._fatal_error(exc, 'Fatal write error on pipe transport')
                return
            if n == size:
                return
            self._watch(ENG_EV_WRITE, True)
        self._buf += memoryview(data).cast('B')[n:]
        self._wsize = len(self._buf)
        self._maybe_pause_protocol()

    def writelines(self, list_of_data):
        for data in list_of_data:
            self.write(data)

    cdef int _on_writable(self) except -1:
        cdef Py_ssize_t n
        if not self._buf:
            return 0
        try:
            n = _os.write(self._fd, self._buf)
        except (BlockingIOError, InterruptedError):
            return 0
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._buf.clear()
            self._wsize = 0
            self._conn_lost += 1
            self._watch(ENG_EV_WRITE, False)
            self._fatal_error(exc, 'Fatal write error on pipe transport')
            return 0
        del self._buf[:n]
        self._wsize = len(self._buf)
        self._maybe_resume_protocol()
        if not self._buf:
            self._watch(ENG_EV_WRITE, False)
            if self._closing:
                self._watch(ENG_EV_READ, False)
                self._call_connection_lost(None)
        return 0

    def can_write_eof(self):
        return True

    def __repr__(self):
        return _pipe_repr(self)

    def write_eof(self):
        if self._closing:
            return
        self._closing = True
        if not self._buf:
            self._watch(ENG_EV_READ, False)
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)

    def close(self):
        if self._sock is not None and not self._closing:
            self.write_eof()

    def is_reading(self):
        return False

    def pause_reading(self):
        raise AttributeError('pause_reading')

    def resume_reading(self):
        raise AttributeError('resume_reading')

    cdef int _drop_write_buffer(self) except -1:
        self._buf.clear()
        self._wsize = 0
        return 0


cdef str _pipe_repr(_FdTransport t):
    info = _repr_head(t)
    if t._sock is not None:
        info.append('open')
        info.append('polling' if (t._read_registered or t._write_registered) else 'idle')
        if t._wsize:
            info.append(f'bufsize={t._wsize}')
    return '<' + ' '.join(info) + '>'


class SubprocessTransport(_base_subprocess.BaseSubprocessTransport):
    """asyncio.SubprocessTransport: asyncio's own pipe/protocol plumbing on engine's pipes."""

    def _start(self, args, shell, stdin, stdout, stderr, bufsize, **kwargs):
        self._proc = _subprocess.Popen(
            args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr,
            universal_newlines=False, bufsize=bufsize, **kwargs)


cdef class _ChildWatch:
    """Waits for one child to exit -- pidfd in the fd table, or a waitpid() thread -- and hands
    the exit status to the transport. No SIGCHLD handler, no global child watcher."""
    cdef Loop _loop
    cdef object _transport
    cdef int _pid
    cdef int _pidfd

    def __cinit__(self, Loop loop, transport, int pid):
        self._loop = loop
        self._transport = transport
        self._pid = pid
        self._pidfd = -1

    def start(self):
        try:
            self._pidfd = _os.pidfd_open(self._pid)
        except (AttributeError, OSError):
            self._pidfd = -1
        if self._pidfd >= 0:
            self._loop.add_reader(self._pidfd, self._on_pidfd)
        else:
            _threading.Thread(target=self._wait_thread, name=f'waitpid-{self._pid}',
                              daemon=True).start()

    def _on_pidfd(self):
        self._loop.remove_reader(self._pidfd)
        _os.close(self._pidfd)
        self._pidfd = -1
        self._deliver(self._reap(0))

    def _wait_thread(self):
        code = self._reap(None)
        try:
            self._loop.call_soon_threadsafe(self._deliver, code)
        except RuntimeError:
            pass                                           # the loop was closed meanwhile

    def _reap(self, flags):
        try:
            if flags is None:
                pid, status = _os.waitpid(self._pid, 0)
            else:
                pid, status = _os.waitpid(self._pid, _os.WNOHANG)
        except ChildProcessError:
            # someone else reaped it (e.g. a Popen.wait() by the user): asyncio reports 255
            _logger().warning("child process pid %d exit status already read: "
                              " will report returncode 255", self._pid)
            return 255
        if pid == 0:
            # pidfd readable but not yet reapable: cannot happen for an exited child; be safe
            pid, status = _os.waitpid(self._pid, 0)
        return _os.waitstatus_to_exitcode(status)

    def _deliver(self, code):
        transport = self._transport
        self._transport = None
        if transport is not None and not self._loop._closed:
            transport._process_exited(code)

    def cancel(self):
        if self._pidfd >= 0:
            if not self._loop._closed:
                self._loop.remove_reader(self._pidfd)
            _os.close(self._pidfd)
            self._pidfd = -1
