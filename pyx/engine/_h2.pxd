# Declarations of engine._h2 (the IO-free HTTP/2 server connection, RFC 9113), cimportable:
#
#     from engine._h2 cimport H2Connection, H2Limits
#
#     cdef class Session(H2Connection):
#         cdef int on_request(self, unsigned int stream_id, list headers, bint end_stream) except -1: ...
#         cdef int on_data(self, unsigned int stream_id, object data, bint end_stream) except -1: ...
#         ...
#
# The hooks run from inside receive(); they may call the output methods (send_headers,
# send_data, reset_stream, consume, ...) but not receive(). docs/pages/http2.md describes the
# frames, the stream states and every limit.
from engine._hpack cimport Decoder, Encoder


cdef class H2Limits:
    cdef readonly Py_ssize_t max_concurrent_streams
    cdef readonly Py_ssize_t initial_window_size
    cdef readonly Py_ssize_t connection_window_size
    cdef readonly Py_ssize_t max_frame_size
    cdef readonly Py_ssize_t max_header_list_size
    cdef readonly Py_ssize_t max_header_list_hard
    cdef readonly Py_ssize_t header_table_size
    cdef readonly Py_ssize_t max_header_block_bytes
    cdef readonly Py_ssize_t max_continuation_frames
    cdef readonly Py_ssize_t max_rapid_resets
    cdef readonly Py_ssize_t rapid_reset_window
    cdef readonly Py_ssize_t max_control_queue
    cdef readonly Py_ssize_t max_settings_frames
    cdef readonly Py_ssize_t max_ping_frames
    cdef readonly Py_ssize_t max_empty_data_frames
    cdef readonly Py_ssize_t max_priority_frames
    cdef readonly Py_ssize_t max_window_update_frames
    cdef readonly bint enable_connect_protocol


cdef class H2Stream:
    cdef:
        unsigned int sid
        int state
        bint announced              # on_request() was called for it
        bint response_started       # a final (non-1xx) HEADERS was sent
        long long send_window
        long long recv_window
        long long content_length    # -1: none
        long long received          # DATA payload bytes received
        long long unconsumed        # delivered by on_data, not yet consume()d
        long long pending_update    # consumed, not yet announced by WINDOW_UPDATE


cdef class H2Connection:
    cdef:
        readonly H2Limits limits
        readonly unsigned int last_stream_id    # highest client stream accepted (on_request)
        readonly Py_ssize_t open_streams        # streams open or half-closed
        readonly bint closed                    # a GOAWAY with an error was sent or received
        readonly bint goaway_sent
        readonly bint goaway_received
        readonly unsigned int peer_max_frame_size
        readonly long long peer_initial_window_size
        readonly long long peer_max_header_list_size    # -1: not advertised
        readonly bint peer_settings_received
        readonly long long conn_send_window
        readonly long long conn_recv_window

        int _phase
        int _preface_seen
        bint _initiated
        bint _in_receive
        bint _local_settings_acked
        unsigned int _highest_seen         # highest client stream id that left idle
        unsigned int _goaway_last          # last-stream-id of our GOAWAY
        long long _recv_initial            # the stream window the peer currently assumes
        long long _conn_pending_update
        dict _streams                      # sid -> H2Stream (open or half-closed)
        dict _closed_kind                  # recently closed sid -> CK_* (bounded)
        Decoder _decoder
        Encoder _encoder
        long long _encoder_table_size
        bytearray _out
        Py_ssize_t _ctl_queued             # reply-frame bytes queued since data_to_send()
        # the header block being assembled (HEADERS without END_HEADERS + CONTINUATIONs)
        unsigned int _hb_sid               # 0: none
        bint _hb_end_stream
        bint _hb_self_dep
        Py_ssize_t _hb_frames
        bytearray _hb
        # attack counters
        Py_ssize_t _rr_opened
        Py_ssize_t _rr_resets
        Py_ssize_t _n_settings
        Py_ssize_t _n_ping
        Py_ssize_t _n_empty_data
        Py_ssize_t _n_priority
        Py_ssize_t _n_window_update
        # the carry buffer (pyx/common/carry.pxi): an unfinished frame
        char *_buf
        Py_ssize_t _buf_len
        Py_ssize_t _buf_cap

    # -- hooks ---------------------------------------------------------------------------------
    cdef int on_request(self, unsigned int stream_id, list headers, bint end_stream) except -1
    cdef int on_data(self, unsigned int stream_id, object data, bint end_stream) except -1
    cdef int on_request_too_large(self, unsigned int stream_id, bint end_stream) except -1
    cdef int on_trailers(self, unsigned int stream_id, list headers) except -1
    cdef int on_stream_reset(self, unsigned int stream_id, unsigned int error_code) except -1
    cdef int on_window_open(self, unsigned int stream_id) except -1
    cdef int on_goaway(self, unsigned int last_stream_id, unsigned int error_code) except -1
    cdef int on_connection_error(self, unsigned int error_code, str reason) except -1

    # -- input / output ------------------------------------------------------------------------
    cpdef receive(self, data)
    cpdef initiate(self)
    cpdef bytes data_to_send(self)
    cpdef send_headers(self, unsigned int stream_id, list headers, bint end_stream)
    cpdef Py_ssize_t send_data(self, unsigned int stream_id, data, bint end_stream) except -1
    cpdef bytes data_frame_header(self, unsigned int stream_id, Py_ssize_t n, bint end_stream)
    cpdef Py_ssize_t send_window(self, unsigned int stream_id) except -1
    cpdef send_trailers(self, unsigned int stream_id, list headers)
    cpdef reset_stream(self, unsigned int stream_id, unsigned int error_code)
    cpdef consume(self, unsigned int stream_id, Py_ssize_t n)
    cpdef goaway(self, unsigned int error_code=*)
    cpdef ping(self, bytes opaque)
    cpdef Py_ssize_t output_size(self)
    cpdef bint stream_open(self, unsigned int stream_id)

    # -- machinery -----------------------------------------------------------------------------
    cdef Py_ssize_t _parse(self, const unsigned char *d, Py_ssize_t n) except -1
    cdef int _frame(self, int ftype, int flags, unsigned int sid,
                    const unsigned char *p, Py_ssize_t n) except -1
    cdef int _conn_error(self, unsigned int code, str reason) except -1
    cdef int _stream_error(self, unsigned int sid, unsigned int code) except -1
    cdef int _close_stream(self, H2Stream s, int kind) except -1
    cdef int _write_frame(self, Py_ssize_t length, int ftype, int flags, unsigned int sid,
                          const void *payload) except -1
    cdef int _write_header_block(self, unsigned int sid, list headers, int flags) except -1
    cdef int _credit_conn(self, long long n) except -1
    cdef int _productive(self) except -1
    cdef H2Stream _send_stream(self, unsigned int sid, int ev)


cdef class H2EventConnection(H2Connection):
    cdef list _events
