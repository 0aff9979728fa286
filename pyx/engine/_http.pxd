# Declarations of engine._http, cimportable from Cython:
#
#     from engine._http cimport HttpParser
#
#     cdef class Protocol(HttpParser):
#         cdef int on_request(self) except -1: ...          # the request's fields are attributes
#         cdef int on_body(self, object chunk) except -1: ... # chunk: bytes
#         cdef int on_message_complete(self, list trailers) except -1: ...
#
# The attributes of the current request (method ... authority) are set just before on_request()
# and stay valid until the next request's on_request().
from libc.stdint cimport int64_t


# Response serialization for Cython callers (see build_response_head / http_date).
cdef bytes response_head(int status, list headers, list more_headers, bint keep_alive,
                         bint v10, long long content_length, bint chunked, bytes date,
                         bytes status_line=*, bytes server=*)
cdef bytes current_date()


cdef class Limits:
    cdef readonly Py_ssize_t max_request_line
    cdef readonly Py_ssize_t max_header_count
    cdef readonly Py_ssize_t max_header_bytes
    cdef readonly int64_t max_body                  # -1: unlimited
    cdef readonly Py_ssize_t max_chunk_extension_bytes
    cdef readonly Py_ssize_t max_trailer_bytes


cdef class HttpParser:
    cdef:
        # -- the current request (read these in the hooks) --
        readonly bytes method            # b"GET"
        readonly bytes target            # the request-target as received
        readonly bytes path              # target's path, not percent-decoded (b"*" for OPTIONS *)
        readonly bytes query             # after the first "?", b"" if none
        readonly bytes http_version      # b"1.1" or b"1.0"
        readonly list headers            # [(lowercased name, value), ...] in received order
        readonly bint keep_alive         # the connection may carry another request after this one
        readonly bint expect_continue    # HTTP/1.1 request with Expect: 100-continue
        readonly object upgrade          # the Upgrade value (bytes) if it upgrades, else None
        readonly int64_t content_length  # -1 if the request has no Content-Length
        readonly bint chunked            # Transfer-Encoding: chunked
        readonly object authority        # the target's authority (absolute/authority-form), else
                                         # Host (bytes), or None
        readonly Limits limits

        # -- machinery --
        int _state
        bint _paused
        bint _in_feed
        bint _eof
        object _error
        const unsigned char *_data      # the window being parsed: the caller's input or _buf
        Py_ssize_t _pos
        Py_ssize_t _end
        Py_ssize_t _scan                 # bytes after _pos known to hold no LF
        object _input                    # the bytes object behind _data (zero-copy body), or None
        char *_buf                       # unconsumed input carried to the next feed
        Py_ssize_t _buf_len
        Py_ssize_t _buf_cap
        Py_ssize_t _max_request_line
        Py_ssize_t _max_header_count
        Py_ssize_t _max_header_bytes
        Py_ssize_t _max_chunk_ext
        Py_ssize_t _max_trailer_bytes
        int64_t _max_body

        # -- per message --
        Py_ssize_t _skipped              # empty-line bytes before the request-line
        Py_ssize_t _section_bytes        # header (or trailer) section bytes so far
        Py_ssize_t _field_count
        int64_t _remaining               # body or chunk bytes still to come
        int64_t _body_total
        list _trailers
        bint _v11
        bint _is_connect
        bint _target_authority           # authority taken from the target (absolute/authority-form)
        bint _has_cl
        bint _has_te
        bint _te_last_chunked
        bint _te_unknown
        int _te_chunked
        int _host_count
        bint _conn_close
        bint _conn_keep_alive
        bint _conn_upgrade
        bint _expect_100
        object _upgrade_value

    # hooks (override in a Cython subclass; the defaults do nothing)
    cdef int on_request(self) except -1
    cdef int on_body(self, object chunk) except -1
    cdef int on_message_complete(self, list trailers) except -1

    cpdef feed_data(self, data)
    cpdef feed_eof(self)
    cpdef pause(self)
    cpdef resume(self)
    cpdef bytes take_remaining(self)
    cpdef decline_upgrade(self)

    cdef int _set_limits(self, Limits limits) except -1
    cdef int _reset_message(self) except -1
    cdef int _feed(self, const char *data, Py_ssize_t n, object owner) except -1
    cdef int _drive(self, const char *data, Py_ssize_t n, object owner, bint from_buffer) except -1
    cdef int _execute(self) except -1
    cdef int _continue_buffered(self) except -1
    cdef int _check_eof(self) except -1
    cdef int _raise_error(self) except -1


cdef class RequestParser(HttpParser):
    cdef list _events
    cdef int _pause_mask      # PAUSE_AFTER_* bits: pause() right after recording such an event
