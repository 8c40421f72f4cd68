"""The compiled scalar tape: a struct-of-arrays program and its sweeps.

A Tape (built by fastgrad._scalar_lower) holds int32 opcodes and operand
slots, a double per instruction for number attributes, and one contiguous
buffer of slot values and slot gradients.  The sweeps are ``nogil`` loops
over those arrays that switch on the opcode and call the kernel pairs in
_kernels.pxd; they do no Python work and allocate nothing.
"""

cimport cython
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.ref cimport PyObject
from libc.math cimport isfinite
from libc.string cimport memset

import numpy as np

from fastgrad._value cimport Value
from fastgrad._kernels cimport (
    elementwise_forward, elementwise_backward, mul_backward_a, mul_backward_b,
    leaf_grads_lock, leaf_grads_unlock,
)

include "_opcodes.pxi"

from fastgrad.ops import BY_OPCODE

__all__ = ["Tape"]

_SYMBOL = {op.opcode: op.symbol for op in BY_OPCODE.values()}
_NAME = {op.opcode: op.name for op in BY_OPCODE.values()}
_ARITY = {op.opcode: op.arity for op in BY_OPCODE.values()}
_INFIX = {op.opcode for op in BY_OPCODE.values() if op.infix}
_WITH_ATTR = {op.opcode for op in BY_OPCODE.values() if op.attr is not None}

@cython.final
cdef class Tape:
    """A lowered scalar graph: a flat program replayed by compiled sweeps.

    Build one with ``fastgrad.lower(root)``.  ``forward()`` reads the current
    data of every leaf and recomputes the graph; ``backward()`` runs the
    reverse sweep and accumulates into the leaves' ``.grad``.  Intermediate
    nodes that have their own instruction are moved onto the tape, so their
    ``.data``/``.grad`` show the tape's latest sweep; nodes fused into a
    ``dot`` instruction keep the value they had when built (ask
    ``tape.value(node)`` for their current one).
    """

    def __cinit__(self):
        self.busy = 0

    def __dealloc__(self):
        PyMem_Free(self.op)
        PyMem_Free(self.out)
        PyMem_Free(self.a)
        PyMem_Free(self.b)
        PyMem_Free(self.n)
        PyMem_Free(self.cst)
        PyMem_Free(self.pair_x)
        PyMem_Free(self.pair_y)
        PyMem_Free(self.leaf_data)
        PyMem_Free(self.leaf_grad)
        PyMem_Free(self.node_slot)
        PyMem_Free(self.node_instr)
        PyMem_Free(self.node_terms)
        PyMem_Free(self.instr_node)
        PyMem_Free(self.own_values)

    def __init__(self):
        raise TypeError("Tape cannot be created directly; use fastgrad.lower(root)")

    # -- the sweeps -------------------------------------------------------

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef void _forward_sweep(self) noexcept nogil:
        cdef double* val = self.val
        cdef int* op = self.op
        cdef int* out = self.out
        cdef int* a = self.a
        cdef int* b = self.b
        cdef int* px = self.pair_x
        cdef int* py = self.pair_y
        cdef int i, k, p, end
        cdef double acc
        for i in range(self.n_leaves):
            val[i] = self.leaf_data[i][0][0]
        val[self.n_leaves] = 1.0
        for k in range(self.n_instr):
            i = op[k]
            if i == OP_DOT:
                acc = val[a[k]]
                p = b[k]
                end = p + self.n[k]
                while p < end:
                    acc = acc + val[px[p]] * val[py[p]]
                    p += 1
                val[out[k]] = acc
            else:
                # every other op is elementwise (generated from the op table)
                val[out[k]] = elementwise_forward(i, val[a[k]], val[b[k]], self.cst[k])

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef void _backward_sweep(self) noexcept nogil:
        cdef double* val = self.val
        cdef double* grad = self.grad
        cdef int* op = self.op
        cdef int* out = self.out
        cdef int* a = self.a
        cdef int* b = self.b
        cdef int* px = self.pair_x
        cdef int* py = self.pair_y
        cdef int i, k, p, end
        cdef double g
        memset(grad, 0, self.n_slots * sizeof(double))
        grad[self.root_slot] = 1.0
        k = self.n_instr - 1
        while k >= 0:
            i = op[k]
            g = grad[out[k]]
            if i == OP_DOT:
                p = b[k]
                end = p + self.n[k]
                while p < end:
                    grad[px[p]] += mul_backward_a(val[px[p]], val[py[p]], 0.0, 0.0, g)
                    grad[py[p]] += mul_backward_b(val[px[p]], val[py[p]], 0.0, 0.0, g)
                    p += 1
                grad[a[k]] += g
            else:
                elementwise_backward(i, val[a[k]], val[b[k]], self.cst[k], val[out[k]], g,
                                     &grad[a[k]], &grad[b[k]])
            k -= 1
        leaf_grads_lock()       # tapes sharing a leaf may run in other threads
        for i in range(self.n_leaves):
            self.leaf_grad[i][0][0] += grad[i]
        leaf_grads_unlock()

    cdef int _check_built(self) except -1:
        if self.val == NULL or self.nodes is None:
            raise RuntimeError("Tape: this tape was never built; use fastgrad.lower(root)")
        return 0

    cdef int _enter(self) except -1:
        # Called with the GIL held, so the test and the set cannot interleave
        # with another Python thread's.
        self._check_built()
        if self.busy:
            raise RuntimeError(
                "Tape is already running in another thread: one tape is not "
                "re-entrant (lower the graph once per thread instead)")
        self.busy = 1
        return 0

    # -- public -----------------------------------------------------------

    def forward(self, check=False):
        """Recompute every instruction from the leaves' current data.

        Returns the root's new value.  Domain errors give IEEE inf/nan, as in
        numpy; with ``check=True`` a non-finite value raises
        FloatingPointError naming the first instruction that produced one.
        """
        self._enter()
        with nogil:
            self._forward_sweep()
        self.busy = 0
        if check:
            self._check_finite()
        return self.val[self.root_slot]

    def backward(self):
        """Reverse sweep: accumulate d(root)/d(leaf) into every leaf's .grad.

        Uses the values of the latest forward() (or those at lowering).
        Intermediate gradients restart from zero on every call.
        """
        self._enter()
        with nogil:
            self._backward_sweep()
        self.busy = 0

    def zero_grad(self):
        """Set the .grad of every leaf of this tape to 0 (one compiled loop)."""
        cdef int i
        self._check_built()
        for i in range(self.n_leaves):
            self.leaf_grad[i][0][0] = 0.0

    def __len__(self):
        return self.n_instr

    def _program(self):
        """The program as Python lists (for statistics, drawings and tests)."""
        cdef int k, p
        self._check_built()
        instrs = []
        for k in range(self.n_instr):
            pairs = None
            if self.op[k] == OP_DOT:
                pairs = [(self.pair_x[p], self.pair_y[p])
                         for p in range(self.b[k], self.b[k] + self.n[k])]
            node = self.nodes[self.instr_node[k]]
            instrs.append({
                "op": _NAME[self.op[k]], "out": self.out[k], "a": self.a[k],
                "b": self.b[k] if _ARITY[self.op[k]] == 2 else None,
                "pairs": pairs, "c": self.cst[k], "node": node,
            })
        return {
            "kind": "scalar", "instructions": instrs, "leaves": list(self.leaves),
            "n_leaves": self.n_leaves, "one_slot": self.n_leaves,
            "n_slots": self.n_slots, "root_slot": self.root_slot,
            "value_bytes": self.n_slots * 8, "grad_bytes": self.n_slots * 8,
            "n_nodes": len(self.nodes),
        }

    def stats(self):
        """Instruction counts per op, slots, buffer bytes and a FLOP estimate."""
        from fastgrad._stats import tape_stats
        return tape_stats(self)

    @property
    def root(self):
        """The Value this tape was lowered from."""
        self._check_built()
        return self.nodes[len(self.nodes) - 1]

    @property
    def leaves(self):
        """The leaf Values the tape reads, in slot order (a new list)."""
        self._check_built()
        return list(self.leaves)

    @property
    def n_slots(self):
        return self.n_slots

    @property
    def fused(self):
        """Whether chains of additions of products were fused into dots."""
        return self.fused

    def value(self, node):
        """The current value of any node of the graph, fused or not."""
        cdef Py_ssize_t i
        self._check_built()
        i = self._node_index(node)
        cdef int slot = self.node_slot[i]
        cdef int k, p, m
        cdef double acc
        cdef Value v
        if slot >= 0:
            return self.val[slot]
        v = <Value>node
        if v.op == OP_MUL:      # a product folded into a dot
            return (self.val[self.node_slot[self._node_index(v.a)]]
                    * self.val[self.node_slot[self._node_index(v.b)]])
        k = self.node_instr[i]  # a partial sum of a dot: its first m terms
        m = self.node_terms[i]
        acc = self.val[self.a[k]]
        for p in range(self.b[k], self.b[k] + m):
            acc = acc + self.val[self.pair_x[p]] * self.val[self.pair_y[p]]
        return acc

    cdef Py_ssize_t _node_index(self, node) except -1:
        if self._index is None:
            self._index = {id(x): j for j, x in enumerate(self.nodes)}
        try:
            return self._index[id(node)]
        except KeyError:
            raise ValueError(
                f"Tape.value: {node!r} is not a node of this tape's graph") from None

    cdef _check_finite(self):
        cdef int i, k
        for i in range(self.n_leaves):
            if not isfinite(self.val[i]):
                leaf = self.leaves[i]
                raise FloatingPointError(
                    f"forward: leaf %{i}{_label_part(leaf)} is {self.val[i]!r}")
        for k in range(self.n_instr):
            if not isfinite(self.val[self.out[k]]):
                raise FloatingPointError(
                    f"forward: instruction {k} produced {self.val[self.out[k]]!r}: "
                    f"{self._line(k)}")

    def _slot_name(self, int slot):
        if slot < self.n_leaves:
            return f"%{slot}"
        if slot == self.n_leaves:
            return "1.0"
        return f"%{slot}"

    cdef str _line(self, int k):
        cdef int o = self.op[k]
        cdef int p
        s = self._slot_name
        node = self.nodes[self.instr_node[k]]
        if o == OP_DOT:
            terms = []
            count = self.n[k]
            shown = range(self.b[k], self.b[k] + count)
            if count > 8:
                shown = list(shown[:4]) + [None] + [shown[count - 1]]
            for p in shown:
                if p is None:
                    terms.append(f"... ({count - 5} more)")
                elif self.pair_y[p] == self.n_leaves:
                    terms.append(s(self.pair_x[p]))
                else:
                    terms.append(f"{s(self.pair_x[p])}*{s(self.pair_y[p])}")
            rhs = f"dot {s(self.a[k])} + " + " + ".join(terms)
        elif o == OP_POW_CONST:
            rhs = f"{s(self.a[k])} ** {self.cst[k]!r}"
        elif o in _INFIX:
            rhs = f"{s(self.a[k])} {_SYMBOL[o]} {s(self.b[k])}"
        elif _ARITY[o] == 2:
            rhs = f"{_SYMBOL[o]}({s(self.a[k])}, {s(self.b[k])})"
        elif o in _WITH_ATTR:
            rhs = f"{_SYMBOL[o]}({s(self.a[k])}, {self.cst[k]!r})"
        else:
            rhs = f"{_SYMBOL[o]}({s(self.a[k])})"
        return f"%{self.out[k]} = {rhs}{_label_part(node)}"

    def __str__(self):
        self._check_built()
        lines = [repr(self)]
        for i in range(self.n_leaves):
            lines.append(f"%{i} = leaf {self.val[i]!r}{_label_part(self.leaves[i])}")
        for k in range(self.n_instr):
            lines.append(self._line(k))
        return "\n".join(lines)

    def __repr__(self):
        if self.val == NULL or self.nodes is None:
            return "<Tape: not built>"
        counts = {}
        for k in range(self.n_instr):
            name = _NAME[self.op[k]]
            counts[name] = counts.get(name, 0) + 1
        ops = ", ".join(f"{name} {c}" for name, c in sorted(counts.items(), key=lambda t: -t[1]))
        return (f"<Tape: {self.n_instr} instructions ({ops}), {self.n_leaves} leaves, "
                f"{len(self.nodes)} graph nodes, root %{self.root_slot}>")


cdef str _label_part(node):
    label = node.label
    return f"  # {label}" if label else ""
