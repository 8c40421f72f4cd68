"""The chain rule, narrated: how backward() got every gradient of a graph.

``fastgrad.explain(y)`` walks the graph below ``y`` from the root down
(reverse topological order).  Each op gets a header with its formula and
its local derivatives from the op table; under it, one line per edge::

    x1*w1    [*: d/da = b, d/db = a]
      dy/dx1 = dy/d(x1*w1) · d(x1*w1)/dx1 = 1.0000 · -3.0000 = -3.0000    [d/da = b]

A value used more than once gets a line summing its edges.  With
``wrt=w1`` only the paths from the root to ``w1`` are shown, each path's
product of local derivatives is listed (up to ``MAX_PATHS`` of them) and the
result is their sum.  Names are labels, or the auto-names of the drawings
(:mod:`fastgrad.viz`); an unlabeled root is called ``L``.

Scalar graphs are explained with numbers computed here from the op table's
formulas, so the narration is self-contained.  Tensor graphs are explained
with shapes and formulas (``dL/dW = Xᵀ · dL/dY`` for a matmul); each edge's
gradient comes from the compiled backward of that one op (see
:func:`fastgrad.gradcheck.compiled_local_backward`), so explaining a graph
never moves its data or touches a tape that holds it.  The leaves'
computed gradients are compared with their stored ``.grad``.

Side effect, on purpose: when backward has not run yet -- a scalar root
whose ``.grad`` is not 1, or tensor leaves whose ``.grad`` are all None --
explain() calls ``root.backward()`` on the graph itself first, so the
stored gradients (and drawings) match the narration.  Like any backward it
accumulates into the leaves' ``.grad``.  A tensor root with more than one
element needs ``grad=`` (the seed).
"""

from __future__ import annotations

import re

import numpy as np

from fastgrad._kernels import local_derivative
from fastgrad.ops import BY_NAME, OPS
from fastgrad.viz import (
    SMALL, _array, assign_names, expression, inputs_of, node_exponent, number_text, symbol,
    topological_order,
)

__all__ = ["explain", "Explanation", "local_derivatives"]

MAX_LINES = 400
MAX_PATHS = 8


class Explanation(str):
    """The explanation text; renders as a code block in notebooks."""

    def _repr_markdown_(self) -> str:
        return f"```text\n{self}\n```\n"


def _f(x) -> str:
    return f"{float(x):.4f}"


def _d(name: str) -> str:
    """'x1' -> 'dx1'; 'x1*w1' -> 'd(x1*w1)'."""
    return f"d{name}" if re.fullmatch(r"[\w.%']+", name) else f"d({name})"


def _rule(op: str, position: int) -> str:
    """The op table's derivative text for one operand (``d/db = a``)."""
    parts = re.split(r",\s*(?=d(?:L)?/d)", BY_NAME[op].derivative)
    key = "ab"[position] if position < 2 else ""
    for part in parts:
        if re.match(rf"d(?:L)?/d{key}\b", part, flags=re.IGNORECASE):
            return part
    return parts[min(position, len(parts) - 1)]


def local_derivatives(node) -> tuple[float, ...]:
    """d(node)/d(input) for each input of a scalar Value: the op's compiled
    backward (generated from its row of the op table) with an incoming 1."""
    op = BY_NAME[node.op]
    if not op.elementwise:
        raise NotImplementedError(f"explain: no local derivative for op {node.op!r}")
    ins = node.inputs
    a = float(ins[0].data) if ins else 0.0
    b = float(ins[1].data) if len(ins) > 1 else 0.0
    c = node_exponent(node)
    return tuple(local_derivative(op.opcode, a, b, c, float(node.data), k)
                 for k in range(op.arity))


def _header(node, names, precs_of) -> str:
    name = names[id(node)]
    ins = inputs_of(node)
    expr, _ = expression(node, [names[id(x)] for x in ins], [precs_of(x) for x in ins])
    head = name if expr == name else f"{name} = {expr}"
    rule = BY_NAME[node.op].derivative
    if node.op == "pow_const" or BY_NAME[node.op].attr is not None:
        rule += f", c = {number_text(node_exponent(node))}"
    return head, f"[{symbol(node)}: {rule}]"


def _reaching(order, target) -> set[int]:
    """ids of the nodes from which target can be reached (target included)."""
    on = {id(target)}
    for node in order:
        if any(id(x) in on for x in inputs_of(node)):
            on.add(id(node))
    return on


def _finish(lines: list[str], max_lines: int | None) -> Explanation:
    if max_lines is not None and len(lines) > max_lines:
        more = len(lines) - max_lines
        lines = lines[:max_lines] + [f"… {more} more lines not shown (max_lines={max_lines})"]
    return Explanation("\n".join(lines))


def explain(root, wrt=None, *, grad=None, max_lines: int | None = MAX_LINES) -> Explanation:
    """Narrate the chain rule for the graph below ``root`` (see the module docs).

    ``wrt``: a node of the graph; only the paths from root to it are shown.
    ``grad``: d(loss)/d(root) for a tensor root with more than one element.
    ``max_lines``: longer explanations are cut with a note (None: no limit).
    """
    if hasattr(root, "_inputs") and isinstance(getattr(root, "_data", None), np.ndarray):
        return _explain_tensor(root, wrt, max_lines, grad)
    if hasattr(root, "inputs") and hasattr(root, "exponent"):
        return _explain_scalar(root, wrt, max_lines)
    raise TypeError(f"explain: expected a fastgrad Value or Tensor, got {type(root).__name__}")


def _setup(root, wrt):
    order = topological_order(root)
    precs: dict[int, int] = {}
    names = assign_names(order, root_name="L", unique=True, precs=precs)
    on = None
    if wrt is not None:
        if not any(n is wrt for n in order):
            raise ValueError(f"explain: wrt={wrt!r} is not a node of the graph below the root")
        on = _reaching(order, wrt)
    return order, names, on, (lambda node: precs[id(node)])


def _paths(root, wrt, on, factor) -> tuple[int, list]:
    """Number of root-to-wrt paths and (up to MAX_PATHS) their (nodes, factors)."""
    count = {id(wrt): 1}
    for node in topological_order(root):
        if id(node) in on and node is not wrt:
            count[id(node)] = sum(count[id(x)] for x in inputs_of(node) if id(x) in on)
    listed = []
    stack = [(root, [root], [])]
    while stack and len(listed) <= MAX_PATHS:
        node, path, factors = stack.pop()
        if node is wrt:
            listed.append((path, factors))
            continue
        for i, x in reversed(list(enumerate(inputs_of(node)))):
            if id(x) in on:
                stack.append((x, path + [x], factors + [factor(node, i)]))
    return count[id(root)], listed


def _explain_scalar(root, wrt, max_lines) -> Explanation:
    if root.grad != 1.0:
        root.backward()
    order, names, on, prec = _setup(root, wrt)
    R = names[id(root)]
    grad = {id(root): 1.0}
    uses: dict[int, list[float]] = {}
    lines = [f"Backward pass of {R} = {_f(root.data)}, from the root down "
             f"(d{R}/dv is the gradient of {R} with respect to v):",
             f"{_d(R)}/{_d(R)} = 1.0000"]
    local = {}
    for node in reversed(order):
        key = id(node)
        if on is not None and key not in on:
            continue
        contributions = uses.get(key, [])
        if len(contributions) > 1:
            terms = " + ".join(_f(c) for c in contributions)
            lines.append(f"  {_d(R)}/{_d(names[key])} = {terms} = {_f(grad[key])}"
                         f"    (sum over its {len(contributions)} uses)")
        ins = inputs_of(node)
        if not ins:
            continue
        local[key] = derivs = local_derivatives(node)
        head, rule = _header(node, names, prec)
        lines.append(f"{head}    {rule}")
        V = names[key]
        for i, x in enumerate(ins):
            if on is not None and id(x) not in on:
                continue
            g, d = grad[key], derivs[i]
            c = g * d
            grad[id(x)] = grad.get(id(x), 0.0) + c
            uses.setdefault(id(x), []).append(c)
            X = names[id(x)]
            lines.append(f"  {_d(R)}/{_d(X)} = {_d(R)}/{_d(V)} · {_d(V)}/{_d(X)} = "
                         f"{_f(g)} · {_f(d)} = {_f(c)}    [{_rule(node.op, i)}]")
    if wrt is not None:
        n, listed = _paths(root, wrt, on, lambda node, i: local[id(node)][i])
        W = names[id(wrt)]
        lines.append(f"Paths from {R} to {W} ({n}):")
        for path, factors in listed[:MAX_PATHS]:
            prod = float(np.prod(factors)) if factors else 1.0
            chain = " → ".join(names[id(p)] for p in path)
            lines.append(f"  {chain}: {' · '.join(_f(f) for f in factors) or '1'} = {_f(prod)}")
        if n > MAX_PATHS:
            lines.append(f"  … {n - MAX_PATHS} more paths")
        lines.append(f"{_d(R)}/{_d(W)} = {_f(grad.get(id(wrt), 0.0))}    "
                     f"(sum over {n} path{'s' if n != 1 else ''})")
        leaves = [wrt] if not inputs_of(wrt) else []
    else:
        lines.append("Leaf gradients:")
        leaves = [n for n in order if not inputs_of(n)]
    for leaf in leaves:
        mine, stored = grad.get(id(leaf), 0.0), leaf.grad
        line = f"  {names[id(leaf)]}.grad = {_f(mine)}"
        if not np.isclose(mine, stored, rtol=1e-9, atol=1e-12, equal_nan=True):
            line += (f"    (stored .grad is {_f(stored)}: leaf gradients accumulate "
                     f"over backward() calls; zero them between steps)")
        lines.append(line)
    return _finish(lines, max_lines)


# -- tensors -----------------------------------------------------------------------

_TENSOR_RULES = {op.name: op.tensor_rule for op in OPS if op.tensor_rule}


def _operand(name: str) -> str:
    """name as an operand: bare when atomic (``W``, ``tanh(X@W)``), else parenthesised."""
    if re.fullmatch(r"[\w.%']+", name):
        return name
    m = re.fullmatch(r"\w+(\(.*\))", name)
    if m:
        depth = 0
        for k, ch in enumerate(m.group(1)):
            depth += (ch == "(") - (ch == ")")
            if depth == 0 and k < len(m.group(1)) - 1:
                break
        else:
            return name
    return f"({name})"


def _seed(root, grad):
    if grad is not None:
        seed = np.asarray(getattr(grad, "_data", grad), dtype=np.float64)
        if seed.shape != tuple(root.shape):
            raise ValueError(f"explain: grad has shape {seed.shape}, the root {tuple(root.shape)}")
        return seed
    if root.size != 1:
        raise ValueError(f"explain: the root has shape {tuple(root.shape)}; pass grad= "
                         f"(d(loss)/d(root)) to explain a non-scalar root")
    return np.ones(root.shape)


def _explain_tensor(root, wrt, max_lines, grad) -> Explanation:
    from fastgrad.gradcheck import local_backward, node_call

    seed = _seed(root, grad)
    order, names, on, prec = _setup(root, wrt)
    leaves = [n for n in order if not inputs_of(n) and n.requires_grad]
    if leaves and all(leaf.grad is None for leaf in leaves):
        root.backward(None if grad is None else seed)
    R = names[id(root)]
    total = {id(root): seed}
    uses: dict[int, int] = {}
    value = f" = {_array(root.data)}" if root.size <= SMALL else ""
    lines = [f"Backward pass of {R}, {tuple(root.shape)} {root.dtype}{value}, from the root "
             f"down (d{R}/dV has V's shape; ⊙ is elementwise, · a matrix product):",
             f"{_d(R)}/{_d(R)} = the seed of backward()"
             + (f" = {_array(seed)}" if seed.size <= SMALL else "")]
    for node in reversed(order):
        key = id(node)
        if (on is not None and key not in on) or key not in total:
            continue
        if uses.get(key, 0) > 1:
            line = f"  {_d(R)}/{_d(names[key])} = sum over its {uses[key]} uses"
            lines.append(line + (f" = {_array(total[key])}" if node.size <= SMALL else ""))
        ins = inputs_of(node)
        if not ins or not node.requires_grad:
            continue
        head, rule = _header(node, names, prec)
        lines.append(f"{head}    {tuple(node.shape)} {node.dtype}    {rule}")
        g = f"{_d(R)}/{_d(names[key])}"
        rules = _TENSOR_RULES[node.op]
        parts = local_backward(node_call(node), total[key])
        for i, x in enumerate(ins):
            if parts[i] is None or not x.requires_grad or (on is not None and id(x) not in on):
                continue
            uses[id(x)] = uses.get(id(x), 0) + 1
            total[id(x)] = total[id(x)] + parts[i] if id(x) in total else parts[i]
            formula = rules[min(i, len(rules) - 1)].format(
                g=g, a=_operand(names[id(ins[0])]),
                b=_operand(names[id(ins[1])]) if len(ins) > 1 else "",
                y=_operand(names[key]), c=number_text(node_exponent(node)), ashape=tuple(x.shape),
                adtype=x.dtype).replace("ᵀᵀ", "")
            shapes = f"→ {tuple(x.shape)}"
            if node.op == "matmul":
                a_shape, b_shape = tuple(ins[0].shape), tuple(ins[1].shape)
                shapes = (f"{tuple(node.shape)} · {b_shape}ᵀ {shapes}" if i == 0
                          else f"{a_shape}ᵀ · {tuple(node.shape)} {shapes}")
            elif len(ins) == 2 and tuple(x.shape) != tuple(node.shape):
                formula += f", summed over the broadcast axes to {tuple(x.shape)}"
            line = f"  {_d(R)}/{_d(names[id(x)])} = {formula}    {shapes}"
            if x.size <= SMALL:
                line += f" = {_array(parts[i])}"
            lines.append(line + f"    [{_rule(node.op, i)}]")
    if wrt is not None:
        n, _ = _paths(root, wrt, on, lambda node, i: 1.0)
        got = total.get(id(wrt))
        lines.append(f"{_d(R)}/{_d(names[id(wrt)])}: sum over {n} path{'s' if n != 1 else ''}"
                     + (f" = {_array(got)}" if got is not None and wrt.size <= SMALL else ""))
        leaves = [wrt] if not inputs_of(wrt) and wrt.requires_grad else []
    elif leaves:
        lines.append("Leaf gradients:")
    for leaf in leaves:
        mine = total.get(id(leaf), np.zeros(leaf.shape))
        stored = leaf.grad
        line = f"  {names[id(leaf)]}.grad" + (f" = {_array(mine)}" if leaf.size <= SMALL
                                               else f": {tuple(leaf.shape)}")
        if stored is None:
            line += "    (stored .grad is None: backward() has not reached it)"
        elif not np.allclose(mine, stored, rtol=1e-6, atol=1e-9, equal_nan=True):
            line += ("    (stored .grad differs: leaf gradients accumulate over backward() "
                     "calls; zero them between steps)")
        lines.append(line)
    return _finish(lines, max_lines)
