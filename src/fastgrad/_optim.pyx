"""Fused optimizer kernels: one nogil loop over a whole parameter arena.

Each kernel updates every parameter of one dtype in a single pass over the
flat data, grad and state buffers, with PyTorch's update rules (the same
operation order, so results match torch.optim to rounding).  Arguments are
1-D C-contiguous float32 or float64 arrays of one length and dtype (checked
in C: this is called every step).
"""

cimport cython
cimport numpy as cnp
from cython cimport floating
from libc.math cimport sqrt

import numpy as np

cnp.import_array()


cdef Py_ssize_t _check(str name, arrays) except -1:
    """Common length of the arrays after checking their layout and dtype."""
    cdef cnp.ndarray a, first = None
    for x in arrays:
        if type(x) is not np.ndarray:
            raise TypeError(f"{name}: expected numpy arrays, got {type(x).__name__}")
        a = <cnp.ndarray>x
        if (cnp.PyArray_NDIM(a) != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(a)
                or not cnp.PyArray_ISWRITEABLE(a)):
            raise ValueError(f"{name}: buffers must be writeable 1-D C-contiguous arrays")
        if first is None:
            first = a
            if cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT32 and cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT64:
                raise TypeError(f"{name}: buffers must be float32 or float64, got {a.dtype}")
        elif (cnp.PyArray_TYPE(a) != cnp.PyArray_TYPE(first)
              or cnp.PyArray_DIM(a, 0) != cnp.PyArray_DIM(first, 0)):
            raise ValueError(f"{name}: buffers differ in length or dtype")
    return cnp.PyArray_DIM(first, 0)


cdef void _sgd(Py_ssize_t n, floating* data, const floating* grad, floating* buf,
               double lr, double momentum, double dampening, double weight_decay,
               bint nesterov, bint first) noexcept nogil:
    cdef Py_ssize_t i
    cdef double d, b
    cdef floating step = <floating>lr
    if momentum == 0 and weight_decay == 0:
        # Plain SGD: one multiply-subtract in the arrays' own precision, so
        # the loop vectorises (the general loop below tests its options per
        # element and computes in double).
        for i in range(n):
            data[i] = data[i] - step * grad[i]
        return
    for i in range(n):
        d = grad[i]
        if weight_decay != 0:
            d = d + weight_decay * data[i]
        if momentum != 0:
            if first:
                b = d
            else:
                b = momentum * buf[i] + (1.0 - dampening) * d
            buf[i] = <floating>b
            if nesterov:
                d = d + momentum * b
            else:
                d = b
        data[i] = <floating>(data[i] - lr * d)


def sgd_step(data, grad, buf, double lr, double momentum, double dampening,
             double weight_decay, bint nesterov, bint first):
    """SGD with optional momentum / Nesterov / weight decay, in place."""
    cdef Py_ssize_t n = _check("sgd_step", (data, grad, buf) if momentum != 0 else (data, grad))
    cdef char* pd = <char*>cnp.PyArray_DATA(<cnp.ndarray>data)
    cdef char* pg = <char*>cnp.PyArray_DATA(<cnp.ndarray>grad)
    cdef char* pb = <char*>cnp.PyArray_DATA(<cnp.ndarray>buf)
    if cnp.PyArray_TYPE(<cnp.ndarray>data) == cnp.NPY_FLOAT32:
        with nogil:
            _sgd(n, <float*>pd, <float*>pg, <float*>pb, lr, momentum, dampening,
                 weight_decay, nesterov, first)
    else:
        with nogil:
            _sgd(n, <double*>pd, <double*>pg, <double*>pb, lr, momentum, dampening,
                 weight_decay, nesterov, first)


cdef void _adam(Py_ssize_t n, floating* data, const floating* grad, floating* m,
                floating* v, double lr, double beta1, double beta2, double eps,
                double weight_decay, long step, bint decoupled) noexcept nogil:
    cdef Py_ssize_t i
    cdef double g, mi, vi, p
    cdef double bias1 = 1.0 - beta1 ** step
    cdef double bias2 = 1.0 - beta2 ** step
    cdef double step_size = lr / bias1
    cdef double bias2_sqrt = sqrt(bias2)
    for i in range(n):
        g = grad[i]
        p = data[i]
        if weight_decay != 0:
            if decoupled:
                p = p * (1.0 - lr * weight_decay)
            else:
                g = g + weight_decay * p
        mi = beta1 * m[i] + (1.0 - beta1) * g
        vi = beta2 * v[i] + (1.0 - beta2) * g * g
        m[i] = <floating>mi
        v[i] = <floating>vi
        data[i] = <floating>(p - step_size * mi / (sqrt(vi) / bias2_sqrt + eps))


def adam_step(data, grad, m, v, double lr, double beta1, double beta2, double eps,
              double weight_decay, long step, bint decoupled):
    """Adam (decoupled=False) or AdamW (decoupled=True) update, in place."""
    cdef Py_ssize_t n = _check("adam_step", (data, grad, m, v))
    if step < 1:
        raise ValueError("adam_step: step counts from 1")
    cdef char* pd = <char*>cnp.PyArray_DATA(<cnp.ndarray>data)
    cdef char* pg = <char*>cnp.PyArray_DATA(<cnp.ndarray>grad)
    cdef char* pm = <char*>cnp.PyArray_DATA(<cnp.ndarray>m)
    cdef char* pv = <char*>cnp.PyArray_DATA(<cnp.ndarray>v)
    if cnp.PyArray_TYPE(<cnp.ndarray>data) == cnp.NPY_FLOAT32:
        with nogil:
            _adam(n, <float*>pd, <float*>pg, <float*>pm, <float*>pv, lr, beta1, beta2,
                  eps, weight_decay, step, decoupled)
    else:
        with nogil:
            _adam(n, <double*>pd, <double*>pg, <double*>pm, <double*>pv, lr, beta1, beta2,
                  eps, weight_decay, step, decoupled)
