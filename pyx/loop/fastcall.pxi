# Loop.call_soon, call_later and call_at as plain METH_FASTCALL|METH_KEYWORDS C methods (included
# at the end of loop.pyx, once the Loop type exists).
#
# asyncio's C Future and Task schedule every wake-up with loop.call_soon(cb, context=ctx)
# (PyObject_VectorcallMethod with the keyword name "context"): an asyncpg query makes about
# nine such calls, an HTTP request under uvicorn several; every timeout arms a call_later. Through
# Cython's def wrapper each one went through the CyFunction vectorcall, a generic keyword parser
# and an argument-tuple slice (perf/callgrind_loops.py --annotate: ~550 instructions per call,
# half of them the wrapper; engine bench loop-callgrind shows the same for call_later).
# Here the vectorcall arguments are read directly: "context" matched by identity once seen, the
# other parameters (callback, and delay/when), which asyncio also accepts as keywords, by value;
# the empty tuple for no extra arguments.
# Each method replaces the def one in the type's dict; the def stays the documented signature
# and the behaviour (checks, errors, debug mode) is the same function (_call_soon, _timer_at).

from cpython.object cimport PyMethodDef, PyTypeObject, PyCFunction
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM, PyTuple_GET_SIZE, PyTuple_GET_ITEM

cdef extern from "Python.h":
    object PyDescr_NewMethod(PyTypeObject *tp, PyMethodDef *meth)
    void PyType_Modified(PyTypeObject *tp)
    int METH_FASTCALL
    int METH_KEYWORDS


cdef PyObject *_kw_context = NULL   # the last "context" keyword object seen (a reference held)

cdef tuple _SOON_PARAMS = ('callback',)
cdef tuple _LATER_PARAMS = ('delay', 'callback')
cdef tuple _AT_PARAMS = ('when', 'callback')


cdef int _sched_args(str meth, tuple params, PyObject **args, Py_ssize_t nargs,
                     PyObject *kwnames, PyObject **out) except -1:
    """Parse ``meth(*params, *args, context=None)``: out[i] = params[i] (borrowed), out[k] (k =
    len(params)) = the context or NULL. Extra positional arguments are args[k:nargs]."""
    global _kw_context
    cdef Py_ssize_t k = PyTuple_GET_SIZE(params), i, j
    cdef PyObject *name
    for j in range(k + 1):
        out[j] = args[j] if j < nargs and j < k else NULL
    if kwnames != NULL:
        for i in range(PyTuple_GET_SIZE(<object>kwnames)):
            name = PyTuple_GET_ITEM(<object>kwnames, i)
            if name == _kw_context:
                # Python 3.11's C Future passes the same (not interned) "context" string on
                # every call: one pointer comparison once it has been seen
                out[k] = args[nargs + i]
                continue
            if <object>name == 'context':
                Py_INCREF(<object>name)
                Py_XDECREF(_kw_context)
                _kw_context = name
                out[k] = args[nargs + i]
                continue
            for j in range(k):
                if <object>name == <object>PyTuple_GET_ITEM(params, j):
                    if out[j] != NULL:
                        raise TypeError(f"{meth}() got multiple values for argument "
                                        f"{<object>name!r}")
                    out[j] = args[nargs + i]
                    break
            else:
                raise TypeError(f"{meth}() got an unexpected keyword argument {<object>name!r}")
    for j in range(k):
        if out[j] == NULL:
            raise TypeError(f"{meth}() missing 1 required positional argument: {params[j]!r}")
    return 0


cdef inline int _sched_parse(str meth, tuple params, Py_ssize_t k, PyObject **args,
                             Py_ssize_t nargs, PyObject *kwnames, PyObject **out) except -1:
    """_sched_args (k = len(params)), with the two common calls inline: all parameters given
    positionally, and no keyword or only the (already seen) "context" one."""
    cdef Py_ssize_t j
    if nargs >= k:
        if kwnames == NULL:
            out[k] = NULL
        elif (PyTuple_GET_SIZE(<object>kwnames) == 1
              and PyTuple_GET_ITEM(<object>kwnames, 0) == _kw_context):
            out[k] = args[nargs]
        else:
            return _sched_args(meth, params, args, nargs, kwnames, out)
        for j in range(k):
            out[j] = args[j]
        return 0
    return _sched_args(meth, params, args, nargs, kwnames, out)


cdef inline tuple _rest_args(PyObject **args, Py_ssize_t nargs, Py_ssize_t start):
    """args[start:nargs] as a tuple (the shared empty tuple when there are none)."""
    cdef tuple rest
    cdef Py_ssize_t i
    if nargs <= start:
        return ()
    rest = PyTuple_New(nargs - start)
    for i in range(start, nargs):
        Py_INCREF(<object>args[i])
        PyTuple_SET_ITEM(rest, i - start, <object>args[i])
    return rest


cdef inline object _opt(PyObject *p):
    return None if p == NULL else <object>p


cdef object _call_soon_fastcall(object self, PyObject **args, Py_ssize_t nargs,
                                PyObject *kwnames):
    cdef PyObject *v[2]
    if nargs == 1 and kwnames == NULL:          # call_soon(cb): a chain of callbacks
        return _call_soon(<Loop>self, <object>args[0], (), None)
    _sched_parse('call_soon', _SOON_PARAMS, 1, args, nargs, kwnames, v)
    return _call_soon(<Loop>self, <object>v[0], _rest_args(args, nargs, 1), _opt(v[1]))


cdef object _call_later_fastcall(object self, PyObject **args, Py_ssize_t nargs,
                                 PyObject *kwnames):
    cdef PyObject *v[3]
    cdef Loop loop = <Loop>self
    _sched_parse('call_later', _LATER_PARAMS, 2, args, nargs, kwnames, v)
    if <object>v[0] is None:
        raise TypeError('delay must not be None')
    if loop._closed:
        raise RuntimeError('Event loop is closed')
    return loop._timer_at(eng_monotonic() + <double><object>v[0], <object>v[1],
                          _rest_args(args, nargs, 2), _opt(v[2]), 'call_later')


cdef object _call_at_fastcall(object self, PyObject **args, Py_ssize_t nargs,
                              PyObject *kwnames):
    cdef PyObject *v[3]
    cdef Loop loop = <Loop>self
    _sched_parse('call_at', _AT_PARAMS, 2, args, nargs, kwnames, v)
    if <object>v[0] is None:
        raise TypeError("when cannot be None")
    if loop._closed:
        raise RuntimeError('Event loop is closed')
    return loop._timer_at(<double><object>v[0], <object>v[1], _rest_args(args, nargs, 2),
                          _opt(v[2]), 'call_at')


cdef PyMethodDef _CALL_SOON_DEF
cdef PyMethodDef _CALL_LATER_DEF
cdef PyMethodDef _CALL_AT_DEF


cdef _install_fastcall(PyMethodDef *d, const char *name, void *fn, const char *doc):
    d.ml_name = name
    d.ml_meth = <PyCFunction>fn
    d.ml_flags = METH_FASTCALL | METH_KEYWORDS
    d.ml_doc = doc
    (<dict>(<PyTypeObject *>Loop).tp_dict)[name.decode()] = PyDescr_NewMethod(
        <PyTypeObject *>Loop, d)


_install_fastcall(&_CALL_SOON_DEF, "call_soon", <void *>_call_soon_fastcall,
                  "call_soon($self, callback, *args, context=None)\n--\n\n"
                  "Arrange for callback(*args) to be called soon, in FIFO order.")
_install_fastcall(&_CALL_LATER_DEF, "call_later", <void *>_call_later_fastcall,
                  "call_later($self, delay, callback, *args, context=None)\n--\n\n"
                  "Arrange for callback(*args) to be called after `delay` seconds.")
_install_fastcall(&_CALL_AT_DEF, "call_at", <void *>_call_at_fastcall,
                  "call_at($self, when, callback, *args, context=None)\n--\n\n"
                  "Arrange for callback(*args) to be called at loop.time() == when.")
PyType_Modified(<PyTypeObject *>Loop)
