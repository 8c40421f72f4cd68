"""Lowering scalar graphs to Tapes, and the eager backward pass.

Lowering walks the graph below a root Value without recursion, numbers the
nodes in topological order and emits a Tape's program (see _tape.pyx).
Chains of additions of products (a neuron's ``sum(w*x, b)``) become one
``dot`` instruction whose running sum stays in a register; it adds the
terms in the graph's own order, so it rounds exactly as the unfused chain.

Eager ``Value.backward()`` runs the same compiled backward sweep over a
throw-away, unfused program, so every derivative has one implementation.
"""

cimport cython
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.ref cimport PyObject
from libc.string cimport memset

import numpy as np

from fastgrad._value cimport Value
from fastgrad._tape cimport Tape

include "_opcodes.pxi"

__all__ = ["lower_scalar", "eager_backward"]

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
