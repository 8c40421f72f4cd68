"""The op table: the single source of truth for every fastgrad operation.

Each row names an operation once: its opcode (the integer the compiled tape
switches on), its arity, the symbol used in tape listings and graph drawings,
and its local derivatives written out as text (used by explanations and
documentation).  The build generates the Cython opcode enum from this table,
so the compiled sweeps and the Python layers can never disagree on a number.

This module must stay importable on its own (no imports from the package):
``setup.py`` loads it with ``runpy`` before the package is built.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Op", "OPS", "BY_NAME", "BY_OPCODE", "opcode_enum_source"]


@dataclass(frozen=True)
class Op:
    """One operation of the graph language.

    name:       identifier used in code and error messages (``"mul"``)
    opcode:     the integer stored on the tape; never reuse or renumber one
    arity:      number of graph inputs (a number exponent is an attribute,
                not an input, so ``pow_const`` has arity 1)
    symbol:     short form for listings and drawings (``"*"``)
    derivative: the local partial derivatives, in terms of the inputs
                ``a``, ``b``, the attribute ``c`` and the output ``out``
    micrograd:  the ``_op`` string micrograd 0.1.0 gives the same node
                (``None`` where micrograd has no such op); a format string
                may use ``{c}``
    """

    name: str
    opcode: int
    arity: int
    symbol: str
    derivative: str
    micrograd: str | None = None


OPS: tuple[Op, ...] = (
    # A leaf holds data that the tape reads; it has no inputs.
    Op("leaf", 0, 0, "leaf", "", ""),
    Op("add", 1, 2, "+", "d/da = 1, d/db = 1", "+"),
    Op("mul", 2, 2, "*", "d/da = b, d/db = a", "*"),
    Op("sub", 3, 2, "-", "d/da = 1, d/db = -1", None),
    Op("truediv", 4, 2, "/", "d/da = 1/b, d/db = -a/b²", None),
    Op("neg", 5, 1, "neg", "d/da = -1", None),
    Op("pow_const", 6, 1, "**", "d/da = c·a^(c-1)", "**{c}"),
    Op("pow", 7, 2, "**", "d/da = b·a^(b-1), d/db = out·ln(a)", None),
    Op("relu", 8, 1, "relu", "d/da = 1 if out > 0 else 0", "ReLU"),
    Op("tanh", 9, 1, "tanh", "d/da = 1 - out²", "tanh"),
    Op("exp", 10, 1, "exp", "d/da = out", "exp"),
    Op("log", 11, 1, "log", "d/da = 1/a", None),
    Op("sigmoid", 12, 1, "sigmoid", "d/da = out·(1 - out)", None),
    # Produced only by lowering: a chain of additions of products,
    # out = a + Σ x_k·y_k, evaluated left to right in the order the graph
    # added the terms (so it rounds exactly as the unfused chain does).
    Op("dot", 13, -1, "dot", "d/da = 1, d/dx_k = y_k, d/dy_k = x_k", None),
    # Tensor ops (arrays on the tape; elementwise ops above broadcast).
    Op("abs", 14, 1, "abs", "d/da = sign(a)", None),
    Op("matmul", 15, 2, "@", "dL/dA = dL/dY · Bᵀ, dL/dB = Aᵀ · dL/dY", None),
    Op("sum", 16, 1, "sum", "d/da = 1 (broadcast back over the summed axes)", None),
    Op("max", 17, 1, "max",
       "d/da = 1 where a equals the max (shared equally among ties), else 0", None),
    Op("reshape", 18, 1, "reshape", "dL/da = reshape(dL/dout, a.shape)", None),
    Op("transpose", 19, 1, "transpose", "dL/da = transpose(dL/dout, inverse axes)", None),
    Op("getitem", 20, 1, "[]", "dL/da = dL/dout scattered into a's shape (zero elsewhere)", None),
    Op("cast", 21, 1, "cast", "dL/da = cast(dL/dout, a.dtype)", None),
    Op("log_softmax", 22, 1, "log_softmax",
       "dL/da = dL/dout - softmax(a) · Σ dL/dout (along the axis)", None),
    Op("cross_entropy", 23, 2, "cross_entropy",
       "dL/dlogits = (softmax(logits) - onehot(targets)) · dL/dout", None),
)

BY_NAME: dict[str, Op] = {op.name: op for op in OPS}
BY_OPCODE: dict[int, Op] = {op.opcode: op for op in OPS}


def _check_table() -> None:
    names = [op.name for op in OPS]
    codes = [op.opcode for op in OPS]
    if len(set(names)) != len(names):
        raise AssertionError("ops.py: duplicate op name")
    if len(set(codes)) != len(codes):
        raise AssertionError("ops.py: duplicate opcode")


_check_table()


def opcode_enum_source() -> str:
    """Cython source of the opcode enum (written to ``_opcodes.pxi`` by the build)."""
    lines = [
        "# Generated from fastgrad/ops.py by setup.py; do not edit.",
        "cdef enum:",
    ]
    for op in OPS:
        lines.append(f"    OP_{op.name.upper()} = {op.opcode}")
    lines.append(f"    OP_COUNT = {max(op.opcode for op in OPS) + 1}")
    return "\n".join(lines) + "\n"
