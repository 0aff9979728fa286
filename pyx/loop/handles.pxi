# Handles (included by loop.pyx; declared in pyx/engine/_loop.pxd): what call_soon / call_later
# return. API-compatible with asyncio.Handle / TimerHandle
# (cancel, cancelled, when, get_context, repr), allocated from a freelist, constructed only by the
# loop (Python cannot instantiate them).

@cython.freelist(256)
cdef class Handle:
    """A callback scheduled on an engine loop (same API as asyncio.Handle)."""

    def __init__(self, *args, **kwargs):
        raise TypeError(f"{type(self).__name__} objects are created by the event loop, not directly")

    @staticmethod
    cdef Handle new(Loop loop, object callback, tuple args, object context):
        cdef Handle h = Handle.__new__(Handle)
        _handle_init(h, loop, callback, args, context)
        return h

    cdef _repr_info(self):
        info = [type(self).__name__]
        if self._cancelled:
            info.append('cancelled')
        if self._callback is not None:
            info.append(_format_callback_source(self._callback, self._args))
        if self._source_traceback:
            frame = self._source_traceback[-1]
            info.append(f'created at {frame[0]}:{frame[1]}')
        return info

    def __repr__(self):
        if self._repr is not None:
            return self._repr
        return '<' + ' '.join(self._repr_info()) + '>'

    def get_context(self):
        return self._context

    def cancel(self):
        _handle_cancel(self)

    def cancelled(self):
        return self._cancelled

    cdef int _run(self) except -1:
        cdef object callback = self._callback
        cdef tuple args = self._args
        cdef object ctx = self._context
        cdef Py_ssize_t n
        try:
            PyContext_Enter(ctx)
            try:
                n = len(args)
                if n == 0:
                    callback()
                elif n == 1:
                    callback(args[0])
                else:
                    callback(*args)
            finally:
                PyContext_Exit(ctx)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            context = {
                'message': f'Exception in callback {_format_callback_source(callback, args)}',
                'exception': exc,
                'handle': self,
            }
            if self._source_traceback:
                context['source_traceback'] = self._source_traceback
            self._loop.call_exception_handler(context)
        return 0


cdef inline int _handle_cancel(Handle h) except -1:
    """Handle.cancel(): the callback will not run; its references are dropped at once."""
    if not h._cancelled:
        h._cancelled = True
        if h._loop is not None and h._loop._debug:
            # keep a useful repr after the references are dropped
            h._repr = repr(h)
        h._callback = None
        h._args = None
    return 0


cdef inline void _handle_init(Handle h, Loop loop, object callback, tuple args,
                              object context) noexcept:
    h._loop = loop
    h._callback = callback
    h._args = args
    h._context = context


cdef inline void _gc_retrack(PyObject *p) noexcept:
    # a TimerHandle leaving the loop's timer heap, and the context copy made for it (see
    # Loop._heap_push and Loop._timer_at): tracked again by the cyclic garbage collector
    cdef PyObject *ctx = <PyObject*>(<Handle>p)._context
    if not PyObject_GC_IsTracked(p):
        PyObject_GC_Track(<void*>p)
    if ctx != <PyObject*>None and not PyObject_GC_IsTracked(ctx):
        PyObject_GC_Track(<void*>ctx)


cdef class TimerHandle(Handle):
    """A timed callback (same API as asyncio.TimerHandle)."""

    @staticmethod
    cdef TimerHandle new_timer(Loop loop, double when, object callback, tuple args, object context):
        cdef TimerHandle h = TimerHandle.__new__(TimerHandle)
        _handle_init(h, loop, callback, args, context)
        h._when = when
        return h

    cdef _repr_info(self):
        info = Handle._repr_info(self)
        pos = 2 if self._cancelled else 1
        info.insert(pos, f'when={self._when}')
        return info

    def __hash__(self):
        return hash(self._when)

    def __lt__(self, other):
        if isinstance(other, TimerHandle):
            return self._when < (<TimerHandle>other)._when
        return NotImplemented

    def __le__(self, other):
        if isinstance(other, TimerHandle):
            return self._when < (<TimerHandle>other)._when or self.__eq__(other)
        return NotImplemented

    def __gt__(self, other):
        if isinstance(other, TimerHandle):
            return self._when > (<TimerHandle>other)._when
        return NotImplemented

    def __ge__(self, other):
        if isinstance(other, TimerHandle):
            return self._when > (<TimerHandle>other)._when or self.__eq__(other)
        return NotImplemented

    def __eq__(self, other):
        if isinstance(other, TimerHandle):
            return (self._when == (<TimerHandle>other)._when and
                    self._callback == (<TimerHandle>other)._callback and
                    self._args == (<TimerHandle>other)._args and
                    self._cancelled == (<TimerHandle>other)._cancelled)
        return NotImplemented

    def when(self):
        """The absolute time (in loop.time() terms) the callback is scheduled for."""
        return self._when

    def cancel(self):
        if not self._cancelled:
            _handle_cancel(self)
            if self._loop is not None:
                self._loop._timer_cancel(self)   # counts it; the heap drops it later
