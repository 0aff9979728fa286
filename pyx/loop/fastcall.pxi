# Loop.call_soon as a plain METH_FASTCALL|METH_KEYWORDS C method (included at the end of
# loop.pyx, once the Loop type exists).
#
# asyncio's C Future and Task schedule every wake-up with loop.call_soon(cb, context=ctx)
# (PyObject_VectorcallMethod with the keyword name "context"): an asyncpg query makes about
# nine such calls, an HTTP request under uvicorn several. Through Cython's def wrapper each one
# went through the CyFunction vectorcall, a generic keyword parser and an argument-tuple slice
# (perf/callgrind_loops.py --annotate: ~550 instructions per call, half of them the wrapper).
# Here the vectorcall arguments are read directly: "context" (and "callback", which asyncio
# also accepts as a keyword) matched by identity once seen, the empty tuple for no extra
# arguments.
# The method replaces the def one in the type's dict; the def stays the documented signature
# and the behaviour (checks, errors, debug mode) is the same function, _call_soon.

from cpython.object cimport PyMethodDef, PyTypeObject, PyCFunction
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM, PyTuple_GET_SIZE, PyTuple_GET_ITEM

cdef extern from "Python.h":
    object PyDescr_NewMethod(PyTypeObject *tp, PyMethodDef *meth)
    void PyType_Modified(PyTypeObject *tp)
    int METH_FASTCALL
    int METH_KEYWORDS


cdef PyObject *_kw_context = NULL   # the last "context" keyword object seen (a reference held)


cdef object _call_soon_fastcall(object self, PyObject **args, Py_ssize_t nargs,
                                PyObject *kwnames):
    global _kw_context
    cdef object callback = None, context = None
    cdef bint have_callback = nargs > 0
    cdef tuple rest
    cdef Py_ssize_t i
    cdef PyObject *name
    if kwnames != NULL:
        for i in range(PyTuple_GET_SIZE(<object>kwnames)):
            name = PyTuple_GET_ITEM(<object>kwnames, i)
            if name == _kw_context:
                # Python 3.11's C Future passes the same (not interned) "context" string on
                # every call: one pointer comparison once it has been seen
                context = <object>args[nargs + i]
            elif <object>name == 'context':
                Py_INCREF(<object>name)
                Py_XDECREF(_kw_context)
                _kw_context = name
                context = <object>args[nargs + i]
            elif <object>name == 'callback':
                if have_callback:
                    raise TypeError("call_soon() got multiple values for argument 'callback'")
                callback = <object>args[nargs + i]
                have_callback = True
            else:
                raise TypeError(f"call_soon() got an unexpected keyword argument {<object>name!r}")
    if nargs > 0:
        callback = <object>args[0]
    elif not have_callback:
        raise TypeError("call_soon() missing 1 required positional argument: 'callback'")
    if nargs <= 1:
        rest = ()
    else:
        rest = PyTuple_New(nargs - 1)
        for i in range(1, nargs):
            Py_INCREF(<object>args[i])
            PyTuple_SET_ITEM(rest, i - 1, <object>args[i])
    return _call_soon(<Loop>self, callback, rest, context)


cdef PyMethodDef _CALL_SOON_DEF
_CALL_SOON_DEF.ml_name = "call_soon"
_CALL_SOON_DEF.ml_meth = <PyCFunction><void *>_call_soon_fastcall
_CALL_SOON_DEF.ml_flags = METH_FASTCALL | METH_KEYWORDS
_CALL_SOON_DEF.ml_doc = ("call_soon($self, callback, *args, context=None)\n--\n\n"
                         "Arrange for callback(*args) to be called soon, in FIFO order.")
(<dict>(<PyTypeObject *>Loop).tp_dict)["call_soon"] = PyDescr_NewMethod(
    <PyTypeObject *>Loop, &_CALL_SOON_DEF)
PyType_Modified(<PyTypeObject *>Loop)
