# Public libev-style watchers (included by loop.pyx; declared in pyx/engine/_loop.pxd). Each one is tied to a loop, started with start() and stopped with
# stop(); its callback is called as callback(watcher, revents). From Cython, subclass a watcher and
# override `cdef int _fire(self, int revents) except -1` to be called at C speed without the Python
# callback.

READ = ENG_EV_READ
WRITE = ENG_EV_WRITE
ERROR = ENG_EV_ERROR
TIMEOUT = 0x100
IDLE = 0x200
SIGNAL = 0x400
ASYNC = 0x800


cdef class Watcher:
    """Base class of all watchers. Not instantiated directly."""

    def __cinit__(self, *args, **kwargs):
        self._kind = KIND_NONE

    cdef int _check_loop(self) except -1:
        if self.loop is None:
            raise RuntimeError(f"{type(self).__name__} was not initialised with a loop")
        self.loop._check_closed()
        return 0

    cdef int _fire(self, int revents) except -1:
        cb = self.callback
        if cb is not None:
            cb(self, revents)
        return 0

    @property
    def active(self):
        """True between start() and stop()."""
        return self._active

    def __repr__(self):
        return f"<{type(self).__name__} {'active' if self._active else 'inactive'} callback={self.callback!r}>"

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


cdef int _init_watcher(Watcher w, Loop loop, object callback, object data) except -1:
    if not isinstance(loop, Loop):
        raise TypeError(f"loop must be an engine Loop, not {type(loop).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {callback!r}")
    w.loop = loop
    w.callback = callback
    w.data = data
    return 0


cdef bint _join(Watcher w, list active) except -1:
    """start() of a watcher the loop keeps in a list of active ones (Idle, Async): False if it
    was active already."""
    w._check_loop()
    if w._active:
        return False
    w._active = True
    active.append(w)
    return True


cdef bint _leave(Watcher w, list active) except -1:
    """stop() of such a watcher: False if it was not active."""
    if not w._active:
        return False
    w._active = False
    _discard(active, w)
    return True


cdef int _discard(list lst, object item) except -1:
    try:
        lst.remove(item)
    except ValueError:
        pass
    return 0


cdef class IO(Watcher):
    """Watch a file descriptor for READ and/or WRITE readiness.

    IO(loop, fd, events, callback, *, edge=False, data=None)

    Level-triggered by default: the callback runs on every loop iteration while the fd is ready.
    With edge=True (EPOLLET / EV_CLEAR) it runs once per readiness change, and the callback must
    read or write until EAGAIN or it will not be woken again.
    """

    def __init__(self, Loop loop not None, fd, int events, callback, *, bint edge=False, data=None):
        _init_watcher(self, loop, callback, data)
        if events & ~(ENG_EV_READ | ENG_EV_WRITE) or not events:
            raise ValueError(f"events must be a non-empty combination of READ and WRITE, got {events!r}")
        self._kind = KIND_IO
        self.fd = _fileobj_to_fd(fd)
        self.events = events
        self.edge = edge

    def start(self):
        self._check_loop()
        if self._active:
            return
        cdef FdSlot *slot
        self.loop._fd_ensure(self.fd)
        slot = &self.loop._fds[self.fd]
        if (self.events & ENG_EV_READ) and slot.reader != NULL:
            raise RuntimeError(f"fd {self.fd} is already watched for reading by {<object>slot.reader!r}")
        if (self.events & ENG_EV_WRITE) and slot.writer != NULL:
            raise RuntimeError(f"fd {self.fd} is already watched for writing by {<object>slot.writer!r}")
        if self.events & ENG_EV_READ:
            self.loop._fd_set(self.fd, ENG_EV_READ, self, KIND_IO)
        if self.events & ENG_EV_WRITE:
            try:
                self.loop._fd_set(self.fd, ENG_EV_WRITE, self, KIND_IO)
            except BaseException:
                if self.events & ENG_EV_READ:
                    self.loop._fd_clear(self.fd, ENG_EV_READ)
                raise
        self._active = True

    def stop(self):
        if not self._active:
            return
        self._active = False
        if self.loop._closed:
            return
        cdef FdSlot *slot
        if self.fd < self.loop._fds_cap:
            slot = &self.loop._fds[self.fd]
            if slot.reader == <PyObject*>self:
                self.loop._fd_clear(self.fd, ENG_EV_READ)
            if slot.writer == <PyObject*>self:
                self.loop._fd_clear(self.fd, ENG_EV_WRITE)

    def set(self, fd=None, events=None):
        """Change the fd and/or events; restarts the watcher if it was active."""
        was_active = self._active
        self.stop()
        if fd is not None:
            self.fd = _fileobj_to_fd(fd)
        if events is not None:
            if events & ~(ENG_EV_READ | ENG_EV_WRITE) or not events:
                raise ValueError(f"events must be a non-empty combination of READ and WRITE, got {events!r}")
            self.events = events
        if was_active:
            self.start()

    def __repr__(self):
        ev = '|'.join(n for n, b in (('READ', ENG_EV_READ), ('WRITE', ENG_EV_WRITE)) if self.events & b)
        return (f"<IO fd={self.fd} events={ev}{' edge' if self.edge else ''} "
                f"{'active' if self._active else 'inactive'}>")


cdef class Timer(Watcher):
    """Call back after `after` seconds, then every `repeat` seconds if repeat > 0.

    Timer(loop, after, repeat, callback, *, data=None)

    Repeats are scheduled drift-free (next = previous deadline + repeat), never in the past.
    """

    def __init__(self, Loop loop not None, double after, double repeat, callback, *, data=None):
        _init_watcher(self, loop, callback, data)
        if after < 0 or repeat < 0:
            raise ValueError("after and repeat must be >= 0")
        self._after = after
        self._repeat = repeat

    cdef int _schedule(self, double when) except -1:
        self._timer = self.loop.call_at(when, self._expire)
        return 0

    def _expire(self):
        cdef double now, nxt
        self._timer = None
        if not self._active:
            return
        if self._repeat > 0:
            now = self.loop.time()
            # drift-free: step from the deadline that just fired, but never schedule in the past
            nxt = self._deadline + self._repeat
            if nxt < now:
                nxt = now + self._repeat
            self._deadline = nxt
            self._schedule(nxt)
        else:
            self._active = False
        self._fire(TIMEOUT)

    def start(self):
        self._check_loop()
        if self._active:
            return
        self._active = True
        when = self.loop.time() + self._after
        self._deadline = when
        self._schedule(when)

    def stop(self):
        if not self._active:
            return
        self._active = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def again(self):
        """libev's ev_timer_again: restart with the repeat value (stop if repeat is 0)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._repeat > 0:
            self._check_loop()
            self._active = True
            when = self.loop.time() + self._repeat
            self._deadline = when
            self._schedule(when)
        else:
            self._active = False

    @property
    def after(self):
        return self._after

    @property
    def repeat(self):
        return self._repeat

    @repeat.setter
    def repeat(self, double value):
        if value < 0:
            raise ValueError("repeat must be >= 0")
        self._repeat = value

    @property
    def remaining(self):
        """Seconds until the timer fires, or None when inactive."""
        if not self._active or self._timer is None:
            return None
        return max(0.0, self._timer._when - self.loop.time())


cdef class Idle(Watcher):
    """Call back when the loop is about to block: nothing is ready and no timer is due.

    Idle(loop, callback, *, data=None)

    It runs once each time the loop goes idle (again after any other work has been done), so an
    active Idle watcher never keeps the CPU busy on an otherwise idle loop.
    """

    def __init__(self, Loop loop not None, callback, *, data=None):
        _init_watcher(self, loop, callback, data)

    def start(self):
        if _join(self, self.loop._idles):
            self.loop._idle_pending = True

    def stop(self):
        _leave(self, self.loop._idles)


cdef class TimedIdle(Idle):
    """Call back when the loop goes idle, and at least every `interval` seconds while it is busy.

    TimedIdle(loop, interval, callback, *, data=None)

    For housekeeping that should happen in quiet moments but must not starve under load. While the
    loop is blocked with nothing to do the watcher does not wake it up (it already ran when the loop
    went idle).
    """

    def __init__(self, Loop loop not None, double interval, callback, *, data=None):
        _init_watcher(self, loop, callback, data)
        if not interval > 0:
            raise ValueError("interval must be > 0")
        self._interval = interval

    @property
    def interval(self):
        return self._interval

    @property
    def last_run(self):
        """loop.time() of the last call back (or of start())."""
        return self._last_run

    def start(self):
        self._check_loop()
        if self._active:
            return
        self._last_run = self.loop.time()
        Idle.start(self)
        self.loop._timed_idles.append(self)
        self.loop._recompute_timed_deadline()

    def stop(self):
        if not self._active:
            return
        Idle.stop(self)
        _discard(self.loop._timed_idles, self)
        self.loop._recompute_timed_deadline()

    cdef int _fire(self, int revents) except -1:
        self._last_run = eng_monotonic()
        return Idle._fire(self, revents)


cdef class Signal(Watcher):
    """Call back (in the loop's thread) when the process receives `signum`.

    Signal(loop, signum, callback, *, data=None)

    Installs a Python-level handler for the signal while any watcher or add_signal_handler() uses
    it, and restores the default when the last one stops. Main thread only, as signal.signal().
    """

    def __init__(self, Loop loop not None, int signum, callback, *, data=None):
        _init_watcher(self, loop, callback, data)
        _check_signal(signum)
        self.signum = signum

    def start(self):
        self._check_loop()
        if self._active:
            return
        self.loop._signal_watchers.setdefault(self.signum, []).append(self)
        try:
            self.loop._signal_install(self.signum)
        except BaseException:
            self.loop._signal_watchers[self.signum].remove(self)
            if not self.loop._signal_watchers[self.signum]:
                del self.loop._signal_watchers[self.signum]
            raise
        self._active = True

    def stop(self):
        if not self._active:
            return
        self._active = False
        lst = self.loop._signal_watchers.get(self.signum)
        if lst is not None:
            _discard(lst, self)
            if not lst:
                del self.loop._signal_watchers[self.signum]
        if not self.loop._closed:
            self.loop._signal_uninstall_if_unused(self.signum)


cdef class Async(Watcher):
    """A thread-safe wake-up: send() from any thread makes the callback run in the loop's thread.

    Async(loop, callback, *, data=None)

    Several send() calls before the loop gets to it coalesce into one call back.
    """

    def __init__(self, Loop loop not None, callback, *, data=None):
        _init_watcher(self, loop, callback, data)

    def start(self):
        _join(self, self.loop._asyncs)

    def stop(self):
        _leave(self, self.loop._asyncs)

    def send(self):
        """Thread-safe: ask the loop to run the callback soon."""
        cdef Loop loop = self.loop
        if loop is None or loop._closed:
            raise RuntimeError('Event loop is closed')
        self._pending = True
        loop._async_pending = True
        loop._wakeup()

    @property
    def pending(self):
        return self._pending
