"""Generate the elementwise layers from the op table (run by setup.py).

Design: an elementwise op is one row of ``ops.py``.  From the rows this
module writes, before Cython runs (nothing generated is committed):

* ``_elementwise.pxi``  (included by ``_kernels.pxd``): each op's scalar
  kernel pair, ``NAME_forward(a, b, c)`` and ``NAME_backward_a/_b(a, b, c,
  out, g)`` returning the operand's gradient contribution, side by side;
  the dispatchers the scalar tape calls; predicates on opcodes.
* ``_elementwise_loops.pxi``  (included by ``_kernels.pyx``): the array
  loops, one loop per op with the opcode switch outside it, for both
  float dtypes (Cython's fused ``floating``).
* ``_value.pyx`` and ``_value.pyi`` from their ``.tp`` templates: the
  Value methods (with the eager domain checks) and their stubs.
* ``_tensor_methods.py``: the Tensor methods, as a mixin class.

Opcodes appear as numbers in the generated Cython (with the name in a
comment), so the files do not depend on the opcode enum's declarations.
Like ``ops.py``, this module imports nothing from the package.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

HEADER = "# Generated from fastgrad/ops.py by fastgrad/_codegen.py (setup.py); do not edit.\n"

_MATH = ("exp, log, pow, tanh, fabs, sqrt, sin, cos, log1p, expm1, erf, isfinite, "
         "M_SQRT1_2, M_2_SQRTPI")
_SCALAR_ARGS = "double a, double b, double c"
_BACKWARD_ARGS = "double a, double b, double c, double out, double g"


def _body(code: str, indent: str = "    ") -> str:
    """A row's expression as a function body (a block of statements as is)."""
    code = code.strip()
    if "\n" not in code and not code.startswith("return"):
        code = f"return {code}"
    return textwrap.indent(code, indent) + "\n"


def _dispatch(name: str, args: str, call_args: str, ops, suffix: str) -> str:
    lines = [f"cdef inline double {name}(int op, {args}) noexcept nogil:\n"]
    keyword = "if"
    for op in ops:
        lines.append(f"    {keyword} op == {op.opcode}:    # {op.name}\n"
                     f"        return {op.name}{suffix}({call_args})\n")
        keyword = "elif"
    lines.append("    return 0.0\n\n\n")
    return "".join(lines)


def _accumulate(ops) -> str:
    """One switch that adds every operand's contribution (the scalar tape's step)."""
    lines = ["cdef inline void elementwise_backward(int op, double a, double b, double c,\n"
             "                                      double out, double g, double* ga,\n"
             "                                      double* gb) noexcept nogil:\n"]
    keyword = "if"
    for op in ops:
        lines.append(f"    {keyword} op == {op.opcode}:    # {op.name}\n"
                     f"        ga[0] += {op.name}_backward_a(a, b, c, out, g)\n")
        if op.arity == 2:
            lines.append(f"        gb[0] += {op.name}_backward_b(a, b, c, out, g)\n")
        keyword = "elif"
    return "".join(lines) + "\n\n"


def _predicate(name: str, doc: str, ops) -> str:
    test = " or ".join(f"op == {op.opcode}" for op in ops) or "False"
    return (f"cdef inline bint {name}(int op) noexcept nogil:\n"
            f"    # {doc}\n"
            f"    return {test}\n\n\n")


def elementwise_pxi(ops) -> str:
    """Scalar kernel pairs, dispatchers and opcode predicates."""
    out = [HEADER, "#\n# Each op's forward and backward sit side by side; a backward returns\n"
           "# the gradient contribution to one operand (callers add it).\n\n",
           f"from libc.math cimport {_MATH}\n\n\n"]
    rows = [op for op in ops if op.elementwise]
    for op in rows:
        out.append(f"# {op.name}: {op.derivative}\n")
        out.append(f"cdef inline double {op.name}_forward({_SCALAR_ARGS}) noexcept nogil:\n")
        out.append(_body(op.forward))
        for position, code in zip("ab", op.backward):
            out.append(f"\ncdef inline double {op.name}_backward_{position}("
                       f"{_BACKWARD_ARGS}) noexcept nogil:\n")
            out.append(_body(code))
        out.append("\n\n")
    out.append(_dispatch("elementwise_forward", _SCALAR_ARGS, "a, b, c", rows, "_forward"))
    out.append(_dispatch("elementwise_backward_a", _BACKWARD_ARGS, "a, b, c, out, g", rows,
                         "_backward_a"))
    out.append(_dispatch("elementwise_backward_b", _BACKWARD_ARGS, "a, b, c, out, g",
                         [op for op in rows if op.arity == 2], "_backward_b"))
    out.append(_accumulate(rows))
    out.append(_predicate("is_elementwise_unary", "one operand, computed element by element",
                          [op for op in rows if op.arity == 1]))
    out.append(_predicate("is_elementwise_binary", "two operands, broadcast",
                          [op for op in rows if op.arity == 2]))
    return "".join(out).rstrip() + "\n"


def loops_pxi(ops) -> str:
    """The array loops over C-contiguous operands (see _kernels.pyx)."""
    unary = [op for op in ops if op.elementwise and op.arity == 1]
    binary = [op for op in ops if op.elementwise and op.arity == 2]
    out = [HEADER, "#\n# One loop per op, the opcode switch outside the loops.  Arithmetic is\n"
           "# done in double and rounded to the array's dtype.\n\n\n"]

    def chain(rows, emit):
        parts = []
        keyword = "if"
        for op in rows:
            parts.append(f"    {keyword} op == {op.opcode}:    # {op.name}\n" + emit(op))
            keyword = "elif"
        return "".join(parts)

    out.append("cdef void unary_forward(int op, Py_ssize_t n, const floating* a,\n"
               "                        floating* out, double c) noexcept nogil:\n"
               "    cdef Py_ssize_t j\n")
    out.append(chain(unary, lambda op: (
        "        for j in range(n):\n"
        f"            out[j] = <floating>{op.name}_forward(a[j], 0.0, c)\n")))
    out.append("\n\ncdef void unary_backward(int op, Py_ssize_t n, const floating* a,\n"
               "                         const floating* out, const floating* gout,\n"
               "                         floating* ga, double c) noexcept nogil:\n"
               "    cdef Py_ssize_t j\n")
    out.append(chain(unary, lambda op: (
        "        for j in range(n):\n"
        f"            ga[j] += <floating>{op.name}_backward_a(a[j], 0.0, c, out[j], gout[j])\n")))
    out.append("\n\ncdef inline void _binary_row(int op, Py_ssize_t n,\n"
               "                             const floating* a, Py_ssize_t ia,\n"
               "                             const floating* b, Py_ssize_t ib,\n"
               "                             floating* out) noexcept nogil:\n"
               "    cdef Py_ssize_t j\n")
    out.append(chain(binary, lambda op: (
        "        for j in range(n):\n"
        f"            out[j] = <floating>{op.name}_forward(a[j * ia], b[j * ib], 0.0)\n")))
    out.append("\n\ncdef inline void _binary_row_backward(int op, Py_ssize_t n,\n"
               "                                      const floating* a, Py_ssize_t ia,\n"
               "                                      const floating* b, Py_ssize_t ib,\n"
               "                                      const floating* out,\n"
               "                                      const floating* gout,\n"
               "                                      floating* ga,\n"
               "                                      floating* gb) noexcept nogil:\n"
               "    cdef Py_ssize_t j\n")
    out.append(chain(binary, lambda op: (
        "        if ga != NULL:\n"
        "            for j in range(n):\n"
        f"                ga[j * ia] += <floating>{op.name}_backward_a(\n"
        "                    a[j * ia], b[j * ib], 0.0, out[j], gout[j])\n"
        "        if gb != NULL:\n"
        "            for j in range(n):\n"
        f"                gb[j * ib] += <floating>{op.name}_backward_b(\n"
        "                    a[j * ia], b[j * ib], 0.0, out[j], gout[j])\n")))
    return "".join(out).rstrip() + "\n"


# -- Value (Cython) -------------------------------------------------------------------

def _attr_signature(op) -> str:
    if op.attr is None:
        return ""
    name, default = op.attr
    return f", {name}" if default is None else f", {name}={default!r}"


def _doc(op) -> str:
    return f"{op.name} ({op.derivative})."


def value_methods(ops, composites) -> str:
    """The generated Value methods, indented for the class body."""
    out = []
    for op in ops:
        if not op.elementwise or op.method is None:
            continue
        code = op.opcode
        if op.arity == 1:
            out.append(f"def {op.method}(self{_attr_signature(op)}):\n"
                       f"    \"\"\"{_doc(op)}\"\"\"\n"
                       "    cdef double a = self.dp[0]\n"
                       "    cdef double b = 0.0\n")
            if op.attr is None:
                out.append("    cdef double c = 0.0\n")
            else:
                out.append(f"    cdef double c = _attribute({op.name!r}, {op.attr[0]!r}, "
                           f"{op.attr[0]})\n")
            out.append(f"    cdef double out = {op.name}_forward(a, b, c)\n")
            for d in op.domain:
                out.append(f"    if {d.when}:\n"
                           f"        raise _domain_error({d.error}, {op.name!r}, "
                           f"{d.message!r}, self)\n")
            out.append(f"    return node(out, {code}, self, None, c)    # {op.name}\n\n")
        else:
            out.append(f"def {op.method}(self, other):\n"
                       f"    \"\"\"{_doc(op)}\"\"\"\n"
                       "    cdef Value o = _coerce(other)\n"
                       "    if o is None:\n"
                       f"        raise TypeError(f\"{op.method}: expected a Value or a real "
                       "number, got {type(other).__name__}\")\n"
                       "    cdef double a = self.dp[0]\n"
                       "    cdef double b = o.dp[0]\n"
                       "    cdef double c = 0.0\n"
                       f"    cdef double out = {op.name}_forward(a, b, c)\n")
            for d in op.domain:
                out.append(f"    if {d.when}:\n"
                           f"        raise _domain_error({d.error}, {op.name!r}, "
                           f"{d.message!r}, self, o)\n")
            out.append(f"    return node(out, {code}, self, o, c)    # {op.name}\n\n")
        if op.dunder:
            out.append(f"def {op.dunder}(self):\n    return self.{op.method}()\n\n")
    for comp in composites:
        out.append(f"def {comp.name}(self, {comp.params}):\n"
                   f"    \"\"\"{comp.doc}\"\"\"\n" + textwrap.indent(comp.body, "    ") + "\n\n")
    return textwrap.indent("".join(out), "    ").rstrip() + "\n"


def value_stub_methods(ops, composites) -> str:
    out = []
    for op in ops:
        if not op.elementwise or op.method is None:
            continue
        if op.arity == 1:
            attr = ""
            if op.attr is not None:
                name, default = op.attr
                attr = f", {name}: float" + ("" if default is None else f" = {default!r}")
            out.append(f"def {op.method}(self{attr}) -> Value: ...\n")
        else:
            out.append(f"def {op.method}(self, other: Value | float) -> Value: ...\n")
        if op.dunder:
            out.append(f"def {op.dunder}(self) -> Value: ...\n")
    for comp in composites:
        out.append(f"def {comp.name}(self, min: float | None = None, "
                   f"max: float | None = None) -> Value: ...\n")
    return textwrap.indent("".join(out), "    ")


# -- Tensor (Python) --------------------------------------------------------------------

def tensor_methods(ops, composites) -> str:
    out = ['"""The elementwise Tensor methods of the op table, as a mixin of fastgrad.Tensor.\n\n'
           'Generated from fastgrad/ops.py by fastgrad/_codegen.py (setup.py); do not edit.\n'
           '"""\n\n'
           "from __future__ import annotations\n\n"
           "from typing import TYPE_CHECKING, Any\n\n"
           "if TYPE_CHECKING:\n    from fastgrad.tensor import Tensor\n\n\n"
           "class ElementwiseMethods:\n"
           '    """Methods generated from fastgrad/ops.py (see Tensor._elementwise)."""\n\n'
           "    __slots__ = ()\n\n"]
    for op in ops:
        if not op.elementwise or op.method is None:
            continue
        if op.arity == 1:
            if op.attr is None:
                out.append(f"    def {op.method}(self) -> Tensor:\n"
                           f"        \"\"\"{_doc(op)}\"\"\"\n"
                           f"        return self._elementwise({op.name!r})  # type: ignore[attr-defined]\n\n")
            else:
                name, default = op.attr
                sig = f"{name}: float" + ("" if default is None else f" = {default!r}")
                out.append(f"    def {op.method}(self, {sig}) -> Tensor:\n"
                           f"        \"\"\"{_doc(op)}\"\"\"\n"
                           f"        return self._elementwise({op.name!r}, {name}, "
                           f"{name!r})  # type: ignore[attr-defined]\n\n")
        else:
            out.append(f"    def {op.method}(self, other: Any) -> Tensor:\n"
                       f"        \"\"\"{_doc(op)}\"\"\"\n"
                       f"        return self._elementwise_binary({op.name!r}, other)"
                       "  # type: ignore[attr-defined]\n\n")
        if op.dunder:
            out.append(f"    def {op.dunder}(self) -> Tensor:\n"
                       f"        return self.{op.method}()\n\n")
    for comp in composites:
        out.append(f"    def {comp.name}(self, min: float | None = None, "
                   f"max: float | None = None) -> Tensor:\n"
                   f"        \"\"\"{comp.doc}\"\"\"\n"
                   + textwrap.indent(comp.body, "        ") + "\n\n")
    return "".join(out).rstrip() + "\n"


# -- writing ------------------------------------------------------------------------

def _write(path: Path, text: str) -> None:
    """Write only when the text changed (so Cython's timestamps stay meaningful)."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _render(template: Path, marker: str, text: str) -> str:
    source = template.read_text()
    if marker not in source:
        raise RuntimeError(f"{template.name}: the marker {marker!r} is missing")
    return HEADER + source.replace(marker, text.rstrip("\n"))


def generate(package: Path, ops_module: dict) -> None:
    """Write every generated file into the package folder."""
    ops, composites = ops_module["OPS"], ops_module["COMPOSITES"]
    _write(package / "_opcodes.pxi", ops_module["opcode_enum_source"]())
    _write(package / "_elementwise.pxi", elementwise_pxi(ops))
    _write(package / "_elementwise_loops.pxi", loops_pxi(ops))
    _write(package / "_value.pyx",
           _render(package / "_value.pyx.tp", "    # {{elementwise methods}}",
                   value_methods(ops, composites)))
    _write(package / "_value.pyi",
           _render(package / "_value.pyi.tp", "    # {{elementwise methods}}",
                   value_stub_methods(ops, composites)))
    _write(package / "_tensor_methods.py", tensor_methods(ops, composites))
