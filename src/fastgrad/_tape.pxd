# The compiled scalar tape: a struct-of-arrays program and its sweeps.

from fastgrad._value cimport Value

cdef class Tape:
    # Program (length n_instr): opcode, output slot, operand slots, number
    # attribute.  For a dot, `a` is the initial addend's slot, `b` the offset
    # of its first pair in pair_x/pair_y and `n` the number of pairs.
    cdef int n_instr
    cdef int* op
    cdef int* out
    cdef int* a
    cdef int* b
    cdef int* n
    cdef double* cst
    cdef int n_pairs
    cdef int* pair_x
    cdef int* pair_y

    # Slots: leaves take 0 .. n_leaves-1, then one slot holding 1.0 (the
    # second factor of a plain addend inside a dot), then one slot per
    # instruction.  val and grad are the two halves of `buffer`.
    cdef int n_slots
    cdef int n_leaves
    cdef int root_slot
    cdef object buffer
    cdef double* own_values     # val/grad storage when not a numpy buffer
    cdef double* val
    cdef double* grad
    # leaf_home[i] is the address of leaf i's data/grad pointer fields, so a
    # sweep always reads and writes the leaf's current home.
    cdef double*** leaf_data
    cdef double*** leaf_grad

    # Python-side bookkeeping (not touched by the sweeps).
    cdef object leaves          # list of leaf Values (keeps them alive)
    cdef object nodes           # list of every graph node, topological order
    cdef int* node_slot         # per node: its slot, or -1 when fused away
    cdef int* node_instr        # per node: instruction that computes it
    cdef int* node_terms        # fused add: terms of that dot it covers
    cdef int* instr_node        # per instruction: index of its node
    cdef object _index          # id(node) -> node index, built on demand
    cdef bint fused
    cdef int busy

    cdef void _forward_sweep(self) noexcept nogil
    cdef void _backward_sweep(self) noexcept nogil
    cdef int _check_built(self) except -1
    cdef int _enter(self) except -1
    cdef Py_ssize_t _node_index(self, node) except -1
    cdef _check_finite(self)
    cdef str _line(self, int k)
