# Low-level socket operations (included by loop.pyx; the loop.sock_* methods themselves are in
# loop.pyx, the machinery here): loop.sock_recv / sock_recv_into / sock_recvfrom /
# sock_recvfrom_into / sock_sendall / sock_sendto / sock_connect / sock_accept, with asyncio's
# semantics (each is a coroutine; the socket must be non-blocking, checked in debug mode).
#
# Each first tries the syscall at once (_sockop_now). Only when the kernel says EAGAIN does it park a _SockOp in
# the fd table (kind KIND_SOCKOP): the dispatch table calls its _step() when the fd is ready,
# which retries the syscall and resolves the future -- no Handle, no add_reader()/functools.partial
# round trip. Cancelling the awaiting task removes the op from the fd table.

cdef enum:
    # one syscall, retried as it is until it does not say EAGAIN (_sockop_call)
    OP_RECV = 0
    OP_RECV_INTO = 1
    OP_RECVFROM = 2
    OP_RECVFROM_INTO = 3
    OP_SENDTO = 4
    OP_ACCEPT = 5
    OP_LAST_SIMPLE = 5
    # with state of their own across wake-ups (_SockOp._step)
    OP_SENDALL = 6
    OP_CONNECT = 7
    OP_SENDFILE = 8

cdef object _ssl_SSLSocket = None
try:
    import ssl as _ssl
    _ssl_SSLSocket = _ssl.SSLSocket
except ImportError:  # pragma: no cover
    pass

cdef object _ipaddr_info = _base_events._ipaddr_info
cdef object _AF_INET = _socket.AF_INET
cdef object _AF_INET6 = getattr(_socket, 'AF_INET6', None)
cdef object _SOL_SOCKET = _socket.SOL_SOCKET
cdef object _SO_ERROR = _socket.SO_ERROR
cdef object _SOCK_STREAM = _socket.SOCK_STREAM
cdef object _SOCK_NONBLOCK = getattr(_socket, 'SOCK_NONBLOCK', 0)
cdef object _SendfileNotAvailableError = _asyncio.SendfileNotAvailableError
cdef object _io_UnsupportedOperation = __import__('io').UnsupportedOperation
cdef object _FALLBACK_BLOCK = getattr(_asyncio.constants, 'SENDFILE_FALLBACK_READBUFFER_SIZE',
                                      256 * 1024)
cdef Py_ssize_t SENDFILE_CHUNK = 1 << 30      # one sendfile(2) call moves at most this much


@cython.final
@cython.freelist(64)
cdef class _SockOp:
    cdef:
        Loop loop
        object fut
        object sock
        object arg        # n / buffer / memoryview of data / address
        object arg2       # nbytes / address
        Py_ssize_t pos    # bytes sent so far (sendall)
        int fd
        int op
        int which         # ENG_EV_READ or ENG_EV_WRITE
        # sendfile state: file descriptor, next file offset, bytes left (-1: to EOF), bytes sent
        int file_fd
        Py_ssize_t offset
        Py_ssize_t left
        Py_ssize_t total

    def __init__(self, *args):
        raise TypeError("_SockOp objects are created by the event loop")

    @staticmethod
    cdef _SockOp new(Loop loop, object fut, object sock, int op, object arg, object arg2):
        cdef _SockOp s = _SockOp.__new__(_SockOp)
        s.loop = loop
        s.fut = fut
        s.sock = sock
        s.op = op
        s.arg = arg
        s.arg2 = arg2
        s.which = (ENG_EV_WRITE if op in (OP_SENDALL, OP_SENDTO, OP_CONNECT, OP_SENDFILE)
                   else ENG_EV_READ)
        return s

    cdef int _detach(self) except -1:
        cdef Loop loop = self.loop
        cdef FdSlot *slot
        if loop._closed or self.fd >= loop._fds_cap:
            return 0
        slot = &loop._fds[self.fd]
        if self.which == ENG_EV_READ:
            if slot.reader == <PyObject*>self:
                loop._fd_clear(self.fd, ENG_EV_READ)
        elif slot.writer == <PyObject*>self:
            loop._fd_clear(self.fd, ENG_EV_WRITE)
        return 0

    def _on_fut_done(self, fut):
        # cancelled (or resolved) future: stop waiting for the fd
        self._detach()
        if self.op == OP_SENDFILE and fut.cancelled():
            _sendfile_update_filepos(self.file_fd, self.offset, self.total)

    cdef object _sendfile_step(self):
        """Send until done (returns the total), EOF (total), or EAGAIN (None)."""
        cdef Py_ssize_t n, want
        cdef int fd = self.sock.fileno()
        while self.left != 0:
            want = SENDFILE_CHUNK if self.left < 0 or self.left > SENDFILE_CHUNK else self.left
            try:
                n = _os.sendfile(fd, self.file_fd, self.offset, want)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                if self.total == 0:
                    # e.g. not a regular, mmap(2)-able file: the caller falls back
                    raise _SendfileNotAvailableError("os.sendfile call failed") from exc
                if exc.errno == _errno.ENOTCONN and type(exc) is not ConnectionError:
                    new_exc = ConnectionError("socket is not connected", _errno.ENOTCONN)
                    new_exc.__cause__ = exc
                    raise new_exc
                raise
            if n == 0:
                break                                  # end of file
            self.offset += n
            self.total += n
            if self.left > 0:
                self.left -= n
        return self.total

    cdef int _step(self) except -1:
        cdef object fut = self.fut
        cdef object sock = self.sock
        cdef Py_ssize_t n
        if fut.done():
            self._detach()
            return 0
        try:
            if self.op <= OP_LAST_SIMPLE:
                result = _sockop_call(sock, self.op, self.arg, self.arg2)
            elif self.op == OP_SENDFILE:
                result = self._sendfile_step()
                if result is None:
                    return 0                           # socket buffer full: wait
                _sendfile_update_filepos(self.file_fd, self.offset, self.total)
            elif self.op == OP_CONNECT:
                err = sock.getsockopt(_SOL_SOCKET, _SO_ERROR)
                if err != 0:
                    # the kernel's error for the connect() in progress
                    raise OSError(err, f'Connect call failed {self.arg}')
                result = None
            else:  # OP_SENDALL
                # until done or EAGAIN: the wait is edge-triggered, so it must see the socket
                # buffer full before it waits again
                while True:
                    n = sock.send(self.arg[self.pos:])
                    self.pos += n
                    if self.pos >= len(self.arg):
                        break
                    if n == 0:
                        return 0                   # (not for stream sockets) wait
                result = None
        except (BlockingIOError, InterruptedError):
            return 0                               # spurious wake-up: keep waiting
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._detach()
            if self.op == OP_SENDFILE:
                _sendfile_update_filepos(self.file_fd, self.offset, self.total)
            fut.set_exception(exc)
            return 0
        self._detach()
        fut.set_result(result)
        return 0


cdef int _sendfile_update_filepos(int file_fd, Py_ssize_t offset, Py_ssize_t total) except -1:
    # as asyncio: after a transfer the file position is just past the last byte sent
    if total <= 0:
        return 0
    try:
        _os.lseek(file_fd, offset, _os.SEEK_SET)
    except OSError:
        pass
    return 0


cdef tuple _map_file(file, offset, count):
    """(a read-only mmap(2) of file up to offset + count or its end, that end) for the sendfile
    fallbacks that write views of it; (None, end) when nothing lies past offset. A file that
    is not regular or cannot be mapped raises SendfileNotAvailableError (the next fallback)."""
    import mmap as _mmap
    try:
        fileno = file.fileno()
        size = _os.fstat(fileno).st_size
    except (AttributeError, OSError, _io_UnsupportedOperation):
        raise _SendfileNotAvailableError("not a regular file")
    end = size if count is None else min(size, offset + count)
    if end <= offset:
        return None, end
    try:
        m = _mmap.mmap(fileno, end, access=_mmap.ACCESS_READ)
    except (OSError, ValueError):
        raise _SendfileNotAvailableError("file cannot be mapped")
    return m, end


cdef int _check_sendfile_params(sock, file, offset, count) except -1:
    if 'b' not in getattr(file, 'mode', 'b'):
        raise ValueError("file should be opened in binary mode")
    if not sock.type == _SOCK_STREAM:
        raise ValueError("only SOCK_STREAM type sockets are supported")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
    if not isinstance(offset, int):
        raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")
    return 0


cdef object _sockop_call(object sock, int op, object arg, object arg2):
    """The syscall of a simple op (OP_RECV .. OP_ACCEPT): its result, or it raises
    (BlockingIOError/InterruptedError when the socket is not ready)."""
    if op == OP_RECV:
        return sock.recv(arg)
    if op == OP_RECV_INTO:
        return sock.recv_into(arg)
    if op == OP_RECVFROM:
        return sock.recvfrom(arg)
    if op == OP_RECVFROM_INTO:
        return sock.recvfrom_into(arg, arg2)
    if op == OP_SENDTO:
        return sock.sendto(arg, arg2)
    conn, address = sock.accept()             # OP_ACCEPT
    conn.setblocking(False)
    return (conn, address)


cdef object _NOT_READY = object()


cdef inline bint _sockops_only(FdSlot *slot):
    """Whether nothing but sock_*() operations (or no one) waits on the slot's fd."""
    return ((slot.reader == NULL or slot.rkind == KIND_SOCKOP)
            and (slot.writer == NULL or slot.wkind == KIND_SOCKOP))


cdef PyObject *_weakref_or_null(object sock):
    """A new (owned) weak reference to sock, or NULL if sock cannot be weakly referenced."""
    try:
        ref = _weakref.ref(sock)
    except TypeError:
        return NULL
    Py_INCREF(ref)
    return <PyObject*>ref


cdef object _sockop_now(Loop loop, object sock, int op, object arg, object arg2):
    """A simple op tried at once, as every loop.sock_* coroutine starts: its result, or
    _NOT_READY when the kernel said EAGAIN (the caller then awaits _sockop_park())."""
    _check_sock(loop, sock)
    try:
        return _sockop_call(sock, op, arg, arg2)
    except (BlockingIOError, InterruptedError):
        return _NOT_READY


cdef object _sockop_park(Loop loop, object sock, int op, object arg, object arg2):
    """A future for op, parked in the fd table until the socket is ready."""
    fut = aio_Future(loop=loop)
    _sockop_wait(loop, _SockOp.new(loop, fut, sock, op, arg, arg2))
    return fut


cdef int _dispatch_sockop(Loop loop, object obj, int revents) except -1:
    return (<_SockOp>obj)._step()


cdef int _check_ssl_socket(object sock) except -1:
    if _ssl_SSLSocket is not None and isinstance(sock, _ssl_SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")
    return 0


cdef inline int _check_sock(Loop loop, object sock) except -1:
    _check_ssl_socket(sock)
    if loop._debug and sock.gettimeout() != 0:
        raise ValueError("the socket must be non-blocking")
    return 0


cdef int _sockop_wait(Loop loop, _SockOp op) except -1:
    """Park op in the fd table until its fd is ready; the future's completion unparks it."""
    cdef int fd = op.sock.fileno()
    cdef FdSlot *slot
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    loop._fd_ensure(fd)
    slot = &loop._fds[fd]
    if op.which == ENG_EV_READ:
        if slot.reader != NULL and slot.rkind == KIND_IO:
            raise RuntimeError(f"fd {fd} is watched for reading by {<object>slot.reader!r}")
    elif slot.writer != NULL and slot.wkind == KIND_IO:
        raise RuntimeError(f"fd {fd} is watched for writing by {<object>slot.writer!r}")
    op.fd = fd
    old = loop._fd_set(fd, op.which, op, KIND_SOCKOP)
    if isinstance(old, Handle):
        (<Handle>old).cancel()     # as asyncio's add_reader: the previous reader is replaced
    op.fut.add_done_callback(op._on_fut_done)
    return 0
