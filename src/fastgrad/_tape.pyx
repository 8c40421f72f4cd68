"""The compiled tape for scalar graphs: lowering, and the forward/backward sweeps.

Lowering walks the graph below a root Value without recursion, numbers the
nodes in topological order and emits a struct-of-arrays program: int32
opcodes and operand slots, a double per instruction for number attributes,
and one contiguous buffer of slot values and slot gradients.  Chains of
additions of products (a neuron's ``sum(w*x, b)``) become one ``dot``
instruction whose running sum stays in a register; it adds the terms in the
graph's own order, so it rounds exactly as the unfused chain.

The sweeps are ``nogil`` loops over those arrays that switch on the opcode
and call the kernel pairs in _kernels.pxd; they do no Python work and
allocate nothing.  Eager ``Value.backward()`` runs the same backward sweep
over a throw-away, unfused tape, so every derivative has one implementation.
"""

cimport cython
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.ref cimport PyObject
from libc.math cimport isfinite
from libc.string cimport memset

import numpy as np

from fastgrad._value cimport Value
from fastgrad._kernels cimport (
    add_forward, add_backward, mul_forward, mul_backward, sub_forward,
    sub_backward, truediv_forward, truediv_backward, neg_forward, neg_backward,
    pow_const_forward, pow_const_backward, pow_forward, pow_backward,
    relu_forward, relu_backward, tanh_forward, tanh_backward, exp_forward,
    exp_backward, log_forward, log_backward, sigmoid_forward, sigmoid_backward,
)

include "_opcodes.pxi"

from fastgrad.ops import BY_OPCODE

__all__ = ["Tape", "lower_scalar", "eager_backward"]

_SYMBOL = {op.opcode: op.symbol for op in BY_OPCODE.values()}
_NAME = {op.opcode: op.name for op in BY_OPCODE.values()}
_ARITY = {op.opcode: op.arity for op in BY_OPCODE.values()}

# Largest graph a tape indexes with int32 slots.
cdef Py_ssize_t MAX_NODES = 2**31 - 16

# Traversal epoch: a node is visited in the current walk when mark == epoch.
cdef unsigned long long _epoch = 0


cdef struct Frame:
    PyObject* node
    int next_child


cdef void* _grow(void* p, Py_ssize_t* capacity, size_t item) except NULL:
    cdef Py_ssize_t cap = capacity[0] * 2
    cdef void* q = PyMem_Realloc(p, cap * item)
    if q == NULL:
        raise MemoryError("lowering: out of memory while ordering the graph")
    capacity[0] = cap
    return q


# Reusable traversal stack (only touched with the GIL held, never across a
# call that could let another thread in).
cdef Frame* _stack = NULL
cdef Py_ssize_t _stack_cap = 0


cdef Py_ssize_t _topological_order(Value root, PyObject*** order_ptr,
                                   Py_ssize_t* order_cap,
                                   Py_ssize_t* n_leaves) except -1:
    """Every node below root, children before parents, without recursion.

    The order is the post-order of a depth-first walk taking each node's
    first input before its second (micrograd's build_topo, made iterative).
    It is written to *order_ptr (grown as needed; the caller frees it); each
    node's `index` is set to its position.  Returns the node count and
    stores the number of leaves in n_leaves.
    """
    global _epoch, _stack, _stack_cap
    _epoch += 1
    cdef unsigned long long epoch = _epoch
    cdef Py_ssize_t sp = 0, n = 0, leaves = 0
    cdef PyObject** order = order_ptr[0]
    cdef PyObject* node
    cdef PyObject* child
    cdef PyObject* none = <PyObject*>None
    if _stack == NULL:
        _stack = <Frame*>PyMem_Malloc(256 * sizeof(Frame))
        if _stack == NULL:
            raise MemoryError("lowering: out of memory")
        _stack_cap = 256
    if order == NULL or order_cap[0] < 16:
        PyMem_Free(order)
        order_ptr[0] = NULL
        order = <PyObject**>PyMem_Malloc(1024 * sizeof(PyObject*))
        if order == NULL:
            raise MemoryError("lowering: out of memory")
        order_ptr[0] = order
        order_cap[0] = 1024
    root.mark = epoch
    _stack[0].node = <PyObject*>root
    _stack[0].next_child = 0
    sp = 1
    # Raw pointers, no reference counting: the root keeps the graph alive and
    # nothing in this loop can run Python code.
    while sp > 0:
        node = _stack[sp - 1].node
        child = NULL
        if _vop(node) != OP_LEAF:
            if _stack[sp - 1].next_child == 0:
                _stack[sp - 1].next_child = 1
                child = _va(node)
            elif _stack[sp - 1].next_child == 1:
                _stack[sp - 1].next_child = 2
                child = _vb(node)
                if child == none:
                    child = NULL
        if child != NULL:
            if (<Value>child).mark != epoch:
                (<Value>child).mark = epoch
                if sp == _stack_cap:
                    _stack = <Frame*>_grow(_stack, &_stack_cap, sizeof(Frame))
                _stack[sp].node = child
                _stack[sp].next_child = 0
                sp += 1
            continue
        sp -= 1
        if n == order_cap[0]:
            if n >= MAX_NODES:
                raise OverflowError(
                    f"lowering: the graph has more than {MAX_NODES} nodes")
            order = <PyObject**>_grow(order, order_cap, sizeof(PyObject*))
            order_ptr[0] = order
        if _vop(node) == OP_LEAF:
            leaves += 1
        (<Value>node).index = n
        order[n] = node
        n += 1
    n_leaves[0] = leaves
    return n


cdef inline int _vop(PyObject* p) noexcept:
    return (<Value>p).op


cdef inline PyObject* _va(PyObject* p) noexcept:
    return <PyObject*>(<Value>p).a


cdef inline PyObject* _vb(PyObject* p) noexcept:
    return <PyObject*>(<Value>p).b


cdef inline Value _at(PyObject** order, Py_ssize_t i):
    return <Value>order[i]


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
            elif i == OP_ADD:
                val[out[k]] = add_forward(val[a[k]], val[b[k]])
            elif i == OP_MUL:
                val[out[k]] = mul_forward(val[a[k]], val[b[k]])
            elif i == OP_RELU:
                val[out[k]] = relu_forward(val[a[k]])
            elif i == OP_TANH:
                val[out[k]] = tanh_forward(val[a[k]])
            elif i == OP_SUB:
                val[out[k]] = sub_forward(val[a[k]], val[b[k]])
            elif i == OP_TRUEDIV:
                val[out[k]] = truediv_forward(val[a[k]], val[b[k]])
            elif i == OP_NEG:
                val[out[k]] = neg_forward(val[a[k]])
            elif i == OP_POW_CONST:
                val[out[k]] = pow_const_forward(val[a[k]], self.cst[k])
            elif i == OP_POW:
                val[out[k]] = pow_forward(val[a[k]], val[b[k]])
            elif i == OP_EXP:
                val[out[k]] = exp_forward(val[a[k]])
            elif i == OP_LOG:
                val[out[k]] = log_forward(val[a[k]])
            elif i == OP_SIGMOID:
                val[out[k]] = sigmoid_forward(val[a[k]])

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
                    mul_backward(val[px[p]], val[py[p]], g, &grad[px[p]], &grad[py[p]])
                    p += 1
                grad[a[k]] += g
            elif i == OP_ADD:
                add_backward(g, &grad[a[k]], &grad[b[k]])
            elif i == OP_MUL:
                mul_backward(val[a[k]], val[b[k]], g, &grad[a[k]], &grad[b[k]])
            elif i == OP_RELU:
                relu_backward(val[out[k]], g, &grad[a[k]])
            elif i == OP_TANH:
                tanh_backward(val[out[k]], g, &grad[a[k]])
            elif i == OP_SUB:
                sub_backward(g, &grad[a[k]], &grad[b[k]])
            elif i == OP_TRUEDIV:
                truediv_backward(val[a[k]], val[b[k]], g, &grad[a[k]], &grad[b[k]])
            elif i == OP_NEG:
                neg_backward(g, &grad[a[k]])
            elif i == OP_POW_CONST:
                pow_const_backward(val[a[k]], self.cst[k], g, &grad[a[k]])
            elif i == OP_POW:
                pow_backward(val[a[k]], val[b[k]], val[out[k]], g,
                             &grad[a[k]], &grad[b[k]])
            elif i == OP_EXP:
                exp_backward(val[out[k]], g, &grad[a[k]])
            elif i == OP_LOG:
                log_backward(val[a[k]], g, &grad[a[k]])
            elif i == OP_SIGMOID:
                sigmoid_backward(val[out[k]], g, &grad[a[k]])
            k -= 1
        for i in range(self.n_leaves):
            self.leaf_grad[i][0][0] += grad[i]

    cdef int _enter(self) except -1:
        # Called with the GIL held, so the test and the set cannot interleave
        # with another Python thread's.
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
        for i in range(self.n_leaves):
            self.leaf_grad[i][0][0] = 0.0

    def __len__(self):
        return self.n_instr

    def _program(self):
        """The program as Python lists (for statistics, drawings and tests)."""
        cdef int k, p
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
        return self.nodes[len(self.nodes) - 1]

    @property
    def leaves(self):
        """The leaf Values the tape reads, in slot order (a new list)."""
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
        cdef Py_ssize_t i = self._node_index(node)
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
        elif o in (OP_ADD, OP_MUL, OP_SUB, OP_TRUEDIV, OP_POW):
            rhs = f"{s(self.a[k])} {_SYMBOL[o]} {s(self.b[k])}"
        else:
            rhs = f"{_SYMBOL[o]}({s(self.a[k])})"
        return f"%{self.out[k]} = {rhs}{_label_part(node)}"

    def __str__(self):
        lines = [repr(self)]
        for i in range(self.n_leaves):
            lines.append(f"%{i} = leaf {self.val[i]!r}{_label_part(self.leaves[i])}")
        for k in range(self.n_instr):
            lines.append(self._line(k))
        return "\n".join(lines)

    def __repr__(self):
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


cdef Tape _lower(Value root, bint fuse):
    """Emit the program for the graph below root (see the module docstring).

    fuse: fold chains of additions of products into dot instructions.
    Intermediates that get their own instruction are moved onto the tape's
    buffer, so their .data/.grad show its sweeps.
    """
    cdef Py_ssize_t N = 0, i, j, L = 0, k_terms, x, order_cap = 0
    cdef PyObject** order = NULL
    cdef Tape tape = Tape.__new__(Tape)
    cdef Value v
    cdef int* consumers = NULL
    cdef int* chain = NULL      # ADD node: the single-use ADD it extends, or -1
    cdef int* init = NULL       # ADD node: its initial addend when chain == -1
    cdef int* term = NULL       # ADD node: the addend it contributes
    cdef char* absorbed = NULL  # node folded into its consumer's dot
    cdef int* terms_buf = NULL
    cdef int* slot
    cdef int ai, bi, s, instr, p, one
    cdef double[::1] buf
    try:
        N = _topological_order(root, &order, &order_cap, &L)
        tape.n_leaves = <int>L
        tape.node_slot = <int*>PyMem_Malloc((N + 1) * sizeof(int))
        tape.node_instr = <int*>PyMem_Malloc((N + 1) * sizeof(int))
        tape.node_terms = <int*>PyMem_Malloc((N + 1) * sizeof(int))
        absorbed = <char*>PyMem_Malloc(N + 1)
        if (tape.node_slot == NULL or tape.node_instr == NULL
                or tape.node_terms == NULL or absorbed == NULL):
            raise MemoryError("lowering: out of memory")
        memset(absorbed, 0, N + 1)
        slot = tape.node_slot

        if fuse:
            consumers = <int*>PyMem_Malloc((N + 1) * sizeof(int))
            chain = <int*>PyMem_Malloc((N + 1) * sizeof(int))
            init = <int*>PyMem_Malloc((N + 1) * sizeof(int))
            term = <int*>PyMem_Malloc((N + 1) * sizeof(int))
            terms_buf = <int*>PyMem_Malloc((N + 1) * sizeof(int))
            if (consumers == NULL or chain == NULL or init == NULL
                    or term == NULL or terms_buf == NULL):
                raise MemoryError("lowering: out of memory")
            memset(consumers, 0, (N + 1) * sizeof(int))
            for i in range(N):
                v = _at(order, i)
                if v.op != OP_LEAF:
                    consumers[v.a.index] += 1
                    if v.b is not None:
                        consumers[v.b.index] += 1
            for i in range(N):
                chain[i] = -1
                v = _at(order, i)
                if v.op != OP_ADD:
                    continue
                ai = <int>v.a.index
                bi = <int>v.b.index
                if ai == bi:
                    init[i] = ai
                    term[i] = bi
                elif _op_at(order, ai) == OP_ADD and consumers[ai] == 1:
                    chain[i] = ai
                    absorbed[ai] = 1
                    term[i] = bi
                elif _op_at(order, bi) == OP_ADD and consumers[bi] == 1:
                    chain[i] = bi
                    absorbed[bi] = 1
                    term[i] = ai
                elif _op_at(order, ai) == OP_MUL and consumers[ai] == 1 and not (
                        _op_at(order, bi) == OP_MUL and consumers[bi] == 1):
                    init[i] = bi
                    term[i] = ai
                else:
                    init[i] = ai
                    term[i] = bi
                if ti_is_product(order, consumers, term[i], ai == bi):
                    absorbed[term[i]] = 1

        # Slots: leaves first (topological order), the constant 1.0, then
        # one per emitted instruction.
        s = 0
        for i in range(N):
            if _at(order, i).op == OP_LEAF:
                slot[i] = s
                s += 1
        one = s
        s += 1
        tape.op = <int*>PyMem_Malloc((N - L + 1) * sizeof(int))
        tape.out = <int*>PyMem_Malloc((N - L + 1) * sizeof(int))
        tape.a = <int*>PyMem_Malloc((N - L + 1) * sizeof(int))
        tape.b = <int*>PyMem_Malloc((N - L + 1) * sizeof(int))
        tape.n = <int*>PyMem_Malloc((N - L + 1) * sizeof(int))
        tape.cst = <double*>PyMem_Malloc((N - L + 1) * sizeof(double))
        tape.instr_node = <int*>PyMem_Malloc((N - L + 1) * sizeof(int))
        tape.pair_x = <int*>PyMem_Malloc((N + 1) * sizeof(int))
        tape.pair_y = <int*>PyMem_Malloc((N + 1) * sizeof(int))
        tape.leaf_data = <double***>PyMem_Malloc((L + 1) * sizeof(double**))
        tape.leaf_grad = <double***>PyMem_Malloc((L + 1) * sizeof(double**))
        if (tape.op == NULL or tape.out == NULL or tape.a == NULL or tape.b == NULL
                or tape.n == NULL or tape.cst == NULL or tape.instr_node == NULL
                or tape.pair_x == NULL or tape.pair_y == NULL
                or tape.leaf_data == NULL or tape.leaf_grad == NULL):
            raise MemoryError("lowering: out of memory")

        instr = 0
        p = 0
        for i in range(N):
            v = _at(order, i)
            tape.node_instr[i] = -1
            tape.node_terms[i] = 0
            if v.op == OP_LEAF:
                continue
            if absorbed[i]:
                slot[i] = -1
                continue
            tape.out[instr] = s
            slot[i] = s
            tape.node_instr[i] = instr
            tape.instr_node[instr] = <int>i
            tape.cst[instr] = v.c
            tape.n[instr] = 0
            if fuse and v.op == OP_ADD and (chain[i] >= 0 or absorbed[term[i]]):
                # Walk the chain from this head inwards, collecting addends.
                k_terms = 0
                x = i
                while True:
                    terms_buf[k_terms] = term[x]
                    k_terms += 1
                    if chain[x] < 0:
                        break
                    x = chain[x]
                tape.op[instr] = OP_DOT
                tape.a[instr] = slot[init[x]]
                tape.b[instr] = p
                tape.n[instr] = <int>k_terms
                # Addends in evaluation order: innermost chain node first.
                for j in range(k_terms):
                    x = terms_buf[k_terms - 1 - j]
                    if absorbed[x] and _op_at(order, x) == OP_MUL:
                        tape.pair_x[p] = slot[_at(order, x).a.index]
                        tape.pair_y[p] = slot[_at(order, x).b.index]
                    else:
                        tape.pair_x[p] = slot[x]
                        tape.pair_y[p] = one
                    p += 1
                # The absorbed chain nodes are partial sums of this dot.
                x = chain[i]
                j = k_terms - 1
                while x >= 0:
                    tape.node_instr[x] = instr
                    tape.node_terms[x] = <int>j
                    j -= 1
                    x = chain[x]
            else:
                tape.op[instr] = v.op
                tape.a[instr] = slot[v.a.index]
                tape.b[instr] = slot[v.b.index] if v.b is not None else 0
            instr += 1
            s += 1
        tape.n_instr = instr
        tape.n_pairs = p
        tape.n_slots = s
        tape.fused = fuse

        tape.buffer = np.zeros(2 * s, dtype=np.float64)
        buf = tape.buffer
        tape.val = &buf[0]
        tape.grad = &buf[s]
        tape.root_slot = slot[N - 1]

        leaves = []
        j = 0
        for i in range(N):
            v = _at(order, i)
            if v.op == OP_LEAF:
                tape.leaf_data[j] = &v.dp
                tape.leaf_grad[j] = &v.gp
                tape.val[j] = v.dp[0]
                leaves.append(v)
                j += 1
            elif slot[i] >= 0:
                tape.val[slot[i]] = v.dp[0]
        tape.val[one] = 1.0
        tape.leaves = leaves

        tape.nodes = [<object>order[i] for i in range(N)]
        for i in range(N):
            v = _at(order, i)
            if v.op != OP_LEAF and slot[i] >= 0:
                v.dp = &tape.val[slot[i]]
                v.gp = &tape.grad[slot[i]]
                v.owner = tape.buffer
    finally:
        PyMem_Free(consumers)
        PyMem_Free(chain)
        PyMem_Free(init)
        PyMem_Free(term)
        PyMem_Free(absorbed)
        PyMem_Free(terms_buf)
        PyMem_Free(order)
    return tape


cdef inline int _op_at(PyObject** order, Py_ssize_t i):
    return (<Value>order[i]).op


cdef inline bint ti_is_product(PyObject** order, int* consumers, int t, bint same):
    return (not same) and _op_at(order, t) == OP_MUL and consumers[t] == 1


def lower_scalar(Value root not None, bint fuse=True):
    """Lower the scalar graph below root to a replayable Tape."""
    return _lower(root, fuse)


# -- eager backward ------------------------------------------------------
#
# Value.backward() emits an unfused program into one reusable scratch tape
# and runs the same _backward_sweep as a replayed tape.  The scratch buffers
# grow to the largest graph seen and are reused, so an eager step does not
# allocate per node.  The whole call holds the GIL (the scratch is shared).

cdef PyObject** _eager_order = NULL
cdef Py_ssize_t _eager_order_cap = 0
cdef Tape _scratch = None
cdef Py_ssize_t _scratch_cap = 0


cdef int _reserve_scratch(Py_ssize_t n) except -1:
    """Make every scratch array hold at least n entries."""
    global _scratch, _scratch_cap
    cdef Py_ssize_t cap = _scratch_cap if _scratch_cap else 1024
    cdef Tape t
    if _scratch is None:
        _scratch = Tape.__new__(Tape)
    t = _scratch
    if n + 2 <= _scratch_cap:
        return 0
    while cap < n + 2:
        cap *= 2
    t.op = <int*>_realloc(t.op, cap * sizeof(int))
    t.out = <int*>_realloc(t.out, cap * sizeof(int))
    t.a = <int*>_realloc(t.a, cap * sizeof(int))
    t.b = <int*>_realloc(t.b, cap * sizeof(int))
    t.n = <int*>_realloc(t.n, cap * sizeof(int))
    t.cst = <double*>_realloc(t.cst, cap * sizeof(double))
    t.leaf_data = <double***>_realloc(t.leaf_data, cap * sizeof(double**))
    t.leaf_grad = <double***>_realloc(t.leaf_grad, cap * sizeof(double**))
    t.own_values = <double*>_realloc(t.own_values, 2 * cap * sizeof(double))
    t.val = t.own_values
    t.grad = t.own_values + cap
    _scratch_cap = cap
    return 0


cdef void* _realloc(void* p, size_t size) except NULL:
    cdef void* q = PyMem_Realloc(p, size)
    if q == NULL:
        raise MemoryError("backward: out of memory")
    return q


def eager_backward(Value root not None):
    """Value.backward(): the compiled reverse sweep over an unfused program."""
    global _eager_order, _eager_order_cap
    cdef Py_ssize_t N, L = 0, i
    cdef int leaf_slot = 0, slot, instr = 0
    cdef PyObject* p
    cdef PyObject* q
    cdef PyObject* none = <PyObject*>None
    cdef Tape t
    N = _topological_order(root, &_eager_order, &_eager_order_cap, &L)
    _reserve_scratch(N)
    t = _scratch
    cdef PyObject** order = _eager_order
    # One pass: slots (leaves 0..L-1, then the 1.0 slot, then instructions),
    # the program, and the current values.  `index` now holds the slot.
    slot = <int>L + 1
    for i in range(N):
        p = order[i]
        if _vop(p) == OP_LEAF:
            (<Value>p).index = leaf_slot
            t.leaf_data[leaf_slot] = &(<Value>p).dp
            t.leaf_grad[leaf_slot] = &(<Value>p).gp
            t.val[leaf_slot] = (<Value>p).dp[0]
            leaf_slot += 1
            continue
        (<Value>p).index = slot
        t.op[instr] = _vop(p)
        t.out[instr] = slot
        t.a[instr] = <int>(<Value>_va(p)).index
        q = _vb(p)
        t.b[instr] = <int>(<Value>q).index if q != none else 0
        t.cst[instr] = (<Value>p).c
        t.val[slot] = (<Value>p).dp[0]
        instr += 1
        slot += 1
    t.n_instr = instr
    t.n_leaves = <int>L
    t.n_slots = slot
    t.root_slot = <int>root.index
    t._backward_sweep()
    for i in range(N):
        p = order[i]
        if _vop(p) != OP_LEAF:
            (<Value>p).gp[0] = t.grad[(<Value>p).index]
