# ASGI over HTTP/2 (included by asgi.pyx): H2Session, one per HTTP/2 connection, and H2Stream,
# one per request stream (the ASGI receive()/send() of one `http` scope).
#
# H2Session is a Cython subclass of engine._h2's IO-free H2Connection: the core parses frames
# and calls the hooks below (C calls); what the core queues (frames) leaves through the
# connection's HttpProtocol, batched per loop iteration as HTTP/1.1 responses are
# (HttpProtocol._flush_out pulls data_to_send()).
#
# Facts from RFC 9113 this file relies on:
#   * a request's header block carries :method, :scheme, :path and usually :authority
#     (§8.3.1); the core has validated them. :authority stands for Host (added as a `host`
#     header for ASGI apps when the request has none); several `cookie` fields are joined
#     with "; " before they reach an application that expects one field (§8.2.3);
#   * connection-specific fields (connection, keep-alive, proxy-connection,
#     transfer-encoding, upgrade) must not appear in an HTTP/2 message (§8.2.2): the
#     application's are dropped from responses; content-length may stay (§8.1.1);
#   * interim responses (1xx) are HEADERS frames without END_STREAM before the final one
#     (§8.1): 100 Continue for a request with `expect: 100-continue` when the app first waits
#     for its body, 103 Early Hints from http.response.early_hint;
#   * flow control (§5.2): received DATA is acknowledged (consume()) only when the application
#     has taken it, so a stream buffers at most the window we advertised; DATA we send waits for
#     the peer's window (on_window_open);
#   * a server may answer before the request ended and then reset the stream with NO_ERROR
#     (§8.1); a response the application cannot finish ends with RST_STREAM INTERNAL_ERROR;
#   * a header list above our SETTINGS_MAX_HEADER_LIST_SIZE may be answered 431 (§10.5.1):
#     the core decoded the block (HPACK stays in step) and calls on_request_too_large;
#   * graceful shutdown (§6.8): GOAWAY with the last stream id processed; streams up to it
#     finish, the connection closes when none is left.

# RFC 9113 §7 error codes used here
cdef enum:
    H2_NO_ERROR = 0x0
    H2_INTERNAL_ERROR = 0x2
    H2_REFUSED_STREAM = 0x7
    H2_CANCEL = 0x8

cdef bytes _H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"    # RFC 9113 §3.4
cdef Py_ssize_t H2_FILE_CHUNK = 256 * 1024       # pathsend/zerocopysend: bytes read per DATA run
# pathsend/zerocopysend over cleartext: each DATA frame's 9-byte header with MSG_MORE and its
# payload by sendfile(2), instead of pread + writev (the A/B in docs/pages/http2.md, "Files":
# about half the server CPU per MiB with 16 KiB frames, a quarter with 1 MiB frames).
# ENGINE_H2_SENDFILE=0 turns it off (the other side of that A/B); TLS always reads
cdef bint H2_SENDFILE = _os.environ.get("ENGINE_H2_SENDFILE", "1") != "0"

# response fields HTTP/2 forbids (RFC 9113 §8.2.2), by name
cdef frozenset _H2_DROP = frozenset((b"connection", b"keep-alive", b"proxy-connection",
                                     b"transfer-encoding", b"upgrade"))
# the body of a 431 for an oversized header list: the text HTTP/1.1 answers an oversized
# header section with (pyx/http/http.pyx), as _reject sends it
cdef bytes _H2_HEADERS_TOO_LARGE = b"header section too large\n"
cdef list _STATUS_CACHE = [str(i).encode() for i in range(600)]


cdef inline bytes _status_bytes(int status):
    if 0 <= status < 600:
        return <bytes>_STATUS_CACHE[status]
    return str(status).encode()


async def _await(aw):
    await aw


@cython.final
cdef class H2Session(H2Connection):
    """One HTTP/2 connection of an HttpProtocol: the core's hooks turned into H2Streams."""
    cdef:
        HttpProtocol proto
        dict streams                  # stream id -> H2Stream (the app still answering)
        bint draining                 # GOAWAY sent: close when the last stream is done
        bint peer_goaway              # the client sent GOAWAY: no new streams will come
        bint lost                     # the connection is gone

    def __init__(self, HttpProtocol proto, limits):
        H2Connection.__init__(self, limits if limits is not None else H2Limits())
        self.proto = proto
        self.streams = {}

    cdef start(self, bytes initial):
        # our SETTINGS first (the server preface), then what the client sent so far
        self.initiate()
        if initial:
            self.receive(initial)
        self.proto._h2_dirty()
        self._idle_check()

    cdef start_upgraded(self, list headers, bytes initial):
        # after initiate_upgrade() (our SETTINGS queued, stream 1 half-closed): the HTTP/1.1
        # request becomes stream 1, then what the client sent after it (its preface)
        self.on_request(1, headers, True)
        if initial:
            self.receive(initial)
        self.proto._h2_dirty()

    cdef data_received(self, data):
        self.receive(data)
        self.proto._h2_dirty()

    cdef connection_lost(self):
        cdef H2Stream s
        self.lost = True
        streams = self.streams
        self.streams = {}
        for s in streams.values():
            s._gone()
        self.proto.cfg.h2_streams -= len(streams)

    cdef shutdown(self):
        """Graceful: GOAWAY now; streams already started finish; close when none is left."""
        if self.draining or self.lost:
            return
        self.draining = True
        self.goaway(H2_NO_ERROR)
        self.proto._h2_dirty()
        if not self.streams:
            self.proto._close()

    cdef idle_timeout(self):
        self.draining = True
        self.goaway(H2_NO_ERROR)
        self.proto._close()

    cdef _idle_check(self):
        if self.streams:
            return
        if self.draining or self.peer_goaway:
            self.proto._close()
        else:
            self.proto._arm(T_IDLE)

    # --- the core's hooks ------------------------------------------------------------------

    cdef int on_request(self, unsigned int stream_id, list headers, bint end_stream) except -1:
        cdef HttpProtocol proto = self.proto
        cdef ServerConfig cfg = proto.cfg
        cdef H2Stream s
        if self.draining or self.lost:
            self.reset_stream(stream_id, H2_REFUSED_STREAM)
            return 0
        if not self.streams:
            proto._disarm()                  # not idle any more
        s = self._new_stream(stream_id, headers, end_stream)
        self.streams[stream_id] = s
        cfg.h2_streams += 1
        st = cfg.state
        if st is not None:
            st.total_requests += 1
        if s.scope is None:
            # CONNECT (a tunnel; RFC 8441 websockets are not offered): not an ASGI request
            s._server_answer(501, b"Not Implemented\n")
            return 0
        if cfg.limit_concurrency and (len(cfg.connections) - cfg.h2_connections
                                      + cfg.h2_streams) > cfg.limit_concurrency:
            s._server_answer(503, b"Service Unavailable\n")
            return 0
        task = _start_task(proto.loop, s.run(cfg.app))
        if not task.done():
            s.task = task
        return 0

    cdef int on_request_too_large(self, unsigned int stream_id, bint end_stream) except -1:
        # the header list passed SETTINGS_MAX_HEADER_LIST_SIZE (the core decoded it to keep
        # HPACK in step, then dropped it): answered 431 as HTTP/1.1 answers an oversized head;
        # the app is not called, the connection goes on (RFC 9113 §10.5.1)
        cdef HttpProtocol proto = self.proto
        cdef ServerConfig cfg = proto.cfg
        cdef H2Stream s
        if self.draining or self.lost:
            self.reset_stream(stream_id, H2_REFUSED_STREAM)
            return 0
        if not self.streams:
            proto._disarm()
        s = H2Stream.__new__(H2Stream)
        s.session = self
        s.sid = stream_id
        s.more_body = not end_stream
        s.body = []
        s.scope = None                       # counted in the metrics, not the access log
        self.streams[stream_id] = s
        cfg.h2_streams += 1
        st = cfg.state
        if st is not None:
            st.total_requests += 1
        s._server_answer(431, _H2_HEADERS_TOO_LARGE)
        return 0

    cdef H2Stream _new_stream(self, unsigned int stream_id, list headers, bint end_stream):
        cdef HttpProtocol proto = self.proto
        cdef ServerConfig cfg = proto.cfg
        cdef H2Stream s = H2Stream.__new__(H2Stream)
        cdef bytes name
        cdef list hl = []
        cdef list cookies = None
        method = path = authority = scheme = None
        has_host = False
        expect = False
        for item in headers:
            name = item[0]
            if name and name[0] == 58:                   # b":"
                if name == b":method":
                    method = item[1]
                elif name == b":path":
                    path = item[1]
                elif name == b":authority":
                    authority = item[1]
                elif name == b":scheme":
                    scheme = item[1]
                continue
            if name == b"cookie":
                if cookies is None:
                    cookies = []
                cookies.append(item[1])
                continue
            if name == b"host":
                has_host = True
            elif name == b"expect" and item[1].lower() == b"100-continue":
                expect = True
            hl.append(item)
        if cookies is not None:
            hl.append((b"cookie", b"; ".join(cookies)))
        if authority is not None and not has_host:
            hl.insert(0, (b"host", authority))
        s.session = self
        s.sid = stream_id
        s.more_body = not end_stream
        s.body = []
        s.t0 = _now() if cfg.access_log or cfg.metrics != NULL else 0.0
        s.head = method == b"HEAD"
        s.expect_continue = expect and not end_stream
        if path is None or method == b"CONNECT":
            s.scope = None                   # on_request answers 501
            return s
        qpos = path.find(b"?")
        if qpos >= 0:
            raw_path = path[:qpos]
            query = path[qpos + 1:]
        else:
            raw_path = path
            query = b""
        scope = proto.scope_base.copy()
        scope["http_version"] = "2"
        scope["method"] = _method_str(method)
        if scheme is not None:
            scope["scheme"] = scheme.decode("latin-1")
        scope["path"] = (cfg.root_path + _decode_path(raw_path) if cfg.root_path
                         else _decode_path(raw_path))
        scope["raw_path"] = raw_path
        scope["query_string"] = query
        scope["headers"] = hl
        if cfg.lifespan_state is not None:
            scope["state"] = cfg.lifespan_state.copy()
        s.scope = scope
        return s

    cdef int on_data(self, unsigned int stream_id, object data, bint end_stream) except -1:
        cdef H2Stream s = self.streams.get(stream_id)
        cdef Py_ssize_t n = len(data)
        if s is None or s.disconnected or s.response_complete:
            # nobody reads it: the connection's window must not shrink for good
            if n:
                self.consume(stream_id, n)
            return 0
        if n:
            s.body.append(data)
            s.body_size += n
        if end_stream:
            s.more_body = False
        s._wake_receiver()
        return 0

    cdef int on_trailers(self, unsigned int stream_id, list headers) except -1:
        # request trailers: ASGI has no message for them; they end the request body
        cdef H2Stream s = self.streams.get(stream_id)
        if s is not None:
            s.more_body = False
            s._wake_receiver()
        return 0

    cdef int on_stream_reset(self, unsigned int stream_id, unsigned int error_code) except -1:
        cdef H2Stream s = self.streams.pop(stream_id, None)
        if s is not None:
            self.proto.cfg.h2_streams -= 1
            s._gone()
            self._idle_check()
        return 0

    cdef int on_window_open(self, unsigned int stream_id) except -1:
        cdef H2Stream s
        if stream_id == 0:
            for s in list(self.streams.values()):
                s._wake_sender()
        else:
            s = self.streams.get(stream_id)
            if s is not None:
                s._wake_sender()
        return 0

    cdef int on_goaway(self, unsigned int last_stream_id, unsigned int error_code) except -1:
        self.peer_goaway = True
        if error_code != H2_NO_ERROR:
            self._fail()
        elif not self.streams:
            self.proto._close()
        return 0

    cdef int on_connection_error(self, unsigned int error_code, str reason) except -1:
        _logger.debug("HTTP/2 connection error %d: %s", error_code, reason)
        self._fail()
        return 0

    cdef _fail(self):
        # the connection is over (the core queued GOAWAY): it leaves, then the socket closes
        cdef H2Stream s
        streams = self.streams
        self.streams = {}
        self.proto.cfg.h2_streams -= len(streams)
        for s in streams.values():
            s._gone()
        self.proto._close()

    # --- stream ends ----------------------------------------------------------------------

    cdef _stream_done(self, H2Stream s):
        """The response of s is complete (or s was reset by us)."""
        cdef HttpProtocol proto = self.proto
        cdef ServerConfig cfg = proto.cfg
        if self.streams.pop(s.sid, None) is None:
            return
        cfg.h2_streams -= 1
        if s.scope is not None and s.response_complete:
            if cfg.access_log:
                _log_access_fields(s.scope, s.status, s.bytes_sent, s.t0, s.resp_headers, cfg)
            if cfg.metrics != NULL:
                _count_response(cfg.metrics, s.status, s.bytes_sent,
                                _now() - s.t0 if s.t0 > 0.0 else 0.0)
        elif s.scope is None and cfg.metrics != NULL:
            _count_response(cfg.metrics, s.status, s.bytes_sent, 0.0)
        if s.body_size:
            self.consume(s.sid, s.body_size)  # what the app never took
            s.body_size = 0
            s.body = []
        if s.more_body and not s.disconnected and s.response_complete:
            # answered before the request ended: the rest is not wanted (RFC 9113 §8.1)
            self.reset_stream(s.sid, H2_NO_ERROR)
            s.disconnected = True
        s._wake_receiver()                   # a receive() waiting now gets http.disconnect
        proto._h2_dirty()
        self._idle_check()


@cython.final
cdef class H2Stream:
    """One request stream: the ASGI receive() and send() callables of its `http` scope."""
    cdef:
        H2Session session
        unsigned int sid
        public dict scope
        object task
        object receiver              # future a receive() waits on
        object sender                # future a send() waits on (the peer's window)
        list body                    # request DATA not yet taken by the app
        Py_ssize_t body_size         # ... its size (not yet consumed(): counts in our window)
        bint more_body               # the request has not ended
        bint body_done_sent
        bint expect_continue
        bint continue_sent
        public bint disconnected
        bint head
        public bint response_started
        public bint response_complete
        bint trailers                # http.response.trailers announced
        bint body_finished           # with trailers: the last body message was sent
        list trailer_fields
        int status
        list headers                 # response fields to send with the head (None once sent)
        list resp_headers            # the response's fields (access log)
        Py_ssize_t bytes_sent
        double t0

    async def run(self, app):
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if not isinstance(exc, _CancelledError):
                _logger.error("Exception in ASGI application", exc_info=exc)
            self._failed()
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return
        if not self.response_complete and not self.disconnected:
            if not self.response_started:
                _logger.error("ASGI callable returned without starting response.")
            else:
                _logger.error("ASGI callable returned without completing response.")
            self._failed()

    cdef _failed(self):
        if self.disconnected or self.response_complete:
            return
        if self.headers is None and self.response_started:
            self._reset(H2_INTERNAL_ERROR)   # part of the response left: it can't be a 500
        else:
            self._server_answer(500, b"Internal Server Error\n")

    cdef _server_answer(self, int status, bytes body):
        """A response the server makes (errors, refusals): the app is not asked."""
        cdef H2Session session = self.session
        self.response_started = True
        self.status = status
        self.trailers = False
        self.headers = self.resp_headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode())]
        aw = self._body(body, False)
        if aw is not _DONE:
            # the client's window is closed: the rest waits for it (or the stall timeout)
            _start_task(session.proto.loop, _await(aw))

    cdef _reset(self, unsigned int code):
        cdef H2Session session = self.session
        if not session.lost:
            session.reset_stream(self.sid, code)
        self.disconnected = True
        self._wake_receiver()
        session._stream_done(self)

    cdef _gone(self):
        # the peer reset the stream, or the connection is gone: receive() gives
        # http.disconnect, send() drops what it is given
        self.disconnected = True
        self._wake_receiver()
        self._wake_sender()

    # --- receive ------------------------------------------------------------------------------

    cdef _wake_receiver(self):
        r = self.receiver
        if r is not None:
            self.receiver = None
            if not r.done():
                r.set_result(None)

    cdef _wake_sender(self):
        w = self.sender
        if w is not None:
            self.sender = None
            if not w.done():
                w.set_result(None)

    async def receive(self):
        cdef H2Session session = self.session
        while True:
            if self.disconnected or (self.response_complete and self.body_done_sent):
                return {"type": "http.disconnect"}
            if self.body:
                return self._take_body()
            if not self.more_body and not self.body_done_sent:
                self.body_done_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.expect_continue and not self.continue_sent and not self.response_started:
                self.continue_sent = True
                session.send_headers(self.sid, [(b":status", b"100")], False)
                session.proto._h2_dirty()
            self.receiver = session.proto.loop.create_future()
            await self.receiver

    cdef dict _take_body(self):
        cdef H2Session session = self.session
        if len(self.body) == 1:
            data = self.body[0]
        else:
            data = b"".join(self.body)
        self.body = []
        # the app has the bytes: the window opens again for them (flow control = backpressure)
        session.consume(self.sid, self.body_size)
        self.body_size = 0
        session.proto._h2_dirty()
        more = self.more_body
        if not more:
            self.body_done_sent = True
        return {"type": "http.request", "body": data, "more_body": more}

    # --- send ---------------------------------------------------------------------------------

    def send(self, message):
        """ASGI send(): a plain function returning an awaitable (as RequestCycle.send)."""
        t = message["type"]
        if not self.response_started:
            if t == "http.response.early_hint":
                self._early_hint(message)
                return _DONE
            if t != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got {t!r}.")
            self._start(message)
            return _DONE
        _check_after_start(t, self.response_complete, self.body_finished, self.trailers)
        if self.disconnected:
            return _DONE                      # the stream is gone: nothing to write to
        if t == "http.response.body":
            return self._body(message.get("body", b""), message.get("more_body", False))
        if t == "http.response.trailers":
            self._trailers(message)
            return _DONE
        if t == "http.response.pathsend":
            return self._pathsend(message["path"])
        if t == "http.response.zerocopysend":
            return self._zerocopysend(message)
        raise RuntimeError(f"Unexpected ASGI message {t!r} sent, after response started.")

    cdef _start(self, dict message):
        cdef list hl = []
        cdef bytes name
        self.status = int(message["status"])
        headers = message.get("headers")
        if headers:
            for raw_name, raw_value in headers:
                name = raw_name if type(raw_name) is bytes else bytes(raw_name)
                value = raw_value if type(raw_value) is bytes else bytes(raw_value)
                if _has_upper(name):
                    name = name.lower()
                if name in _H2_DROP:
                    continue
                hl.append((name, value))
        self.trailers = bool(message.get("trailers", False))
        self.resp_headers = hl
        self.headers = hl
        self.response_started = True

    cdef _send_head(self, bint end_stream):
        cdef H2Session session = self.session
        cfg = session.proto.cfg
        hl = [(b":status", _status_bytes(self.status))]
        hl.extend(self.headers)
        hl.extend(cfg.default_headers)
        if cfg.date_header:
            hl.append((b"date", _date.get()))
        self.headers = None
        session.send_headers(self.sid, hl, end_stream)

    cdef _early_hint(self, dict message):
        cdef H2Session session = self.session
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
        build_response_head(103, fields, True, b"1.1")     # ValueError on CR/LF/NUL
        if self.disconnected:
            return
        session.send_headers(self.sid, [(b":status", b"103")] + fields, False)
        session.proto._h2_dirty()

    cdef _trailers(self, dict message):
        cdef H2Session session = self.session
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
        self.trailer_fields = None
        fields = [f for f in fields if f[0] not in _H2_DROP]
        if self.head:
            session.send_data(self.sid, b"", True)
        elif fields:
            session.send_trailers(self.sid, fields)
        else:
            session.send_data(self.sid, b"", True)
        self._complete()

    cdef _complete(self):
        self.response_complete = True
        self.session._stream_done(self)

    cdef object _body(self, body, bint more):
        cdef H2Session session = self.session
        cdef Py_ssize_t n, taken
        cdef bint end = not more and not self.trailers
        if self.headers is not None:
            if self.head or self.status == 204 or self.status == 304:
                self.head = True              # no body may follow (RFC 9110 §6.4.1)
            if (self.head or not body) and end:
                self._send_head(True)
                self._complete()
                return _DONE
            self._send_head(False)
        if self.head:
            body = b""
        n = len(body)
        if n == 0:
            if end:
                session.send_data(self.sid, b"", True)
                self._complete()
            elif not more:
                self.body_finished = True
            session.proto._h2_dirty()
            return _DONE
        taken = self._push(body, end)
        self.bytes_sent += taken
        if taken < n:
            return self._send_rest(body, taken, more, end)
        self._body_sent(more)
        if session.proto.write_paused:
            return session.proto.drain()
        return _DONE

    cdef Py_ssize_t _push(self, data, bint end) except -1:
        """Queue as much of data as the peer's windows allow; returns the bytes taken. A small
        body is copied into the core's frames (one write with the rest); a large one is framed
        by data_frame_header() around memoryview slices of it, never copied."""
        cdef H2Session session = self.session
        cdef Py_ssize_t n = len(data), taken = 0, k, win, maxf, size = 0
        cdef bytes header
        cdef list pieces
        if n <= SMALL_BODY:
            taken = session.send_data(self.sid, data, end)
            session.proto._h2_dirty()
            return taken
        win = session.send_window(self.sid)
        maxf = session.peer_max_frame_size
        pieces = []
        view = memoryview(data)
        while taken < n and win > 0:
            k = min(win, maxf, n - taken)
            header = session.data_frame_header(self.sid, k, end and taken + k == n)
            if not header:
                break                          # the stream closed
            pieces.append(header)
            pieces.append(view[taken:taken + k])
            taken += k
            win -= k
            size += k + 9
        if pieces:
            session.proto._h2_write(pieces, size)
        return taken

    cdef Py_ssize_t _sendfile_run(self, int fd, Py_ssize_t offset, Py_ssize_t k,
                                  bint end) except -2:
        """The sendfile(2) path of pathsend/zerocopysend on cleartext: DATA frames of
        fd[offset:offset+k] (k within the peer's windows), each frame's 9-byte header sent
        with MSG_MORE and its payload by sendfile, straight to the socket. Returns the file
        bytes framed (all of them are on their way: what the kernel did not take is read and
        queued behind what it did), or -1 where this does not apply (TLS, another transport,
        output held back because the client does not read)."""
        cdef H2Session session = self.session
        cdef HttpProtocol proto = session.proto
        cdef SocketTransport tr
        cdef Py_ssize_t taken = 0, f, r, maxf = session.peer_max_frame_size
        if (proto.tls or not proto.gather_ok or proto.write_paused or proto.transport is None
                or proto.transport.is_closing()):
            return -1
        proto._flush_out()                    # frames queued before these go first
        tr = <SocketTransport>proto.transport
        while taken < k:
            # frames of at most H2_FILE_CHUNK: what a full socket leaves of one frame is read
            # into memory, so a client allowing 16 MiB frames can't make that 16 MiB a stream
            f = min(maxf, H2_FILE_CHUNK, k - taken)
            header = session.data_frame_header(self.sid, f, end and taken + f == k)
            if not header:
                break                          # the stream closed
            r = tr._write_then_sendfile(header, fd, offset + taken, f)
            taken += f
            if r < f:
                # the socket buffer is full (or the header was queued): the rest of this
                # frame's payload follows in the transport's queue, in order
                rest = _os.pread(fd, f - r, offset + taken - f + r)
                if len(rest) < f - r:
                    # the file shrank under us: the frame can't have the length it announced,
                    # and the connection can't go on after a short frame
                    tr.abort()
                    return taken
                tr.write(rest)
                break
        return taken

    cdef _body_sent(self, bint more):
        if not more:
            if self.trailers:
                self.body_finished = True
            else:
                self._complete()

    async def _wait_window(self):
        # A client that never opens its window would hold the response (and the app) for
        # good: after --timeout-request-body seconds without window the stream is reset
        # (CANCEL) and the app sees the client gone (the core has no clock: this is the
        # owner's stall timeout, docs/pages/http2.md)
        cdef H2Session session = self.session
        cdef double limit = session.proto.cfg.body_timeout
        loop = session.proto.loop
        while not self.disconnected and session.send_window(self.sid) <= 0:
            if session.lost or not session.stream_open(self.sid):
                self.disconnected = True       # closed under us (no hook): nothing to wait for
                return
            fut = self.sender = loop.create_future()
            timer = loop.call_later(limit, self._stalled, fut) if limit > 0 else None
            try:
                await fut
            finally:
                if timer is not None:
                    timer.cancel()

    def _stalled(self, fut):
        if self.sender is fut and not fut.done() and not self.disconnected:
            self._reset(H2_CANCEL)
            self._wake_sender()

    async def _send_rest(self, body, Py_ssize_t taken, bint more, bint end):
        # the rest of a body the peer's window did not take: wait for WINDOW_UPDATE
        cdef H2Session session = self.session
        cdef Py_ssize_t n = len(body), k
        view = memoryview(body)
        while taken < n:
            await self._wait_window()
            if self.disconnected:
                return
            k = self._push(view[taken:], end)
            taken += k
            self.bytes_sent += k
        self._body_sent(more)
        await session.proto.drain()

    async def _pathsend(self, path):
        fd = _os.open(path, _O_PATHSEND)
        with open(fd, "rb", buffering=0) as f:
            st = _os.fstat(fd)
            if not _S_ISREG(st.st_mode):
                if _S_ISDIR(st.st_mode):
                    raise IsADirectoryError(_errno.EISDIR, _os.strerror(_errno.EISDIR), path)
                raise ValueError(f"http.response.pathsend: {path!r} is not a regular file")
            await self._send_file(f, 0, st.st_size, False)

    async def _zerocopysend(self, dict message):
        f = message["file"]
        offset = message.get("offset")
        count = message.get("count")
        if offset is None:
            offset = f.tell() if hasattr(f, "tell") else 0
        if count is None:
            count = _os.fstat(f.fileno()).st_size - offset
        await self._send_file(f, offset, count, message.get("more_body", False))

    async def _send_file(self, f, Py_ssize_t offset, Py_ssize_t count, bint more):
        # DATA frames of the file as the peer's window allows: on cleartext by sendfile(2)
        # (_sendfile_run), else read in H2_FILE_CHUNK pieces and framed around the bytes read
        # (one copy: the read)
        cdef H2Session session = self.session
        cdef Py_ssize_t k, n, end_at = offset + count
        cdef bint end = not more and not self.trailers
        if self.headers is not None:
            if not more and not self.trailers and not any(
                    h[0] == b"content-length" for h in self.headers):
                self.headers.append((b"content-length", str(count).encode()))
            if self.head or count <= 0:
                self._send_head(end)
                if end:
                    self._complete()
                    return
                self._body_sent(more)
                return
            self._send_head(False)
        if self.head:
            self._body_sent(more)
            return
        try:
            fd = f.fileno()
        except (AttributeError, OSError, ValueError):
            fd = -1
        while offset < end_at:
            await self._wait_window()
            if self.disconnected:
                return
            if H2_SENDFILE and fd >= 0:
                # nothing is read into memory here: no H2_FILE_CHUNK bound
                k = min(session.send_window(self.sid), end_at - offset)
                n = self._sendfile_run(fd, offset, k, end and offset + k == end_at)
                if n >= 0:
                    offset += n
                    self.bytes_sent += n
                    if session.proto.write_paused:
                        await session.proto.drain()
                    continue
            k = min(session.send_window(self.sid), H2_FILE_CHUNK, end_at - offset)
            if fd >= 0:
                data = _os.pread(fd, k, offset)
            else:
                f.seek(offset)
                data = f.read(k)
            if not data:
                # the file came up short: the response can't have the length announced
                self._reset(H2_INTERNAL_ERROR)
                return
            n = self._push(data, end and offset + len(data) == end_at)
            offset += n
            self.bytes_sent += n
            if n < len(data):
                continue                    # the rest is read again when the window opens
            if session.proto.write_paused:
                await session.proto.drain()
        if fd >= 0:
            _os.lseek(fd, offset, _os.SEEK_SET)    # where loop.sendfile would leave it
        self._body_sent(more)
        session.proto._h2_dirty()
