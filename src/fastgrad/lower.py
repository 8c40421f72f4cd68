"""Lowering: turn the graph below a root into a replayable Tape."""

from __future__ import annotations

from fastgrad._tape import Tape, lower_scalar
from fastgrad._value import Value

__all__ = ["lower", "Tape"]


def lower(root: Value, *, fuse: bool = True) -> Tape:
    """Lower the graph below ``root`` to a flat, compiled program.

    The graph is ordered without recursion (deep chains are fine), every
    node is given a slot, and chains of additions of products -- a neuron's
    ``sum(w*x, b)`` -- are fused into single ``dot`` instructions (pass
    ``fuse=False`` to keep one instruction per node; results are bitwise the
    same either way).

    The returned :class:`Tape` replays the graph: ``tape.forward()`` reads
    the leaves' current data, ``tape.backward()`` accumulates into their
    ``.grad``, ``tape.zero_grad()`` clears them.
    """
    if isinstance(root, Value):
        return lower_scalar(root, fuse)
    raise TypeError(
        f"lower: expected a fastgrad Value as the root, got {type(root).__name__}")
