"""Graph drawings: mermaid and Graphviz DOT for Values, Tensors and Tapes.

Every value is one box, ``label | data 2.0000 | grad -3.0000`` (tensors show
their shape and dtype, and their numbers when they have at most
``SMALL`` elements); between a value and its inputs sits an op node holding
the op table's symbol (``+``, ``*``, ``tanh``, ``@``, ...).  Graphs are drawn
left to right, inputs first::

    print(fastgrad.viz.to_mermaid(y))      # paste into a ```mermaid block
    fastgrad.viz.draw(y, "y.svg")          # needs `pip install graphviz`
    fastgrad.viz.graph(y)                  # displays itself in Jupyter

Unlabeled values get a name: a short expression of their inputs' names
(``x1*w1 + x2*w2``) or, when that would be long, ``n<k>`` with k the node's
position in topological order.  A Tape draws its instruction graph, one box
per slot (``%k`` unless the slot's node has a label).  Traversal is
iterative, and only the ``max_nodes`` values nearest the root are drawn;
the rest is summarised by one visible note, so a drawing stays small
however large the graph is.
"""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fastgrad._value import Value
from fastgrad.ops import BY_NAME, OPS

__all__ = ["to_mermaid", "to_dot", "draw", "graph", "Graph", "SMALL", "MAX_NODES"]

SMALL = 6          # tensors with at most this many elements show their numbers
MAX_NODES = 200    # default cap on the value boxes of one drawing
MAX_NAME = 24      # longest auto-generated expression name
MAX_LABEL = 48     # longer labels are shortened in drawings


# -- the graph, independent of the node type ----------------------------------

def inputs_of(node) -> tuple:
    """A node's inputs in operand order (Values, Tensors and tape slots)."""
    if type(node) is Value:
        return node.inputs
    inputs = getattr(node, "_inputs", None)
    if isinstance(inputs, tuple):
        return inputs
    return node.inputs


def op_name(node) -> str:
    return node.op


def topological_order(root, inputs: Callable = inputs_of) -> list:
    """Every node below root, inputs before the nodes that use them (no recursion)."""
    order: list = []
    seen = {id(root)}
    stack = [(root, iter(inputs(root)))]
    while stack:
        node, it = stack[-1]
        for child in it:
            if id(child) not in seen:
                seen.add(id(child))
                stack.append((child, iter(inputs(child))))
                break
        else:
            stack.pop()
            order.append(node)
    return order


_PREC = {op.name: op.precedence for op in OPS if op.precedence}
_TIGHT = {op.name for op in OPS if op.tight}     # drawn without spaces around


def number_text(c: float) -> str:
    return str(int(c)) if float(c).is_integer() and abs(c) < 1e15 else f"{c:g}"


def expression(node, names: list[str], precs: list[int]) -> tuple[str, int]:
    """node's op applied to its inputs' names: ('x1*w1 + b', precedence)."""
    op = op_name(node)
    if op in _PREC and BY_NAME[op].infix:
        p = _PREC[op]
        sym = BY_NAME[op].symbol
        left = names[0] if precs[0] >= p + (op == "pow") else f"({names[0]})"
        right_ok = precs[1] > p or (precs[1] == p and op in ("add", "mul"))
        right = names[1] if right_ok else f"({names[1]})"
        return (f"{left}{sym}{right}" if op in _TIGHT else f"{left} {sym} {right}"), p
    if op == "pow_const":
        base = names[0] if precs[0] > 4 else f"({names[0]})"
        return f"{base}**{number_text(node_exponent(node))}", 4
    if op == "neg":
        return (f"-{names[0]}" if precs[0] >= 3 else f"-({names[0]})"), 3
    if op == "transpose":
        return (f"{names[0]}ᵀ" if precs[0] >= 5 else f"({names[0]})ᵀ"), 5
    if op == "dot":
        return " + ".join(names), 1
    if op in BY_NAME and BY_NAME[op].attr is not None:      # leaky_relu(x, 0.1)
        return f"{op}({names[0]}, {number_text(node_exponent(node))})", 5
    return f"{op}({', '.join(names)})", 5


def node_exponent(node) -> float:
    """The node's number attribute: pow_const's exponent, leaky_relu's slope, ..."""
    c = getattr(node, "_attr", None)
    if c is None:
        attrs = getattr(node, "_attrs", ())
        c = attrs[-1].c if attrs else 0.0
    return c


def assign_names(order: list, inputs: Callable = inputs_of, root_name: str | None = None,
                 unique: bool = False, precs: dict | None = None) -> dict[int, str]:
    """id(node) -> display name: its label, a short expression, or n<k>.

    ``precs``, when given, receives id(node) -> the precedence of its name.
    """
    names: dict[int, str] = {}
    precs = {} if precs is None else precs
    used: set[str] = set()
    last = len(order) - 1
    for k, node in enumerate(order):
        label = getattr(node, "label", None)
        prec = 5
        if label:
            name = str(label)
        elif k == last and root_name:
            name = root_name
        elif op_name(node) == "leaf" or not inputs(node):
            data = getattr(node, "_data", None)
            constant = getattr(node, "requires_grad", True) is False
            name = f"{float(data.reshape(-1)[0]):.4g}" if (
                constant and isinstance(data, np.ndarray) and data.size == 1
                and data.dtype.kind in "fiu") else f"n{k}"
        elif all(id(x) in names for x in inputs(node)):
            ins = inputs(node)
            name, prec = expression(node, [names[id(x)] for x in ins],
                                    [precs[id(x)] for x in ins])
            if len(name) > MAX_NAME:
                name, prec = f"n{k}", 5
        else:                       # an input is not in the drawing
            name = f"n{k}"
        if unique and name in used and not label:
            name, prec = f"n{k}", 5
        used.add(name)
        names[id(node)] = name
        precs[id(node)] = prec
    return names


def symbol(node) -> str:
    op = op_name(node)
    if op == "pow_const":
        return f"**{number_text(node_exponent(node))}"
    return BY_NAME[op].symbol if op in BY_NAME else op


def _fmt(x) -> str:
    return f"{float(x):.4f}"


def _array(a: np.ndarray) -> str:
    if a.ndim == 0:
        return _fmt(a)
    text = np.array2string(np.asarray(a, dtype=np.float64), separator=", ",
                           formatter={"float_kind": _fmt}, max_line_width=1 << 20)
    return " ".join(text.split())


def box_fields(node, name: str) -> list[str]:
    """The fields of a value's box: name, then data and grad (or shape/dtype)."""
    if len(name) > MAX_LABEL:
        name = name[:MAX_LABEL - 1] + "…"
    data = getattr(node, "_data", None)
    if not isinstance(data, np.ndarray):            # a scalar Value
        if getattr(node, "const", False):
            return [name, "const"]
        return [name, f"data {_fmt(node.data)}", f"grad {_fmt(node.grad)}"]
    fields = [name, f"{tuple(data.shape)} {data.dtype}"]
    if data.size <= SMALL:
        fields.append(f"data {_array(data)}")
        grad = getattr(node, "grad", None)
        if isinstance(grad, np.ndarray) and grad.shape == data.shape:
            fields.append(f"grad {_array(grad)}")
    return fields


# -- tapes: one box per slot -----------------------------------------------------

class _Slot:
    """A tape slot seen as a graph node (value, op, input slots)."""

    __slots__ = ("obj", "op", "inputs", "label", "exponent", "const", "_data", "_attrs")

    def __init__(self, obj, op="leaf", label=None, exponent=0.0, const=False):
        self.obj, self.op, self.inputs, self.label = obj, op, (), label
        self.exponent, self.const = exponent, const
        data = getattr(obj, "_data", None)
        if isinstance(data, np.ndarray):
            self._data = data
        self._attrs = ()

    @property
    def data(self):
        return self.obj.data

    @property
    def grad(self):
        return self.obj.grad


def tape_graph(tape) -> _Slot:
    """The tape's instruction graph as _Slot nodes; returns the root slot's node."""
    prog = tape._program()
    slots: dict[int, _Slot] = {}
    scalar = prog["kind"] == "scalar"
    if scalar:
        for s, leaf in enumerate(prog["leaves"]):
            slots[s] = _Slot(leaf, label=leaf.label or f"%{s}")
        one = prog["one_slot"]
        slots[one] = _Slot(1.0, label="1.0", const=True)
    else:
        for s, leaf in zip(prog["leaf_slots"], prog["leaves"]):
            slots[s] = _Slot(leaf, label=leaf.label or f"%{s}")
    for ins in prog["instructions"]:
        node, op = ins["node"], ins["op"]
        out = _Slot(node, op, node.label or f"%{ins['out']}", ins["c"])
        if op == "dot":
            operands = [ins["a"]]
            for x, y in ins["pairs"]:
                operands += [x] if y == prog["one_slot"] else [x, y]
        elif BY_NAME[op].arity == 2 and ins["b"] is not None:
            operands = [ins["a"], ins["b"]]
        else:
            operands = [ins["a"]]
        out.inputs = tuple(slots[s] if s in slots else _Slot(None, label=f"%{s}", const=True)
                           for s in operands)
        slots[ins["out"]] = out
    return slots[prog["root_slot"]]


def _is_tape(obj) -> bool:
    return hasattr(obj, "_program") and hasattr(obj, "backward") and not hasattr(obj, "op")


def _check_root(root, who: str):
    if _is_tape(root):
        return tape_graph(root)
    if not (hasattr(root, "op") and (hasattr(root, "inputs") or hasattr(root, "_inputs"))):
        raise TypeError(f"{who}: expected a fastgrad Value, Tensor or Tape, "
                        f"got {type(root).__name__}")
    return root


# -- layout: what to draw ---------------------------------------------------------

def count_nodes(root) -> int:
    """How many nodes the graph below root has (one fast iterative pass)."""
    seen = {id(root)}
    stack = [root]
    while stack:
        for child in inputs_of(stack.pop()):
            if id(child) not in seen:
                seen.add(id(child))
                stack.append(child)
    return len(seen)


class _Layout:
    """The values a drawing shows (the max_nodes nearest the root), named and ordered."""

    def __init__(self, root, max_nodes: int | None):
        cap = max(int(max_nodes), 1) if max_nodes is not None else None
        drawn = {id(root)}
        queue = deque([root])
        truncated = False
        while queue:                                # breadth first from the root
            for child in inputs_of(queue.popleft()):
                if id(child) not in drawn:
                    if cap is not None and len(drawn) >= cap:
                        truncated = True
                        continue
                    drawn.add(id(child))
                    queue.append(child)
        self.order = topological_order(
            root, lambda n: [x for x in inputs_of(n) if id(x) in drawn])
        self.names = assign_names(self.order)
        self.index = {id(n): k for k, n in enumerate(self.order)}
        self.drawn = drawn
        self.total = count_nodes(root) if truncated else len(drawn)
        self.hidden = self.total - len(drawn)
        self.max_nodes = max_nodes

    def nodes(self):
        return enumerate(self.order)

    def note(self) -> str:
        return (f"… {self.hidden} more value{'s' if self.hidden != 1 else ''} not drawn "
                f"(graph of {self.total} values; max_nodes={self.max_nodes})")


def _edges(layout: _Layout):
    """(kind, k, node, inputs-with-ids) for every drawn node, inputs first."""
    for k, node in layout.nodes():
        ins = inputs_of(node)
        yield k, node, [(layout.index[id(x)] if id(x) in layout.drawn else None) for x in ins]


# -- mermaid ---------------------------------------------------------------------

def _mermaid_text(s: str) -> str:
    s = s.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;")
    s = s.replace(">", "#gt;").replace("`", "#96;")
    return " ".join(s.split("\n"))


def to_mermaid(root, max_nodes: int | None = MAX_NODES) -> str:
    """A mermaid flowchart (``graph LR``) of the graph below root."""
    layout = _Layout(_check_root(root, "to_mermaid"), max_nodes)
    lines = ["graph LR"]
    links = []
    cut = set()
    for k, node, ins in _edges(layout):
        box = " | ".join(box_fields(node, layout.names[id(node)]))
        if ins:
            lines.append(f'    op{k}(("{_mermaid_text(symbol(node))}"))')
        lines.append(f'    n{k}["{_mermaid_text(box)}"]')
        if ins:
            for j in ins:
                if j is None:
                    if k not in cut:
                        cut.add(k)
                        links.append(f"    more -.-> op{k}")
                else:
                    links.append(f"    n{j} --> op{k}")
            links.append(f"    op{k} --> n{k}")
    if layout.hidden:
        lines.insert(1, f"    %% {layout.note()}")
        lines.append(f'    more["{_mermaid_text(layout.note())}"]')
    return "\n".join(lines + links) + "\n"


# -- Graphviz DOT ------------------------------------------------------------------

_RECORD_SPECIAL = re.compile(r'([\\"{}|<>])')


def _dot_field(s: str) -> str:
    return _RECORD_SPECIAL.sub(r"\\\1", " ".join(s.split("\n")))


def _dot_string(s: str) -> str:
    return '"' + " ".join(s.split("\n")).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(root, max_nodes: int | None = MAX_NODES) -> str:
    """Graphviz DOT source (``rankdir=LR``, record boxes) of the graph below root."""
    layout = _Layout(_check_root(root, "to_dot"), max_nodes)
    lines = ["digraph fastgrad {", "    rankdir=LR;",
             '    node [fontname="Helvetica", fontsize=11];']
    links = []
    cut = set()
    for k, node, ins in _edges(layout):
        fields = " | ".join(_dot_field(f) for f in box_fields(node, layout.names[id(node)]))
        if ins:
            lines.append(f"    op{k} [shape=ellipse, label={_dot_string(symbol(node))}];")
        lines.append(f'    n{k} [shape=record, label="{{ {fields} }}"];')
        if ins:
            for j in ins:
                if j is None:
                    if k not in cut:
                        cut.add(k)
                        links.append(f"    more -> op{k} [style=dashed];")
                else:
                    links.append(f"    n{j} -> op{k};")
            links.append(f"    op{k} -> n{k};")
    if layout.hidden:
        note = _dot_string(layout.note())
        lines.append(f"    more [shape=note, label={note}];")
        lines.append(f"    label={note};")
    return "\n".join(lines + links + ["}"]) + "\n"


# -- rendering ---------------------------------------------------------------------

_INSTALL = ("fastgrad.viz.draw needs the graphviz Python package and Graphviz's `dot` "
            "program: pip install graphviz (and the system package: apt-get install "
            "graphviz, brew install graphviz or conda install graphviz). "
            "fastgrad.viz.to_mermaid(root) needs nothing.")


def _graphviz():
    try:
        import graphviz
    except ImportError:
        raise ImportError(_INSTALL) from None
    if graphviz is None:                        # sys.modules entry set to None
        raise ImportError(_INSTALL)
    return graphviz


def _render(dot: str, fmt: str) -> bytes:
    graphviz = _graphviz()
    try:
        return graphviz.Source(dot).pipe(format=fmt)
    except Exception as exc:
        if type(exc).__name__ == "ExecutableNotFound":
            raise RuntimeError(_INSTALL) from exc
        raise


def draw(root, path, format: str | None = None, max_nodes: int | None = MAX_NODES) -> Path:
    """Render the graph below root to an SVG/PNG/PDF file (through Graphviz).

    The format comes from ``format`` or the file's suffix.  Raises ImportError
    (with the install command) when the graphviz package is missing.
    """
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".") or "svg").lower()
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"draw: unsupported format {fmt!r} (use svg, png or pdf)")
    data = _render(to_dot(root, max_nodes), fmt)
    path.write_bytes(data)
    return path


class Graph:
    """A drawing that displays itself in Jupyter (SVG via Graphviz, else mermaid).

    ``str(g)`` and ``g.mermaid`` give mermaid source, ``g.dot`` DOT source,
    ``g.save(path)`` renders a file.  The drawing is made when shown, so it
    shows the current data and grads.
    """

    def __init__(self, root, max_nodes: int | None = MAX_NODES):
        _check_root(root, "graph")
        self.root = root
        self.max_nodes = max_nodes

    @property
    def mermaid(self) -> str:
        return to_mermaid(self.root, self.max_nodes)

    @property
    def dot(self) -> str:
        return to_dot(self.root, self.max_nodes)

    def save(self, path, format: str | None = None) -> Path:
        return draw(self.root, path, format, self.max_nodes)

    def _repr_svg_(self) -> Any:
        try:
            return _render(self.dot, "svg").decode("utf-8")
        except (ImportError, RuntimeError):
            return None                         # IPython falls back to markdown

    def _repr_markdown_(self) -> str:
        return f"```mermaid\n{self.mermaid}```\n"

    def __str__(self) -> str:
        return self.mermaid

    def __repr__(self) -> str:
        return f"<fastgrad.viz.Graph of {type(self.root).__name__}>"


def graph(root, max_nodes: int | None = MAX_NODES) -> Graph:
    """A :class:`Graph` of root, for notebooks (``viz.graph(loss)`` in a cell)."""
    return Graph(root, max_nodes)
