# Scalar kernel pairs: each op's forward and its backward, side by side.
#
# Both the eager engine (fastgrad.Value) and the compiled tape sweep call
# these, so an op's arithmetic is written exactly once.  Conventions (as in
# scikit-learn's _cython_blas.pxd): arguments are inputs, then outputs, then
# scalars; gradient outputs are INOUT and accumulate (+=).  Everything is
# inline, noexcept and nogil.  Domain errors are not raised here: they give
# IEEE inf/nan, and the eager layer checks before it calls a forward kernel.

from libc.math cimport exp, fabs, log, pow, tanh


# add: out = a + b
cdef inline double add_forward(double a, double b) noexcept nogil:
    return a + b

cdef inline void add_backward(double g,          # IN  dL/dout
                              double* ga,        # INOUT
                              double* gb) noexcept nogil:  # INOUT
    ga[0] += g
    gb[0] += g


# mul: out = a * b
cdef inline double mul_forward(double a, double b) noexcept nogil:
    return a * b

cdef inline void mul_backward(double a, double b, double g,
                              double* ga, double* gb) noexcept nogil:
    ga[0] += b * g
    gb[0] += a * g


# sub: out = a - b
cdef inline double sub_forward(double a, double b) noexcept nogil:
    return a - b

cdef inline void sub_backward(double g, double* ga, double* gb) noexcept nogil:
    ga[0] += g
    gb[0] -= g


# truediv: out = a / b
cdef inline double truediv_forward(double a, double b) noexcept nogil:
    return a / b

cdef inline void truediv_backward(double a, double b, double g,
                                  double* ga, double* gb) noexcept nogil:
    ga[0] += g / b
    gb[0] -= g * a / (b * b)


# neg: out = -a
cdef inline double neg_forward(double a) noexcept nogil:
    return -a

cdef inline void neg_backward(double g, double* ga) noexcept nogil:
    ga[0] -= g


# pow_const: out = a ** c for a number c
cdef inline double pow_const_forward(double a, double c) noexcept nogil:
    return pow(a, c)

cdef inline void pow_const_backward(double a, double c, double g,
                                    double* ga) noexcept nogil:
    # d/da a^c = c a^(c-1); the c == 0 case is 0 everywhere (also at a == 0,
    # where the formula would give 0 * inf).
    if c != 0.0:
        ga[0] += c * pow(a, c - 1.0) * g


# pow: out = a ** b for a graph exponent b
cdef inline double pow_forward(double a, double b) noexcept nogil:
    return pow(a, b)

cdef inline void pow_backward(double a, double b, double out, double g,
                              double* ga, double* gb) noexcept nogil:
    if b != 0.0:
        ga[0] += b * pow(a, b - 1.0) * g
    # d/db a^b = a^b ln a.  At a == 0 with b >= 0 the limit is 0 (PyTorch
    # makes the same choice); for a < 0 the log is undefined and gives nan.
    if a == 0.0 and b >= 0.0:
        return
    gb[0] += out * log(a) * g


# relu: out = max(a, 0)
cdef inline double relu_forward(double a) noexcept nogil:
    # a < 0 rather than a <= 0, as micrograd: relu(-0.0) stays -0.0 and nan
    # propagates.
    return 0.0 if a < 0.0 else a

cdef inline void relu_backward(double out, double g, double* ga) noexcept nogil:
    if out > 0.0:
        ga[0] += g


# tanh: out = tanh(a)
cdef inline double tanh_forward(double a) noexcept nogil:
    return tanh(a)

cdef inline void tanh_backward(double out, double g, double* ga) noexcept nogil:
    ga[0] += (1.0 - out * out) * g


# exp: out = e ** a
cdef inline double exp_forward(double a) noexcept nogil:
    return exp(a)

cdef inline void exp_backward(double out, double g, double* ga) noexcept nogil:
    ga[0] += out * g


# log: out = ln a
cdef inline double log_forward(double a) noexcept nogil:
    return log(a)

cdef inline void log_backward(double a, double g, double* ga) noexcept nogil:
    ga[0] += g / a


# sigmoid: out = 1 / (1 + e ** -a), evaluated without overflow
cdef inline double sigmoid_forward(double a) noexcept nogil:
    cdef double e
    if a >= 0.0:
        return 1.0 / (1.0 + exp(-a))
    e = exp(a)
    return e / (1.0 + e)

cdef inline void sigmoid_backward(double out, double g, double* ga) noexcept nogil:
    ga[0] += out * (1.0 - out) * g


# abs: out = |a|
cdef inline double abs_forward(double a) noexcept nogil:
    return fabs(a)

cdef inline void abs_backward(double a, double g, double* ga) noexcept nogil:
    # sign(a) * g, with sign(0) = 0 (PyTorch's choice); nan propagates.
    if a > 0.0:
        ga[0] += g
    elif a < 0.0:
        ga[0] -= g
    elif a != a:
        ga[0] += a


# dot (made by lowering): out = a + sum_k x_k * y_k, accumulated left to right
# exactly as the chain of additions it replaces.  Its backward is written out
# in the tape sweep, pair by pair, with mul_backward and add_backward.


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

# out = a (op) b, for the binary elementwise opcodes (add, sub, mul,
# truediv, pow).
cdef void binary_forward(int op, int ndim, const Py_ssize_t* shape,
                         const floating* a, const Py_ssize_t* sa,   # IN
                         const floating* b, const Py_ssize_t* sb,   # IN
                         floating* out,                             # OUT
                         double c) noexcept nogil

cdef void binary_backward(int op, int ndim, const Py_ssize_t* shape,
                          const floating* a, const Py_ssize_t* sa,  # IN
                          const floating* b, const Py_ssize_t* sb,  # IN
                          const floating* out, const floating* gout,  # IN
                          floating* ga, floating* gb,               # INOUT
                          double c) noexcept nogil

# out = f(a) elementwise over n contiguous elements (neg, relu, tanh, exp,
# log, sigmoid, abs, pow_const with exponent c).
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
