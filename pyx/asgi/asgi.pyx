# engine._asgi: the ASGI 3.0 HTTP/1.1 (+ WebSocket) server protocol, on engine._http's parser.
#
# Beside it in pyx/asgi/: ws_session.pxi (the ASGI websocket scope) and h2_session.pxi (ASGI
# over HTTP/2). It cimports engine._http's HttpParser, engine._ws's FrameParser, engine._h2's
# H2Connection and engine._loop's SocketTransport (pyx/engine/*.pxd); nothing cimports this
# module, so it has no .pxd. Python types: engine/_asgi.pyi.
#
# HTTP/2 (ServerConfig.http_mode): on a cleartext connection whose first bytes are the HTTP/2
# connection preface (RFC 9113 §3.4, "prior knowledge"), or on TLS when ALPN selected "h2"
# (§3.2), the connection is handed to an H2Session; everything else is HTTP/1.1 as before.
#
# One HttpProtocol per connection. It *is* the parser (a Cython subclass of engine._http's
# HttpParser whose hooks are C calls), and an asyncio.Protocol for any loop. Per request it
# builds the scope and a RequestCycle whose receive()/send() are the ASGI callables; the app runs
# as a task started eagerly (3.12+: asyncio's eager_start -- a hello-world app answers inside
# data_received, no extra loop iteration).
#
# Facts from RFC 9112 this file relies on:
#   * responses go out in request order: the parser is paused at the end of a request whose
#     response is not finished, and resumed (it then parses what was pipelined) when it is;
#   * a response without Content-Length to an HTTP/1.1 request is chunked; to HTTP/1.0 it is
#     delimited by closing the connection;
#   * HEAD responses carry the headers of the GET response and no body;
#   * 1xx/204/304 responses have no body and no Content-Length framing.
# Timeouts (keep-alive idle, request header, request body) run on one re-armed loop timer.

cimport cython
from cpython.object cimport PyObject
from includes.python cimport PyObject_Vectorcall
from engine._http cimport HttpParser, response_head, current_date
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from engine._ws cimport FrameParser
from engine._loop cimport SocketTransport, Loop
from engine._h2 cimport H2Connection, H2Limits

cdef class RequestCycle
cdef class WebSocketSession(FrameParser)
cdef class H2Session(H2Connection)
cdef class _WriteBatch

import asyncio as _asyncio
import errno as _errno
import logging as _logging
import os as _os
import sys as _sys
import time as _time
from stat import S_ISREG as _S_ISREG, S_ISDIR as _S_ISDIR
from base64 import b64decode as _b64decode
from urllib.parse import unquote as _unquote

from engine import _http
from engine import _ws

# the layout of one worker's block of counters (engine/serve/metrics.py reads it by M_LAYOUT)
cdef enum:
    M_STATUS = 0          # 5 counters: responses 1xx..5xx
    M_DURATION_SUM = 5    # seconds, all responses the app made
    M_DURATION_COUNT = 6
    M_BUCKETS = 7         # M_NBUCKETS per-bucket (not cumulative) counts, then +Inf
    M_NBUCKETS = 13
    M_OPEN = 21           # gauge: open connections
    M_CONNECTIONS = 22    # connections accepted
    M_BYTES_IN = 23       # bytes received from clients (HTTP and WebSocket)
    M_BYTES_OUT = 24      # response body bytes sent
    M_WS_OPEN = 25        # gauge: open WebSocket sessions
    M_WS_TOTAL = 26       # WebSocket sessions accepted
    M_SIZE = 32           # doubles per block (the rest: engine/serve/metrics.py's own)


cdef object HttpParserError = _http.HttpParserError
cdef object build_response_head = _http.build_response_head
cdef object http_chunk = _http.chunk
cdef object last_chunk = _http.last_chunk
cdef object http_date = _http.http_date
cdef object Limits = _http.Limits

cdef object _logger = _logging.getLogger("engine.http")
cdef object _access_logger = _logging.getLogger("engine.access")

cdef bint _EAGER = _sys.version_info >= (3, 12)
cdef object _Task = _asyncio.Task
cdef object _CancelledError = _asyncio.CancelledError

cdef dict _ASGI_INFO = {"version": "3.0", "spec_version": "2.4"}
cdef bytes _CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
cdef bytes _SWITCH_H2C = (b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                          b"Upgrade: h2c\r\n\r\n")
cdef Py_ssize_t BODY_HIGH_WATER = 256 * 1024    # buffered request body that pauses reading
cdef Py_ssize_t SMALL_BODY = 16 * 1024          # copied into the head's buffer, one write
cdef Py_ssize_t BATCH_MAX = 64 * 1024          # response bytes held for the end of an iteration
cdef long long DISCARD_MAX = 64 * 1024          # unread request body we read and drop to keep
                                                # the connection after an early response
cdef double DRAIN_IDLE_GRACE = 1.0              # shutdown(): how long an idle keep-alive
                                                # connection may still send a request

# ServerConfig.http_mode (engine serve --http)
cdef enum:
    HTTP_AUTO = 0       # HTTP/1.1 and HTTP/2 (preface on cleartext, ALPN on TLS)
    HTTP_1 = 1          # HTTP/1.1 only
    HTTP_2 = 2          # HTTP/2 only

cdef dict _HTTP_MODES = {"auto": HTTP_AUTO, "1": HTTP_1, "2": HTTP_2}

# connection states for the timer
cdef enum:
    T_NONE = 0
    T_IDLE = 1          # keep-alive: waiting for a request
    T_HEADER = 2        # a request started, its header section is not complete
    T_BODY = 3          # the app waits for request body


cdef class _Date:
    """The Date header value (engine._http caches it for the second)."""

    cdef inline bytes get(self):
        return current_date()


cdef _Date _date = _Date()


cdef inline double _now() noexcept:
    """CLOCK_MONOTONIC seconds: the connection deadlines' clock (any loop's time() may differ:
    timers are scheduled with call_later, deadlines compared with this)."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef dict _METHODS = {m.encode(): m for m in (
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")}


cdef inline str _method_str(bytes method):
    cdef const char *p = method
    if len(method) == 3 and p[0] == b'G' and p[1] == b'E' and p[2] == b'T':
        return "GET"                          # most requests: no hashing of a new bytes
    m = _METHODS.get(method)
    return <str>m if m is not None else method.decode("ascii")


cdef inline bint _has_upper(bytes b) noexcept:
    cdef const unsigned char *p = <const unsigned char *><char *>b
    cdef Py_ssize_t i
    for i in range(len(b)):
        if 0x41 <= p[i] <= 0x5A:
            return True
    return False


cdef bint _forwarded(list headers) except -1:
    """Whether a request has an X-Forwarded-For or X-Forwarded-Proto field (names are
    lowercase in the scope)."""
    cdef bytes name
    cdef Py_ssize_t n
    for item in headers:
        name = <bytes>(<tuple>item)[0]
        n = len(name)
        if (n == 15 and name == b"x-forwarded-for") or (n == 17 and name == b"x-forwarded-proto"):
            return True
    return False


cdef inline str _decode_path(bytes raw):
    if b"%" in raw:
        return _unquote(raw.decode("latin-1"), encoding="utf-8", errors="surrogateescape")
    return raw.decode("latin-1")


@cython.final
cdef class ServerConfig:
    """What the protocol needs from engine.serve.config.Config, resolved once per worker."""
    cdef public object app
    cdef public object state                 # engine.serve.protocols.ServerState (or None)
    cdef public str root_path
    cdef public double keep_alive
    cdef public double header_timeout
    cdef public double body_timeout
    cdef public double ws_ping_interval
    cdef public double ws_ping_timeout
    cdef public Py_ssize_t ws_max_size
    cdef public bint ws_per_message_deflate  # negotiate permessage-deflate (RFC 7692)
    cdef public object limits
    cdef public list default_headers         # [(name, value)] bytes, e.g. server
    cdef public bint date_header
    cdef public bint access_log
    cdef public object access_format         # compiled --access-log-format, None: default
    cdef public Py_ssize_t limit_concurrency  # 0: none
    cdef public object lifespan_state        # dict copied into each scope["state"], or None
    cdef public object connections           # set of live protocols (shutdown, concurrency)
    cdef public str scheme                   # "http" or "https"
    cdef public bint zerocopy
    cdef public object tls_server_cert       # PEM of the served certificate (tls extension)
    cdef double* metrics                     # this worker's block of engine.serve.metrics, or NULL
    cdef object metrics_view                 # keeps the block's memory alive
    cdef public bint batch_writes            # responses leave at the end of a loop iteration
    cdef object write_batch                  # _WriteBatch of the loop serving this config
    cdef public int http_mode                # HTTP_AUTO, HTTP_1, HTTP_2
    cdef public object h2_limits             # engine._h2.H2Limits (None: its defaults)
    cdef public Py_ssize_t h2_connections    # live HTTP/2 connections (limit_concurrency)
    cdef public Py_ssize_t h2_streams        # HTTP/2 streams being answered
    cdef public object proxy                 # engine.serve.proxy_headers middleware whose work
                                             # HTTP/1.1 does itself (None: none)
    cdef public object proxy_app             # the app it wraps (what HTTP/1.1 requests call)

    def __init__(self, app, *, state=None, root_path="", keep_alive=5.0, header_timeout=10.0,
                 body_timeout=30.0, ws_ping_interval=20.0, ws_ping_timeout=20.0,
                 ws_max_size=16 * 1024 * 1024, limits=None, default_headers=None,
                 date_header=True, access_log=False, limit_concurrency=0, lifespan_state=None,
                 connections=None, scheme="http", tls_server_cert=None, batch_writes=True,
                 ws_per_message_deflate=True, access_format=None, http="auto",
                 h2_limits=None):
        self.app = app
        self.state = state
        self.root_path = root_path
        self.keep_alive = keep_alive
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.ws_ping_interval = ws_ping_interval or 0.0
        self.ws_ping_timeout = ws_ping_timeout or 0.0
        self.ws_max_size = ws_max_size
        self.ws_per_message_deflate = ws_per_message_deflate
        self.limits = limits if limits is not None else Limits()
        self.default_headers = list(default_headers or [])
        self.date_header = date_header
        self.access_log = access_log
        self.access_format = access_format
        self.limit_concurrency = limit_concurrency or 0
        self.lifespan_state = lifespan_state
        self.connections = connections if connections is not None else set()
        self.scheme = scheme
        self.zerocopy = True
        self.tls_server_cert = tls_server_cert
        self.batch_writes = batch_writes
        self.metrics = NULL
        if str(http) not in _HTTP_MODES:
            raise ValueError(f"http must be one of 'auto', '1', '2', not {http!r}")
        self.http_mode = _HTTP_MODES[str(http)]
        if h2_limits is not None and not isinstance(h2_limits, H2Limits):
            raise TypeError("h2_limits must be an engine._h2.H2Limits")
        self.h2_limits = h2_limits

    def set_metrics(self, block):
        """Count into ``block`` (a writable buffer of doubles, laid out as
        engine.serve.metrics describes), or stop counting with None."""
        cdef double[::1] view
        if block is None:
            self.metrics = NULL
            self.metrics_view = None
            return
        view = block
        if view.shape[0] < M_SIZE:
            raise ValueError(f"a metrics block has {M_SIZE} doubles, got {view.shape[0]}")
        self.metrics_view = view
        self.metrics = &view[0]


@cython.final
cdef class HttpProtocol(HttpParser):
    """asyncio.Protocol: HTTP/1.1 for one connection, requests handed to an ASGI app."""
    cdef:
        ServerConfig cfg
        object loop
        object transport
        object server_addr
        object client_addr
        str scheme
        RequestCycle cycle            # the request being answered, or None
        bint closing
        bint draining                 # shutdown(): close once the current response is done
        bint write_paused
        object drain_waiter           # future: resume_writing()
        bint read_paused_body         # reading paused because of request body backpressure
        bint read_paused              # reading paused while pipelined requests wait
        object timer
        int timer_kind
        double deadline
        bint tls
        object ws                     # WebSocketSession after an upgrade
        object h2                     # H2Session once the connection speaks HTTP/2
        bint sniff                    # the first bytes may be the HTTP/2 preface
        bytes sniffed                 # a prefix of the preface received so far
        list h2c_request              # the headers of an `Upgrade: h2c` request being taken
        dict scope_base               # the http scope's per-connection fields
        dict tls_info                 # the ASGI "tls" extension of this connection, or None
        _WriteBatch batch             # where this connection's output waits (None: not batched)
        list out                      # response bytes not yet handed to the transport
        Py_ssize_t out_size
        bint out_queued               # in batch's list
        bint gather_ok                # transport.writelines() honours the write water marks
        bint proxy_trusted            # cfg.proxy trusts this connection's peer
        object __weakref__

    def __init__(self, ServerConfig cfg, loop=None):
        HttpParser.__init__(self, cfg.limits)
        self.cfg = cfg
        self.loop = loop if loop is not None else _asyncio.get_event_loop()
        self.scheme = cfg.scheme
        _note_loop_class(self.loop)

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport):
        cdef ServerConfig cfg = self.cfg
        self.transport = transport
        cfg.connections.add(self)
        if cfg.metrics != NULL:
            cfg.metrics[M_OPEN] += 1
            cfg.metrics[M_CONNECTIONS] += 1
        if cfg.batch_writes:
            b = cfg.write_batch
            if b is None or (<_WriteBatch>b).loop is not self.loop:
                b = cfg.write_batch = _WriteBatch(self.loop)
            self.batch = <_WriteBatch>b
            self.out = []
        # engine's socket transport sends a list with one sendmsg(2) and pauses the protocol as
        # write() does; CPython's selector transport (3.12/3.13 before gh-127655) does not pause
        # in writelines(), and other transports are unknown: for them, one write() per chunk
        self.gather_ok = type(transport) is SocketTransport
        sock = transport.get_extra_info("socket")
        self.server_addr = _addr(transport.get_extra_info("sockname"))
        self.client_addr = _addr(transport.get_extra_info("peername"))
        if cfg.proxy is not None:
            self.proxy_trusted = cfg.proxy.trusts(self.client_addr)
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
            self.tls = True
            self.tls_info = _tls_extension(transport, self.cfg)
        self.scope_base = {
            "type": "http",
            "asgi": _ASGI_INFO,
            "http_version": None,
            "server": self.server_addr,
            "client": self.client_addr,
            "scheme": self.scheme,
            "method": None,
            "root_path": self.cfg.root_path,
            "path": None,
            "raw_path": None,
            "query_string": None,
            "headers": None,
            "extensions": _EXTENSIONS if not self.tls else {
                "http.response.pathsend": {}, "http.response.zerocopysend": {},
                "http.response.early_hint": {}, "http.response.trailers": {},
                "tls": self.tls_info},
        }
        if self.tls:
            if cfg.http_mode != HTTP_1:
                obj = transport.get_extra_info("ssl_object")
                alpn = obj.selected_alpn_protocol() if obj is not None else None
                if alpn == "h2":
                    self._start_h2(b"")
                    return
                if cfg.http_mode == HTTP_2:
                    self._close()             # HTTP/2 only, and the client did not offer h2
                    return
        else:
            self.sniff = cfg.http_mode != HTTP_1
        if self.cfg.limit_concurrency and len(self.cfg.connections) > self.cfg.limit_concurrency:
            self._reject(503, b"Service Unavailable")
            return
        self._arm(T_IDLE)

    def data_received(self, data):
        if self.cfg.metrics != NULL:
            self.cfg.metrics[M_BYTES_IN] += len(data)
        if self.h2 is not None:
            (<H2Session>self.h2).data_received(data)
            return
        if self.ws is not None:
            (<WebSocketSession>self.ws).data_received(data)
            return
        if self.closing:
            return
        if self.cycle is None and self.timer_kind != T_HEADER:
            self._arm(T_HEADER)          # a new request starts: headers must arrive in time
        if self.sniff:
            data = self._sniff(data)
            if data is None:
                return
        try:
            self.feed_data(data)
        except HttpParserError as exc:
            self._parse_error(exc)
        if (self._paused and self._buf_len > 0 and not self.closing and self.ws is None
                and not self.read_paused):
            # pipelined bytes wait in the parser: stop reading until the response is done (a
            # paused parser with nothing buffered needs no pause: if bytes come before the
            # response is done, this read holds them and pauses then -- one read's worth at most)
            self.read_paused = True
            self.transport.pause_reading()

    def eof_received(self):
        if self.h2 is not None:
            return False
        if self.ws is not None:
            return (<WebSocketSession>self.ws).eof_received()
        if self.cycle is not None and not self.cycle.response_complete:
            # a half-closed client may still read the answer (HTTP/1.0 style)
            self.cycle.disconnected_on_read = True
            self.cycle._wake_receiver()
            return True
        return False

    def connection_lost(self, exc):
        self.closing = True
        self.cfg.connections.discard(self)
        if self.cfg.metrics != NULL and self.transport is not None:
            self.cfg.metrics[M_OPEN] -= 1
        self._cancel_timer()
        if self.ws is not None:
            (<WebSocketSession>self.ws).connection_lost(exc)
        if self.h2 is not None:
            self.cfg.h2_connections -= 1
            (<H2Session>self.h2).connection_lost()
        if self.cycle is not None:
            self.cycle.disconnected = True
            self.cycle._wake_receiver()
        self._wake_drain()
        self.transport = None

    def pause_writing(self):
        self.write_paused = True

    def resume_writing(self):
        self.write_paused = False
        if self.h2 is not None:
            self._h2_dirty()                 # what the core held while paused
        self._wake_drain()

    cdef _wake_drain(self):
        w = self.drain_waiter
        if w is not None:
            self.drain_waiter = None
            if not w.done():
                w.set_result(None)

    async def drain(self):
        if self.write_paused and not self.closing:
            if self.drain_waiter is None:
                self.drain_waiter = self.loop.create_future()
            await self.drain_waiter

    def shutdown(self):
        """engine.server's drain contract: finish the current response, then close.

        The response in progress, and any request that arrives on this connection from now on,
        is answered with ``connection: close``. An idle keep-alive connection is not closed
        under the client at once (it may be sending its next request right now: closing would
        lose it): it stays open DRAIN_IDLE_GRACE seconds at most (less if its keep-alive
        timeout comes first), then closes."""
        cdef double now
        self.draining = True
        if self.h2 is not None:
            if not self.closing:
                (<H2Session>self.h2).shutdown()
        elif self.ws is not None:
            (<WebSocketSession>self.ws).shutdown()
        elif self.closing:
            return
        elif self.cycle is None and self.timer_kind == T_IDLE:
            now = _now()
            if self.deadline - now > DRAIN_IDLE_GRACE:
                self.deadline = now + DRAIN_IDLE_GRACE
                if self.timer is not None:
                    self.timer.cancel()
                self.timer = self.loop.call_later(DRAIN_IDLE_GRACE, self._on_timeout)
        elif self.cycle is None and self.timer_kind == T_HEADER:
            pass                     # a request is arriving: answered (connection: close), closed
        elif self.cycle is None or self.cycle.response_complete:
            self._close()

    # --- output -----------------------------------------------------------------------------
    #
    # Responses are not written the moment the app sends them: they wait in self.out until the
    # loop has dispatched this iteration's events (the _WriteBatch), then leave one write per
    # connection. A busy server answers a batch of connections per poll; written one by one,
    # each response wakes the client separately (a cross-CPU wake-up in the kernel, the costliest
    # part of a small response); written together, one wake-up serves the batch, and pipelined
    # responses of one connection leave in one send(2). The delay is bounded by one loop
    # iteration, and by BATCH_MAX bytes per connection.

    cdef _write(self, data):
        if self.transport is None:
            return
        if self.batch is None:
            self.transport.write(data)
            return
        self.out.append(data)
        self.out_size += len(data)
        if self.out_size > BATCH_MAX:
            self._flush_out()
        elif not self.out_queued:
            self.out_queued = True
            self.batch.add(self)

    cdef _flush_out(self):
        """Hand the held output to the transport now (before anything that must follow it)."""
        cdef list out = self.out
        if self.h2 is not None and out is not None:
            if self.transport is not None and self.transport.is_closing():
                out.clear()                  # the socket failed: connection_lost() follows
                self.out_size = 0
                return
            if not self.write_paused:
                # (while the client does not read, frames stay in the core: its queued
                # replies count against H2Limits.max_control_queue there)
                data = (<H2Session>self.h2).data_to_send()
                if data:
                    out.append(data)
                    self.out_size += len(data)
        if not out:
            return
        if self.transport is None:
            out.clear()
        elif len(out) == 1:
            data = out[0]
            out.clear()
            self.transport.write(data)
        elif self.out_size <= SMALL_BODY:
            data = b"".join(out)
            out.clear()
            self.transport.write(data)
        elif self.gather_ok:
            self.out = []
            self.transport.writelines(out)
        else:
            self.out = []
            for data in out:
                self.transport.write(data)
        self.out_size = 0

    cdef _h2_dirty(self):
        """The H2Session queued frames: they leave with this iteration's batch."""
        if self.transport is None:
            return
        if self.batch is None:
            if not self.write_paused and not self.transport.is_closing():
                data = (<H2Session>self.h2).data_to_send()
                if data:
                    self.transport.write(data)
        elif not self.out_queued:
            self.out_queued = True
            self.batch.add(self)

    cdef _h2_write(self, list pieces, Py_ssize_t size):
        """DATA frames built outside the core (a header from data_frame_header() and the
        payload object itself, not copied): they follow what the core has queued."""
        if self.transport is None or self.transport.is_closing():
            return
        pending = (<H2Session>self.h2).data_to_send()
        if self.batch is None:
            if pending:
                self.transport.write(pending)
            for data in pieces:
                self.transport.write(data)
            return
        if pending:
            self.out.append(pending)
            self.out_size += len(pending)
        self.out.extend(pieces)
        self.out_size += size
        if self.out_size > BATCH_MAX:
            self._flush_out()
        elif not self.out_queued:
            self.out_queued = True
            self.batch.add(self)

    # --- HTTP/2 -----------------------------------------------------------------------------

    cdef object _sniff(self, data):
        """The first bytes of a cleartext connection: the HTTP/2 preface (prior knowledge) or
        HTTP/1.1. Returns the bytes for the HTTP/1.1 parser, or None (HTTP/2, or a prefix of
        the preface that needs more bytes to decide)."""
        cdef Py_ssize_t n
        buf = self.sniffed + bytes(data) if self.sniffed is not None else bytes(data)
        n = min(len(buf), len(_H2_PREFACE))
        if buf[:n] == _H2_PREFACE[:n]:
            if n < len(_H2_PREFACE):
                self.sniffed = buf           # "PRI * HTTP/2.0" never reaches the HTTP/1.1 parser
                return None
            self.sniff = False
            self.sniffed = None
            self._start_h2(buf)
            return None
        self.sniff = False
        self.sniffed = None
        if self.cfg.http_mode == HTTP_2:
            self._reject(505, b"HTTP Version Not Supported: this server speaks HTTP/2 only "
                              b"(h2c with prior knowledge, or h2 over TLS)")
            return None
        return buf

    cdef bint _h2c_upgrade_ok(self):
        """An HTTP/1.1 `Upgrade: h2c` request (RFC 7540 §3.2) this server takes: HTTP/2 on,
        cleartext, exactly one HTTP2-Settings field, and no request body (a body would arrive
        over HTTP/1.1 for a stream of HTTP/2; such requests are answered over HTTP/1.1)."""
        cdef int n = 0
        if (self.cfg.http_mode == HTTP_1 or self.tls or self.upgrade.lower() != b"h2c"
                or self.content_length > 0 or self.chunked or self.h2 is not None):
            return False
        for name, _ in self.headers:
            if name == b"http2-settings":
                n += 1
        return n == 1

    cdef _upgrade_h2c(self):
        cdef list headers = self.h2c_request
        cdef list hl
        self.h2c_request = None
        settings = None
        hl = [(b":method", self.method), (b":scheme", b"http"), (b":path", self.target)]
        for name, value in headers:
            if name == b"http2-settings":
                settings = value
            elif name == b"host":
                hl.append((b":authority", value))
            elif name not in _H2_DROP and name != b"te":
                hl.append((name, value))
        try:
            payload = _b64decode(settings + b"=" * (-len(settings) % 4), altchars=b"-_",
                                 validate=True)
        except ValueError:
            payload = None
        rest = self.take_remaining()          # the client preface may follow at once
        session = H2Session(self, self.cfg.h2_limits)
        try:
            if payload is None:
                raise ValueError("HTTP2-Settings is not base64url")
            session.initiate_upgrade(payload)
        except ValueError:
            self._reject(400, b"Bad Request: invalid HTTP2-Settings")
            return
        self.sniff = False
        self._write(_SWITCH_H2C)
        self.h2 = session
        self.cfg.h2_connections += 1
        (<H2Session>session).start_upgraded(hl, rest)

    cdef _start_h2(self, bytes initial):
        self._cancel_timer()
        session = H2Session(self, self.cfg.h2_limits)
        self.h2 = session
        self.cfg.h2_connections += 1
        (<H2Session>session).start(initial)

    # --- timers -----------------------------------------------------------------------------

    cdef _arm(self, int kind):
        # One lazily re-armed loop timer per connection: arming only moves a deadline; a timer
        # is created only when none is pending, and one that fires early re-arms for the
        # deadline. Two arm/disarm pairs per request cost no timer churn.
        cdef double delay
        if kind == T_IDLE:
            delay = self.cfg.keep_alive
        elif kind == T_HEADER:
            delay = self.cfg.header_timeout
        else:
            delay = self.cfg.body_timeout
        if delay <= 0:
            self.timer_kind = T_NONE
            return
        self.timer_kind = kind
        self.deadline = _now() + delay
        if self.timer is None:
            self.timer = self.loop.call_later(delay, self._on_timeout)

    cdef _disarm(self):
        self.timer_kind = T_NONE

    cdef _cancel_timer(self):
        self.timer_kind = T_NONE
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _on_timeout(self):
        cdef int kind = self.timer_kind
        cdef double left
        self.timer = None
        if kind == T_NONE or self.closing:
            return
        left = self.deadline - _now()
        if left > 0:
            self.timer = self.loop.call_later(left, self._on_timeout)
            return
        self.timer_kind = T_NONE
        if kind == T_IDLE:
            if self.h2 is not None:
                (<H2Session>self.h2).idle_timeout()   # GOAWAY, then close
            else:
                self._close()
        elif kind == T_HEADER:
            if self.message_in_progress or self.buffered_bytes:
                self._reject(408, b"Request Timeout")
            else:
                self._close()
        elif kind == T_BODY and self.cycle is not None:
            # the client stopped sending the body the app is waiting for
            self.cycle.body_timed_out = True
            self.cycle.disconnected = True
            self.cycle._wake_receiver()
            if not self.cycle.response_started:
                self._reject(408, b"Request Timeout")
            else:
                self._abort()

    # --- parser hooks -----------------------------------------------------------------------

    cdef int on_request(self) except -1:
        cdef RequestCycle cycle
        self._disarm()
        if self.upgrade is not None:
            if self.upgrade.lower() == b"websocket":
                self._start_websocket()
                return 0
            if self._h2c_upgrade_ok():
                self.h2c_request = self.headers    # switched in on_message_complete
                return 0
        cfg = self.cfg
        # the connection's fields are in scope_base: a copy (a memcpy of its table) and the
        # request's own fields replaced in place
        scope = self.scope_base.copy()
        scope["http_version"] = "1.1" if self.http_version == b"1.1" else "1.0"
        scope["method"] = _method_str(self.method)
        scope["path"] = (cfg.root_path + _decode_path(self.path) if cfg.root_path
                         else _decode_path(self.path))
        scope["raw_path"] = self.path
        scope["query_string"] = self.query
        scope["headers"] = self.headers
        ls = cfg.lifespan_state
        if ls is not None:
            scope["state"] = (<dict>ls).copy() if type(ls) is dict else ls.copy()
        cycle = RequestCycle.__new__(RequestCycle)
        cycle.proto = self
        cycle.scope = scope
        cycle.keep_alive = self.keep_alive and not self.draining
        cycle.head = self.method == b"HEAD"
        cycle.http11 = self.http_version == b"1.1"
        cycle.expect_continue = self.expect_continue
        cycle.more_body = self.content_length > 0 or self.chunked
        cycle.body = []
        cycle.t0 = _now() if cfg.access_log or cfg.metrics != NULL else 0.0
        self.cycle = cycle
        st = cfg.state
        if st is not None:
            st.total_requests += 1
        app = cfg.app
        if cfg.proxy is not None:
            # the proxy-headers middleware's work without its Python frames: the peer's trust
            # was decided per connection; only X-Forwarded-* headers from a trusted peer need
            # its rewrite
            if self.proxy_trusted and _forwarded(self.headers):
                cfg.proxy.rewrite(scope, "http")
            app = cfg.proxy_app
        task = _start_task(self.loop, cycle.run(app))
        if not task.done():
            cycle.task = task
        return 0

    cdef int on_body(self, object chunk) except -1:
        cdef RequestCycle cycle = self.cycle
        if cycle is None or cycle.disconnected:
            return 0
        cycle.body_seen += len(chunk)
        if cycle.response_complete:
            return 0                           # answered already: the body is dropped
        cycle.body.append(chunk)
        cycle.body_size += len(chunk)
        if cycle.body_size > BODY_HIGH_WATER and not self.read_paused_body:
            self.read_paused_body = True
            self.transport.pause_reading()
        cycle._wake_receiver()
        return 0

    cdef int on_message_complete(self, list trailers) except -1:
        cdef RequestCycle cycle = self.cycle
        if cycle is None:
            if self.h2c_request is not None:
                self._upgrade_h2c()
            return 0
        if self.upgrade is not None:
            # an Upgrade we do not take (h2c -- see docs/pages/http2.md -- or anything but
            # websocket): a plain HTTP/1.1 request (RFC 9110 §7.8). The parser holds an upgrade
            # until the request is complete, so it is declined here, not in on_request.
            self.decline_upgrade()
        cycle.more_body = False
        cycle.request_complete = True
        cycle._wake_receiver()
        if not cycle.response_complete or self.closing:
            # responses in order: the next request waits; on a connection that is closing
            # (the response ended it) a pipelined request is never started
            self.pause()
        else:
            self._next_request(cycle)        # answered early: go on with the next request
        return 0

    # --- responses ----------------------------------------------------------------------------

    cdef _response_done(self, RequestCycle cycle):
        """The current response is complete: keep the connection or close it."""
        if self.cycle is not cycle:
            return
        if self.cfg.access_log:
            _log_access(cycle, self.cfg)
        if self.cfg.metrics != NULL:
            _count_response(self.cfg.metrics, cycle.status, cycle.bytes_sent,
                            _now() - cycle.t0)
        if self.closing:
            return
        if not cycle.keep_alive or self.draining:
            self._close()
            return
        if not cycle.request_complete:
            # answered before the request ended (an eager app answers inside on_request; or
            # the app ignored the body): the rest of a small body is read and dropped, then
            # the connection carries on; a large or unknown one is not worth it
            if self.chunked or self.content_length - cycle.body_seen > DISCARD_MAX:
                self._close()
            return                             # on_message_complete() continues
        self._next_request(cycle)

    cdef _next_request(self, RequestCycle cycle):
        self.cycle = None
        self._arm(T_IDLE)
        if self.read_paused or self.read_paused_body:
            self.read_paused = self.read_paused_body = False
            self.transport.resume_reading()
        if self._paused:
            try:
                self.resume()                 # pipelined requests parse (and may start) now
            except HttpParserError as exc:
                self._parse_error(exc)

    cdef _parse_error(self, exc):
        cdef int status = exc.status_code
        reason = exc.reason.encode("latin-1", "replace") if isinstance(exc.reason, str) \
            else bytes(exc.reason)
        if self.cycle is not None and self.cycle.response_started:
            self._abort()
            return
        self._reject(status, reason)

    cdef _reject(self, int status, bytes message):
        """An error answer the app never sees, then close."""
        if self.transport is None or self.closing:
            return
        body = message + b"\n"
        if self.cfg.metrics != NULL:
            _count_response(self.cfg.metrics, status, len(body), 0.0)
        head = build_response_head(status, [(b"content-type", b"text/plain; charset=utf-8")]
                                   + self.cfg.default_headers, False, b"1.1",
                                   content_length=len(body),
                                   date=_date.get() if self.cfg.date_header else None)
        self._write(head + body)
        self._close()

    cdef _close(self):
        if not self.closing and self.transport is not None:
            self._flush_out()
            self.closing = True
            self._cancel_timer()
            self.transport.close()

    cdef _abort(self):
        # what the app sent before it failed leaves as it would have unbatched (a client
        # sees the response cut where the app stopped), then the connection is dropped
        self._flush_out()
        if self.transport is not None:
            self.closing = True
            self._cancel_timer()
            self.transport.abort()

    # --- websocket -------------------------------------------------------------------------------

    cdef _start_websocket(self):
        self._flush_out()                    # earlier responses go first; frames are written
        self.batch = None                    # directly from here on
        session = WebSocketSession(self)
        self.ws = session
        (<WebSocketSession>session).start()


cdef dict _EXTENSIONS = {"http.response.pathsend": {}, "http.response.zerocopysend": {},
                         "http.response.early_hint": {}, "http.response.trailers": {}}
# ASGI TLS extension: tls_version as the protocol's 16-bit code, cipher_suite as its IANA id
cdef dict _TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303,
                           "TLSv1.3": 0x0304}
cdef dict _CIPHER_IDS = {}
cdef dict _RDN_SHORT = {"commonName": "CN", "organizationName": "O",
                        "organizationalUnitName": "OU", "countryName": "C",
                        "stateOrProvinceName": "ST", "localityName": "L",
                        "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID"}


cdef object _cipher_id(object context, str name):
    cid = _CIPHER_IDS.get(name)
    if cid is None and context is not None:
        for c in context.get_ciphers():
            _CIPHER_IDS[c["name"]] = c["id"] & 0xFFFF
        cid = _CIPHER_IDS.get(name)
    return cid


cdef str _rfc4514(subject):
    """RFC 4514 string of a certificate subject as ssl's getpeercert() gives it."""
    parts = []
    for rdn in reversed(subject):
        avas = []
        for key, value in rdn:
            v = "".join("\\" + ch if ch in ',+"\\<>;=' else ch for ch in value)
            if v[:1] in ("#", " "):
                v = "\\" + v
            if v.endswith(" "):
                v = v[:-1] + "\\ "
            avas.append(f"{_RDN_SHORT.get(key, key)}={v}")
        parts.append("+".join(avas))
    return ",".join(parts)


cdef dict _tls_extension(transport, ServerConfig cfg):
    import ssl as _ssl
    info = {"server_cert": cfg.tls_server_cert, "client_cert_chain": [],
            "client_cert_name": None, "client_cert_error": None, "tls_version": None,
            "cipher_suite": None}
    obj = transport.get_extra_info("ssl_object")
    if obj is None:
        return info
    info["tls_version"] = _TLS_VERSIONS.get(obj.version())
    cipher = obj.cipher()
    if cipher:
        info["cipher_suite"] = _cipher_id(obj.context, cipher[0])
    chain = None
    if hasattr(obj, "get_unverified_chain"):             # 3.13+: the whole chain
        try:
            chain = obj.get_unverified_chain()
        except Exception:
            chain = None
    if chain:
        info["client_cert_chain"] = [c.public_bytes() if hasattr(c, "public_bytes")
                                     else _ssl.DER_cert_to_PEM_cert(bytes(c)) for c in chain]
        info["client_cert_chain"] = [c.decode() if isinstance(c, bytes) else c
                                     for c in info["client_cert_chain"]]
    else:
        der = obj.getpeercert(binary_form=True)
        if der:
            info["client_cert_chain"] = [_ssl.DER_cert_to_PEM_cert(der)]
    peer = obj.getpeercert()
    if peer and peer.get("subject"):
        info["client_cert_name"] = _rfc4514(peer["subject"])
    return info


@cython.final
cdef class _WriteBatch:
    """The connections of one loop holding output until the loop has dispatched this
    iteration's events. Flushed by one callback per iteration: loop.call_before_poll() on
    engine's loop (runs at the end of the current iteration), call_soon() on any other loop."""
    cdef object loop
    cdef object schedule
    cdef list protos
    cdef bint scheduled
    cdef object flush_cb

    def __init__(self, loop):
        self.loop = loop
        self.schedule = getattr(loop, "call_before_poll", None) or loop.call_soon
        self.protos = []
        self.flush_cb = self.flush

    cdef add(self, HttpProtocol proto):
        self.protos.append(proto)
        if not self.scheduled:
            self.scheduled = True
            self.schedule(self.flush_cb)

    def flush(self):
        cdef HttpProtocol p
        protos = self.protos
        self.protos = []
        self.scheduled = False
        for p in protos:
            p.out_queued = False
            try:
                p._flush_out()
            except Exception as exc:
                self.loop.call_exception_handler({
                    "message": "engine.http: writing a response failed",
                    "exception": exc, "protocol": p})


cdef object _addr(object a):
    if a is None:
        return None
    if isinstance(a, tuple):
        return (a[0], a[1])
    if isinstance(a, str) and a:
        return (a, None)                          # a Unix socket path: (path, None)
    return None


cdef object _start_task(object loop, object coro):
    cdef PyObject *argv[3]
    if _EAGER:
        return _Task(coro, loop=loop, eager_start=True)
    if (type(loop) in _PLAIN_LOOPS and (<Loop>loop)._running
            and (<Loop>loop)._task_factory is None):
        # what engine's create_task() would do (no task factory), without its Python-level
        # call: Task(coro, loop=loop, name=...) by vectorcall, no keyword dict. The loop and a
        # name are passed: 3.11's Task otherwise finds its loop by get_event_loop(), a
        # getpid(2) system call per request, and formats a "Task-<n>" name, some 1,400
        # instructions per request.
        argv[0] = <PyObject*>coro
        argv[1] = <PyObject*>loop
        argv[2] = <PyObject*>_REQUEST_TASK_NAME
        return PyObject_Vectorcall(_Task, argv, 1, <PyObject*>_TASK_KWNAMES)
    return loop.create_task(coro)


cdef tuple _TASK_KWNAMES = ("loop", "name")
cdef str _REQUEST_TASK_NAME = "engine-request"


cdef object _loop_create_task = Loop.create_task
cdef set _PLAIN_LOOPS = set()          # engine Loop classes whose create_task is engine's own


cdef _note_loop_class(object loop):
    """Remember the class of ``loop`` for _start_task's shortcut if it is engine's Loop or a
    subclass that keeps engine's create_task (engine.Loop, engine.new_event_loop()'s)."""
    cls = type(loop)
    if cls not in _PLAIN_LOOPS and isinstance(loop, Loop) \
            and getattr(cls, "create_task", None) is _loop_create_task:
        _PLAIN_LOOPS.add(cls)


# --- metrics: the layout of one worker's block (engine/serve/metrics.py mirrors it) ----------
M_LAYOUT = {"status": M_STATUS, "duration_sum": M_DURATION_SUM,
            "duration_count": M_DURATION_COUNT, "buckets": M_BUCKETS, "nbuckets": M_NBUCKETS,
            "open": M_OPEN, "connections": M_CONNECTIONS, "bytes_in": M_BYTES_IN,
            "bytes_out": M_BYTES_OUT, "ws_open": M_WS_OPEN, "ws_total": M_WS_TOTAL,
            "size": M_SIZE}
# upper bounds (seconds) of the duration histogram's buckets
cdef double[13] _BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                           2.5, 5.0, 10.0]
DURATION_BUCKETS = tuple(_BOUNDS[i] for i in range(M_NBUCKETS))


cdef inline void _count_response(double* m, int status, Py_ssize_t body_bytes,
                                 double seconds) noexcept:
    cdef int cls = status // 100 - 1
    cdef int i
    if 0 <= cls < 5:
        m[M_STATUS + cls] += 1
    m[M_BYTES_OUT] += body_bytes
    if seconds <= 0.0:
        return                               # answered by the server itself, not timed
    m[M_DURATION_SUM] += seconds
    m[M_DURATION_COUNT] += 1
    for i in range(M_NBUCKETS):
        if seconds <= _BOUNDS[i]:
            m[M_BUCKETS + i] += 1
            return
    m[M_BUCKETS + M_NBUCKETS] += 1


cdef _log_access(RequestCycle c, ServerConfig cfg):
    _log_access_fields(c.scope, c.status, c.bytes_sent, c.t0, c.headers, cfg)


cdef _log_access_fields(dict scope, int status, Py_ssize_t bytes_sent, double t0, headers,
                        ServerConfig cfg):
    # one access-log line (HTTP/1.1 responses and HTTP/2 streams)
    if cfg.access_format is not None:
        _access_logger.info("%s", cfg.access_format(scope, status, bytes_sent,
                                                    _now() - t0, headers))
        return
    client = scope.get("client")
    addr = f"{client[0]}:{client[1]}" if client else "-"
    qs = scope["query_string"]
    path = scope["raw_path"].decode("latin-1") + (("?" + qs.decode("latin-1")) if qs else "")
    _access_logger.info('%s - "%s %s HTTP/%s" %d %d %.1fms', addr, scope["method"], path,
                        scope["http_version"], status, bytes_sent,
                        (_now() - t0) * 1000.0)


cdef inline object _content_length(bytes value):
    """int(value) of a Content-Length an app gave: up to 18 plain digits are read here, anything
    else (signs, spaces, underscores, errors) is int()'s."""
    cdef const unsigned char *p = value
    cdef Py_ssize_t i, n = len(value)
    cdef long long v = 0
    if 0 < n <= 18:
        for i in range(n):
            if not (0x30 <= p[i] <= 0x39):
                return int(value)
            v = v * 10 + (p[i] - 0x30)
        return v
    return int(value)


cdef inline object _mget(object message, str key, object default):
    """message.get(key, default), without a method call for a dict (what apps send)."""
    if type(message) is dict:
        return (<dict>message).get(key, default)
    return message.get(key, default)


cdef inline int _check_after_start(str t, bint complete, bint body_finished,
                                   bint trailers) except -1:
    """The ASGI message order after http.response.start (HTTP/1.1 and HTTP/2 alike)."""
    if complete:
        raise RuntimeError(f"Unexpected ASGI message {t!r} sent, after response already "
                           f"completed.")
    if t == "http.response.early_hint":
        raise RuntimeError("ASGI message 'http.response.early_hint' must come before "
                           "'http.response.start' (103 Early Hints precede the response).")
    if body_finished:
        if t != "http.response.trailers":
            raise RuntimeError(f"Unexpected ASGI message {t!r} sent, after the last body "
                               f"message: only 'http.response.trailers' may follow.")
    elif t == "http.response.trailers":
        if not trailers:
            raise RuntimeError("ASGI message 'http.response.trailers' sent, but "
                               "'http.response.start' did not announce trailers "
                               "(\"trailers\": True).")
        raise RuntimeError("ASGI message 'http.response.trailers' sent before the body "
                           "ended (a body message with more_body=False).")
    return 0


@cython.final
cdef class _Done:
    """An awaitable that is already finished (result None): what send() returns when the
    message was handled at once. Stateless, so one instance serves every await."""

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        raise StopIteration

    def send(self, value):
        raise StopIteration

    def throw(self, typ, val=None, tb=None):
        if val is None:
            raise typ
        raise val

    def close(self):
        pass


cdef _Done _DONE = _Done()


@cython.final
@cython.freelist(16)
cdef class RequestCycle:
    """One request/response exchange: the ASGI receive() and send() callables."""
    cdef:
        HttpProtocol proto
        public dict scope
        object task
        object receiver              # future a receive() waits on
        list body                    # request body chunks not yet received by the app
        Py_ssize_t body_size
        long long body_seen          # request body bytes parsed so far
        bint more_body               # more request body may come
        bint request_complete        # the parser saw the end of the request
        bint body_done_sent          # the app got more_body=False
        bint expect_continue
        bint continue_sent
        public bint disconnected
        bint disconnected_on_read
        bint body_timed_out
        bint keep_alive
        bint head
        bint http11
        public bint response_started
        public bint response_complete
        bint chunked
        bint close_delimited
        bint trailers                # http.response.trailers extension: trailers announced
        bint body_finished           # with trailers: the last body message was sent
        list trailer_fields          # trailers received so far (more_trailers=True)
        int status
        list headers
        Py_ssize_t content_length    # declared by the app, -1 if none
        Py_ssize_t bytes_sent
        double t0

    async def run(self, app):
        proto = self.proto
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if not self.response_started:
                if not isinstance(exc, _CancelledError):
                    _logger.error("Exception in ASGI application", exc_info=exc)
                if not proto.closing:
                    self.keep_alive = False
                    self._send_500()
            else:
                if not isinstance(exc, _CancelledError):
                    _logger.error("Exception in ASGI application", exc_info=exc)
                proto._abort()
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return
        if not self.response_complete and not proto.closing:
            if not self.response_started:
                _logger.error("ASGI callable returned without starting response.")
                self.keep_alive = False
                self._send_500()
            else:
                _logger.error("ASGI callable returned without completing response.")
                proto._abort()

    cdef _send_500(self):
        self.response_started = True
        self.response_complete = True
        self.status = 500
        proto = self.proto
        body = b"Internal Server Error\n"
        head = build_response_head(500, [(b"content-type", b"text/plain; charset=utf-8")]
                                   + proto.cfg.default_headers, False,
                                   b"1.1" if self.http11 else b"1.0", content_length=len(body),
                                   date=_date.get() if proto.cfg.date_header else None)
        proto._write(head + (b"" if self.head else body))
        proto._response_done(self)

    # --- receive ------------------------------------------------------------------------------

    cdef _wake_receiver(self):
        r = self.receiver
        if r is not None:
            self.receiver = None
            if not r.done():
                r.set_result(None)

    async def receive(self):
        proto = self.proto
        while True:
            if self.disconnected or (self.response_complete and self.body_done_sent):
                return {"type": "http.disconnect"}
            if self.body:
                return self._take_body()
            if not self.more_body and not self.body_done_sent:
                self.body_done_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.disconnected_on_read:
                self.disconnected = True
                continue
            if self.expect_continue and not self.continue_sent and not self.response_started:
                self.continue_sent = True
                proto._write(_CONTINUE)
            if proto.read_paused_body:
                proto.read_paused_body = False
                proto.transport.resume_reading()
            if self.more_body and proto.timer_kind != T_BODY:
                proto._arm(T_BODY)
            self.receiver = proto.loop.create_future()
            await self.receiver
            if proto.timer_kind == T_BODY:
                proto._disarm()

    cdef dict _take_body(self):
        proto = self.proto
        if len(self.body) == 1:
            data = self.body[0]
        else:
            data = b"".join(self.body)
        self.body = []
        self.body_size = 0
        if proto.read_paused_body:
            proto.read_paused_body = False
            proto.transport.resume_reading()
        more = self.more_body
        if not more:
            self.body_done_sent = True
        return {"type": "http.request", "body": data, "more_body": more}

    # --- send ---------------------------------------------------------------------------------

    def send(self, message):
        """ASGI send(). A plain function returning an awaitable (as granian's): a message
        handled at once returns an already-finished awaitable, no coroutine; waiting
        (write backpressure, files) returns a coroutine."""
        proto = self.proto
        t = message["type"]
        if not self.response_started:
            if t == "http.response.start":
                self._start(message)
                return _DONE
            if t == "http.response.early_hint":
                self._early_hint(message)
                return _DONE
            raise RuntimeError(f"Expected ASGI message 'http.response.start', but got {t!r}.")
        if t == "http.response.body" and not (self.response_complete or self.body_finished):
            return self._send_body(message)   # the usual message: nothing else to check
        _check_after_start(t, self.response_complete, self.body_finished, self.trailers)
        if proto.closing:
            return _DONE                        # the client went away: nothing to write to
        if t == "http.response.trailers":
            self._trailers(message)
            return _DONE
        if t == "http.response.body":
            return self._send_body(message)
        if t == "http.response.pathsend":
            return self._pathsend(message["path"])
        if t == "http.response.zerocopysend":
            return self._guarded(self._zerocopysend(message))
        raise RuntimeError(f"Unexpected ASGI message {t!r} sent, after response started.")

    cdef object _send_body(self, message):
        proto = self.proto
        if proto.closing:
            return _DONE                        # the client went away: nothing to write to
        try:
            self._body(_mget(message, "body", b""), _mget(message, "more_body", False))
        except (ConnectionError, BrokenPipeError):
            self._client_gone()
            return _DONE
        if proto.write_paused:
            return self._guarded(proto.drain())
        return _DONE

    async def _guarded(self, aw):
        try:
            await aw
        except (ConnectionError, BrokenPipeError):
            self._client_gone()

    cdef _client_gone(self):
        # the client went away mid-response: not the app's error; the app sees
        # http.disconnect from receive()
        self.disconnected = True
        self._wake_receiver()
        self.proto._abort()

    cdef _start(self, dict message):
        cdef Py_ssize_t cl = -1, n
        cdef list hl = []
        cdef bytes name
        self.status = message["status"]
        headers = message.get("headers")
        if headers:
            for item in headers:
                raw_name, raw_value = item
                name = raw_name if type(raw_name) is bytes else bytes(raw_name)
                value = raw_value if type(raw_value) is bytes else bytes(raw_value)
                if _has_upper(name):
                    name = name.lower()
                n = len(name)
                if n == 14 and name == b"content-length":
                    cl = _content_length(value)
                    continue                   # re-added by the head builder, validated
                elif n == 10 and name == b"connection":
                    if value.lower() == b"close":
                        self.keep_alive = False
                    continue                   # the server decides Connection
                elif n == 17 and name == b"transfer-encoding":
                    continue                   # the server decides the framing
                if name is raw_name and value is raw_value and type(item) is tuple:
                    hl.append(item)            # as given: no new pair
                else:
                    hl.append((name, value))
        if message.get("trailers", False):
            # trailers need chunked framing (RFC 9112 7.1.2): the server decides the framing,
            # so a Content-Length the app gave is dropped, as Transfer-Encoding is
            self.trailers = True
            cl = -1
        self.headers = hl
        self.content_length = cl
        self.response_started = True

    cdef _early_hint(self, dict message):
        # 103 Early Hints (RFC 8297): HTTP/1.1 clients only (an HTTP/1.0 client may not expect
        # an interim response); the values are checked as header values are
        cdef HttpProtocol proto = self.proto
        links = message.get("links")
        if links is None or isinstance(links, (bytes, str)):
            raise TypeError("http.response.early_hint: 'links' must be an iterable of bytes "
                            "(one Link header value each)")
        fields = []
        for link in links:
            if not isinstance(link, (bytes, bytearray, memoryview)):
                raise TypeError(f"http.response.early_hint: a link must be bytes, not "
                                f"{type(link).__name__}")
            fields.append((b"link", bytes(link)))
        if not fields:
            return
        head = build_response_head(103, fields, True, b"1.1")   # ValueError on CR/LF/NUL
        if not self.http11 or proto.closing:
            return
        proto._write(head)

    cdef _trailers(self, dict message):
        cdef HttpProtocol proto = self.proto
        new = [(bytes(raw_name).lower(), bytes(raw_value))
               for raw_name, raw_value in (message.get("headers") or ())]
        if new:
            last_chunk(new)                   # ValueError on a bad name or value, in this send()
        fields = self.trailer_fields
        if fields is None:
            fields = self.trailer_fields = new
        else:
            fields.extend(new)
        if message.get("more_trailers", False):
            return
        tail = last_chunk(fields)
        self.trailer_fields = None
        if self.chunked and not self.head:
            proto._write(tail)
        # HTTP/1.0 (close-delimited), HEAD, 204/304: no place for trailers, they are dropped
        self.response_complete = True
        proto._response_done(self)

    cdef bytes _head(self, Py_ssize_t content_length, bint chunked):
        cfg = self.proto.cfg
        if self.proto.draining:
            self.keep_alive = False          # shutting down: this is the last response
        return response_head(self.status, self.headers, cfg.default_headers, self.keep_alive,
                             not self.http11, content_length, chunked,
                             current_date() if cfg.date_header else None)

    cdef _body(self, body, bint more):
        cdef Py_ssize_t n = len(body)
        proto = self.proto
        if self.headers is not None:
            # first body message: the head goes out with it
            status = self.status
            nobody = self.head or status < 200 or status == 204 or status == 304
            if self.content_length >= 0:
                head = self._head(self.content_length, False)
            elif not more and not self.trailers:
                head = self._head(-1 if (status < 200 or status == 204 or status == 304)
                                  else n, False)
            elif self.http11:
                self.chunked = not nobody
                head = self._head(-1, self.chunked)
            else:
                self.close_delimited = True
                self.keep_alive = False
                head = self._head(-1, False)
            self.headers = None
            # a small body is joined to the head (one bytes object); a large one is not copied
            if nobody:
                proto._write(head)
            elif self.chunked:
                if n:
                    if n <= SMALL_BODY:
                        proto._write(head + http_chunk(body))
                    else:
                        proto._write(head)
                        proto._write(http_chunk(body))
                else:
                    proto._write(head)
            elif n:
                if n <= SMALL_BODY:
                    proto._write(head + body)
                else:
                    proto._write(head)
                    proto._write(body)
            else:
                proto._write(head)
            if not nobody:
                self.bytes_sent += n
            self.head = nobody
        elif not self.head and n:
            proto._write(http_chunk(body) if self.chunked else body)
            self.bytes_sent += n
        if not more:
            if self.trailers:
                self.body_finished = True     # the last chunk goes out with the trailers
                return
            if self.chunked:
                proto._write(last_chunk())
            self.response_complete = True
            proto._response_done(self)

    cdef object _pathsend(self, path):
        # The file is opened with one open(2) and sent, head and all, before send() returns when
        # the socket takes it (the usual case): no coroutine, file object or future per response.
        # What is left (a full socket buffer, a file sendfile(2) can't serve) continues in
        # _send_rest. Only regular files are served: O_NONBLOCK keeps a FIFO from blocking the
        # loop in open(2) before it is refused (regular files ignore the flag).
        cdef int fd
        cdef Py_ssize_t size, n
        fd = _os.open(path, _O_PATHSEND)
        try:
            st = _os.fstat(fd)
            if not _S_ISREG(st.st_mode):
                if _S_ISDIR(st.st_mode):
                    raise IsADirectoryError(_errno.EISDIR, _os.strerror(_errno.EISDIR), path)
                raise ValueError(f"http.response.pathsend: {path!r} is not a regular file")
            size = st.st_size
            n = self._file_now(fd, 0, size, False)
            if n == size:
                self._file_done(False)
                return _DONE
            f = open(fd, "rb", buffering=0)       # owns fd from here
            fd = -1
        finally:
            if fd >= 0:
                _os.close(fd)
        if n < 0:
            return self._guarded(self._pathsend_opened(f))
        return self._guarded(self._send_rest(f, n, size - n, False, True))

    async def _pathsend_opened(self, f):
        try:
            size = _os.fstat(f.fileno()).st_size
            await self._send_file(f, 0, size, False)
        finally:
            f.close()

    async def _zerocopysend(self, dict message):
        f = message["file"]
        offset = message.get("offset")
        count = message.get("count")
        more = message.get("more_body", False)
        if offset is None:
            offset = f.tell() if hasattr(f, "tell") else 0
        if count is None:
            count = _os.fstat(f.fileno()).st_size - offset
        await self._send_file(f, offset, count, more)

    cdef Py_ssize_t _file_now(self, int fd, Py_ssize_t offset, Py_ssize_t count,
                              bint more) except -2:
        """A response's head and file body handed to engine's socket transport at once: the
        head with MSG_MORE, the file with sendfile(2), nothing waited for. Returns the file
        bytes sent (the caller sends the rest with loop.sendfile), or -1 where this does not
        apply (the general path in _send_file does it all)."""
        cdef HttpProtocol proto = self.proto
        cdef Py_ssize_t n
        if (self.headers is None or self.head or count <= 0 or proto.tls or not proto.gather_ok
                or self.trailers
                or (self.content_length < 0 and more) or proto.transport.is_closing()):
            return -1
        proto._flush_out()                   # what was sent before goes first
        if self.content_length < 0:
            self.content_length = count
        head = self._head(self.content_length, False)
        self.headers = None
        # gather_ok: the transport is engine's SocketTransport (checked in connection_made)
        n = (<SocketTransport>proto.transport)._write_then_sendfile(head, fd, offset, count)
        self.bytes_sent += n
        return n

    cdef _check_open(self):
        # loop.sendfile() on a transport that is closing raises RuntimeError; for the app that
        # is the client going away (send() returns, receive() gives http.disconnect)
        if self.proto.transport.is_closing():
            raise ConnectionError("the client went away")

    cdef _file_short(self):
        # the file came up short (it shrank after its size was taken): the response can't
        # have the length it announced, so the connection ends after what was sent -- the
        # client sees a truncated response, never one that runs into the next
        self.keep_alive = False
        self.proto._close()

    cdef _file_done(self, bint more):
        if not more and self.trailers:
            self.body_finished = True
            return
        if not more:
            if self.chunked and not self.proto.closing:
                self.proto.transport.write(last_chunk())
            self.response_complete = True
            self.proto._response_done(self)

    async def _send_rest(self, f, Py_ssize_t offset, Py_ssize_t count, bint more, bint own):
        # the rest of a file body after _file_now
        cdef HttpProtocol proto = self.proto
        cdef Py_ssize_t sent = 0
        try:
            if count > 0:
                self._check_open()
                sent = await proto.loop.sendfile(proto.transport, f, offset, count)
                self.bytes_sent += sent
            elif not own:
                _os.lseek(f.fileno(), offset, _os.SEEK_SET)   # as loop.sendfile leaves it
        finally:
            if own:
                f.close()
        if sent < count:
            self._file_short()
        self._file_done(more)

    async def _send_file(self, f, Py_ssize_t offset, Py_ssize_t count, bint more):
        cdef Py_ssize_t n = -1
        try:
            fd = f.fileno()
        except (AttributeError, OSError, ValueError):
            pass        # no descriptor (io.UnsupportedOperation is both): loop.sendfile copes
        else:
            n = self._file_now(fd, offset, count, more)
        proto = self.proto
        if n >= 0:
            await self._send_rest(f, offset + n, count - n, more, False)
            return
        proto._flush_out()                   # what was sent before goes first
        transport = proto.transport
        if self.headers is not None:
            if self.content_length < 0 and not more and not self.trailers:
                self.content_length = count
            if self.content_length >= 0:
                head = self._head(self.content_length, False)
            elif self.http11:
                self.chunked = True
                head = self._head(-1, True)
            else:
                self.keep_alive = False
                head = self._head(-1, False)
            self.headers = None
            sock = transport.get_extra_info("socket")
            if self.head or self.chunked or count <= 0 or proto.tls:
                transport.write(head)
                if not self.head and count > 0:
                    await self._file_body(f, offset, count)
            else:
                # the head and the file leave in full segments together (TCP_CORK)
                self._check_open()
                _cork(sock, True)
                try:
                    transport.write(head)
                    n = await proto.loop.sendfile(transport, f, offset, count)
                finally:
                    _cork(sock, False)
                self.bytes_sent += n
                if n < count:
                    self._file_short()
        elif not self.head and count > 0:
            await self._file_body(f, offset, count)
        self._file_done(more)

    async def _file_body(self, f, Py_ssize_t offset, Py_ssize_t count):
        proto = self.proto
        transport = proto.transport
        self._check_open()
        if self.chunked:
            transport.write(b"%x\r\n" % count)
        n = await proto.loop.sendfile(transport, f, offset, count)
        self.bytes_sent += n
        if n < count:
            self._file_short()
            return
        if self.chunked:
            transport.write(b"\r\n")


cdef object _TCP_CORK = getattr(__import__("socket"), "TCP_CORK", None)
cdef int _O_PATHSEND = (_os.O_RDONLY | getattr(_os, "O_CLOEXEC", 0)
                       | getattr(_os, "O_NONBLOCK", 0))
cdef object _IPPROTO_TCP = __import__("socket").IPPROTO_TCP


cdef _cork(sock, bint on):
    if _TCP_CORK is None or sock is None:
        return
    try:
        sock.setsockopt(_IPPROTO_TCP, _TCP_CORK, 1 if on else 0)
    except OSError:
        pass


include "ws_session.pxi"
include "h2_session.pxi"
