# Declarations of engine._ws, cimportable from Cython:
#
#     from engine._ws cimport FrameParser
#
#     cdef class Conn(FrameParser):
#         cdef int on_message(self, object data) except -1: ...   # str (text) or bytes (binary)
#         cdef int on_ping(self, bytes payload) except -1: ...
#         cdef int on_pong(self, bytes payload) except -1: ...
#         cdef int on_close(self, int code, str reason) except -1: ...
from libc.stdint cimport uint64_t


cdef class FrameParser:
    cdef:
        readonly bint is_server            # True: frames come from a client and must be masked
        readonly Py_ssize_t max_message_size   # -1: unlimited
        int _state
        bint _paused
        bint _in_feed
        object _error
        const unsigned char *_data
        Py_ssize_t _pos
        Py_ssize_t _end
        # the frame being read
        unsigned char _hdr[14]
        int _hdr_len
        int _hdr_need
        int _opcode
        bint _fin
        bint _masked
        unsigned char _mask[4]
        uint64_t _frame_len
        uint64_t _frame_done
        # the data message being assembled (opcode 0 = none)
        int _msg_opcode
        char *_msg
        Py_ssize_t _msg_len
        Py_ssize_t _msg_cap
        int _utf8
        # permessage-deflate (RFC 7692): RSV1 accepted on a first data frame when negotiated
        bint _rsv1_ok
        bint _rsv1
        bint _msg_compressed
        int _inflate_wbits
        bint _inflate_reset
        object _inflater
        # the control frame being read
        unsigned char _ctl[125]
        # input received while paused
        char *_buf
        Py_ssize_t _buf_len
        Py_ssize_t _buf_cap

    cdef int on_message(self, object data) except -1
    cdef int on_ping(self, bytes payload) except -1
    cdef int on_pong(self, bytes payload) except -1
    cdef int on_close(self, int code, str reason) except -1

    cpdef feed_data(self, data)
    cpdef pause(self)
    cpdef resume(self)

    cdef int _drive(self, const char *data, Py_ssize_t n) except -1
    cdef int _execute(self) except -1
    cdef int _msg_reserve(self, Py_ssize_t n) except -1
    cdef int _raise_error(self) except -1


cdef class MessageParser(FrameParser):
    cdef list _events
