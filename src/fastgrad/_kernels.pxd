# The kernels: declarations of _kernels.pyx, and the scalar kernel pairs.
#
# Elementwise ops are generated from the op table (fastgrad/ops.py) into
# _elementwise.pxi: per op NAME_forward(a, b, c) and, per operand,
# NAME_backward_a/_b(a, b, c, out, g) returning that operand's gradient
# contribution, side by side; the eager Value, the scalar tape and the
# array loops all call them, so an op's arithmetic is written once, in its
# row.  Everything is inline, noexcept and nogil.  Domain errors are not
# raised here: they give IEEE inf/nan, and an eager Value checks before it
# builds a node.  Conventions (as in scikit-learn's _cython_blas.pxd):
# arguments are inputs, then outputs, then scalars; gradient outputs are
# INOUT and accumulate (+=).

include "_elementwise.pxi"


# ---------------------------------------------------------------------------
# Array kernels (defined in _kernels.pyx), for tensors on the tape.
#
# Layout: every array a kernel reads or writes is C-contiguous.  Broadcasting
# is described by an iteration shape (at most MAX_DIMS dimensions, already
# simplified by lowering) and, per operand, element strides over that shape:
# 0 along a broadcast dimension.  A backward kernel walks the same shape and
# accumulates into an operand's gradient through that operand's strides, so
# the sum over broadcast dimensions happens by itself.  A NULL gradient
# pointer means "this operand needs no gradient": skipped.

from cython cimport floating
from libc.stdint cimport int64_t

cdef enum:
    MAX_DIMS = 8

# out = a (op) b, for the binary elementwise ops of the op table
# (is_elementwise_binary), over the broadcast iteration shape.
cdef void binary_forward(int op, int ndim, const Py_ssize_t* shape,
                         const floating* a, const Py_ssize_t* sa,   # IN
                         const floating* b, const Py_ssize_t* sb,   # IN
                         floating* out) noexcept nogil              # OUT

cdef void binary_backward(int op, int ndim, const Py_ssize_t* shape,
                          const floating* a, const Py_ssize_t* sa,  # IN
                          const floating* b, const Py_ssize_t* sb,  # IN
                          const floating* out, const floating* gout,  # IN
                          floating* ga, floating* gb) noexcept nogil  # INOUT

# out = f(a) elementwise over n contiguous elements, for the unary
# elementwise ops of the op table (is_elementwise_unary); c is the op's
# number attribute (pow_const's exponent, leaky_relu's slope, a clamp bound).
cdef void unary_forward(int op, Py_ssize_t n, const floating* a,   # IN
                        floating* out, double c) noexcept nogil    # OUT

cdef void unary_backward(int op, Py_ssize_t n, const floating* a,
                         const floating* out, const floating* gout,  # IN
                         floating* ga, double c) noexcept nogil      # INOUT

# Reductions over the input's iteration shape; `so` are the output's strides
# over that shape (0 along reduced axes).  out is overwritten.
cdef void sum_forward(int ndim, const Py_ssize_t* shape,
                      const floating* a,                            # IN
                      floating* out, const Py_ssize_t* so,          # OUT
                      Py_ssize_t n_out) noexcept nogil
cdef void sum_backward(int ndim, const Py_ssize_t* shape,
                       const floating* gout, const Py_ssize_t* so,  # IN
                       floating* ga) noexcept nogil                 # INOUT
cdef void max_forward(int ndim, const Py_ssize_t* shape,
                      const floating* a,                            # IN
                      floating* out, const Py_ssize_t* so,          # OUT
                      Py_ssize_t n_out) noexcept nogil
# count: scratch of n_out entries (ties per output element).
cdef void max_backward(int ndim, const Py_ssize_t* shape,
                       const floating* a, const floating* out,
                       const floating* gout, const Py_ssize_t* so,  # IN
                       floating* ga,                                # INOUT
                       floating* count, Py_ssize_t n_out) noexcept nogil

# Strided gather: out[i] = a[offset + Σ idx_d * sa_d] over `shape` (used by
# transpose and basic indexing); scatter is its adjoint (accumulates).
cdef void gather(int ndim, const Py_ssize_t* shape,
                 const floating* a, Py_ssize_t offset, const Py_ssize_t* sa,  # IN
                 floating* out) noexcept nogil                              # OUT
cdef void scatter_add(int ndim, const Py_ssize_t* shape,
                      const floating* gout,                                 # IN
                      floating* ga, Py_ssize_t offset,
                      const Py_ssize_t* sa) noexcept nogil                  # INOUT

# Row-wise log-softmax over rows x cols (the axis is the last, contiguous).
cdef void log_softmax_forward(Py_ssize_t rows, Py_ssize_t cols,
                              const floating* a, floating* out) noexcept nogil
cdef void log_softmax_backward(Py_ssize_t rows, Py_ssize_t cols,
                               const floating* out, const floating* gout,
                               floating* ga) noexcept nogil

# Cross-entropy of logits (rows x cols) against integer targets.  The
# forward checks every target before reading with it: an out-of-range one
# makes it return that row (>= 0) having written nothing; -1 = ok.  It then
# copies the targets into `kept`, the tape's own buffer, so the backward
# indexes with exactly the targets the forward validated and used, whatever
# the user does to their array in between.
# reduction: 0 none (out has rows entries), 1 mean, 2 sum (out has 1).
# prob: scratch rows x cols, the softmax, kept for the backward.
cdef Py_ssize_t cross_entropy_forward(Py_ssize_t rows, Py_ssize_t cols,
                                      const floating* logits,       # IN
                                      const int64_t* targets,       # IN
                                      floating* prob,               # OUT
                                      int64_t* kept,                # OUT
                                      floating* out,                # OUT
                                      int reduction) noexcept nogil
cdef void cross_entropy_backward(Py_ssize_t rows, Py_ssize_t cols,
                                 const floating* prob,              # IN
                                 const int64_t* kept,               # IN
                                 const floating* gout,              # IN
                                 floating* glogits,                 # INOUT
                                 int reduction) noexcept nogil

# The scratch of a cross-entropy: prob (rows x cols), then the kept targets
# at the next 8-byte boundary.  `scratch` must be 8-byte aligned.
cdef int64_t* cross_entropy_kept(floating* scratch, Py_ssize_t rows,
                                 Py_ssize_t cols) noexcept nogil

# The lock held while a tape adds its summed leaf gradients into the leaves.
cdef void leaf_grads_lock() noexcept nogil
cdef void leaf_grads_unlock() noexcept nogil

# Elementwise dtype conversion and its adjoint.
cdef void cast_forward_f32_f64(Py_ssize_t n, const float* a, double* out) noexcept nogil
cdef void cast_backward_f32_f64(Py_ssize_t n, const double* gout, float* ga) noexcept nogil
cdef void cast_forward_f64_f32(Py_ssize_t n, const double* a, float* out) noexcept nogil
cdef void cast_backward_f64_f32(Py_ssize_t n, const float* gout, double* ga) noexcept nogil
