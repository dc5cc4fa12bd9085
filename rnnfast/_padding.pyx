# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The Python-object loops of ``rnnfast.utils.pad_sequences``: measuring ragged sequences and
copying lists/tuples of Python numbers into the padded 2-D array.

``fill`` handles the common case (rows that are lists or tuples of Python ``int``, or of
``int`` / ``float`` for float outputs, whose values the output dtype holds exactly as NumPy
would convert them) and hands every other row back to the caller, which converts it with
NumPy's rules; so the result is the same as the pure-Python implementation for every input.
"""
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsDouble, PyLong_AsLongLong
from cpython.object cimport PyObject
from libc.float cimport FLT_MAX
from libc.stdint cimport int32_t, int64_t

import numpy as np


cdef extern from "Python.h":
    PyObject* PySequence_Fast_GET_ITEM(object o, Py_ssize_t i)


ctypedef fused number_t:
    int32_t
    int64_t
    float
    double


def measure(sequences):
    """``(lengths, sample_shape)``: ``len()`` of every sequence (int64 array) and the shape
    after the first axis of the first non-empty one (Keras' rule for the sample shape)."""
    cdef Py_ssize_t count = len(sequences)
    lengths = np.zeros(count, np.int64)
    cdef int64_t[::1] out = lengths
    cdef Py_ssize_t i = 0
    sample_shape = ()
    cdef bint found = False
    for s in sequences:
        if i >= count:
            raise ValueError(f"sequences: iterating gave more than len(sequences) = {count} items")
        try:
            n = len(s)
        except TypeError as exc:
            raise ValueError(f"`sequences` must be a list of iterables. Found non-iterable: "
                             f"{s}") from exc
        out[i] = n
        i += 1
        if not found and n:
            sample_shape = np.asarray(s).shape[1:]
            found = True
    if i != count:
        raise ValueError(f"sequences: iterating gave {i} items, len(sequences) = {count}")
    return lengths, sample_shape


cdef bint _copy_row(number_t[:, ::1] out, Py_ssize_t row, object seq, Py_ssize_t src,
                    Py_ssize_t dst, Py_ssize_t take, long long lo, long long hi) except -1:
    """Copies seq[src:src+take] to out[row, dst:dst+take]; False (row left to the caller)
    at the first item this fast path does not convert exactly as NumPy would."""
    cdef Py_ssize_t j
    cdef long long iv
    cdef double dv
    cdef object item
    for j in range(take):
        item = <object>PySequence_Fast_GET_ITEM(seq, src + j)
        if number_t is float or number_t is double:
            if type(item) is float:
                dv = PyFloat_AS_DOUBLE(item)
            elif type(item) is int:
                try:
                    dv = PyLong_AsDouble(item)
                except OverflowError:
                    return False
            else:
                return False
            if number_t is float and (dv > FLT_MAX or dv < -FLT_MAX) and dv - dv == 0:
                return False  # finite but out of float32's range: NumPy warns, let it
            out[row, dst + j] = <number_t>dv
        else:
            if type(item) is not int:
                return False
            try:
                iv = PyLong_AsLongLong(item)
            except OverflowError:
                return False
            if iv < lo or iv > hi:
                return False
            out[row, dst + j] = <number_t>iv
    return True


def fill(number_t[:, ::1] out, sequences, const int64_t[::1] lengths, bint pre_padding,
         bint pre_truncating, long long lo, long long hi):
    """Writes each non-empty list/tuple row of ``sequences`` into ``out`` (already filled with
    the padding value), truncated to ``out.shape[1]`` (> 0) and placed before (``pre_padding``)
    or after the padding. Integer outputs take values in ``lo..hi``. Returns the
    ``(index, sequence)`` pairs of the rows left to the caller."""
    cdef Py_ssize_t maxlen = out.shape[1]
    cdef Py_ssize_t row = 0, n, take, src, dst
    deferred = []
    for s in sequences:
        if row >= lengths.shape[0]:
            raise ValueError("sequences: more items than measured")
        n = lengths[row]
        if n > 0:
            if type(s) is list or type(s) is tuple:
                if len(s) != n:
                    raise ValueError(f"sequences: item {row} changed length while padding")
                take = n if n < maxlen else maxlen
                src = n - take if pre_truncating else 0
                dst = maxlen - take if pre_padding else 0
                if not _copy_row(out, row, s, src, dst, take, lo, hi):
                    deferred.append((row, s))
            else:
                deferred.append((row, s))
        row += 1
    return deferred
