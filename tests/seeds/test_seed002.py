"""Seed 002: the labelled scalar graph drawn as mermaid, left to right.

The post draws ``y = x1*w1 + x2*w2 + b`` twice: after the forward pass (every
grad 0 except the root's 1) and after the backward pass.  Each value is a box
``label | data 2.0000 | grad -3.0000`` and an op node (``*`` or ``+``) sits
between a value and its inputs.  fastgrad.viz must produce the same boxes and
the same wiring; fastgrad.explain must narrate the same gradients.
"""

from __future__ import annotations

import re

import pytest

import fastgrad as fg
from fastgrad.explain import explain
from fastgrad.gradcheck import gradcheck
from fastgrad.viz import to_dot, to_mermaid

V = fg.Value

LEAVES = {"x1": 2.0, "x2": 0.0, "w1": -3.0, "w2": 1.0, "b": 6.8814}
GRADS = {"x1": -3.0, "x2": 1.0, "w1": 2.0, "w2": 0.0, "b": 1.0}


def build():
    v = {name: V(data, label=name) for name, data in LEAVES.items()}
    y = v["x1"] * v["w1"] + v["x2"] * v["w2"] + v["b"]
    y.label = "y"
    return y, v


def boxes_and_wiring(text):
    """Mermaid -> ({box name: box text}, {value name: (op symbol, sorted input names)})."""
    boxes, ops, into = {}, {}, {}
    for line in text.splitlines()[1:]:
        if m := re.fullmatch(r'\s+(\w+)\["([^"]*)"\]', line):
            boxes[m[1]] = m[2]
        elif m := re.fullmatch(r'\s+(\w+)\(\("([^"]*)"\)\)', line):
            ops[m[1]] = m[2]
        elif m := re.fullmatch(r"\s+(\w+) --> (\w+)", line):
            into.setdefault(m[2], []).append(m[1])
    name = {k: t.split(" | ")[0] for k, t in boxes.items()}
    wiring = {}
    for k in boxes:
        if k in into:
            (op,) = into[k]
            wiring[name[k]] = (ops[op], sorted(name[i] for i in into[op]))
    return {name[k]: t for k, t in boxes.items()}, wiring


def test_forward_values():
    y, _ = build()
    assert y.data == pytest.approx(0.8814, abs=1e-12)


def test_forward_drawing_matches_the_post():
    y, _ = build()
    y.grad = 1.0            # the post's first drawing: only the root's grad is set
    boxes, _ = boxes_and_wiring(to_mermaid(y))
    for name, data in LEAVES.items():
        assert boxes[name] == f"{name} | data {data:.4f} | grad 0.0000"
    assert boxes["x1*w1"] == "x1*w1 | data -6.0000 | grad 0.0000"
    assert boxes["x2*w2"] == "x2*w2 | data 0.0000 | grad 0.0000"
    assert boxes["x1*w1 + x2*w2"] == "x1*w1 + x2*w2 | data -6.0000 | grad 0.0000"
    assert boxes["y"] == "y | data 0.8814 | grad 1.0000"


def test_backward_drawing_matches_the_post():
    y, _ = build()
    y.backward()
    text = to_mermaid(y)
    assert text.startswith("graph LR\n")
    boxes, wiring = boxes_and_wiring(text)
    assert len(boxes) == 9
    for name, grad in GRADS.items():
        assert boxes[name] == f"{name} | data {LEAVES[name]:.4f} | grad {grad:.4f}"
    for inner in ("x1*w1", "x2*w2", "x1*w1 + x2*w2", "y"):
        assert boxes[inner].endswith("| grad 1.0000")
    assert wiring == {
        "x1*w1": ("*", ["w1", "x1"]),
        "x2*w2": ("*", ["w2", "x2"]),
        "x1*w1 + x2*w2": ("+", ["x1*w1", "x2*w2"]),
        "y": ("+", ["b", "x1*w1 + x2*w2"]),
    }


def test_dot_drawing_has_the_same_boxes():
    y, _ = build()
    y.backward()
    text = to_dot(y)
    assert "rankdir=LR;" in text
    for name, grad in GRADS.items():
        assert f'label="{{ {name} | data {LEAVES[name]:.4f} | grad {grad:.4f} }}"' in text


def test_the_explanation_walks_the_posts_layers():
    y, v = build()
    text = explain(y)                       # runs y.backward() itself
    assert [v[name].grad for name in GRADS] == list(GRADS.values())
    # layer 1: b and the sum of products; layer 2: the products; layer 3: the leaves
    order = ["dy/db = ", "dy/d(x1*w1 + x2*w2) = ", "dy/d(x2*w2) = ", "dy/d(x1*w1) = ",
             "dy/dx1 = ", "dy/dw1 = "]
    positions = [text.index(s) for s in order]
    assert positions[0] < positions[2] and positions[1] < positions[2] < positions[4]
    assert "dy/dx1 = dy/d(x1*w1) · d(x1*w1)/dx1 = 1.0000 · -3.0000 = -3.0000" in text
    for name, grad in GRADS.items():
        assert f"  {name}.grad = {grad:.4f}" in text


def test_gradcheck_agrees():
    _, v = build()
    assert gradcheck(lambda x1, x2, w1, w2, b: x1 * w1 + x2 * w2 + b,
                     *(v[name] for name in ("x1", "x2", "w1", "w2", "b")))
