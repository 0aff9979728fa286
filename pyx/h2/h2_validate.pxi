# Request and trailer validation of engine._h2 (included by pyx/h2/h2.pyx).
#
# RFC 9113 facts relied on:
# * §8.2.1 field validity: a name MUST NOT contain 0x00-0x20, uppercase 0x41-0x5a or 0x7f-0xff,
#   nor a colon except as the first character of a pseudo-header; a value MUST NOT contain NUL,
#   CR or LF and MUST NOT start or end with SP or HTAB. A request violating them is malformed.
# * §8.2.2 connection-specific fields (Connection, Keep-Alive, Proxy-Connection,
#   Transfer-Encoding, Upgrade) make a message malformed; TE may only be "trailers".
# * §8.3 pseudo-headers: only those defined for requests (:method :scheme :authority :path, and
#   :protocol from RFC 8441 §4 when SETTINGS_ENABLE_CONNECT_PROTOCOL was sent), each at most
#   once, all before the regular fields; none in trailers. :method, :scheme and :path are
#   required, :path non-empty ("/"-rooted, or "*" for OPTIONS) for http/https (§8.3.1);
#   CONNECT (§8.5) carries :authority only; Extended CONNECT (RFC 8441 §4) all four + :protocol.
#   A Host field that differs from :authority makes the request malformed (§8.3.1 SHOULD).
# * §8.1.1 content-length must agree with the DATA received (checked in h2.pyx on DATA).
# Every malformed request is a stream error PROTOCOL_ERROR (§8.1.1).

cdef unsigned char NAME_BAD[256]
cdef unsigned char VALUE_BAD[256]


cdef void _init_tables() noexcept:
    cdef int c
    for c in range(256):
        NAME_BAD[c] = 1 if (c <= 0x20 or (0x41 <= c <= 0x5a) or c >= 0x7f or c == 0x3a) else 0
        VALUE_BAD[c] = 1 if (c == 0 or c == 0x0a or c == 0x0d) else 0


_init_tables()

cdef enum:
    PS_METHOD = 1
    PS_SCHEME = 2
    PS_AUTHORITY = 4
    PS_PATH = 8
    PS_PROTOCOL = 16

    HF_REGULAR = 0
    HF_CONNECTION_SPECIFIC = 1
    HF_TE = 2
    HF_CONTENT_LENGTH = 3
    HF_HOST = 4

cdef dict PSEUDO = {b":method": PS_METHOD, b":scheme": PS_SCHEME, b":authority": PS_AUTHORITY,
                    b":path": PS_PATH, b":protocol": PS_PROTOCOL}
cdef dict SPECIAL = {b"connection": HF_CONNECTION_SPECIFIC, b"keep-alive": HF_CONNECTION_SPECIFIC,
                     b"proxy-connection": HF_CONNECTION_SPECIFIC,
                     b"transfer-encoding": HF_CONNECTION_SPECIFIC,
                     b"upgrade": HF_CONNECTION_SPECIFIC, b"te": HF_TE,
                     b"content-length": HF_CONTENT_LENGTH, b"host": HF_HOST}


cdef inline bint _name_ok(bytes name, Py_ssize_t start) noexcept:
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(name)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(name)
    if n <= start:
        return False
    for i in range(start, n):
        if NAME_BAD[p[i]]:
            return False
    return True


cdef inline bint _value_ok(bytes value) noexcept:
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(value)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(value)
    if n == 0:
        return True
    if p[0] == 0x20 or p[0] == 0x09 or p[n - 1] == 0x20 or p[n - 1] == 0x09:
        return False
    for i in range(n):
        if VALUE_BAD[p[i]]:
            return False
    return True


cdef long long _parse_content_length(bytes value) noexcept:
    """The value as a non-negative integer, or -1 if it is not 1-18 digits."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(value)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(value)
    cdef long long v = 0
    if n == 0 or n > 18:
        return -1
    for i in range(n):
        if p[i] < 0x30 or p[i] > 0x39:
            return -1
        v = v * 10 + (p[i] - 0x30)
    return v


cdef str _check_fields(list headers, bint trailers, bint connect_protocol, long long *clen):
    """None if the field list is a valid request header section (or trailer section), else
    the reason it is malformed. Sets clen[0] to the content-length (-1: none)."""
    cdef int seen = 0, kind
    cdef bint regular = False
    cdef bytes name, value, method = None, path = None, scheme = None
    cdef bytes authority = None, host = None
    cdef long long cl
    clen[0] = -1
    for item in headers:
        name = <bytes>(<tuple>item)[0]
        value = <bytes>(<tuple>item)[1]
        if not _value_ok(value):
            return "invalid character or surrounding whitespace in a field value"
        if PyBytes_GET_SIZE(name) > 0 and PyBytes_AS_STRING(name)[0] == b':':
            if trailers:
                return "pseudo-header in trailers"
            if regular:
                return "pseudo-header after a regular field"
            kind = PSEUDO.get(name, 0)
            if kind == 0 or (kind == PS_PROTOCOL and not connect_protocol):
                return "unknown pseudo-header " + name.decode("latin-1")
            if seen & kind:
                return "duplicate pseudo-header " + name.decode("latin-1")
            seen |= kind
            if kind == PS_METHOD:
                method = value
            elif kind == PS_PATH:
                path = value
            elif kind == PS_SCHEME:
                scheme = value
            elif kind == PS_AUTHORITY:
                authority = value
            continue
        regular = True
        if not _name_ok(name, 0):
            return "invalid field name"
        kind = SPECIAL.get(name, HF_REGULAR)
        if kind == HF_REGULAR:
            continue
        if kind == HF_CONNECTION_SPECIFIC:
            return "connection-specific field " + name.decode("latin-1")
        if kind == HF_TE:
            if value != b"trailers":
                return "te other than trailers"
        elif kind == HF_CONTENT_LENGTH:
            cl = _parse_content_length(value)
            if cl < 0 or (clen[0] >= 0 and cl != clen[0]):
                return "invalid content-length"
            clen[0] = cl
        elif kind == HF_HOST:
            host = value
    if trailers:
        return None
    if not (seen & PS_METHOD):
        return "missing :method"
    if method == b"CONNECT":
        if seen & PS_PROTOCOL:              # RFC 8441 §4: extended CONNECT
            if (seen & (PS_SCHEME | PS_PATH | PS_AUTHORITY)) != (PS_SCHEME | PS_PATH | PS_AUTHORITY):
                return "extended CONNECT needs :scheme, :path and :authority"
            if PyBytes_GET_SIZE(path) == 0:
                return "empty :path"
        else:                               # §8.5
            if not (seen & PS_AUTHORITY):
                return "CONNECT without :authority"
            if seen & (PS_SCHEME | PS_PATH):
                return "CONNECT with :scheme or :path"
    else:
        if seen & PS_PROTOCOL:
            return ":protocol on a method other than CONNECT"
        if (seen & (PS_SCHEME | PS_PATH)) != (PS_SCHEME | PS_PATH):
            return "missing :scheme or :path"
        if PyBytes_GET_SIZE(path) == 0:
            return "empty :path"
        if scheme == b"http" or scheme == b"https":
            if PyBytes_AS_STRING(path)[0] != b'/' and not (method == b"OPTIONS" and path == b"*"):
                return ":path is neither absolute nor * for OPTIONS"
    if authority is not None and host is not None and authority != host:
        return "host differs from :authority"
    return None
