"""fastgrad.viz: mermaid and DOT drawings of Values, Tensors and Tapes."""

from __future__ import annotations

import re
import shutil
import sys
import types

import numpy as np
import pytest

import fastgrad as fg
from fastgrad import viz
from fastgrad.viz import Graph, draw, graph, to_dot, to_mermaid

V = fg.Value


def seed_graph():
    """Seeds 000/002: y = x1*w1 + x2*w2 + b, after backward."""
    x1, x2 = V(2.0, label="x1"), V(0.0, label="x2")
    w1, w2 = V(-3.0, label="w1"), V(1.0, label="w2")
    b = V(6.8814, label="b")
    y = x1 * w1 + x2 * w2 + b
    y.label = "y"
    y.backward()
    return y


# -- a small reader for the two formats (structure, not rendering) --------------

MERMAID_BOX = re.compile(r'^\s+(\w+)\["([^"]*)"\]$')
MERMAID_OP = re.compile(r'^\s+(\w+)\(\("([^"]*)"\)\)$')
MERMAID_EDGE = re.compile(r"^\s+(\w+) (-->|-\.->) (\w+)$")


def parse_mermaid(text: str):
    """(boxes id->text, ops id->symbol, edges [(a, b)]); fails on any other line."""
    lines = text.splitlines()
    assert lines[0] == "graph LR"
    boxes, ops, edges = {}, {}, []
    for line in lines[1:]:
        if line.strip().startswith("%%"):
            continue
        if m := MERMAID_BOX.match(line):
            boxes[m[1]] = m[2]
        elif m := MERMAID_OP.match(line):
            ops[m[1]] = m[2]
        elif m := MERMAID_EDGE.match(line):
            edges.append((m[1], m[3]))
        else:
            raise AssertionError(f"unexpected mermaid line: {line!r}")
    for a, b in edges:
        assert a in boxes or a in ops, a
        assert b in boxes or b in ops, b
    return boxes, ops, edges


DOT_TOKEN = re.compile(r'\s*(?:(->)|([{}\[\];=,])|("(?:[^"\\]|\\.)*")|([A-Za-z_][\w.]*|-?\d+(?:\.\d+)?))')


def parse_dot(text: str):
    """A strict reader for the DOT subset fastgrad writes: (nodes id->attrs, edges)."""
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = DOT_TOKEN.match(text, pos)
        assert m and m.end() > pos, f"cannot tokenize DOT at {text[pos:pos + 40]!r}"
        tokens.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    assert tokens[:3] == ["digraph", "fastgrad", "{"] and tokens[-1] == "}"
    body, i, nodes, edges = tokens[3:-1], 0, {}, []

    def attrs(j):
        out = {}
        assert body[j] == "["
        j += 1
        while body[j] != "]":
            key, eq, value = body[j], body[j + 1], body[j + 2]
            assert eq == "=", body[j:j + 3]
            out[key] = value
            j += 3
            if body[j] == ",":
                j += 1
        return out, j + 1

    while i < len(body):
        head = body[i]
        if body[i + 1] == "=":                         # graph attribute: rankdir=LR;
            i += 3
        elif head in ("node", "edge"):
            _, i = attrs(i + 1)
        elif body[i + 1] == "->":
            a, b = head, body[i + 2]
            i += 3
            if body[i] == "[":
                _, i = attrs(i)
            edges.append((a, b))
        else:
            nodes[head], i = attrs(i + 1) if body[i + 1] == "[" else ({}, i + 1)
        assert body[i] == ";", body[i - 3:i + 1]
        i += 1
    for a, b in edges:
        assert a in nodes and b in nodes, (a, b)
    return nodes, edges


def record_fields(label: str) -> list[str]:
    """The fields of a record label '"{ a | b }"' (unescaping \\| etc.)."""
    assert label.startswith('"{ ') and label.endswith(' }"')
    inner = label[3:-3]
    fields, cur, k = [], "", 0
    while k < len(inner):
        ch = inner[k]
        if ch == "\\":
            cur += inner[k + 1]
            k += 2
            continue
        if ch == "|":
            fields.append(cur.strip())
            cur = ""
        elif ch in "{}<>\"":
            raise AssertionError(f"unescaped {ch!r} in record label {label!r}")
        else:
            cur += ch
        k += 1
    return fields + [cur.strip()]


# -- scalar graphs -------------------------------------------------------------------

def test_seed_mermaid_boxes_and_ops():
    text = to_mermaid(seed_graph())
    assert text.startswith("graph LR\n")
    for box in ["x1 | data 2.0000 | grad -3.0000", "w1 | data -3.0000 | grad 2.0000",
                "x2 | data 0.0000 | grad 1.0000", "w2 | data 1.0000 | grad 0.0000",
                "b | data 6.8814 | grad 1.0000", "x1*w1 | data -6.0000 | grad 1.0000",
                "x2*w2 | data 0.0000 | grad 1.0000",
                "x1*w1 + x2*w2 | data -6.0000 | grad 1.0000",
                "y | data 0.8814 | grad 1.0000"]:
        assert f'["{box}"]' in text, box
    boxes, ops, edges = parse_mermaid(text)
    assert sorted(ops.values()) == ["*", "*", "+", "+"]
    assert len(boxes) == 9 and len(edges) == 12


def test_op_node_sits_between_a_value_and_its_inputs():
    boxes, ops, edges = parse_mermaid(to_mermaid(seed_graph()))
    by_text = {text.split(" | ")[0]: k for k, text in boxes.items()}
    into = {}
    for a, b in edges:
        into.setdefault(b, []).append(a)
    (op,) = into[by_text["x1*w1"]]
    assert ops[op] == "*"
    assert sorted(boxes[k].split(" | ")[0] for k in into[op]) == ["w1", "x1"]
    (op,) = into[by_text["y"]]
    assert ops[op] == "+"
    assert sorted(boxes[k].split(" | ")[0] for k in into[op]) == ["b", "x1*w1 + x2*w2"]
    for a, b in edges:          # values feed ops, ops feed values
        assert (a in boxes) != (b in boxes)


def test_seed_dot_parses():
    text = to_dot(seed_graph())
    assert "rankdir=LR;" in text
    nodes, edges = parse_dot(text)
    records = {k: record_fields(v["label"]) for k, v in nodes.items() if v.get("shape") == "record"}
    assert ["x1", "data 2.0000", "grad -3.0000"] in records.values()
    assert ["w1", "data -3.0000", "grad 2.0000"] in records.values()
    assert sorted(v["label"] for v in nodes.values() if v.get("shape") == "ellipse") == \
        ['"*"', '"*"', '"+"', '"+"']
    assert len(edges) == 12


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_dot_is_accepted_by_graphviz():
    graphviz = pytest.importorskip("graphviz")
    svg = graphviz.Source(to_dot(seed_graph())).pipe(format="svg")
    assert b"<svg" in svg


def test_unlabeled_values_get_names_from_their_inputs():
    a, b = V(0.5), V(-1.5)
    y = (a * b + a).tanh() ** 2
    boxes, ops, _ = parse_mermaid(to_mermaid(y))
    names = [t.split(" | ")[0] for t in boxes.values()]
    assert names == ["n0", "n1", "n0*n1", "n0*n1 + n0", "tanh(n0*n1 + n0)",
                     "tanh(n0*n1 + n0)**2"]
    assert sorted(ops.values()) == ["*", "**2", "+", "tanh"]


def test_precedence_in_auto_names():
    a, b, c = V(1.0, label="a"), V(2.0, label="b"), V(3.0, label="c")
    names = [t.split(" | ")[0] for t in parse_mermaid(to_mermaid((a + b) * c - (b - c)))[0].values()]
    assert "(a + b)*c" in names and "b - c" in names and "(a + b)*c - (b - c)" in names


def test_long_expressions_fall_back_to_numbered_names():
    x = V(1.0, label="x")
    y = x
    for _ in range(12):
        y = y * 1.5 + x
    names = [t.split(" | ")[0] for t in parse_mermaid(to_mermaid(y))[0].values()]
    assert all(len(n) <= viz.MAX_NAME for n in names)
    assert any(re.fullmatch(r"n\d+", n) for n in names)


@pytest.mark.parametrize("label", ['say "hi"', "a<b>c", "x|y", "{braces}", "#35; hash",
                                   "back\\slash", "line\nbreak", "`tick`"])
def test_labels_are_escaped(label):
    a = V(1.0, label=label)
    y = a * 2.0
    y.label = label
    boxes, _, _ = parse_mermaid(to_mermaid(y))
    for text in boxes.values():
        assert '"' not in text and "<" not in text and "\n" not in text and "`" not in text
    nodes, _ = parse_dot(to_dot(y))
    flat = " ".join(label.split("\n"))
    records = [record_fields(v["label"]) for v in nodes.values() if v.get("shape") == "record"]
    assert [flat, "data 1.0000", "grad 0.0000"] in records


def test_long_labels_are_shortened():
    y = V(1.0, label="w" * 500) * 2.0
    assert "w" * 100 not in to_mermaid(y)


# -- tensors ------------------------------------------------------------------------

def tensor_graph():
    X = fg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, label="X")
    W = fg.tensor(np.ones((3, 4)), requires_grad=True, label="W")
    b = fg.tensor([0.5, 0.25, 0.0, -1.0], dtype=np.float32, label="b")
    L = (X @ W + b).tanh().sum()
    L.backward()
    return L


def test_tensor_boxes_show_shape_dtype_and_small_values():
    text = to_mermaid(tensor_graph())
    boxes, ops, _ = parse_mermaid(text)
    by_name = {t.split(" | ")[0]: t for t in boxes.values()}
    assert by_name["X"].startswith("X | (2, 3) float64 | data [[0.0000, 1.0000, 2.0000], ")
    assert "grad [[" in by_name["X"]
    assert by_name["W"] == "W | (3, 4) float64"          # 12 elements: no numbers
    assert by_name["b"].startswith("b | (4,) float32 | data [0.5000, 0.2500, 0.0000, -1.0000]")
    assert any(t.startswith("sum(") and "| () float64 | data " in t for t in boxes.values())
    assert {"@", "+", "tanh", "sum"} <= set(ops.values())
    assert parse_dot(to_dot(tensor_graph()))


def test_tensor_constants_are_named_by_value():
    x = fg.tensor([1.0, 2.0], requires_grad=True, label="x")
    names = [t.split(" | ")[0] for t in parse_mermaid(to_mermaid((x * 3.0).mean()))[0].values()]
    assert "x*3" in names and "0.5" in names


# -- tapes ----------------------------------------------------------------------------

def test_scalar_tape_draws_its_instructions():
    tape = fg.lower(seed_graph())
    boxes, ops, edges = parse_mermaid(to_mermaid(tape))
    assert sorted(ops.values()) == sorted(i["op"] if i["op"] == "dot" else
                                          {"mul": "*", "add": "+"}[i["op"]]
                                          for i in tape._program()["instructions"])
    names = [t.split(" | ")[0] for t in boxes.values()]
    assert {"x1", "w1", "x2", "w2", "b", "y"} <= set(names)
    dot_op = next(k for k, s in ops.items() if s == "dot")
    assert len([a for a, b in edges if b == dot_op]) == 4      # %6, x2, w2, b
    assert parse_dot(to_dot(tape))


def test_unfused_scalar_tape_has_one_op_per_node():
    tape = fg.lower(seed_graph(), fuse=False)
    _, ops, _ = parse_mermaid(to_mermaid(tape))
    assert sorted(ops.values()) == ["*", "*", "+", "+"]


def test_array_tape_draws_its_instructions():
    L = tensor_graph()
    tape = fg.lower(L)
    boxes, ops, _ = parse_mermaid(to_mermaid(tape))
    assert sorted(ops.values()) == sorted(viz.BY_NAME[i["op"]].symbol
                                          for i in tape._program()["instructions"])
    assert any(t.startswith("X | (2, 3) float64") for t in boxes.values())
    assert parse_dot(to_dot(tape))


# -- large graphs ------------------------------------------------------------------------

def test_a_long_chain_is_summarised_and_small():
    x = V(0.5, label="x")
    y = x
    for _ in range(100_000):
        y = y + 1.0
    for render in (to_mermaid, to_dot):
        text = render(y)
        assert len(text.encode()) < 100_000
        assert "more values not drawn" in text and "max_nodes=200" in text
    boxes, _, _ = parse_mermaid(to_mermaid(y))
    assert len(boxes) == 201            # 200 values and the note
    assert len(parse_dot(to_dot(y, max_nodes=50))[0]) <= 2 * 50 + 1


def test_a_wide_graph_is_summarised():
    xs = [V(float(i)) for i in range(20_000)]
    y = xs[0]
    for x in xs[1:]:
        y = y + x * x
    text = to_mermaid(y, max_nodes=100)
    assert len(text) < 50_000 and "more values not drawn" in text


def test_drawing_needs_no_recursion():
    x = V(1.0)
    y = x
    for _ in range(5_000):
        y = y * 1.0
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(200, len(__import__("inspect").stack()) + 100))
    try:
        assert "graph LR" in to_mermaid(y, max_nodes=None)[:20]
        assert to_dot(y, max_nodes=10)
    finally:
        sys.setrecursionlimit(limit)


def test_max_nodes_none_draws_everything():
    boxes, _, _ = parse_mermaid(to_mermaid(seed_graph(), max_nodes=None))
    assert len(boxes) == 9


def test_large_tensors_are_not_printed():
    X = fg.tensor(np.ones((300, 300)), requires_grad=True, label="X")
    text = to_mermaid((X * 2.0).sum())
    assert len(text) < 2000 and "X | (300, 300) float64" in text


# -- rendering and notebooks -----------------------------------------------------------

def test_draw_without_graphviz_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.raises(ImportError, match="pip install graphviz"):
        draw(seed_graph(), tmp_path / "y.svg")
    g = graph(seed_graph())
    assert g._repr_svg_() is None               # notebooks fall back to markdown


def fake_graphviz(calls):
    module = types.ModuleType("graphviz")

    class Source:
        def __init__(self, source):
            calls.append(source)

        def pipe(self, format):
            return f"<{format}/>".encode()

    module.Source = Source
    return module


def test_draw_renders_through_graphviz(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setitem(sys.modules, "graphviz", fake_graphviz(calls))
    out = draw(seed_graph(), tmp_path / "y.png")
    assert out.read_bytes() == b"<png/>"
    assert calls[0].startswith("digraph fastgrad {")
    assert draw(seed_graph(), tmp_path / "y", format="svg").read_bytes() == b"<svg/>"
    with pytest.raises(ValueError, match="unsupported format"):
        draw(seed_graph(), tmp_path / "y.gif")
    assert graph(seed_graph())._repr_svg_() == "<svg/>"


def test_graph_object_for_notebooks():
    y = seed_graph()
    g = graph(y)
    assert isinstance(g, Graph)
    assert g._repr_markdown_().startswith("```mermaid\ngraph LR\n")
    assert str(g) == to_mermaid(y) and g.dot == to_dot(y)
    y.grad = 5.0                                # drawn when shown: current values
    assert "y | data 0.8814 | grad 5.0000" in g.mermaid


def test_rejects_other_objects():
    with pytest.raises(TypeError, match="Value, Tensor or Tape"):
        to_mermaid(3.0)
    with pytest.raises(TypeError):
        to_dot([V(1.0)])
