"""fastgrad.Tensor: numpy-backed tensors whose graph lowers to the array tape.

Ops evaluate eagerly -- values are there at once and shape errors raise at
the op that caused them -- by running the op's compiled instruction on the
operands' arrays (the same kernels a lowered tape replays).  Every op is
recorded in the graph (unless inside ``fastgrad.no_grad()``), so
``fastgrad.lower(loss)`` can replay it with new leaf data.  ``t.backward()``
lowers the graph and runs the compiled reverse sweep.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from fastgrad import _plan
from fastgrad._convert import (I64_MAX, I64_MIN, beyond_exact, checked_cast, first_big_int,
                               from_objects, is_int)
from fastgrad._atape import DTYPE_CODES, eager_forward
from fastgrad._tensor_methods import ElementwiseMethods
from fastgrad.ops import BY_NAME, BY_OPCODE

__all__ = ["Tensor", "tensor", "zeros", "ones", "full", "randn", "no_grad",
           "is_grad_enabled", "TracingError"]

_F64 = np.dtype(np.float64)
_F32 = np.dtype(np.float32)
_I64 = np.dtype(np.int64)
_FLOATS = (_F32, _F64)

_OP = {name: op.opcode for name, op in BY_NAME.items()}
_LEAF = _OP["leaf"]

_state = threading.local()


class TracingError(RuntimeError):
    """A data-dependent value was requested while ``fastgrad.compile`` traced."""


def _tracing() -> str | None:
    return getattr(_state, "tracing", None)


def _refuse_while_tracing(what: str) -> None:
    name = _tracing()
    if name is not None:
        raise TracingError(
            f"{what} inside the compiled function {name!r}: fastgrad.compile traces the "
            f"function once and replays the recorded ops, so a value read from a tensor "
            f"while tracing would be frozen at its first value. Keep data-dependent Python "
            f"(if/while on tensor values, float(), .item(), numpy conversions) outside the "
            f"compiled function, or express it with tensor ops (e.g. relu, max, masks).")


def is_grad_enabled() -> bool:
    """False inside ``fastgrad.no_grad()`` (on this thread)."""
    return getattr(_state, "grad_enabled", True)


class no_grad:
    """Context manager (and decorator): ops inside record no graph.

    Results are plain constants: nothing is differentiated through them and
    lowering treats them as data.
    """

    def __enter__(self):
        self._previous = is_grad_enabled()
        _state.grad_enabled = False
        return self

    def __exit__(self, *exc):
        _state.grad_enabled = self._previous
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)

        return wrapper


# -- conversion ------------------------------------------------------------------

def _resolve_dtype(dtype, name: str = "tensor") -> np.dtype | None:
    """float32, float64 or int64 (None stays None); any other dtype is a TypeError.

    Other dtypes are refused rather than mapped (int8 silently becoming
    int64, float16 becoming float64 would change what the caller asked for).
    """
    if dtype is None:
        return None
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{name}: {dtype!r} is not a dtype: {exc}") from None
    if dt in _FLOATS or dt == _I64:
        return dt
    raise TypeError(f"{name}: dtype {dt} is not supported (use float32, float64 or int64)")


def _to_array(data, dtype=None) -> np.ndarray:
    """A fresh C-contiguous float32/float64/int64 array from array-like data.

    Values are never wrapped around or truncated: integers beyond int64, NaN
    or fractions converted to int64 and finite values overflowing float32
    raise (see checked_cast).
    """
    if isinstance(data, Tensor):
        data = data._data
    if isinstance(data, (str, bytes)):
        raise TypeError(f"tensor: expected numbers or an array, got {type(data).__name__}")
    target = _resolve_dtype(dtype)
    try:
        arr = np.asarray(data)
    except ValueError as exc:
        raise ValueError(f"tensor: data is not a rectangular array of numbers "
                         f"(ragged nested lists?): {exc}") from None
    if arr.dtype == object:
        arr = from_objects(arr, target, data)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"tensor: expected numbers, got an array of dtype {arr.dtype}"
                        f" (from {type(data).__name__})")
    if (target is None and arr.dtype == _F64 and not isinstance(data, np.ndarray)
            and beyond_exact(arr)):
        # numpy turns Python ints that do not all fit one integer type (2**63
        # with -1) into float64, rounding them: refuse unless a float is there.
        leaves = np.asarray(data, dtype=object).ravel().tolist()
        big = first_big_int(leaves)
        if big is not None and not any(isinstance(v, (float, np.floating)) for v in leaves):
            raise OverflowError(f"tensor: value {big} does not fit in int64 (range "
                                f"[{I64_MIN}, {I64_MAX}]); write it as a float for a "
                                f"float tensor")
    if target is None:
        if arr.dtype in _FLOATS:
            target = arr.dtype
        elif arr.dtype.kind == "f":        # float16, longdouble
            target = _F64
        else:
            target = _I64
    out = checked_cast(arr, target, "tensor")
    return np.array(out, order="C", copy=True) if out is arr else out


def _new(data: np.ndarray, op: int = _LEAF, inputs: tuple = (), attrs: tuple = (),
         requires_grad: bool = False, label: str | None = None) -> Tensor:
    t = Tensor.__new__(Tensor)
    t._data = data
    t.grad = None
    t.requires_grad = requires_grad
    t.label = label
    t._op = op
    t._inputs = inputs
    t._attrs = attrs
    t._tape = None
    return t


def _label_part(t) -> str:
    return f" '{t.label}'" if t.label else ""


def _constant(value, dtype) -> Tensor:
    return _new(np.array(value, dtype=dtype))


def _as_operand(x, like: Tensor, name: str) -> Tensor:
    """x as a Tensor for a binary op with `like` (numbers take like's dtype)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (bool, int, float, np.number)) and not isinstance(x, complex):
        dt = like.dtype if like.dtype in _FLOATS else (
            _F64 if isinstance(x, (float, np.floating)) else _I64)
        return _constant(x, dt)
    if isinstance(x, (np.ndarray, list, tuple)):
        return _new(_to_array(x))
    raise TypeError(f"{name}: unsupported operand type {type(x).__name__} "
                    f"(with {_plan.describe(like)})")


def _cast(t: Tensor, dtype: np.dtype) -> Tensor:
    if t.dtype == dtype:
        return t
    src, dst = DTYPE_CODES[t.dtype], DTYPE_CODES[dtype]
    plan = _plan.plan_cast(t, src, dst)
    return _apply("cast", dtype, (t,), plan)


def _apply(name: str, dtype: np.dtype, inputs: tuple, plan: _plan.Plan,
           attrs: tuple = ()) -> Tensor:
    """Evaluate one op eagerly through its compiled instruction; record it."""
    op = _OP[name]
    # The result is a view of the array it owns: numpy refuses to resize a
    # view, so a user cannot free the memory a tape lowered over it writes.
    out = np.empty(plan.shape, dtype=dtype).view()
    a = inputs[0]._data
    b = inputs[1]._data if len(inputs) > 1 else None
    scratch = np.empty(plan.scratch, dtype=dtype) if plan.scratch else None
    bad = eager_forward(op, DTYPE_CODES[dtype], plan.meta, plan.c, a, b, out, scratch)
    if bad >= 0:
        target = int(inputs[1]._data.reshape(-1)[bad])
        raise IndexError(f"cross_entropy: target {target} at row {bad} is out of range "
                         f"for {inputs[0].shape[-1]} classes")
    enabled = is_grad_enabled()
    if not enabled and _tracing() is None:
        return _new(out)
    # While compile traces, every op is recorded (a constant would freeze the
    # value); under no_grad it is recorded without gradient.
    needs = enabled and any(t.requires_grad for t in inputs)
    # attrs end with (scratch, plan): lowering reads both.
    return _new(out, op, inputs, attrs + (scratch, plan), needs)


def _result_dtype(name, a: Tensor, b: Tensor) -> np.dtype:
    if a.dtype in _FLOATS or b.dtype in _FLOATS:
        if a.dtype == _F64 or b.dtype == _F64:
            return _F64
        return _F32
    raise TypeError(f"{name}: arithmetic on two integer tensors is not supported on the "
                    f"tape ({_plan.describe(a)} and {_plan.describe(b)}); convert one with "
                    f"dtype='float64'")


def _binary(name: str, a: Tensor, b: Tensor) -> Tensor:
    dt = _result_dtype(name, a, b)
    a, b = _cast(a, dt), _cast(b, dt)
    return _apply(name, dt, (a, b), _plan.plan_binary(name, a, b))


def _unary(name: str, a: Tensor, c: float = 0.0) -> Tensor:
    if a.dtype not in _FLOATS:
        a = _cast(a, _F64)
    return _apply(name, a.dtype, (a,), _plan.plan_unary(a, c))


class Tensor(ElementwiseMethods):
    """An n-dimensional array in a differentiable graph.

    ``.data`` is the live numpy array (in-place writes are seen by tapes
    that read this tensor); ``.grad`` is an array of the same shape, or None
    until a backward pass reaches it.
    """

    __slots__ = ("_data", "grad", "requires_grad", "label", "_op", "_inputs",
                 "_attrs", "_tape", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor

    def __init__(self, data, dtype=None, requires_grad: bool = False,
                 label: str | None = None):
        if not isinstance(requires_grad, (bool, np.bool_)):
            raise TypeError(f"tensor: requires_grad must be True or False, got "
                            f"{requires_grad!r}")
        if label is not None and not isinstance(label, str):
            raise TypeError(f"tensor: label must be a str or None, got {type(label).__name__}")
        arr = _to_array(data, dtype)
        if requires_grad and arr.dtype not in _FLOATS:
            raise ValueError(f"tensor: only float tensors can require grad, got dtype "
                             f"{arr.dtype}")
        self._data = arr
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.label = label
        self._op = _LEAF
        self._inputs = ()
        self._attrs = ()
        self._tape = None

    # -- data -----------------------------------------------------------------

    @property
    def data(self) -> np.ndarray:
        return self._data

    @data.setter
    def data(self, value) -> None:
        """Assign new data.  Same shape: copied into the tensor's array, which
        keeps its home (a module's arena, an optimizer's view, every tape that
        reads it).  Another shape: a leaf takes a new array (tapes lowered
        with the old shape then refuse to run); an op's result refuses."""
        if isinstance(value, (str, bytes)):
            raise TypeError(f"Tensor.data: expected numbers or an array, got "
                            f"{type(value).__name__}")
        arr = np.asarray(getattr(value, "_data", value))
        current = self._data
        if arr.dtype == object:
            arr = from_objects(arr, current.dtype, value, "Tensor.data")
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"Tensor.data: expected numbers, got an array of dtype {arr.dtype}")
        # The tensor keeps its dtype: values it cannot hold raise (no wraparound,
        # no truncation of 1.5 into an int64 tensor, no overflow to inf).
        arr = checked_cast(arr, current.dtype, "Tensor.data")
        if self._op != _LEAF:
            # An op's result is the slot a lowered tape computes into.
            if arr.shape != current.shape:
                raise ValueError(
                    f"Tensor.data: the {self._opname()} result{_label_part(self)} has "
                    f"shape {current.shape}; only a leaf's data can take another shape, "
                    f"got {arr.shape}")
            np.copyto(current, arr)
            return
        if arr.shape == current.shape and current.flags.writeable:
            if arr is not current:
                np.copyto(current, arr)
            return
        self._data = np.array(arr, order="C", copy=True)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return self._data.size

    def __len__(self) -> int:
        return len(self._data)

    def numpy(self) -> np.ndarray:
        _refuse_while_tracing("t.numpy()")
        return self._data

    def __array__(self, dtype=None, copy=None):
        _refuse_while_tracing("converting a tensor to a numpy array")
        if dtype is None:
            return self._data.copy() if copy else self._data
        return self._data.astype(dtype, copy=bool(copy) or dtype != self._data.dtype)

    def item(self) -> float | int:
        _refuse_while_tracing("t.item()")
        if self._data.size != 1:
            raise ValueError(f"item: only a one-element tensor converts to a number, "
                             f"got shape {self.shape}")
        return self._data.item()

    def __float__(self) -> float:
        _refuse_while_tracing("float(t)")
        return float(self.item())

    def __int__(self) -> int:
        _refuse_while_tracing("int(t)")
        return int(self.item())

    def __bool__(self) -> bool:
        _refuse_while_tracing("bool(t) (an if/while on a tensor)")
        return bool(self.item())

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, outside the graph."""
        return _new(self._data)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and self.dtype not in _FLOATS:
            raise ValueError(f"requires_grad_: only float tensors can require grad, got "
                             f"{self.dtype}")
        if self._op != _LEAF and not flag:
            raise ValueError("requires_grad_: only a leaf's flag can be changed")
        self.requires_grad = bool(flag)
        return self

    @property
    def is_leaf(self) -> bool:
        return self._op == _LEAF

    @property
    def op(self) -> str:
        return BY_OPCODE[self._op].name

    def _opname(self) -> str:
        return BY_OPCODE[self._op].name

    @property
    def inputs(self) -> tuple:
        return self._inputs

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", precision=4,
                               threshold=20, edgeitems=2)
        extras = []
        if self.dtype != _F64:
            extras.append(f"dtype={self.dtype}")
        if self.requires_grad:
            extras.append("requires_grad=True")
        if self.label:
            extras.append(f"label={self.label!r}")
        tail = (", " + ", ".join(extras)) if extras else ""
        return f"tensor({body}{tail})"

    # -- arithmetic ---------------------------------------------------------------

    def __add__(self, other):
        return _binary("add", self, _as_operand(other, self, "add"))

    def __radd__(self, other):
        return _binary("add", _as_operand(other, self, "add"), self)

    def __sub__(self, other):
        return _binary("sub", self, _as_operand(other, self, "sub"))

    def __rsub__(self, other):
        return _binary("sub", _as_operand(other, self, "sub"), self)

    def __mul__(self, other):
        return _binary("mul", self, _as_operand(other, self, "mul"))

    def __rmul__(self, other):
        return _binary("mul", _as_operand(other, self, "mul"), self)

    def __truediv__(self, other):
        return _binary("truediv", self, _as_operand(other, self, "truediv"))

    def __rtruediv__(self, other):
        return _binary("truediv", _as_operand(other, self, "truediv"), self)

    def __pow__(self, other):
        if isinstance(other, (int, float, np.integer, np.floating)) and not isinstance(other, bool):
            return _unary("pow_const", self, float(other))
        return _binary("pow", self, _as_operand(other, self, "pow"))

    def __rpow__(self, other):
        return _binary("pow", _as_operand(other, self, "pow"), self)

    def __neg__(self):
        return _unary("neg", self)

    def __pos__(self):
        return self

    def __matmul__(self, other):
        return matmul(self, _as_operand(other, self, "matmul"))

    def __rmatmul__(self, other):
        return matmul(_as_operand(other, self, "matmul"), self)

    # Comparisons give plain boolean arrays: they are not differentiable.
    def __lt__(self, other):
        _refuse_while_tracing("comparing a tensor (t < ...)")
        return self._data < np.asarray(getattr(other, "_data", other))

    def __le__(self, other):
        _refuse_while_tracing("comparing a tensor (t <= ...)")
        return self._data <= np.asarray(getattr(other, "_data", other))

    def __gt__(self, other):
        _refuse_while_tracing("comparing a tensor (t > ...)")
        return self._data > np.asarray(getattr(other, "_data", other))

    def __ge__(self, other):
        _refuse_while_tracing("comparing a tensor (t >= ...)")
        return self._data >= np.asarray(getattr(other, "_data", other))

    __hash__ = object.__hash__

    # -- functions ----------------------------------------------------------------

    # relu, tanh, sigmoid, exp, log, abs, sqrt, sin, ..., minimum, clamp:
    # generated from the op table (fastgrad._tensor_methods) on top of these.
    def _elementwise(self, name: str, c: Any = 0.0, attr: str = "") -> Tensor:
        if attr and (not isinstance(c, (int, float, np.integer, np.floating))
                     or isinstance(c, (bool, np.bool_))):
            raise TypeError(f"{name}: {attr} must be a real number, got {type(c).__name__}")
        return _unary(name, self, float(c))

    def _elementwise_binary(self, name: str, other: Any) -> Tensor:
        return _binary(name, self, _as_operand(other, self, name))

    def sum(self, axis=None, keepdims: bool = False):
        a = self if self.dtype in _FLOATS else _cast(self, _F64)
        return _apply("sum", a.dtype, (a,), _plan.plan_reduce("sum", a, axis, keepdims),
                      (axis, keepdims))

    def mean(self, axis=None, keepdims: bool = False):
        a = self if self.dtype in _FLOATS else _cast(self, _F64)
        total = a.sum(axis=axis, keepdims=keepdims)
        count = a.size // max(total.size, 1) if a.size else 0
        if count == 0:
            return total * _constant(np.nan, a.dtype)
        return total * _constant(1.0 / count, a.dtype)

    def max(self, axis=None, keepdims: bool = False):
        a = self if self.dtype in _FLOATS else _cast(self, _F64)
        return _apply("max", a.dtype, (a,), _plan.plan_reduce("max", a, axis, keepdims),
                      (axis, keepdims))

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        a = self
        return _apply("reshape", a.dtype, (a,), _plan.plan_reshape(a, shape), (shape,))

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _apply("transpose", self.dtype, (self,),
                      _plan.plan_transpose(self, axes or None), (axes or None,))

    @property
    def T(self):
        return self.transpose()

    def __getitem__(self, key):
        return _apply("getitem", self.dtype, (self,), _plan.plan_getitem(self, key), (key,))

    # -- gradients ----------------------------------------------------------------

    def backward(self, grad=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf that requires grad.

        ``grad`` (d(loss)/d(self)) is required unless self has one element.
        Lowers the graph and runs the compiled reverse sweep.
        """
        if self._tape is not None:      # the output of a compiled function
            self._tape.backward(grad)
            return
        from fastgrad.lower import lower_tensor

        # A compiled call's result inside this graph is a leaf of this sweep;
        # its gradient then goes on through the call's own tape, which
        # refuses if a later call has replayed it.
        tape = lower_tensor(self, expose_grads=False, cut_calls=True)
        calls = [t for t in tape.leaves if t._tape is not None]
        for t in calls:
            t.grad = None           # (it was the call's own gradient slot)
        tape.backward(grad)
        for t in calls:
            if t.grad is not None:
                t._tape.backward(t.grad)

    def zero_grad(self) -> None:
        if self.grad is not None:
            self.grad[...] = 0


def matmul(a: Tensor, b: Tensor) -> Tensor:
    dt = _result_dtype("matmul", a, b)
    a, b = _cast(a, dt), _cast(b, dt)
    return _apply("matmul", dt, (a, b), _plan.plan_matmul(a, b))


# -- factories ---------------------------------------------------------------------

def tensor(data, dtype=None, requires_grad: bool = False, label: str | None = None) -> Tensor:
    """A new leaf tensor holding a copy of ``data``.

    Float arrays keep their dtype (float32 stays float32); Python floats give
    float64; integer data gives int64 (class targets, indices).  ``dtype``
    is float32, float64 or int64.  Values are never wrapped around or
    truncated: an integer beyond int64 raises OverflowError, a fraction, NaN
    or inf converted to int64 raises ValueError, and a finite value that
    would overflow float32 raises OverflowError.
    """
    return Tensor(data, dtype=dtype, requires_grad=requires_grad, label=label)


def _shape_arg(shape: tuple, name: str) -> tuple[int, ...]:
    """Sizes given as ``f(2, 3)`` or ``f((2, 3))``: ints >= 0 (numpy ints too;
    no bool, float or str)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for i, s in enumerate(shape):
        if not is_int(s):
            raise TypeError(f"{name}: shape entry {i} is {s!r} ({type(s).__name__}); sizes "
                            f"must be ints >= 0, got shape {shape!r}")
        if s < 0:
            raise ValueError(f"{name}: shape entry {i} is {s}; sizes must be >= 0, got "
                             f"shape {shape!r}")
    return tuple(int(s) for s in shape)


def _float_dtype(dtype, name: str, allow_int64: bool = False) -> np.dtype:
    """A factory's dtype: float64 by default, float32, and int64 where allowed."""
    if dtype is None:
        return _F64
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return _resolve_dtype(dtype, name)      # raises: not a dtype
    if dt in _FLOATS or (allow_int64 and dt == _I64):
        return dt
    allowed = "float32, float64 or int64" if allow_int64 else "float32 or float64"
    raise TypeError(f"{name}: dtype {dt} is not supported (use {allowed})")


def zeros(*shape, dtype=None, requires_grad=False, label=None) -> Tensor:
    """A tensor of zeros; ``dtype`` float64 (default), float32 or int64."""
    return Tensor(np.zeros(_shape_arg(shape, "zeros"), dtype=_float_dtype(dtype, "zeros", True)),
                  requires_grad=requires_grad, label=label)


def ones(*shape, dtype=None, requires_grad=False, label=None) -> Tensor:
    """A tensor of ones; ``dtype`` float64 (default), float32 or int64."""
    return Tensor(np.ones(_shape_arg(shape, "ones"), dtype=_float_dtype(dtype, "ones", True)),
                  requires_grad=requires_grad, label=label)


def full(shape, fill_value, dtype=None, requires_grad=False, label=None) -> Tensor:
    """A tensor filled with a real number; ``dtype`` float64 (default), float32 or
    int64 (which takes only an integral ``fill_value`` in range)."""
    dt = _float_dtype(dtype, "full", True)
    if not (is_int(fill_value) or isinstance(fill_value, (float, np.floating))):
        raise TypeError(f"full: fill_value must be a real number, got {fill_value!r} "
                        f"({type(fill_value).__name__})")
    if is_int(fill_value) and not I64_MIN <= int(fill_value) <= I64_MAX:
        value = from_objects(np.array(fill_value, dtype=object), dt, fill_value, "full")
    else:
        value = np.asarray(fill_value)
    value = checked_cast(value, dt, "full")
    return Tensor(np.full(_shape_arg((shape,), "full"), value, dtype=dt),
                  requires_grad=requires_grad, label=label)


def randn(*shape, dtype=None, requires_grad=False, label=None,
          generator: np.random.Generator | None = None) -> Tensor:
    """Standard normal samples (numpy's global state unless a Generator is given);
    ``dtype`` float64 (default) or float32."""
    shape = _shape_arg(shape, "randn")
    dt = _float_dtype(dtype, "randn")
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(f"randn: generator must be a numpy.random.Generator, got "
                        f"{type(generator).__name__}")
    values = generator.standard_normal(shape) if generator is not None \
        else np.random.standard_normal(shape)
    return Tensor(np.asarray(values, dtype=dt),
                  requires_grad=requires_grad, label=label)

