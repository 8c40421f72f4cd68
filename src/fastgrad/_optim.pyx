"""Fused optimizer kernels: one nogil loop over a whole parameter arena.

Each kernel updates every parameter of one dtype in a single pass over the
flat data, grad and state buffers, with PyTorch's update rules (the same
operation order, so results match torch.optim to rounding).
"""

cimport cython
from cython cimport floating
from libc.math cimport sqrt


def sgd_step(floating[::1] data, floating[::1] grad, floating[::1] buf,
             double lr, double momentum, double dampening, double weight_decay,
             bint nesterov, bint first):
    """SGD with optional momentum / Nesterov / weight decay, in place."""
    cdef Py_ssize_t n = data.shape[0], i
    cdef double d, b
    if grad.shape[0] != n or (momentum != 0 and buf.shape[0] != n):
        raise ValueError("sgd_step: buffers differ in length")
    with nogil:
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


def adam_step(floating[::1] data, floating[::1] grad, floating[::1] m,
              floating[::1] v, double lr, double beta1, double beta2, double eps,
              double weight_decay, long step, bint decoupled):
    """Adam (decoupled=False) or AdamW (decoupled=True) update, in place."""
    cdef Py_ssize_t n = data.shape[0], i
    cdef double g, mi, vi, p
    cdef double bias1 = 1.0 - beta1 ** step
    cdef double bias2 = 1.0 - beta2 ** step
    cdef double step_size = lr / bias1
    cdef double bias2_sqrt = sqrt(bias2)
    if grad.shape[0] != n or m.shape[0] != n or v.shape[0] != n:
        raise ValueError("adam_step: buffers differ in length")
    if step < 1:
        raise ValueError("adam_step: step counts from 1")
    with nogil:
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
