"""fastgrad.explain: the chain rule narrated, edge by edge."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastgrad as fg
from fastgrad.explain import Explanation, explain, local_derivatives
from fastgrad.ops import BY_NAME

V = fg.Value


def seed_leaves():
    return (V(2.0, label="x1"), V(0.0, label="x2"), V(-3.0, label="w1"), V(1.0, label="w2"),
            V(6.8814, label="b"))


def seed_graph():
    x1, x2, w1, w2, b = seed_leaves()
    y = x1 * w1 + x2 * w2 + b
    y.label = "y"
    return y, (x1, x2, w1, w2, b)


def test_seed_gradients_are_narrated():
    y, _ = seed_graph()
    text = explain(y)
    assert isinstance(text, Explanation) and isinstance(text, str)
    for line in [
        "dy/dy = 1.0000",
        "dy/db = dy/dy · dy/db = 1.0000 · 1.0000 = 1.0000",
        "dy/d(x1*w1 + x2*w2) = dy/dy · dy/d(x1*w1 + x2*w2) = 1.0000 · 1.0000 = 1.0000",
        "dy/d(x1*w1) = dy/d(x1*w1 + x2*w2) · d(x1*w1 + x2*w2)/d(x1*w1) = 1.0000 · 1.0000 = 1.0000",
        "dy/dx1 = dy/d(x1*w1) · d(x1*w1)/dx1 = 1.0000 · -3.0000 = -3.0000",
        "dy/dw1 = dy/d(x1*w1) · d(x1*w1)/dw1 = 1.0000 · 2.0000 = 2.0000",
        "dy/dx2 = dy/d(x2*w2) · d(x2*w2)/dx2 = 1.0000 · 1.0000 = 1.0000",
        "dy/dw2 = dy/d(x2*w2) · d(x2*w2)/dw2 = 1.0000 · 0.0000 = 0.0000",
    ]:
        assert line in text, line
    for leaf, g in [("x1", -3), ("w1", 2), ("x2", 1), ("w2", 0), ("b", 1)]:
        assert f"  {leaf}.grad = {g:.4f}\n" in text + "\n"


def test_one_line_per_edge_in_reverse_order():
    y, _ = seed_graph()
    lines = str(explain(y)).splitlines()
    edges = [ln for ln in lines if ln.startswith("  dy/d") and " · " in ln]
    assert len(edges) == 8                       # 4 ops, 2 inputs each
    heads = [ln.split("    ")[0] for ln in lines if not ln.startswith(" ") and "[" in ln]
    assert heads == ["y = x1*w1 + x2*w2 + b", "x1*w1 + x2*w2", "x2*w2", "x1*w1"]


def test_derivative_text_comes_from_the_op_table():
    y, _ = seed_graph()
    text = explain(y)
    assert f"[*: {BY_NAME['mul'].derivative}]" in text
    assert f"[+: {BY_NAME['add'].derivative}]" in text
    assert "[d/da = b]" in text and "[d/db = a]" in text
    z = (V(0.5, label="a") ** 3).tanh()
    text = explain(z)
    assert "[**3: d/da = c·a^(c-1), c = 3]" in text and "1 - out²" in text


def test_explain_runs_backward_when_needed():
    y, (x1, x2, w1, w2, b) = seed_graph()
    assert x1.grad == 0.0
    explain(y)
    assert (x1.grad, w1.grad, x2.grad, w2.grad, b.grad) == (-3.0, 2.0, 1.0, 0.0, 1.0)
    explain(y)                                   # already done: no second backward
    assert x1.grad == -3.0


def test_accumulated_gradients_are_pointed_out():
    y, (x1, *_) = seed_graph()
    y.backward()
    y.backward()
    text = explain(y)
    assert "x1.grad = -3.0000    (stored .grad is -6.0000" in text


def test_wrt_shows_only_the_paths_to_one_leaf():
    y, (x1, x2, w1, w2, b) = seed_graph()
    text = explain(y, wrt=w1)
    assert "dy/dw1 = dy/d(x1*w1) · d(x1*w1)/dw1 = 1.0000 · 2.0000 = 2.0000" in text
    assert "dx2" not in text and "dy/db" not in text and "dx1 =" not in text
    assert "y → x1*w1 + x2*w2 → x1*w1 → w1: 1.0000 · 1.0000 · 2.0000 = 2.0000" in text
    assert "dy/dw1 = 2.0000    (sum over 1 path)" in text


def test_wrt_sums_over_paths():
    a = V(1.5, label="a")
    z = a * a + a
    z.label = "z"
    text = explain(z, wrt=a)
    assert "dz/da = 1.0000 + 1.5000 + 1.5000 = 4.0000    (sum over its 3 uses)" in text
    assert "dz/da = 4.0000    (sum over 3 paths)" in text
    assert text.count("z → ") == 3
    assert a.grad == 4.0


def test_wrt_must_be_in_the_graph():
    y, _ = seed_graph()
    with pytest.raises(ValueError, match="not a node of the graph"):
        explain(y, wrt=V(1.0))


def test_unlabeled_root_is_called_L_and_nodes_get_auto_names():
    p, q = V(0.5), V(2.0)
    text = explain((p * q).exp())
    assert "dL/dL = 1.0000" in text
    assert "L = exp(n0*n1)" in text
    assert "dL/dn0 = dL/d(n0*n1) · d(n0*n1)/dn0" in text


OPS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "truediv": lambda a, b: a / b, "pow": lambda a, b: a ** b, "neg": lambda a, b: -a,
    "pow_const": lambda a, b: a ** 2.5, "relu": lambda a, b: a.relu(),
    "tanh": lambda a, b: a.tanh(), "exp": lambda a, b: a.exp(), "log": lambda a, b: a.log(),
    "sigmoid": lambda a, b: a.sigmoid(),
}


@pytest.mark.parametrize("op", sorted(OPS))
def test_local_derivatives_match_the_compiled_backward(op):
    a, b = V(1.3), V(0.7)
    out = OPS[op](a, b)
    assert out.op == op
    out.backward()
    expected = [a.grad, b.grad][:len(out.inputs)]
    assert local_derivatives(out) == pytest.approx(expected, rel=1e-12)


def test_every_scalar_op_has_a_narration():
    a, b = V(1.3, label="a"), V(0.7, label="b")
    total = a
    for f in OPS.values():
        total = total + f(a, b)
    text = explain(total)
    assert "a.grad = " in text and "b.grad = " in text
    assert f"a.grad = {a.grad:.4f}" in text and f"b.grad = {b.grad:.4f}" in text


def test_long_graphs_are_cut():
    x = V(0.1, label="x")
    y = x
    for _ in range(3_000):
        y = y * 1.0001
    text = explain(y, max_lines=50)
    lines = text.splitlines()
    assert len(lines) == 51 and lines[-1].startswith("… ") and "max_lines=50" in lines[-1]
    assert len(str(explain(y, max_lines=None)).splitlines()) > 6_000


def test_markdown_for_notebooks():
    y, _ = seed_graph()
    md = explain(y)._repr_markdown_()
    assert md.startswith("```text\n") and md.rstrip().endswith("```")


# -- tensors --------------------------------------------------------------------------

def seed001(seed=0):
    rng = np.random.default_rng(seed)
    X = fg.tensor(rng.standard_normal((3, 4)), requires_grad=True, label="X")
    W = fg.tensor(rng.standard_normal((4, 2)), requires_grad=True, label="W")
    G = rng.standard_normal((3, 2))         # dL/dY, as in seed 001
    return X, W, G


def test_matmul_formulas_and_shapes():
    X, W, G = seed001()
    Y = X @ W
    Y.label = "Y"
    text = explain(Y, grad=G)
    assert "Y = X@W    (3, 2) float64    [@: dL/dA = dL/dY · Bᵀ, dL/dB = Aᵀ · dL/dY]" in text
    assert "dY/dX = dY/dY · Wᵀ    (3, 2) · (4, 2)ᵀ → (3, 4)" in text
    assert "dY/dW = Xᵀ · dY/dY    (3, 4)ᵀ · (3, 2) → (4, 2)" in text
    # explain ran backward(G): the stored gradients are the seed's formulas
    np.testing.assert_allclose(X.grad, G @ W.data.T)
    np.testing.assert_allclose(W.grad, X.data.T @ G)


def test_tensor_numbers_agree_with_backward():
    rng = np.random.default_rng(1)
    x = fg.tensor(rng.standard_normal(3), requires_grad=True, label="x")
    w = fg.tensor(rng.standard_normal((3, 2)), requires_grad=True, label="w")
    b = fg.tensor([0.1, -0.2], requires_grad=True, label="b")
    L = ((x @ w + b).tanh() ** 2).sum()
    L.label = "L"
    text = explain(L)
    from fastgrad.viz import _array
    for leaf in (x, w, b):
        assert f"{leaf.label}.grad = {_array(leaf.grad)}\n" in text + "\n"
    assert "summed over the broadcast axes" not in text       # b matches (2,)
    assert "dL/dw = xᵀ · dL/d(x@w)" in text


def test_broadcast_and_multiple_uses():
    x = fg.tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True, label="x")
    b = fg.tensor([0.5, -0.5], requires_grad=True, label="b")
    L = (x * (x + b)).sum()
    text = explain(L)
    assert "dL/db = dL/d(x + b), summed over the broadcast axes to (2,)" in text
    assert "dL/dx = sum over its 2 uses = [[2.5000, 3.5000], [6.5000, 7.5000]]" in text
    np.testing.assert_allclose(x.grad, 2 * x.data + b.data)


def test_tensor_explain_does_not_move_the_graph():
    X, W, G = seed001()
    Y = X @ W
    data = Y.data
    explain((Y * Y).sum())
    assert Y.data is data and Y.grad is None


def test_non_scalar_tensor_root_needs_grad():
    X, W, _ = seed001()
    with pytest.raises(ValueError, match="pass grad="):
        explain(X @ W)


def test_tensor_wrt():
    X, W, G = seed001()
    L = (X @ W).tanh().sum()
    text = explain(L, wrt=W)
    assert "dL/dX" not in text and "dL/dW = Xᵀ · dL/d(X@W)" in text
    assert "sum over 1 path" in text


def test_rejects_other_objects():
    with pytest.raises(TypeError, match="Value or Tensor"):
        explain(1.0)


def test_domain_edge_values_agree_with_the_kernels():
    a = V(0.0, label="a")
    text = explain(a ** 0.5 * 0 + a.relu())     # d/da a**0.5 is inf at 0; inf * 0 is nan
    assert math.isnan(a.grad)
    assert "a.grad = nan\n" in text + "\n"         # no "stored .grad differs" note
