# Response serialization (included by http.pyx into engine._http; response_head and
# current_date are declared for Cython callers in pyx/engine/_http.pxd).
#
# status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF (RFC 9112 §4); a server
# answers with its own highest version, HTTP/1.1, whatever the request's minor version was
# (RFC 9110 §2.5). Field names are tokens; field values are VCHAR / obs-text / SP / HTAB, so a
# CR, LF or NUL in an application's header can never start a new line (response splitting).
# A keep-alive answer to an HTTP/1.0 request carries "connection: keep-alive"; a response after
# which the server closes carries "connection: close" (RFC 9112 §9.3, §9.6). Chunked framing:
# chunk-size in hex CRLF data CRLF, ended by "0" CRLF [trailer fields] CRLF (RFC 9112 §7.1).
# Date is an IMF-fixdate (RFC 9110 §5.6.7).

# Reason phrases of RFC 9110 §15 (and a few registered elsewhere: 102/103, 207/208/226,
# 422-429, 451, 506-511).
cdef dict _REASONS = {
    100: b"Continue", 101: b"Switching Protocols", 102: b"Processing", 103: b"Early Hints",
    200: b"OK", 201: b"Created", 202: b"Accepted", 203: b"Non-Authoritative Information",
    204: b"No Content", 205: b"Reset Content", 206: b"Partial Content", 207: b"Multi-Status",
    208: b"Already Reported", 226: b"IM Used",
    300: b"Multiple Choices", 301: b"Moved Permanently", 302: b"Found", 303: b"See Other",
    304: b"Not Modified", 305: b"Use Proxy", 307: b"Temporary Redirect",
    308: b"Permanent Redirect",
    400: b"Bad Request", 401: b"Unauthorized", 402: b"Payment Required", 403: b"Forbidden",
    404: b"Not Found", 405: b"Method Not Allowed", 406: b"Not Acceptable",
    407: b"Proxy Authentication Required", 408: b"Request Timeout", 409: b"Conflict",
    410: b"Gone", 411: b"Length Required", 412: b"Precondition Failed",
    413: b"Content Too Large", 414: b"URI Too Long", 415: b"Unsupported Media Type",
    416: b"Range Not Satisfiable", 417: b"Expectation Failed", 421: b"Misdirected Request",
    422: b"Unprocessable Content", 423: b"Locked", 424: b"Failed Dependency",
    425: b"Too Early", 426: b"Upgrade Required", 428: b"Precondition Required",
    429: b"Too Many Requests", 431: b"Request Header Fields Too Large",
    451: b"Unavailable For Legal Reasons",
    500: b"Internal Server Error", 501: b"Not Implemented", 502: b"Bad Gateway",
    503: b"Service Unavailable", 504: b"Gateway Timeout", 505: b"HTTP Version Not Supported",
    506: b"Variant Also Negotiates", 507: b"Insufficient Storage", 508: b"Loop Detected",
    510: b"Not Extended", 511: b"Network Authentication Required",
}

# b"HTTP/1.1 200 OK\r\n" for every status 100-599 (unknown ones with an empty reason phrase).
cdef list _STATUS_LINES = [
    b"HTTP/1.1 %d %s\r\n" % (code, _REASONS.get(code, b"")) for code in range(100, 600)]

cdef bytes _CRLF = b"\r\n"
cdef bytes LAST_CHUNK_BYTES = b"0\r\n\r\n"
LAST_CHUNK = LAST_CHUNK_BYTES


def reason_phrase(int status):
    """The reason phrase for ``status`` (b"" if none is registered)."""
    return _REASONS.get(status, B_EMPTY)


cdef inline Py_ssize_t _first_outside(object data, unsigned char cclass, str what) except -2:
    """Index of the first byte of ``data`` (bytes, else TypeError naming ``what``) whose
    CHAR_CLASS lacks ``cclass``; -1 when every byte has it."""
    cdef Py_ssize_t i, n
    cdef const unsigned char *s
    if not PyBytes_Check(data):
        raise TypeError(f"{what} must be bytes, not {type(data).__name__}")
    n = PyBytes_GET_SIZE(data)
    s = <const unsigned char *>PyBytes_AS_STRING(data)
    for i in range(n):
        if not CHAR_CLASS[s[i]] & cclass:
            return i
    return -1


cdef inline int _check_token(object name) except -1:
    if _first_outside(name, CC_TCHAR, "header names") >= 0:
        raise ValueError(f"invalid header name {name!r}")
    if PyBytes_GET_SIZE(name) == 0:
        raise ValueError("empty header name")
    return 0


cdef inline int _check_value(object value, str what) except -1:
    """VCHAR / obs-text / SP / HTAB only: no CR, LF, NUL or other control byte."""
    cdef Py_ssize_t bad = _first_outside(value, CC_FIELD, what)
    if bad >= 0:
        raise ValueError(f"invalid byte {value[bad]:#04x} in {what} {value!r}")
    return 0


cdef inline char *_put(char *o, object b) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    memcpy(o, PyBytes_AS_STRING(b), n)
    return o + n


cdef inline char *_put_lit(char *o, const char *lit, Py_ssize_t n) noexcept:
    memcpy(o, lit, n)
    return o + n


def build_response_head(int status, headers, bint keep_alive=True, http_version=b"1.1", *,
                        reason=None, long long content_length=-1, bint chunked=False,
                        date=None, server=None):
    """The status line and header section of a response, as one bytes object.

    ``headers``: (name, value) bytes pairs, written as given after validation (ValueError on a
    non-token name or a CR/LF/NUL/control byte in a value). ``keep_alive`` is the server's
    decision; with ``http_version`` (the *request's* version, b"1.1" or b"1.0") it adds
    ``connection: close`` or, for HTTP/1.0, ``connection: keep-alive`` - unless ``headers``
    already has a Connection field, which is then left to the caller. ``content_length >= 0``
    adds Content-Length, ``chunked`` adds ``transfer-encoding: chunked`` (not both, and not
    when ``headers`` already frames the body), ``date``/``server`` add those fields.
    """
    cdef bytes status_line = None
    cdef bint v10
    if status < 100 or status > 599:
        raise ValueError(f"status must be in 100..599, not {status}")
    if http_version == V_11:
        v10 = False
    elif http_version == V_10:
        v10 = True
    else:
        raise ValueError(f"http_version must be b'1.1' or b'1.0', not {http_version!r}")
    if reason is not None:
        if isinstance(reason, str):
            reason = (<str>reason).encode("latin-1")
        _check_value(reason, "reason phrase")
        status_line = b"HTTP/1.1 %d %s\r\n" % (status, reason)
    if date is not None:
        _check_value(date, "date")
    if server is not None:
        _check_value(server, "server")
    return response_head(status, headers if isinstance(headers, list) else list(headers), None,
                         keep_alive, v10, content_length, chunked, date, status_line, server)


cdef inline Py_ssize_t _fields_size(list fields, bint *has_connection,
                                    bint *has_framing) except -1:
    """Validates (name, value) pairs; their size as "name: value\r\n" lines."""
    cdef Py_ssize_t i, nl, size = 0
    cdef object pair, name, value
    cdef const unsigned char *ns
    for i in range(len(fields)):
        pair = fields[i]
        if len(pair) != 2:
            raise ValueError("headers must be (name, value) pairs")
        name = pair[0]
        value = pair[1]
        _check_token(name)
        _check_value(value, "header value")
        ns = <const unsigned char *>PyBytes_AS_STRING(name)
        nl = PyBytes_GET_SIZE(name)
        if _lower_equals(ns, nl, b"connection", 10):
            has_connection[0] = True
        elif (_lower_equals(ns, nl, b"content-length", 14)
                or _lower_equals(ns, nl, b"transfer-encoding", 17)):
            has_framing[0] = True
        size += nl + PyBytes_GET_SIZE(value) + 4
    return size


cdef inline int _format_decimal(char *buf, unsigned long long v) noexcept:
    """Write v in decimal at buf (room for 20 digits); return the digit count. snprintf's
    format parsing costs some 600 instructions per response; this is a few dozen."""
    cdef char tmp[20]
    cdef int n = 0, i
    while True:
        tmp[n] = <char>(48 + v % 10)
        n += 1
        v //= 10
        if v == 0:
            break
    for i in range(n):
        buf[i] = tmp[n - 1 - i]
    return n


cdef inline char *_put_fields(char *o, list fields) noexcept:
    cdef Py_ssize_t i
    cdef object pair
    for i in range(len(fields)):
        pair = fields[i]
        o = _put(o, pair[0])
        o = _put_lit(o, b": ", 2)
        o = _put(o, pair[1])
        o = _put_lit(o, b"\r\n", 2)
    return o


cdef bytes response_head(int status, list headers, list more_headers, bint keep_alive,
                         bint v10, long long content_length, bint chunked, bytes date,
                         bytes status_line=None, bytes server=None):
    """build_response_head() for Cython callers (engine._asgi): ``headers`` then
    ``more_headers`` (None: none) are validated and written; ``v10``: the request was
    HTTP/1.0; ``date``/``server`` (None: omitted) and ``status_line`` (None: the registered
    reason phrase) are written as given, unchecked."""
    cdef Py_ssize_t size
    cdef bytes conn = None, out
    cdef char clbuf[24]
    cdef int cln = -1
    cdef bint has_connection = False, has_framing = False
    cdef char *o
    if status_line is None:
        if status < 100 or status > 599:
            raise ValueError(f"status must be in 100..599, not {status}")
        status_line = <bytes>_STATUS_LINES[status - 100]
    size = PyBytes_GET_SIZE(status_line) + 2
    size += _fields_size(headers, &has_connection, &has_framing)
    if more_headers is not None:
        size += _fields_size(more_headers, &has_connection, &has_framing)
    if content_length >= 0 and chunked:
        raise ValueError("content_length and chunked are mutually exclusive")
    if (content_length >= 0 or chunked) and has_framing:
        raise ValueError("headers already carry Content-Length or Transfer-Encoding")
    if content_length >= 0:
        cln = _format_decimal(clbuf, <unsigned long long>content_length)
        size += 16 + cln + 2
    if chunked:
        size += 28                                          # "transfer-encoding: chunked\r\n"
    if date is not None:
        size += 6 + PyBytes_GET_SIZE(date) + 2
    if server is not None:
        size += 8 + PyBytes_GET_SIZE(server) + 2
    if not has_connection:
        if not keep_alive:
            conn = b"connection: close\r\n"
        elif v10:
            conn = b"connection: keep-alive\r\n"
        if conn is not None:
            size += PyBytes_GET_SIZE(conn)

    out = PyBytes_FromStringAndSize(NULL, size)
    o = PyBytes_AS_STRING(out)
    o = _put(o, status_line)
    o = _put_fields(o, headers)
    if more_headers is not None:
        o = _put_fields(o, more_headers)
    if cln >= 0:
        o = _put_lit(o, b"content-length: ", 16)
        o = _put_lit(o, clbuf, cln)
        o = _put_lit(o, b"\r\n", 2)
    if chunked:
        o = _put_lit(o, b"transfer-encoding: chunked\r\n", 28)
    if date is not None:
        o = _put_lit(o, b"date: ", 6)
        o = _put(o, date)
        o = _put_lit(o, b"\r\n", 2)
    if server is not None:
        o = _put_lit(o, b"server: ", 8)
        o = _put(o, server)
        o = _put_lit(o, b"\r\n", 2)
    if conn is not None:
        o = _put(o, conn)
    o = _put_lit(o, b"\r\n", 2)
    if o - PyBytes_AS_STRING(out) != size:
        raise AssertionError("build_response_head: size mismatch")
    return out


cdef const char *_HEXDIGITS = b"0123456789abcdef"


def chunk(data):
    """One chunk of a chunked body: hex size CRLF data CRLF. Empty data gives b"" (an empty
    chunk would end the body: use LAST_CHUNK for that)."""
    cdef Py_buffer view
    cdef char hexbuf[16]
    cdef Py_ssize_t n, h, k
    cdef uint64_t v
    cdef bytes out
    cdef char *o
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        n = view.len
        if n == 0:
            return B_EMPTY
        v = <uint64_t>n
        h = 0
        while v:
            hexbuf[15 - h] = _HEXDIGITS[v & 15]
            v >>= 4
            h += 1
        out = PyBytes_FromStringAndSize(NULL, h + 2 + n + 2)
        o = PyBytes_AS_STRING(out)
        memcpy(o, hexbuf + 16 - h, h)
        o += h
        o[0] = 13
        o[1] = 10
        memcpy(o + 2, view.buf, n)
        o[2 + n] = 13
        o[3 + n] = 10
    finally:
        PyBuffer_Release(&view)
    return out


def last_chunk(trailers=None):
    """The end of a chunked body, with trailer fields if given ((name, value) bytes pairs)."""
    cdef list parts
    if not trailers:
        return LAST_CHUNK_BYTES
    parts = [b"0\r\n"]
    for name, value in trailers:
        _check_token(name)
        _check_value(value, "trailer value")
        parts.append(name + b": " + value + b"\r\n")
    parts.append(_CRLF)
    return B_EMPTY.join(parts)


cdef const char *_WEEKDAYS = b"MonTueWedThuFriSatSun"
cdef const char *_MONTHS = b"JanFebMarAprMayJunJulAugSepOctNovDec"
cdef time_t _date_second = -1
cdef bytes _date_cached = None


cdef inline char *_put2(char *o, int v) noexcept:
    o[0] = <char>(0x30 + v // 10)
    o[1] = <char>(0x30 + v % 10)
    return o + 2


cdef bytes current_date():
    """http_date() of now, for Cython callers (cached for the second)."""
    if c_time(NULL) == _date_second and _date_cached is not None:
        return _date_cached
    return http_date()


def http_date(timestamp=None):
    """IMF-fixdate, e.g. b"Sun, 06 Nov 1994 08:49:37 GMT"; for the current time (the default)
    the result is cached for the second."""
    global _date_second, _date_cached
    cdef time_t t
    cdef tm g
    cdef char buf[29]
    cdef char *o = buf
    cdef int wd, year
    if timestamp is None:
        t = c_time(NULL)
        if t == _date_second:
            return _date_cached
    else:
        t = <time_t>int(timestamp)
    if gmtime_r(&t, &g) == NULL:
        raise ValueError("timestamp out of range")
    year = g.tm_year + 1900
    if year < 0 or year > 9999:
        raise ValueError("timestamp out of range")
    wd = (g.tm_wday + 6) % 7                                # tm_wday: 0 = Sunday
    memcpy(o, _WEEKDAYS + 3 * wd, 3)
    o[3] = 0x2C
    o[4] = 0x20
    o = _put2(o + 5, g.tm_mday)
    o[0] = 0x20
    memcpy(o + 1, _MONTHS + 3 * g.tm_mon, 3)
    o[4] = 0x20
    o = _put2(o + 5, year // 100)
    o = _put2(o, year % 100)
    o[0] = 0x20
    o = _put2(o + 1, g.tm_hour)
    o[0] = 0x3A
    o = _put2(o + 1, g.tm_min)
    o[0] = 0x3A
    o = _put2(o + 1, g.tm_sec)
    memcpy(o, b" GMT", 4)
    out = PyBytes_FromStringAndSize(buf, 29)
    if timestamp is None:
        _date_second = t
        _date_cached = out
    return out
