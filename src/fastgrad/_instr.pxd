# One tensor instruction and its executor (see _instr.pyx).

# Kernel dtypes.  int64 appears only as data (class targets) and as the
# source of a cast; no kernel computes in it.
cdef enum:
    F64 = 0
    F32 = 1
    I64 = 2

cdef enum:
    OVERWRITE_A = 1     # Instr.flags: this op is the first writer of a's grad
    OVERWRITE_B = 2     # ... of b's grad (a GEMM then overwrites: beta = 0)

# One instruction: opcode, kernel dtype, output and operand slots (b = -1 if
# unary), a scratch slot (-1 if none), the offset of its int metadata
# (shapes, strides: layout per op in _instr.pyx), a number attribute.
cdef struct Instr:
    int op
    int dtype
    int out
    int a
    int b
    int scratch
    Py_ssize_t meta
    double c
    int flags

# vp / gp: per slot, the address of its values / its gradient (NULL: none).
# forward_one returns -1, or the first out-of-range target row of a
# cross-entropy (the kernel checks before it reads).
cdef Py_ssize_t forward_one(Instr* ins, const Py_ssize_t* meta,
                            char** vp) noexcept nogil
cdef void backward_one(Instr* ins, const Py_ssize_t* meta, char** vp,
                       char** gp) noexcept nogil

cdef char* data_ptr(object arr)

# None when every byte the instruction touches lies inside its slots
# (slot_bytes per slot), else a description of what would overrun.
cdef str check_extents(Instr* ins, const Py_ssize_t* meta, Py_ssize_t n_meta,
                       const Py_ssize_t* slot_bytes, int n_slots)
