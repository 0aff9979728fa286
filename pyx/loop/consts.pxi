# Tunables and internal enums of engine._loop, in one place (included by loop.pyx).
cdef enum:
    READY_INITIAL_CAPACITY = 256      # ready-queue ring slots (power of two)
    HEAP_INITIAL_CAPACITY = 256       # timer heap slots
    HEAP_COMPACT_MIN = 100            # cancelled timers stay in the heap until popped, or until
                                      # there are this many and they are over half of it (asyncio:
                                      # _MIN_SCHEDULED_TIMER_HANDLES, ..._FRACTION = 0.5)
    FD_TABLE_INITIAL = 256            # fd table slots (grows to the highest fd seen)
    POLL_EVENTS_INITIAL = 256         # poller event array (doubles when a wait fills it)
    SIGNAL_READ_CHUNK = 64            # bytes read from the signal wake-up pipe per read()

# Watcher kinds: indexes into the dispatch table.
cdef enum:
    KIND_NONE = 0
    KIND_HANDLE = 1        # asyncio add_reader/add_writer handle: queued on the ready queue
    KIND_IO = 2            # public IO watcher: its _fire() runs at once
    KIND_WAKEUP = 3        # the loop's own cross-thread wake-up fd
    KIND_SIGNALS = 4       # the signal wake-up pipe (signal.set_wakeup_fd)
    KIND_SOCKOP = 5        # a pending loop.sock_*() operation: retried at once
    KIND_TRANSPORT = 6     # a stream transport: read/write handlers called at once
    KIND_ACCEPT = 7        # a server's accept handle on a ring's accept request (io_uring)
    KIND_COUNT = 8

cdef double MAXIMUM_SELECT_TIMEOUT = 24 * 3600.0   # as asyncio: never block longer than a day
cdef double BUSY_POLL_DEFAULT_US = 100.0   # the longest busy-poll window by default (microseconds)
cdef double BUSY_POLL_START = 10e-6        # the first window once polling pays (seconds)
cdef double POLL_GAP_DEFAULT_US = 250.0    # a busy loop polls at least this often (microseconds)
# io_uring receive buffers (ENGINE_IO_URING_BUFS / ENGINE_IO_URING_BUF_SIZE): 256 x 16 KiB = 4 MiB
# per loop; see docs/platforms.md for the measurements behind them
cdef Py_ssize_t RING_BUFS_DEFAULT = 256
cdef Py_ssize_t RING_BUF_SIZE_DEFAULT = 16 * 1024
# slabs of 16 buffers the ring's pool may add for buffers kept by the views a protocol with
# data_received_memoryview = True holds on to (64 x 16: 1,024 buffers; past that, copies)
cdef Py_ssize_t RING_LEND_SLABS = 64
