# engine._http: an IO-free, incremental HTTP/1.1 request parser and a response serializer.
#
# Beside it in pyx/http/: http_consts.pxi (tunables, parser states) and response.pxi (the
# serializer); the carry buffer is pyx/common/carry.pxi, shared with engine._ws. Declarations for
# Cython users (HttpParser and its hooks): pyx/engine/_http.pxd; Python types: engine/_http.pyi.
#
# No sockets here (h11's lesson): bytes go in through feed_data(), results come out through C
# hooks that a Cython subclass overrides (on_request / on_body / on_message_complete). The state
# machine is dispatched through STATE_TABLE, one C function per state. Input is parsed in place;
# only an unfinished line (or what arrives while paused) is carried over in a buffer, and the
# scan for LF resumes where it stopped, so no byte is searched twice.
#
# RFC facts relied on (RFC 9110 semantics, RFC 9112 HTTP/1.1 syntax):
# * request-line = method SP request-target SP HTTP-version CRLF (9112 §3); method is a token.
#   An over-long request-target gets 414 (9110 §15.5.15); a version we do not speak gets 505.
#   Only HTTP/1.0 and HTTP/1.1 are accepted; a request-line without a version (HTTP/0.9) is 400.
# * Lines end in CRLF. 9112 §2.2 lets a recipient accept a bare LF; we do not (fewer parser
#   disagreements to smuggle through). A bare CR is invalid everywhere (9112 §2.2).
#   At least one empty line before a request-line SHOULD be ignored (9112 §2.2): we skip empty
#   lines, bounded by max_request_line bytes.
# * Targets (9112 §3.2): origin-form "/path?query"; absolute-form "scheme://authority/path"
#   (a server MUST accept it, and its authority replaces Host, 9112 §3.2.2; userinfo is an
#   error, 9110 §4.2.4); authority-form "host:port" only and always for CONNECT; asterisk-form
#   "*" only for OPTIONS.
# * field-line = field-name ":" OWS field-value OWS (9112 §5). Whitespace between name and
#   colon MUST be rejected with 400 (9112 §5.1). obs-fold (a line starting with SP/HTAB) is
#   rejected with 400 (9112 §5.2), as is whitespace before the first field (9112 §2.2).
#   field-value characters: VCHAR, obs-text, SP, HTAB (9110 §5.5); CR, LF, NUL and other CTLs
#   are invalid.
# * An HTTP/1.1 request has exactly one Host (9112 §3.2: 400 otherwise).
# * Framing (9112 §6): a Transfer-Encoding whose final coding is not chunked is 400; chunked
#   twice is invalid (9112 §7); a coding we do not implement is 501 (9112 §6.1); TE together
#   with Content-Length is rejected (9112 §6.1 allows rejecting it, and it is the classic
#   request-smuggling vector); TE in an HTTP/1.0 request means faulty framing (9112 §6.1): 400.
#   Content-Length = 1*DIGIT; a list or a repeated field is rejected (9110 §8.6 allows that).
#   A request with neither has no body (9112 §6.3). A CONNECT request has no content
#   (9110 §9.3.6): one with Content-Length > 0 or Transfer-Encoding is refused.
# * chunked-body (9112 §7.1): chunk-size = 1*HEXDIG, chunk-ext = *( BWS ";" BWS name [ BWS "="
#   BWS ( token / quoted-string ) ] ), CRLF after the data, last-chunk "0", trailer fields, CRLF.
# * Persistence (9112 §9.3): HTTP/1.1 persists unless "Connection: close"; HTTP/1.0 only with
#   "keep-alive". After a request that does not persist, further input is ignored (9112 §9.6).
# * Expect: 100-continue counts in HTTP/1.1 only (9110 §10.1.1). Upgrade needs the "upgrade"
#   connection option and is ignored in HTTP/1.0 (9110 §7.8).

cimport cython
from cpython.bytes cimport (
    PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_CheckExact,
    PyBytes_Check)
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.string cimport memchr, memcpy, memmove, memcmp
from libc.stdlib cimport malloc, realloc, free
from libc.stdint cimport int64_t, uint64_t, INT64_MAX
from libc.time cimport time_t, tm, time as c_time

cdef extern from "<time.h>" nogil:
    tm *gmtime_r(const time_t *timep, tm *result)

include "http_consts.pxi"
include "common/carry.pxi"


class HttpParserError(Exception):
    """A request the parser rejects: answer with ``status_code`` and close the connection."""

    def __init__(self, status_code, reason):
        super().__init__(status_code, reason)
        self.status_code = status_code
        self.reason = reason

    def __str__(self):
        return f"{self.status_code} {self.reason}"


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

cdef unsigned char CHAR_CLASS[256]
cdef unsigned char LOWER[256]


cdef void _init_char_tables() noexcept:
    cdef int c
    cdef unsigned char f
    cdef const char *tchar_extra = b"!#$%&'*+-.^_`|~"
    cdef const char *host_extra = b"-._~%!$&'()*+,;="
    for c in range(256):
        f = 0
        if 0x21 <= c <= 0x7E:
            f |= CC_VCHAR
        if (0x21 <= c <= 0x7E) or c >= 0x80 or c == 0x20 or c == 0x09:
            f |= CC_FIELD
        if (0x30 <= c <= 0x39) or (0x41 <= c <= 0x5A) or (0x61 <= c <= 0x7A):
            f |= CC_TCHAR | CC_HOST | CC_SCHEME
        elif c != 0 and memchr(tchar_extra, c, 15) != NULL:
            f |= CC_TCHAR
        if c != 0 and memchr(host_extra, c, 16) != NULL:
            f |= CC_HOST
        if c == 0x2B or c == 0x2D or c == 0x2E:
            f |= CC_SCHEME
        if 0x30 <= c <= 0x39:
            f |= CC_DIGIT | CC_HEX
        if (0x41 <= c <= 0x46) or (0x61 <= c <= 0x66):
            f |= CC_HEX
        if c == 0x09 or c == 0x20 or c == 0x21 or (0x23 <= c <= 0x5B) or (0x5D <= c <= 0x7E) \
                or c >= 0x80:
            f |= CC_QDTEXT
        CHAR_CLASS[c] = f
        LOWER[c] = c + 32 if 0x41 <= c <= 0x5A else c


_init_char_tables()

# Interned objects: common header names (lowercase) and methods come out of the parser as these
# very objects, so no allocation for them, and special fields are recognised by identity.
cdef bytes N_HOST = b"host"
cdef bytes N_CONTENT_LENGTH = b"content-length"
cdef bytes N_TRANSFER_ENCODING = b"transfer-encoding"
cdef bytes N_CONNECTION = b"connection"
cdef bytes N_UPGRADE = b"upgrade"
cdef bytes N_EXPECT = b"expect"

cdef tuple _COMMON_NAMES = (
    N_HOST, N_CONTENT_LENGTH, N_TRANSFER_ENCODING, N_CONNECTION, N_UPGRADE, N_EXPECT,
    b"user-agent", b"accept", b"accept-encoding", b"accept-language", b"accept-charset",
    b"content-type", b"content-encoding", b"cookie", b"origin", b"referer", b"cache-control",
    b"pragma", b"authorization", b"if-none-match", b"if-modified-since", b"if-match", b"range",
    b"te", b"trailer", b"date", b"via", b"forwarded", b"x-forwarded-for", b"x-forwarded-proto",
    b"x-forwarded-host", b"x-real-ip", b"x-request-id", b"dnt", b"upgrade-insecure-requests",
    b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-protocol",
    b"sec-websocket-extensions", b"sec-fetch-site", b"sec-fetch-mode", b"sec-fetch-dest",
    b"sec-fetch-user", b"sec-ch-ua", b"sec-ch-ua-mobile", b"sec-ch-ua-platform", b"priority",
    b"keep-alive", b"content-md5", b"x-requested-with", b"accept-ranges",
)
cdef tuple _NAMES_BY_LEN             # _COMMON_NAMES sorted by length
# _NAMES_BY_LEN[_NAME_START[n]:_NAME_START[n + 1]] are the names of length n
cdef Py_ssize_t _NAME_START[NAME_STACK + 2]

cdef bytes M_GET = b"GET"
cdef bytes M_HEAD = b"HEAD"
cdef bytes M_POST = b"POST"
cdef bytes M_PUT = b"PUT"
cdef bytes M_DELETE = b"DELETE"
cdef bytes M_CONNECT = b"CONNECT"
cdef bytes M_OPTIONS = b"OPTIONS"
cdef bytes M_TRACE = b"TRACE"
cdef bytes M_PATCH = b"PATCH"
cdef tuple _METHODS = (M_GET, M_POST, M_PUT, M_HEAD, M_DELETE, M_OPTIONS, M_PATCH, M_CONNECT,
                       M_TRACE)

cdef bytes V_11 = b"1.1"
cdef bytes V_10 = b"1.0"
cdef bytes B_EMPTY = b""
cdef bytes B_SLASH = b"/"
cdef bytes B_STAR = b"*"


cdef void _init_name_index():
    global _NAMES_BY_LEN
    cdef Py_ssize_t i, n
    _NAMES_BY_LEN = tuple(sorted(_COMMON_NAMES, key=len))
    for n in range(NAME_STACK + 2):
        _NAME_START[n] = 0
    i = 0
    for n in range(NAME_STACK + 2):
        while i < len(_NAMES_BY_LEN) and len(_NAMES_BY_LEN[i]) < n:
            i += 1
        _NAME_START[n] = i


_init_name_index()


cdef inline bytes _field_name(const unsigned char *s, Py_ssize_t n):
    """The lowercased name as bytes; the interned object for common names."""
    cdef unsigned char low[NAME_STACK]
    cdef Py_ssize_t i, k
    cdef bytes out
    cdef PyObject *cand
    if n <= NAME_STACK:
        for i in range(n):
            low[i] = LOWER[s[i]]
        for k in range(_NAME_START[n], _NAME_START[n + 1]):
            cand = PyTuple_GET_ITEM(_NAMES_BY_LEN, k)
            if memcmp(PyBytes_AS_STRING(<object>cand), low, n) == 0:
                return <bytes>cand
        return PyBytes_FromStringAndSize(<char *>low, n)
    out = PyBytes_FromStringAndSize(NULL, n)
    cdef unsigned char *o = <unsigned char *>PyBytes_AS_STRING(out)
    for i in range(n):
        o[i] = LOWER[s[i]]
    return out


cdef inline bytes _method(const unsigned char *s, Py_ssize_t n):
    cdef Py_ssize_t k
    cdef PyObject *cand
    for k in range(PyTuple_GET_SIZE(_METHODS)):
        cand = PyTuple_GET_ITEM(_METHODS, k)
        if (PyBytes_GET_SIZE(<object>cand) == n
                and memcmp(PyBytes_AS_STRING(<object>cand), s, n) == 0):
            return <bytes>cand
    return PyBytes_FromStringAndSize(<const char *>s, n)


cdef inline bytes _bytes(const unsigned char *s, Py_ssize_t n):
    if n == 0:
        return B_EMPTY
    return PyBytes_FromStringAndSize(<const char *>s, n)


cdef inline bint _is_ows(unsigned char c) noexcept:
    return c == 0x20 or c == 0x09


cdef inline bint _list_element(const unsigned char *s, Py_ssize_t n, Py_ssize_t *i,
                               Py_ssize_t *e0, Py_ssize_t *e1) noexcept:
    """The next element of a #list field value (RFC 9110 5.6.1: comma-separated, OWS around
    each) from s[i:n]: sets e0..e1 to it, trimmed (empty elements included), moves i past its
    comma; False once the value is used up."""
    cdef Py_ssize_t k = i[0], a, b
    if k > n:
        return False
    a = k
    while k < n and s[k] != 0x2C:
        k += 1
    b = k
    i[0] = k + 1                                            # past the comma (or the end)
    while a < b and _is_ows(s[a]):
        a += 1
    while b > a and _is_ows(s[b - 1]):
        b -= 1
    e0[0] = a
    e1[0] = b
    return True


cdef inline bint _lower_equals(const unsigned char *s, Py_ssize_t n, const char *lit,
                               Py_ssize_t litlen) noexcept:
    """s (any case) equals the lowercase literal lit."""
    cdef Py_ssize_t i
    if n != litlen:
        return False
    for i in range(n):
        if LOWER[s[i]] != <unsigned char>lit[i]:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------------

@cython.final
cdef class Limits:
    """Limits on what one request may make the parser hold. Exceeding one is an HttpParserError:
    request-line 414 (target) / 400 (method, version), header count/bytes 431, body 413,
    chunk extensions 400, trailer bytes 431. ``max_body=None``: no body limit."""

    def __init__(self, *, Py_ssize_t max_request_line=DEFAULT_MAX_REQUEST_LINE,
                 Py_ssize_t max_header_count=DEFAULT_MAX_HEADER_COUNT,
                 Py_ssize_t max_header_bytes=DEFAULT_MAX_HEADER_BYTES,
                 max_body=DEFAULT_MAX_BODY,
                 Py_ssize_t max_chunk_extension_bytes=DEFAULT_MAX_CHUNK_EXT_BYTES,
                 Py_ssize_t max_trailer_bytes=DEFAULT_MAX_TRAILER_BYTES):
        if max_request_line < 16:
            raise ValueError("max_request_line must be at least 16")
        if max_header_count < 1:
            raise ValueError("max_header_count must be at least 1")
        if max_header_bytes < 2:
            raise ValueError("max_header_bytes must be at least 2")
        if max_chunk_extension_bytes < 0 or max_trailer_bytes < 2:
            raise ValueError("max_chunk_extension_bytes must be >= 0 and max_trailer_bytes >= 2")
        if max_body is None:
            self.max_body = -1
        else:
            if max_body < 0 or max_body > INT64_MAX:
                raise ValueError("max_body must be None or an int in [0, 2**63)")
            self.max_body = max_body
        self.max_request_line = max_request_line
        self.max_header_count = max_header_count
        self.max_header_bytes = max_header_bytes
        self.max_chunk_extension_bytes = max_chunk_extension_bytes
        self.max_trailer_bytes = max_trailer_bytes

    def __repr__(self):
        return (f"Limits(max_request_line={self.max_request_line}, "
                f"max_header_count={self.max_header_count}, "
                f"max_header_bytes={self.max_header_bytes}, "
                f"max_body={None if self.max_body < 0 else self.max_body}, "
                f"max_chunk_extension_bytes={self.max_chunk_extension_bytes}, "
                f"max_trailer_bytes={self.max_trailer_bytes})")


cdef Limits DEFAULT_LIMITS = Limits()


# ---------------------------------------------------------------------------------------------
# The state machine. Each state function parses from p._data[p._pos:p._end], advances p._pos
# past what it consumed and returns 1 to go on, 0 when it needs more input (or must halt).
# Every hook is called after the parser has moved to the state that follows the event, so a
# pause() from inside a hook resumes at the right place.
# ---------------------------------------------------------------------------------------------

ctypedef int (*state_fn)(HttpParser) except -1

cdef state_fn STATE_TABLE[ST_COUNT]


cdef int _fail(HttpParser p, int status, str reason) except -1:
    p._state = ST_ERROR
    p._error = HttpParserError(status, reason)
    raise p._error


cdef inline Py_ssize_t _find_lf(HttpParser p) noexcept:
    """Index of the next LF from p._pos, or -1 (remembering how far was searched)."""
    cdef Py_ssize_t start = p._pos + p._scan
    cdef const unsigned char *hit
    if start >= p._end:
        return -1
    hit = <const unsigned char *>memchr(p._data + start, 0x0A, p._end - start)
    if hit == NULL:
        p._scan = p._end - p._pos
        return -1
    p._scan = 0
    return hit - p._data


cdef int _request_line_too_long(HttpParser p, const unsigned char *s, Py_ssize_t n) except -1:
    """A request-line longer than max_request_line: 414 if the target is what is long, 400 if
    the method or the version is junk. Only the first max_request_line + 2 bytes are looked at,
    so the answer is the same however the line was split across reads."""
    cdef Py_ssize_t i = 0, j
    if n > p._max_request_line + 2:
        n = p._max_request_line + 2
    while i < n and CHAR_CLASS[s[i]] & CC_TCHAR:
        i += 1
    if i == 0 or i >= n or s[i] != 0x20:
        return _fail(p, 400, "invalid request method")
    j = i + 1
    while j < n and s[j] != 0x20:
        j += 1
    if j < n and n - j - 1 > VERSION_LEN + 1:
        return _fail(p, 400, "invalid HTTP version")
    return _fail(p, 414, "request-target too long")


cdef bint _valid_host(const unsigned char *s, Py_ssize_t n, bint require_port) noexcept:
    """uri-host [ ":" port ] (RFC 3986 reg-name, IPv4 or IP-literal; no userinfo)."""
    cdef Py_ssize_t i = 0, port_start
    if n == 0:
        return not require_port
    if s[0] == 0x5B:                                        # "[" IP-literal "]"
        i = 1
        while i < n and s[i] != 0x5D:
            if not (CHAR_CLASS[s[i]] & CC_HEX or s[i] == 0x3A or s[i] == 0x2E):
                return False
            i += 1
        if i >= n or i == 1:
            return False
        i += 1
    else:
        while i < n and CHAR_CLASS[s[i]] & CC_HOST:
            i += 1
        if i == 0 and require_port:
            return False
    if i == n:
        return not require_port
    if s[i] != 0x3A:
        return False
    i += 1
    port_start = i
    while i < n and CHAR_CLASS[s[i]] & CC_DIGIT:
        i += 1
    if i != n:
        return False
    return not require_port or i > port_start


cdef int _split_path_query(HttpParser p, const unsigned char *s, Py_ssize_t n,
                           object whole) except -1:
    cdef const unsigned char *q = <const unsigned char *>memchr(s, 0x3F, n)
    if q == NULL:
        p.path = whole if whole is not None else _bytes(s, n)
        p.query = B_EMPTY
    else:
        p.path = _bytes(s, q - s)
        p.query = _bytes(q + 1, n - (q - s) - 1)
    return 0


cdef int _parse_request_line(HttpParser p, const unsigned char *s, Py_ssize_t n) except -1:
    cdef Py_ssize_t i = 0, t0, sp2, a0, a1
    cdef const unsigned char *v
    cdef const unsigned char *t
    cdef Py_ssize_t tl
    while i < n and CHAR_CLASS[s[i]] & CC_TCHAR:
        i += 1
    if i == 0 or i >= n or s[i] != 0x20:
        return _fail(p, 400, "invalid request method")
    t0 = i + 1
    i = t0
    while i < n and CHAR_CLASS[s[i]] & CC_VCHAR:
        i += 1
    if i == t0 or (i < n and s[i] != 0x20):
        return _fail(p, 400, "invalid request target")
    if i >= n:
        return _fail(p, 400, "missing HTTP version (HTTP/0.9 is not supported)")
    sp2 = i
    v = s + sp2 + 1
    if (n - sp2 - 1 != VERSION_LEN or memcmp(v, b"HTTP/", 5) != 0
            or not CHAR_CLASS[v[5]] & CC_DIGIT or v[6] != 0x2E or not CHAR_CLASS[v[7]] & CC_DIGIT):
        return _fail(p, 400, "invalid HTTP version")
    if v[5] == 0x31 and v[7] == 0x31:
        p.http_version = V_11
        p._v11 = True
    elif v[5] == 0x31 and v[7] == 0x30:
        p.http_version = V_10
        p._v11 = False
    else:
        return _fail(p, 505, "HTTP version not supported")

    p.method = _method(s, t0 - 1)
    t = s + t0
    tl = sp2 - t0
    p.target = _bytes(t, tl)
    p._is_connect = p.method is M_CONNECT
    p._target_authority = False
    if p._is_connect:
        if not _valid_host(t, tl, True):
            return _fail(p, 400, "CONNECT needs an authority-form target (host:port)")
        p.path = B_EMPTY
        p.query = B_EMPTY
        p.authority = p.target
        p._target_authority = True
    elif t[0] == 0x2F:                                      # origin-form
        _split_path_query(p, t, tl, p.target)
        p.authority = None
    elif tl == 1 and t[0] == 0x2A:                          # asterisk-form
        if p.method is not M_OPTIONS:
            return _fail(p, 400, "asterisk-form target is only allowed for OPTIONS")
        p.path = B_STAR
        p.query = B_EMPTY
        p.authority = None
    else:                                                   # absolute-form
        i = 0
        if not ((0x41 <= t[0] <= 0x5A) or (0x61 <= t[0] <= 0x7A)):
            return _fail(p, 400, "invalid request target")
        while i < tl and CHAR_CLASS[t[i]] & CC_SCHEME:
            i += 1
        if i + 3 > tl or memcmp(t + i, b"://", 3) != 0:
            return _fail(p, 400, "invalid request target")
        a0 = i + 3
        a1 = a0
        while a1 < tl and t[a1] != 0x2F and t[a1] != 0x3F:
            a1 += 1
        if a1 == a0 or not _valid_host(t + a0, a1 - a0, False):
            return _fail(p, 400, "invalid authority in absolute-form target")
        p.authority = _bytes(t + a0, a1 - a0)
        p._target_authority = True
        if a1 == tl or t[a1] == 0x3F:
            p.path = B_SLASH
            p.query = _bytes(t + a1 + 1, tl - a1 - 1) if a1 < tl else B_EMPTY
        else:
            _split_path_query(p, t + a1, tl - a1, None)
    return 0


cdef int _field_te(HttpParser p, const unsigned char *s, Py_ssize_t n) except -1:
    """Transfer-Encoding: #transfer-coding, accumulated over all TE field lines."""
    cdef Py_ssize_t i = 0, e0, e1
    p._has_te = True
    while _list_element(s, n, &i, &e0, &e1):
        if e0 == e1:
            continue                                        # empty list element
        if not CHAR_CLASS[s[e0]] & CC_TCHAR:
            return _fail(p, 400, "invalid Transfer-Encoding")
        if _lower_equals(s + e0, e1 - e0, b"chunked", 7):
            p._te_chunked += 1
            p._te_last_chunked = True
        else:
            p._te_unknown = True
            p._te_last_chunked = False
    return 0


cdef int _field_connection(HttpParser p, const unsigned char *s, Py_ssize_t n) except -1:
    cdef Py_ssize_t i = 0, e0, e1
    while _list_element(s, n, &i, &e0, &e1):
        if _lower_equals(s + e0, e1 - e0, b"close", 5):
            p._conn_close = True
        elif _lower_equals(s + e0, e1 - e0, b"keep-alive", 10):
            p._conn_keep_alive = True
        elif _lower_equals(s + e0, e1 - e0, b"upgrade", 7):
            p._conn_upgrade = True
    return 0


cdef int _field_expect(HttpParser p, const unsigned char *s, Py_ssize_t n) except -1:
    cdef Py_ssize_t i = 0, e0, e1
    while _list_element(s, n, &i, &e0, &e1):
        if _lower_equals(s + e0, e1 - e0, b"100-continue", 12):
            p._expect_100 = True
    return 0


cdef int _parse_field_line(HttpParser p, const unsigned char *s, Py_ssize_t n,
                           bint trailer) except -1:
    """field-name ":" OWS field-value OWS  (s excludes the CRLF; n > 0)."""
    cdef Py_ssize_t i = 0, v0, v1, j, d
    cdef uint64_t cl
    cdef bytes name
    cdef bytes value
    if _is_ows(s[0]):
        return _fail(p, 400, "obsolete line folding (or whitespace before the first field)")
    while i < n and CHAR_CLASS[s[i]] & CC_TCHAR:
        i += 1
    if i >= n or s[i] != 0x3A:
        if 0 < i < n and _is_ows(s[i]):
            return _fail(p, 400, "whitespace between field name and colon")
        return _fail(p, 400, "invalid field name")
    if i == 0:
        return _fail(p, 400, "empty field name")
    v0 = i + 1
    while v0 < n and _is_ows(s[v0]):
        v0 += 1
    v1 = n
    while v1 > v0 and _is_ows(s[v1 - 1]):
        v1 -= 1
    for j in range(v0, v1):
        if not CHAR_CLASS[s[j]] & CC_FIELD:
            return _fail(p, 400, "invalid character in field value")
    p._field_count += 1
    if p._field_count > p._max_header_count:
        return _fail(p, 431, "too many trailer fields" if trailer else "too many header fields")
    name = _field_name(s, i)
    value = _bytes(s + v0, v1 - v0)
    if trailer:
        if name is N_CONTENT_LENGTH or name is N_TRANSFER_ENCODING:
            return _fail(p, 400, "framing field in the trailer section")
        p._trailers.append((name, value))
        return 0
    p.headers.append((name, value))
    if name is N_CONTENT_LENGTH:
        if p._has_cl:
            return _fail(p, 400, "duplicate Content-Length")
        p._has_cl = True
        d = v1 - v0
        if d == 0 or d > MAX_CONTENT_LENGTH_DIGITS:
            return _fail(p, 400, "invalid Content-Length")
        cl = 0
        for j in range(v0, v1):
            if not CHAR_CLASS[s[j]] & CC_DIGIT:
                return _fail(p, 400, "invalid Content-Length")
            cl = cl * 10 + (s[j] - 0x30)
        if cl > <uint64_t>INT64_MAX:
            return _fail(p, 400, "invalid Content-Length")
        p.content_length = <int64_t>cl
    elif name is N_TRANSFER_ENCODING:
        _field_te(p, s + v0, v1 - v0)
    elif name is N_HOST:
        p._host_count += 1
        if p._host_count > 1:
            return _fail(p, 400, "more than one Host")
        if not _valid_host(s + v0, v1 - v0, False):
            return _fail(p, 400, "invalid Host")
        if not p._target_authority:
            p.authority = value
    elif name is N_CONNECTION:
        _field_connection(p, s + v0, v1 - v0)
    elif name is N_UPGRADE:
        if p._upgrade_value is None:
            p._upgrade_value = value
        else:
            p._upgrade_value = p._upgrade_value + b", " + value
    elif name is N_EXPECT:
        _field_expect(p, s + v0, v1 - v0)
    return 0


cdef int _headers_complete(HttpParser p) except -1:
    """Framing and connection decisions at the end of the header section, then on_request()."""
    if p._v11 and p._host_count == 0:
        return _fail(p, 400, "missing Host")
    if p._is_connect and (p._has_te or (p._has_cl and p.content_length > 0)):
        # a CONNECT request has no content (RFC 9110 §9.3.6); framing it is ambiguous
        return _fail(p, 400, "CONNECT request with content")
    if p._has_te:
        if not p._v11:
            return _fail(p, 400, "Transfer-Encoding in an HTTP/1.0 request")
        if p._has_cl:
            return _fail(p, 400, "both Content-Length and Transfer-Encoding")
        if p._te_chunked > 1:
            return _fail(p, 400, "chunked applied more than once")
        if not p._te_last_chunked:
            return _fail(p, 400, "Transfer-Encoding does not end with chunked")
        if p._te_unknown:
            return _fail(p, 501, "unsupported transfer coding")
        p.chunked = True
    elif p._has_cl and p._max_body >= 0 and p.content_length > p._max_body:
        return _fail(p, 413, "Content-Length exceeds the body limit")
    if p._is_connect:
        p.keep_alive = False            # a refused tunnel cannot be followed by more requests
    elif p._v11:
        p.keep_alive = not p._conn_close
    else:
        p.keep_alive = p._conn_keep_alive and not p._conn_close
    p.expect_continue = p._v11 and p._expect_100
    if p._v11 and p._conn_upgrade and p._upgrade_value is not None and not p._is_connect:
        p.upgrade = p._upgrade_value
    else:
        p.upgrade = None
    if p._is_connect:
        p._state = ST_MESSAGE_COMPLETE  # no body: the tunnel starts after the header section
    elif p.chunked:
        p._state = ST_CHUNK_SIZE
    elif p._has_cl and p.content_length > 0:
        p._remaining = p.content_length
        p._state = ST_BODY_LENGTH
    else:
        p._state = ST_MESSAGE_COMPLETE
    p.on_request()
    return 1


cdef int st_request_line(HttpParser p) except -1:
    # The checks run in the same order whether or not the LF has arrived (first byte, length,
    # then the rest), so a request is refused for the same reason however it was split.
    cdef Py_ssize_t lf = _find_lf(p)
    cdef Py_ssize_t n = (lf if lf >= 0 else p._end) - p._pos      # bytes before the LF
    cdef const unsigned char *s = p._data + p._pos
    if n > 0 and not (CHAR_CLASS[s[0]] & CC_TCHAR or s[0] == 0x0D):
        return _fail(p, 400, "invalid request method")
    if n > p._max_request_line + 1:                   # content + CR
        return _request_line_too_long(p, s, n)
    if lf < 0:
        return 0
    if n == 0 or s[n - 1] != 0x0D:
        return _fail(p, 400, "line not terminated by CRLF")
    n -= 1
    if n == 0:                                        # an empty line before the request-line
        p._skipped += 2
        if p._skipped > p._max_request_line:
            return _fail(p, 400, "too many empty lines before the request-line")
        p._pos = lf + 1
        return 1
    p.headers = []
    p.content_length = -1
    p.chunked = False
    _parse_request_line(p, s, n)
    p._pos = lf + 1
    p._state = ST_HEADER_LINE
    return 1


cdef inline int _section_line(HttpParser p, bint trailer) except -1:
    """One line of the header section (or, `trailer`, the trailer section): 1 after a field
    line, SECTION_END for the empty line that ends the section, 0 if the line is incomplete.
    The section's size limit counts every line, and an unfinished one as far as it has come."""
    cdef Py_ssize_t lf = _find_lf(p)
    cdef Py_ssize_t n
    cdef Py_ssize_t limit = p._max_trailer_bytes if trailer else p._max_header_bytes
    cdef const unsigned char *s = p._data + p._pos
    if lf < 0:
        if p._section_bytes + (p._end - p._pos) > limit:
            return _section_too_large(p, trailer)
        return 0
    n = lf - p._pos + 1                               # the line with its LF
    p._section_bytes += n
    if p._section_bytes > limit:
        return _section_too_large(p, trailer)
    if n == 1 or s[n - 2] != 0x0D:
        return _fail(p, 400, "line not terminated by CRLF")
    p._pos = lf + 1
    if n == 2:
        return SECTION_END
    _parse_field_line(p, s, n - 2, trailer)
    return 1


cdef int _section_too_large(HttpParser p, bint trailer) except -1:
    return _fail(p, 431, "trailer section too large" if trailer else "header section too large")


cdef int st_header_line(HttpParser p) except -1:
    cdef int r = _section_line(p, False)
    if r == SECTION_END:
        return _headers_complete(p)
    return r


cdef inline int _emit_body(HttpParser p, Py_ssize_t n) except -1:
    """Hand p._data[p._pos:p._pos+n] to on_body: the caller's bytes object itself when the chunk
    is the whole of it, else one copy (ASGI wants bytes; a view into a reused buffer would not
    survive the next read)."""
    cdef object chunk
    if p._input is not None and p._pos == 0 and n == p._end:
        chunk = p._input
    else:
        chunk = PyBytes_FromStringAndSize(<const char *>p._data + p._pos, n)
    p._pos += n
    p.on_body(chunk)
    return 1


cdef inline int _body_bytes(HttpParser p, int state_after) except -1:
    """Up to p._remaining body bytes of what is there, to on_body; `state_after` once the last
    has come (the end of a Content-Length body, or of a chunk's data)."""
    cdef Py_ssize_t avail = p._end - p._pos
    cdef Py_ssize_t n
    if avail == 0:
        return 0
    n = <Py_ssize_t>p._remaining if p._remaining < avail else avail
    p._remaining -= n
    if p._remaining == 0:
        p._state = state_after
    return _emit_body(p, n)


cdef int st_body_length(HttpParser p) except -1:
    return _body_bytes(p, ST_MESSAGE_COMPLETE)


cdef int _check_chunk_ext(HttpParser p, const unsigned char *s, Py_ssize_t n) except -1:
    """*( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] )"""
    cdef Py_ssize_t i = 0, k
    while i < n:
        while i < n and _is_ows(s[i]):
            i += 1
        if i >= n or s[i] != 0x3B:
            return _fail(p, 400, "invalid chunk size line")
        i += 1
        while i < n and _is_ows(s[i]):
            i += 1
        k = i
        while i < n and CHAR_CLASS[s[i]] & CC_TCHAR:
            i += 1
        if i == k:
            return _fail(p, 400, "invalid chunk extension")
        k = i
        while k < n and _is_ows(s[k]):
            k += 1
        if k < n and s[k] == 0x3D:
            i = k + 1
            while i < n and _is_ows(s[i]):
                i += 1
            if i < n and s[i] == 0x22:
                i += 1
                while True:
                    if i >= n:
                        return _fail(p, 400, "invalid chunk extension")
                    if s[i] == 0x22:
                        i += 1
                        break
                    if s[i] == 0x5C:
                        i += 1
                        if i >= n or not (CHAR_CLASS[s[i]] & CC_FIELD):
                            return _fail(p, 400, "invalid chunk extension")
                    elif not CHAR_CLASS[s[i]] & CC_QDTEXT:
                        return _fail(p, 400, "invalid chunk extension")
                    i += 1
            else:
                k = i
                while i < n and CHAR_CLASS[s[i]] & CC_TCHAR:
                    i += 1
                if i == k:
                    return _fail(p, 400, "invalid chunk extension")
    return 0


cdef int64_t _chunk_size(HttpParser p, const unsigned char *s, Py_ssize_t n,
                         Py_ssize_t *digits) except -2:
    """The hex chunk-size at the start of s[:n] (sets *digits); refuses an absent or too
    large one."""
    cdef Py_ssize_t i = 0
    cdef uint64_t size = 0
    cdef unsigned char c
    while i < n and CHAR_CLASS[s[i]] & CC_HEX:
        c = s[i]
        size = size * 16 + (c - 0x30 if c <= 0x39 else (c | 0x20) - 0x61 + 10)
        i += 1
        if i > MAX_CHUNK_SIZE_DIGITS:
            return _fail(p, 400, "chunk size too large")
    if i == 0:
        return _fail(p, 400, "invalid chunk size line")
    if size > <uint64_t>INT64_MAX:
        return _fail(p, 400, "chunk size too large")
    digits[0] = i
    return <int64_t>size


cdef int st_chunk_size(HttpParser p) except -1:
    # As for the request-line: the same checks in the same order with or without the LF.
    cdef Py_ssize_t lf = _find_lf(p)
    cdef Py_ssize_t n = (lf if lf >= 0 else p._end) - p._pos      # bytes before the LF
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t line_max = MAX_CHUNK_SIZE_DIGITS + p._max_chunk_ext + 1
    cdef const unsigned char *s = p._data + p._pos
    cdef int64_t size
    if n > line_max:
        _chunk_size(p, s, line_max, &i)
        return _fail(p, 400, "chunk extensions too long")
    if lf < 0:
        return 0
    if n == 0 or s[n - 1] != 0x0D:
        return _fail(p, 400, "line not terminated by CRLF")
    n -= 1
    size = _chunk_size(p, s, n, &i)
    if n - i > p._max_chunk_ext:
        return _fail(p, 400, "chunk extensions too long")
    _check_chunk_ext(p, s + i, n - i)
    p._body_total += <int64_t>size
    if p._max_body >= 0 and p._body_total > p._max_body:
        return _fail(p, 413, "chunked body exceeds the body limit")
    p._pos = lf + 1
    if size == 0:
        p._trailers = []
        p._section_bytes = 0
        p._field_count = 0
        p._state = ST_TRAILER_LINE
    else:
        p._remaining = <int64_t>size
        p._state = ST_CHUNK_DATA
    return 1


cdef int st_chunk_data(HttpParser p) except -1:
    return _body_bytes(p, ST_CHUNK_DATA_CR)


cdef inline int _chunk_data_end(HttpParser p, unsigned char expected, int state_after) except -1:
    """One byte of the CRLF after a chunk's data."""
    if p._pos >= p._end:
        return 0
    if p._data[p._pos] != expected:
        return _fail(p, 400, "chunk data not followed by CRLF")
    p._pos += 1
    p._state = state_after
    return 1


cdef int st_chunk_data_cr(HttpParser p) except -1:
    return _chunk_data_end(p, 0x0D, ST_CHUNK_DATA_LF)


cdef int st_chunk_data_lf(HttpParser p) except -1:
    return _chunk_data_end(p, 0x0A, ST_CHUNK_SIZE)


cdef int st_trailer_line(HttpParser p) except -1:
    cdef int r = _section_line(p, True)
    if r == SECTION_END:
        p._state = ST_MESSAGE_COMPLETE
        return 1
    return r


cdef int st_message_complete(HttpParser p) except -1:
    cdef list trailers = p._trailers if p._trailers is not None else []
    p._trailers = None
    if p._is_connect or p.upgrade is not None:
        p._state = ST_UPGRADE_PENDING
    elif not p.keep_alive:
        p._state = ST_CLOSED
    else:
        p._state = ST_REQUEST_LINE
        p._reset_message()
    p.on_message_complete(trailers)
    return 1


cdef int st_halt(HttpParser p) except -1:
    return 0


cdef int st_closed(HttpParser p) except -1:
    p._pos = p._end                 # the connection is closing: whatever follows is ignored
    return 0


STATE_TABLE[ST_REQUEST_LINE] = st_request_line
STATE_TABLE[ST_HEADER_LINE] = st_header_line
STATE_TABLE[ST_BODY_LENGTH] = st_body_length
STATE_TABLE[ST_CHUNK_SIZE] = st_chunk_size
STATE_TABLE[ST_CHUNK_DATA] = st_chunk_data
STATE_TABLE[ST_CHUNK_DATA_CR] = st_chunk_data_cr
STATE_TABLE[ST_CHUNK_DATA_LF] = st_chunk_data_lf
STATE_TABLE[ST_TRAILER_LINE] = st_trailer_line
STATE_TABLE[ST_MESSAGE_COMPLETE] = st_message_complete
STATE_TABLE[ST_UPGRADE_PENDING] = st_halt
STATE_TABLE[ST_UPGRADED] = st_halt
STATE_TABLE[ST_CLOSED] = st_closed
STATE_TABLE[ST_ERROR] = st_halt

cdef tuple _STATE_NAMES = (
    "request-line", "headers", "body", "chunk-size", "chunk-data", "chunk-data-cr",
    "chunk-data-lf", "trailers", "message-complete", "upgrade-pending", "upgraded", "closed",
    "error")


# ---------------------------------------------------------------------------------------------
# The parser object
# ---------------------------------------------------------------------------------------------

cdef class HttpParser:
    """Incremental HTTP/1.1 request parser. Subclass it in Cython and override the hooks:

    * ``on_request()`` at the end of each header section; the request's fields are attributes
      (``method``, ``target``, ``path``, ``query``, ``http_version``, ``headers``,
      ``keep_alive``, ``expect_continue``, ``upgrade``, ``content_length``, ``chunked``,
      ``authority``);
    * ``on_body(chunk)`` for each piece of body (bytes; chunked framing removed);
    * ``on_message_complete(trailers)`` at the end of each request.

    A rejected request raises ``HttpParserError(status_code, reason)``: answer it and close.

    Pipelining: requests are parsed one after another from the buffered input. ``pause()``
    (from a hook or between feeds) stops the events; what is unread stays buffered and
    ``resume()`` continues. While paused the consumer must stop reading the socket: the parser
    then holds at most one read's worth of data besides an unfinished line (bounded by the
    limits). After an Upgrade request (or CONNECT) the parser halts in ``upgrade_pending``:
    ``take_remaining()`` returns the bytes that follow and ends HTTP parsing, or
    ``decline_upgrade()`` goes on with HTTP/1.1.
    """

    def __cinit__(self, *args, **kwargs):
        self._buf = NULL
        self._buf_len = 0
        self._buf_cap = 0
        self._data = NULL
        self._state = ST_REQUEST_LINE
        self._set_limits(DEFAULT_LIMITS)
        self.headers = []
        self.content_length = -1
        self._reset_message()

    def __init__(self, Limits limits=None):
        if limits is not None:
            self._set_limits(limits)

    def __dealloc__(self):
        if self._buf != NULL:
            free(self._buf)
            self._buf = NULL

    cdef int _set_limits(self, Limits limits) except -1:
        self.limits = limits
        self._max_request_line = limits.max_request_line
        self._max_header_count = limits.max_header_count
        self._max_header_bytes = limits.max_header_bytes
        self._max_chunk_ext = limits.max_chunk_extension_bytes
        self._max_trailer_bytes = limits.max_trailer_bytes
        self._max_body = limits.max_body
        return 0

    cdef int _reset_message(self) except -1:
        self._skipped = 0
        self._section_bytes = 0
        self._field_count = 0
        self._remaining = 0
        self._body_total = 0
        self._trailers = None
        self._v11 = False
        self._is_connect = False
        self._target_authority = False
        self._has_cl = False
        self._has_te = False
        self._te_last_chunked = False
        self._te_unknown = False
        self._te_chunked = 0
        self._host_count = 0
        self._conn_close = False
        self._conn_keep_alive = False
        self._conn_upgrade = False
        self._expect_100 = False
        self._upgrade_value = None
        return 0

    # -- hooks ---------------------------------------------------------------------------------

    cdef int on_request(self) except -1:
        return 0

    cdef int on_body(self, object chunk) except -1:
        return 0

    cdef int on_message_complete(self, list trailers) except -1:
        return 0

    # -- input ---------------------------------------------------------------------------------

    cpdef feed_data(self, data):
        """Parse ``data`` (bytes, bytearray, memoryview or any contiguous buffer); hooks run
        before it returns. Raises HttpParserError for a rejected request."""
        cdef Py_buffer view
        if self._in_feed:
            raise RuntimeError("feed_data() called from a parser hook")
        if self._state == ST_ERROR:
            self._raise_error()
        if self._eof:
            raise RuntimeError("feed_data() after feed_eof()")
        if self._state == ST_UPGRADED:
            raise RuntimeError("the connection was upgraded: the parser takes no more input")
        if self._state == ST_CLOSED:
            return None
        if PyBytes_CheckExact(data):
            self._feed(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), data)
            return None
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._feed(<const char *>view.buf, view.len, None)
        finally:
            PyBuffer_Release(&view)
        return None

    cpdef feed_eof(self):
        """The peer closed its side. Raises HttpParserError(400) if a request was cut off.
        While paused the check waits until resume() has parsed what is buffered."""
        if self._in_feed:
            raise RuntimeError("feed_eof() called from a parser hook")
        if self._state == ST_ERROR:
            self._raise_error()
        self._eof = True
        if not self._paused:
            self._check_eof()
        return None

    cdef int _check_eof(self) except -1:
        if self._state == ST_REQUEST_LINE and self._buf_len == 0:
            return 0
        if self._state in (ST_UPGRADE_PENDING, ST_UPGRADED, ST_CLOSED):
            return 0
        self._buf_len = 0
        return _fail(self, 400, "connection closed before the request was complete")

    cdef int _feed(self, const char *data, Py_ssize_t n, object owner) except -1:
        if n == 0:
            return 0
        if self._buf_len > 0 or self._paused or self._state == ST_UPGRADE_PENDING:
            carry_append(&self._buf, &self._buf_len, &self._buf_cap, data, n, BUFFER_INITIAL)
            if self._paused or self._state == ST_UPGRADE_PENDING:
                return 0
            return self._drive(self._buf, self._buf_len, None, True)
        return self._drive(data, n, owner, False)

    cdef int _drive(self, const char *data, Py_ssize_t n, object owner,
                    bint from_buffer) except -1:
        self._data = <const unsigned char *>data
        self._pos = 0
        self._end = n
        self._input = owner
        self._in_feed = True
        try:
            self._execute()
        except BaseException as exc:
            if self._state != ST_ERROR:
                self._state = ST_ERROR
                if isinstance(exc, HttpParserError):
                    self._error = exc
                else:
                    self._error = HttpParserError(
                        500, f"a parser hook raised {type(exc).__name__}")
            raise
        finally:
            self._in_feed = False
            self._input = None
            self._data = NULL
            carry_settle(&self._buf, &self._buf_len, &self._buf_cap, data, n, self._pos,
                         from_buffer, self._state == ST_ERROR or self._state == ST_CLOSED
                         or self._state == ST_UPGRADED, BUFFER_INITIAL)
        return 0

    cdef int _execute(self) except -1:
        while not self._paused:
            if STATE_TABLE[self._state](self) == 0:
                break
        return 0

    cdef int _continue_buffered(self) except -1:
        if self._in_feed:
            return 0                    # the running feed picks up where the hook left it
        if not self._paused and self._state != ST_UPGRADE_PENDING:
            # even with nothing buffered: a pause in on_request leaves on_message_complete due
            self._drive(self._buf, self._buf_len, None, True)
        if self._eof and not self._paused:
            self._check_eof()
        return 0

    cdef int _raise_error(self) except -1:
        raise HttpParserError(self._error.status_code, self._error.reason)

    # -- flow control and upgrades -------------------------------------------------------------

    cpdef pause(self):
        """Stop emitting events; input fed meanwhile is buffered."""
        self._paused = True
        return None

    cpdef resume(self):
        """Undo pause(): parse what is buffered now (hooks may run, and HttpParserError may be
        raised, from this call). From inside a hook it only clears the pause."""
        if not self._paused:
            return None
        self._paused = False
        if self._state == ST_ERROR:
            return None
        self._continue_buffered()
        return None

    cpdef bytes take_remaining(self):
        """Accept the pending upgrade (or CONNECT): return the bytes received after the request
        and stop HTTP parsing for good."""
        cdef bytes out
        if self._state != ST_UPGRADE_PENDING:
            raise RuntimeError("take_remaining() needs a pending upgrade")
        if self._in_feed:
            out = _bytes(self._data + self._pos, self._end - self._pos)
            self._pos = self._end
        else:
            out = _bytes(<const unsigned char *>self._buf, self._buf_len)
            self._buf_len = 0
        self._state = ST_UPGRADED
        return out

    cpdef decline_upgrade(self):
        """Refuse the pending upgrade: go on parsing HTTP/1.1 (after CONNECT: close)."""
        if self._state != ST_UPGRADE_PENDING:
            raise RuntimeError("decline_upgrade() needs a pending upgrade")
        if self._is_connect or not self.keep_alive:
            # a refused tunnel, or a request after which the connection closes: nothing more
            self._state = ST_CLOSED
            if not self._in_feed:
                self._buf_len = 0
            else:
                self._pos = self._end
            return None
        self._state = ST_REQUEST_LINE
        self._reset_message()
        self._continue_buffered()
        return None

    # -- introspection -------------------------------------------------------------------------

    @property
    def paused(self):
        return self._paused

    @property
    def upgrade_pending(self):
        """An Upgrade/CONNECT request is complete: take_remaining() or decline_upgrade()."""
        return self._state == ST_UPGRADE_PENDING

    @property
    def closed(self):
        """The last request did not keep the connection alive: later input is ignored."""
        return self._state == ST_CLOSED

    @property
    def state(self):
        return _STATE_NAMES[self._state]

    @property
    def buffered_bytes(self):
        """Bytes held for the next feed (an unfinished line, or input received while paused)."""
        return self._buf_len

    @property
    def message_in_progress(self):
        """Some of a request has been received (or is buffered) but it is not complete."""
        if self._state in (ST_UPGRADE_PENDING, ST_UPGRADED, ST_CLOSED, ST_ERROR):
            return False
        return self._state != ST_REQUEST_LINE or self._buf_len > 0


@cython.final
cdef class RequestParser(HttpParser):
    """HttpParser that records its events for Python: ``events()`` returns and clears a list of
    ``("request", dict)``, ``("body", bytes)`` and ``("end", trailers)``.

    ``pause_after``: event kinds ("request", "body", "end") after which the parser pauses
    itself from inside the hook, as a consumer doing flow control would."""

    def __cinit__(self, *args, **kwargs):
        self._events = []
        self._pause_mask = 0

    def __init__(self, Limits limits=None, *, pause_after=()):
        HttpParser.__init__(self, limits)
        cdef int mask = 0
        for kind in pause_after:
            if kind == "request":
                mask |= PAUSE_AFTER_REQUEST
            elif kind == "body":
                mask |= PAUSE_AFTER_BODY
            elif kind == "end":
                mask |= PAUSE_AFTER_END
            else:
                raise ValueError(f"pause_after: unknown event kind {kind!r}")
        self._pause_mask = mask

    cdef int on_request(self) except -1:
        self._events.append(("request", {
            "method": self.method, "target": self.target, "path": self.path,
            "query": self.query, "http_version": self.http_version, "headers": self.headers,
            "keep_alive": self.keep_alive, "expect_continue": self.expect_continue,
            "upgrade": self.upgrade, "content_length": self.content_length,
            "chunked": self.chunked, "authority": self.authority}))
        if self._pause_mask & PAUSE_AFTER_REQUEST:
            self.pause()
        return 0

    cdef int on_body(self, object chunk) except -1:
        self._events.append(("body", chunk))
        if self._pause_mask & PAUSE_AFTER_BODY:
            self.pause()
        return 0

    cdef int on_message_complete(self, list trailers) except -1:
        self._events.append(("end", trailers))
        if self._pause_mask & PAUSE_AFTER_END:
            self.pause()
        return 0

    def events(self):
        cdef list out = self._events
        self._events = []
        return out


include "response.pxi"
