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
    cast_forward_f64_f32, cast_backward_f64_f32, cross_entropy_kept,
    is_elementwise_unary, is_elementwise_binary,
)
from fastgrad._blas cimport gemm

include "_opcodes.pxi"

cnp.import_array()

__all__ = ["eager_forward", "DTYPE_CODES"]

from fastgrad.ops import BY_OPCODE as _BY_OPCODE

_NAMES = {code: op.name for code, op in _BY_OPCODE.items()}

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
    cdef floating* scratch
    cdef int nd
    cdef Py_ssize_t batch, i
    if is_elementwise_binary(op):
        nd = <int>m[0]
        binary_forward(op, nd, m + 1, a, m + 1 + nd, b, m + 1 + 2 * nd, out)
    elif is_elementwise_unary(op):
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
        # rows = 0 has no scratch slot (scratch = -1) and reads nothing.
        if m[0] == 0:
            return cross_entropy_forward(0, m[1], a, NULL, NULL, NULL, out, <int>m[2])
        scratch = <floating*>vp[ins.scratch]
        return cross_entropy_forward(m[0], m[1], a, <int64_t*>vp[ins.b], scratch,
                                     cross_entropy_kept(scratch, m[0], m[1]), out, <int>m[2])
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
    cdef floating* scratch
    cdef int nd
    cdef Py_ssize_t batch, i
    if ins.b >= 0:
        b = <floating*>vp[ins.b]
        gb = <floating*>gp[ins.b]
    if gout == NULL or (ga == NULL and gb == NULL):
        return
    if is_elementwise_binary(op):
        nd = <int>m[0]
        binary_backward(op, nd, m + 1, a, m + 1 + nd, b, m + 1 + 2 * nd,
                        out, gout, ga, gb)
    elif is_elementwise_unary(op):
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
                     <floating*>vp[ins.scratch] if ins.scratch >= 0 else NULL,
                     m[1 + 2 * nd])
    elif op == OP_RESHAPE:
        for i in range(m[0]):
            ga[i] += gout[i]
    elif op == OP_TRANSPOSE or op == OP_GETITEM:
        nd = <int>m[0]
        scatter_add(nd, m + 1, gout, ga, m[1 + 2 * nd], m + 1 + nd)
    elif op == OP_LOG_SOFTMAX:
        log_softmax_backward(m[0], m[1], out, gout, ga)
    elif op == OP_CROSS_ENTROPY:
        if ga != NULL and m[0] > 0:
            scratch = <floating*>vp[ins.scratch]
            cross_entropy_backward(m[0], m[1], scratch,
                                   cross_entropy_kept(scratch, m[0], m[1]),
                                   gout, ga, <int>m[2])


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
    Checks that the instruction stays inside those arrays, then runs it.
    Returns -1 or the first out-of-range row of a cross-entropy.
    """
    cdef Instr ins
    cdef char* vp[4]
    cdef Py_ssize_t nbytes[4]
    cdef cnp.ndarray[Py_ssize_t, ndim=1, mode="c"] m = np.ascontiguousarray(meta, dtype=np.intp)
    cdef Py_ssize_t bad
    cdef int k
    arrays = (a, b, out, scratch)
    for k in range(4):
        x = arrays[k]
        if x is None:
            vp[k] = NULL
            nbytes[k] = 0
            continue
        if type(x) is not np.ndarray or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x):
            raise ValueError(
                f"{_NAMES.get(op, op)}: operand {k} is not a C-contiguous numpy array "
                f"({type(x).__name__} {getattr(x, 'shape', '')})")
        vp[k] = data_ptr(x)
        nbytes[k] = cnp.PyArray_NBYTES(<cnp.ndarray>x)
    ins.op = op
    ins.dtype = dtype
    ins.out = 2
    ins.a = 0
    ins.b = 1 if b is not None else -1
    ins.scratch = 3 if scratch is not None else -1
    ins.meta = 0
    ins.c = c
    ins.flags = 0
    why = check_extents(&ins, <Py_ssize_t*>m.data, m.shape[0], nbytes, 4)
    if why is not None:
        raise RuntimeError(f"{_NAMES.get(op, op)}: internal error, the planned "
                           f"instruction {why}")
    with nogil:
        bad = forward_one(&ins, <Py_ssize_t*>m.data, vp)
    return bad


# -- extents: what an instruction may touch --------------------------------------

cdef inline Py_ssize_t _span(int nd, const Py_ssize_t* dims, const Py_ssize_t* strides,
                             Py_ssize_t offset, Py_ssize_t* low) noexcept:
    """One past the highest element a strided walk reads; *low: the lowest."""
    cdef Py_ssize_t hi = offset, lo = offset
    cdef int d
    for d in range(nd):
        if dims[d] == 0:
            low[0] = 0
            return 0
        if strides[d] > 0:
            hi += (dims[d] - 1) * strides[d]
        else:
            lo += (dims[d] - 1) * strides[d]
    low[0] = lo
    return hi + 1


cdef Py_ssize_t _prod(int nd, const Py_ssize_t* dims) noexcept:
    cdef Py_ssize_t n = 1
    cdef int d
    for d in range(nd):
        n *= dims[d]
    return n


cdef str check_extents(Instr* ins, const Py_ssize_t* meta, Py_ssize_t n_meta,
                       const Py_ssize_t* slot_bytes, int n_slots):
    """None if every byte the instruction touches lies inside its slots, else why not.

    The sweeps run unchecked, so this is the line between the plan and
    memory: fastgrad.lower checks each instruction once when it builds a
    tape, and an eager op checks its one instruction before it runs.
    """
    cdef int op = ins.op
    cdef Py_ssize_t item = 4 if ins.dtype == F32 else 8
    cdef const Py_ssize_t* m
    cdef Py_ssize_t need_a = 0, need_b = 0, need_out = 0, need_scratch = 0
    cdef Py_ssize_t item_a, item_b, low = 0, rows, cols, n, per
    cdef int nd, slot
    if ins.meta < 0 or ins.meta >= n_meta:
        return f"metadata offset {ins.meta} outside 0..{n_meta - 1}"
    for slot in (ins.out, ins.a):
        if slot < 0 or slot >= n_slots:
            return f"slot {slot} outside 0..{n_slots - 1}"
    for slot in (ins.b, ins.scratch):
        if slot < -1 or slot >= n_slots:
            return f"slot {slot} outside -1..{n_slots - 1}"
    m = meta + ins.meta
    item_a = item_b = item
    if is_elementwise_binary(op):
        nd = <int>m[0]
        if nd < 1 or ins.meta + 1 + 3 * nd > n_meta or ins.b < 0:
            return "malformed broadcast metadata"
        need_out = _prod(nd, m + 1)
        need_a = _span(nd, m + 1, m + 1 + nd, 0, &low)
        if low < 0:
            return "negative stride walk"
        need_b = _span(nd, m + 1, m + 1 + 2 * nd, 0, &low)
        if low < 0:
            return "negative stride walk"
    elif is_elementwise_unary(op) or op == OP_RESHAPE:
        need_a = need_out = m[0]
    elif op == OP_MATMUL:
        if ins.b < 0:
            return "matmul without a second operand"
        if m[0] > 0 and m[1] > 0 and m[3] > 0:
            need_a = (m[0] - 1) * m[4] + m[1] * m[3]
        if m[0] > 0 and m[2] > 0 and m[3] > 0:
            need_b = (m[0] - 1) * m[5] + m[3] * m[2]
        need_out = m[0] * m[1] * m[2]
    elif op == OP_SUM or op == OP_MAX:
        nd = <int>m[0]
        if nd < 1 or ins.meta + 2 + 2 * nd > n_meta:
            return "malformed reduction metadata"
        need_a = _prod(nd, m + 1)
        need_out = m[1 + 2 * nd]
        if need_a and _span(nd, m + 1, m + 1 + nd, 0, &low) > need_out:
            return "reduction writes past its output"
        if op == OP_MAX:
            need_scratch = need_out
    elif op == OP_TRANSPOSE or op == OP_GETITEM:
        nd = <int>m[0]
        if nd < 1 or ins.meta + 2 + 2 * nd > n_meta:
            return "malformed gather metadata"
        need_out = _prod(nd, m + 1)
        need_a = _span(nd, m + 1, m + 1 + nd, m[1 + 2 * nd], &low)
        if low < 0:
            return "gather reads before its operand"
    elif op == OP_LOG_SOFTMAX:
        need_a = need_out = m[0] * m[1]
    elif op == OP_CROSS_ENTROPY:
        rows, cols = m[0], m[1]
        need_a = rows * cols
        item_b = 8
        need_b = rows
        need_out = rows if m[2] == 0 else 1
        if rows:
            per = 8 // item
            need_scratch = rows * cols + (-(rows * cols) % per) + rows * per
    elif op == OP_CAST:
        n = m[0]
        item_a = 4 if m[1] == F32 else 8
        item = 4 if m[2] == F32 else 8
        need_a = need_out = n
    else:
        return f"unknown opcode {op}"
    if need_out * item > slot_bytes[ins.out]:
        return f"writes {need_out * item} bytes into a slot of {slot_bytes[ins.out]}"
    if need_a * item_a > slot_bytes[ins.a]:
        return f"reads {need_a * item_a} bytes from a slot of {slot_bytes[ins.a]}"
    if need_b and (ins.b < 0 or need_b * item_b > slot_bytes[ins.b]):
        return f"reads {need_b * item_b} bytes from its second operand's slot"
    if need_scratch and (ins.scratch < 0 or need_scratch * item > slot_bytes[ins.scratch]):
        return f"needs {need_scratch * item} bytes of scratch"
    return None
