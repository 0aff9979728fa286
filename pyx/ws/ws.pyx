# engine._ws: IO-free WebSocket (RFC 6455) handshake helpers and frame codec.
#
# Beside it in pyx/ws/: ws_consts.pxi (tunables, opcodes, parser states); the carry buffer is
# pyx/common/carry.pxi, shared with engine._http. Declarations for Cython users (FrameParser and
# its hooks): pyx/engine/_ws.pxd; Python types: engine/_ws.pyi.
#
# RFC 6455 facts relied on:
# * Opening handshake (§4.2.1): an HTTP/1.1 GET with Host, "Upgrade: websocket", a "Connection"
#   containing "Upgrade", Sec-WebSocket-Key = base64 of 16 bytes, Sec-WebSocket-Version: 13.
#   An unsupported version is answered 426 with "Sec-WebSocket-Version: 13" (§4.2.2).
#   Sec-WebSocket-Accept = base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) (§4.2.2).
# * Frame (§5.2): FIN, RSV1-3, opcode(4) | MASK, payload len 7 bits; 126 -> 16-bit length,
#   127 -> 64-bit length whose most significant bit is 0; the minimal encoding MUST be used.
#   Then the 4-byte masking key if MASK, then the payload.
# * RSV bits MUST be 0 unless an extension defines them: no extension is negotiated here, so a
#   set RSV bit fails the connection (1002). Opcodes 3-7 and 0xB-0xF are reserved (1002).
# * Masking (§5.3): client-to-server frames MUST be masked, server-to-client frames MUST NOT;
#   octet i of the payload is XORed with key[i mod 4].
# * Fragmentation (§5.4): a message is a first frame (text/binary) + continuation frames (opcode
#   0), the last with FIN. Control frames may come between fragments; a data frame other than a
#   continuation inside a fragmented message, or a continuation outside one, is an error.
# * Control frames (§5.5): payload <= 125 bytes, never fragmented. Close (§5.5.1): empty, or a
#   2-byte code + UTF-8 reason. Valid codes on the wire (§7.4): 1000-1003, 1007-1014 (1012-1014
#   registered with IANA), 3000-4999; 1004-1006, 1015, other values < 3000 or >= 5000 are not.
#   An empty close reports 1005 (§7.1.5).
# * Text messages (and close reasons) MUST be valid UTF-8 (§8.1); invalid data fails with 1007
#   - checked incrementally, so a bad byte is caught in the fragment that carries it.
# * A message larger than the endpoint accepts fails with 1009 (§7.4.1).

cimport cython
from cpython.bytes cimport (
    PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_CheckExact)
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memcpy, memmove
from libc.stdlib cimport realloc, free
from libc.stdint cimport uint64_t, uint32_t

import base64 as _base64
import binascii as _binascii
import hashlib as _hashlib
import os as _os
import zlib as _zlib

include "ws_consts.pxi"
include "common/carry.pxi"

OP_CONTINUATION = OPC_CONT
OP_TEXT = OPC_TEXT
OP_BINARY = OPC_BINARY
OP_CLOSE = OPC_CLOSE
OP_PING = OPC_PING
OP_PONG = OPC_PONG

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011


class WebSocketError(Exception):
    """The peer broke the protocol: send a close frame with ``code`` (1002, 1007 or 1009) and
    close the connection."""

    def __init__(self, code, reason):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self):
        return f"{self.code} {self.reason}"


class HandshakeError(Exception):
    """The opening handshake is refused: answer ``status_code`` with ``headers`` added."""

    def __init__(self, status_code, reason, headers=()):
        super().__init__(status_code, reason)
        self.status_code = status_code
        self.reason = reason
        self.headers = list(headers)

    def __str__(self):
        return f"{self.status_code} {self.reason}"


# ---------------------------------------------------------------------------------------------
# UTF-8 validation: a DFA over byte classes (RFC 3629: no overlongs, no surrogates, <= U+10FFFF),
# resumable across fragments.
# ---------------------------------------------------------------------------------------------

cdef unsigned char U8_CLASS[256]
cdef unsigned char U8_NEXT[U8_STATES * 16]


cdef void _u8_set(int state, int cls, int nxt) noexcept:
    U8_NEXT[state * 16 + cls] = nxt


cdef void _init_utf8() noexcept:
    cdef int c, s, k
    for c in range(256):
        if c < 0x80:
            k = U8C_ASCII
        elif c < 0x90:
            k = U8C_CONT_80
        elif c < 0xA0:
            k = U8C_CONT_90
        elif c < 0xC0:
            k = U8C_CONT_A0
        elif c < 0xC2:
            k = U8C_INVALID                 # C0, C1: overlong 2-byte forms
        elif c < 0xE0:
            k = U8C_LEAD2
        elif c == 0xE0:
            k = U8C_E0
        elif c == 0xED:
            k = U8C_ED
        elif c < 0xF0:
            k = U8C_LEAD3
        elif c == 0xF0:
            k = U8C_F0
        elif c < 0xF4:
            k = U8C_LEAD4
        elif c == 0xF4:
            k = U8C_F4
        else:
            k = U8C_INVALID                 # F5-FF: beyond U+10FFFF
        U8_CLASS[c] = k
    for s in range(U8_STATES):
        for k in range(16):
            U8_NEXT[s * 16 + k] = U8_REJECT
    _u8_set(U8_ACCEPT, U8C_ASCII, U8_ACCEPT)
    _u8_set(U8_ACCEPT, U8C_LEAD2, U8_NEED1)
    _u8_set(U8_ACCEPT, U8C_LEAD3, U8_NEED2)
    _u8_set(U8_ACCEPT, U8C_E0, U8_AFTER_E0)      # E0 A0-BF: no overlong 3-byte forms
    _u8_set(U8_ACCEPT, U8C_ED, U8_AFTER_ED)      # ED 80-9F: no surrogates
    _u8_set(U8_ACCEPT, U8C_LEAD4, U8_NEED3)
    _u8_set(U8_ACCEPT, U8C_F0, U8_AFTER_F0)      # F0 90-BF: no overlong 4-byte forms
    _u8_set(U8_ACCEPT, U8C_F4, U8_AFTER_F4)      # F4 80-8F: nothing above U+10FFFF
    for k in (U8C_CONT_80, U8C_CONT_90, U8C_CONT_A0):
        _u8_set(U8_NEED1, k, U8_ACCEPT)
        _u8_set(U8_NEED2, k, U8_NEED1)
        _u8_set(U8_NEED3, k, U8_NEED2)
    _u8_set(U8_AFTER_E0, U8C_CONT_A0, U8_NEED1)
    _u8_set(U8_AFTER_ED, U8C_CONT_80, U8_NEED1)
    _u8_set(U8_AFTER_ED, U8C_CONT_90, U8_NEED1)
    _u8_set(U8_AFTER_F0, U8C_CONT_90, U8_NEED2)
    _u8_set(U8_AFTER_F0, U8C_CONT_A0, U8_NEED2)
    _u8_set(U8_AFTER_F4, U8C_CONT_80, U8_NEED2)


_init_utf8()


cdef inline int _utf8_feed(int state, const unsigned char *s, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i = 0
    cdef uint64_t w
    while i < n:
        if state == U8_ACCEPT:
            while i + 8 <= n:               # ASCII runs, eight bytes at a time
                memcpy(&w, s + i, 8)
                if w & <uint64_t>0x8080808080808080ULL:
                    break
                i += 8
            if i >= n:
                break
        state = U8_NEXT[state * 16 + U8_CLASS[s[i]]]
        if state == U8_REJECT:
            return state
        i += 1
    return state


def validate_utf8(data):
    """True if ``data`` (bytes-like) is valid UTF-8 by RFC 3629 (the check text frames get)."""
    cdef Py_buffer view
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        return _utf8_feed(U8_ACCEPT, <const unsigned char *>view.buf, view.len) == U8_ACCEPT
    finally:
        PyBuffer_Release(&view)


# ---------------------------------------------------------------------------------------------
# Masking: XOR with the key, eight bytes at a time. `offset` is the payload position of src[0]
# (a frame may arrive in pieces).
# ---------------------------------------------------------------------------------------------

cdef void _unmask(unsigned char *dst, const unsigned char *src, Py_ssize_t n,
                  const unsigned char *key, uint64_t offset) noexcept:
    cdef unsigned char k[8]
    cdef uint64_t wk, w
    cdef Py_ssize_t i = 0
    cdef int j
    for j in range(8):
        k[j] = key[(offset + j) & 3]
    memcpy(&wk, k, 8)
    while i + 8 <= n:
        memcpy(&w, src + i, 8)
        w ^= wk
        memcpy(dst + i, &w, 8)
        i += 8
    while i < n:
        dst[i] = src[i] ^ k[i & 7]
        i += 1


cdef inline bint _valid_close_code(int code) noexcept:
    return (1000 <= code <= 1003) or (1007 <= code <= 1014) or (3000 <= code <= 4999)


# ---------------------------------------------------------------------------------------------
# Frame parser: state functions dispatched through WS_TABLE.
# ---------------------------------------------------------------------------------------------

ctypedef int (*ws_state_fn)(FrameParser) except -1

cdef ws_state_fn WS_TABLE[WS_COUNT]


cdef int _fail(FrameParser p, int code, str reason) except -1:
    p._state = WS_ERROR
    p._error = WebSocketError(code, reason)
    raise p._error


cdef int _check_start(FrameParser p) except -1:
    """The first two header bytes: everything that can be refused before the length arrives."""
    cdef unsigned char b0 = p._hdr[0]
    cdef unsigned char b1 = p._hdr[1]
    cdef int op = b0 & 0x0F
    cdef int len7 = b1 & 0x7F
    if b0 & 0x30:
        return _fail(p, 1002, "RSV2/RSV3 bit set without a negotiated extension")
    if not (op <= OPC_BINARY or OPC_CLOSE <= op <= OPC_PONG):
        return _fail(p, 1002, "reserved opcode")
    p._rsv1 = (b0 & 0x40) != 0
    if p._rsv1:
        # RFC 7692 §6: RSV1 marks the first frame of a compressed message; never on control
        # frames nor on continuations
        if not p._rsv1_ok:
            return _fail(p, 1002, "RSV1 bit set without a negotiated extension")
        if op != OPC_TEXT and op != OPC_BINARY:
            return _fail(p, 1002, "RSV1 bit set on a control or continuation frame")
    p._fin = (b0 & 0x80) != 0
    p._masked = (b1 & 0x80) != 0
    p._opcode = op
    if p.is_server and not p._masked:
        return _fail(p, 1002, "client frame is not masked")
    if not p.is_server and p._masked:
        return _fail(p, 1002, "server frame is masked")
    if op >= OPC_CLOSE:
        if not p._fin:
            return _fail(p, 1002, "fragmented control frame")
        if len7 > MAX_CONTROL_PAYLOAD:
            return _fail(p, 1002, "control frame payload longer than 125 bytes")
    elif op == OPC_CONT:
        if p._msg_opcode == 0:
            return _fail(p, 1002, "continuation frame outside a fragmented message")
    elif p._msg_opcode != 0:
        return _fail(p, 1002, "data frame inside a fragmented message")
    p._hdr_need = 2 + (2 if len7 == 126 else 8 if len7 == 127 else 0) + (4 if p._masked else 0)
    return 0


cdef int _finish_header(FrameParser p) except -1:
    cdef int len7 = p._hdr[1] & 0x7F
    cdef int i = 2, j
    cdef uint64_t length
    cdef Py_ssize_t room
    if len7 == 126:
        length = (<uint64_t>p._hdr[2] << 8) | p._hdr[3]
        i = 4
        if length < 126:
            return _fail(p, 1002, "payload length not minimally encoded")
    elif len7 == 127:
        length = 0
        for j in range(2, 10):
            length = (length << 8) | p._hdr[j]
        i = 10
        if length >> 63:
            return _fail(p, 1002, "64-bit payload length with the high bit set")
        if length < 65536:
            return _fail(p, 1002, "payload length not minimally encoded")
    else:
        length = len7
    if p._masked:
        memcpy(p._mask, p._hdr + i, 4)
    if p._opcode < OPC_CLOSE:
        room = p.max_message_size - (p._msg_len if p._opcode == OPC_CONT else 0)
        if p.max_message_size >= 0 and length > <uint64_t>room:
            return _fail(p, 1009, "message too big")
        if p._opcode != OPC_CONT:
            p._msg_opcode = p._opcode
            p._msg_len = 0
            p._utf8 = U8_ACCEPT
            p._msg_compressed = p._rsv1
    p._frame_len = length
    p._frame_done = 0
    p._hdr_len = 0
    p._hdr_need = 2
    p._state = WS_PAYLOAD
    return 0


cdef int st_ws_header(FrameParser p) except -1:
    cdef Py_ssize_t avail, take
    while True:
        avail = p._end - p._pos
        if avail == 0:
            return 0
        take = p._hdr_need - p._hdr_len
        if take > avail:
            take = avail
        memcpy(p._hdr + p._hdr_len, p._data + p._pos, take)
        p._pos += take
        p._hdr_len += take
        if p._hdr_len < p._hdr_need:
            return 0
        if p._hdr_len == 2:
            _check_start(p)
            if p._hdr_need > 2:
                continue
        _finish_header(p)
        return 1


cdef int _control_frame(FrameParser p) except -1:
    cdef Py_ssize_t n = <Py_ssize_t>p._frame_len
    cdef int code
    cdef str reason
    cdef bytes payload
    if p._opcode == OPC_CLOSE:
        if n == 0:
            code = 1005
            reason = ""
        elif n == 1:
            return _fail(p, 1002, "close frame with a 1-byte payload")
        else:
            code = (p._ctl[0] << 8) | p._ctl[1]
            if not _valid_close_code(code):
                return _fail(p, 1002, "invalid close code")
            if _utf8_feed(U8_ACCEPT, p._ctl + 2, n - 2) != U8_ACCEPT:
                return _fail(p, 1007, "invalid UTF-8 in close reason")
            reason = PyUnicode_DecodeUTF8(<char *>p._ctl + 2, n - 2, NULL)
        p._state = WS_CLOSED
        p.on_close(code, reason)
        return 1
    payload = PyBytes_FromStringAndSize(<char *>p._ctl, n)
    if p._opcode == OPC_PING:
        p.on_ping(payload)
    else:
        p.on_pong(payload)
    return 1


cdef bytes _inflate(FrameParser p):
    """The decompressed message (RFC 7692 §7.2.2: the payload + 00 00 ff ff through a raw
    inflater), bounded by max_message_size: the output is capped, so a small bomb never
    expands beyond the limit in memory."""
    cdef bytes out
    cdef Py_ssize_t cap = p.max_message_size
    if p._inflater is None:
        p._inflater = _zlib.decompressobj(wbits=-p._inflate_wbits)
    d = p._inflater
    try:
        out = d.decompress(PyBytes_FromStringAndSize(p._msg, p._msg_len) + b"\x00\x00\xff\xff",
                           cap + 1 if cap >= 0 else 0)
    except _zlib.error:
        _fail(p, 1007, "invalid compressed data")
    if cap >= 0 and (PyBytes_GET_SIZE(out) > cap or d.unconsumed_tail):
        _fail(p, 1009, "message too big once decompressed")
    if p._inflate_reset:
        p._inflater = None
    return out


cdef int _message_complete(FrameParser p) except -1:
    cdef object data
    cdef bytes raw
    if p._msg_compressed:
        raw = _inflate(p)
        p._msg_compressed = False
        if p._msg_opcode == OPC_TEXT:
            if _utf8_feed(U8_ACCEPT, <const unsigned char *>PyBytes_AS_STRING(raw),
                          PyBytes_GET_SIZE(raw)) != U8_ACCEPT:
                return _fail(p, 1007, "invalid UTF-8 in text message")
            data = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), NULL)
        else:
            data = raw
        p._msg_opcode = 0
        p._msg_len = 0
        if p._msg_cap > MSG_KEEP_CAPACITY:
            free(p._msg)
            p._msg = NULL
            p._msg_cap = 0
        p.on_message(data)
        return 1
    if p._msg_opcode == OPC_TEXT:
        if p._utf8 != U8_ACCEPT:
            return _fail(p, 1007, "invalid UTF-8 in text message")
        data = PyUnicode_DecodeUTF8(p._msg, p._msg_len, NULL)
    else:
        data = PyBytes_FromStringAndSize(p._msg, p._msg_len)
    p._msg_opcode = 0
    p._msg_len = 0
    if p._msg_cap > MSG_KEEP_CAPACITY:          # don't sit on the memory of one big message
        free(p._msg)
        p._msg = NULL
        p._msg_cap = 0
    p.on_message(data)
    return 1


cdef int st_ws_payload(FrameParser p) except -1:
    cdef uint64_t remaining = p._frame_len - p._frame_done
    cdef Py_ssize_t avail = p._end - p._pos
    cdef Py_ssize_t n
    cdef bytes out
    cdef const unsigned char *src
    cdef unsigned char *dst
    if remaining > 0:
        if avail == 0:
            return 0
        n = <Py_ssize_t>remaining if remaining < <uint64_t>avail else avail
        src = p._data + p._pos
        if p._opcode >= OPC_CLOSE:
            dst = p._ctl + p._frame_done
        elif (p._opcode == OPC_BINARY and p._fin and not p._rsv1
              and <uint64_t>n == p._frame_len):
            # a whole unfragmented binary message in this input: straight into its bytes object
            out = PyBytes_FromStringAndSize(NULL, n)
            dst = <unsigned char *>PyBytes_AS_STRING(out)
            if p._masked:
                _unmask(dst, src, n, p._mask, 0)
            else:
                memcpy(dst, src, n)
            p._pos += n
            p._msg_opcode = 0
            p._state = WS_HEADER
            p.on_message(out)
            return 1
        else:
            p._msg_reserve(n)
            dst = <unsigned char *>p._msg + p._msg_len
        if p._masked:
            _unmask(dst, src, n, p._mask, p._frame_done)
        else:
            memcpy(dst, src, n)
        if p._opcode < OPC_CLOSE:
            if p._msg_opcode == OPC_TEXT and not p._msg_compressed:
                p._utf8 = _utf8_feed(p._utf8, dst, n)
                if p._utf8 == U8_REJECT:
                    return _fail(p, 1007, "invalid UTF-8 in text message")
            p._msg_len += n
        p._frame_done += n
        p._pos += n
        if p._frame_done < p._frame_len:
            return 0
    p._state = WS_HEADER
    if p._opcode >= OPC_CLOSE:
        return _control_frame(p)
    if p._fin:
        return _message_complete(p)
    return 1


cdef int st_ws_closed(FrameParser p) except -1:
    p._pos = p._end                 # nothing may follow a close frame: ignored
    return 0


cdef int st_ws_halt(FrameParser p) except -1:
    return 0


WS_TABLE[WS_HEADER] = st_ws_header
WS_TABLE[WS_PAYLOAD] = st_ws_payload
WS_TABLE[WS_CLOSED] = st_ws_closed
WS_TABLE[WS_ERROR] = st_ws_halt


cdef class FrameParser:
    """Incremental WebSocket frame parser. ``is_server=True`` (default) reads client frames,
    which must be masked; False reads server frames, which must not be. Complete messages,
    pings, pongs and the close frame come out through the hooks (override them in Cython);
    a protocol violation raises ``WebSocketError(code, reason)`` with the close code to send
    (1002, 1007 or 1009). After a close frame the rest of the input is ignored.
    ``max_message_size`` (bytes, None = unlimited) bounds a message across its fragments.
    ``pause()``/``resume()`` work as in engine._http.HttpParser."""

    def __cinit__(self, *args, **kwargs):
        self._state = WS_HEADER
        self._hdr_len = 0
        self._hdr_need = 2
        self._msg = NULL
        self._buf = NULL
        self.is_server = True
        self.max_message_size = DEFAULT_MAX_MESSAGE

    def __init__(self, *, bint is_server=True, max_message_size=DEFAULT_MAX_MESSAGE):
        self.is_server = is_server
        if max_message_size is None:
            self.max_message_size = -1
        elif max_message_size < 0:
            raise ValueError("max_message_size must be None or >= 0")
        else:
            self.max_message_size = max_message_size

    def __dealloc__(self):
        free(self._msg)
        free(self._buf)
        self._msg = NULL
        self._buf = NULL

    cdef int on_message(self, object data) except -1:
        return 0

    cdef int on_ping(self, bytes payload) except -1:
        return 0

    cdef int on_pong(self, bytes payload) except -1:
        return 0

    cdef int on_close(self, int code, str reason) except -1:
        return 0

    cpdef feed_data(self, data):
        cdef Py_buffer view
        if self._in_feed:
            raise RuntimeError("feed_data() called from a parser hook")
        if self._state == WS_ERROR:
            self._raise_error()
        if self._state == WS_CLOSED:
            return None
        if self._paused or self._buf_len > 0:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            try:
                carry_append(&self._buf, &self._buf_len, &self._buf_cap,
                             <const char *>view.buf, view.len, MSG_INITIAL)
            finally:
                PyBuffer_Release(&view)
            if not self._paused:
                self._drive(self._buf, self._buf_len)
            return None
        if PyBytes_CheckExact(data):
            self._drive(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
            return None
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._drive(<const char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        return None

    cdef int _drive(self, const char *data, Py_ssize_t n) except -1:
        cdef bint from_buffer = data == self._buf
        self._data = <const unsigned char *>data
        self._pos = 0
        self._end = n
        self._in_feed = True
        try:
            self._execute()
        except BaseException as exc:
            if self._state != WS_ERROR:
                self._state = WS_ERROR
                if isinstance(exc, WebSocketError):
                    self._error = exc
                else:
                    self._error = WebSocketError(
                        1011, f"a parser hook raised {type(exc).__name__}")
            raise
        finally:
            self._in_feed = False
            self._data = NULL
            carry_settle(&self._buf, &self._buf_len, &self._buf_cap, data, n, self._pos,
                         from_buffer, self._state == WS_ERROR or self._state == WS_CLOSED,
                         MSG_INITIAL)
        return 0

    cdef int _execute(self) except -1:
        while not self._paused:
            if WS_TABLE[self._state](self) == 0:
                break
        return 0

    cdef int _msg_reserve(self, Py_ssize_t n) except -1:
        return buf_reserve(&self._msg, &self._msg_cap, self._msg_len + n, MSG_INITIAL)

    cdef int _raise_error(self) except -1:
        raise WebSocketError(self._error.code, self._error.reason)

    def enable_inflate(self, int window_bits=15, bint no_context_takeover=False):
        """Accept compressed messages (RSV1, RFC 7692): inflate them with a raw window of
        ``window_bits`` (8-15); ``no_context_takeover`` resets the inflater per message."""
        if not 8 <= window_bits <= 15:
            raise ValueError("window_bits must be 8..15")
        self._rsv1_ok = True
        self._inflate_wbits = window_bits
        self._inflate_reset = no_context_takeover
        self._inflater = None

    cpdef pause(self):
        self._paused = True
        return None

    cpdef resume(self):
        if not self._paused:
            return None
        self._paused = False
        if self._in_feed or self._state == WS_ERROR:
            return None
        self._drive(self._buf, self._buf_len)
        return None

    @property
    def paused(self):
        return self._paused

    @property
    def closed(self):
        """A close frame was received."""
        return self._state == WS_CLOSED

    @property
    def buffered_bytes(self):
        """Input held while paused, plus the part of a fragmented message assembled so far."""
        return self._buf_len + self._msg_len




@cython.final
cdef class MessageParser(FrameParser):
    """FrameParser that records events for Python: ``events()`` returns and clears a list of
    ``("text", str)``, ``("binary", bytes)``, ``("ping", bytes)``, ``("pong", bytes)`` and
    ``("close", code, reason)``."""

    def __cinit__(self, *args, **kwargs):
        self._events = []

    cdef int on_message(self, object data) except -1:
        self._events.append(("text" if isinstance(data, str) else "binary", data))
        return 0

    cdef int on_ping(self, bytes payload) except -1:
        self._events.append(("ping", payload))
        return 0

    cdef int on_pong(self, bytes payload) except -1:
        self._events.append(("pong", payload))
        return 0

    cdef int on_close(self, int code, str reason) except -1:
        self._events.append(("close", code, reason))
        return 0

    def events(self):
        cdef list out = self._events
        self._events = []
        return out


# ---------------------------------------------------------------------------------------------
# Frame building
# ---------------------------------------------------------------------------------------------

def build_frame(int opcode, payload=b"", bint fin=True, mask=None, bint rsv1=False):
    """One frame (``rsv1``: the first frame of a compressed message, RFC 7692). ``payload``: bytes-like, or str (sent as UTF-8). ``mask``: None for a
    server-to-client frame (unmasked), a 4-byte key, or True for a random key (client frames).
    """
    cdef Py_buffer view
    cdef Py_ssize_t n, h
    cdef unsigned char hdr[14]
    cdef unsigned char key[4]
    cdef bint masked = False
    cdef bytes out
    cdef unsigned char *o
    cdef int j
    if not (OPC_CONT <= opcode <= OPC_BINARY or OPC_CLOSE <= opcode <= OPC_PONG):
        raise ValueError(f"invalid opcode {opcode}")
    if isinstance(payload, str):
        payload = (<str>payload).encode("utf-8")
    if mask is True:
        mask = _os.urandom(4)
    if mask is not None and mask is not False:
        if len(mask) != 4:
            raise ValueError("mask must be 4 bytes")
        for j in range(4):
            key[j] = mask[j]
        masked = True
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        n = view.len
        if opcode >= OPC_CLOSE and (n > MAX_CONTROL_PAYLOAD or not fin):
            raise ValueError("control frames carry at most 125 bytes and are never fragmented")
        hdr[0] = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
        if n < 126:
            hdr[1] = <unsigned char>n
            h = 2
        elif n < 65536:
            hdr[1] = 126
            hdr[2] = (n >> 8) & 0xFF
            hdr[3] = n & 0xFF
            h = 4
        else:
            hdr[1] = 127
            for j in range(8):
                hdr[2 + j] = (<uint64_t>n >> (56 - 8 * j)) & 0xFF
            h = 10
        if masked:
            hdr[1] |= 0x80
            memcpy(hdr + h, key, 4)
            h += 4
        out = PyBytes_FromStringAndSize(NULL, h + n)
        o = <unsigned char *>PyBytes_AS_STRING(out)
        memcpy(o, hdr, h)
        if masked:
            _unmask(o + h, <const unsigned char *>view.buf, n, key, 0)
        else:
            memcpy(o + h, view.buf, n)
    finally:
        PyBuffer_Release(&view)
    return out


def close_payload(code=1000, reason=""):
    """The payload of a close frame: 2-byte code + UTF-8 reason (b"" for code None)."""
    cdef bytes r
    if code is None:
        if reason:
            raise ValueError("a close reason needs a code")
        return b""
    if not _valid_close_code(code):
        raise ValueError(f"{code} is not a close code that may be sent")
    r = reason.encode("utf-8") if isinstance(reason, str) else bytes(reason)
    if len(r) > MAX_CONTROL_PAYLOAD - 2:
        raise ValueError("close reason longer than 123 bytes")
    return bytes(((code >> 8) & 0xFF, code & 0xFF)) + r


def build_close(code=1000, reason="", mask=None):
    """A close frame (see close_payload)."""
    return build_frame(OPC_CLOSE, close_payload(code, reason), True, mask)


# ---------------------------------------------------------------------------------------------
# Opening handshake
# ---------------------------------------------------------------------------------------------

cdef bytes WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (str or bytes)."""
    if isinstance(key, str):
        key = (<str>key).encode("ascii")
    return _base64.b64encode(_hashlib.sha1(bytes(key).strip() + WS_GUID).digest()).decode("ascii")


cdef list _field_values(headers, bytes name):
    cdef list out = []
    for n, v in headers:
        if n.lower() == name:
            out.append(v)
    return out


cdef list _comma_tokens(list values):
    cdef list out = []
    for v in values:
        for part in v.split(b","):
            part = part.strip(b" \t")
            if part:
                out.append(part)
    return out


def validate_handshake(headers, method=b"GET", http_version=b"1.1"):
    """Check an opening handshake request (RFC 6455 §4.2.1). ``headers``: (name, value) bytes
    pairs as engine._http gives them. Returns the Sec-WebSocket-Key (bytes); raises
    HandshakeError(400, ...) or, for an unsupported version, HandshakeError(426, ...) whose
    ``headers`` carry ``sec-websocket-version: 13``."""
    cdef list keys, versions
    if method != b"GET":
        raise HandshakeError(400, "the opening handshake must be a GET")
    if http_version != b"1.1":
        raise HandshakeError(400, "the opening handshake needs HTTP/1.1")
    if len(_field_values(headers, b"host")) != 1:
        raise HandshakeError(400, "the opening handshake needs one Host")
    if b"websocket" not in [t.lower() for t in _comma_tokens(_field_values(headers, b"upgrade"))]:
        raise HandshakeError(400, "missing Upgrade: websocket")
    if b"upgrade" not in [t.lower() for t in _comma_tokens(_field_values(headers, b"connection"))]:
        raise HandshakeError(400, "missing Connection: Upgrade")
    versions = _field_values(headers, b"sec-websocket-version")
    if not versions:
        raise HandshakeError(400, "missing Sec-WebSocket-Version")
    if len(versions) != 1 or versions[0].strip(b" \t") != b"13":
        raise HandshakeError(426, "unsupported Sec-WebSocket-Version",
                             [(b"sec-websocket-version", b"13")])
    keys = _field_values(headers, b"sec-websocket-key")
    if len(keys) != 1:
        raise HandshakeError(400, "the opening handshake needs one Sec-WebSocket-Key")
    key = keys[0].strip(b" \t")
    try:
        raw = _base64.b64decode(key, validate=True)
    except (_binascii.Error, ValueError):
        raise HandshakeError(400, "Sec-WebSocket-Key is not base64") from None
    if len(raw) != 16:
        raise HandshakeError(400, "Sec-WebSocket-Key does not decode to 16 bytes")
    return key


def subprotocols(headers):
    """The subprotocols a client offers (Sec-WebSocket-Protocol), in order, as str."""
    return [t.decode("latin-1") for t in
            _comma_tokens(_field_values(headers, b"sec-websocket-protocol"))]


def handshake_headers(key, subprotocol=None):
    """Header fields of the 101 answer to a validated handshake: upgrade, connection,
    sec-websocket-accept and, if chosen, sec-websocket-protocol."""
    out = [(b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
           (b"sec-websocket-accept", accept_key(key).encode("ascii"))]
    if subprotocol is not None:
        proto = subprotocol.encode("ascii") if isinstance(subprotocol, str) else bytes(subprotocol)
        out.append((b"sec-websocket-protocol", proto))
    return out


# ---------------------------------------------------------------------------------------------
# permessage-deflate negotiation (RFC 7692 §5, §7.1)
# ---------------------------------------------------------------------------------------------

cdef object _parse_pmd_offer(list params):
    """The parameters of one permessage-deflate offer as a dict, or None if the offer is
    invalid (unknown or repeated parameter, bad value): such an offer is declined."""
    cdef dict out = {}
    for param in params:
        name, eq, value = param.partition(b"=")
        name = name.strip(b" \t").lower()
        value = value.strip(b" \t")
        if len(value) >= 2 and value[:1] == b'"' and value[-1:] == b'"':
            value = value[1:-1]
        if name in out:
            return None
        if name == b"server_no_context_takeover" or name == b"client_no_context_takeover":
            if eq:
                return None
            out[name] = True
        elif name == b"server_max_window_bits" or name == b"client_max_window_bits":
            if not eq:
                if name == b"server_max_window_bits":
                    return None                 # §7.1.2.1: a value is required
                out[name] = True                # §7.1.2.2: the client accepts any value
                continue
            if not (1 <= len(value) <= 2 and value.isdigit() and value[:1] != b"0"):
                return None
            bits = int(value)
            if not 8 <= bits <= 15:
                return None
            if bits == 8 and name == b"server_max_window_bits":
                return None                     # zlib's raw deflate has no 256-byte window
            out[name] = bits
        else:
            return None
    return out


def negotiate_deflate(headers, int server_max_window_bits=12, int client_max_window_bits=12):
    """Choose the first acceptable permessage-deflate offer of Sec-WebSocket-Extensions.
    Returns None (no extension) or a dict: ``response`` (the header value to answer),
    ``server_window_bits``, ``server_no_context_takeover``, ``client_window_bits`` (what the
    inflater needs), ``client_no_context_takeover``. A client that offers
    client_max_window_bits is held to at most ``client_max_window_bits`` (§7.1.2.2), which
    bounds the inflater's window."""
    for value in _field_values(headers, b"sec-websocket-extensions"):
        for offer in value.split(b","):
            parts = offer.split(b";")
            if parts[0].strip(b" \t").lower() != b"permessage-deflate":
                continue
            params = _parse_pmd_offer(parts[1:])
            if params is None:
                continue
            swb = server_max_window_bits
            offered = params.get(b"server_max_window_bits")
            if offered is not None and offered < swb:
                swb = offered
            resp = [b"permessage-deflate"]
            snct = b"server_no_context_takeover" in params
            cnct = b"client_no_context_takeover" in params
            if snct:
                resp.append(b"server_no_context_takeover")
            if cnct:
                resp.append(b"client_no_context_takeover")
            resp.append(b"server_max_window_bits=%d" % swb)
            cwb = params.get(b"client_max_window_bits")
            if cwb is None:
                cwb = 15                        # not offered: the client may use 32 KiB
            else:
                if cwb is True or cwb > client_max_window_bits:
                    cwb = client_max_window_bits
                resp.append(b"client_max_window_bits=%d" % cwb)
            if cwb < 9:
                cwb = 9     # zlib deflaters use 512 bytes when asked for 256; a larger window
                            # inflates any smaller one
            return {"response": b"; ".join(resp), "server_window_bits": swb,
                    "server_no_context_takeover": snct, "client_window_bits": cwb,
                    "client_no_context_takeover": cnct}
    return None
