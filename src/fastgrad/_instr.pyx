"""Executing one tensor instruction: the kernel dispatch of the array tape.

``forward_one``/``backward_one`` switch on an instruction's opcode and dtype
and call the kernels of _kernels.pyx and _blas.pyx.  The array tape
(_atape.pyx) loops over its program with them, and ``eager_forward`` runs a
single instruction for an eager tensor op, so eager values and replayed
values come from the same code.
"""

cimport cython
from cython cimport floating
cimport numpy as cnp
from libc.stdint cimport int64_t
from libc.string cimport memcpy

import numpy as np

from fastgrad._kernels cimport (
    binary_forward, binary_backward, unary_forward, unary_backward,
    sum_forward, sum_backward, max_forward, max_backward, gather, scatter_add,
    log_softmax_forward, log_softmax_backward, cross_entropy_forward,
    cross_entropy_backward, cast_forward_f32_f64, cast_backward_f32_f64,
    cast_forward_f64_f32, cast_backward_f64_f32,
)
from fastgrad._blas cimport gemm

include "_opcodes.pxi"

cnp.import_array()

__all__ = ["eager_forward", "DTYPE_CODES"]

DTYPE_CODES = {np.dtype(np.float64): F64, np.dtype(np.float32): F32,
               np.dtype(np.int64): I64}


# -- one instruction ---------------------------------------------------------------

cdef Py_ssize_t _forward_typed(Instr* ins, const Py_ssize_t* meta, char** vp,
                               floating* dummy) noexcept nogil:
    """Run one instruction forward.  Returns -1, or a bad row (cross-entropy)."""
    cdef int op = ins.op
    cdef floating* out = <floating*>vp[ins.out]
    cdef floating* a = <floating*>vp[ins.a]
    cdef floating* b = <floating*>vp[ins.b] if ins.b >= 0 else NULL
    cdef const Py_ssize_t* m = meta + ins.meta
    cdef int nd
    cdef Py_ssize_t batch, i
    if op == OP_ADD or op == OP_SUB or op == OP_MUL or op == OP_TRUEDIV or op == OP_POW:
        nd = <int>m[0]
        binary_forward(op, nd, m + 1, a, m + 1 + nd, b, m + 1 + 2 * nd, out, ins.c)
    elif (op == OP_RELU or op == OP_TANH or op == OP_EXP or op == OP_LOG
          or op == OP_SIGMOID or op == OP_NEG or op == OP_ABS or op == OP_POW_CONST):
        unary_forward(op, m[0], a, out, ins.c)
    elif op == OP_MATMUL:
        # m: batch, rows, cols, inner, a batch stride, b batch stride
        batch = m[0]
        for i in range(batch):
            gemm(False, False, <int>m[1], <int>m[2], <int>m[3], <floating>1,
                 a + i * m[4], <int>m[3], b + i * m[5], <int>m[2],
                 <floating>0, out + i * m[1] * m[2], <int>m[2])
    elif op == OP_SUM:
        nd = <int>m[0]
        sum_forward(nd, m + 1, a, out, m + 1 + nd, m[1 + 2 * nd])
    elif op == OP_MAX:
        nd = <int>m[0]
        max_forward(nd, m + 1, a, out, m + 1 + nd, m[1 + 2 * nd])
    elif op == OP_RESHAPE:
        if m[0]:
            memcpy(out, a, m[0] * sizeof(floating))
    elif op == OP_TRANSPOSE or op == OP_GETITEM:
        nd = <int>m[0]
        gather(nd, m + 1, a, m[1 + 2 * nd], m + 1 + nd, out)
    elif op == OP_LOG_SOFTMAX:
        log_softmax_forward(m[0], m[1], a, out)
    elif op == OP_CROSS_ENTROPY:
        return cross_entropy_forward(m[0], m[1], a, <int64_t*>vp[ins.b],
                                     <floating*>vp[ins.scratch], out, <int>m[2])
    return -1


cdef void _backward_typed(Instr* ins, const Py_ssize_t* meta, char** vp,
                          char** gp, floating* dummy) noexcept nogil:
    cdef int op = ins.op
    cdef floating* out = <floating*>vp[ins.out]
    cdef floating* gout = <floating*>gp[ins.out]
    cdef floating* a = <floating*>vp[ins.a]
    cdef floating* ga = <floating*>gp[ins.a]
    cdef floating* b = NULL
    cdef floating* gb = NULL
    cdef const Py_ssize_t* m = meta + ins.meta
    cdef int nd
    cdef Py_ssize_t batch, i
    if ins.b >= 0:
        b = <floating*>vp[ins.b]
        gb = <floating*>gp[ins.b]
    if gout == NULL or (ga == NULL and gb == NULL):
        return
    if op == OP_ADD or op == OP_SUB or op == OP_MUL or op == OP_TRUEDIV or op == OP_POW:
        nd = <int>m[0]
        binary_backward(op, nd, m + 1, a, m + 1 + nd, b, m + 1 + 2 * nd,
                        out, gout, ga, gb, ins.c)
    elif (op == OP_RELU or op == OP_TANH or op == OP_EXP or op == OP_LOG
          or op == OP_SIGMOID or op == OP_NEG or op == OP_ABS or op == OP_POW_CONST):
        unary_backward(op, m[0], a, out, gout, ga, ins.c)
    elif op == OP_MATMUL:
        batch = m[0]
        for i in range(batch):
            # beta 0 where this product is the gradient's first writer
            # (lowering then skips zeroing it), else accumulate.
            if ga != NULL:      # dA += dY @ Bᵀ   (rows x inner)
                gemm(False, True, <int>m[1], <int>m[3], <int>m[2], <floating>1,
                     gout + i * m[1] * m[2], <int>m[2], b + i * m[5], <int>m[2],
                     <floating>(0 if ins.flags & OVERWRITE_A else 1),
                     ga + i * m[4], <int>m[3])
            if gb != NULL:      # dB += Aᵀ @ dY   (inner x cols)
                gemm(True, False, <int>m[3], <int>m[2], <int>m[1], <floating>1,
                     a + i * m[4], <int>m[3], gout + i * m[1] * m[2], <int>m[2],
                     <floating>(0 if ins.flags & OVERWRITE_B else 1),
                     gb + i * m[5], <int>m[2])
    elif op == OP_SUM:
        nd = <int>m[0]
        sum_backward(nd, m + 1, gout, m + 1 + nd, ga)
    elif op == OP_MAX:
        nd = <int>m[0]
        max_backward(nd, m + 1, a, out, gout, m + 1 + nd, ga,
                     <floating*>vp[ins.scratch], m[1 + 2 * nd])
    elif op == OP_RESHAPE:
        for i in range(m[0]):
            ga[i] += gout[i]
    elif op == OP_TRANSPOSE or op == OP_GETITEM:
        nd = <int>m[0]
        scatter_add(nd, m + 1, gout, ga, m[1 + 2 * nd], m + 1 + nd)
    elif op == OP_LOG_SOFTMAX:
        log_softmax_backward(m[0], m[1], out, gout, ga)
    elif op == OP_CROSS_ENTROPY:
        if ga != NULL:
            cross_entropy_backward(m[0], m[1], <floating*>vp[ins.scratch],
                                   <int64_t*>vp[ins.b], gout, ga, <int>m[2])


cdef void _cast_forward(Instr* ins, const Py_ssize_t* meta, char** vp) noexcept nogil:
    cdef const Py_ssize_t* m = meta + ins.meta
    cdef Py_ssize_t n = m[0], j
    cdef int src = <int>m[1], dst = <int>m[2]
    if src == F32 and dst == F64:
        cast_forward_f32_f64(n, <float*>vp[ins.a], <double*>vp[ins.out])
    elif src == F64 and dst == F32:
        cast_forward_f64_f32(n, <double*>vp[ins.a], <float*>vp[ins.out])
    elif src == I64 and dst == F64:
        for j in range(n):
            (<double*>vp[ins.out])[j] = <double>(<int64_t*>vp[ins.a])[j]
    elif src == I64 and dst == F32:
        for j in range(n):
            (<float*>vp[ins.out])[j] = <float>(<int64_t*>vp[ins.a])[j]
    elif src == dst:
        memcpy(vp[ins.out], vp[ins.a], n * (4 if src == F32 else 8))


cdef void _cast_backward(Instr* ins, const Py_ssize_t* meta, char** vp,
                         char** gp) noexcept nogil:
    cdef const Py_ssize_t* m = meta + ins.meta
    cdef Py_ssize_t n = m[0], j
    cdef int src = <int>m[1], dst = <int>m[2]
    if gp[ins.a] == NULL or gp[ins.out] == NULL:
        return
    if src == F32 and dst == F64:
        cast_backward_f32_f64(n, <double*>gp[ins.out], <float*>gp[ins.a])
    elif src == F64 and dst == F32:
        cast_backward_f64_f32(n, <float*>gp[ins.out], <double*>gp[ins.a])
    elif src == dst and src == F64:
        for j in range(n):
            (<double*>gp[ins.a])[j] += (<double*>gp[ins.out])[j]
    elif src == dst and src == F32:
        for j in range(n):
            (<float*>gp[ins.a])[j] += (<float*>gp[ins.out])[j]


cdef Py_ssize_t forward_one(Instr* ins, const Py_ssize_t* meta,
                                    char** vp) noexcept nogil:
    if ins.op == OP_CAST:
        _cast_forward(ins, meta, vp)
        return -1
    if ins.dtype == F32:
        return _forward_typed[float](ins, meta, vp, NULL)
    return _forward_typed[double](ins, meta, vp, NULL)


cdef void backward_one(Instr* ins, const Py_ssize_t* meta, char** vp,
                               char** gp) noexcept nogil:
    if ins.op == OP_CAST:
        _cast_backward(ins, meta, vp, gp)
    elif ins.dtype == F32:
        _backward_typed[float](ins, meta, vp, gp, NULL)
    else:
        _backward_typed[double](ins, meta, vp, gp, NULL)


cdef char* data_ptr(object arr):
    return <char*>cnp.PyArray_DATA(<cnp.ndarray>arr)


def eager_forward(int op, int dtype, meta, double c, a, b, out, scratch=None):
    """Run one instruction forward on arrays (eager tensor ops).

    a, b, out and scratch are C-contiguous arrays of the right dtype and
    size (b and scratch may be None); meta is the instruction's metadata.
    Returns -1 or the first out-of-range row of a cross-entropy.
    """
    cdef Instr ins
    cdef char* vp[4]
    cdef cnp.ndarray[Py_ssize_t, ndim=1, mode="c"] m = np.ascontiguousarray(meta, dtype=np.intp)
    cdef Py_ssize_t bad
    ins.op = op
    ins.dtype = dtype
    ins.out = 2
    ins.a = 0
    ins.b = 1 if b is not None else -1
    ins.scratch = 3 if scratch is not None else -1
    ins.meta = 0
    ins.c = c
    vp[0] = data_ptr(a)
    vp[1] = data_ptr(b) if b is not None else NULL
    vp[2] = data_ptr(out)
    vp[3] = data_ptr(scratch) if scratch is not None else NULL
    with nogil:
        bad = forward_one(&ins, <Py_ssize_t*>m.data, vp)
    return bad
