# Declarations of engine._hpack (HPACK, RFC 7541), cimportable from Cython:
#
#     from engine._hpack cimport Decoder, Encoder
#
# Errors are Python exception classes of the module (engine._hpack.HpackError: any
# COMPRESSION_ERROR, RFC 9113 §4.3; HeaderListTooLarge(HpackError): the decoded list passed
# max_header_list_hard, decoding stopped there). After any HpackError a Decoder is unusable.
# HeaderListDropped(Exception), not an HpackError: the list passed max_header_list_size only,
# the block was decoded whole (the table is in step) and its fields dropped; the Decoder goes on.
# Source: pyx/hpack/hpack.pyx; Python types: engine/_hpack.pyi.

from cpython.object cimport PyObject


cdef struct HTable:
    PyObject **slots            # (name, value) tuples, owned; a ring of capacity mask + 1
    Py_ssize_t mask
    Py_ssize_t start
    Py_ssize_t count
    Py_ssize_t size
    Py_ssize_t max_size


cdef class Decoder:
    cdef readonly Py_ssize_t max_table_size        # our SETTINGS_HEADER_TABLE_SIZE
    cdef readonly Py_ssize_t max_header_list_size  # sum of len(name)+len(value)+32; 0 = unlimited
    cdef readonly Py_ssize_t max_header_list_hard  # decoding stops past it (HeaderListTooLarge);
                                                   # between the two: HeaderListDropped
    # positions (in the last decode()'s result) of the fields that came as never-indexed
    # literals (RFC 7541 §6.2.3), or None if there were none; `last_sensitive` (a Python
    # property) is the same as a list of bool parallel to the result
    cdef readonly list last_never_indexed
    cdef Py_ssize_t _last_count
    cdef Py_ssize_t _last_size            # the size of a dropped list (HeaderListDropped)
    cdef HTable _t
    cdef bint _update_required
    cdef object _failed                   # the message of the error that broke the decoder
    cdef unsigned char *_scratch          # Huffman output
    cdef Py_ssize_t _scratch_cap

    cpdef list decode(self, data)
    cdef list decode_c(self, const unsigned char *data, Py_ssize_t n)
    cpdef set_max_table_size(self, Py_ssize_t n)

    cdef unsigned char *_scratch_for(self, Py_ssize_t n) except NULL
    cdef bytes _string(self, const unsigned char *p, Py_ssize_t *ppos, Py_ssize_t n)
    cdef object _indexed(self, Py_ssize_t idx)
    cdef int _resize(self, Py_ssize_t max_size) except -1
    cdef int _insert(self, tuple entry) except -1
    cdef int _clear(self) except -1
    cdef list _decode(self, const unsigned char *p, Py_ssize_t n)


cdef class Encoder:
    cdef readonly Py_ssize_t max_table_size        # the peer's SETTINGS_HEADER_TABLE_SIZE
    cdef HTable _t
    cdef Py_ssize_t _pending_min                   # table-size updates for the next block
    cdef Py_ssize_t _pending_final                 # (-1: none)
    cdef Py_ssize_t _inserted                      # entries ever inserted (ids for the dicts)
    cdef dict _pairs                               # (name, value) -> id of the newest such entry
    cdef dict _names                               # name -> id of the newest entry with it
    cdef unsigned char *_buf                       # the block being built
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _len

    cpdef bytes encode(self, headers, bint huffman=*)
    cdef int encode_into(self, list headers, bytearray out) except -1
    cpdef set_max_table_size(self, Py_ssize_t n)

    cdef void _note_size(self, Py_ssize_t n) noexcept
    cdef unsigned char *_reserve(self, Py_ssize_t k) except NULL
    cdef int _put_int(self, Py_ssize_t v, int prefix, unsigned char first) except -1
    cdef int _put_string(self, bytes s, bint huffman) except -1
    cdef int _evict_one(self) except -1
    cdef int _apply_size(self, Py_ssize_t size) except -1
    cdef int _field(self, bytes name, bytes value, bint sensitive, bint huffman) except -1
    cdef Py_ssize_t _name_index(self, bytes name) except -1
    cdef int _encode(self, object headers, bint huffman) except -1
    cdef void _shrink(self) noexcept
