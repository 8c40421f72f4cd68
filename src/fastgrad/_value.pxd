# The compiled scalar node.  Layout is private; _tape.pyx reads the fields.

cdef class Value:
    # Where this node's value and gradient live.  By default they point at
    # the inline fields _d/_g; a parameter re-homed into an arena, or an
    # intermediate lowered onto a tape, points into that buffer instead, and
    # `owner` keeps the buffer alive.
    cdef double* dp
    cdef double* gp
    cdef double _d
    cdef double _g
    cdef object owner
    # The graph: opcode, up to two inputs, a number attribute (pow exponent).
    cdef int op
    cdef Value a
    cdef Value b
    cdef double c
    cdef object _label
    # For a leaf: the (children, _op string) a user gave when building a node
    # by hand (micrograd's Value(data, _children, _op)), kept for _prev/_op
    # only.  For a pow_const node: the exponent object as written.
    cdef object _given
    # Scratch used by one traversal at a time (the GIL serialises them).
    cdef unsigned long long mark
    cdef Py_ssize_t index

cdef Value leaf(double d)
cdef Value node(double d, int op, Value a, Value b, double c)
