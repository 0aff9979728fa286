# CPython C-API entry points Cython does not declare for us.
from cpython.object cimport PyObject

cdef extern from "Python.h":
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1
    object PyContext_CopyCurrent()
    int PyErr_CheckSignals() except -1
    unsigned long PyThread_get_thread_ident() nogil
    int PyObject_GC_IsTracked(PyObject *op)
    void PyObject_GC_Track(void *op)
    void PyObject_GC_UnTrack(void *op)
    object PyObject_Vectorcall(object callable, PyObject **args, size_t nargsf, PyObject *kwnames)
