"""The op table: one row per fastgrad operation, and the source the build expands.

An elementwise op is entirely described by its row: name and opcode, the C
expression of its forward and of its backward per operand, the eager
scalar's domain checks, the derivative as text and as a rule in fastgrad's
own ops, the points where it is not differentiable, and the method that
applies it.  ``setup.py`` generates from these rows (see ``_codegen.py``) the
scalar kernel pairs, the array loops, the tapes' dispatch, the ``Value`` and
``Tensor`` methods and their stubs; the tools (explain, gradcheck, viz) and
the generated tests read the same rows.  Ops that are not elementwise
(matmul, reductions, movement, softmax and cross-entropy) have one
hand-written kernel and one plan function each; their rows carry the rest.

This module must stay importable on its own (no imports from the package):
``setup.py`` loads it with ``runpy`` before the package is built.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Op", "Domain", "Composite", "OPS", "COMPOSITES", "BY_NAME", "BY_OPCODE",
           "ELEMENTWISE", "opcode_enum_source"]


@dataclass(frozen=True)
class Domain:
    """An eager scalar's check: raise ``error(message)`` when ``when`` holds.

    ``when`` is a C expression in ``a``, ``b``, ``c`` and the computed
    ``out``; ``example`` is an input that triggers it (for the tests).
    """

    when: str
    error: str              # ValueError, OverflowError, ZeroDivisionError
    message: str
    example: tuple = ()


@dataclass(frozen=True)
class Op:
    """One operation of the graph language.

    name:       identifier used in code and error messages (``"mul"``)
    opcode:     the integer stored on the tape; never reuse or renumber one
    arity:      number of graph inputs (a number attribute such as the
                exponent of ``pow_const`` is not an input)
    symbol:     short form for listings and drawings (``"*"``)
    derivative: the local partial derivatives as text, in terms of the
                inputs ``a``, ``b``, the attribute ``c`` and the output ``out``
    micrograd:  the ``_op`` string micrograd 0.1.0 gives the same node
                (``None`` where micrograd has no such op; ``{c}`` is the
                attribute)
    infix:      written between its operands in listings (``a * b``)
    precedence: binding strength in drawn expressions (1 ``+ -``, 2 ``* / @``,
                3 unary minus, 4 ``**``; 0: written as a call ``f(x)``)
    tight:      drawn without spaces around the symbol (``x1*w1``)

    Elementwise ops (``forward`` set) also have:

    forward:    C expression of the output in ``a``, ``b``, ``c`` (or a
                block of Cython statements that returns it)
    backward:   per operand, C expression of its gradient contribution in
                ``a``, ``b``, ``c``, ``out`` and the incoming gradient ``g``
    method:     the Value/Tensor method that applies it (None: an operator
                such as ``+``, written by hand)
    attr:       (name, default) of the number attribute ``c`` the method
                takes, e.g. ``("negative_slope", 0.01)`` (default None:
                the argument is required)
    dunder:     a Python operator that is this method too (``__abs__``)
    domain:     checks an eager scalar makes before it builds the node
    rule:       per operand, the derivative in fastgrad ops (an expression
                in ``a``, ``b``, ``c``, ``out``, ``g`` that Values evaluate;
                None for a piecewise op that needs a step function)
    kinks:      Python expressions in ``a``, ``b``, ``c`` that are 0 where
                the op is not differentiable (gradcheck reports a mismatch
                there as a kink, and the tests check the convention there)
    tensor_rule: per operand, the gradient for explanations, with ``{g}``,
                ``{a}``, ``{b}``, ``{y}`` (the output) and ``{c}``
    torch:      the torch expression in ``a``, ``b``, ``c`` computing the
                same op (tests compare against it; None: torch has none)
    sample:     (low, high) of the inputs the tests draw
    """

    name: str
    opcode: int
    arity: int
    symbol: str
    derivative: str
    micrograd: str | None = None
    infix: bool = False
    precedence: int = 0
    tight: bool = False
    forward: str = ""
    backward: tuple[str, ...] = ()
    method: str | None = None
    attr: tuple[str, float | None] | None = None
    dunder: str | None = None
    domain: tuple[Domain, ...] = ()
    rule: tuple[str | None, ...] = ()
    kinks: tuple[str, ...] = ()
    tensor_rule: tuple[str, ...] = ()
    torch: str | None = None
    sample: tuple[float, float] = (-3.0, 3.0)

    @property
    def elementwise(self) -> bool:
        return bool(self.forward)


_OVERFLOW = Domain("isfinite(a) and not isfinite(out)", "OverflowError",
                   "result out of range", (1000.0,))

OPS: tuple[Op, ...] = (
    # A leaf holds data that the tape reads; it has no inputs.
    Op("leaf", 0, 0, "leaf", "", ""),
    Op("add", 1, 2, "+", "d/da = 1, d/db = 1", "+", infix=True, precedence=1,
       forward="a + b", backward=("g", "g"),
       rule=("g", "g"), tensor_rule=("{g}", "{g}"), torch="a + b"),
    Op("mul", 2, 2, "*", "d/da = b, d/db = a", "*", infix=True, precedence=2, tight=True,
       forward="a * b", backward=("b * g", "a * g"),
       rule=("g * b", "g * a"), tensor_rule=("{g} ⊙ {b}", "{g} ⊙ {a}"), torch="a * b"),
    Op("sub", 3, 2, "-", "d/da = 1, d/db = -1", None, infix=True, precedence=1,
       forward="a - b", backward=("g", "-g"),
       rule=("g", "-g"), tensor_rule=("{g}", "-{g}"), torch="a - b"),
    Op("truediv", 4, 2, "/", "d/da = 1/b, d/db = -a/b²", None, infix=True, precedence=2,
       tight=True,
       forward="a / b", backward=("g / b", "-(g * a / (b * b))"),
       rule=("g / b", "-(g * a / (b * b))"),
       tensor_rule=("{g} / {b}", "-{g} ⊙ {a} / {b}²"), torch="a / b", sample=(0.5, 3.0)),
    Op("neg", 5, 1, "neg", "d/da = -1", None, precedence=3,
       forward="-a", backward=("-g",), rule=("-g",), tensor_rule=("-{g}",), torch="-a"),
    Op("pow_const", 6, 1, "**", "d/da = c·a^(c-1)", "**{c}", precedence=4, tight=True,
       # c == 0: the derivative is 0 everywhere (also at a == 0, where the
       # formula would give 0 * inf).
       forward="pow(a, c)", backward=("c * pow(a, c - 1.0) * g if c != 0.0 else 0.0",),
       rule=("g * c * a ** (c - 1)",), tensor_rule=("{g} ⊙ {c}·{a}^({c} - 1)",),
       torch="a ** c", sample=(0.5, 3.0)),
    Op("pow", 7, 2, "**", "d/da = b·a^(b-1), d/db = out·ln(a)", None, infix=True,
       precedence=4, tight=True,
       # d/db a^b = a^b ln a.  At a == 0 with b >= 0 the limit is 0 (PyTorch
       # makes the same choice); for a < 0 the log is undefined: nan.
       forward="pow(a, b)",
       backward=("b * pow(a, b - 1.0) * g if b != 0.0 else 0.0",
                 "0.0 if (a == 0.0 and b >= 0.0) else out * log(a) * g"),
       rule=("g * b * a ** (b - 1)", "g * out * a.log()"),
       tensor_rule=("{g} ⊙ {b}·{a}^({b} - 1)", "{g} ⊙ {y}·ln({a})"),
       torch="a ** b", sample=(0.5, 3.0)),
    Op("relu", 8, 1, "relu", "d/da = 1 if out > 0 else 0", "ReLU",
       # a < 0 rather than a <= 0, as micrograd: relu(-0.0) stays -0.0 and
       # nan propagates.
       forward="0.0 if a < 0.0 else a", backward=("g if out > 0.0 else 0.0",),
       method="relu", rule=(None,), kinks=("a",), tensor_rule=("{g} ⊙ 1[{y} > 0]",),
       torch="torch.relu(a)"),
    Op("tanh", 9, 1, "tanh", "d/da = 1 - out²", "tanh",
       forward="tanh(a)", backward=("(1.0 - out * out) * g",), method="tanh",
       rule=("g * (1 - out * out)",), tensor_rule=("{g} ⊙ (1 - {y}²)",),
       torch="torch.tanh(a)"),
    Op("exp", 10, 1, "exp", "d/da = out", "exp",
       forward="exp(a)", backward=("out * g",), method="exp", domain=(_OVERFLOW,),
       rule=("g * out",), tensor_rule=("{g} ⊙ {y}",), torch="torch.exp(a)"),
    Op("log", 11, 1, "log", "d/da = 1/a", None,
       forward="log(a)", backward=("g / a",), method="log",
       domain=(Domain("a == 0.0", "ValueError",
                      "log of 0 is -inf (log is defined for positive numbers)", (0.0,)),
               Domain("a < 0.0", "ValueError", "log of a negative number is not real",
                      (-1.0,))),
       rule=("g / a",), tensor_rule=("{g} / {a}",), torch="torch.log(a)",
       sample=(0.2, 4.0)),
    Op("sigmoid", 12, 1, "sigmoid", "d/da = out·(1 - out)", None,
       # 1 / (1 + e^-a), evaluated without overflow on either side.
       forward="if a >= 0.0:\n    return 1.0 / (1.0 + exp(-a))\n"
               "cdef double e = exp(a)\nreturn e / (1.0 + e)",
       backward=("out * (1.0 - out) * g",), method="sigmoid",
       rule=("g * out * (1 - out)",), tensor_rule=("{g} ⊙ {y}·(1 - {y})",),
       torch="torch.sigmoid(a)"),
    # Produced only by lowering: a chain of additions of products,
    # out = a + Σ x_k·y_k, evaluated left to right in the order the graph
    # added the terms (so its value rounds exactly as the unfused chain's).
    Op("dot", 13, -1, "dot", "d/da = 1, d/dx_k = y_k, d/dy_k = x_k", None),
    Op("abs", 14, 1, "abs", "d/da = sign(a)", None,
       # sign(0) = 0 (PyTorch's choice); nan propagates.
       forward="fabs(a)",
       backward=("if a > 0.0:\n    return g\nif a < 0.0:\n    return -g\n"
                 "if a != a:\n    return a\nreturn 0.0",),
       method="abs", dunder="__abs__", rule=(None,), kinks=("a",),
       tensor_rule=("{g} ⊙ sign({a})",),
       torch="torch.abs(a)"),
    # Tensor ops (arrays on the tape; the elementwise ops above broadcast).
    Op("matmul", 15, 2, "@", "dL/dA = dL/dY · Bᵀ, dL/dB = Aᵀ · dL/dY", None, infix=True,
       precedence=2, tight=True,
       tensor_rule=("{g} · {b}ᵀ", "{a}ᵀ · {g}")),
    Op("sum", 16, 1, "sum", "d/da = 1 (broadcast back over the summed axes)", None,
       tensor_rule=("broadcast({g}, to {ashape})",)),
    Op("max", 17, 1, "max",
       "d/da = 1 where a equals the max (shared equally among ties), else 0", None,
       tensor_rule=("{g} routed to where {a} is largest (ties share equally)",)),
    Op("reshape", 18, 1, "reshape", "dL/da = reshape(dL/dout, a.shape)", None,
       tensor_rule=("reshape({g}, {ashape})",)),
    Op("transpose", 19, 1, "transpose", "dL/da = transpose(dL/dout, inverse axes)", None,
       tensor_rule=("transpose({g}, inverse axes)",)),
    Op("getitem", 20, 1, "[]", "dL/da = dL/dout scattered into a's shape (zero elsewhere)",
       None, tensor_rule=("{g} scattered into zeros{ashape}",)),
    Op("cast", 21, 1, "cast", "dL/da = cast(dL/dout, a.dtype)", None,
       tensor_rule=("cast({g}, {adtype})",)),
    Op("log_softmax", 22, 1, "log_softmax",
       "dL/da = dL/dout - softmax(a) · Σ dL/dout (along the axis)", None,
       tensor_rule=("{g} - softmax({a}) ⊙ Σ{g} (along the last axis)",)),
    Op("cross_entropy", 23, 2, "cross_entropy",
       "dL/dlogits = (softmax(logits) - onehot(targets)) · dL/dout", None,
       tensor_rule=("(softmax({a}) - onehot({b})) ⊙ {g}",)),
    # -- elementwise ops added as rows (see docs/adding-an-op.md) -----------------
    Op("sqrt", 24, 1, "sqrt", "d/da = 1/(2·out)", None,
       forward="sqrt(a)", backward=("g / (2.0 * out)",), method="sqrt",
       domain=(Domain("a < 0.0", "ValueError", "sqrt of a negative number is not real",
                      (-1.0,)),),
       rule=("g / (2 * out)",), tensor_rule=("{g} / (2·{y})",), torch="torch.sqrt(a)",
       sample=(0.2, 4.0)),
    Op("sin", 25, 1, "sin", "d/da = cos(a)", None,
       forward="sin(a)", backward=("cos(a) * g",), method="sin",
       rule=("g * a.cos()",), tensor_rule=("{g} ⊙ cos({a})",), torch="torch.sin(a)"),
    Op("cos", 26, 1, "cos", "d/da = -sin(a)", None,
       forward="cos(a)", backward=("-(sin(a) * g)",), method="cos",
       rule=("-(g * a.sin())",), tensor_rule=("-{g} ⊙ sin({a})",), torch="torch.cos(a)"),
    Op("log1p", 27, 1, "log1p", "d/da = 1/(1 + a)", None,
       forward="log1p(a)", backward=("g / (1.0 + a)",), method="log1p",
       domain=(Domain("a == -1.0", "ValueError",
                      "log1p of -1 is -inf (log1p is defined above -1)", (-1.0,)),
               Domain("a < -1.0", "ValueError", "log1p below -1 is not real", (-2.0,))),
       rule=("g / (1 + a)",), tensor_rule=("{g} / (1 + {a})",), torch="torch.log1p(a)",
       sample=(-0.8, 3.0)),
    Op("expm1", 28, 1, "expm1", "d/da = out + 1", None,
       forward="expm1(a)", backward=("(out + 1.0) * g",), method="expm1",
       domain=(_OVERFLOW,), rule=("g * (out + 1)",), tensor_rule=("{g} ⊙ ({y} + 1)",),
       torch="torch.expm1(a)"),
    Op("erf", 29, 1, "erf", "d/da = 2/√π · exp(-a²)", None,
       forward="erf(a)", backward=("M_2_SQRTPI * exp(-a * a) * g",), method="erf",
       rule=("g * 1.1283791670955126 * (-(a * a)).exp()",),
       tensor_rule=("{g} ⊙ 2/√π·exp(-{a}²)",), torch="torch.erf(a)"),
    Op("softplus", 30, 1, "softplus", "d/da = sigmoid(a) (1 above a = 20)", None,
       # PyTorch's beta = 1, threshold = 20: above it softplus is a itself.
       forward="a if a > 20.0 else log1p(exp(a))",
       backward=("if a > 20.0:\n    return g\ncdef double z = exp(a)\n"
                 "return g * z / (z + 1.0)",),
       method="softplus", rule=("g * a.sigmoid()",), tensor_rule=("{g} ⊙ sigmoid({a})",),
       torch="torch.nn.functional.softplus(a)", sample=(-5.0, 5.0)),
    Op("gelu", 31, 1, "gelu", "d/da = Φ(a) + a·φ(a)", None,
       # The exact (erf) form, PyTorch's approximate='none'.
       forward="a * 0.5 * (1.0 + erf(a * M_SQRT1_2))",
       backward=("cdef double cdf = 0.5 * (1.0 + erf(a * M_SQRT1_2))\n"
                 "cdef double pdf = M_2_SQRTPI * M_SQRT1_2 * 0.5 * exp(a * a * -0.5)\n"
                 "return g * (cdf + a * pdf)",),
       method="gelu",
       rule=("g * (0.5 * (1 + (a * 0.7071067811865476).erf())"
             " + a * 0.3989422804014327 * (a * a * -0.5).exp())",),
       tensor_rule=("{g} ⊙ (Φ({a}) + {a}·φ({a}))",),
       torch="torch.nn.functional.gelu(a)"),
    Op("silu", 32, 1, "silu", "d/da = σ(a)·(1 + a·(1 - σ(a)))", None,
       forward="a / (1.0 + exp(-a))",
       backward=("cdef double s = 1.0 / (1.0 + exp(-a))\n"
                 "return g * s * (1.0 + a * (1.0 - s))",),
       method="silu", rule=("g * a.sigmoid() * (1 + a * (1 - a.sigmoid()))",),
       tensor_rule=("{g} ⊙ σ({a})·(1 + {a}·(1 - σ({a})))",),
       torch="torch.nn.functional.silu(a)"),
    Op("leaky_relu", 33, 1, "leaky_relu", "d/da = 1 if a > 0 else c", None,
       forward="a if a > 0.0 else a * c", backward=("g if a > 0.0 else g * c",),
       method="leaky_relu", attr=("negative_slope", 0.01), rule=(None,), kinks=("a",),
       tensor_rule=("{g} ⊙ (1 if {a} > 0 else {c})",),
       torch="torch.nn.functional.leaky_relu(a, c)"),
    Op("minimum", 34, 2, "minimum", "d/da = 1 if a < b (½ if a = b), d/db likewise",
       None,
       # Ties share the gradient equally, and a nan on either side wins:
       # PyTorch's choices.
       forward="a if (a < b or a != a) else b",
       backward=("0.0 if a > b else (g * 0.5 if a == b else g)",
                 "0.0 if a < b else (g * 0.5 if a == b else g)"),
       method="minimum", rule=(None, None), kinks=("a - b",),
       tensor_rule=("{g} where {a} < {b} (half at ties)", "{g} where {b} < {a} (half at ties)"),
       torch="torch.minimum(a, b)"),
    Op("maximum", 35, 2, "maximum", "d/da = 1 if a > b (½ if a = b), d/db likewise",
       None,
       forward="a if (a > b or a != a) else b",
       backward=("0.0 if a < b else (g * 0.5 if a == b else g)",
                 "0.0 if a > b else (g * 0.5 if a == b else g)"),
       method="maximum", rule=(None, None), kinks=("a - b",),
       tensor_rule=("{g} where {a} > {b} (half at ties)", "{g} where {b} > {a} (half at ties)"),
       torch="torch.maximum(a, b)"),
    # clamp(min, max) is clamp_max(clamp_min(a, min), max); PyTorch passes
    # the gradient at the bounds themselves (min <= a <= max).
    Op("clamp_min", 36, 1, "clamp_min", "d/da = 1 if a >= c else 0", None,
       forward="c if a < c else a", backward=("g if a >= c else 0.0",),
       method="clamp_min", attr=("min", None), rule=(None,), kinks=("a - c",),
       tensor_rule=("{g} ⊙ 1[{a} ≥ {c}]",), torch="torch.clamp(a, min=c)"),
    Op("clamp_max", 37, 1, "clamp_max", "d/da = 1 if a <= c else 0", None,
       forward="c if a > c else a", backward=("g if a <= c else 0.0",),
       method="clamp_max", attr=("max", None), rule=(None,), kinks=("a - c",),
       tensor_rule=("{g} ⊙ 1[{a} ≤ {c}]",), torch="torch.clamp(a, max=c)"),
)

@dataclass(frozen=True)
class Composite:
    """A method written from other methods: ``body`` is Python that works on
    Values and Tensors alike (``self`` and the parameters)."""

    name: str
    params: str
    doc: str
    body: str


COMPOSITES: tuple[Composite, ...] = (
    Composite("clamp", "min=None, max=None",
              "Limit to [min, max] (either bound may be None): clamp_min, then clamp_max.",
              "if min is None and max is None:\n"
              "    raise TypeError('clamp: give min, max or both')\n"
              "out = self\n"
              "if min is not None:\n"
              "    out = out.clamp_min(min)\n"
              "if max is not None:\n"
              "    out = out.clamp_max(max)\n"
              "return out"),
)

BY_NAME: dict[str, Op] = {op.name: op for op in OPS}
BY_OPCODE: dict[int, Op] = {op.opcode: op for op in OPS}
ELEMENTWISE: tuple[Op, ...] = tuple(op for op in OPS if op.elementwise)


def _check_table() -> None:
    names = [op.name for op in OPS]
    codes = [op.opcode for op in OPS]
    if len(set(names)) != len(names):
        raise AssertionError("ops.py: duplicate op name")
    if len(set(codes)) != len(codes):
        raise AssertionError("ops.py: duplicate opcode")
    for op in ELEMENTWISE:
        if op.arity not in (1, 2) or len(op.backward) != op.arity:
            raise AssertionError(f"ops.py: {op.name} needs one backward per operand")
        if op.rule and len(op.rule) != op.arity:
            raise AssertionError(f"ops.py: {op.name} needs one rule per operand")
        if len(op.tensor_rule) != op.arity:
            raise AssertionError(f"ops.py: {op.name} needs one tensor_rule per operand")
        if op.attr is not None and op.arity != 1:
            raise AssertionError(f"ops.py: {op.name}: only unary ops take an attribute")


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
