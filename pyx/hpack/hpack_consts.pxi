# Tunables and limits of engine._hpack, in one place (included by hpack.pyx).

cdef enum:
    DEFAULT_TABLE_SIZE = 4096              # SETTINGS_HEADER_TABLE_SIZE's initial value (RFC 9113 §6.5.2)
    DEFAULT_MAX_HEADER_LIST_SIZE = 65536   # Decoder: sum of len(name)+len(value)+32; 0 = unlimited
    ENTRY_OVERHEAD = 32                    # added to every entry's size (RFC 7541 §4.1)
    STATIC_COUNT = 61                      # entries in the static table (RFC 7541 Appendix A)
    MAX_INT_CONTINUATION = 5               # continuation bytes after an integer's prefix: 5*7 bits
                                           # cover MAX_INTEGER; a longer encoding is refused
    ENCODER_MAX_TABLE_SIZE = 65536         # the encoder never uses a bigger dynamic table, however
                                           # large the peer's SETTINGS_HEADER_TABLE_SIZE
    ENCODER_INDEX_NUM = 3                  # the encoder inserts an entry only if its size is at
    ENCODER_INDEX_DEN = 4                  # most NUM/DEN of the table's maximum size
    TABLE_INITIAL_SLOTS = 16               # first allocation of a dynamic table's ring (power of 2)
    SCRATCH_KEEP = 4096                    # a decoder's Huffman scratch buffer or an encoder's output
                                           # buffer above this is freed after use (idle connections
                                           # keep little)
    OUT_INITIAL = 256                      # first allocation of the encoder's output buffer

# Integers (indexes, string lengths, table sizes) above this are refused (RFC 7541 §5.1 leaves
# the bound to the implementation).
cdef Py_ssize_t MAX_INTEGER = 0x7fffffff

# Field names the encoder always sends as never-indexed literals (RFC 7541 §7.1.3), whatever
# the caller's third tuple element says: credentials and cookies.
NEVER_INDEXED_NAMES = frozenset((b"authorization", b"proxy-authorization", b"cookie",
                                 b"set-cookie"))

# Field names the encoder sends without indexing (values that seldom repeat across responses and
# would only push useful entries out of the table).
NOT_INDEXED_NAMES = frozenset((b":path", b"content-length", b"content-range", b"etag",
                               b"last-modified", b"location", b"age", b"expires",
                               b"if-modified-since", b"if-none-match"))
