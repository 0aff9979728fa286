# The carry buffer of engine's IO-free protocol cores (included by pyx/http/http.pyx and
# pyx/ws/ws.pyx): input a feed could not finish (an unfinished line or frame header, or all of it
# while the parser is paused) is kept in a malloc'd buffer, appended to by the next feed and
# parsed from there. The buffer is three fields of the parser (char *buf, Py_ssize_t len, cap),
# passed here by address so each parser keeps its declared layout (pyx/engine/_http.pxd, _ws.pxd).
# All helpers are cdef inline: no Python call on the per-feed path.

from libc.stdlib cimport realloc, free
from libc.string cimport memcpy, memmove

cdef enum:
    CARRY_KEEP_CAPACITY = 65536     # a larger carry buffer is freed once it is empty


cdef inline int buf_reserve(char **buf, Py_ssize_t *cap, Py_ssize_t need,
                            Py_ssize_t initial) except -1:
    """Make buf hold at least `need` bytes: grows by doubling from `initial`."""
    cdef Py_ssize_t c = cap[0]
    cdef char *nb
    if need <= c:
        return 0
    if c == 0:
        c = initial
    while c < need:
        c *= 2
    nb = <char *>realloc(buf[0], c)
    if nb == NULL:
        raise MemoryError()
    buf[0] = nb
    cap[0] = c
    return 0


cdef inline int carry_append(char **buf, Py_ssize_t *length, Py_ssize_t *cap,
                             const char *data, Py_ssize_t n, Py_ssize_t initial) except -1:
    buf_reserve(buf, cap, length[0] + n, initial)
    memcpy(buf[0] + length[0], data, n)
    length[0] += n
    return 0


cdef inline int carry_settle(char **buf, Py_ssize_t *length, Py_ssize_t *cap,
                             const char *data, Py_ssize_t n, Py_ssize_t consumed,
                             bint from_buffer, bint finished, Py_ssize_t initial) except -1:
    """After a parse of data[0:n] stopped at `consumed`: drop the consumed part from the carry
    buffer (when data was the buffer), or keep the unconsumed rest of the caller's input; a
    parser that `finished` (error, close, upgrade) carries nothing."""
    if finished:
        length[0] = 0
    elif from_buffer:
        if consumed > 0:
            memmove(buf[0], buf[0] + consumed, length[0] - consumed)
            length[0] -= consumed
    elif consumed < n:
        carry_append(buf, length, cap, data + consumed, n - consumed, initial)
    if length[0] == 0 and cap[0] > CARRY_KEEP_CAPACITY:
        free(buf[0])                # don't keep a burst's worth of memory per connection
        buf[0] = NULL
        cap[0] = 0
    return 0
