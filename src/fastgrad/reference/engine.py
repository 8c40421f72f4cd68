"""Pure-Python scalar reverse-mode engine: the oracle and the baseline.

Every operator computes its output and, right below, a closure that pushes the
output's gradient back to its inputs (the micrograd layout). ``backward()``
orders the graph with an explicit stack, so chains of millions of nodes work.

This module deliberately imports nothing from the rest of fastgrad: it is the
independent implementation that the compiled engine is tested against.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Iterable, List, Union

__all__ = ["Value"]

Number = Union[int, float]


def _no_backward() -> None:
    """Backward step of a leaf: nothing flows further."""


def _as_float(data: Any, where: str) -> float:
    """Return ``data`` as a float, or raise TypeError naming its type."""
    kind = type(data)
    if kind is float:
        return data
    if kind is int or isinstance(data, numbers.Real):
        return float(data)
    raise TypeError(f"{where}: data must be a real number, got {kind.__name__}")


def _node_name(node: "Value") -> str:
    return f" (node {node.label!r})" if node.label else ""


def _power(base: float, exponent: float, op: str, node: "Value") -> float:
    """``base ** exponent`` with Python exceptions that name the op."""
    if base == 0.0 and exponent < 0:
        raise ZeroDivisionError(
            f"{op}: 0.0 cannot be raised to a negative power ({exponent!r}){_node_name(node)}"
        )
    if base < 0 and not float(exponent).is_integer():
        raise ValueError(
            f"{op}: negative base {base!r} with fractional exponent {exponent!r} "
            f"has no real result{_node_name(node)}"
        )
    try:
        return float(base**exponent)
    except OverflowError:
        raise OverflowError(
            f"{op}: {base!r} ** {exponent!r} overflows a float{_node_name(node)}"
        ) from None


def _power_partial(base: float, exponent: float) -> float:
    """d/d(base) of base**exponent, i.e. exponent * base**(exponent - 1).

    Exactly 0 when the exponent is 0. At base 0 with 0 < exponent < 1 the
    derivative is infinite and ``inf`` is returned; a partial that overflows
    is returned as a signed ``inf`` instead of raising during backward().
    """
    if exponent == 0:
        return 0.0
    if base == 0.0 and exponent < 1:
        return math.inf if exponent > 0 else math.nan
    try:
        return exponent * float(base ** (exponent - 1))
    except OverflowError:
        # base**(exponent - 1) is negative only for a negative base raised to
        # an odd integer power.
        negative = base < 0 and float(exponent - 1) % 2 == 1
        return math.copysign(math.inf, -exponent if negative else exponent)


class Value:
    """A scalar in an expression graph, with the gradient of the last backward().

    ``data`` and ``grad`` are floats. ``_prev`` is the set of input nodes and
    ``_op`` the symbol of the operation that produced this node ('' for leaves).
    """

    __slots__ = ("data", "grad", "label", "_op", "_prev", "_backward")

    def __init__(
        self,
        data: Number,
        _children: Iterable["Value"] = (),
        _op: str = "",
        label: str = "",
    ) -> None:
        self.data: float = _as_float(data, "Value")
        self.grad: float = 0.0
        self.label: str = label
        self._op: str = _op
        self._prev: set = set(_children)
        self._backward: Callable[[], None] = _no_backward

    # -- binary arithmetic ---------------------------------------------------

    def __add__(self, other: Any) -> "Value":
        other = _wrap(other)
        if other is NotImplemented:
            return NotImplemented
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __sub__(self, other: Any) -> "Value":
        other = _wrap(other)
        if other is NotImplemented:
            return NotImplemented
        out = Value(self.data - other.data, (self, other), "-")

        def _backward() -> None:
            self.grad += out.grad
            other.grad -= out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Any) -> "Value":
        other = _wrap(other)
        if other is NotImplemented:
            return NotImplemented
        out = Value(self.data * other.data, (self, other), "*")

        def _backward() -> None:
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __truediv__(self, other: Any) -> "Value":
        other = _wrap(other)
        if other is NotImplemented:
            return NotImplemented
        if other.data == 0.0:
            raise ZeroDivisionError(
                f"div: division by zero ({self.data!r} / {other.data!r})"
                f"{_node_name(other)}"
            )
        out = Value(self.data / other.data, (self, other), "/")

        def _backward() -> None:
            # d(a/b)/da = 1/b; d(a/b)/db = -a/b**2 = -(a/b)/b (no b*b underflow)
            self.grad += out.grad / other.data
            other.grad -= out.grad * (out.data / other.data)

        out._backward = _backward
        return out

    def __pow__(self, other: Any) -> "Value":
        if isinstance(other, Value):
            return self._pow_value(other)
        if not isinstance(other, numbers.Real):
            return NotImplemented
        exponent = other
        out = Value(_power(self.data, exponent, "pow", self), (self,), f"**{exponent}")

        def _backward() -> None:
            self.grad += _power_partial(self.data, exponent) * out.grad

        out._backward = _backward
        return out

    def _pow_value(self, other: "Value") -> "Value":
        out = Value(_power(self.data, other.data, "pow", self), (self, other), "**")

        def _backward() -> None:
            base, exponent = self.data, other.data
            self.grad += _power_partial(base, exponent) * out.grad
            # d(a**b)/db = a**b * ln(a): 0 at a == 0 (b >= 0 there), undefined
            # (nan) for a negative base, where a**b only exists at integer b.
            if base > 0:
                other.grad += out.data * math.log(base) * out.grad
            elif base < 0:
                other.grad += math.nan

        out._backward = _backward
        return out

    # -- reflected and unary -------------------------------------------------

    def __radd__(self, other: Any) -> "Value":
        other = _wrap(other)
        if other is NotImplemented:
            return NotImplemented
        return other + self

    def __rsub__(self, other: Any) -> "Value":
        other = _wrap(other)
        if other is NotImplemented:
            return NotImplemented
        return other - self

    def __rmul__(self, other: Any) -> "Value":
        other = _wrap(other)
        if other is NotImplemented:
            return NotImplemented
        return other * self

    def __rtruediv__(self, other: Any) -> "Value":
        other = _wrap(other)
        if other is NotImplemented:
            return NotImplemented
        return other / self

    def __rpow__(self, other: Any) -> "Value":
        other = _wrap(other)
        if other is NotImplemented:
            return NotImplemented
        return other._pow_value(self)

    def __neg__(self) -> "Value":
        out = Value(-self.data, (self,), "neg")

        def _backward() -> None:
            self.grad -= out.grad

        out._backward = _backward
        return out

    # -- elementwise functions -----------------------------------------------

    def relu(self) -> "Value":
        out = Value(0.0 if self.data < 0 else self.data, (self,), "ReLU")

        def _backward() -> None:
            if out.data > 0:
                self.grad += out.grad

        out._backward = _backward
        return out

    def tanh(self) -> "Value":
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward() -> None:
            self.grad += (1.0 - out.data * out.data) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> "Value":
        try:
            result = math.exp(self.data)
        except OverflowError:
            raise OverflowError(
                f"exp: exp({self.data!r}) overflows a float{_node_name(self)}"
            ) from None
        out = Value(result, (self,), "exp")

        def _backward() -> None:
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self) -> "Value":
        if not self.data > 0:
            raise ValueError(
                f"log: argument must be positive, got {self.data!r}{_node_name(self)}"
            )
        out = Value(math.log(self.data), (self,), "log")

        def _backward() -> None:
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def sigmoid(self) -> "Value":
        x = self.data
        if x >= 0:
            s = 1.0 / (1.0 + math.exp(-x))
        else:
            e = math.exp(x)
            s = e / (1.0 + e)
        out = Value(s, (self,), "sigmoid")

        def _backward() -> None:
            self.grad += out.data * (1.0 - out.data) * out.grad

        out._backward = _backward
        return out

    # -- reverse sweep -------------------------------------------------------

    def backward(self) -> None:
        """Fill ``.grad`` of every node reachable from this one.

        Leaf gradients accumulate across calls (``+=``; reset them with
        ``Module.zero_grad``); gradients of intermediate nodes restart from
        zero on every call, so a second call exactly doubles leaf gradients.
        """
        order = _topological_order(self)
        for node in order:
            if node._prev:
                node.grad = 0.0
        if self._prev:
            self.grad = 1.0
        else:
            self.grad += 1.0
        for node in reversed(order):
            node._backward()

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"


def _wrap(other: Any) -> Any:
    """Return ``other`` as a Value, or NotImplemented for non-numbers."""
    if isinstance(other, Value):
        return other
    kind = type(other)
    if kind is float or kind is int or isinstance(other, numbers.Real):
        return Value(other)
    return NotImplemented


def _topological_order(root: Value) -> List[Value]:
    """Nodes reachable from ``root``, inputs before the nodes that use them.

    A depth-first post-order walk with an explicit stack of (node, iterator
    over its inputs) pairs instead of recursion.
    """
    order: List[Value] = []
    visited = {root}
    stack = [(root, iter(root._prev))]
    while stack:
        node, inputs = stack[-1]
        for child in inputs:
            if child not in visited:
                visited.add(child)
                stack.append((child, iter(child._prev)))
                break
        else:
            stack.pop()
            order.append(node)
    return order
