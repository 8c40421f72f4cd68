"""Lowering: turn the graph below a root into a replayable tape.

Scalar graphs (fastgrad.Value) lower to a Tape (compiled in _tape.pyx);
tensor graphs (fastgrad.Tensor) lower to an ArrayTape (_atape.pyx).  Both
order the graph without recursion, validate once, plan every buffer, and
then replay with no Python work per instruction.
"""

from __future__ import annotations

from typing import Union

import numpy as np

from fastgrad._atape import DTYPE_CODES, ArrayTape
from fastgrad._scalar_lower import lower_scalar
from fastgrad._tape import Tape
from fastgrad._value import Value
from fastgrad.ops import BY_NAME, BY_OPCODE
from fastgrad.tensor import Tensor

__all__ = ["lower", "Tape", "ArrayTape"]

_LEAF = BY_NAME["leaf"].opcode
_MATMUL = BY_NAME["matmul"].opcode


def lower(root: Union[Value, Tensor], *, fuse: bool = True) -> Union[Tape, ArrayTape]:
    """Lower the graph below ``root`` to a flat, compiled program.

    The graph is ordered without recursion (deep chains are fine), every
    node gets a slot, and the returned tape replays it: ``tape.forward()``
    reads the leaves' current data, ``tape.backward()`` accumulates into
    their ``.grad``, ``tape.zero_grad()`` clears them.

    For scalar graphs, chains of additions of products -- a neuron's
    ``sum(w*x, b)`` -- are fused into single ``dot`` instructions (``fuse=False``
    keeps one instruction per node).  Forward values are bitwise the same
    either way; gradients agree to rounding, but not always to the last bit:
    a fused dot adds its terms' contributions to an operand used more than
    once (``x + x*x``) in another order than the unfused chain does.
    """
    if isinstance(root, Value):
        return lower_scalar(root, fuse)
    if isinstance(root, Tensor):
        return lower_tensor(root)
    raise TypeError(
        f"lower: expected a fastgrad Value or Tensor as the root, got {type(root).__name__}")


def topological_order(*roots: Tensor, cut_calls: bool = False) -> list[Tensor]:
    """Nodes below the roots, inputs before the nodes that use them (iterative DFS).

    cut_calls: do not walk below the result of a compiled call (a tensor
    with a ``_tape``) unless it is the first root.
    """
    order: list[Tensor] = []
    seen: set[int] = set()
    for root in roots:
        if id(root) in seen:
            continue
        seen.add(id(root))
        _walk(root, seen, order, roots[0] if cut_calls else None)
    return order


def _walk(root: Tensor, seen: set[int], order: list[Tensor], keep) -> None:
    stack = [(root, 0)]
    while stack:
        node, i = stack[-1]
        cut = keep is not None and node._tape is not None and node is not keep
        inputs = () if cut else node._inputs
        if i < len(inputs):
            stack[-1] = (node, i + 1)
            child = inputs[i]
            if id(child) not in seen:
                seen.add(id(child))
                stack.append((child, 0))
        else:
            stack.pop()
            order.append(node)


def lower_tensor(root: Tensor, extra_roots: tuple = (), *, expose_grads: bool = True,
                 cut_calls: bool = False) -> ArrayTape:
    """Plan buffers and emit the array program for the graph below root.

    extra_roots: more tensors whose graphs the forward sweep must also
    recompute (e.g. a compiled function's other outputs); backward starts
    from ``root``.

    Each intermediate's slot *is* the node's own array, so ``node.data``
    shows every forward's values, and tapes that share nodes (a graph
    lowered twice, or a metric lowered beside the loss) share that storage.
    expose_grads: make each intermediate's ``.grad`` the tape's gradient
    slot (eager ``Tensor.backward()`` passes False).
    cut_calls: lower the results of compiled calls below root as leaves,
    their own graphs left out (eager backward, see Tensor.backward).
    """
    order = topological_order(root, *extra_roots, cut_calls=cut_calls)
    cut = {id(node) for node in order if node._tape is not None and node is not root} \
        if cut_calls else ()
    slot_of: dict[int, int] = {}
    needs_grad: list[bool] = []
    for i, node in enumerate(order):
        slot_of[id(node)] = i
        if node._op == _LEAF or id(node) in cut:
            needs_grad.append(bool(node.requires_grad))
        else:
            needs_grad.append(bool(node.requires_grad)
                              and any(needs_grad[slot_of[id(x)]] for x in node._inputs))

    # One value arena and one grad arena per dtype for the intermediates;
    # each slot is a view.  Scratch regions (softmax, tie counts) are extra
    # slots after the nodes.
    sizes: dict[np.dtype, int] = {}
    grad_sizes: dict[np.dtype, int] = {}
    n_nodes = len(order)
    scratch_slots: list[tuple[int, np.dtype, int]] = []  # (node index, dtype, size)
    for i, node in enumerate(order):
        dt = node.dtype
        if needs_grad[i]:
            # Leaves too: a leaf's gradient is summed on the tape and added
            # to its .grad once per backward (so a second backward doubles it
            # exactly, however many times the leaf is used).
            grad_sizes[dt] = grad_sizes.get(dt, 0) + node.size
        if node._op == _LEAF or id(node) in cut:
            continue
        plan = node._attrs[-1]
        if plan.scratch:
            scratch_slots.append((i, dt, plan.scratch))
            sizes[dt] = sizes.get(dt, 0) + _pad8(dt, plan.scratch)
    arenas = {dt: np.zeros(n, dtype=dt) for dt, n in sizes.items()}
    grad_arenas = {dt: np.zeros(n, dtype=dt) for dt, n in grad_sizes.items()}
    used = dict.fromkeys(arenas, 0)
    grad_used = dict.fromkeys(grad_arenas, 0)

    def take(pool, use, dt, n, shape):
        start = use[dt]
        use[dt] = start + n
        return pool[dt][start:start + n].reshape(shape)

    slot_values: list = [None] * (n_nodes + len(scratch_slots))
    slot_grads: list = [None] * (n_nodes + len(scratch_slots))
    slot_bytes: list[int] = [0] * (n_nodes + len(scratch_slots))
    leaf_slots, leaf_tensors, leaf_needs = [], [], []
    for i, node in enumerate(order):
        slot_bytes[i] = node._data.nbytes
        if node._op == _LEAF or id(node) in cut:
            leaf_slots.append(i)
            leaf_tensors.append(node)
            leaf_needs.append(needs_grad[i])
            if needs_grad[i]:
                slot_grads[i] = take(grad_arenas, grad_used, node.dtype, node.size, node.shape)
            continue
        dt = node.dtype
        value = node._data
        plan = node._attrs[-1]
        if (type(value) is not np.ndarray or value.shape != tuple(plan.shape)
                or not value.flags.c_contiguous or not value.flags.writeable):
            raise ValueError(
                f"lower: the {node._opname()} node{_label(node)} holds "
                f"{getattr(value, 'shape', type(value).__name__)} data, but its op "
                f"produces {tuple(plan.shape)} (was its .data replaced?)")
        slot_values[i] = value
        if needs_grad[i]:
            grad = take(grad_arenas, grad_used, dt, node.size, node.shape)
            slot_grads[i] = grad
            if expose_grads:
                node.grad = grad
    scratch_of: dict[int, int] = {}
    for j, (i, dt, n) in enumerate(scratch_slots):
        s = n_nodes + j
        start = used[dt]
        used[dt] = start + _pad8(dt, n)     # so every scratch starts 8-byte aligned
        slot_values[s] = arenas[dt][start:start + n]
        eager_scratch = order[i]._attrs[-2]
        if eager_scratch is not None:   # e.g. the softmax a backward needs
            slot_values[s][...] = eager_scratch
        slot_bytes[s] = n * dt.itemsize
        scratch_of[i] = s

    meta: list[int] = []
    instrs = []
    instr_node = []
    for i, node in enumerate(order):
        if node._op == _LEAF or id(node) in cut:
            continue
        plan = node._attrs[-1]
        inputs = node._inputs
        a = slot_of[id(inputs[0])]
        b = slot_of[id(inputs[1])] if len(inputs) > 1 else -1
        offset = len(meta)
        meta.extend(int(m) for m in plan.meta)
        instrs.append([node._op, DTYPE_CODES[node.dtype], i, a, b,
                       scratch_of.get(i, -1), offset, float(plan.c), 0])
        instr_node.append(node)

    # A gradient slot whose first writer in the backward sweep is a GEMM
    # needs no zeroing: that GEMM overwrites it (beta = 0) instead of adding.
    # (Only un-batched products: a batch loop adds into the same slot.)
    # An instruction whose output has no gradient slot (recorded under
    # no_grad, or not depending on any leaf that requires grad) returns
    # before writing anything, so it is nobody's first writer.
    skip_zero = [False] * len(slot_grads)
    written: set[int] = set()
    for ins in reversed(instrs):
        op, out, a, b = ins[0], ins[2], ins[3], ins[4]
        if slot_grads[out] is None:
            continue
        for position, slot in ((1, a), (2, b)):
            if slot < 0 or slot_grads[slot] is None or slot in written:
                continue
            written.add(slot)
            if op == _MATMUL and meta[ins[6]] == 1 and slot != slot_of[id(root)]:
                ins[8] |= position
                skip_zero[slot] = True
    skip_zero[slot_of[id(root)]] = False     # the seed is copied in after zeroing

    tape = ArrayTape.__new__(ArrayTape)
    # buffers: the tape's own arenas, and the node arrays its slots point at.
    tape._build([tuple(ins) for ins in instrs], meta, slot_values, slot_grads, slot_bytes,
                leaf_slots, leaf_tensors, leaf_needs, (arenas, grad_arenas, slot_values),
                root, slot_of[id(root)], skip_zero)
    tape.nodes = order
    tape.node_slot = slot_of
    tape.instr_node = instr_node
    return tape


def _pad8(dt: np.dtype, n: int) -> int:
    """n elements of dt, rounded up to whole 8-byte words (a cross-entropy
    keeps int64 targets at the end of its scratch)."""
    return n + (-n % (8 // dt.itemsize))


def _label(node) -> str:
    return f" '{node.label}'" if node.label else ""
