# engine._h2: the IO-free HTTP/2 server connection (RFC 9113): bytes in, hooks/events out,
# frames to send. No sockets, no clocks (every flood limit counts frames, see "Limits" in
# docs/pages/http2.md).
#
# Beside it in pyx/h2/: h2_consts.pxi (frame types, flags, error codes, settings ids, default
# limits, the phase/state/event enums), h2_validate.pxi (request validation, §8). The carry
# buffer for an unfinished frame is pyx/common/carry.pxi (shared with engine._http/_ws).
# Declarations: pyx/engine/_h2.pxd; Python types: engine/_h2.pyi. HPACK is engine._hpack.
#
# RFC 9113 facts relied on:
# * §3.4 the client preface is the 24 octets "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" then a SETTINGS
#   frame; anything else is a connection error PROTOCOL_ERROR (we still send GOAWAY).
# * §4.1 frame = length(24) type(8) flags(8) R+stream id(31) + payload; unknown types and
#   flags are ignored (§4.1, §5.5). §4.2 a frame longer than our SETTINGS_MAX_FRAME_SIZE is a
#   FRAME_SIZE_ERROR (a connection error: we refuse before reading its payload).
# * §4.3 a header block is HEADERS + CONTINUATION* on one stream with nothing else between;
#   a decoding failure is a connection error COMPRESSION_ERROR.
# * §5.1 stream states (the STREAM_NEXT table below), §5.1.1 client streams are odd and
#   increasing; a lower unused id is implicitly closed. §5.1.2 excess streams: REFUSED_STREAM.
# * §6.1-§6.10 per-frame rules (stream 0 or not, fixed lengths, padding < payload, ...),
#   §6.5.2 settings ranges, §6.9 flow control (windows <= 2**31-1, zero increments, SETTINGS
#   deltas applied to every stream), §6.8 GOAWAY last-stream-id.
# * §8.1 a malformed request is a stream error PROTOCOL_ERROR (h2_validate.pxi).
# * §10.5.1 a header list above the advertised SETTINGS_MAX_HEADER_LIST_SIZE may be answered
#   431 provided the block is still processed (the HPACK table stays in step); we decode it
#   whole up to max_header_list_hard and refuse the stream, and past that end the connection.

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.string cimport memcpy, memcmp
from libc.stdlib cimport free

include "h2_consts.pxi"
include "common/carry.pxi"
include "h2_validate.pxi"

from engine._hpack cimport Decoder, Encoder
from engine._hpack import HpackError, HeaderListTooLarge, HeaderListDropped

# -- module constants (engine/_h2.pyi) ----------------------------------------------------------
DATA = FT_DATA
HEADERS = FT_HEADERS
PRIORITY = FT_PRIORITY
RST_STREAM = FT_RST_STREAM
SETTINGS = FT_SETTINGS
PUSH_PROMISE = FT_PUSH_PROMISE
PING = FT_PING
GOAWAY = FT_GOAWAY
WINDOW_UPDATE = FT_WINDOW_UPDATE
CONTINUATION = FT_CONTINUATION

END_STREAM = FLAG_END_STREAM
ACK = FLAG_ACK
END_HEADERS = FLAG_END_HEADERS
PADDED = FLAG_PADDED
PRIORITY_FLAG = FLAG_PRIORITY

NO_ERROR = ERR_NO_ERROR
PROTOCOL_ERROR = ERR_PROTOCOL_ERROR
INTERNAL_ERROR = ERR_INTERNAL_ERROR
FLOW_CONTROL_ERROR = ERR_FLOW_CONTROL_ERROR
SETTINGS_TIMEOUT = ERR_SETTINGS_TIMEOUT
STREAM_CLOSED = ERR_STREAM_CLOSED
FRAME_SIZE_ERROR = ERR_FRAME_SIZE_ERROR
REFUSED_STREAM = ERR_REFUSED_STREAM
CANCEL = ERR_CANCEL
COMPRESSION_ERROR = ERR_COMPRESSION_ERROR
CONNECT_ERROR = ERR_CONNECT_ERROR
ENHANCE_YOUR_CALM = ERR_ENHANCE_YOUR_CALM
INADEQUATE_SECURITY = ERR_INADEQUATE_SECURITY
HTTP_1_1_REQUIRED = ERR_HTTP_1_1_REQUIRED

SETTINGS_HEADER_TABLE_SIZE = SET_HEADER_TABLE_SIZE
SETTINGS_ENABLE_PUSH = SET_ENABLE_PUSH
SETTINGS_MAX_CONCURRENT_STREAMS = SET_MAX_CONCURRENT_STREAMS
SETTINGS_INITIAL_WINDOW_SIZE = SET_INITIAL_WINDOW_SIZE
SETTINGS_MAX_FRAME_SIZE = SET_MAX_FRAME_SIZE
SETTINGS_MAX_HEADER_LIST_SIZE = SET_MAX_HEADER_LIST_SIZE
SETTINGS_ENABLE_CONNECT_PROTOCOL = SET_ENABLE_CONNECT_PROTOCOL

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
cdef const char *C_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

STATE_NAMES = ("idle", "open", "reserved (local)", "reserved (remote)", "half-closed (local)",
               "half-closed (remote)", "closed")


# ---------------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------------

@cython.final
cdef class H2Limits:
    """What one HTTP/2 connection may make the server hold or do; every field is documented in
    docs/pages/http2.md ("Limits") with its default and the RFC answer when exceeded."""

    def __init__(self, *, Py_ssize_t max_concurrent_streams=DEFAULT_MAX_CONCURRENT_STREAMS,
                 Py_ssize_t initial_window_size=DEFAULT_INITIAL_WINDOW_SIZE,
                 Py_ssize_t connection_window_size=DEFAULT_CONNECTION_WINDOW_SIZE,
                 Py_ssize_t max_frame_size=DEFAULT_MAX_FRAME_SIZE,
                 Py_ssize_t max_header_list_size=DEFAULT_MAX_HEADER_LIST_SIZE,
                 object max_header_list_hard=None,
                 Py_ssize_t header_table_size=DEFAULT_HEADER_TABLE_SIZE,
                 Py_ssize_t max_header_block_bytes=DEFAULT_MAX_HEADER_BLOCK_BYTES,
                 Py_ssize_t max_continuation_frames=DEFAULT_MAX_CONTINUATION_FRAMES,
                 Py_ssize_t max_rapid_resets=DEFAULT_MAX_RAPID_RESETS,
                 Py_ssize_t rapid_reset_window=DEFAULT_RAPID_RESET_WINDOW,
                 Py_ssize_t max_control_queue=DEFAULT_MAX_CONTROL_QUEUE,
                 Py_ssize_t max_settings_frames=DEFAULT_MAX_SETTINGS_FRAMES,
                 Py_ssize_t max_ping_frames=DEFAULT_MAX_PING_FRAMES,
                 Py_ssize_t max_empty_data_frames=DEFAULT_MAX_EMPTY_DATA_FRAMES,
                 Py_ssize_t max_priority_frames=DEFAULT_MAX_PRIORITY_FRAMES,
                 Py_ssize_t max_window_update_frames=DEFAULT_MAX_WINDOW_UPDATE_FRAMES,
                 bint enable_connect_protocol=False):
        if max_concurrent_streams < 1 or max_concurrent_streams > MAX_WINDOW:
            raise ValueError("max_concurrent_streams must be in [1, 2**31-1]")
        if initial_window_size < 0 or initial_window_size > MAX_WINDOW:
            raise ValueError("initial_window_size must be in [0, 2**31-1]")
        if connection_window_size < DEFAULT_WINDOW or connection_window_size > MAX_WINDOW:
            raise ValueError("connection_window_size must be in [65535, 2**31-1]")
        if max_frame_size < MIN_MAX_FRAME_SIZE or max_frame_size > MAX_MAX_FRAME_SIZE:
            raise ValueError("max_frame_size must be in [2**14, 2**24-1]")
        if max_header_list_size < 1 or max_header_list_size > MAX_WINDOW:
            raise ValueError("max_header_list_size must be in [1, 2**31-1]")
        if max_header_list_hard is None:
            max_header_list_hard = min(max_header_list_size * HEADER_LIST_HARD_FACTOR,
                                       MAX_WINDOW)
        elif not (max_header_list_size <= max_header_list_hard <= MAX_WINDOW):
            raise ValueError("max_header_list_hard must be in [max_header_list_size, 2**31-1]")
        if header_table_size < 0 or header_table_size > MAX_WINDOW:
            raise ValueError("header_table_size must be in [0, 2**31-1]")
        for name, v in (("max_header_block_bytes", max_header_block_bytes),
                        ("max_continuation_frames", max_continuation_frames),
                        ("max_rapid_resets", max_rapid_resets),
                        ("rapid_reset_window", rapid_reset_window),
                        ("max_control_queue", max_control_queue),
                        ("max_settings_frames", max_settings_frames),
                        ("max_ping_frames", max_ping_frames),
                        ("max_empty_data_frames", max_empty_data_frames),
                        ("max_priority_frames", max_priority_frames),
                        ("max_window_update_frames", max_window_update_frames)):
            if v < 1:
                raise ValueError(f"{name} must be at least 1")
        self.max_concurrent_streams = max_concurrent_streams
        self.initial_window_size = initial_window_size
        self.connection_window_size = connection_window_size
        self.max_frame_size = max_frame_size
        self.max_header_list_size = max_header_list_size
        self.max_header_list_hard = max_header_list_hard
        self.header_table_size = header_table_size
        self.max_header_block_bytes = max_header_block_bytes
        self.max_continuation_frames = max_continuation_frames
        self.max_rapid_resets = max_rapid_resets
        self.rapid_reset_window = rapid_reset_window
        self.max_control_queue = max_control_queue
        self.max_settings_frames = max_settings_frames
        self.max_ping_frames = max_ping_frames
        self.max_empty_data_frames = max_empty_data_frames
        self.max_priority_frames = max_priority_frames
        self.max_window_update_frames = max_window_update_frames
        self.enable_connect_protocol = enable_connect_protocol

    def __repr__(self):
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in LIMIT_FIELDS)
        return f"H2Limits({fields})"


LIMIT_FIELDS = ("max_concurrent_streams", "initial_window_size", "connection_window_size",
                "max_frame_size", "max_header_list_size", "max_header_list_hard",
                "header_table_size",
                "max_header_block_bytes", "max_continuation_frames", "max_rapid_resets",
                "rapid_reset_window", "max_control_queue", "max_settings_frames",
                "max_ping_frames", "max_empty_data_frames", "max_priority_frames",
                "max_window_update_frames", "enable_connect_protocol")

cdef H2Limits DEFAULT_LIMITS = H2Limits()


# ---------------------------------------------------------------------------------------------
# Streams and their state table (RFC 9113 §5.1, server side)
# ---------------------------------------------------------------------------------------------

@cython.final
@cython.freelist(32)
cdef class H2Stream:
    """One stream's state inside an H2Connection (made by the core only)."""

    def __init__(self):
        raise TypeError("H2Stream objects are made by H2Connection")


cdef signed char STREAM_NEXT[EV_COUNT][S_COUNT]


cdef void _init_stream_table() noexcept:
    cdef int e, s
    for e in range(EV_COUNT):
        for s in range(S_COUNT):
            STREAM_NEXT[e][s] = X_LOCAL if e >= EV_SEND_HEADERS else X_CONN_PROTOCOL
    # idle: a client opens a stream with HEADERS; other frames are a connection error
    STREAM_NEXT[EV_RECV_HEADERS][S_IDLE] = S_OPEN
    # open
    STREAM_NEXT[EV_RECV_HEADERS][S_OPEN] = S_OPEN           # trailers (END_STREAM checked)
    STREAM_NEXT[EV_RECV_DATA][S_OPEN] = S_OPEN
    STREAM_NEXT[EV_RECV_END][S_OPEN] = S_HALF_CLOSED_REMOTE
    STREAM_NEXT[EV_RECV_RST][S_OPEN] = S_CLOSED
    STREAM_NEXT[EV_SEND_HEADERS][S_OPEN] = S_OPEN
    STREAM_NEXT[EV_SEND_DATA][S_OPEN] = S_OPEN
    STREAM_NEXT[EV_SEND_END][S_OPEN] = S_HALF_CLOSED_LOCAL
    STREAM_NEXT[EV_SEND_RST][S_OPEN] = S_CLOSED
    # half-closed (local): we are done sending, the client is not
    STREAM_NEXT[EV_RECV_HEADERS][S_HALF_CLOSED_LOCAL] = S_HALF_CLOSED_LOCAL
    STREAM_NEXT[EV_RECV_DATA][S_HALF_CLOSED_LOCAL] = S_HALF_CLOSED_LOCAL
    STREAM_NEXT[EV_RECV_END][S_HALF_CLOSED_LOCAL] = S_CLOSED
    STREAM_NEXT[EV_RECV_RST][S_HALF_CLOSED_LOCAL] = S_CLOSED
    STREAM_NEXT[EV_SEND_RST][S_HALF_CLOSED_LOCAL] = S_CLOSED
    # half-closed (remote): the client is done; anything but WINDOW_UPDATE/PRIORITY/RST_STREAM
    # from it is a stream error STREAM_CLOSED
    STREAM_NEXT[EV_RECV_HEADERS][S_HALF_CLOSED_REMOTE] = X_STREAM_CLOSED
    STREAM_NEXT[EV_RECV_DATA][S_HALF_CLOSED_REMOTE] = X_STREAM_CLOSED
    STREAM_NEXT[EV_RECV_END][S_HALF_CLOSED_REMOTE] = X_STREAM_CLOSED
    STREAM_NEXT[EV_RECV_RST][S_HALF_CLOSED_REMOTE] = S_CLOSED
    STREAM_NEXT[EV_SEND_HEADERS][S_HALF_CLOSED_REMOTE] = S_HALF_CLOSED_REMOTE
    STREAM_NEXT[EV_SEND_DATA][S_HALF_CLOSED_REMOTE] = S_HALF_CLOSED_REMOTE
    STREAM_NEXT[EV_SEND_END][S_HALF_CLOSED_REMOTE] = S_CLOSED
    STREAM_NEXT[EV_SEND_RST][S_HALF_CLOSED_REMOTE] = S_CLOSED
    # closed: frames after END_STREAM are a connection error STREAM_CLOSED; RST is ignored
    STREAM_NEXT[EV_RECV_HEADERS][S_CLOSED] = X_CONN_CLOSED
    STREAM_NEXT[EV_RECV_DATA][S_CLOSED] = X_CONN_CLOSED
    STREAM_NEXT[EV_RECV_END][S_CLOSED] = X_CONN_CLOSED
    STREAM_NEXT[EV_RECV_RST][S_CLOSED] = S_CLOSED


_init_stream_table()


def stream_transition(int event, int state):
    """The STREAM_NEXT table for tests: the next state (>= 0) or an X_* error kind (< 0)."""
    if not (0 <= event < EV_COUNT and 0 <= state < S_COUNT):
        raise ValueError("event or state out of range")
    return STREAM_NEXT[event][state]


cdef inline int _next(H2Stream s, int ev) noexcept:
    return STREAM_NEXT[ev][s.state]


# ---------------------------------------------------------------------------------------------
# Frame handlers, dispatched through FRAME_TABLE by frame type. Each gets the frame's flags,
# stream id and payload (inside the receive buffer: valid only during the call).
# ---------------------------------------------------------------------------------------------

ctypedef int (*frame_fn)(H2Connection, int, unsigned int, const unsigned char *,
                         Py_ssize_t) except -1

cdef frame_fn FRAME_TABLE[FT_COUNT]


cdef inline unsigned int _u32(const unsigned char *p) noexcept:
    return (<unsigned int>p[0] << 24) | (<unsigned int>p[1] << 16) | (<unsigned int>p[2] << 8) | p[3]


cdef inline void _put_u32(unsigned char *p, unsigned int v) noexcept:
    p[0] = (v >> 24) & 0xff
    p[1] = (v >> 16) & 0xff
    p[2] = (v >> 8) & 0xff
    p[3] = v & 0xff


cdef inline int _strip_padding(H2Connection c, int flags, const unsigned char **p,
                               Py_ssize_t *n) except -1:
    """Remove the PADDED framing (§6.1, §6.2): 1 if the frame is malformed (connection error
    already raised), else 0 with p/n narrowed to the content."""
    cdef Py_ssize_t pad
    if flags & FLAG_PADDED:
        if n[0] < 1:
            c._conn_error(ERR_FRAME_SIZE_ERROR, "padded frame without a pad length")
            return 1
        pad = p[0][0]
        if pad >= n[0]:
            c._conn_error(ERR_PROTOCOL_ERROR, "padding is not shorter than the payload")
            return 1
        p[0] += 1
        n[0] -= 1 + pad
    return 0


cdef inline int _closed_kind(H2Connection c, unsigned int sid) except -1:
    return c._closed_kind.get(sid, CK_UNKNOWN)


cdef int _on_data(H2Connection c, int flags, unsigned int sid, const unsigned char *p,
                  Py_ssize_t n) except -1:
    cdef Py_ssize_t flow = n, content
    cdef H2Stream s
    cdef bint end = (flags & FLAG_END_STREAM) != 0
    cdef int nxt, kind
    cdef bytes payload
    if sid == 0:
        return c._conn_error(ERR_PROTOCOL_ERROR, "DATA on stream 0")
    if sid > c._highest_seen or not (sid & 1):
        return c._conn_error(ERR_PROTOCOL_ERROR, "DATA on an idle stream")
    # the whole frame, padding included, counts against the connection window (§6.9)
    if flow > c.conn_recv_window:
        return c._conn_error(ERR_FLOW_CONTROL_ERROR, "DATA beyond the connection window")
    c.conn_recv_window -= flow
    if _strip_padding(c, flags, &p, &n):
        return 0
    s = <H2Stream>c._streams.get(sid)
    if s is None:
        c._credit_conn(flow)                # nobody will consume it
        kind = _closed_kind(c, sid)
        if kind == CK_RESET_BY_US:
            return 0                        # in flight when we reset it (§5.4.2): ignored
        if kind == CK_RESET_BY_PEER:
            return c._stream_error(sid, ERR_STREAM_CLOSED)
        return c._conn_error(ERR_STREAM_CLOSED, "DATA on a closed stream")
    nxt = _next(s, EV_RECV_DATA)
    if nxt < 0:
        c._credit_conn(flow)
        return c._stream_error(sid, ERR_STREAM_CLOSED)
    if flow > s.recv_window:
        c._credit_conn(flow)
        return c._stream_error(sid, ERR_FLOW_CONTROL_ERROR)
    s.recv_window -= flow
    content = n
    if flow > content:                      # padding: never delivered, so given back now
        c._credit_conn(flow - content)
        s.pending_update += flow - content
    s.received += content
    if s.content_length >= 0 and (s.received > s.content_length
                                  or (end and s.received != s.content_length)):
        c._credit_conn(content)
        return c._stream_error(sid, ERR_PROTOCOL_ERROR)
    if end:
        nxt = _next(s, EV_RECV_END)
        s.state = nxt
    if content == 0:
        if not end:
            c._n_empty_data += 1
            if c._n_empty_data > c.limits.max_empty_data_frames:
                return c._conn_error(ERR_ENHANCE_YOUR_CALM, "flood of empty DATA frames")
            return 0
        payload = b""
    else:
        c._productive()
        s.unconsumed += content
        payload = PyBytes_FromStringAndSize(<const char *>p, content)
    if s.state == S_CLOSED:
        c._close_stream(s, CK_END_STREAM)
    c.on_data(sid, payload, end)
    return 0


cdef int _on_headers(H2Connection c, int flags, unsigned int sid, const unsigned char *p,
                     Py_ssize_t n) except -1:
    cdef bint self_dep = False
    if sid == 0:
        return c._conn_error(ERR_PROTOCOL_ERROR, "HEADERS on stream 0")
    if not (sid & 1):
        return c._conn_error(ERR_PROTOCOL_ERROR, "HEADERS on an even (server) stream id")
    if _strip_padding(c, flags, &p, &n):
        return 0
    if flags & FLAG_PRIORITY:
        if n < 5:
            return c._conn_error(ERR_FRAME_SIZE_ERROR, "HEADERS too short for its priority")
        self_dep = (_u32(p) & 0x7fffffff) == sid
        p += 5
        n -= 5
    if flags & FLAG_END_HEADERS:
        return _header_block(c, sid, p, n, (flags & FLAG_END_STREAM) != 0, self_dep)
    if n > c.limits.max_header_block_bytes:
        return c._conn_error(ERR_ENHANCE_YOUR_CALM, "header block too large")
    c._hb_sid = sid
    c._hb_end_stream = (flags & FLAG_END_STREAM) != 0
    c._hb_self_dep = self_dep
    c._hb_frames = 0
    c._hb = bytearray(PyBytes_FromStringAndSize(<const char *>p, n))
    return 0


cdef int _on_continuation(H2Connection c, int flags, unsigned int sid, const unsigned char *p,
                          Py_ssize_t n) except -1:
    cdef bytearray hb
    if c._hb_sid == 0:
        return c._conn_error(ERR_PROTOCOL_ERROR, "CONTINUATION without a header block")
    # (a frame on another stream was refused by _frame() already)
    c._hb_frames += 1
    if c._hb_frames > c.limits.max_continuation_frames:
        return c._conn_error(ERR_ENHANCE_YOUR_CALM, "too many CONTINUATION frames")
    hb = c._hb
    if PyByteArray_GET_SIZE(hb) + n > c.limits.max_header_block_bytes:
        return c._conn_error(ERR_ENHANCE_YOUR_CALM, "header block too large")
    _out_put(hb, p, n)
    if flags & FLAG_END_HEADERS:
        c._hb_sid = 0
        c._hb = None
        return _header_block(c, sid, <const unsigned char *>PyByteArray_AS_STRING(hb),
                             PyByteArray_GET_SIZE(hb), c._hb_end_stream, c._hb_self_dep)
    return 0


cdef int _header_block(H2Connection c, unsigned int sid, const unsigned char *p, Py_ssize_t n,
                       bint end, bint self_dep) except -1:
    """A complete header block: decoded first in every case (the HPACK state is shared by the
    whole connection), then a new request, trailers, or a frame to refuse."""
    cdef list headers
    cdef H2Stream s
    cdef int nxt, kind
    cdef str why
    cdef long long clen
    try:
        headers = c._decoder.decode_c(p, n)
    except HeaderListDropped:
        # above SETTINGS_MAX_HEADER_LIST_SIZE, within max_header_list_hard: decoded whole (the
        # HPACK table is in step), the fields dropped; the stream is refused below (§10.5.1)
        headers = None
    except HeaderListTooLarge:
        return c._conn_error(ERR_ENHANCE_YOUR_CALM, "header list larger than "
                             "max_header_list_hard")
    except HpackError as exc:
        return c._conn_error(ERR_COMPRESSION_ERROR, f"HPACK: {exc}")
    s = <H2Stream>c._streams.get(sid)
    if s is not None:                                   # trailers
        nxt = _next(s, EV_RECV_HEADERS)
        if nxt < 0:
            return c._stream_error(sid, ERR_STREAM_CLOSED)
        if not end:
            return c._stream_error(sid, ERR_PROTOCOL_ERROR)
        if self_dep:
            return c._stream_error(sid, ERR_PROTOCOL_ERROR)
        if headers is None:                 # oversized trailers: the request cannot complete
            return c._stream_error(sid, ERR_ENHANCE_YOUR_CALM)
        why = _check_fields(headers, True, False, &clen)
        if why is not None:
            return c._stream_error(sid, ERR_PROTOCOL_ERROR)
        if s.content_length >= 0 and s.received != s.content_length:
            return c._stream_error(sid, ERR_PROTOCOL_ERROR)
        s.state = _next(s, EV_RECV_END)
        if s.state == S_CLOSED:
            c._close_stream(s, CK_END_STREAM)
        c.on_trailers(sid, headers)
        return 0
    if sid <= c._highest_seen:                          # a closed stream
        kind = _closed_kind(c, sid)
        if kind == CK_RESET_BY_US:
            return 0
        if kind == CK_RESET_BY_PEER:
            return c._stream_error(sid, ERR_STREAM_CLOSED)
        if kind == CK_UNKNOWN:              # §5.1.1: ids must increase
            return c._conn_error(ERR_PROTOCOL_ERROR, "HEADERS with a decreasing stream id")
        return c._conn_error(ERR_STREAM_CLOSED, "HEADERS on a closed stream")
    # a new stream: every lower idle id is now closed (§5.1.1)
    c._highest_seen = sid
    if c.goaway_sent and sid > c._goaway_last:
        return 0                                        # after our GOAWAY: ignored (§6.8)
    if self_dep:
        return c._stream_error(sid, ERR_PROTOCOL_ERROR)
    if c.open_streams >= c.limits.max_concurrent_streams:
        return c._stream_error(sid, ERR_REFUSED_STREAM)  # counts as a reset, as all do
    if headers is None:
        clen = -1                           # unknown: the owner answers 431 without the body
    else:
        why = _check_fields(headers, False, c.limits.enable_connect_protocol, &clen)
        if why is not None or (end and clen > 0):
            return c._stream_error(sid, ERR_PROTOCOL_ERROR)
    s = H2Stream.__new__(H2Stream)
    s.sid = sid
    s.state = S_HALF_CLOSED_REMOTE if end else S_OPEN
    s.send_window = c.peer_initial_window_size
    s.recv_window = c._recv_initial
    s.content_length = clen
    s.announced = True
    c._streams[sid] = s
    c.open_streams += 1
    c.last_stream_id = sid
    c._rr_opened += 1
    if c._rr_opened > c.limits.rapid_reset_window:      # a new window of stream openings
        c._rr_opened = 1
        c._rr_resets = 0
    c._productive()
    if headers is None:
        c.on_request_too_large(sid, end)
    else:
        c.on_request(sid, headers, end)
    return 0


cdef int _on_priority(H2Connection c, int flags, unsigned int sid, const unsigned char *p,
                      Py_ssize_t n) except -1:
    if sid == 0:
        return c._conn_error(ERR_PROTOCOL_ERROR, "PRIORITY on stream 0")
    cdef unsigned int code = 0
    c._n_priority += 1
    if c._n_priority > c.limits.max_priority_frames:
        return c._conn_error(ERR_ENHANCE_YOUR_CALM, "flood of PRIORITY frames")
    if n != 5:
        code = ERR_FRAME_SIZE_ERROR                             # §6.3: a stream error
    elif (_u32(p) & 0x7fffffff) == sid:
        code = ERR_PROTOCOL_ERROR                               # §5.3.1
    if code == 0:
        return 0                                                # otherwise ignored (§5.3.2)
    if c._streams.get(sid) is not None:
        return c._stream_error(sid, code)
    if sid > c._highest_seen or not (sid & 1):
        # no RST_STREAM may be sent on an idle stream (§5.1): the connection pays
        return c._conn_error(code, "malformed PRIORITY frame on an idle stream")
    return 0                                                    # closed: ignored


cdef int _on_rst_stream(H2Connection c, int flags, unsigned int sid, const unsigned char *p,
                        Py_ssize_t n) except -1:
    cdef H2Stream s
    cdef unsigned int code
    if sid == 0:
        return c._conn_error(ERR_PROTOCOL_ERROR, "RST_STREAM on stream 0")
    if n != 4:
        return c._conn_error(ERR_FRAME_SIZE_ERROR, "RST_STREAM length is not 4")
    if sid > c._highest_seen or not (sid & 1):
        return c._conn_error(ERR_PROTOCOL_ERROR, "RST_STREAM on an idle stream")
    s = <H2Stream>c._streams.get(sid)
    if s is None:
        return 0                                    # already closed: nothing to do
    code = _u32(p)
    if s.state == S_OPEN or s.state == S_HALF_CLOSED_REMOTE:
        # reset before we finished answering: the rapid-reset pattern (CVE-2023-44487)
        c._rr_resets += 1
    s.state = S_CLOSED
    c._close_stream(s, CK_RESET_BY_PEER)
    if s.announced:
        c.on_stream_reset(sid, code)
    if c._rr_resets > c.limits.max_rapid_resets:
        return c._conn_error(ERR_ENHANCE_YOUR_CALM, "rapid reset: too many streams reset")
    return 0


cdef int _settings_fail(H2Connection c, bint upgrade, unsigned int code, str reason) except -1:
    if upgrade:
        raise ValueError(f"HTTP2-Settings: {reason}")
    c._conn_error(code, reason)
    return 1


cdef int _apply_settings(H2Connection c, const unsigned char *p, Py_ssize_t n, bint upgrade,
                         list opened) except -1:
    """Apply the peer's settings (a SETTINGS payload, or HTTP2-Settings of an h2c upgrade):
    0, or 1 after a connection error (ValueError for an upgrade)."""
    cdef Py_ssize_t i
    cdef unsigned int ident, value
    cdef long long delta
    cdef H2Stream s
    if n % 6:
        return _settings_fail(c, upgrade, ERR_FRAME_SIZE_ERROR,
                              "SETTINGS length is not a multiple of 6")
    for i in range(0, n, 6):
        ident = (<unsigned int>p[i] << 8) | p[i + 1]
        value = _u32(p + i + 2)
        if ident == SET_HEADER_TABLE_SIZE:
            # our encoder uses at most what the peer allows and at most the default
            if min(<long long>value, DEFAULT_TABLE_SIZE) != c._encoder_table_size:
                c._encoder_table_size = min(<long long>value, DEFAULT_TABLE_SIZE)
                c._encoder.set_max_table_size(c._encoder_table_size)
        elif ident == SET_ENABLE_PUSH:
            if value > 1:
                return _settings_fail(c, upgrade, ERR_PROTOCOL_ERROR,
                                      "SETTINGS_ENABLE_PUSH is not 0 or 1")
        elif ident == SET_INITIAL_WINDOW_SIZE:
            if value > MAX_WINDOW:
                return _settings_fail(c, upgrade, ERR_FLOW_CONTROL_ERROR,
                                      "SETTINGS_INITIAL_WINDOW_SIZE above 2**31-1")
            delta = <long long>value - c.peer_initial_window_size
            c.peer_initial_window_size = value
            if delta != 0:
                for s in c._streams.values():
                    s.send_window += delta
                    if s.send_window > MAX_WINDOW:
                        return _settings_fail(c, upgrade, ERR_FLOW_CONTROL_ERROR,
                                              "SETTINGS_INITIAL_WINDOW_SIZE overflows a window")
                    if delta > 0 and s.send_window > 0:
                        opened.append(s.sid)
        elif ident == SET_MAX_FRAME_SIZE:
            if value < MIN_MAX_FRAME_SIZE or value > MAX_MAX_FRAME_SIZE:
                return _settings_fail(c, upgrade, ERR_PROTOCOL_ERROR,
                                      "SETTINGS_MAX_FRAME_SIZE out of range")
            c.peer_max_frame_size = value
        elif ident == SET_MAX_HEADER_LIST_SIZE:
            c.peer_max_header_list_size = value
        elif ident == SET_ENABLE_CONNECT_PROTOCOL:
            if value > 1:
                return _settings_fail(c, upgrade, ERR_PROTOCOL_ERROR,
                                      "SETTINGS_ENABLE_CONNECT_PROTOCOL is not 0 or 1")
        # SETTINGS_MAX_CONCURRENT_STREAMS limits streams we would push: we push none.
        # Unknown identifiers are ignored (§6.5.2).
    c.peer_settings_received = True
    return 0


cdef int _on_settings(H2Connection c, int flags, unsigned int sid, const unsigned char *p,
                      Py_ssize_t n) except -1:
    cdef list opened = []
    if sid != 0:
        return c._conn_error(ERR_PROTOCOL_ERROR, "SETTINGS on a stream")
    if flags & FLAG_ACK:
        if n != 0:
            return c._conn_error(ERR_FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
        if not c._local_settings_acked:
            c._local_settings_acked = True
            _apply_local_settings(c)
        return 0
    if n % 6:
        return c._conn_error(ERR_FRAME_SIZE_ERROR, "SETTINGS length is not a multiple of 6")
    c._n_settings += 1
    if c._n_settings > c.limits.max_settings_frames:
        return c._conn_error(ERR_ENHANCE_YOUR_CALM, "flood of SETTINGS frames")
    if _apply_settings(c, p, n, False, opened):
        return 0
    c._write_frame(0, FT_SETTINGS, FLAG_ACK, 0, NULL)
    c._ctl_queued += FRAME_HEADER_LEN
    if c._ctl_queued > c.limits.max_control_queue:
        return c._conn_error(ERR_ENHANCE_YOUR_CALM, "peer does not read our SETTINGS ACKs")
    for sid in opened:
        c.on_window_open(sid)
    return 0


cdef int _apply_local_settings(H2Connection c) except -1:
    """Our SETTINGS were acknowledged: the stream windows the peer assumes change to ours."""
    cdef long long delta = c.limits.initial_window_size - c._recv_initial
    cdef H2Stream s
    c._recv_initial = c.limits.initial_window_size
    if delta != 0:
        for s in c._streams.values():
            s.recv_window += delta
            if s.state == S_OPEN or s.state == S_HALF_CLOSED_LOCAL:
                _stream_update(c, s)        # consumed before the ACK under the old threshold
    if c.limits.header_table_size < DEFAULT_TABLE_SIZE:
        c._decoder.set_max_table_size(c.limits.header_table_size)
    return 0


cdef int _on_push_promise(H2Connection c, int flags, unsigned int sid, const unsigned char *p,
                          Py_ssize_t n) except -1:
    return c._conn_error(ERR_PROTOCOL_ERROR, "PUSH_PROMISE from a client")   # §8.4


cdef int _on_ping(H2Connection c, int flags, unsigned int sid, const unsigned char *p,
                  Py_ssize_t n) except -1:
    if sid != 0:
        return c._conn_error(ERR_PROTOCOL_ERROR, "PING on a stream")
    if n != 8:
        return c._conn_error(ERR_FRAME_SIZE_ERROR, "PING length is not 8")
    if flags & FLAG_ACK:
        return 0
    c._n_ping += 1
    if c._n_ping > c.limits.max_ping_frames:
        return c._conn_error(ERR_ENHANCE_YOUR_CALM, "flood of PING frames")
    c._write_frame(8, FT_PING, FLAG_ACK, 0, p)
    c._ctl_queued += FRAME_HEADER_LEN + 8
    if c._ctl_queued > c.limits.max_control_queue:
        return c._conn_error(ERR_ENHANCE_YOUR_CALM, "peer does not read our PING ACKs")
    return 0


cdef int _on_goaway(H2Connection c, int flags, unsigned int sid, const unsigned char *p,
                    Py_ssize_t n) except -1:
    cdef unsigned int last, code
    if sid != 0:
        return c._conn_error(ERR_PROTOCOL_ERROR, "GOAWAY on a stream")
    if n < 8:
        return c._conn_error(ERR_FRAME_SIZE_ERROR, "GOAWAY shorter than 8")
    last = _u32(p) & 0x7fffffff
    code = _u32(p + 4)
    c.goaway_received = True
    if code != ERR_NO_ERROR:
        c.closed = True
        c._phase = PH_CLOSED
    c.on_goaway(last, code)
    return 0


cdef int _on_window_update(H2Connection c, int flags, unsigned int sid, const unsigned char *p,
                           Py_ssize_t n) except -1:
    cdef unsigned int inc
    cdef H2Stream s
    if n != 4:
        return c._conn_error(ERR_FRAME_SIZE_ERROR, "WINDOW_UPDATE length is not 4")
    inc = _u32(p) & 0x7fffffff
    c._n_window_update += 1
    if c._n_window_update > c.limits.max_window_update_frames:
        return c._conn_error(ERR_ENHANCE_YOUR_CALM, "flood of WINDOW_UPDATE frames")
    if sid == 0:
        if inc == 0:
            return c._conn_error(ERR_PROTOCOL_ERROR, "WINDOW_UPDATE with a 0 increment")
        if c.conn_send_window + inc > MAX_WINDOW:
            return c._conn_error(ERR_FLOW_CONTROL_ERROR, "connection window above 2**31-1")
        c.conn_send_window += inc
        c.on_window_open(0)
        return 0
    if sid > c._highest_seen or not (sid & 1):
        return c._conn_error(ERR_PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
    s = <H2Stream>c._streams.get(sid)
    if s is None:
        return 0                                # closed: tolerated (§5.1 closed)
    if inc == 0:
        return c._stream_error(sid, ERR_PROTOCOL_ERROR)
    if s.send_window + inc > MAX_WINDOW:
        return c._stream_error(sid, ERR_FLOW_CONTROL_ERROR)
    s.send_window += inc
    if s.state == S_OPEN or s.state == S_HALF_CLOSED_REMOTE:
        c.on_window_open(sid)
    return 0


FRAME_TABLE[FT_DATA] = _on_data
FRAME_TABLE[FT_HEADERS] = _on_headers
FRAME_TABLE[FT_PRIORITY] = _on_priority
FRAME_TABLE[FT_RST_STREAM] = _on_rst_stream
FRAME_TABLE[FT_SETTINGS] = _on_settings
FRAME_TABLE[FT_PUSH_PROMISE] = _on_push_promise
FRAME_TABLE[FT_PING] = _on_ping
FRAME_TABLE[FT_GOAWAY] = _on_goaway
FRAME_TABLE[FT_WINDOW_UPDATE] = _on_window_update
FRAME_TABLE[FT_CONTINUATION] = _on_continuation


cdef inline int _out_put(bytearray out, const void *p, Py_ssize_t n) except -1:
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(out)
    if n == 0:
        return 0
    PyByteArray_Resize(out, size + n)
    memcpy(PyByteArray_AS_STRING(out) + size, p, n)
    return 0


cdef inline void _frame_header(unsigned char *h, Py_ssize_t length, int ftype, int flags,
                               unsigned int sid) noexcept:
    h[0] = (length >> 16) & 0xff
    h[1] = (length >> 8) & 0xff
    h[2] = length & 0xff
    h[3] = ftype
    h[4] = flags
    _put_u32(h + 5, sid & 0x7fffffff)


# ---------------------------------------------------------------------------------------------
# The connection
# ---------------------------------------------------------------------------------------------

cdef class H2Connection:
    """IO-free HTTP/2 server connection. Feed it what the client sent with ``receive()``; take
    what to send with ``data_to_send()``. Subclass it in Cython and override the hooks
    (pyx/engine/_h2.pxd), or use H2EventConnection from Python. Protocol errors never raise:
    they become RST_STREAM (stream errors) or GOAWAY (connection errors) in the output, and the
    hooks on_stream_reset()/on_connection_error() tell the owner. An exception raised by a hook
    propagates out of receive() after the connection queued GOAWAY INTERNAL_ERROR."""

    def __cinit__(self, *args, **kwargs):
        self._buf = NULL
        self._buf_len = 0
        self._buf_cap = 0
        self._streams = {}
        self._closed_kind = {}
        self._out = bytearray()
        self.limits = DEFAULT_LIMITS
        self.peer_max_frame_size = MIN_MAX_FRAME_SIZE
        self.peer_initial_window_size = DEFAULT_WINDOW
        self.peer_max_header_list_size = -1
        self.conn_send_window = DEFAULT_WINDOW
        self.conn_recv_window = DEFAULT_WINDOW
        self._recv_initial = DEFAULT_WINDOW
        self._encoder_table_size = DEFAULT_TABLE_SIZE
        self._phase = PH_PREFACE

    def __init__(self, H2Limits limits=None):
        if limits is not None:
            self.limits = limits
        # until our SETTINGS are acknowledged the peer may use HPACK's default table size
        self._decoder = Decoder(max_table_size=max(self.limits.header_table_size,
                                                    DEFAULT_TABLE_SIZE),
                                 max_header_list_size=self.limits.max_header_list_size,
                                 max_header_list_hard=self.limits.max_header_list_hard)
        self._encoder = Encoder(max_table_size=DEFAULT_TABLE_SIZE)

    def __dealloc__(self):
        if self._buf != NULL:
            free(self._buf)
            self._buf = NULL

    # -- hooks ---------------------------------------------------------------------------------

    cdef int on_request(self, unsigned int stream_id, list headers, bint end_stream) except -1:
        return 0

    cdef int on_request_too_large(self, unsigned int stream_id, bint end_stream) except -1:
        # a new stream whose header list passed max_header_list_size (not the hard limit):
        # opened like a request, its fields dropped; the owner answers it (431) with
        # send_headers/send_data and, if the client has not ended it, reset_stream(NO_ERROR)
        return 0

    cdef int on_data(self, unsigned int stream_id, object data, bint end_stream) except -1:
        return 0

    cdef int on_trailers(self, unsigned int stream_id, list headers) except -1:
        return 0

    cdef int on_stream_reset(self, unsigned int stream_id, unsigned int error_code) except -1:
        return 0

    cdef int on_window_open(self, unsigned int stream_id) except -1:
        return 0

    cdef int on_goaway(self, unsigned int last_stream_id, unsigned int error_code) except -1:
        return 0

    cdef int on_connection_error(self, unsigned int error_code, str reason) except -1:
        return 0

    # -- input ---------------------------------------------------------------------------------

    cpdef receive(self, data):
        """Process ``data`` (any bytes-like): the client preface first, then frames. Hooks run
        before it returns. Protocol errors never raise."""
        cdef Py_buffer view
        cdef const unsigned char *d
        cdef const unsigned char *b
        cdef Py_ssize_t n, pos = 0, need, take, used
        if self._in_receive:
            raise RuntimeError("receive() called from an H2Connection hook")
        if not self._initiated:
            self.initiate()
        if self._phase == PH_CLOSED:
            return None
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        self._in_receive = True
        try:
            d = <const unsigned char *>view.buf
            n = view.len
            # finish the frame carried from the last call, taking only what it lacks
            while self._buf_len > 0 and self._phase != PH_CLOSED:
                b = <const unsigned char *>self._buf
                if self._buf_len < FRAME_HEADER_LEN:
                    need = FRAME_HEADER_LEN
                else:
                    need = FRAME_HEADER_LEN + ((<Py_ssize_t>b[0] << 16) | (b[1] << 8) | b[2])
                    if need - FRAME_HEADER_LEN > self.limits.max_frame_size:
                        need = self._buf_len        # let _parse refuse it now
                if self._buf_len < need:
                    if pos == n:
                        break
                    take = min(need - self._buf_len, n - pos)
                    carry_append(&self._buf, &self._buf_len, &self._buf_cap,
                                 <const char *>d + pos, take, 256)
                    pos += take
                    continue
                used = self._buf_len
                self._buf_len = 0
                self._parse(<const unsigned char *>self._buf, used)
            if self._phase != PH_CLOSED and pos < n:
                used = self._parse(d + pos, n - pos)
                pos += used
                if pos < n and self._phase != PH_CLOSED:
                    carry_append(&self._buf, &self._buf_len, &self._buf_cap,
                                 <const char *>d + pos, n - pos, 256)
        except BaseException:
            self._buf_len = 0
            if self._phase != PH_CLOSED:
                self._phase = PH_CLOSED
                self.closed = True
                _write_goaway(self, self.last_stream_id, ERR_INTERNAL_ERROR, "")
            raise
        finally:
            self._in_receive = False
            PyBuffer_Release(&view)
        if self._phase == PH_CLOSED:
            self._buf_len = 0
        if self._buf_len == 0 and self._buf_cap > CARRY_KEEP_CAPACITY:
            free(self._buf)
            self._buf = NULL
            self._buf_cap = 0
        return None

    cdef Py_ssize_t _parse(self, const unsigned char *d, Py_ssize_t n) except -1:
        """Handle every complete frame in d[0:n]; returns the bytes consumed (the rest is an
        unfinished frame)."""
        cdef Py_ssize_t pos = 0, length, k
        cdef unsigned int sid
        while pos < n:
            if self._phase == PH_PREFACE:
                k = min(PREFACE_LEN - self._preface_seen, n - pos)
                if memcmp(d + pos, C_PREFACE + self._preface_seen, k) != 0:
                    self._conn_error(ERR_PROTOCOL_ERROR, "invalid connection preface")
                    return n
                self._preface_seen += k
                pos += k
                if self._preface_seen == PREFACE_LEN:
                    self._phase = PH_SETTINGS
                continue
            if self._phase == PH_CLOSED:
                return n
            if n - pos < FRAME_HEADER_LEN:
                break
            length = (<Py_ssize_t>d[pos] << 16) | (d[pos + 1] << 8) | d[pos + 2]
            if length > self.limits.max_frame_size:
                self._conn_error(ERR_FRAME_SIZE_ERROR, "frame larger than SETTINGS_MAX_FRAME_SIZE")
                return n
            if n - pos < FRAME_HEADER_LEN + length:
                break
            sid = _u32(d + pos + 5) & 0x7fffffff
            pos += FRAME_HEADER_LEN + length
            self._frame(d[pos - length - 6], d[pos - length - 5], sid, d + pos - length, length)
        return pos

    cdef int _frame(self, int ftype, int flags, unsigned int sid,
                    const unsigned char *p, Py_ssize_t n) except -1:
        if self._phase == PH_SETTINGS:
            if ftype != FT_SETTINGS or (flags & FLAG_ACK):
                return self._conn_error(ERR_PROTOCOL_ERROR,
                                        "the client preface is not followed by SETTINGS")
            self._phase = PH_FRAMES
        if self._hb_sid != 0 and (ftype != FT_CONTINUATION or sid != self._hb_sid):
            return self._conn_error(ERR_PROTOCOL_ERROR, "header block interrupted")
        if ftype < FT_COUNT:
            return FRAME_TABLE[ftype](self, flags, sid, p, n)
        return 0                                    # unknown frame type: ignored (§5.5)

    # -- errors --------------------------------------------------------------------------------

    cdef int _conn_error(self, unsigned int code, str reason) except -1:
        """A connection error (§5.4.1): GOAWAY(code), then nothing more is read."""
        if self._phase == PH_CLOSED:
            return 0
        self._phase = PH_CLOSED
        self.closed = True
        self._hb_sid = 0
        self._hb = None
        _write_goaway(self, self.last_stream_id, code, reason)
        self.on_connection_error(code, reason)
        return 0

    cdef int _stream_error(self, unsigned int sid, unsigned int code) except -1:
        """A stream error (§5.4.2): RST_STREAM(code); the stream closes; the connection goes
        on. Frames the peer had in flight on it are ignored afterwards."""
        cdef unsigned char payload[4]
        cdef H2Stream s = <H2Stream>self._streams.get(sid)
        _put_u32(payload, code)
        self._write_frame(4, FT_RST_STREAM, 0, sid, payload)
        self._ctl_queued += FRAME_HEADER_LEN + 4
        if s is not None:
            s.state = S_CLOSED
            self._close_stream(s, CK_RESET_BY_US)
            if s.announced:
                self.on_stream_reset(sid, code)
        else:
            _remember_closed(self, sid, CK_RESET_BY_US)
        if self._ctl_queued > self.limits.max_control_queue:
            return self._conn_error(ERR_ENHANCE_YOUR_CALM, "peer does not read our RST_STREAMs")
        # resets the client provokes (malformed requests, refused streams, ...) cost what its
        # own resets cost: the same budget (the "MadeYouReset" variant of rapid reset)
        self._rr_resets += 1
        if self._rr_resets > self.limits.max_rapid_resets:
            return self._conn_error(ERR_ENHANCE_YOUR_CALM, "too many streams reset")
        return 0

    cdef int _close_stream(self, H2Stream s, int kind) except -1:
        del self._streams[s.sid]
        self.open_streams -= 1
        _remember_closed(self, s.sid, kind)
        if s.unconsumed > 0:                # never to be consumed: the connection gets it back
            self._credit_conn(s.unconsumed)
            s.unconsumed = 0
        return 0

    # -- output --------------------------------------------------------------------------------

    cdef int _write_frame(self, Py_ssize_t length, int ftype, int flags, unsigned int sid,
                          const void *payload) except -1:
        cdef unsigned char h[FRAME_HEADER_LEN]
        _frame_header(h, length, ftype, flags, sid)
        _out_put(self._out, h, FRAME_HEADER_LEN)
        if length:
            _out_put(self._out, payload, length)
        return 0

    cdef int _write_header_block(self, unsigned int sid, list headers, int flags) except -1:
        """HEADERS (+ CONTINUATION frames) carrying the encoded `headers`, split by the peer's
        max frame size; `flags` may hold END_STREAM. The block is encoded straight into the
        output after a frame-header placeholder."""
        cdef bytearray out = self._out
        cdef Py_ssize_t start = PyByteArray_GET_SIZE(out), n, k, step = self.peer_max_frame_size
        cdef bytes block
        cdef const char *p
        cdef int ftype = FT_HEADERS
        PyByteArray_Resize(out, start + FRAME_HEADER_LEN)
        self._encoder.encode_into(headers, out)
        n = PyByteArray_GET_SIZE(out) - start - FRAME_HEADER_LEN
        if n <= step:
            _frame_header(<unsigned char *>PyByteArray_AS_STRING(out) + start, n, FT_HEADERS,
                          flags | FLAG_END_HEADERS, sid)
            return 0
        block = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(out) + start + FRAME_HEADER_LEN, n)
        PyByteArray_Resize(out, start)
        p = PyBytes_AS_STRING(block)
        while True:
            k = min(n, step)
            self._write_frame(k, ftype, flags | (FLAG_END_HEADERS if k == n else 0), sid, p)
            p += k
            n -= k
            if n == 0:
                return 0
            ftype = FT_CONTINUATION
            flags = 0

    cdef int _credit_conn(self, long long n) except -1:
        """n bytes of received DATA are consumed at the connection level: WINDOW_UPDATE on
        stream 0 once half the connection window is to be reopened."""
        cdef unsigned char payload[4]
        self._conn_pending_update += n
        if self._conn_pending_update >= self.limits.connection_window_size // 2:
            _put_u32(payload, <unsigned int>self._conn_pending_update)
            self._write_frame(4, FT_WINDOW_UPDATE, 0, 0, payload)
            self.conn_recv_window += self._conn_pending_update
            self._conn_pending_update = 0
        return 0

    cdef int _productive(self) except -1:
        """The peer made the connection do useful work: the flood counters start over."""
        self._n_settings = 0
        self._n_ping = 0
        self._n_empty_data = 0
        self._n_priority = 0
        self._n_window_update = 0
        return 0

    cpdef initiate(self):
        """Queue the server preface: our SETTINGS (and a connection WINDOW_UPDATE when
        connection_window_size is above 65535). receive() calls it if the owner did not."""
        cdef unsigned char payload[42]
        cdef Py_ssize_t n = 0
        cdef H2Limits lim = self.limits
        if self._initiated:
            return None
        self._initiated = True
        n = _put_setting(payload, n, SET_MAX_CONCURRENT_STREAMS, lim.max_concurrent_streams)
        if lim.initial_window_size != DEFAULT_WINDOW:
            n = _put_setting(payload, n, SET_INITIAL_WINDOW_SIZE, lim.initial_window_size)
        if lim.max_frame_size != MIN_MAX_FRAME_SIZE:
            n = _put_setting(payload, n, SET_MAX_FRAME_SIZE, lim.max_frame_size)
        n = _put_setting(payload, n, SET_MAX_HEADER_LIST_SIZE, lim.max_header_list_size)
        if lim.header_table_size != DEFAULT_TABLE_SIZE:
            n = _put_setting(payload, n, SET_HEADER_TABLE_SIZE, lim.header_table_size)
        if lim.enable_connect_protocol:
            n = _put_setting(payload, n, SET_ENABLE_CONNECT_PROTOCOL, 1)
        self._write_frame(n, FT_SETTINGS, 0, 0, payload)
        if lim.connection_window_size > DEFAULT_WINDOW:
            _put_u32(payload, <unsigned int>(lim.connection_window_size - DEFAULT_WINDOW))
            self._write_frame(4, FT_WINDOW_UPDATE, 0, 0, payload)
            self.conn_recv_window = lim.connection_window_size
        return None

    def initiate_upgrade(self, settings_payload):
        """The HTTP/1.1 `Upgrade: h2c` path (RFC 7540 §3.2): `settings_payload` is the
        HTTP2-Settings header value, base64url-decoded. Applies those settings (the 101
        response acknowledges them), queues our SETTINGS, and makes stream 1 the upgraded
        request, half-closed (remote): the owner answers it on stream 1 with the request it
        parsed as HTTP/1.1 (on_request is not called). Then receive() expects the client
        preface as usual. Raises ValueError for an invalid payload (answer 400 and stay on
        HTTP/1.1). Call it on a fresh connection, before initiate()."""
        cdef bytes payload = bytes(settings_payload)
        cdef H2Stream s
        if self._initiated or self._highest_seen:
            raise RuntimeError("initiate_upgrade() on a connection already started")
        _apply_settings(self, <const unsigned char *>PyBytes_AS_STRING(payload),
                        PyBytes_GET_SIZE(payload), True, [])
        self.initiate()
        s = H2Stream.__new__(H2Stream)
        s.sid = 1
        s.state = S_HALF_CLOSED_REMOTE
        s.send_window = self.peer_initial_window_size
        s.recv_window = self._recv_initial
        s.content_length = -1
        s.announced = True
        self._streams[1] = s
        self.open_streams = 1
        self.last_stream_id = 1
        self._highest_seen = 1
        self._rr_opened = 1
        return None

    cpdef bytes data_to_send(self):
        """Everything queued so far (b"" if nothing), and clear the queue. An owner whose
        transport is paused should not call it: the queued reply frames then count against
        max_control_queue."""
        cdef bytes out
        if PyByteArray_GET_SIZE(self._out) == 0:
            return b""
        out = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(self._out),
                                        PyByteArray_GET_SIZE(self._out))
        PyByteArray_Resize(self._out, 0)
        self._ctl_queued = 0
        return out

    cpdef Py_ssize_t output_size(self):
        """Bytes queued for data_to_send()."""
        return PyByteArray_GET_SIZE(self._out)

    cpdef bint stream_open(self, unsigned int stream_id):
        """True while the stream is open or half-closed (not reset, not finished both ways)."""
        return stream_id in self._streams

    cdef H2Stream _send_stream(self, unsigned int sid, int ev):
        """The stream if `ev` is allowed on it now, None if it is closed or reset (the output
        is dropped), ValueError for an id that was never a request stream."""
        cdef H2Stream s
        if self.closed:
            return None
        s = <H2Stream>self._streams.get(sid)
        if s is None:
            if sid == 0 or not (sid & 1) or sid > self._highest_seen:
                raise ValueError(f"stream {sid} is not a client request stream")
            return None
        if STREAM_NEXT[ev][s.state] < 0:
            if s.state == S_HALF_CLOSED_LOCAL:
                return None                 # we already ended it
            raise ValueError(f"cannot send on stream {sid} in state {STATE_NAMES[s.state]}")
        return s

    cpdef send_headers(self, unsigned int stream_id, list headers, bint end_stream):
        """Queue a HEADERS frame (+ CONTINUATION) with the response header list
        ``[(b":status", b"200"), (name, value), ...]``. 1xx responses may come first."""
        cdef H2Stream s = self._send_stream(stream_id, EV_SEND_HEADERS)
        if s is None:
            return None
        self._write_header_block(stream_id, headers, FLAG_END_STREAM if end_stream else 0)
        self._productive()
        if not (len(headers) and (<tuple>headers[0])[0] == b":status"
                and (<bytes>(<tuple>headers[0])[1]).startswith(b"1")):
            s.response_started = True
        if end_stream:
            _end_local(self, s)
        return None

    cpdef send_trailers(self, unsigned int stream_id, list headers):
        """Queue the trailer section (HEADERS with END_STREAM)."""
        cdef H2Stream s = self._send_stream(stream_id, EV_SEND_END)
        if s is None:
            return None
        self._write_header_block(stream_id, headers, FLAG_END_STREAM)
        _end_local(self, s)
        return None

    cpdef Py_ssize_t send_window(self, unsigned int stream_id) except -1:
        """How many DATA bytes may be sent on the stream now: min(stream, connection window),
        0 for a closed stream."""
        cdef H2Stream s = <H2Stream>self._streams.get(stream_id)
        if s is None or self.closed:
            return 0
        return max(0, min(s.send_window, self.conn_send_window))

    cpdef Py_ssize_t send_data(self, unsigned int stream_id, data, bint end_stream) except -1:
        """Queue DATA frames for as much of ``data`` as the windows allow, split by the peer's
        max frame size; returns the bytes taken. END_STREAM goes on the last frame only when
        all of it was taken (an empty ``data`` with end_stream sends an empty END_STREAM
        frame)."""
        cdef H2Stream s = self._send_stream(stream_id, EV_SEND_DATA)
        cdef Py_buffer view
        cdef Py_ssize_t total, take, k, off = 0
        cdef const char *p
        cdef int flags
        if s is None:
            return 0
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            total = view.len
            take = min(total, max(0, min(s.send_window, self.conn_send_window)))
            p = <const char *>view.buf
            while True:
                k = min(take - off, <Py_ssize_t>self.peer_max_frame_size)
                flags = FLAG_END_STREAM if (end_stream and off + k == total) else 0
                if k == 0 and not flags:
                    break
                self._write_frame(k, FT_DATA, flags, stream_id, p + off)
                off += k
                if off == take:
                    break
        finally:
            PyBuffer_Release(&view)
        s.send_window -= take
        self.conn_send_window -= take
        if take:
            self._productive()
        if end_stream and take == total:
            _end_local(self, s)
        return take

    cpdef bytes data_frame_header(self, unsigned int stream_id, Py_ssize_t n, bint end_stream):
        """For sendfile: take n payload bytes (n <= send_window(), n <= the peer's max frame
        size) from the windows and return the 9-byte DATA frame header. The caller writes
        data_to_send(), then this header, then the n bytes itself. b"" for a closed stream."""
        cdef H2Stream s = self._send_stream(stream_id, EV_SEND_DATA)
        cdef unsigned char h[FRAME_HEADER_LEN]
        if s is None:
            return b""
        if n < 0 or n > min(s.send_window, self.conn_send_window) or n > self.peer_max_frame_size:
            raise ValueError("n exceeds the send window or the peer's max frame size")
        _frame_header(h, n, FT_DATA, FLAG_END_STREAM if end_stream else 0, stream_id)
        s.send_window -= n
        self.conn_send_window -= n
        if n:
            self._productive()
        if end_stream:
            _end_local(self, s)
        return PyBytes_FromStringAndSize(<const char *>h, FRAME_HEADER_LEN)

    cpdef reset_stream(self, unsigned int stream_id, unsigned int error_code):
        """Queue RST_STREAM(error_code) and close the stream (no on_stream_reset for it).
        Nothing happens for a stream that is already closed."""
        cdef unsigned char payload[4]
        cdef H2Stream s = <H2Stream>self._streams.get(stream_id)
        if s is None or self.closed:
            return None
        _put_u32(payload, error_code)
        self._write_frame(4, FT_RST_STREAM, 0, stream_id, payload)
        s.state = S_CLOSED
        self._close_stream(s, CK_RESET_BY_US)
        return None

    cpdef consume(self, unsigned int stream_id, Py_ssize_t n):
        """The application took n bytes of the stream's DATA: reopen the windows (WINDOW_UPDATE
        for the stream and the connection, each sent once half its window is due)."""
        cdef H2Stream s = <H2Stream>self._streams.get(stream_id)
        if n < 0:
            raise ValueError("n must be >= 0")
        if s is None or self.closed:
            return None                     # a closed stream's bytes were given back already
        n = min(n, s.unconsumed)
        if n == 0:
            return None
        s.unconsumed -= n
        self._credit_conn(n)
        if s.state == S_OPEN or s.state == S_HALF_CLOSED_LOCAL:     # more DATA may come
            s.pending_update += n
            _stream_update(self, s)
        return None

    cpdef goaway(self, unsigned int error_code=ERR_NO_ERROR):
        """Queue GOAWAY with last-stream-id = the highest stream accepted: streams up to it go
        on, later new streams are ignored. An error code other than NO_ERROR also closes the
        connection (closed = True, input ignored)."""
        if self.closed:
            return None
        self.goaway_sent = True
        self._goaway_last = self.last_stream_id
        _write_goaway(self, self.last_stream_id, error_code, "")
        if error_code != ERR_NO_ERROR:
            self.closed = True
            self._phase = PH_CLOSED
        return None

    cpdef ping(self, bytes opaque):
        """Queue a PING with 8 bytes of opaque data (the peer answers with a PING ACK)."""
        if PyBytes_GET_SIZE(opaque) != 8:
            raise ValueError("PING data must be 8 bytes")
        if self.closed:
            return None
        self._write_frame(8, FT_PING, 0, 0, PyBytes_AS_STRING(opaque))
        return None

    @property
    def local_settings_acked(self):
        return self._local_settings_acked

    def stream_state(self, unsigned int stream_id):
        """The state name of a stream (RFC 9113 §5.1): "idle", "open", "half-closed (local)",
        "half-closed (remote)" or "closed"."""
        cdef H2Stream s = <H2Stream>self._streams.get(stream_id)
        if s is not None:
            return STATE_NAMES[s.state]
        if stream_id != 0 and stream_id <= self._highest_seen:
            return STATE_NAMES[S_CLOSED]
        return STATE_NAMES[S_IDLE]

    def stream_windows(self, unsigned int stream_id):
        """(send window, receive window) of an open stream, for tests and diagnostics."""
        cdef H2Stream s = <H2Stream>self._streams[stream_id]
        return (s.send_window, s.recv_window)


cdef Py_ssize_t _put_setting(unsigned char *p, Py_ssize_t n, int ident, unsigned int value) noexcept:
    p[n] = (ident >> 8) & 0xff
    p[n + 1] = ident & 0xff
    _put_u32(p + n + 2, value)
    return n + 6


cdef int _write_goaway(H2Connection c, unsigned int last, unsigned int code,
                       str reason) except -1:
    cdef bytes debug = reason.encode("ascii", "replace")[:GOAWAY_DEBUG_MAX]
    cdef bytes payload = (last & 0x7fffffff).to_bytes(4, "big") + code.to_bytes(4, "big") + debug
    c.goaway_sent = True
    c._goaway_last = last
    c._write_frame(PyBytes_GET_SIZE(payload), FT_GOAWAY, 0, 0, PyBytes_AS_STRING(payload))
    return 0


cdef int _stream_update(H2Connection c, H2Stream s) except -1:
    """WINDOW_UPDATE for the stream once half its window is due, or when the peer is blocked
    (window used up)."""
    cdef unsigned char payload[4]
    if s.pending_update > 0 and (s.pending_update >= c._recv_initial // 2
                                 or s.recv_window <= 0):
        _put_u32(payload, <unsigned int>s.pending_update)
        c._write_frame(4, FT_WINDOW_UPDATE, 0, s.sid, payload)
        s.recv_window += s.pending_update
        s.pending_update = 0
    return 0


cdef int _end_local(H2Connection c, H2Stream s) except -1:
    s.state = STREAM_NEXT[EV_SEND_END][s.state]
    if s.state == S_CLOSED:
        c._close_stream(s, CK_END_STREAM)
    return 0


cdef int _remember_closed(H2Connection c, unsigned int sid, int kind) except -1:
    cdef dict d = c._closed_kind
    d[sid] = kind
    if len(d) > CLOSED_REMEMBERED:
        del d[next(iter(d))]
    return 0


# ---------------------------------------------------------------------------------------------
# The Python-facing connection: hooks record events
# ---------------------------------------------------------------------------------------------

@cython.final
cdef class H2EventConnection(H2Connection):
    """H2Connection whose hooks record event tuples; ``receive()`` returns the events it
    produced: ("request", sid, headers, end_stream), ("request_too_large", sid, end_stream),
    ("data", sid, data, end_stream),
    ("trailers", sid, headers), ("reset", sid, code), ("window", sid),
    ("goaway", last_stream_id, code), ("connection_error", code, reason)."""

    def __cinit__(self, *args, **kwargs):
        self._events = []

    cpdef receive(self, data):
        cdef list out
        try:
            H2Connection.receive(self, data)
        finally:
            out = self._events
            self._events = []
        return out

    cdef int on_request(self, unsigned int stream_id, list headers, bint end_stream) except -1:
        self._events.append(("request", stream_id, headers, end_stream))
        return 0

    cdef int on_request_too_large(self, unsigned int stream_id, bint end_stream) except -1:
        self._events.append(("request_too_large", stream_id, end_stream))
        return 0

    cdef int on_data(self, unsigned int stream_id, object data, bint end_stream) except -1:
        self._events.append(("data", stream_id, data, end_stream))
        return 0

    cdef int on_trailers(self, unsigned int stream_id, list headers) except -1:
        self._events.append(("trailers", stream_id, headers))
        return 0

    cdef int on_stream_reset(self, unsigned int stream_id, unsigned int error_code) except -1:
        self._events.append(("reset", stream_id, error_code))
        return 0

    cdef int on_window_open(self, unsigned int stream_id) except -1:
        self._events.append(("window", stream_id))
        return 0

    cdef int on_goaway(self, unsigned int last_stream_id, unsigned int error_code) except -1:
        self._events.append(("goaway", last_stream_id, error_code))
        return 0

    cdef int on_connection_error(self, unsigned int error_code, str reason) except -1:
        self._events.append(("connection_error", error_code, reason))
        return 0
