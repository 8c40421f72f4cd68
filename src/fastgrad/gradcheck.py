"""Gradient checking that points at the op to blame.

``gradcheck(fn, *inputs)`` compares the analytic gradients of ``fn`` (the
compiled backward sweep of the lowered graph) with central finite
differences ``(f(x + eps) - f(x - eps)) / 2 eps``, everything in float64
(float32 inputs are checked through float64 copies).  It returns True, or
raises :class:`GradcheckError` with a report: input, element, analytic and
numeric values.

On failure it goes further than PyTorch's or JAX's checkers: it checks each
instruction of the lowered tape on its own -- the op recomputed eagerly on
detached copies of the instruction's inputs, perturbed element by element,
against the backward of a one-op graph lowered from the same op -- and
names the first instruction (op, label, shapes) whose backward disagrees
with its own finite difference.

Testing the checker itself
--------------------------
The compiled kernels cannot be patched from Python, so local derivatives go
through one seam, ``LOCAL_BACKWARD``: a dict from op name to a function
``(call: InstructionCall, upstream) -> [gradient per operand]``; ops not in
it use :func:`compiled_local_backward`.  While the dict is not empty,
gradcheck's analytic gradient is the reverse sweep composed from the
instructions' local backwards (:func:`instruction_gradients`), so an entry
acts exactly like a wrong kernel: the fault flows through the chain rule to
the inputs and the per-instruction check sees it too::

    with inject_backward("tanh", lambda call, g: [2 * g * (1 - np.tanh(call.inputs[0])**2)]):
        gradcheck(fn, x)        # raises, naming the tanh instruction
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from fastgrad._value import Value
from fastgrad.lower import lower
from fastgrad.ops import BY_NAME, OPS
from fastgrad.tensor import Tensor, _apply, _state, no_grad

__all__ = ["gradcheck", "GradcheckError", "check_instructions", "InstructionCall",
           "InstructionMismatch", "LOCAL_BACKWARD", "inject_backward",
           "compiled_local_backward", "instruction_calls", "instruction_gradients", "node_call",
           "local_backward", "check_call"]

F64 = np.dtype(np.float64)
MAX_LOCAL_ELEMENTS = 256    # elements per operand checked by the instruction check
MAX_REPORTED = 10           # failing entries listed in a report
# Where an op is not differentiable: per op, expressions in its operands a, b
# and attribute c that are 0 at a kink (the op table's rows; max: at ties).
KINKS = {op.name: op.kinks for op in OPS if op.kinks}

LOCAL_BACKWARD: dict[str, Callable] = {}


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree.

    ``failures``: one dict per disagreeing entry (input, label, index,
    analytic, numeric); ``culprit``: the first :class:`InstructionMismatch`
    found by the instruction check, or None.
    """

    def __init__(self, report: str, failures: list, culprit=None):
        super().__init__(report)
        self.failures = failures
        self.culprit = culprit


@dataclass
class InstructionCall:
    """One tape instruction, ready to be re-run on its own.

    ``inputs`` are the operand values (floats, or float64 arrays; int64 for
    class targets), in operand order; for a scalar ``dot`` they are
    ``a, x1, y1, x2, ...`` with ``terms`` giving each term's size (2 for a
    product x*y, 1 for a plain addend).
    """

    index: int
    op: str
    node: Any
    inputs: list
    slots: list
    out: int
    c: float = 0.0
    kind: str = "scalar"
    terms: list = field(default_factory=list)

    @property
    def label(self) -> str | None:
        return getattr(self.node, "label", None) or None

    @property
    def differentiable(self) -> list[bool]:
        return [not isinstance(v, np.ndarray) or v.dtype.kind == "f" for v in self.inputs]

    def describe(self) -> str:
        label = f" '{self.label}'" if self.label else ""
        if self.kind == "scalar":
            ins = ", ".join(f"{v:.6g}" for v in self.inputs)
            return (f"instruction {self.index}: {self.op}{label} = {self.node.data:.6g} "
                    f"from ({ins})")
        ins = ", ".join(f"{v.shape} {v.dtype}" for v in self.inputs)
        node = self.node
        return (f"instruction {self.index}: {self.op}{label} -> {tuple(node.shape)} "
                f"{node.dtype}, from {ins}")


@dataclass
class InstructionMismatch:
    """An instruction whose backward disagrees with its own finite difference."""

    call: InstructionCall
    operand: int
    index: tuple | None
    analytic: float
    numeric: float
    kink: bool = False

    @property
    def op(self) -> str:
        return self.call.op

    def __str__(self) -> str:
        where = "" if self.index is None else f"{list(self.index)}"
        name = "abcdefgh"[self.operand] if self.operand < 8 else str(self.operand)
        text = (f"{self.call.describe()}: d/d{name}{where}: analytic {self.analytic:.6g}, "
                f"numeric {self.numeric:.6g}")
        if self.kink:
            text += (f" (an input is within eps of {self.op}'s kink, where finite "
                     f"differences are unreliable)")
        return text


@contextlib.contextmanager
def _recording():
    """Record graphs even inside no_grad() (gradcheck needs a graph)."""
    previous = getattr(_state, "grad_enabled", True)
    _state.grad_enabled = True
    try:
        yield
    finally:
        _state.grad_enabled = previous


@contextlib.contextmanager
def inject_backward(op: str, local_backward: Callable):
    """Use ``local_backward`` as op's backward inside the block (testing aid)."""
    if op not in BY_NAME or op == "leaf":
        raise ValueError(f"inject_backward: unknown op {op!r}")
    missing = object()
    previous = LOCAL_BACKWARD.get(op, missing)
    LOCAL_BACKWARD[op] = local_backward
    try:
        yield
    finally:
        if previous is missing:
            LOCAL_BACKWARD.pop(op, None)
        else:
            LOCAL_BACKWARD[op] = previous


# -- one instruction, on its own ----------------------------------------------------

def _scalar_op(op):
    """Apply op to Values through its public method or operator."""
    if op.method is not None:
        if op.attr is not None:
            return lambda c, a: getattr(a, op.method)(c)
        return lambda c, *xs: getattr(xs[0], op.method)(*xs[1:])
    return _OPERATORS[op.name]


_OPERATORS = {
    "add": lambda c, a, b: a + b, "sub": lambda c, a, b: a - b, "mul": lambda c, a, b: a * b,
    "truediv": lambda c, a, b: a / b, "pow": lambda c, a, b: a ** b,
    "pow_const": lambda c, a: a ** c, "neg": lambda c, a: -a,
}
_SCALAR = {op.name: _scalar_op(op) for op in OPS if op.elementwise}


def _build(call: InstructionCall, leaves: list):
    """The instruction's op applied to leaves, through the ordinary Python ops."""
    if call.kind == "tensor":
        node = call.node
        dtype = node.dtype if call.op == "cast" else F64
        return _apply(call.op, dtype, tuple(leaves), node._attrs[-1], node._attrs[:-2])
    if call.op == "dot":
        acc, i = leaves[0], 1
        for n in call.terms:
            acc = acc + (leaves[i] if n == 1 else leaves[i] * leaves[i + 1])
            i += n
        return acc
    return _SCALAR[call.op](call.c, *leaves)


def _leaves(call: InstructionCall, values, requires_grad: bool) -> list:
    if call.kind == "scalar":
        return [Value(float(v)) for v in values]
    return [Tensor(v, requires_grad=requires_grad and v.dtype.kind == "f") for v in values]


def _forward(call: InstructionCall, values) -> Any:
    """The instruction's output for operand values (nan when the op raises)."""
    try:
        with no_grad():
            out = _build(call, _leaves(call, values, False))
    except (ArithmeticError, ValueError):
        return np.nan
    return out.data


def compiled_local_backward(call: InstructionCall, upstream) -> list:
    """Operand gradients from the compiled backward of a one-op graph."""
    with _recording():
        leaves = _leaves(call, call.inputs, True)
        out = _build(call, leaves)
        tape = lower(out)
        if call.kind == "scalar":
            tape.backward()
            return [leaf.grad * upstream for leaf in leaves]
        tape.backward(np.asarray(upstream, dtype=out.dtype).reshape(out.shape))
    return [None if not leaf.requires_grad else
            np.zeros(leaf.shape) if leaf.grad is None else np.asarray(leaf.grad, F64)
            for leaf in leaves]


def local_backward(call: InstructionCall, upstream) -> list:
    return LOCAL_BACKWARD.get(call.op, compiled_local_backward)(call, upstream)


def instruction_calls(tape) -> list[InstructionCall]:
    """Every instruction of a lowered tape, with its current operand values."""
    prog = tape._program()
    calls = []
    if prog["kind"] == "scalar":
        one, leaves = prog["one_slot"], prog["leaves"]
        outs = {ins["out"]: ins["node"] for ins in prog["instructions"]}

        def value(s):
            return leaves[s].data if s < len(leaves) else 1.0 if s == one else outs[s].data

        for k, ins in enumerate(prog["instructions"]):
            slots, terms = [ins["a"]], []
            if ins["op"] == "dot":
                for x, y in ins["pairs"]:
                    slots += [x] if y == one else [x, y]
                    terms.append(1 if y == one else 2)
            elif BY_NAME[ins["op"]].arity == 2:
                slots.append(ins["b"])
            calls.append(InstructionCall(k, ins["op"], ins["node"], [value(s) for s in slots],
                                         slots, ins["out"], ins["c"], "scalar", terms))
        return calls
    for k, ins in enumerate(prog["instructions"]):
        node = ins["node"]
        slots = [ins["a"]] + ([ins["b"]] if ins["b"] is not None else [])
        values = []
        for t in node._inputs:
            keep = ins["op"] == "cast" or t.dtype.kind != "f"
            values.append(np.array(t.data, dtype=t.dtype if keep else F64, order="C"))
        calls.append(InstructionCall(k, ins["op"], node, values, slots, ins["out"],
                                     ins["c"], "tensor"))
    return calls


def node_call(node) -> InstructionCall:
    """A graph node (Value or Tensor) as a call of its op on its inputs' values."""
    if isinstance(node, Value):
        return InstructionCall(-1, node.op, node, [x.data for x in node.inputs], [],
                               -1, node._attr or 0.0, "scalar")
    values = [np.array(t.data, dtype=t.dtype if node.op == "cast" or t.dtype.kind != "f"
                       else F64, order="C") for t in node._inputs]
    return InstructionCall(-1, node.op, node, values, [], -1, node._attrs[-1].c, "tensor")


def instruction_gradients(tape, seed=None) -> dict[int, Any]:
    """id(leaf) -> gradient, by a Python reverse sweep over the local backwards."""
    prog = tape._program()
    calls = instruction_calls(tape)
    root = prog["root_slot"]
    if prog["kind"] == "scalar":
        grads: dict[int, Any] = {root: 1.0}
        leaf_slots = list(range(prog["n_leaves"]))
    else:
        shape = tape.root.shape
        grads = {root: np.ones(shape) if seed is None else np.asarray(seed, F64)}
        leaf_slots = prog["leaf_slots"]
    for call in reversed(calls):
        g = grads.get(call.out)
        if g is None:
            continue
        for s, gi in zip(call.slots, local_backward(call, g)):
            if gi is not None:
                grads[s] = grads[s] + gi if s in grads else gi
    return {id(leaf): grads.get(s) for s, leaf in zip(leaf_slots, prog["leaves"])}


def _at_kink(call: InstructionCall, eps: float) -> bool:
    if call.op == "max":
        a = np.asarray(call.inputs[0], dtype=F64)
        return bool(np.any(np.diff(np.sort(a.ravel())) < 2 * eps))
    if call.op not in KINKS:
        return False
    names = {"a": np.asarray(call.inputs[0], dtype=F64), "c": call.c,
             "b": np.asarray(call.inputs[1], dtype=F64) if len(call.inputs) > 1 else 0.0}
    return any(bool(np.any(np.abs(eval(kink, {}, names)) < 2 * eps))
               for kink in KINKS[call.op])


def check_call(call: InstructionCall, eps=1e-6, atol=1e-5, rtol=1e-3,
               rng: np.random.Generator | None = None) -> InstructionMismatch | None:
    """Check one instruction's backward against its own finite difference."""
    rng = rng if rng is not None else np.random.default_rng(0)
    tensor = call.kind == "tensor"
    out = np.asarray(call.node.data)
    upstream = rng.standard_normal(out.shape) if tensor else 1.0
    if tensor and any(np.asarray(v).dtype == np.float32 for v in call.inputs + [out]):
        eps, atol, rtol = max(eps, 1e-3), max(atol, 1e-3), max(rtol, 1e-2)
    analytic = local_backward(call, upstream)

    def phi(values) -> float:
        with np.errstate(all="ignore"):
            return float(np.sum(np.asarray(_forward(call, values), F64) * upstream))

    for i, (value, diff) in enumerate(zip(call.inputs, call.differentiable)):
        if not diff or analytic[i] is None:
            continue
        values = list(call.inputs)
        arr = np.array(value, copy=True)
        flat = arr.reshape(-1)
        picks = range(flat.size) if flat.size <= MAX_LOCAL_ELEMENTS else \
            sorted(rng.choice(flat.size, MAX_LOCAL_ELEMENTS, replace=False))
        grad = np.asarray(analytic[i], F64).reshape(-1)
        for j in picks:
            x0 = flat[j]
            f = []
            for x in (x0 + eps, x0 - eps):
                flat[j] = x
                values[i] = arr.copy() if tensor else float(flat[0])
                f.append(phi(values))
            flat[j] = x0
            numeric = (f[0] - f[1]) / (2 * eps)
            if not np.isclose(grad[j], numeric, rtol=rtol, atol=atol, equal_nan=True):
                index = tuple(int(t) for t in np.unravel_index(j, arr.shape)) if tensor else None
                return InstructionMismatch(call, i, index, float(grad[j]), numeric,
                                           _at_kink(call, eps))
    return None


def check_instructions(root, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0) -> list:
    """Check every instruction of ``lower(root)``; the mismatches, in tape order."""
    tape = root if hasattr(root, "_program") and not hasattr(root, "op") else lower(root)
    rng = np.random.default_rng(seed)
    found = (check_call(c, eps, atol, rtol, rng) for c in instruction_calls(tape))
    return [m for m in found if m is not None]


# -- the whole function -------------------------------------------------------------

def _prepare(inputs) -> tuple[list, list]:
    """float64 leaf copies of the inputs; which of them are checked."""
    copies, checked = [], []
    for i, x in enumerate(inputs):
        if isinstance(x, Value):
            c = Value(x.data, label=x.label)
            checked.append((i, x, c))
        elif isinstance(x, Tensor):
            floating = x.dtype.kind == "f"
            c = Tensor(x.data, dtype=F64 if floating else None,
                       requires_grad=bool(x.requires_grad and floating), label=x.label)
            if c.requires_grad:
                checked.append((i, x, c))
        else:
            c = x
        copies.append(c)
    if not checked:
        raise ValueError("gradcheck: nothing to check: pass Values, or Tensors with "
                         "requires_grad=True")
    return copies, checked


def _value(out, r) -> float:
    if isinstance(out, Value):
        return out.data
    with np.errstate(all="ignore"):
        return float(np.sum(np.asarray(out.data, F64) * r))


def _evaluate(fn, copies, r) -> float:
    try:
        with no_grad():
            return _value(fn(*copies), r)
    except (ArithmeticError, ValueError):
        return np.nan


def _numeric(fn, copies, checked, r, eps) -> list:
    """Central differences of fn's (projected) output, input element by element."""
    result = []
    for _, _, c in checked:
        scalar = isinstance(c, Value)
        flat = np.array([c.data]) if scalar else c.data.reshape(-1)   # a view of the copy
        grad = np.empty(flat.size)
        for j in range(flat.size):
            x0 = flat[j]
            f = []
            for x in (x0 + eps, x0 - eps):
                flat[j] = x
                if scalar:
                    c.data = float(x)
                f.append(_evaluate(fn, copies, r))
            flat[j] = x0
            if scalar:
                c.data = float(x0)
            grad[j] = (f[0] - f[1]) / (2 * eps)
        result.append(grad.reshape(()) if scalar else grad.reshape(c.shape))
    return result


def _gradients(checked, found: dict | None) -> list:
    out = []
    for _, _, c in checked:
        g = found.get(id(c)) if found is not None else c.grad
        out.append(np.zeros(np.shape(c.data)) if g is None else np.asarray(g, F64).copy())
    return out


def _name(i, x) -> str:
    label = getattr(x, "label", None)
    desc = f"input {i}" + (f" '{label}'" if label else "")
    if isinstance(x, Tensor):
        desc += f" {tuple(x.shape)} {x.dtype}"
    return desc


def gradcheck(fn: Callable, *inputs, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0, raise_exception: bool = True) -> bool:
    """Check fn's analytic gradients against central finite differences.

    ``inputs``: Values, and Tensors (those with requires_grad are checked;
    other arguments are passed through).  ``fn`` receives float64 copies and
    returns a Value or a float Tensor; a tensor with more than one element
    is checked through a random projection ``sum(out * r)``.  An entry
    passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.
    Returns True, or raises :class:`GradcheckError` (False instead with
    ``raise_exception=False``).
    """
    copies, checked = _prepare(inputs)
    rng = np.random.default_rng(seed)
    with _recording():
        out = fn(*copies)
        if not isinstance(out, (Value, Tensor)) or (
                isinstance(out, Tensor) and out.dtype.kind != "f"):
            raise TypeError(f"gradcheck: fn must return a Value or a float Tensor, got "
                            f"{type(out).__name__}")
        r = None if isinstance(out, Value) else (
            np.ones(out.shape) if out.size == 1 else rng.standard_normal(out.shape))
        tape = lower(out)
        if LOCAL_BACKWARD:
            analytic = _gradients(checked, instruction_gradients(tape, r))
        else:
            tape.backward() if r is None else tape.backward(r.astype(out.dtype))
            analytic = _gradients(checked, None)
    numeric = _numeric(fn, copies, checked, r, eps)
    failures, total = [], 0
    for (i, x, _), a, n in zip(checked, analytic, numeric):
        total += a.size
        bad = ~np.isclose(a, n, rtol=rtol, atol=atol, equal_nan=True)
        for j in zip(*np.nonzero(bad)) if a.ndim else ([()] if bad else []):
            failures.append({"input": i, "label": getattr(x, "label", None) or None,
                             "index": tuple(int(t) for t in j) if a.ndim else None,
                             "analytic": float(a[j]), "numeric": float(n[j]),
                             "name": _name(i, x)})
    if not failures:
        return True
    if not raise_exception:
        return False
    culprit, note = _localize(tape, checked, numeric, r, eps, atol, rtol, seed)
    lines = [f"gradcheck: {len(failures)} of {total} gradient entries disagree with central "
             f"finite differences (eps={eps}, atol={atol}, rtol={rtol}; in float64)"]
    for f in failures[:MAX_REPORTED]:
        where = "" if f["index"] is None else f" at {list(f['index'])}"
        lines.append(f"  {f['name']}{where}: analytic {f['analytic']:.6g}, numeric "
                     f"{f['numeric']:.6g} (difference {f['analytic'] - f['numeric']:.3g})")
    if len(failures) > MAX_REPORTED:
        lines.append(f"  … {len(failures) - MAX_REPORTED} more")
    lines.append(note)
    raise GradcheckError("\n".join(lines), failures, culprit)


def _localize(tape, checked, numeric, r, eps, atol, rtol, seed):
    """The first instruction whose backward disagrees with its own finite difference."""
    rng = np.random.default_rng(seed)
    calls = instruction_calls(tape)
    kinked = None
    for call in calls:
        mismatch = check_call(call, eps, atol, rtol, rng)
        if mismatch is not None and not mismatch.kink:
            return mismatch, ("The bad op: the first instruction whose backward disagrees "
                              f"with its own finite difference is\n  {mismatch}")
        kinked = kinked or mismatch
    if kinked is not None:
        return kinked, ("Only an instruction at a non-differentiable point disagrees:\n  "
                        f"{kinked}\n  move the inputs away from the kink (or check a "
                        f"smaller eps)")
    note = [f"Every instruction's backward agrees with its own finite difference "
            f"({len(calls)} checked)."]
    with _recording():
        composed = _gradients(checked, instruction_gradients(tape, r))
    if all(np.allclose(c, n, rtol=rtol, atol=atol, equal_nan=True)
           for c, n in zip(composed, numeric)):
        note.append("Composing them instruction by instruction gives the numeric "
                    "gradients, so the tape's compiled sweep mis-combines them.")
    checked_ids = {id(c) for _, _, c in checked}
    constants = [leaf for leaf in tape._program()["leaves"] if id(leaf) not in checked_ids]
    if constants:
        shown = ", ".join(_describe_leaf(c) for c in constants[:5])
        many = "leaves that are" if len(constants) > 1 else "leaf that is"
        note.append(f"The graph has {len(constants)} {many} not a checked input "
                    f"(constants to backward): {shown}{' …' if len(constants) > 5 else ''}. "
                    f"If fn computes one from an input's value (e.g. Value(x.data)), that "
                    f"path has no derivative in the graph.")
    return None, "\n".join(note)


def _describe_leaf(leaf) -> str:
    label = getattr(leaf, "label", None)
    data = np.asarray(leaf.data)
    value = f"{float(data):.6g}" if data.size == 1 else f"{data.shape} {data.dtype}"
    return f"'{label}' = {value}" if label else value


# Reachable from the function even when the package exports it under the
# module's name (fastgrad.gradcheck is then the function).
gradcheck.GradcheckError = GradcheckError
gradcheck.LOCAL_BACKWARD = LOCAL_BACKWARD
gradcheck.inject_backward = inject_backward
gradcheck.check_instructions = check_instructions
