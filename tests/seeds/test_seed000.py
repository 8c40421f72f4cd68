"""Seed 000 (and the graph of 002): one neuron, y = x1*w1 + x2*w2 + b, by hand.

Leaves x1=2, x2=0, w1=-3, w2=1, b=6.8814.  Forward: y = -6 + 0 + 6.8814 =
0.8814.  Backward by the chain rule: the sums pass the gradient 1 through, so
dy/d(x1*w1) = dy/d(x2*w2) = 1, then dy/dx1 = w1 = -3, dy/dw1 = x1 = 2,
dy/dx2 = w2 = 1, dy/dw2 = x2 = 0, dy/db = 1.  The post also estimates a
derivative numerically, (f(a + h) - f(a)) / h, and compares.
"""

import pytest

import fastgrad as fg
from fastgrad import Value

START = {"x1": 2.0, "x2": 0.0, "w1": -3.0, "w2": 1.0, "b": 6.8814}
GRADS = {"x1": -3.0, "x2": 1.0, "w1": 2.0, "w2": 0.0, "b": 1.0}


def neuron(values=START):
    leaves = {name: Value(v, label=name) for name, v in values.items()}
    x1w1 = leaves["x1"] * leaves["w1"]
    x1w1.label = "x1*w1"
    x2w2 = leaves["x2"] * leaves["w2"]
    x2w2.label = "x2*w2"
    s = x1w1 + x2w2
    s.label = "x1*w1 + x2*w2"
    y = s + leaves["b"]
    y.label = "y"
    return leaves, (x1w1, x2w2, s), y


def f(values):
    """The same function on plain floats."""
    return values["x1"] * values["w1"] + values["x2"] * values["w2"] + values["b"]


def test_forward():
    leaves, (x1w1, x2w2, s), y = neuron()
    assert x1w1.data == -6.0
    assert x2w2.data == 0.0
    assert s.data == -6.0
    assert y.data == pytest.approx(0.8814, abs=1e-12)
    assert [v.label for v in leaves.values()] == list(START)


def test_backward():
    leaves, inner, y = neuron()
    y.backward()
    assert {name: v.grad for name, v in leaves.items()} == GRADS
    assert y.grad == 1.0
    assert [n.grad for n in inner] == [1.0, 1.0, 1.0]


def test_graph_structure_as_drawn():
    leaves, (x1w1, x2w2, s), y = neuron()
    assert y._op == "+" and y._prev == {s, leaves["b"]}
    assert s._op == "+" and s._prev == {x1w1, x2w2}
    assert x1w1._op == "*" and x1w1._prev == {leaves["x1"], leaves["w1"]}
    assert x2w2._op == "*" and x2w2._prev == {leaves["x2"], leaves["w2"]}


@pytest.mark.parametrize("fuse", [True, False])
def test_through_a_tape(fuse):
    leaves, inner, y = neuron()
    tape = fg.lower(y, fuse=fuse)
    assert tape.forward() == pytest.approx(0.8814, abs=1e-12)
    tape.backward()
    assert {name: v.grad for name, v in leaves.items()} == GRADS
    if not fuse:
        assert [n.grad for n in inner] == [1.0, 1.0, 1.0]
    listing = str(tape)
    for name in START:
        assert name in listing
    # a second step from other inputs
    tape.zero_grad()
    leaves["x1"].data, leaves["x2"].data = -1.0, 4.0
    assert tape.forward() == pytest.approx(-1.0 * -3.0 + 4.0 * 1.0 + 6.8814, abs=1e-12)
    tape.backward()
    assert leaves["w1"].grad == -1.0 and leaves["w2"].grad == 4.0
    assert leaves["x1"].grad == -3.0 and leaves["x2"].grad == 1.0


@pytest.mark.parametrize("name", list(START))
def test_numerical_derivative_agrees(name):
    h = 1e-6
    leaves, inner, y = neuron()
    y.backward()
    bumped = dict(START)
    bumped[name] += h
    # on plain floats, as in the post
    assert (f(bumped) - f(START)) / h == pytest.approx(leaves[name].grad, abs=1e-4)
    # and with fastgrad's own forward pass
    _, _, y_bumped = neuron(bumped)
    assert (y_bumped.data - y.data) / h == pytest.approx(leaves[name].grad, abs=1e-4)
