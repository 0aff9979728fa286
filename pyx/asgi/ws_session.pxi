# WebSocketSession (included by asgi.pyx into engine._asgi): the ASGI `websocket` scope over one upgraded HTTP/1.1 connection (RFC 6455).
#
# The handshake is checked by engine._ws; the 101 answer goes out when the app sends
# websocket.accept (a websocket.close before that is a 403, and the websocket.http.response
# extension lets the app answer with any HTTP response instead). After the upgrade, bytes the
# HTTP parser already holds are handed to the frame parser (this class), whose hooks queue ASGI
# events. Pings from the client are answered at once; the server pings every ws_ping_interval
# and closes with 1011 when no pong comes within ws_ping_timeout.

cdef object WebSocketError = _ws.WebSocketError
cdef object HandshakeError = _ws.HandshakeError
cdef object build_frame = _ws.build_frame
cdef object build_close = _ws.build_close
cdef int OP_TEXT = _ws.OP_TEXT
cdef int OP_BINARY = _ws.OP_BINARY
cdef int OP_PING = _ws.OP_PING
cdef int OP_PONG = _ws.OP_PONG

cdef enum:
    WS_CONNECTING = 0
    WS_OPEN = 1
    WS_CLOSING = 2          # our close frame is out; waiting for the client's
    WS_CLOSED = 3
    WS_RESPONSE = 4         # denied with an HTTP response (websocket.http.response.*)

cdef double WS_CLOSE_WAIT = 5.0        # seconds to wait for the client's close frame

# permessage-deflate (RFC 7692) tuning, per connection. zlib's deflate state costs
# (1 << (wbits + 2)) + (1 << (memLevel + 9)) bytes plus ~6 KB: with wbits 12 and memLevel 5,
# 16 KiB + 16 KiB (vs 256 KiB at zlib's defaults 15/8). The inflater needs 1 << wbits of window
# (+ ~7 KB), allocated on the first compressed message; a client that offers
# client_max_window_bits is held to 12 as well (else it may use 15). Messages below WS_DEFLATE_MIN bytes go
# out uncompressed (RSV1 clear, allowed per message by RFC 7692 §6): deflate cannot shrink them.
cdef int WS_DEFLATE_WBITS = 12
cdef int WS_DEFLATE_MEMLEVEL = 5
cdef Py_ssize_t WS_DEFLATE_MIN = 32
cdef object _zlib = __import__("zlib")


@cython.final
cdef class WebSocketSession(FrameParser):
    cdef:
        HttpProtocol proto
        dict scope
        bytes key
        int state
        object events               # deque of ASGI events for receive()
        object receiver
        object task
        list pending                # bytes that arrived before the 101
        object ping_timer
        object pong_deadline
        bint disconnect_queued
        bint counted                 # in the metrics' open sessions
        int close_code
        bint response_has_body
        dict deflate                # negotiated permessage-deflate parameters, or None
        object deflater

    def __init__(self, HttpProtocol proto):
        FrameParser.__init__(self, is_server=True,
                             max_message_size=proto.cfg.ws_max_size or None)
        self.proto = proto
        self.events = __import__("collections").deque()
        self.pending = []
        self.close_code = 1006

    cdef start(self):
        proto = self.proto
        cfg = proto.cfg
        try:
            self.key = _ws.validate_handshake(proto.headers, proto.method, proto.http_version)
        except HandshakeError as exc:
            self.state = WS_CLOSED
            self._http_error(exc.status_code, exc.reason.encode("latin-1", "replace"),
                             list(exc.headers))
            return
        scope = {
            "type": "websocket",
            "asgi": _ASGI_INFO,
            "http_version": "1.1",
            "scheme": "wss" if proto.tls else "ws",
            "server": proto.server_addr,
            "client": proto.client_addr,
            "root_path": cfg.root_path,
            "path": cfg.root_path + _decode_path(proto.path) if cfg.root_path
                    else _decode_path(proto.path),
            "raw_path": proto.path,
            "query_string": proto.query,
            "headers": proto.headers,
            "subprotocols": _ws.subprotocols(proto.headers),
            "extensions": {"websocket.http.response": {}},
        }
        if cfg.ws_per_message_deflate:
            self.deflate = _ws.negotiate_deflate(proto.headers, WS_DEFLATE_WBITS,
                                                 WS_DEFLATE_WBITS)
        if proto.tls:
            scope["extensions"]["tls"] = proto.tls_info
        if cfg.lifespan_state is not None:
            scope["state"] = cfg.lifespan_state.copy()
        self.scope = scope
        self.events.append({"type": "websocket.connect"})
        # not eager: the parser hands over the bytes after the handshake only once this hook
        # has returned
        self.task = proto.loop.create_task(self.run(cfg.app))

    cdef _http_error(self, int status, bytes message, list headers):
        proto = self.proto
        body = message + b"\n"
        head = build_response_head(status, headers + [(b"content-type",
                                                       b"text/plain; charset=utf-8")]
                                   + proto.cfg.default_headers, False, b"1.1",
                                   content_length=len(body),
                                   date=_date.get() if proto.cfg.date_header else None)
        if proto.transport is not None:
            proto.transport.write(head + body)
        proto._close()

    async def run(self, app):
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if not isinstance(exc, _CancelledError):
                _logger.error("Exception in ASGI application", exc_info=exc)
            if self.state == WS_CONNECTING:
                self.state = WS_CLOSED
                self._http_error(500, b"Internal Server Error", [])
            elif self.state == WS_OPEN:
                self._send_close(1011, "")
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return
        if self.state == WS_CONNECTING:
            # returned without accepting: the handshake is refused
            self.state = WS_CLOSED
            self._http_error(403, b"Forbidden", [])
        elif self.state == WS_OPEN:
            self._send_close(1000, "")
        elif self.state == WS_RESPONSE and not self.proto.closing:
            self.proto._close()

    # --- ASGI receive -------------------------------------------------------------------------

    async def receive(self):
        while not self.events:
            if self.disconnect_queued:
                return {"type": "websocket.disconnect", "code": self.close_code}
            self.receiver = self.proto.loop.create_future()
            await self.receiver
        ev = self.events.popleft()
        if self.proto.transport is not None and len(self.events) < 16:
            self.proto.transport.resume_reading()
        return ev

    cdef _queue(self, dict ev):
        self.events.append(ev)
        if len(self.events) > 64 and self.proto.transport is not None:
            self.proto.transport.pause_reading()     # the app is not keeping up: backpressure
        r = self.receiver
        if r is not None:
            self.receiver = None
            if not r.done():
                r.set_result(None)

    cdef _queue_disconnect(self, int code, str reason=""):
        if self.disconnect_queued:
            return
        self.disconnect_queued = True
        self.close_code = code
        self._queue({"type": "websocket.disconnect", "code": code, "reason": reason})

    # --- ASGI send ----------------------------------------------------------------------------

    async def send(self, message):
        proto = self.proto
        t = message["type"]
        if self.state == WS_CONNECTING:
            if t == "websocket.accept":
                self._accept(message)
            elif t == "websocket.close":
                self.state = WS_CLOSED
                self._http_error(403, b"Forbidden", [])
            elif t == "websocket.http.response.start":
                self._deny_start(message)
            else:
                raise RuntimeError(f"Expected ASGI message 'websocket.accept', "
                                   f"'websocket.close' or 'websocket.http.response.start', "
                                   f"but got {t!r}.")
            return
        if self.state == WS_RESPONSE:
            if t != "websocket.http.response.body":
                raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body', "
                                   f"but got {t!r}.")
            body = message.get("body", b"")
            if proto.transport is not None and body:
                proto.transport.write(body)
            if not message.get("more_body", False):
                proto._close()
            return
        if self.state != WS_OPEN:
            if self.disconnect_queued or proto.closing:
                raise _ClientDisconnected()
            raise RuntimeError(f"Unexpected ASGI message {t!r}, after sending "
                               f"'websocket.close'.")
        if t == "websocket.send":
            data = message.get("bytes")
            if data is not None:
                op = OP_BINARY
            else:
                data = message.get("text")
                if data is None:
                    raise RuntimeError("websocket.send needs 'bytes' or 'text'")
                op = OP_TEXT
            if self.deflate is not None and len(data) >= WS_DEFLATE_MIN:
                frame = build_frame(op, self._compress(data), True, None, True)
            else:
                frame = build_frame(op, data)
            proto.transport.write(frame)
            if proto.write_paused:
                await proto.drain()
        elif t == "websocket.close":
            self._send_close(message.get("code", 1000) or 1000, message.get("reason") or "")
        else:
            raise RuntimeError(f"Expected ASGI message 'websocket.send' or 'websocket.close', "
                               f"but got {t!r}.")

    cdef bytes _compress(self, data):
        """One message through the raw deflater, sync-flushed, minus the 00 00 ff ff tail
        (RFC 7692 §7.2.1)."""
        if isinstance(data, str):
            data = (<str>data).encode("utf-8")
        d = self.deflater
        if d is None:
            d = _zlib.compressobj(6, _zlib.DEFLATED, -self.deflate["server_window_bits"],
                                  WS_DEFLATE_MEMLEVEL)
        out = d.compress(data) + d.flush(_zlib.Z_SYNC_FLUSH)
        # no context takeover: a fresh compressor per message (its memory is freed between)
        self.deflater = None if self.deflate["server_no_context_takeover"] else d
        if out[-4:] == b"\x00\x00\xff\xff":
            out = out[:-4]
        return out

    cdef _accept(self, dict message):
        proto = self.proto
        headers = _ws.handshake_headers(self.key, message.get("subprotocol"))
        for name, value in message.get("headers", ()):
            name = bytes(name).lower()
            if name in (b"upgrade", b"connection", b"sec-websocket-accept",
                        b"sec-websocket-protocol", b"sec-websocket-extensions"):
                continue
            headers.append((name, bytes(value)))
        if self.deflate is not None:
            headers.append((b"sec-websocket-extensions", self.deflate["response"]))
            self.enable_inflate(self.deflate["client_window_bits"],
                                self.deflate["client_no_context_takeover"])
        head = build_response_head(101, headers + proto.cfg.default_headers, True, b"1.1",
                                   date=_date.get() if proto.cfg.date_header else None)
        proto.transport.write(head)
        self.state = WS_OPEN
        if proto.cfg.metrics != NULL:
            proto.cfg.metrics[M_WS_OPEN] += 1
            proto.cfg.metrics[M_WS_TOTAL] += 1
            self.counted = True
        rest = proto.take_remaining()
        pending = self.pending
        self.pending = None
        if rest:
            self._feed(rest)
        for data in pending:
            self._feed(data)
        self._arm_ping()

    cdef _deny_start(self, dict message):
        proto = self.proto
        headers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", ())]
        cl = -1
        for n, v in headers:
            if n == b"content-length":
                cl = int(v)
        headers = [(n, v) for n, v in headers
                   if n not in (b"content-length", b"connection", b"transfer-encoding")]
        head = build_response_head(message["status"], headers + proto.cfg.default_headers,
                                   False, b"1.1", content_length=cl,
                                   date=_date.get() if proto.cfg.date_header else None)
        proto.transport.write(head)
        self.state = WS_RESPONSE

    cdef _send_close(self, int code, reason):
        proto = self.proto
        if self.state != WS_OPEN:
            return
        self.state = WS_CLOSING
        self._cancel_ping()
        if proto.transport is not None and not proto.closing:
            proto.transport.write(build_close(code, reason))
            # wait (a little) for the client's close frame, then close TCP ourselves
            self.ping_timer = proto.loop.call_later(WS_CLOSE_WAIT, self._close_transport)
        if self.close_code == 1006:
            self.close_code = code

    def _close_transport(self):
        self.ping_timer = None
        self.proto._close()

    # --- transport events -------------------------------------------------------------------

    cdef data_received(self, data):
        if self.state == WS_CONNECTING:
            self.pending.append(bytes(data))
            return
        if self.state == WS_CLOSED or self.state == WS_RESPONSE:
            return
        self._feed(data)

    cdef _feed(self, data):
        try:
            self.feed_data(data)
        except WebSocketError as exc:
            code = exc.code
            if self.state == WS_OPEN:
                self._send_close(code, "")
            self._queue_disconnect(code, "")

    cdef eof_received(self):
        self._queue_disconnect(1006)
        return False

    cdef connection_lost(self, exc):
        if self.counted and self.proto.cfg.metrics != NULL:
            self.proto.cfg.metrics[M_WS_OPEN] -= 1
            self.counted = False
        self._cancel_ping()
        if self.ping_timer is not None:
            self.ping_timer.cancel()
            self.ping_timer = None
        self.state = WS_CLOSED
        self._queue_disconnect(self.close_code if self.close_code != 1006 else 1006)

    cdef shutdown(self):
        if self.state == WS_OPEN:
            self._send_close(1001, "")
        elif self.state == WS_CONNECTING:
            self.state = WS_CLOSED
            self._http_error(503, b"Service Unavailable", [])

    # --- frame parser hooks -------------------------------------------------------------------

    cdef int on_message(self, object data) except -1:
        if isinstance(data, str):
            self._queue({"type": "websocket.receive", "text": data})
        else:
            self._queue({"type": "websocket.receive", "bytes": data})
        return 0

    cdef int on_ping(self, bytes payload) except -1:
        if self.state == WS_OPEN and self.proto.transport is not None:
            self.proto.transport.write(build_frame(OP_PONG, payload))
        return 0

    cdef int on_pong(self, bytes payload) except -1:
        if self.pong_deadline is not None:
            self.pong_deadline.cancel()
            self.pong_deadline = None
        return 0

    cdef int on_close(self, int code, str reason) except -1:
        proto = self.proto
        if self.state == WS_OPEN:
            # the client closes: echo its code (1000 when it sent none), then close TCP
            self.state = WS_CLOSING
            self._cancel_ping()
            if proto.transport is not None:
                proto.transport.write(build_close(1000 if code == 1005 else code, ""))
        self.close_code = code
        self._queue_disconnect(code, reason)
        proto._close()
        return 0

    # --- keepalive pings --------------------------------------------------------------------

    cdef _arm_ping(self):
        cfg = self.proto.cfg
        if cfg.ws_ping_interval > 0:
            self.ping_timer = self.proto.loop.call_later(cfg.ws_ping_interval, self._ping)

    cdef _cancel_ping(self):
        if self.ping_timer is not None:
            self.ping_timer.cancel()
            self.ping_timer = None
        if self.pong_deadline is not None:
            self.pong_deadline.cancel()
            self.pong_deadline = None

    def _ping(self):
        self.ping_timer = None
        proto = self.proto
        if self.state != WS_OPEN or proto.transport is None:
            return
        proto.transport.write(build_frame(OP_PING, b"engine"))
        if proto.cfg.ws_ping_timeout > 0 and self.pong_deadline is None:
            self.pong_deadline = proto.loop.call_later(proto.cfg.ws_ping_timeout,
                                                       self._pong_missing)
        self._arm_ping()

    def _pong_missing(self):
        self.pong_deadline = None
        if self.state == WS_OPEN:
            self._send_close(1011, "keepalive ping timeout")
            self._queue_disconnect(1011, "keepalive ping timeout")
            self.proto._close()


class _ClientDisconnected(OSError):
    """send() on a websocket the client has closed (ASGI: an IOError subclass)."""
