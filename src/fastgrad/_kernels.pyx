"""Array kernels for tensors on the tape (declared in _kernels.pxd).

Elementwise kernels apply the scalar kernel pairs generated from the op
table to every element, so an op's arithmetic is written once, in its row,
for scalars and arrays alike.  Arithmetic is done in double and rounded to
the array's dtype.
"""

cimport cython
from libc.math cimport exp, log, INFINITY
from libc.string cimport memset
from libc.stdint cimport int64_t

from cpython.pythread cimport (
    PyThread_type_lock, PyThread_allocate_lock, PyThread_acquire_lock,
    PyThread_release_lock, WAIT_LOCK,
)

include "_opcodes.pxi"

cdef extern from *:
    """
    /* C assert in a FASTGRAD_DEBUG=1 build (setup.py defines FASTGRAD_DEBUG
       and undefines NDEBUG); nothing in a release build. */
    #ifdef FASTGRAD_DEBUG
    #include <assert.h>
    #define debug_assert(x) assert(x)
    #else
    #define debug_assert(x) ((void)0)
    #endif
    """
    void debug_assert(bint) noexcept nogil


# -- leaf gradients shared between tapes ---------------------------------------
#
# Every tape sums a leaf's gradient in its own buffer and adds it to the
# leaf's .grad once per backward.  Tapes that share a leaf may run in
# different threads, so those additions hold this one lock (a few
# nanoseconds uncontended; nothing under it needs the GIL).

cdef PyThread_type_lock _leaf_grads = PyThread_allocate_lock()
if _leaf_grads == NULL:
    raise MemoryError("fastgrad: could not allocate the leaf-gradient lock")


cdef void leaf_grads_lock() noexcept nogil:
    PyThread_acquire_lock(_leaf_grads, WAIT_LOCK)


cdef void leaf_grads_unlock() noexcept nogil:
    PyThread_release_lock(_leaf_grads)


# -- iteration ---------------------------------------------------------------

cdef inline void _next2(int ndim, const Py_ssize_t* shape, Py_ssize_t* idx,
                        const Py_ssize_t* s1, Py_ssize_t* o1,
                        const Py_ssize_t* s2, Py_ssize_t* o2) noexcept nogil:
    """Advance a multi-index over the outer dimensions [0, ndim-1)."""
    cdef int d = ndim - 2
    while d >= 0:
        idx[d] += 1
        o1[0] += s1[d]
        o2[0] += s2[d]
        if idx[d] < shape[d]:
            return
        o1[0] -= s1[d] * shape[d]
        o2[0] -= s2[d] * shape[d]
        idx[d] = 0
        d -= 1


cdef inline Py_ssize_t _outer(int ndim, const Py_ssize_t* shape,
                              Py_ssize_t* idx) noexcept nogil:
    cdef Py_ssize_t n = 1
    cdef int d
    for d in range(ndim - 1):
        n *= shape[d]
        idx[d] = 0
    return n


# -- elementwise ------------------------------------------------------------------
#
# The per-op loops (unary_forward/backward, _binary_row/_backward) are
# generated from the op table; binary_forward/backward walk the broadcast
# iteration shape and call the row loops with constant strides where they can.

include "_elementwise_loops.pxi"


cdef void binary_forward(int op, int ndim, const Py_ssize_t* shape,
                         const floating* a, const Py_ssize_t* sa,
                         const floating* b, const Py_ssize_t* sb,
                         floating* out) noexcept nogil:
    cdef Py_ssize_t idx[MAX_DIMS]
    cdef Py_ssize_t outer = _outer(ndim, shape, idx)
    cdef Py_ssize_t inner = shape[ndim - 1]
    cdef Py_ssize_t oa = 0, ob = 0, o = 0, t
    cdef Py_ssize_t ia = sa[ndim - 1], ib = sb[ndim - 1]
    if inner == 0:
        return
    for t in range(outer):
        # Constant strides at the call sites let the compiler specialise
        # (and vectorise) the inlined row loops for the common layouts.
        if ia == 1 and ib == 1:
            _binary_row(op, inner, a + oa, 1, b + ob, 1, out + o)
        elif ia == 1 and ib == 0:
            _binary_row(op, inner, a + oa, 1, b + ob, 0, out + o)
        elif ia == 0 and ib == 1:
            _binary_row(op, inner, a + oa, 0, b + ob, 1, out + o)
        else:
            _binary_row(op, inner, a + oa, ia, b + ob, ib, out + o)
        o += inner
        _next2(ndim, shape, idx, sa, &oa, sb, &ob)


cdef void binary_backward(int op, int ndim, const Py_ssize_t* shape,
                          const floating* a, const Py_ssize_t* sa,
                          const floating* b, const Py_ssize_t* sb,
                          const floating* out, const floating* gout,
                          floating* ga, floating* gb) noexcept nogil:
    cdef Py_ssize_t idx[MAX_DIMS]
    cdef Py_ssize_t outer = _outer(ndim, shape, idx)
    cdef Py_ssize_t inner = shape[ndim - 1]
    cdef Py_ssize_t ia = sa[ndim - 1], ib = sb[ndim - 1]
    cdef Py_ssize_t oa = 0, ob = 0, o = 0, t
    if inner == 0:
        return
    for t in range(outer):
        if ia == 1 and ib == 1:
            _binary_row_backward(op, inner, a + oa, 1, b + ob, 1, out + o, gout + o,
                                 ga + oa if ga != NULL else NULL,
                                 gb + ob if gb != NULL else NULL)
        elif ia == 1 and ib == 0:
            _binary_row_backward(op, inner, a + oa, 1, b + ob, 0, out + o, gout + o,
                                 ga + oa if ga != NULL else NULL,
                                 gb + ob if gb != NULL else NULL)
        else:
            _binary_row_backward(op, inner, a + oa, ia, b + ob, ib, out + o, gout + o,
                                 ga + oa if ga != NULL else NULL,
                                 gb + ob if gb != NULL else NULL)
        o += inner
        _next2(ndim, shape, idx, sa, &oa, sb, &ob)


# -- reductions ---------------------------------------------------------------------

cdef void sum_forward(int ndim, const Py_ssize_t* shape, const floating* a,
                      floating* out, const Py_ssize_t* so,
                      Py_ssize_t n_out) noexcept nogil:
    cdef Py_ssize_t idx[MAX_DIMS]
    cdef Py_ssize_t zero[MAX_DIMS]
    cdef Py_ssize_t outer = _outer(ndim, shape, idx)
    cdef Py_ssize_t inner = shape[ndim - 1], io = so[ndim - 1]
    cdef Py_ssize_t i = 0, oo = 0, dummy = 0, t, j
    cdef double acc
    memset(out, 0, n_out * sizeof(floating))
    memset(zero, 0, sizeof(zero))
    if inner == 0:
        return
    for t in range(outer):
        if io == 0:
            acc = out[oo]
            for j in range(inner):
                acc += a[i + j]
            out[oo] = <floating>acc
        else:
            for j in range(inner):
                out[oo + j * io] += a[i + j]
        i += inner
        _next2(ndim, shape, idx, so, &oo, zero, &dummy)


cdef void sum_backward(int ndim, const Py_ssize_t* shape,
                       const floating* gout, const Py_ssize_t* so,
                       floating* ga) noexcept nogil:
    cdef Py_ssize_t idx[MAX_DIMS]
    cdef Py_ssize_t zero[MAX_DIMS]
    cdef Py_ssize_t outer = _outer(ndim, shape, idx)
    cdef Py_ssize_t inner = shape[ndim - 1], io = so[ndim - 1]
    cdef Py_ssize_t i = 0, oo = 0, dummy = 0, t, j
    memset(zero, 0, sizeof(zero))
    if inner == 0:
        return
    for t in range(outer):
        for j in range(inner):
            ga[i + j] += gout[oo + j * io]
        i += inner
        _next2(ndim, shape, idx, so, &oo, zero, &dummy)


cdef void max_forward(int ndim, const Py_ssize_t* shape, const floating* a,
                      floating* out, const Py_ssize_t* so,
                      Py_ssize_t n_out) noexcept nogil:
    cdef Py_ssize_t idx[MAX_DIMS]
    cdef Py_ssize_t zero[MAX_DIMS]
    cdef Py_ssize_t outer = _outer(ndim, shape, idx)
    cdef Py_ssize_t inner = shape[ndim - 1], io = so[ndim - 1]
    cdef Py_ssize_t i = 0, oo = 0, dummy = 0, t, j, k
    cdef floating x, m
    memset(zero, 0, sizeof(zero))
    for k in range(n_out):
        out[k] = -INFINITY
    if inner == 0:
        return
    for t in range(outer):
        for j in range(inner):
            x = a[i + j]
            k = oo + j * io
            m = out[k]
            # nan wins and stays, as in numpy.max
            if m == m and (x > m or x != x):
                out[k] = x
        i += inner
        _next2(ndim, shape, idx, so, &oo, zero, &dummy)


cdef void max_backward(int ndim, const Py_ssize_t* shape, const floating* a,
                       const floating* out, const floating* gout,
                       const Py_ssize_t* so, floating* ga,
                       floating* count, Py_ssize_t n_out) noexcept nogil:
    cdef Py_ssize_t idx[MAX_DIMS]
    cdef Py_ssize_t zero[MAX_DIMS]
    cdef Py_ssize_t outer = _outer(ndim, shape, idx)
    cdef Py_ssize_t inner = shape[ndim - 1], io = so[ndim - 1]
    cdef Py_ssize_t i = 0, oo = 0, dummy = 0, t, j, k
    memset(zero, 0, sizeof(zero))
    memset(count, 0, n_out * sizeof(floating))
    if inner == 0:
        return
    for t in range(outer):
        for j in range(inner):
            k = oo + j * io
            if a[i + j] == out[k]:
                count[k] += 1
        i += inner
        _next2(ndim, shape, idx, so, &oo, zero, &dummy)
    i = 0
    oo = 0
    _outer(ndim, shape, idx)
    for t in range(outer):
        for j in range(inner):
            k = oo + j * io
            if a[i + j] == out[k]:
                ga[i + j] += gout[k] / count[k]
        i += inner
        _next2(ndim, shape, idx, so, &oo, zero, &dummy)


# -- data movement ------------------------------------------------------------------

cdef void gather(int ndim, const Py_ssize_t* shape, const floating* a,
                 Py_ssize_t offset, const Py_ssize_t* sa,
                 floating* out) noexcept nogil:
    cdef Py_ssize_t idx[MAX_DIMS]
    cdef Py_ssize_t zero[MAX_DIMS]
    cdef Py_ssize_t outer = _outer(ndim, shape, idx)
    cdef Py_ssize_t inner = shape[ndim - 1], ia = sa[ndim - 1]
    cdef Py_ssize_t o = 0, oa = offset, dummy = 0, t, j
    memset(zero, 0, sizeof(zero))
    if inner == 0:
        return
    for t in range(outer):
        for j in range(inner):
            out[o + j] = a[oa + j * ia]
        o += inner
        _next2(ndim, shape, idx, sa, &oa, zero, &dummy)


cdef void scatter_add(int ndim, const Py_ssize_t* shape, const floating* gout,
                      floating* ga, Py_ssize_t offset,
                      const Py_ssize_t* sa) noexcept nogil:
    cdef Py_ssize_t idx[MAX_DIMS]
    cdef Py_ssize_t zero[MAX_DIMS]
    cdef Py_ssize_t outer = _outer(ndim, shape, idx)
    cdef Py_ssize_t inner = shape[ndim - 1], ia = sa[ndim - 1]
    cdef Py_ssize_t o = 0, oa = offset, dummy = 0, t, j
    memset(zero, 0, sizeof(zero))
    if inner == 0:
        return
    for t in range(outer):
        for j in range(inner):
            ga[oa + j * ia] += gout[o + j]
        o += inner
        _next2(ndim, shape, idx, sa, &oa, zero, &dummy)


# -- softmax family -------------------------------------------------------------------

cdef inline double _row_logsumexp(Py_ssize_t cols, const floating* x) noexcept nogil:
    cdef double m = -INFINITY, s = 0.0
    cdef Py_ssize_t j
    for j in range(cols):
        if x[j] > m or x[j] != x[j]:
            m = x[j]
            if m != m:
                return m
    if m == -INFINITY or m == INFINITY:
        return m
    for j in range(cols):
        s += exp(x[j] - m)
    return m + log(s)


cdef void log_softmax_forward(Py_ssize_t rows, Py_ssize_t cols,
                              const floating* a, floating* out) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef double lse
    for i in range(rows):
        lse = _row_logsumexp(cols, a + i * cols)
        for j in range(cols):
            out[i * cols + j] = <floating>(a[i * cols + j] - lse)


cdef void log_softmax_backward(Py_ssize_t rows, Py_ssize_t cols,
                               const floating* out, const floating* gout,
                               floating* ga) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef double s
    for i in range(rows):
        s = 0.0
        for j in range(cols):
            s += gout[i * cols + j]
        for j in range(cols):
            ga[i * cols + j] += <floating>(gout[i * cols + j] - exp(out[i * cols + j]) * s)


cdef Py_ssize_t cross_entropy_forward(Py_ssize_t rows, Py_ssize_t cols,
                                      const floating* logits,
                                      const int64_t* targets,
                                      floating* prob, int64_t* kept,
                                      floating* out,
                                      int reduction) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef int64_t t
    cdef double lse, total = 0.0, loss
    for i in range(rows):
        t = targets[i]
        if t < 0 or t >= cols:
            return i
    for i in range(rows):
        kept[i] = targets[i]
    for i in range(rows):
        lse = _row_logsumexp(cols, logits + i * cols)
        for j in range(cols):
            prob[i * cols + j] = <floating>exp(logits[i * cols + j] - lse)
        loss = lse - logits[i * cols + kept[i]]
        if reduction == 0:
            out[i] = <floating>loss
        else:
            total += loss
    if reduction == 1:
        out[0] = <floating>(total / rows) if rows else <floating>(0.0 * INFINITY)
    elif reduction == 2:
        out[0] = <floating>total
    return -1


cdef void cross_entropy_backward(Py_ssize_t rows, Py_ssize_t cols,
                                 const floating* prob, const int64_t* kept,
                                 const floating* gout, floating* glogits,
                                 int reduction) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef double scale
    for i in range(rows):
        if reduction == 0:
            scale = gout[i]
        elif reduction == 1:
            scale = gout[0] / rows
        else:
            scale = gout[0]
        for j in range(cols):
            glogits[i * cols + j] += <floating>(prob[i * cols + j] * scale)
        debug_assert(0 <= kept[i] < cols)
        glogits[i * cols + kept[i]] -= <floating>scale


cdef int64_t* cross_entropy_kept(floating* scratch, Py_ssize_t rows,
                                 Py_ssize_t cols) noexcept nogil:
    cdef Py_ssize_t n = rows * cols
    if floating is float:
        n += n & 1          # to an 8-byte boundary
    return <int64_t*>(scratch + n)


# -- dtype conversion -------------------------------------------------------------------

cdef void cast_forward_f32_f64(Py_ssize_t n, const float* a, double* out) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        out[j] = a[j]


cdef void cast_backward_f32_f64(Py_ssize_t n, const double* gout, float* ga) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        ga[j] += <float>gout[j]


cdef void cast_forward_f64_f32(Py_ssize_t n, const double* a, float* out) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        out[j] = <float>a[j]


cdef void cast_backward_f64_f32(Py_ssize_t n, const float* gout, double* ga) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        ga[j] += gout[j]


# -- test and tool shims ----------------------------------------------------------

def local_derivative(int op, double a, double b, double c, double out, int position):
    """d(out)/d(operand `position`) of an elementwise op at (a, b, c): its
    generated backward kernel with an incoming gradient of 1."""
    if not (is_elementwise_unary(op) or is_elementwise_binary(op)):
        raise ValueError(f"local_derivative: opcode {op} is not elementwise")
    if position == 0:
        return elementwise_backward_a(op, a, b, c, out, 1.0)
    if position == 1 and is_elementwise_binary(op):
        return elementwise_backward_b(op, a, b, c, out, 1.0)
    raise ValueError(f"local_derivative: opcode {op} has no operand {position}")


def forward_value(int op, double a, double b, double c):
    """The output of an elementwise op at (a, b, c): its generated forward kernel."""
    if not (is_elementwise_unary(op) or is_elementwise_binary(op)):
        raise ValueError(f"forward_value: opcode {op} is not elementwise")
    return elementwise_forward(op, a, b, c)
