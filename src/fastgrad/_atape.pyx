"""The compiled tape for tensor graphs: array instructions and their sweeps.

A program is an array of plain ``Instr`` records (see _instr.pxd) and, per
slot, a value pointer and a gradient pointer.  Intermediate slots are the
graph nodes' own arrays; leaf slots point at the leaf tensors' arrays,
refreshed (and their shapes checked) each time a sweep starts.  The sweeps
are nogil loops over the program calling _instr's executor.

Planning (shapes, strides, buffers) is done in Python by fastgrad.tensor and
fastgrad.lower; this module only executes.  Eager tensor ops run a single
instruction through the same executor, so eager values and replayed values
are bitwise the same.
"""

cimport cython
cimport numpy as cnp
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.ref cimport PyObject
from libc.math cimport isfinite
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset

import numpy as np

from fastgrad._instr cimport Instr, forward_one, backward_one, data_ptr
from fastgrad._instr import DTYPE_CODES, eager_forward

include "_opcodes.pxi"

cnp.import_array()

__all__ = ["ArrayTape", "eager_forward", "DTYPE_CODES"]


cdef enum:
    MAX_LEAF_DIMS = 32

# Marks a leaf (or its grad) as never bound yet.
cdef object _UNBOUND = object()


# -- the tape -------------------------------------------------------------------------

@cython.final
cdef class ArrayTape:
    """A lowered tensor graph (built by fastgrad.lower; see fastgrad.tensor)."""

    cdef Instr* ins
    cdef int n_instr
    cdef Py_ssize_t* meta
    cdef int n_slots
    cdef char** vp
    cdef char** gp
    cdef Py_ssize_t* slot_bytes       # bytes of each slot (grad zeroing)
    cdef char* grad_owned             # slot's grad is tape-owned (zeroed each backward)
    cdef int n_leaves
    cdef int* leaf_slot
    cdef object leaf_tensors          # list of leaf Tensors, in leaf order
    cdef object leaf_shapes           # their shapes at lowering
    cdef int* leaf_ndim               # ... and the same as C arrays
    cdef int* leaf_type
    cdef Py_ssize_t* leaf_dims
    cdef object seed                  # ones like the root (implicit backward seed)
    cdef char** leaf_grad_ptr         # per leaf: its .grad array's data (bound per backward)
    cdef list leaf_seen               # per leaf: the array bound last time
    cdef list leaf_seen_grad          # ... and its .grad
    cdef object leaf_dtypes
    cdef object leaf_needs_grad       # list of bool
    cdef object buffers               # keeps the owned arrays alive
    cdef public object root
    cdef public object nodes          # graph nodes, topological order
    cdef public object node_slot      # id(node) -> slot
    cdef public object instr_node     # per instruction: the node it computes
    cdef int root_slot
    cdef int busy

    def __cinit__(self):
        self.busy = 0

    def __dealloc__(self):
        PyMem_Free(self.ins)
        PyMem_Free(self.meta)
        PyMem_Free(self.vp)
        PyMem_Free(self.gp)
        PyMem_Free(self.slot_bytes)
        PyMem_Free(self.grad_owned)
        PyMem_Free(self.leaf_slot)
        PyMem_Free(self.leaf_ndim)
        PyMem_Free(self.leaf_type)
        PyMem_Free(self.leaf_dims)
        PyMem_Free(self.leaf_grad_ptr)

    def _build(self, instrs, meta, slot_values, slot_grads, slot_bytes,
               leaf_slots, leaf_tensors, leaf_needs_grad, buffers, root_slot,
               skip_zero=None):
        """Fill the program (called once by fastgrad.lower).

        instrs: list of (op, dtype, out, a, b, scratch, meta_offset, c);
        slot_values / slot_grads: per slot an owned array or None (leaves,
        and slots that need no gradient).
        """
        cdef Py_ssize_t i, n
        n = len(instrs)
        self.n_instr = <int>n
        self.ins = <Instr*>PyMem_Malloc((n + 1) * sizeof(Instr))
        self.meta = <Py_ssize_t*>PyMem_Malloc((len(meta) + 1) * sizeof(Py_ssize_t))
        self.n_slots = <int>len(slot_values)
        self.vp = <char**>PyMem_Malloc((self.n_slots + 1) * sizeof(char*))
        self.gp = <char**>PyMem_Malloc((self.n_slots + 1) * sizeof(char*))
        self.slot_bytes = <Py_ssize_t*>PyMem_Malloc((self.n_slots + 1) * sizeof(Py_ssize_t))
        self.grad_owned = <char*>PyMem_Malloc(self.n_slots + 1)
        self.n_leaves = <int>len(leaf_slots)
        self.leaf_slot = <int*>PyMem_Malloc((self.n_leaves + 1) * sizeof(int))
        if (self.ins == NULL or self.meta == NULL or self.vp == NULL or self.gp == NULL
                or self.slot_bytes == NULL or self.grad_owned == NULL
                or self.leaf_slot == NULL):
            raise MemoryError("lower: out of memory")
        for i in range(n):
            op, dt, out, a, b, scratch, moff, c, flags = instrs[i]
            self.ins[i].op = op
            self.ins[i].dtype = dt
            self.ins[i].out = out
            self.ins[i].a = a
            self.ins[i].b = b
            self.ins[i].scratch = scratch
            self.ins[i].meta = moff
            self.ins[i].c = c
            self.ins[i].flags = flags
        for i in range(len(meta)):
            self.meta[i] = meta[i]
        for i in range(self.n_slots):
            v = slot_values[i]
            g = slot_grads[i]
            self.vp[i] = data_ptr(v) if v is not None else NULL
            self.gp[i] = data_ptr(g) if g is not None else NULL
            # 2: owned, zeroed before each backward; 1: owned, overwritten by
            # its first writer; 0: not owned.
            self.grad_owned[i] = 0 if g is None else (
                1 if skip_zero is not None and skip_zero[i] else 2)
            self.slot_bytes[i] = slot_bytes[i]
        for i in range(self.n_leaves):
            self.leaf_slot[i] = leaf_slots[i]
        self.leaf_tensors = list(leaf_tensors)
        self.leaf_seen = [_UNBOUND] * len(self.leaf_tensors)
        self.leaf_seen_grad = [_UNBOUND] * len(self.leaf_tensors)
        self.leaf_shapes = [t._data.shape for t in leaf_tensors]
        self.leaf_dtypes = [t._data.dtype for t in leaf_tensors]
        self.leaf_ndim = <int*>PyMem_Malloc((self.n_leaves + 1) * sizeof(int))
        self.leaf_type = <int*>PyMem_Malloc((self.n_leaves + 1) * sizeof(int))
        self.leaf_dims = <Py_ssize_t*>PyMem_Malloc(
            (self.n_leaves + 1) * MAX_LEAF_DIMS * sizeof(Py_ssize_t))
        self.leaf_grad_ptr = <char**>PyMem_Malloc((self.n_leaves + 1) * sizeof(char*))
        if (self.leaf_ndim == NULL or self.leaf_type == NULL or self.leaf_dims == NULL
                or self.leaf_grad_ptr == NULL):
            raise MemoryError("lower: out of memory")
        for i in range(self.n_leaves):
            shape = self.leaf_shapes[i]
            if len(shape) > MAX_LEAF_DIMS:
                raise ValueError(f"lower: leaf of shape {shape} has more than "
                                 f"{MAX_LEAF_DIMS} dimensions")
            self.leaf_ndim[i] = len(shape)
            self.leaf_type[i] = self.leaf_dtypes[i].num
            self.leaf_grad_ptr[i] = NULL
            for d in range(len(shape)):
                self.leaf_dims[i * MAX_LEAF_DIMS + d] = shape[d]
        self.leaf_needs_grad = list(leaf_needs_grad)
        self.buffers = buffers
        self.root_slot = root_slot

    cdef int _enter(self) except -1:
        if self.busy:
            raise RuntimeError(
                "Tape is already running in another thread: one tape is not "
                "re-entrant (lower the graph once per thread instead)")
        self.busy = 1
        return 0

    cdef inline bint _matches(self, object arr, int i):
        """arr is a C-contiguous ndarray with leaf i's lowered shape and dtype."""
        cdef cnp.ndarray a
        cdef int d, nd
        if type(arr) is not np.ndarray:
            return False
        a = <cnp.ndarray>arr
        nd = cnp.PyArray_NDIM(a)
        if nd != self.leaf_ndim[i] or cnp.PyArray_TYPE(a) != self.leaf_type[i]:
            return False
        if not cnp.PyArray_IS_C_CONTIGUOUS(a):
            return False
        for d in range(nd):
            if cnp.PyArray_DIMS(a)[d] != self.leaf_dims[i * MAX_LEAF_DIMS + d]:
                return False
        return True

    cdef int _bind_leaves(self, bint grads) except -1:
        """Point the leaf slots at the leaves' current arrays (GIL held).

        Checks each leaf still has the shape and dtype it was lowered with
        (C-level checks only: this runs before every sweep).  An array bound
        last time is not checked again: the tape holds a reference to it, so
        it cannot have been freed and replaced by another at the same place.
        """
        cdef int i, s
        cdef list seen = self.leaf_seen
        cdef list seen_grad = self.leaf_seen_grad
        for i in range(self.n_leaves):
            t = self.leaf_tensors[i]
            arr = t._data
            if arr is not seen[i]:
                if not self._matches(arr, i):
                    raise ValueError(
                        f"tape: leaf {_name(t)} now holds "
                        f"{_describe_array(arr)}; it was lowered with shape "
                        f"{self.leaf_shapes[i]} and dtype {self.leaf_dtypes[i]} "
                        f"(lower the graph again after changing shapes)")
                s = self.leaf_slot[i]
                self.vp[s] = data_ptr(arr)
                seen[i] = arr
            if not grads:
                continue
            if not self.leaf_needs_grad[i]:
                self.leaf_grad_ptr[i] = NULL
                continue
            g = t.grad
            if g is seen_grad[i]:
                continue
            if g is None:
                g = np.zeros(arr.shape, dtype=arr.dtype)
                t.grad = g
            elif not self._matches(g, i) or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>g):
                raise ValueError(
                    f"tape: leaf {_name(t)} has a .grad of "
                    f"{_describe_array(g)}; expected a writeable "
                    f"C-contiguous array of shape {arr.shape} and dtype "
                    f"{arr.dtype}, or None")
            self.leaf_grad_ptr[i] = data_ptr(g)
            seen_grad[i] = g
        return 0

    cdef void _accumulate_leaf_grads(self) noexcept nogil:
        """leaf.grad += the gradient summed on the tape, once per backward."""
        cdef int i, s
        cdef Py_ssize_t j, n
        for i in range(self.n_leaves):
            if self.leaf_grad_ptr[i] == NULL:
                continue
            s = self.leaf_slot[i]
            if self.leaf_type[i] == cnp.NPY_FLOAT32:
                n = self.slot_bytes[s] // 4
                for j in range(n):
                    (<float*>self.leaf_grad_ptr[i])[j] += (<float*>self.gp[s])[j]
            else:
                n = self.slot_bytes[s] // 8
                for j in range(n):
                    (<double*>self.leaf_grad_ptr[i])[j] += (<double*>self.gp[s])[j]

    def forward(self, check=False):
        """Recompute every instruction from the leaves' current arrays.

        Returns the root tensor (whose ``.data`` now holds the new value).
        ``check=True`` raises FloatingPointError naming the first instruction
        that produced a non-finite value.
        """
        cdef int k
        cdef Py_ssize_t bad = -1
        self._enter()
        try:
            self._bind_leaves(False)
            with nogil:
                for k in range(self.n_instr):
                    bad = forward_one(&self.ins[k], self.meta, self.vp)
                    if bad >= 0:
                        break
        finally:
            self.busy = 0
        if bad >= 0:
            node = self.instr_node[k]
            targets = node._inputs[1]._data
            raise IndexError(
                f"cross_entropy{_label_of(node)}: target {int(targets.reshape(-1)[bad])} "
                f"at row {bad} is out of range for {self.meta[self.ins[k].meta + 1]} classes")
        if check:
            self._check_finite()
        return self.root

    def backward(self, grad=None):
        """Reverse sweep: accumulate into the .grad of every leaf that requires it.

        ``grad`` is d(loss)/d(root); it may be omitted when the root has one
        element.  Intermediate gradients restart from zero on every call.
        """
        cdef int k, s
        cdef char* seed_ptr
        root_data = self.root._data
        if grad is None:
            if root_data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for a tensor "
                    f"with one element; the root has shape {root_data.shape} "
                    f"(pass grad=)")
            if self.seed is None:
                self.seed = np.ones(root_data.shape, dtype=root_data.dtype)
            seed = self.seed
        else:
            seed = np.array(getattr(grad, "_data", grad), dtype=root_data.dtype, order="C")
            if seed.shape != root_data.shape:
                raise ValueError(
                    f"backward: grad has shape {seed.shape}, but the root has shape "
                    f"{root_data.shape}")
        self._enter()
        try:
            self._bind_leaves(True)
            for s in range(self.n_slots):
                if self.grad_owned[s] == 2 and self.gp[s] != NULL:
                    memset(self.gp[s], 0, self.slot_bytes[s])
            s = self.root_slot
            if self.gp[s] != NULL:
                seed_ptr = data_ptr(seed)
                memcpy(self.gp[s], seed_ptr, self.slot_bytes[s])
            with nogil:
                k = self.n_instr - 1
                while k >= 0:
                    backward_one(&self.ins[k], self.meta, self.vp, self.gp)
                    k -= 1
                self._accumulate_leaf_grads()
        finally:
            self.busy = 0

    def zero_grad(self):
        """Zero (in place) the .grad of every leaf that requires grad."""
        for i in range(self.n_leaves):
            if self.leaf_needs_grad[i]:
                g = self.leaf_tensors[i].grad
                if g is not None:
                    g[...] = 0

    cdef _check_finite(self):
        cdef int k
        for k in range(self.n_instr):
            node = self.instr_node[k]
            arr = node._data
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise FloatingPointError(
                    f"forward: instruction {k} ({node._opname()}{_label_of(node)}, "
                    f"shape {arr.shape}, {arr.dtype}) produced a non-finite value")

    def __len__(self):
        return self.n_instr

    @property
    def leaves(self):
        return list(self.leaf_tensors)

    def _program(self):
        """The program as Python lists (for statistics, drawings and tests)."""
        cdef int k
        cdef Py_ssize_t j, start
        instrs = []
        for k in range(self.n_instr):
            node = self.instr_node[k]
            start = self.ins[k].meta
            meta = []
            plan = node._attrs[len(node._attrs) - 1]
            for j in range(len(plan.meta)):
                meta.append(self.meta[start + j])
            instrs.append({
                "op": _BY_OPCODE[self.ins[k].op].name, "out": self.ins[k].out,
                "a": self.ins[k].a, "b": self.ins[k].b if self.ins[k].b >= 0 else None,
                "c": self.ins[k].c, "node": node, "inputs": node._inputs,
                "shape": tuple(node.shape), "dtype": node.dtype, "meta": meta,
            })
        arenas, grad_arenas, values = self.buffers
        return {
            "kind": "tensor", "instructions": instrs, "leaves": list(self.leaf_tensors),
            "leaf_slots": [self.leaf_slot[k] for k in range(self.n_leaves)],
            "n_leaves": self.n_leaves, "n_slots": self.n_slots,
            "root_slot": self.root_slot,
            "value_bytes": sum(v.nbytes for v in values if v is not None),
            "grad_bytes": sum(a.nbytes for a in grad_arenas.values()),
            "n_nodes": len(self.nodes),
        }

    def stats(self):
        """Instruction counts per op, slots, buffer bytes and a FLOP estimate."""
        from fastgrad._stats import tape_stats
        return tape_stats(self)

    def value(self, node):
        """The current value of any node of the graph (its live array)."""
        if id(node) not in self.node_slot:
            raise ValueError(f"ArrayTape.value: the tensor is not a node of this tape's graph")
        return node._data

    def nbytes(self):
        """Bytes of the value, gradient and scratch buffers the tape owns."""
        arenas, grad_arenas, _ = self.buffers
        return (sum(a.nbytes for a in arenas.values())
                + sum(a.nbytes for a in grad_arenas.values()))

    def __repr__(self):
        counts = {}
        for node in self.instr_node:
            name = node._opname()
            counts[name] = counts.get(name, 0) + 1
        ops = ", ".join(f"{name} {c}" for name, c in
                        sorted(counts.items(), key=lambda t: -t[1]))
        root = self.root
        return (f"<ArrayTape: {self.n_instr} instructions ({ops}), {self.n_leaves} "
                f"leaves, {self.nbytes()} bytes of buffers, root %{self.root_slot} "
                f"{tuple(root.shape)} {root.dtype}>")

    def __str__(self):
        lines = [repr(self)]
        for i in range(self.n_leaves):
            t = self.leaf_tensors[i]
            grad = " requires_grad" if self.leaf_needs_grad[i] else ""
            lines.append(f"%{self.leaf_slot[i]} = leaf {tuple(t.shape)} {t.dtype}{grad}"
                         f"{_comment(t)}")
        for k in range(self.n_instr):
            node = self.instr_node[k]
            ins = &self.ins[k]
            sym = _SYMBOL[ins.op]
            operands = f"%{ins.a}" if ins.b < 0 else f"%{ins.a}, %{ins.b}"
            if ins.op in _INFIX:
                rhs = f"%{ins.a} {sym} %{ins.b}"
            elif ins.op == OP_POW_CONST:
                rhs = f"%{ins.a} ** {ins.c!r}"
            else:
                rhs = f"{sym}({operands})"
            lines.append(f"%{ins.out} = {rhs}  -> {tuple(node.shape)} {node.dtype}"
                         f"{_comment(node)}")
        return "\n".join(lines)

    def _instr(self, int k):
        """(op, dtype, out, a, b, scratch) of instruction k, for listings."""
        cdef Instr* i = &self.ins[k]
        return (i.op, i.dtype, i.out, i.a, i.b, i.scratch)


from fastgrad.ops import BY_OPCODE as _BY_OPCODE

_SYMBOL = {code: op.symbol for code, op in _BY_OPCODE.items()}
_INFIX = {OP_ADD, OP_SUB, OP_MUL, OP_TRUEDIV, OP_POW, OP_MATMUL}


cdef str _comment(t):
    label = getattr(t, "label", None)
    return f"  # {label}" if label else ""


cdef str _name(t):
    label = getattr(t, "label", None)
    return repr(label) if label else f"of shape {t._data.shape}"


cdef str _label_of(node):
    label = getattr(node, "label", None)
    return f" '{label}'" if label else ""


cdef str _describe_array(arr):
    if isinstance(arr, np.ndarray):
        return f"an array of shape {arr.shape} and dtype {arr.dtype}"
    return f"a {type(arr).__name__}"


# -- compiled-call helpers (fastgrad.compile) ------------------------------------

def array_key(object x):
    """(shape, type number) of a C-contiguous float32/float64/int64 ndarray, else None.

    C-level checks only: this runs for every array argument of every
    compiled call.
    """
    cdef cnp.ndarray a
    cdef int t
    if type(x) is not np.ndarray:
        return None
    a = <cnp.ndarray>x
    t = cnp.PyArray_TYPE(a)
    if t != cnp.NPY_FLOAT64 and t != cnp.NPY_FLOAT32 and t != cnp.NPY_INT64:
        return None
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        return None
    return (x.shape, t)
