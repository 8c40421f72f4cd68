"""Activations and losses on tensors (``import fastgrad.nn.functional as F``).

Fused kernels where they are measurably better (log_softmax, cross_entropy);
the rest are written once from primitives, so their gradients come from the
primitives' kernels.  Losses take ``reduction="mean" | "sum" | "none"``
(default ``"mean"``, as in PyTorch).
"""

from __future__ import annotations

import numpy as np

from fastgrad import _plan
from fastgrad.tensor import Tensor, _apply, _as_operand, _cast, _F64, _FLOATS, _I64

__all__ = ["relu", "tanh", "sigmoid", "softmax", "log_softmax", "cross_entropy",
           "mse_loss", "hinge_loss", "binary_cross_entropy_with_logits"]


def _tensor(x, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected a Tensor or an array of numbers, got "
                        f"{type(x).__name__}")
    from fastgrad.tensor import tensor
    return tensor(arr)


def _float(x: Tensor) -> Tensor:
    return x if x.dtype in _FLOATS else _cast(x, _F64)


def relu(x: Tensor) -> Tensor:
    return _tensor(x, "relu").relu()


def tanh(x: Tensor) -> Tensor:
    return _tensor(x, "tanh").tanh()


def sigmoid(x: Tensor) -> Tensor:
    return _tensor(x, "sigmoid").sigmoid()


def _move_last(x: Tensor, axis: int) -> tuple[Tensor, tuple | None]:
    nd = x.ndim
    if nd == 0:
        raise ValueError("log_softmax: needs at least one dimension")
    axis = _plan.normalize_axes("log_softmax", axis, nd)[0]
    if axis == nd - 1:
        return x, None
    perm = tuple(d for d in range(nd) if d != axis) + (axis,)
    inverse = tuple(int(i) for i in np.argsort(perm))
    return x.transpose(perm), inverse


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) along ``axis``, computed stably in one fused kernel."""
    x = _float(_tensor(x, "log_softmax"))
    moved, inverse = _move_last(x, axis)
    out = _apply("log_softmax", moved.dtype, (moved,), _plan.plan_log_softmax(moved))
    return out if inverse is None else out.transpose(inverse)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(log_softmax(x)): stable for any logits."""
    return log_softmax(x, axis).exp()


def _reduce(loss: Tensor, reduction: str, name: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(logits: Tensor, targets, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of (batch, classes) logits against class indices.

    ``targets`` is an integer Tensor or array of shape (batch,); every
    target must be in [0, classes) (checked before any kernel reads it).
    """
    logits = _float(_tensor(logits, "cross_entropy"))
    if isinstance(targets, Tensor):
        t = targets
    else:
        arr = np.asarray(targets)
        if arr.dtype.kind not in "iub":
            raise ValueError(f"cross_entropy: targets must be integer class indices, got "
                             f"dtype {arr.dtype}")
        from fastgrad.tensor import tensor
        t = tensor(arr)
    if t.dtype != _I64:
        raise ValueError(f"cross_entropy: targets must be integer class indices, got dtype "
                         f"{t.dtype}")
    plan = _plan.plan_cross_entropy(logits, t, reduction)
    data = t.data
    if data.size:
        low, high = int(data.min()), int(data.max())
        classes = logits.shape[1]
        if low < 0 or high >= classes:
            bad = low if low < 0 else high
            raise IndexError(f"cross_entropy: target {bad} is out of range for {classes} "
                             f"classes (targets must be in [0, {classes}))")
    return _apply("cross_entropy", logits.dtype, (logits, t), plan, (reduction,))


def _pair(name, prediction, target) -> tuple[Tensor, Tensor]:
    p = _float(_tensor(prediction, name))
    t = _as_operand(target, p, name) if not isinstance(target, Tensor) else target
    if tuple(p.shape) != tuple(t.shape):
        raise ValueError(f"{name}: input has shape {tuple(p.shape)} but target has shape "
                         f"{tuple(t.shape)}")
    return p, t


def mse_loss(prediction: Tensor, target, reduction: str = "mean") -> Tensor:
    """Mean (or summed) squared error ``(prediction - target) ** 2``."""
    p, t = _pair("mse_loss", prediction, target)
    diff = p - t
    return _reduce(diff * diff, reduction, "mse_loss")


def hinge_loss(scores: Tensor, target, margin: float = 1.0, reduction: str = "mean") -> Tensor:
    """Max-margin loss ``relu(margin - target * scores)`` for targets in {-1, +1}."""
    s, t = _pair("hinge_loss", scores, target)
    return _reduce((margin - t * s).relu(), reduction, "hinge_loss")


def binary_cross_entropy_with_logits(logits: Tensor, target, reduction: str = "mean") -> Tensor:
    """Sigmoid + binary cross-entropy, stable for any logits.

    Computed as ``(x + |x|)/2 - x * t + log(1 + exp(-|x|))``: the first
    term is relu(x) written so that its derivative at 0 (1/2) and that of
    the last term (0) add up to the true derivative sigmoid(0) - t there.
    """
    x, t = _pair("binary_cross_entropy_with_logits", logits, target)
    magnitude = x.abs()
    loss = (x + magnitude) * 0.5 - x * t + ((-magnitude).exp() + 1.0).log()
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")
