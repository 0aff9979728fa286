# BufferPool (included by loop.pyx into engine._loop; declared only here): fixed-size receive buffers carved out of large slabs, bounded, with statistics.
#
# Chunks are handed out as PooledBuffer objects that export the buffer protocol, so
# memoryview(buf) / sock.recv_into(buf) / numpy.frombuffer(buf) see the slab memory with no copy.
# A PooledBuffer goes back to the pool when release()d or garbage-collected; release() refuses
# while a memoryview of it is still alive (py-pgproto's rule: never recycle memory a view can
# still see). Slabs are allocated on demand up to max_slabs and kept for the pool's lifetime.
#
# The transports take their recv(2) buffer from their loop's pool (Loop.buffer_pool): one chunk
# per readable event, given back before any Python code runs.

from cpython.buffer cimport PyBuffer_FillInfo


@cython.final
cdef class BufferPool:
    """A bounded pool of fixed-size buffers carved from slabs.

    BufferPool(chunk_size=65536, slab_chunks=16, max_slabs=64): at most
    chunk_size * slab_chunks * max_slabs bytes. acquire() returns a PooledBuffer (raises
    BufferError when every chunk is in use); stats() reports usage.
    """
    cdef:
        readonly Py_ssize_t chunk_size
        readonly Py_ssize_t slab_chunks
        readonly Py_ssize_t max_slabs
        char **_slabs
        Py_ssize_t _nslabs
        char **_free
        Py_ssize_t _nfree
        Py_ssize_t _in_use
        Py_ssize_t _peak
        unsigned long long _acquired
        unsigned long long _exhausted

    def __cinit__(self, Py_ssize_t chunk_size=65536, Py_ssize_t slab_chunks=16,
                  Py_ssize_t max_slabs=64):
        if chunk_size <= 0 or slab_chunks <= 0 or max_slabs <= 0:
            raise ValueError("chunk_size, slab_chunks and max_slabs must be positive")
        self.chunk_size = chunk_size
        self.slab_chunks = slab_chunks
        self.max_slabs = max_slabs
        self._slabs = <char **>malloc(max_slabs * sizeof(char *))
        self._free = <char **>malloc(max_slabs * slab_chunks * sizeof(char *))
        if self._slabs == NULL or self._free == NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self._slabs != NULL:
            for i in range(self._nslabs):
                free(self._slabs[i])
            free(self._slabs)
        free(self._free)

    cdef int _grow(self) except -1:
        cdef char *slab
        cdef Py_ssize_t i
        slab = <char *>malloc(self.chunk_size * self.slab_chunks)
        if slab == NULL:
            raise MemoryError()
        self._slabs[self._nslabs] = slab
        self._nslabs += 1
        for i in range(self.slab_chunks - 1, -1, -1):
            self._free[self._nfree] = slab + i * self.chunk_size
            self._nfree += 1
        return 0

    cdef char *_take(self) except NULL:
        """A chunk for C code (given back with _give)."""
        if self._nfree == 0:
            if self._nslabs == self.max_slabs:
                self._exhausted += 1
                raise BufferError(f"buffer pool exhausted ({self._in_use} chunks in use)")
            self._grow()
        self._nfree -= 1
        self._in_use += 1
        self._acquired += 1
        if self._in_use > self._peak:
            self._peak = self._in_use
        return self._free[self._nfree]

    cdef inline bint _can_take(self) noexcept:
        return self._nfree > 0 or self._nslabs < self.max_slabs

    cdef void _give(self, char *chunk) noexcept:
        self._free[self._nfree] = chunk
        self._nfree += 1
        self._in_use -= 1

    def acquire(self):
        """A PooledBuffer of chunk_size bytes (contents undefined)."""
        cdef PooledBuffer b = PooledBuffer.__new__(PooledBuffer)
        b._ptr = self._take()
        b._pool = self
        b._size = self.chunk_size
        return b

    def stats(self):
        """dict: chunk_size, slabs, capacity (chunks), in_use, free, peak_in_use, acquired,
        exhausted (acquire() calls refused because every chunk was in use), bytes_reserved."""
        return {
            'chunk_size': self.chunk_size, 'slabs': self._nslabs,
            'capacity': self._nslabs * self.slab_chunks, 'in_use': self._in_use,
            'free': self._nfree, 'peak_in_use': self._peak, 'acquired': self._acquired,
            'exhausted': self._exhausted,
            'bytes_reserved': self._nslabs * self.slab_chunks * self.chunk_size,
        }

    def __repr__(self):
        return (f'<BufferPool chunk_size={self.chunk_size} in_use={self._in_use}/'
                f'{self._nslabs * self.slab_chunks} max={self.max_slabs * self.slab_chunks}>')


@cython.final
cdef class PooledBuffer:
    """One chunk of a BufferPool; supports the buffer protocol (writable)."""
    cdef:
        char *_ptr
        Py_ssize_t _size
        BufferPool _pool
        Py_ssize_t _exports

    def __init__(self, *args):
        raise TypeError("PooledBuffer objects come from BufferPool.acquire()")

    def __getbuffer__(self, Py_buffer *view, int flags):
        if self._ptr == NULL:
            raise ValueError("buffer was released to its pool")
        PyBuffer_FillInfo(view, self, self._ptr, self._size, 0, flags)
        self._exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self._exports -= 1

    def __len__(self):
        return self._size if self._ptr != NULL else 0

    @property
    def released(self):
        return self._ptr == NULL

    def release(self):
        """Give the chunk back to the pool; refused while a memoryview of it is alive."""
        if self._ptr == NULL:
            return
        if self._exports:
            raise BufferError(f"{self._exports} view(s) of this buffer are still alive")
        self._pool._give(self._ptr)
        self._ptr = NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __dealloc__(self):
        if self._ptr != NULL and self._pool is not None:
            self._pool._give(self._ptr)
            self._ptr = NULL


@cython.final
@cython.no_gc_clear
cdef class _LentBuffer:
    """Received bytes lent to a protocol that takes memoryviews (``data_received_memoryview``):
    the read-only view handed to data_received() is of this object. When the call returns, the
    transport asks whether a view is still alive (a slice kept, a write() queued without a
    copy): if not, the memory goes straight back to the kernel's ring; if so, it is kept (the
    ring gets other memory instead) and given to its pool when the last view goes."""
    cdef:
        char *_ptr            # the bytes lent
        Py_ssize_t _size
        Py_ssize_t _exports
        char *_chunk          # the pool chunk they lie in, once kept (NULL: not ours to free)
        BufferPool _pool

    def __getbuffer__(self, Py_buffer *view, int flags):
        if self._ptr == NULL:
            raise ValueError("the received data was only lent for the data_received() call")
        PyBuffer_FillInfo(view, self, self._ptr, self._size, 1, flags)
        self._exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self._exports -= 1
        if self._exports == 0 and self._chunk != NULL:
            self._pool._give(self._chunk)
            self._chunk = NULL
            self._ptr = NULL

    def __dealloc__(self):
        if self._chunk != NULL and self._pool is not None:
            self._pool._give(self._chunk)
