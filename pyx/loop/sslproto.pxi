# TLS for the loop's stream transports (included by loop.pyx into engine._loop): what ssl= of
# create_connection / create_server / connect_accepted_socket and start_tls() run on.
#
# SSLProtocol is the protocol of the transport underneath (a SocketTransport, or any transport
# start_tls() accepts); SSLTransport is the transport the application protocol sees. Bytes go
# through the ssl module's memory BIOs (ssl.MemoryBIO + SSLContext.wrap_bio): encrypted bytes from
# the socket are written into the incoming BIO, the SSL object decrypts them into a chunk of the
# loop's buffer pool, and what the application writes is encrypted into the outgoing BIO, whose
# bytes go to the transport underneath in one write.
#
# The semantics are asyncio's (Lib/asyncio/sslproto.py in 3.11-3.13, the state machine below and
# the flow-control defaults): handshake and shutdown timeouts, close_notify on close(), eof
# from the peer delivered to eof_received() of the application then a shutdown, asyncio's write
# and read water marks, BufferedProtocol applications, start_tls without connection_made, errors
# reported as asyncio reports them. What differs is how the work is done, each measured by
# perf/bench_net.py's TLS scenarios and perf/bench_http.py's TLS hello:
#
# * no Python frame per record: every step is C (this file), and the SSL object's methods are
#   called on ssl.SSLObject's C object (_ssl._SSLSocket) when the context's sslobject_class is
#   the standard one;
# * no exception per read: asyncio reads until SSLWantReadError; here the read loop stops when
#   the incoming BIO is empty and the SSL object holds no decrypted byte (raising and catching
#   SSLWantReadError costs more than decrypting a small record);
# * decrypted bytes land in a loop buffer-pool chunk and reach data_received() as one bytes
#   object of the exact size (no 256 KiB allocation per read, no join of chunks);
# * writelines() of small pieces is one TLS record, not one per piece.

import ssl as _ssl
from cpython.buffer cimport PyBUF_WRITABLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

cdef extern from "Python.h":
    object PyMemoryView_FromMemory(char *mem, Py_ssize_t size, int flags)
    int PyBUF_WRITE

# --- OpenSSL called directly --------------------------------------------------------------------
# The hot calls (SSL_read_ex, SSL_write_ex, the memory BIOs' reads and writes) go straight to the
# OpenSSL that the ssl module itself runs on, with the SSL object and BIOs of the very
# ssl.SSLObject / ssl.MemoryBIO objects in use: the functions are looked up by dlsym() in the
# _ssl extension's own link scope (so it is the same library, whatever OpenSSL engine was built
# against: engine does not link OpenSSL), and the pointers are read from the C objects' heads,
# whose layout is the same in CPython 3.11-3.13. What is saved per call is the method call, its
# argument parsing, a GIL release and reacquire and, for the outgoing BIO, an intermediate
# bytes object. Anything but success or "want read" is handed back to the ssl module's own
# method, which repeats the call and raises exactly what the ssl module raises (the error stays
# in OpenSSL's queue in between). ENGINE_TLS_DIRECT=0 turns this off (the A/B of
# perf/bench_net.py's engine-tlsmod implementation).

cdef extern from "dlfcn.h" nogil:
    void *dlopen(const char *filename, int flags)
    void *dlsym(void *handle, const char *symbol)
    int RTLD_NOW
    int RTLD_NOLOAD

cdef extern from *:
    """
    /* the heads of _ssl's _SSLSocket and MemoryBIO objects (Modules/_ssl.c, 3.11-3.13) */
    typedef struct { PyObject_HEAD PyObject *Socket; void *ssl; } engine_ssl_sock_head;
    typedef struct { PyObject_HEAD void *bio; int eof_written; } engine_ssl_bio_head;
    """
    ctypedef struct engine_ssl_sock_head:
        PyObject *Socket
        void *ssl
    ctypedef struct engine_ssl_bio_head:
        void *bio
        int eof_written

ctypedef int (*_f_ssl_io)(void *ssl, void *buf, size_t num, size_t *done) noexcept nogil
ctypedef int (*_f_ssl_int)(const void *ssl) noexcept nogil
ctypedef int (*_f_ssl_get_error)(const void *ssl, int ret) noexcept nogil
ctypedef void *(*_f_ssl_bio)(const void *ssl) noexcept nogil
ctypedef int (*_f_bio_io)(void *bio, void *data, int dlen) noexcept nogil
ctypedef size_t (*_f_bio_pending)(void *bio) noexcept nogil
ctypedef long (*_f_ssl_ctrl)(void *ssl, int cmd, long larg, void *parg) noexcept nogil

cdef struct _OpenSSL:
    _f_ssl_io SSL_read_ex
    _f_ssl_io SSL_write_ex
    _f_ssl_get_error SSL_get_error
    _f_ssl_int SSL_pending
    _f_ssl_int SSL_get_shutdown
    _f_ssl_bio SSL_get_rbio
    _f_ssl_bio SSL_get_wbio
    _f_bio_io BIO_read
    _f_bio_io BIO_write
    _f_bio_pending BIO_ctrl_pending
    _f_ssl_int SSL_has_pending
    _f_ssl_ctrl SSL_ctrl

cdef _OpenSSL _ossl
cdef int _ossl_state = 0            # 0: not looked up yet, 1: usable, -1: not available

# OpenSSL's constants (ssl.h), stable across 1.1.1 and 3.x
cdef enum:
    _SSL_ERROR_WANT_READ = 2
    _SSL_ERROR_WANT_WRITE = 3
    _SSL_ERROR_ZERO_RETURN = 6
    _SSL_RECEIVED_SHUTDOWN = 2


cdef int _ossl_load() noexcept:
    """Look up the OpenSSL functions in the _ssl extension's link scope; 1 if all are there."""
    global _ossl_state
    cdef void *h = NULL
    cdef void *f
    cdef bytes path
    cdef const char *names[12]
    cdef void **slots[12]
    cdef int i
    _ossl_state = -1
    try:
        if _os.environ.get("ENGINE_TLS_DIRECT", "1") == "0":
            return -1
        if not ((3, 11) <= _sys.version_info[:2] <= (3, 13)):
            return -1                   # the object heads above are checked for these only
        import _ssl as _ssl_ext
        fn = getattr(_ssl_ext, "__file__", None)
        if fn:
            path = _os.fsencode(fn)
            h = dlopen(path, RTLD_NOW | RTLD_NOLOAD)
        else:
            h = dlopen(NULL, RTLD_NOW)      # built into the interpreter
    except Exception:
        return -1
    if h == NULL:
        return -1
    names[0] = b"SSL_read_ex";      slots[0] = <void **>&_ossl.SSL_read_ex
    names[1] = b"SSL_write_ex";     slots[1] = <void **>&_ossl.SSL_write_ex
    names[2] = b"SSL_get_error";    slots[2] = <void **>&_ossl.SSL_get_error
    names[3] = b"SSL_pending";      slots[3] = <void **>&_ossl.SSL_pending
    names[4] = b"SSL_get_shutdown"; slots[4] = <void **>&_ossl.SSL_get_shutdown
    names[5] = b"SSL_get_rbio";     slots[5] = <void **>&_ossl.SSL_get_rbio
    names[6] = b"SSL_get_wbio";     slots[6] = <void **>&_ossl.SSL_get_wbio
    names[7] = b"BIO_read";         slots[7] = <void **>&_ossl.BIO_read
    names[8] = b"BIO_write";        slots[8] = <void **>&_ossl.BIO_write
    names[9] = b"BIO_ctrl_pending"; slots[9] = <void **>&_ossl.BIO_ctrl_pending
    names[10] = b"SSL_has_pending"; slots[10] = <void **>&_ossl.SSL_has_pending
    names[11] = b"SSL_ctrl";        slots[11] = <void **>&_ossl.SSL_ctrl
    for i in range(12):
        f = dlsym(h, names[i])
        if f == NULL:
            return -1
        slots[i][0] = f
    _ossl_state = 1
    return 1


def _tls_direct(enable=None):
    """Whether new TLS connections call OpenSSL directly (see the comment above _ossl_load);
    enable=False turns that off for the connections made from now on, True on again where it
    is available (tests and A/B runs)."""
    global _ossl_state
    if enable is not None:
        _ossl_state = 0 if enable else -1
    if _ossl_state == 0 and (enable is None or enable):
        _ossl_load()
    return _ossl_state == 1


cdef object _SSLAgainErrors = (_ssl.SSLWantReadError, _ssl.SSLSyscallError)
cdef object _SSLError = _ssl.SSLError
cdef object _CertificateError = _ssl.CertificateError
cdef object _StdSSLObject = _ssl.SSLObject
cdef object _MemoryBIO = _ssl.MemoryBIO
cdef object _SSLSocketType = __import__('_ssl')._SSLSocket     # what SSLObject._sslobj is
cdef object _SSLContext = _ssl.SSLContext
cdef object _aio_CancelledError = _asyncio.CancelledError
cdef object _aio_TimeoutError = _asyncio.TimeoutError
cdef double _SSL_HANDSHAKE_TIMEOUT = _asyncio.constants.SSL_HANDSHAKE_TIMEOUT
cdef double _SSL_SHUTDOWN_TIMEOUT = _asyncio.constants.SSL_SHUTDOWN_TIMEOUT
# asyncio's default water marks (KiB): the incoming BIO (reading from the transport underneath
# pauses above it) and the outgoing side (the application's pause_writing() above it)
cdef Py_ssize_t _TLS_READ_HIGH_KB = _asyncio.constants.FLOW_CONTROL_HIGH_WATER_SSL_READ
cdef Py_ssize_t _TLS_WRITE_HIGH_KB = _asyncio.constants.FLOW_CONTROL_HIGH_WATER_SSL_WRITE
# the most plaintext one TLS record carries (RFC 8446 5.1, RFC 5246 6.2.1: 2^14 bytes)
cdef Py_ssize_t _TLS_RECORD_MAX = 16384
# writelines(): pieces up to this total are joined into one record (a TLS record holds 16 KiB)
cdef Py_ssize_t _TLS_JOIN_MAX = 16 * 1024

# the state of the TLS session; a state may only move to the next one, or back to UNWRAPPED
cdef enum:
    TLS_UNWRAPPED = 0
    TLS_DO_HANDSHAKE = 1
    TLS_WRAPPED = 2
    TLS_FLUSHING = 3
    TLS_SHUTDOWN = 4

cdef tuple _TLS_STATE_NAMES = ('UNWRAPPED', 'DO_HANDSHAKE', 'WRAPPED', 'FLUSHING', 'SHUTDOWN')

# what the application protocol has been told
cdef enum:
    APP_INIT = 0         # nothing yet
    APP_CON_MADE = 1     # connection_made()
    APP_EOF = 2          # eof_received()
    APP_CON_LOST = 3     # connection_lost() (scheduled)


cdef tuple _water_marks(high, low, Py_ssize_t kb):
    # asyncio's add_flowcontrol_defaults(): high defaults to kb KiB (or 4 x low), low to high / 4
    if high is None:
        high = kb * 1024 if low is None else 4 * low
    if low is None:
        low = high // 4
    if not high >= low >= 0:
        raise ValueError(f'high ({high!r}) must be >= low ({low!r}) must be >= 0')
    return high, low


cdef object _default_client_context(bint server_side, server_hostname):
    if server_side:
        raise ValueError('Server side SSL needs a valid SSLContext')
    context = _ssl.create_default_context()
    if not server_hostname:
        context.check_hostname = False
    return context


cdef class SSLProtocol:
    """The protocol of the transport under a TLS connection (asyncio's SSLProtocol, compiled):
    it drives the TLS session through memory BIOs and serves the application protocol through
    a :class:`SSLTransport`."""

    cdef:
        Loop _loop
        readonly object _app_protocol
        bint _app_is_buffer
        readonly object _app_transport
        bint _app_transport_created
        readonly object _transport      # the transport underneath
        SocketTransport _raw            # the same, when it is engine's socket transport
        object _sslcontext
        object _server_hostname
        bint _server_side
        readonly object _sslobj         # ssl.SSLObject (what get_extra_info('ssl_object') is)
        object _c_read, _c_write, _c_pending, _c_handshake, _c_unwrap   # its C methods
        object _incoming, _outgoing     # ssl.MemoryBIO
        object _in_write, _out_read
        int _st
        int _app_state
        object _waiter
        dict _extra
        object _backlog                 # collections.deque of what SSL has not taken yet
        Py_ssize_t _backlog_size
        double _handshake_timeout, _shutdown_timeout
        object _handshake_handle, _shutdown_handle
        double _handshake_start
        Py_ssize_t _conn_lost
        bint _eof_received
        bint _ssl_writing_paused, _ssl_reading_paused
        bint _app_reading_paused, _app_writing_paused
        Py_ssize_t _in_high, _in_low, _out_high, _out_low
        Py_ssize_t _in_left             # incoming.pending as last read (-1: not known)
        void *_nssl                     # the SSL object when OpenSSL is called directly, else NULL
        void *_nin                      # and its incoming and outgoing BIOs
        void *_nout
        object __weakref__

    def __init__(self, loop, app_protocol, sslcontext, waiter, server_side=False,
                 server_hostname=None, call_connection_made=True,
                 ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        if ssl_handshake_timeout is None:
            ssl_handshake_timeout = _SSL_HANDSHAKE_TIMEOUT
        elif ssl_handshake_timeout <= 0:
            raise ValueError(f"ssl_handshake_timeout should be a positive number, "
                             f"got {ssl_handshake_timeout}")
        if ssl_shutdown_timeout is None:
            ssl_shutdown_timeout = _SSL_SHUTDOWN_TIMEOUT
        elif ssl_shutdown_timeout <= 0:
            raise ValueError(f"ssl_shutdown_timeout should be a positive number, "
                             f"got {ssl_shutdown_timeout}")
        if not sslcontext:
            sslcontext = _default_client_context(server_side, server_hostname)
        self._loop = <Loop?>loop
        self._server_side = server_side
        self._server_hostname = server_hostname if server_hostname and not server_side else None
        self._sslcontext = sslcontext
        self._extra = {'sslcontext': sslcontext}
        self._backlog = _collections.deque()
        self._waiter = waiter
        self._set_app_protocol(app_protocol)
        self._handshake_timeout = ssl_handshake_timeout
        self._shutdown_timeout = ssl_shutdown_timeout
        self._incoming = _MemoryBIO()
        self._outgoing = _MemoryBIO()
        self._in_write = self._incoming.write
        self._out_read = self._outgoing.read
        self._st = TLS_UNWRAPPED
        self._in_left = -1
        self._app_state = APP_INIT if call_connection_made else APP_CON_MADE
        sslobj = sslcontext.wrap_bio(self._incoming, self._outgoing, server_side=server_side,
                                     server_hostname=self._server_hostname)
        self._sslobj = sslobj
        # ssl.SSLObject's methods are one-line wrappers of its C object's: call those (a
        # subclass set as the context's sslobject_class keeps its own methods)
        c = getattr(sslobj, '_sslobj', None) if type(sslobj) is _StdSSLObject else None
        if c is not None:
            self._c_unwrap = c.shutdown
        else:
            c = sslobj
            self._c_unwrap = c.unwrap
        self._c_read = c.read
        self._c_write = c.write
        self._c_pending = c.pending
        self._c_handshake = c.do_handshake
        if c is not sslobj:
            self._direct(c)
        self._in_high, self._in_low = _water_marks(None, None, _TLS_READ_HIGH_KB)
        self._out_high, self._out_low = _water_marks(None, None, _TLS_WRITE_HIGH_KB)
        self._get_app_transport()

    cdef int _direct(self, c) except -1:
        # call OpenSSL directly on this connection if the lookup worked and the objects are
        # the ssl module's own C objects, checked against each other: the SSL object's BIOs
        # must be the two MemoryBIOs' (see _ossl_load)
        cdef void *sp
        cdef void *ib
        cdef void *ob
        if _ossl_state == 0:
            _ossl_load()
        if _ossl_state != 1 or type(c) is not _SSLSocketType \
                or type(self._incoming) is not _MemoryBIO or type(self._outgoing) is not _MemoryBIO:
            return 0
        if (<engine_ssl_sock_head *><PyObject *>c).Socket != NULL:
            return 0                    # a socket-wrapping SSL object, not wrap_bio()'s
        sp = (<engine_ssl_sock_head *><PyObject *>c).ssl
        ib = (<engine_ssl_bio_head *><PyObject *>self._incoming).bio
        ob = (<engine_ssl_bio_head *><PyObject *>self._outgoing).bio
        if sp == NULL or ib == NULL or ob == NULL or ib == ob:
            return 0
        if _ossl.SSL_get_rbio(sp) != ib or _ossl.SSL_get_wbio(sp) != ob:
            return 0
        self._nssl = sp
        self._nin = ib
        self._nout = ob
        # read ahead: OpenSSL takes what the BIO holds in one read, not a record header then
        # its body (SSL_has_pending() then counts what it holds undecrypted)
        _ossl.SSL_ctrl(sp, 41, 1, NULL)         # SSL_set_read_ahead(sp, 1)
        return 0

    # --- the SSL object and its BIOs (OpenSSL directly, or the ssl module's methods) ----------

    cdef int _in_feed(self, data) except -1:
        """Encrypted bytes from the peer into the incoming BIO."""
        cdef Py_buffer pb
        cdef int n
        if self._nssl == NULL or (<engine_ssl_bio_head *><PyObject *>self._incoming).eof_written:
            self._in_write(data)
            return 0
        PyObject_GetBuffer(data, &pb, PyBUF_SIMPLE)
        try:
            if pb.len > 0x7fffffff:
                self._in_write(data)
            elif pb.len:
                n = _ossl.BIO_write(self._nin, pb.buf, <int>pb.len)
                if n != pb.len:
                    self._in_write(data[n:] if n > 0 else data)    # the ssl module's error
        finally:
            PyBuffer_Release(&pb)
        return 0

    cdef inline Py_ssize_t _in_pending(self) except -1:
        """Encrypted bytes waiting in the incoming BIO."""
        if self._nssl != NULL:
            return <Py_ssize_t>_ossl.BIO_ctrl_pending(self._nin)
        return self._incoming.pending

    cdef inline Py_ssize_t _out_pending(self) except -1:
        """Encrypted bytes waiting in the outgoing BIO."""
        if self._nssl != NULL:
            return <Py_ssize_t>_ossl.BIO_ctrl_pending(self._nout)
        return self._outgoing.pending

    cdef object _out_take(self):
        """Everything the outgoing BIO holds, as bytes (b'' if nothing)."""
        cdef size_t size
        cdef int got
        if self._nssl == NULL:
            return self._out_read()
        size = _ossl.BIO_ctrl_pending(self._nout)
        if size == 0:
            return b''
        if size > 0x7fffffff:
            size = 0x7fffffff
        data = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>size)
        got = _ossl.BIO_read(self._nout, PyBytes_AS_STRING(data), <int>size)
        if got != <int>size:            # a memory BIO gives what it holds: not expected
            raise RuntimeError(f"TLS outgoing BIO read {got} of {size} bytes")
        return data

    cdef inline bint _ssl_has_pending(self) except -1:
        """Whether SSL holds decrypted bytes not read yet."""
        if self._nssl != NULL:
            return _ossl.SSL_has_pending(self._nssl) > 0
        return self._c_pending() > 0

    cdef Py_ssize_t _ssl_read(self, char *p, Py_ssize_t want) except -3:
        """Decrypt up to want bytes into p: the count (> 0); 0 when the peer closed the TLS
        session (close_notify); -2 when SSL needs more bytes from the peer (asyncio also takes
        SSLSyscallError so). Errors raise what the ssl module raises."""
        cdef size_t n = 0
        cdef int err
        if self._nssl != NULL:
            if _ossl.SSL_read_ex(self._nssl, p, <size_t>want, &n) == 1:
                return <Py_ssize_t>n
            err = _ossl.SSL_get_error(self._nssl, 0)
            if err == _SSL_ERROR_WANT_READ:
                return -2
            if err == _SSL_ERROR_ZERO_RETURN \
                    and _ossl.SSL_get_shutdown(self._nssl) == _SSL_RECEIVED_SHUTDOWN:
                return 0
            # anything else: the ssl module repeats the read and raises its own error
        view = PyMemoryView_FromMemory(p, want, PyBUF_WRITE)
        try:
            return self._c_read(want, view)
        except _SSLAgainErrors:
            return -2
        finally:
            view.release()

    cdef Py_ssize_t _ssl_write(self, data) except -1:
        """Encrypt data into the outgoing BIO: the count of bytes taken, 0 when SSL must read
        from the peer first. Errors raise what the ssl module raises."""
        cdef Py_buffer pb
        cdef size_t n = 0
        cdef int ok, err
        if self._nssl != NULL:
            PyObject_GetBuffer(data, &pb, PyBUF_SIMPLE)
            try:
                if pb.len == 0:
                    return 0
                ok = _ossl.SSL_write_ex(self._nssl, pb.buf, <size_t>pb.len, &n)
            finally:
                PyBuffer_Release(&pb)
            if ok == 1:
                return <Py_ssize_t>n
            if _ossl.SSL_get_error(self._nssl, 0) == _SSL_ERROR_WANT_READ:
                return 0
        try:
            return self._c_write(data)
        except _SSLAgainErrors:
            return 0

    @property
    def _openssl_direct(self):
        """True if this connection calls OpenSSL directly (False: the ssl module's methods)."""
        return self._nssl != NULL

    def __repr__(self):
        return (f'<{type(self).__name__} state={_TLS_STATE_NAMES[self._st]} '
                f'server_side={self._server_side}>')

    # --- what tests and the server read (asyncio's attribute names) -------------------------

    @property
    def _write_backlog(self):
        return self._backlog

    @property
    def _state(self):
        return _TLS_STATE_NAMES[self._st]

    def _established(self):
        """True once the application protocol has been told connection_made() (the handshake
        is over) and not yet connection_lost()."""
        return self._app_state == APP_CON_MADE or self._app_state == APP_EOF

    # --- the application side -----------------------------------------------------------------

    def _set_app_protocol(self, app_protocol):
        self._app_protocol = app_protocol
        self._app_is_buffer = (hasattr(app_protocol, 'get_buffer')
                               and isinstance(app_protocol, aio_BufferedProtocol))

    cdef _get_app_transport(self):
        if self._app_transport is None:
            if self._app_transport_created:
                raise RuntimeError('Creating _SSLProtocolTransport twice')
            self._app_transport = SSLTransport(self._loop, self)
            self._app_transport_created = True
        return self._app_transport

    cdef int _wakeup_waiter(self, exc=None) except -1:
        waiter = self._waiter
        if waiter is None:
            return 0
        self._waiter = None
        if not waiter.cancelled():
            if exc is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(None)
        return 0

    def _get_extra_info(self, name, default=None):
        if name in self._extra:
            return self._extra[name]
        if self._transport is not None:
            return self._transport.get_extra_info(name, default)
        return default

    cdef int _set_state(self, int new_state) except -1:
        # the states run in one order; UNWRAPPED may follow any
        if new_state == TLS_UNWRAPPED or new_state == self._st + 1:
            self._st = new_state
            return 0
        raise RuntimeError(f'cannot switch state from {_TLS_STATE_NAMES[self._st]} '
                           f'to {_TLS_STATE_NAMES[new_state]}')

    # --- asyncio.Protocol, for the transport underneath ---------------------------------------

    def connection_made(self, transport):
        self._transport = transport
        self._raw = transport if type(transport) is SocketTransport else None
        self._start_handshake()

    def connection_lost(self, exc):
        self._backlog.clear()
        self._backlog_size = 0
        self._out_take()
        self._conn_lost += 1
        app_transport = self._app_transport
        if app_transport is not None:
            app_transport._closed = True
        if self._st != TLS_DO_HANDSHAKE and (self._app_state == APP_CON_MADE
                                                or self._app_state == APP_EOF):
            self._app_state = APP_CON_LOST
            self._loop.call_soon(self._app_protocol.connection_lost, exc)
        self._set_state(TLS_UNWRAPPED)
        self._transport = None
        self._raw = None
        self._app_transport = None
        self._app_protocol = None
        self._wakeup_waiter(exc)
        if self._shutdown_handle is not None:
            self._shutdown_handle.cancel()
            self._shutdown_handle = None
        if self._handshake_handle is not None:
            self._handshake_handle.cancel()
            self._handshake_handle = None

    def data_received(self, data):
        self._in_feed(data)
        self._in_left = -1
        cdef int state = self._st
        if state == TLS_WRAPPED:
            self._do_read(True)
        elif state == TLS_DO_HANDSHAKE:
            self._do_handshake()
        elif state == TLS_FLUSHING:
            self._do_flush()
        elif state == TLS_SHUTDOWN:
            self._do_shutdown()

    def eof_received(self):
        self._eof_received = True
        try:
            if self._loop._debug:
                _logger().debug("%r received EOF", self)
            if self._st == TLS_DO_HANDSHAKE:
                self._on_handshake_complete(ConnectionResetError)
            elif self._st == TLS_WRAPPED:
                self._set_state(TLS_FLUSHING)
                if self._app_reading_paused:
                    return True
                self._do_flush()
            elif self._st == TLS_FLUSHING:
                self._do_write()
                self._set_state(TLS_SHUTDOWN)
                self._do_shutdown()
            elif self._st == TLS_SHUTDOWN:
                self._do_shutdown()
        except Exception:
            self._transport.close()
            raise

    def pause_writing(self):
        # the transport underneath is full: keep what SSL produces in the outgoing BIO
        self._ssl_writing_paused = True

    def resume_writing(self):
        self._ssl_writing_paused = False
        self._process_outgoing()

    # --- handshake ------------------------------------------------------------------------------

    cdef int _start_handshake(self) except -1:
        if self._loop._debug:
            _logger().debug("%r starts SSL handshake", self)
            self._handshake_start = self._loop.time()
        self._set_state(TLS_DO_HANDSHAKE)
        self._handshake_handle = self._loop.call_later(self._handshake_timeout,
                                                       self._check_handshake_timeout)
        self._do_handshake()
        return 0

    def _check_handshake_timeout(self):
        if self._st == TLS_DO_HANDSHAKE:
            self._fatal_error(ConnectionAbortedError(
                f"SSL handshake is taking longer than {self._handshake_timeout} seconds: "
                f"aborting the connection"))

    cdef int _do_handshake(self) except -1:
        self._in_left = -1
        try:
            self._c_handshake()
        except _SSLAgainErrors:
            self._process_outgoing()
        except _SSLError as exc:
            self._on_handshake_complete(exc)
        else:
            self._on_handshake_complete(None)
        return 0

    cdef int _on_handshake_complete(self, handshake_exc) except -1:
        if self._handshake_handle is not None:
            self._handshake_handle.cancel()
            self._handshake_handle = None
        sslobj = self._sslobj
        try:
            if handshake_exc is not None:
                raise handshake_exc
            self._set_state(TLS_WRAPPED)
            peercert = sslobj.getpeercert()
        except Exception as exc:
            self._set_state(TLS_UNWRAPPED)
            if isinstance(exc, _CertificateError):
                msg = 'SSL handshake failed on verifying the certificate'
            else:
                msg = 'SSL handshake failed'
            self._fatal_error(exc, msg)
            self._wakeup_waiter(exc)
            return 0
        if self._loop._debug:
            dt = self._loop.time() - self._handshake_start
            _logger().debug("%r: SSL handshake took %.1f ms", self, dt * 1e3)
        self._extra.update(peercert=peercert, cipher=sslobj.cipher(),
                           compression=sslobj.compression(), ssl_object=sslobj)
        if self._app_state == APP_INIT:
            self._app_state = APP_CON_MADE
            self._app_protocol.connection_made(self._get_app_transport())
        self._wakeup_waiter()
        self._do_read()
        return 0

    # --- shutdown -------------------------------------------------------------------------------

    cdef int _start_shutdown(self) except -1:
        if self._st >= TLS_FLUSHING or self._st == TLS_UNWRAPPED:
            return 0
        if self._app_transport is not None:
            self._app_transport._closed = True
        if self._st == TLS_DO_HANDSHAKE:
            self._abort(None)
            return 0
        self._set_state(TLS_FLUSHING)
        self._shutdown_handle = self._loop.call_later(self._shutdown_timeout,
                                                      self._check_shutdown_timeout)
        self._do_flush()
        return 0

    def _check_shutdown_timeout(self):
        if self._st == TLS_FLUSHING or self._st == TLS_SHUTDOWN:
            self._transport._force_close(_aio_TimeoutError('SSL shutdown timed out'))

    cdef int _do_flush(self) except -1:
        self._do_read()
        self._set_state(TLS_SHUTDOWN)
        self._do_shutdown()
        return 0

    cdef int _do_shutdown(self) except -1:
        self._in_left = -1
        try:
            if not self._eof_received:
                self._c_unwrap()
        except _SSLAgainErrors:
            self._process_outgoing()
        except _SSLError as exc:
            self._on_shutdown_complete(exc)
        else:
            self._process_outgoing()
            self._call_eof_received()
            self._on_shutdown_complete(None)
        return 0

    cdef int _on_shutdown_complete(self, shutdown_exc) except -1:
        if self._shutdown_handle is not None:
            self._shutdown_handle.cancel()
            self._shutdown_handle = None
        if shutdown_exc:
            self._fatal_error(shutdown_exc)
        else:
            self._loop.call_soon(self._transport.close)
        return 0

    def _abort(self, exc=None):
        self._set_state(TLS_UNWRAPPED)
        if self._transport is not None:
            self._transport._force_close(exc)

    # --- writing --------------------------------------------------------------------------------

    cdef int _write_app(self, data) except -1:
        """write(data) of the application transport: encrypted and handed down at once."""
        cdef Py_ssize_t size, n
        if self._st != TLS_WRAPPED:
            if self._st == TLS_DO_HANDSHAKE:
                return self._append_backlog(data)
            return self._write_after_close()
        if self._backlog:
            self._append_backlog(data)
            return self._write_backlog_now()
        try:
            n = self._ssl_write(data)                # 0: renegotiation, SSL must read first
        except Exception as exc:
            self._fatal_error(exc, 'Fatal error on SSL protocol')
            return 0
        size = len(data)
        if n < size:
            self._append_backlog(memoryview(data)[n:] if n else data)
        try:
            self._process_outgoing()
        except Exception as exc:
            self._fatal_error(exc, 'Fatal error on SSL protocol')
        return 0

    cdef int _write_app_lines(self, list_of_data) except -1:
        cdef Py_ssize_t total = 0
        pieces = list(list_of_data)
        for data in pieces:
            total += len(data)
        if total == 0:
            if self._st != TLS_WRAPPED and self._st != TLS_DO_HANDSHAKE:
                self._write_after_close()
            return 0
        if total <= _TLS_JOIN_MAX and len(pieces) > 1:
            return self._write_app(b''.join(pieces))
        if self._st != TLS_WRAPPED:
            if self._st != TLS_DO_HANDSHAKE:
                return self._write_after_close()
        for data in pieces:
            self._append_backlog(data)
        if self._st == TLS_WRAPPED:
            self._write_backlog_now()
        return 0

    cdef int _write_after_close(self) except -1:
        if self._conn_lost >= _LOG_CONNLOST_WRITES:
            _logger().warning('SSL connection is closed')
        self._conn_lost += 1
        return 0

    cdef int _append_backlog(self, data) except -1:
        # kept until SSL takes it: a writable buffer may be reused by the caller, so it is copied
        cdef Py_ssize_t size = len(data)
        if not size:
            return 0
        if type(data) is not bytes:
            if not (isinstance(data, memoryview) and (<memoryview>data).readonly):
                data = bytes(data)
        self._backlog.append(data)
        self._backlog_size += size
        return 0

    def _test__append_write_backlog(self, data):
        self._backlog.append(data)
        self._backlog_size += len(data)

    cdef int _write_backlog_now(self) except -1:
        try:
            self._do_write()
        except Exception as exc:
            self._fatal_error(exc, 'Fatal error on SSL protocol')
        return 0

    cdef int _do_write(self) except -1:
        cdef Py_ssize_t n, size
        backlog = self._backlog
        while backlog:
            data = backlog[0]
            n = self._ssl_write(data)
            if n == 0:
                break                           # SSL must read from the peer first
            size = len(data)
            if n < size:
                backlog[0] = memoryview(data)[n:]
                self._backlog_size -= n
            else:
                backlog.popleft()
                self._backlog_size -= size
        self._process_outgoing()
        return 0

    cdef int _process_outgoing(self) except -1:
        if not self._ssl_writing_paused:
            data = self._out_take()
            if data:
                if self._raw is not None and not self._raw._sendfile_busy:
                    self._raw._write(data)
                else:
                    self._transport.write(data)
        if (self._app_writing_paused or self._backlog_size or self._ssl_writing_paused
                or self._out_high == 0):
            self._app_writing_control()
        return 0

    def _get_write_buffer_size(self):
        return self._out_pending() + self._backlog_size

    def _control_app_writing(self):
        self._app_writing_control()

    cdef int _app_writing_control(self) except -1:
        cdef Py_ssize_t size = self._out_pending() + self._backlog_size
        if size >= self._out_high and not self._app_writing_paused:
            self._app_writing_paused = True
            self._tell_app(True)
        elif size <= self._out_low and self._app_writing_paused:
            self._app_writing_paused = False
            self._tell_app(False)
        return 0

    cdef int _tell_app(self, bint pause) except -1:
        try:
            if pause:
                self._app_protocol.pause_writing()
            else:
                self._app_protocol.resume_writing()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                'message': ('protocol.pause_writing() failed' if pause
                            else 'protocol.resume_writing() failed'),
                'exception': exc, 'transport': self._app_transport, 'protocol': self})
        return 0

    def _set_write_buffer_limits(self, high=None, low=None):
        self._out_high, self._out_low = _water_marks(high, low, _TLS_WRITE_HIGH_KB)

    def _get_write_buffer_limits(self):
        return (self._out_low, self._out_high)

    # --- reading --------------------------------------------------------------------------------

    cdef bint _more_after_read(self, Py_ssize_t asked) except -1:
        # after a read that was asked for `asked` bytes: is there more to decrypt? SSL_read
        # returns the rest of one record at most, so a read asked for a whole record's worth
        # leaves nothing decrypted inside SSL (no pending() call, which releases the GIL)
        self._in_left = self._in_pending()
        if self._in_left:
            return True
        if asked >= _TLS_RECORD_MAX and self._nssl == NULL:
            return False
        return self._ssl_has_pending()

    cdef bint _readable(self) except -1:
        # anything to decrypt: encrypted bytes in the incoming BIO, or decrypted ones in SSL
        return self._in_pending() > 0 or self._ssl_has_pending()

    cdef int _do_read(self, bint fresh=False) except -1:
        # fresh: encrypted bytes were just written into the incoming BIO
        if self._st != TLS_WRAPPED and self._st != TLS_FLUSHING:
            return 0
        try:
            if not self._app_reading_paused:
                if self._app_is_buffer:
                    self._read_buffered(fresh)
                else:
                    self._read_copied(fresh)
                if self._backlog:
                    self._do_write()
                elif self._st != TLS_UNWRAPPED:
                    self._process_outgoing()
            if self._transport is not None:
                self._ssl_reading_control()
        except Exception as exc:
            self._fatal_error(exc, 'Fatal error on SSL protocol')
        return 0

    cdef int _read_copied(self, bint fresh) except -1:
        # decrypt everything there is into a chunk of the loop's buffer pool; hand it to the
        # application as one bytes object (several when more than a chunk arrived)
        cdef BufferPool pool = <BufferPool>self._loop._rpool
        cdef char *buf
        cdef Py_ssize_t off = 0, n = 1, cap = READ_MAX, want
        cdef bint eof = False
        if not fresh and not self._readable():
            return 0
        self._in_left = -1
        buf = pool._take()
        try:
            while True:
                want = cap - off
                self._in_left = -1              # known again only after a read that returns
                n = self._ssl_read(buf + off, want)
                if n == -2:
                    break
                if n == 0:
                    eof = True
                    break
                off += n
                if off == cap or not self._more_after_read(want):
                    break
            data = PyBytes_FromStringAndSize(buf, off) if off else None
        finally:
            pool._give(buf)
        if data is not None:
            self._app_protocol.data_received(data)
            if off == cap and not eof:
                # a full chunk: the rest on the next turn of the loop (other connections first)
                self._loop.call_soon(self._resume_read)
                return 0
        if eof:
            self._call_eof_received()
            self._start_shutdown()
        return 0

    def _resume_read(self):
        if self._st == TLS_WRAPPED or self._st == TLS_FLUSHING:
            self._do_read()

    cdef int _read_buffered(self, bint fresh) except -1:
        cdef Py_ssize_t offset = 0, wants, n = 1, want
        cdef Py_buffer pb
        if not fresh and not self._readable():
            return 0
        self._in_left = -1
        buf = self._app_protocol.get_buffer(self._in_pending())
        PyObject_GetBuffer(buf, &pb, PyBUF_WRITABLE)
        try:
            wants = pb.len
            if not wants:
                raise RuntimeError('get_buffer() returned an empty buffer')
            while offset < wants:
                want = wants - offset
                self._in_left = -1
                n = self._ssl_read(<char *>pb.buf + offset, want)
                if n <= 0:                      # 0: closed by the peer, -2: wants more bytes
                    break
                offset += n
                if not self._more_after_read(want):
                    break
        finally:
            PyBuffer_Release(&pb)
        if offset:
            self._app_protocol.buffer_updated(offset)
        if n == 0:
            self._call_eof_received()
            self._start_shutdown()
        elif offset == wants and self._readable():
            self._loop.call_soon(self._resume_read)
        return 0

    cdef int _call_eof_received(self) except -1:
        try:
            if self._app_state == APP_CON_MADE:
                self._app_state = APP_EOF
                keep_open = self._app_protocol.eof_received()
                if keep_open:
                    _logger().warning('returning true from eof_received() '
                                      'has no effect when using ssl')
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._fatal_error(exc, 'Error calling eof_received()')
        return 0

    def _pause_reading(self):
        self._app_reading_paused = True

    def _resume_reading(self):
        if self._app_reading_paused:
            self._app_reading_paused = False
            self._loop.call_soon(self._resume_app_reading)

    def _resume_app_reading(self):
        if self._st == TLS_WRAPPED:
            self._do_read()
        elif self._st == TLS_FLUSHING:
            self._do_flush()
        elif self._st == TLS_SHUTDOWN:
            self._do_shutdown()

    def _is_app_reading(self):
        return not self._app_reading_paused

    def _is_app_writing_paused(self):
        return self._app_writing_paused

    def _control_ssl_reading(self):
        self._ssl_reading_control()

    cdef int _ssl_reading_control(self) except -1:
        cdef Py_ssize_t size = self._in_left if self._in_left >= 0 else self._in_pending()
        if size >= self._in_high and not self._ssl_reading_paused:
            self._ssl_reading_paused = True
            self._transport.pause_reading()
        elif size <= self._in_low and self._ssl_reading_paused:
            self._ssl_reading_paused = False
            self._transport.resume_reading()
        return 0

    def _set_read_buffer_limits(self, high=None, low=None):
        self._in_high, self._in_low = _water_marks(high, low, _TLS_READ_HIGH_KB)

    def _get_read_buffer_limits(self):
        return (self._in_low, self._in_high)

    def _get_read_buffer_size(self):
        return self._in_pending()

    # --- errors ---------------------------------------------------------------------------------

    def _fatal_error(self, exc, message='Fatal error on transport'):
        if self._transport is not None:
            self._transport._force_close(exc)
        if isinstance(exc, OSError):
            if self._loop._debug:
                _logger().debug("%r: %s", self, message, exc_info=True)
        elif not isinstance(exc, _aio_CancelledError):
            self._loop.call_exception_handler({
                'message': message, 'exception': exc,
                'transport': self._transport, 'protocol': self})


class SSLTransport(_asyncio.Transport):
    """The transport of an application protocol over TLS (asyncio's _SSLProtocolTransport):
    every method is a call into its :class:`SSLProtocol`."""

    __slots__ = ('_loop', '_ssl_protocol', '_closed')

    _start_tls_compatible = True
    _sendfile_compatible = _SendfileMode.FALLBACK

    def __init__(self, loop, ssl_protocol):
        self._loop = loop
        self._ssl_protocol = ssl_protocol
        self._closed = False

    def __repr__(self):
        return f'<SSLTransport closed={self._closed} {self._ssl_protocol!r}>'

    def get_extra_info(self, name, default=None):
        return self._ssl_protocol._get_extra_info(name, default)

    def set_protocol(self, protocol):
        self._ssl_protocol._set_app_protocol(protocol)

    def get_protocol(self):
        return self._ssl_protocol._app_protocol

    def is_closing(self):
        return self._closed

    def close(self):
        if not self._closed:
            self._closed = True
            if self._ssl_protocol is not None:
                (<SSLProtocol>self._ssl_protocol)._start_shutdown()
        else:
            self._ssl_protocol = None

    def __del__(self):
        if not self._closed:
            self._closed = True
            _warnings.warn("unclosed transport <SSLTransport object>", ResourceWarning)

    def is_reading(self):
        return self._ssl_protocol._is_app_reading()

    def pause_reading(self):
        self._ssl_protocol._pause_reading()

    def resume_reading(self):
        self._ssl_protocol._resume_reading()

    def set_write_buffer_limits(self, high=None, low=None):
        self._ssl_protocol._set_write_buffer_limits(high, low)
        self._ssl_protocol._control_app_writing()

    def get_write_buffer_limits(self):
        return self._ssl_protocol._get_write_buffer_limits()

    def get_write_buffer_size(self):
        return self._ssl_protocol._get_write_buffer_size()

    def set_read_buffer_limits(self, high=None, low=None):
        self._ssl_protocol._set_read_buffer_limits(high, low)
        self._ssl_protocol._control_ssl_reading()

    def get_read_buffer_limits(self):
        return self._ssl_protocol._get_read_buffer_limits()

    def get_read_buffer_size(self):
        return self._ssl_protocol._get_read_buffer_size()

    @property
    def _protocol_paused(self):
        return self._ssl_protocol._is_app_writing_paused()

    def write(self, data):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expecting a bytes-like instance, "
                            f"got {type(data).__name__}")
        if data:
            proto = self._ssl_protocol
            if proto is None:
                raise RuntimeError('write() on a closed TLS transport')
            (<SSLProtocol>proto)._write_app(data)

    def writelines(self, list_of_data):
        proto = self._ssl_protocol
        if proto is None:
            raise RuntimeError('writelines() on a closed TLS transport')
        (<SSLProtocol>proto)._write_app_lines(list_of_data)

    def write_eof(self):
        raise NotImplementedError("TLS has no half-close: write_eof() is not supported")

    def can_write_eof(self):
        return False

    def abort(self):
        self._force_close(None)

    def _force_close(self, exc):
        self._closed = True
        if self._ssl_protocol is not None:
            self._ssl_protocol._abort(exc)

    def _test__append_write_backlog(self, data):
        self._ssl_protocol._test__append_write_backlog(data)
