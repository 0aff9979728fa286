# Protocol numbers, default limits and internal enums of engine._h2, in one place (included by
# pyx/h2/h2.pyx). Protocol numbers are RFC 9113's registries: frame types (§6, §11.2), flags
# (§6.*), error codes (§7), settings (§6.5.2) plus SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3).

# Frame types (RFC 9113 §6): indexes into FRAME_TABLE; types >= FT_COUNT are ignored (§4.1, §5.5).
cdef enum:
    FT_DATA = 0x0
    FT_HEADERS = 0x1
    FT_PRIORITY = 0x2
    FT_RST_STREAM = 0x3
    FT_SETTINGS = 0x4
    FT_PUSH_PROMISE = 0x5
    FT_PING = 0x6
    FT_GOAWAY = 0x7
    FT_WINDOW_UPDATE = 0x8
    FT_CONTINUATION = 0x9
    FT_COUNT = 10

# Frame flags.
cdef enum:
    FLAG_END_STREAM = 0x1           # DATA, HEADERS
    FLAG_ACK = 0x1                  # SETTINGS, PING
    FLAG_END_HEADERS = 0x4          # HEADERS, PUSH_PROMISE, CONTINUATION
    FLAG_PADDED = 0x8               # DATA, HEADERS, PUSH_PROMISE
    FLAG_PRIORITY = 0x20            # HEADERS

# Error codes (RFC 9113 §7).
cdef enum:
    ERR_NO_ERROR = 0x0
    ERR_PROTOCOL_ERROR = 0x1
    ERR_INTERNAL_ERROR = 0x2
    ERR_FLOW_CONTROL_ERROR = 0x3
    ERR_SETTINGS_TIMEOUT = 0x4
    ERR_STREAM_CLOSED = 0x5
    ERR_FRAME_SIZE_ERROR = 0x6
    ERR_REFUSED_STREAM = 0x7
    ERR_CANCEL = 0x8
    ERR_COMPRESSION_ERROR = 0x9
    ERR_CONNECT_ERROR = 0xa
    ERR_ENHANCE_YOUR_CALM = 0xb
    ERR_INADEQUATE_SECURITY = 0xc
    ERR_HTTP_1_1_REQUIRED = 0xd

# Settings identifiers (RFC 9113 §6.5.2; RFC 8441 §3).
cdef enum:
    SET_HEADER_TABLE_SIZE = 0x1
    SET_ENABLE_PUSH = 0x2
    SET_MAX_CONCURRENT_STREAMS = 0x3
    SET_INITIAL_WINDOW_SIZE = 0x4
    SET_MAX_FRAME_SIZE = 0x5
    SET_MAX_HEADER_LIST_SIZE = 0x6
    SET_ENABLE_CONNECT_PROTOCOL = 0x8

# Protocol constants.
cdef enum:
    FRAME_HEADER_LEN = 9
    PREFACE_LEN = 24                        # b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (§3.4)
    DEFAULT_WINDOW = 65535                  # initial stream and connection windows (§6.9.2)
    MIN_MAX_FRAME_SIZE = 16384              # 2**14 (§6.5.2)
    MAX_MAX_FRAME_SIZE = 16777215           # 2**24 - 1
    DEFAULT_TABLE_SIZE = 4096               # HPACK's initial table size (§6.5.2)
    GOAWAY_DEBUG_MAX = 256                  # bytes of reason text we put into GOAWAY debug data

cdef long long MAX_WINDOW = 2147483647     # 2**31 - 1 (§6.9.1)

# Default limits: every one is an H2Limits keyword (docs/pages/http2.md "Limits").
cdef enum:
    DEFAULT_MAX_CONCURRENT_STREAMS = 100
    DEFAULT_INITIAL_WINDOW_SIZE = 65535
    DEFAULT_CONNECTION_WINDOW_SIZE = 1048576
    DEFAULT_MAX_FRAME_SIZE = 16384
    DEFAULT_MAX_HEADER_LIST_SIZE = 65536       # advertised; a request above it is answered 431
    HEADER_LIST_HARD_FACTOR = 4                # max_header_list_hard's default: this many times
                                               # max_header_list_size (above: connection error)
    DEFAULT_HEADER_TABLE_SIZE = 4096
    DEFAULT_MAX_HEADER_BLOCK_BYTES = 65536     # compressed bytes of one HEADERS+CONTINUATION block
    DEFAULT_MAX_CONTINUATION_FRAMES = 32       # CONTINUATION frames of one header block
    DEFAULT_MAX_RAPID_RESETS = 100             # client resets of unanswered streams per window...
    DEFAULT_RAPID_RESET_WINDOW = 1000          # ...of this many stream openings
    DEFAULT_MAX_CONTROL_QUEUE = 32768          # bytes of reply frames queued, not yet taken
    DEFAULT_MAX_SETTINGS_FRAMES = 100          # each since the last productive event
    DEFAULT_MAX_PING_FRAMES = 1000
    DEFAULT_MAX_EMPTY_DATA_FRAMES = 100
    DEFAULT_MAX_PRIORITY_FRAMES = 1000
    DEFAULT_MAX_WINDOW_UPDATE_FRAMES = 1000
    CLOSED_REMEMBERED = 256                    # recently closed streams whose end we remember

# Connection phases.
cdef enum:
    PH_PREFACE = 0           # reading the 24-byte client preface
    PH_SETTINGS = 1          # the first frame must be a SETTINGS frame (§3.4)
    PH_FRAMES = 2
    PH_CLOSED = 3            # a connection error (sent or received): input is ignored

# Stream states (RFC 9113 §5.1): indexes into STREAM_NEXT. Reserved states exist in the table
# for completeness; a server that never pushes never enters them.
cdef enum:
    S_IDLE = 0
    S_OPEN = 1
    S_RESERVED_LOCAL = 2
    S_RESERVED_REMOTE = 3
    S_HALF_CLOSED_LOCAL = 4
    S_HALF_CLOSED_REMOTE = 5
    S_CLOSED = 6
    S_COUNT = 7

# Stream events: the other index of STREAM_NEXT.
cdef enum:
    EV_RECV_HEADERS = 0      # a header block on the stream (a request, or trailers)
    EV_RECV_DATA = 1
    EV_RECV_END = 2          # END_STREAM on a received HEADERS/DATA, applied after the frame
    EV_RECV_RST = 3
    EV_SEND_HEADERS = 4
    EV_SEND_DATA = 5
    EV_SEND_END = 6
    EV_SEND_RST = 7
    EV_COUNT = 8

# STREAM_NEXT values below 0: what an event not allowed in a state is.
cdef enum:
    X_STREAM_CLOSED = -1     # stream error STREAM_CLOSED (§5.1 half-closed (remote))
    X_CONN_PROTOCOL = -2     # connection error PROTOCOL_ERROR (§5.1 idle)
    X_CONN_CLOSED = -3       # connection error STREAM_CLOSED (§5.1 closed, after END_STREAM)
    X_LOCAL = -4             # our own side may not do this: the send is refused/ignored

# How a stream we no longer track ended (the closed-stream memory).
cdef enum:
    CK_UNKNOWN = 0           # never opened (skipped ids are implicitly closed), or forgotten
    CK_END_STREAM = 1        # both sides sent END_STREAM
    CK_RESET_BY_US = 2       # we sent RST_STREAM: the peer's frames in flight are ignored
    CK_RESET_BY_PEER = 3     # the peer sent RST_STREAM
