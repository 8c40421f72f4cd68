"""Parameter arenas: one contiguous data buffer and one grad buffer per dtype.

A ``TensorArena`` moves a list of tensors into flat buffers: afterwards each
tensor's ``.data`` and ``.grad`` are views into them.  An optimizer step is
then one kernel call per dtype, ``zero_grad`` one fill, and a data-parallel
all-reduce one call over the grad buffer.  Tapes read leaves by reference,
so moving a tensor into an arena never invalidates a tape.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import numpy as np

from fastgrad.tensor import Tensor

__all__ = ["TensorArena", "arena_of", "home_of"]

# id(data buffer) -> arena, so an arena can be found from its tensors.
_BY_BUFFER: "weakref.WeakValueDictionary[int, TensorArena]" = weakref.WeakValueDictionary()


class TensorArena:
    """Flat storage for the data and grads of ``params`` (grouped by dtype)."""

    def __init__(self, params: Iterable[Tensor]):
        self.params: list[Tensor] = list(params)
        seen: set[int] = set()
        sizes: dict[np.dtype, int] = {}
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor):
                raise TypeError(f"arena: parameter {i} is a {type(p).__name__}, not a Tensor")
            if not p.requires_grad:
                raise ValueError(f"arena: parameter {i} (shape {p.shape}) does not require grad")
            if id(p) in seen:
                raise ValueError(f"arena: parameter {i} (shape {p.shape}) appears twice")
            seen.add(id(p))
            sizes[p.dtype] = sizes.get(p.dtype, 0) + p.size
        self.data: dict[np.dtype, np.ndarray] = {dt: np.empty(n, dtype=dt) for dt, n in sizes.items()}
        self.grad: dict[np.dtype, np.ndarray] = {dt: np.zeros(n, dtype=dt) for dt, n in sizes.items()}
        offsets = dict.fromkeys(sizes, 0)
        self.grad_views: list[np.ndarray] = []
        self.data_views: list[np.ndarray] = []
        self.ranges: list[tuple[np.dtype, int, int]] = []
        for p in self.params:
            dt = p.dtype
            start = offsets[dt]
            stop = start + p.size
            offsets[dt] = stop
            self.ranges.append((dt, start, stop))
            view = self.data[dt][start:stop].reshape(p.shape)
            view[...] = p._data
            gview = self.grad[dt][start:stop].reshape(p.shape)
            if p.grad is not None:
                gview[...] = p.grad
            p._data = view
            p.grad = gview
            self.grad_views.append(gview)
            self.data_views.append(view)
        for buf in self.data.values():
            _BY_BUFFER[id(buf)] = self
        # id(tensor) -> its position (the arena holds the tensors, so ids are stable)
        self.index: dict[int, int] = {id(p): i for i, p in enumerate(self.params)}
        # (data, grad) per dtype, in a fixed order (what optimizers iterate).
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = [
            (self.data[dt], self.grad[dt]) for dt in self.data]

    def __len__(self) -> int:
        return len(self.params)

    def __repr__(self) -> str:
        parts = ", ".join(f"{dt}: {buf.size}" for dt, buf in self.data.items())
        return f"TensorArena({len(self.params)} tensors; {parts})"

    def owns(self, params: list[Tensor]) -> bool:
        """Whether ``params`` are exactly this arena's tensors, still at home."""
        if len(params) != len(self.params):
            return False
        for p, q in zip(params, self.params):
            if p is not q:
                return False
        return self.intact()

    def intact(self) -> bool:
        """Whether every tensor's data still lives here (identity checks only)."""
        for p, view in zip(self.params, self.data_views):
            if p._data is not view:
                return False
        return True

    def sync_grads(self) -> list[int]:
        """Bring gradients set elsewhere (``p.grad = array``) back home.

        Returns the indices of tensors whose grad is None (no gradient this
        step): their home grad is zeroed, and callers may skip them.
        """
        missing = []
        for i, (p, view) in enumerate(zip(self.params, self.grad_views)):
            g = p.grad
            if g is view:
                continue
            if g is None:
                view[...] = 0
                missing.append(i)
                continue
            view[...] = g
            p.grad = view
        return missing

    def zero_grad(self) -> None:
        for buf in self.grad.values():
            buf.fill(0)
        for p, view in zip(self.params, self.grad_views):
            if p.grad is not view:
                p.grad = view


def arena_of(params: list[Tensor]) -> TensorArena | None:
    """The arena holding exactly ``params`` (in order), if there is one."""
    if not params:
        return None
    base = params[0]._data.base
    arena = _BY_BUFFER.get(id(base)) if base is not None else None
    if arena is not None and arena.owns(params):
        return arena
    return None


def home_of(p: Tensor) -> tuple[TensorArena, int] | None:
    """(arena, position) of the arena ``p`` lives in, or None when it lives in none."""
    base = p._data.base
    arena = _BY_BUFFER.get(id(base)) if base is not None else None
    if arena is None or arena.data.get(p.dtype) is not base:
        return None
    i = arena.index.get(id(p))
    if i is None or arena.data_views[i] is not p._data:
        return None
    return arena, i
