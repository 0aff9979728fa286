# TEMPORARY STAND-IN (branch h2asgi) for part B's engine._h2 declarations, written from
# /work/h2-contract.md so that engine._asgi's H2Session compiles and can be tested before branch
# h2core lands. Branch h2core owns this file: on merging h2core, its version replaces this one.

cdef class H2Limits:
    cdef readonly Py_ssize_t max_concurrent_streams
    cdef readonly Py_ssize_t initial_window_size
    cdef readonly Py_ssize_t max_frame_size
    cdef readonly Py_ssize_t max_header_list_size
    cdef readonly Py_ssize_t header_table_size


cdef class H2Connection:
    cdef object _conn                     # stand-in: the PyPI h2 library's H2Connection
    cdef H2Limits _limits
    cdef bytearray _out                   # stand-in: frames queued here
    cdef bint _goaway_sent
    cdef int _pull(self) except -1
    cdef readonly unsigned int last_stream_id
    cdef readonly Py_ssize_t open_streams
    cdef readonly bint closed

    cdef int on_request(self, unsigned int stream_id, list headers, bint end_stream) except -1
    cdef int on_data(self, unsigned int stream_id, object data, bint end_stream) except -1
    cdef int on_trailers(self, unsigned int stream_id, list headers) except -1
    cdef int on_stream_reset(self, unsigned int stream_id, unsigned int error_code) except -1
    cdef int on_window_open(self, unsigned int stream_id) except -1
    cdef int on_goaway(self, unsigned int last_stream_id, unsigned int error_code) except -1
    cdef int on_connection_error(self, unsigned int error_code, str reason) except -1

    cpdef receive(self, data)
    cpdef initiate(self)
    cpdef bytes data_to_send(self)
    cpdef send_headers(self, unsigned int stream_id, list headers, bint end_stream)
    cpdef Py_ssize_t send_data(self, unsigned int stream_id, data, bint end_stream)
    cpdef bytes data_frame_header(self, unsigned int stream_id, Py_ssize_t n, bint end_stream)
    cpdef Py_ssize_t send_window(self, unsigned int stream_id)
    cpdef send_trailers(self, unsigned int stream_id, list headers)
    cpdef reset_stream(self, unsigned int stream_id, unsigned int error_code)
    cpdef consume(self, unsigned int stream_id, Py_ssize_t n)
    cpdef goaway(self, unsigned int error_code=*)
