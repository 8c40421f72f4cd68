"""fastgrad.Value: a micrograd-compatible scalar whose graph lives in C.

A Value is a compiled extension type with no per-node closures: the node
records its opcode and inputs, and backward() runs the compiled reverse sweep
(see _tape.pyx).  The type is not tracked by the cyclic garbage collector (a
graph of Values cannot form a cycle) and deallocates deep chains iteratively
(trashcan), so a 10**6-node chain is built and freed without recursion.
"""

cimport cython
from cpython.mem cimport PyMem_Realloc
from cpython.ref cimport PyObject

cdef extern from "Python.h":
    Py_ssize_t Py_REFCNT(PyObject* o)
    void Py_IncRef(PyObject* o)
    void Py_DecRef(PyObject* o)
from libc.math cimport isfinite, floor

from fastgrad._kernels cimport (
    add_forward, mul_forward, sub_forward, truediv_forward, neg_forward,
    pow_const_forward, pow_forward, relu_forward, tanh_forward, exp_forward,
    log_forward, sigmoid_forward,
)

include "_opcodes.pxi"

from fastgrad.ops import BY_OPCODE

__all__ = ["Value"]

_MICROGRAD_OP = {op.opcode: op.micrograd if op.micrograd is not None else op.symbol
                 for op in BY_OPCODE.values()}
_OP_NAME = {op.opcode: op.name for op in BY_OPCODE.values()}

_backward_impl = None


cdef inline Value leaf(double d):
    cdef Value v = Value.__new__(Value)
    v._d = d
    return v


cdef inline Value node(double d, int op, Value a, Value b, double c):
    cdef Value v = Value.__new__(Value)
    v._d = d
    v.op = op
    v.a = a
    v.b = b
    v.c = c
    return v


cdef inline bint _is_number(object x):
    # float (and numpy.float64), int and bool, numpy real scalars.
    if isinstance(x, (float, int)):
        return True
    return _is_real_scalar(x)


cdef bint _is_real_scalar(object x):
    import numbers
    return isinstance(x, numbers.Real) and not isinstance(x, complex)


cdef inline Value _coerce(object x):
    """x as a Value, or None when it is not a Value or a real number."""
    if type(x) is Value or isinstance(x, Value):
        return <Value>x
    if _is_number(x):
        return leaf(float(x))
    return None


cdef str _describe(Value v):
    label = v._label
    if label:
        return f"{label!r} ({v.dp[0]!r})"
    return repr(v.dp[0])


cdef object _domain_error(type kind, str op, str what, Value a, Value b=None):
    if b is None:
        operands = _describe(a)
    else:
        operands = f"{_describe(a)} and {_describe(b)}"
    return kind(f"{op}: {what} (operands: {operands})")


cdef inline bint _finite(double x) noexcept nogil:
    return isfinite(x) != 0


cdef Value _pow(Value a, Value b, double c, bint const_exponent):
    cdef double base = a.dp[0]
    cdef double ex = c if const_exponent else b.dp[0]
    cdef double out = pow_const_forward(base, ex) if const_exponent else pow_forward(base, ex)
    if _finite(base) and _finite(ex) and not _finite(out):
        if base == 0.0 and ex < 0.0:
            raise _domain_error(ZeroDivisionError, "pow",
                                f"0.0 cannot be raised to the negative power {ex!r}",
                                a, None if const_exponent else b)
        if base < 0.0 and ex != floor(ex):
            raise _domain_error(ValueError, "pow",
                                f"a negative base to the fractional power {ex!r} is not real",
                                a, None if const_exponent else b)
        raise _domain_error(OverflowError, "pow", "result out of range",
                            a, None if const_exponent else b)
    if const_exponent:
        return node(out, OP_POW_CONST, a, None, c)
    return node(out, OP_POW, a, b, 0.0)


# Freeing without recursion.  Dropping the last reference to the root of a
# deep chain would free node after node recursively and overflow the C
# stack.  Instead a dying Value hands its inputs that would die with it to
# this stack, and the outermost deallocation releases them one at a time.
# (CPython's trashcan mechanism needs the GC header that a no_gc type lacks.)
# Only touched while the GIL is held and no Python code can run.
cdef PyObject** _free_stack = NULL
cdef Py_ssize_t _free_top = 0
cdef Py_ssize_t _free_cap = 0
cdef bint _freeing = False


cdef inline bint _defer_free(PyObject* child) noexcept:
    """Take over the reference to child if it is about to die; True on success.

    Takes a raw pointer: passing the object would add a reference.
    """
    global _free_stack, _free_cap
    cdef void* grown
    if child == <PyObject*>None or Py_REFCNT(child) != 1:
        return False
    if _free_top == _free_cap:
        grown = PyMem_Realloc(_free_stack, (2 * _free_cap + 256) * sizeof(PyObject*))
        if grown == NULL:
            return False    # out of memory: fall back to plain (recursive) freeing
        _free_stack = <PyObject**>grown
        _free_cap = 2 * _free_cap + 256
    Py_IncRef(child)
    _push_free(child)
    return True


cdef inline void _push_free(PyObject* p) noexcept:
    global _free_top
    _free_stack[_free_top] = p
    _free_top += 1


@cython.no_gc
@cython.final
cdef class Value:
    """A scalar in a differentiable expression graph.

    ``Value(data, _children=(), _op='', label='')`` has micrograd's signature.
    ``.data`` and ``.grad`` are floats; ``.label`` is a name for listings and
    drawings.  Arithmetic with numbers or other Values on either side builds
    the graph eagerly (values are computed at once); ``backward()`` fills
    ``.grad`` of every node reachable from this one.
    """

    def __cinit__(self):
        self.dp = &self._d
        self.gp = &self._g

    def __dealloc__(self):
        global _freeing, _free_top
        cdef PyObject* p
        if _defer_free(<PyObject*>self.a):
            self.a = None
        if _defer_free(<PyObject*>self.b):
            self.b = None
        if _freeing:
            return          # an outer deallocation is draining the stack
        _freeing = True
        while _free_top > 0:
            _free_top -= 1
            p = _free_stack[_free_top]
            Py_DecRef(p)
        _freeing = False

    def __reduce__(self):
        # Copy and pickle support: rebuild the node (and, recursively, its
        # inputs) with inline storage.
        return (_rebuild, (self.dp[0], self.gp[0], self._label, self.op, self.a,
                           self.b, self.c, self._given))

    def __init__(self, data, _children=(), _op='', label=''):
        if not _is_number(data):
            raise TypeError(
                f"Value: data must be a real number, got {type(data).__name__}")
        self._d = float(data)
        if label:
            self._label = str(label)
        if _children or _op:
            self._given = (tuple(_children), str(_op))

    # -- data, grad, label ------------------------------------------------

    @property
    def data(self):
        """The value (a float); writes go to the node's one home."""
        return self.dp[0]

    @data.setter
    def data(self, value):
        if not _is_number(value):
            raise TypeError(
                f"Value.data: expected a real number, got {type(value).__name__}")
        self.dp[0] = float(value)

    @property
    def grad(self):
        """d(root)/d(this node) after backward(); accumulates on leaves."""
        return self.gp[0]

    @grad.setter
    def grad(self, value):
        if not _is_number(value):
            raise TypeError(
                f"Value.grad: expected a real number, got {type(value).__name__}")
        self.gp[0] = float(value)

    @property
    def label(self):
        return self._label if self._label is not None else ''

    @label.setter
    def label(self, value):
        self._label = str(value) if value else None

    @property
    def _prev(self):
        """The node's inputs, as a set (micrograd's attribute)."""
        if self.op == OP_LEAF and self._given is not None:
            return set(self._given[0])
        if self.b is not None:
            return {self.a, self.b}
        if self.a is not None:
            return {self.a}
        return set()

    @property
    def _op(self):
        """micrograd's op string: '' for a leaf, '+', '*', '**2', 'ReLU', ..."""
        if self.op == OP_LEAF:
            return self._given[1] if self._given is not None else ''
        s = _MICROGRAD_OP[self.op]
        if self.op == OP_POW_CONST:
            # The exponent as the user wrote it (2 and 2.0 print differently).
            return s.format(c=self._given if self._given is not None else self.c)
        return s

    @property
    def op(self):
        """The op's name in fastgrad's op table ('leaf', 'add', 'mul', ...)."""
        return _OP_NAME[self.op]

    @property
    def inputs(self):
        """The node's inputs in order, as a tuple (empty for a leaf)."""
        if self.b is not None:
            return (self.a, self.b)
        if self.a is not None:
            return (self.a,)
        return ()

    @property
    def exponent(self):
        """The number exponent of a ``v ** c`` node (None for other ops)."""
        return self.c if self.op == OP_POW_CONST else None

    def __repr__(self):
        if self._label:
            return f"Value(data={self.dp[0]!r}, grad={self.gp[0]!r}, label={self._label!r})"
        return f"Value(data={self.dp[0]!r}, grad={self.gp[0]!r})"

    def __float__(self):
        return self.dp[0]

    # -- arithmetic -----------------------------------------------------

    def __add__(self, other):
        cdef Value o = _coerce(other)
        if o is None:
            return NotImplemented
        return node(add_forward(self.dp[0], o.dp[0]), OP_ADD, self, o, 0.0)

    def __radd__(self, other):
        # micrograd: other + self is self + other, with self first.
        cdef Value o = _coerce(other)
        if o is None:
            return NotImplemented
        return node(add_forward(self.dp[0], o.dp[0]), OP_ADD, self, o, 0.0)

    def __mul__(self, other):
        cdef Value o = _coerce(other)
        if o is None:
            return NotImplemented
        return node(mul_forward(self.dp[0], o.dp[0]), OP_MUL, self, o, 0.0)

    def __rmul__(self, other):
        cdef Value o = _coerce(other)
        if o is None:
            return NotImplemented
        return node(mul_forward(self.dp[0], o.dp[0]), OP_MUL, self, o, 0.0)

    def __sub__(self, other):
        cdef Value o = _coerce(other)
        if o is None:
            return NotImplemented
        return node(sub_forward(self.dp[0], o.dp[0]), OP_SUB, self, o, 0.0)

    def __rsub__(self, other):
        cdef Value o = _coerce(other)
        if o is None:
            return NotImplemented
        return node(sub_forward(o.dp[0], self.dp[0]), OP_SUB, o, self, 0.0)

    def __truediv__(self, other):
        cdef Value o = _coerce(other)
        if o is None:
            return NotImplemented
        return _divide(self, o)

    def __rtruediv__(self, other):
        cdef Value o = _coerce(other)
        if o is None:
            return NotImplemented
        return _divide(o, self)

    def __neg__(self):
        return node(neg_forward(self.dp[0]), OP_NEG, self, None, 0.0)

    def __pos__(self):
        return self

    def __pow__(self, other, modulo):
        if modulo is not None:
            return NotImplemented
        if type(other) is Value or isinstance(other, Value):
            return _pow(self, <Value>other, 0.0, False)
        if _is_number(other):
            out = _pow(self, None, float(other), True)
            out._given = other
            return out
        return NotImplemented

    def __rpow__(self, other, modulo):
        if modulo is not None:
            return NotImplemented
        cdef Value o = _coerce(other)
        if o is None:
            return NotImplemented
        return _pow(o, self, 0.0, False)

    # -- functions ------------------------------------------------------

    def relu(self):
        return node(relu_forward(self.dp[0]), OP_RELU, self, None, 0.0)

    def tanh(self):
        return node(tanh_forward(self.dp[0]), OP_TANH, self, None, 0.0)

    def exp(self):
        cdef double x = self.dp[0]
        cdef double out = exp_forward(x)
        if _finite(x) and not _finite(out):
            raise _domain_error(OverflowError, "exp", "result out of range", self)
        return node(out, OP_EXP, self, None, 0.0)

    def log(self):
        cdef double x = self.dp[0]
        if x == 0.0:
            raise _domain_error(ValueError, "log",
                                "log of 0 is -inf (log is defined for positive numbers)", self)
        if x < 0.0:
            raise _domain_error(ValueError, "log",
                                "log of a negative number is not real", self)
        return node(log_forward(x), OP_LOG, self, None, 0.0)

    def sigmoid(self):
        return node(sigmoid_forward(self.dp[0]), OP_SIGMOID, self, None, 0.0)

    # -- gradients --------------------------------------------------------

    def backward(self):
        """Reverse sweep from this node: fills .grad of every node it reaches.

        The root's gradient is 1; intermediate gradients restart from zero on
        each call; leaf gradients accumulate (+=), as in micrograd and
        PyTorch, so zero them (``model.zero_grad()``) between steps.  The
        topological order is computed without recursion and the sweep runs
        in compiled code.
        """
        global _backward_impl
        if _backward_impl is None:
            from fastgrad._scalar_lower import eager_backward
            _backward_impl = eager_backward
        _backward_impl(self)

    # -- arena support (private) ------------------------------------------

    @property
    def _home(self):
        """The buffer holding this node's data and grad (None when inline)."""
        return self.owner

    def _rehome(self, double[::1] data not None, double[::1] grad not None,
                Py_ssize_t i, owner):
        """Move this leaf's data and grad into data[i], grad[i] (an arena).

        The current values are copied there; the arena is kept alive by
        `owner`.  Only leaves may be re-homed.
        """
        if self.op != OP_LEAF:
            raise ValueError("Value._rehome: only a leaf can be moved into an arena")
        if i < 0 or i >= data.shape[0] or i >= grad.shape[0]:
            raise IndexError(f"Value._rehome: index {i} outside the arena")
        data[i] = self.dp[0]
        grad[i] = self.gp[0]
        self.dp = &data[i]
        self.gp = &grad[i]
        self.owner = owner


def _rebuild(double data, double grad, label, int op, Value a, Value b, double c, given):
    cdef Value v = node(data, op, a, b, c)
    v._g = grad
    v._label = label
    v._given = given
    return v


cdef Value _divide(Value a, Value b):
    if b.dp[0] == 0.0 and _finite(a.dp[0]):
        raise _domain_error(ZeroDivisionError, "truediv", "division by zero", a, b)
    return node(truediv_forward(a.dp[0], b.dp[0]), OP_TRUEDIV, a, b, 0.0)
