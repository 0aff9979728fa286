# Tunables and internal enums of engine._http, in one place (included by http.pyx).

# Default limits (engine._http.Limits); every one is a constructor keyword.
cdef enum:
    DEFAULT_MAX_REQUEST_LINE = 8192        # bytes of the request-line (CRLF excluded) -> 414/400
    DEFAULT_MAX_HEADER_COUNT = 100         # header fields (and, separately, trailer fields) -> 431
    DEFAULT_MAX_HEADER_BYTES = 65536       # bytes of the header section (CRLFs included) -> 431
    DEFAULT_MAX_CHUNK_EXT_BYTES = 4096     # bytes of chunk extensions on one chunk-size line -> 400
    DEFAULT_MAX_TRAILER_BYTES = 16384      # bytes of the trailer section -> 431

cdef long long DEFAULT_MAX_BODY = 1 << 30  # body bytes (Content-Length or chunked total) -> 413

cdef enum:
    BUFFER_INITIAL = 512                   # first allocation of the carry buffer (common/carry.pxi)
    MAX_CONTENT_LENGTH_DIGITS = 19         # 10**19 - 1 fits in uint64; above INT64_MAX -> 400
    MAX_CHUNK_SIZE_DIGITS = 16             # 16**16 - 1 fits in uint64; above INT64_MAX -> 400
    VERSION_LEN = 8                        # b"HTTP/1.1"
    NAME_STACK = 64                        # header names up to this length are lowered on the stack

# Parser states: indexes into STATE_TABLE (one C function per state).
cdef enum:
    ST_REQUEST_LINE = 0      # skipping empty lines, then reading the request-line
    ST_HEADER_LINE = 1       # one field line per call; the empty line ends the header section
    ST_BODY_LENGTH = 2       # Content-Length body
    ST_CHUNK_SIZE = 3        # chunk-size [ chunk-ext ] CRLF
    ST_CHUNK_DATA = 4
    ST_CHUNK_DATA_CR = 5     # the CR after chunk-data
    ST_CHUNK_DATA_LF = 6     # the LF after chunk-data
    ST_TRAILER_LINE = 7      # trailer field lines after the last chunk
    ST_MESSAGE_COMPLETE = 8  # emits on_message_complete, picks the next state
    ST_UPGRADE_PENDING = 9   # Upgrade/CONNECT request done: halted until take_remaining/decline
    ST_UPGRADED = 10         # the bytes were handed over: nothing more to parse
    ST_CLOSED = 11           # the connection will close (no keep-alive): input is discarded
    ST_ERROR = 12            # a request was rejected: every later call raises the same error
    ST_COUNT = 13

cdef enum:
    SECTION_END = 2          # _section_line(): the empty line that ends the header/trailer section

# Character classes (bit flags in CHAR_CLASS[256]).
cdef enum:
    CC_VCHAR = 1             # 0x21-0x7E: request-target characters
    CC_FIELD = 2             # field-value characters: VCHAR, obs-text, SP, HTAB
    CC_TCHAR = 4             # token characters (methods, field names, codings)
    CC_HEX = 8
    CC_DIGIT = 16
    CC_HOST = 32             # reg-name / IPv4 characters: unreserved, pct-encoded, sub-delims
    CC_QDTEXT = 64           # quoted-string text (chunk extension values)
    CC_SCHEME = 128          # ALPHA / DIGIT / "+" / "-" / "."

# RequestParser(pause_after=...): event kinds after which it pauses itself.
cdef enum:
    PAUSE_AFTER_REQUEST = 1
    PAUSE_AFTER_BODY = 2
    PAUSE_AFTER_END = 4
