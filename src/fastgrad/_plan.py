"""Instruction planning for tensor ops: shapes, strides and kernel metadata.

Each ``plan_*`` function validates its operands (raising a clear exception
that names the op, the labels and the shapes/dtypes) and returns a Plan: the
output's shape, the instruction's int metadata (see _atape.pyx for each op's
layout), its number attribute and the size of any scratch it needs.  The
same plan drives the eager evaluation of an op and its instruction on a
lowered tape, so the two compute bitwise the same values.
"""

from __future__ import annotations

from math import prod
from typing import NamedTuple

import numpy as np

MAX_DIMS = 8


class Plan(NamedTuple):
    shape: tuple[int, ...]
    meta: tuple[int, ...]
    c: float = 0.0
    scratch: int = 0


def _contiguous_strides(shape):
    strides = [0] * len(shape)
    step = 1
    for d in range(len(shape) - 1, -1, -1):
        strides[d] = step
        step *= shape[d]
    return strides


def simplify(shape, *stride_sets):
    """Drop size-1 dimensions and merge dimensions every operand walks alike.

    Returns (shape, [strides...]) with at least one dimension; raises when
    more than MAX_DIMS remain.
    """
    dims = [d for d in range(len(shape)) if shape[d] != 1]
    out_shape = [shape[d] for d in dims]
    out_strides = [[s[d] for d in dims] for s in stride_sets]
    if 0 in out_shape:
        return [0], [[0] for _ in stride_sets]
    d = len(out_shape) - 2
    while d >= 0:
        if all(s[d] == s[d + 1] * out_shape[d + 1] for s in out_strides):
            out_shape[d] *= out_shape[d + 1]
            del out_shape[d + 1]
            for s in out_strides:
                s[d] = s[d + 1]     # the merged dimension steps like the inner one
                del s[d + 1]
        d -= 1
    if not out_shape:
        return [1], [[0] for _ in stride_sets]
    if len(out_shape) > MAX_DIMS:
        raise ValueError(
            f"arrays with more than {MAX_DIMS} non-trivial dimensions are not supported")
    return out_shape, out_strides


def broadcast_strides(shape, out_shape):
    """Element strides of a contiguous `shape` read over broadcast `out_shape`."""
    pad = len(out_shape) - len(shape)
    own = _contiguous_strides(shape)
    strides = []
    for d, n in enumerate(out_shape):
        k = d - pad
        if k < 0 or shape[k] == 1:
            strides.append(0)
        else:
            strides.append(own[k])
    return strides


def describe(t) -> str:
    label = getattr(t, "label", None)
    shape = tuple(t.shape)
    base = f"{shape} {t.dtype}"
    return f"'{label}' {base}" if label else base


def plan_binary(name, a, b) -> Plan:
    try:
        shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        raise ValueError(
            f"{name}: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be broadcast "
            f"together (operands {describe(a)} and {describe(b)})") from None
    dims, (sa, sb) = simplify(shape, broadcast_strides(a.shape, shape),
                              broadcast_strides(b.shape, shape))
    return Plan(shape, (len(dims), *dims, *sa, *sb))


def plan_unary(a, c=0.0) -> Plan:
    return Plan(tuple(a.shape), (prod(a.shape),), c)


def plan_matmul(a, b) -> Plan:
    """numpy's matmul rules for 1-D and 2-D operands, plus batches.

    Batched operands: (..., m, k) @ (k, n) folds the batch into the rows (one
    GEMM); (B, m, k) @ (B, k, n) and (m, k) @ (B, k, n) loop over B (equal
    batch shapes, or one side 2-D).
    """
    sa, sb = tuple(a.shape), tuple(b.shape)
    if len(sa) == 0 or len(sb) == 0:
        raise ValueError(
            f"matmul: operands must have at least one dimension, got shapes {sa} and {sb}")
    a2 = (1,) + sa if len(sa) == 1 else sa
    b2 = sb + (1,) if len(sb) == 1 else sb
    m, k = a2[-2], a2[-1]
    kb, n = b2[-2], b2[-1]
    if k != kb:
        raise ValueError(
            f"matmul: shapes {sa} and {sb} do not align ({k} != {kb}) "
            f"(operands {describe(a)} and {describe(b)})")
    batch_a, batch_b = a2[:-2], b2[:-2]
    if not batch_b:
        rows = prod(batch_a) * m
        out = batch_a + (m, n)
        meta = (1, rows, n, k, 0, 0)
    elif not batch_a:
        out = batch_b + (m, n)
        meta = (prod(batch_b), m, n, k, 0, k * n)
    elif batch_a == batch_b:
        out = batch_a + (m, n)
        meta = (prod(batch_a), m, n, k, m * k, k * n)
    else:
        raise ValueError(
            f"matmul: batch shapes {batch_a} and {batch_b} differ; fastgrad supports "
            f"equal batch shapes or one 2-D operand (shapes {sa} and {sb})")
    if len(sa) == 1:
        out = out[:-2] + out[-1:]
    if len(sb) == 1:
        out = out[:-1]
    return Plan(tuple(out), meta)


def normalize_axes(name, axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    result = []
    for ax in axes:
        if not isinstance(ax, (int, np.integer)):
            raise TypeError(f"{name}: axis must be an int or a tuple of ints, got {ax!r}")
        if not -ndim <= ax < max(ndim, 1) or (ndim == 0 and ax not in (0, -1)):
            raise ValueError(f"{name}: axis {ax} is out of bounds for an array of "
                             f"dimension {ndim}")
        ax = int(ax) % ndim if ndim else 0
        if ax in result:
            raise ValueError(f"{name}: axis {ax} is repeated")
        result.append(ax)
    return tuple(sorted(result))


def plan_reduce(name, a, axis, keepdims) -> Plan:
    shape = tuple(a.shape)
    axes = normalize_axes(name, axis, len(shape))
    if name == "max" and any(shape[ax] == 0 for ax in axes):
        raise ValueError(
            f"max: zero-size reduction over axes {axes} of {describe(a)} has no identity")
    kept = tuple(1 if d in axes else n for d, n in enumerate(shape))
    out_shape = kept if keepdims else tuple(n for d, n in enumerate(shape) if d not in axes)
    out_strides = _contiguous_strides(kept)
    so = [0 if d in axes else out_strides[d] for d in range(len(shape))]
    n_out = prod(out_shape)
    dims, (s_in, s_out) = simplify(shape, _contiguous_strides(shape), so)
    del s_in
    scratch = n_out if name == "max" else 0
    return Plan(out_shape, (len(dims), *dims, *s_out, n_out), 0.0, scratch)


def plan_reshape(a, shape) -> Plan:
    try:
        out = np.empty(tuple(a.shape), dtype=np.int8).reshape(shape).shape
    except (ValueError, TypeError) as exc:
        raise ValueError(f"reshape: cannot reshape {describe(a)} into {shape}: {exc}") from None
    return Plan(tuple(out), (prod(a.shape),))


def plan_transpose(a, axes) -> Plan:
    shape = tuple(a.shape)
    nd = len(shape)
    if axes is None:
        axes = tuple(range(nd - 1, -1, -1))
    axes = tuple(int(x) % nd if nd else 0 for x in axes)
    if sorted(axes) != list(range(nd)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of {nd} dimensions "
                         f"({describe(a)})")
    own = _contiguous_strides(shape)
    out_shape = tuple(shape[x] for x in axes)
    strides = [own[x] for x in axes]
    dims, (sa,) = simplify(out_shape, strides)
    return Plan(out_shape, (len(dims), *dims, *sa, 0))


def plan_getitem(a, key) -> Plan:
    """Basic indexing (ints, slices, None, Ellipsis) as a strided gather."""
    index = key if isinstance(key, tuple) else (key,)
    for k in index:
        basic = (k is None or k is Ellipsis or isinstance(k, slice)
                 or (isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))))
        if not basic:
            raise TypeError(
                f"getitem: only basic indexing (integers, slices, None, ...) is supported "
                f"on tensors, got {key!r}")
    probe = np.empty(tuple(a.shape), dtype=np.int8)
    if not any(k is Ellipsis for k in index):
        index = index + (Ellipsis,)  # a full integer index then gives a 0-d view
    try:
        view = probe[index]
    except IndexError as exc:
        raise IndexError(f"getitem: {exc} ({describe(a)}, index {key!r})") from None
    except (TypeError, ValueError) as exc:
        raise TypeError(f"getitem: unsupported index {key!r} for {describe(a)}: {exc}") from None
    if not isinstance(view, np.ndarray) or (view.size and not np.may_share_memory(view, probe)):
        raise TypeError(
            f"getitem: only basic indexing (integers, slices, None, ...) is supported "
            f"on tensors, got {key!r}")
    offset = view.__array_interface__["data"][0] - probe.__array_interface__["data"][0]
    out_shape = view.shape
    dims, (sa,) = simplify(out_shape, list(view.strides))
    return Plan(tuple(out_shape), (len(dims), *dims, *sa, offset))


def plan_cast(a, src_code, dst_code) -> Plan:
    return Plan(tuple(a.shape), (prod(a.shape), src_code, dst_code))


def plan_log_softmax(a) -> Plan:
    shape = tuple(a.shape)
    if not shape:
        raise ValueError("log_softmax: needs at least one dimension")
    cols = shape[-1]
    return Plan(shape, (prod(shape[:-1]), cols))


REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def plan_cross_entropy(logits, targets, reduction) -> Plan:
    if reduction not in REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', "
                         f"got {reduction!r}")
    shape = tuple(logits.shape)
    if len(shape) != 2:
        raise ValueError(f"cross_entropy: logits must be 2-D (batch, classes), got "
                         f"{describe(logits)}")
    if tuple(targets.shape) != shape[:1]:
        raise ValueError(f"cross_entropy: targets must have shape ({shape[0]},) to match "
                         f"logits {shape}, got {tuple(targets.shape)}")
    rows, cols = shape
    out = (rows,) if reduction == "none" else ()
    # Scratch: the softmax (rows x cols), padded to 8 bytes, then the
    # targets the forward checked, kept as int64 for the backward.
    per_int = 8 // logits.dtype.itemsize
    probs = rows * cols + (-(rows * cols) % per_int)
    return Plan(out, (rows, cols, REDUCTIONS[reduction]), 0.0, probs + rows * per_int)
