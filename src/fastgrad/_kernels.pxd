# Scalar kernel pairs: each op's forward and its backward, side by side.
#
# Both the eager engine (fastgrad.Value) and the compiled tape sweep call
# these, so an op's arithmetic is written exactly once.  Conventions (as in
# scikit-learn's _cython_blas.pxd): arguments are inputs, then outputs, then
# scalars; gradient outputs are INOUT and accumulate (+=).  Everything is
# inline, noexcept and nogil.  Domain errors are not raised here: they give
# IEEE inf/nan, and the eager layer checks before it calls a forward kernel.

from libc.math cimport exp, log, pow, tanh


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


# dot (made by lowering): out = a + sum_k x_k * y_k, accumulated left to right
# exactly as the chain of additions it replaces.  Its backward is written out
# in the tape sweep, pair by pair, with mul_backward and add_backward.
