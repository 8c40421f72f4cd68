"""Seed 004: a ReLU MLP trained with squared error, then XOR.

A 2-2-1 network (ReLU hidden layer, linear output) with L = 1/2 (y - t)^2;
the gradients are written out by hand per weight with the ReLU indicator
1[h > 0] and must equal fastgrad's.  Then a wider net learns XOR
([[0,0],[0,1],[1,0],[1,1]] -> [0,1,1,0]) with plain SGD on a lowered tape.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastgrad as fg

X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
T = np.array([[0.0], [1.0], [1.0], [0.0]])


def numpy_backprop(X, T, W1, b1, W2, b2):
    """Hand-derived gradients of sum_i 1/2 (y_i - t_i)^2 for y = relu(X W1 + b1) W2 + b2."""
    a = X @ W1 + b1                 # hidden pre-activations
    h = np.maximum(a, 0.0)          # ReLU
    y = h @ W2 + b2
    dy = y - T                      # dL/dy
    dW2 = h.T @ dy
    db2 = dy.sum(axis=0)
    dh = dy @ W2.T
    da = dh * (h > 0)               # the ReLU indicator 1[h > 0]
    dW1 = X.T @ da
    db1 = da.sum(axis=0)
    loss = 0.5 * np.sum(dy ** 2)
    return loss, dict(W1=dW1, b1=db1, W2=dW2, b2=db2)


def numpy_backprop_per_weight(x, t, W1, b1, W2, b2):
    """The same for one sample, written out weight by weight as in the post (2-2-1)."""
    h_in = [x[0] * W1[0, j] + x[1] * W1[1, j] + b1[j] for j in range(2)]
    h = [max(v, 0.0) for v in h_in]
    y = h[0] * W2[0, 0] + h[1] * W2[1, 0] + b2[0]
    dy = y - t
    g = dict(W1=np.zeros((2, 2)), b1=np.zeros(2), W2=np.zeros((2, 1)), b2=np.zeros(1))
    g["b2"][0] = dy
    for j in range(2):
        g["W2"][j, 0] = dy * h[j]
        relu_on = 1.0 if h[j] > 0 else 0.0
        g["b1"][j] = dy * W2[j, 0] * relu_on
        for i in range(2):
            g["W1"][i, j] = dy * W2[j, 0] * relu_on * x[i]
    return g


def fastgrad_net(weights):
    params = {k: fg.tensor(v, requires_grad=True, label=k) for k, v in weights.items()}
    x, t = fg.tensor(X, label="x"), fg.tensor(T, label="t")
    y = (x @ params["W1"] + params["b1"]).relu() @ params["W2"] + params["b2"]
    loss = (0.5 * (y - t) ** 2).sum()
    return params, y, loss


def random_weights(rng, hidden=2):
    return dict(W1=rng.standard_normal((2, hidden)), b1=rng.standard_normal(hidden) * 0.5,
                W2=rng.standard_normal((hidden, 1)), b2=rng.standard_normal(1) * 0.5)


@pytest.mark.parametrize("seed", range(6))
def test_hand_derived_gradients_equal_fastgrad(seed):
    w = random_weights(np.random.default_rng(seed))
    expected_loss, expected = numpy_backprop(X, T, **w)
    params, y, loss = fastgrad_net(w)
    loss.backward()
    np.testing.assert_allclose(loss.item(), expected_loss, rtol=1e-12)
    for k in expected:
        np.testing.assert_allclose(params[k].grad, expected[k], rtol=1e-12, atol=1e-15,
                                   err_msg=k)


@pytest.mark.parametrize("seed", range(3))
def test_per_weight_formulas_for_each_sample(seed):
    w = random_weights(np.random.default_rng(100 + seed))
    for x, t in zip(X, T[:, 0]):
        expected = numpy_backprop_per_weight(x, t, **w)
        params = {k: fg.tensor(v, requires_grad=True) for k, v in w.items()}
        y = (fg.tensor(x[None, :]) @ params["W1"] + params["b1"]).relu() @ params["W2"] \
            + params["b2"]
        (0.5 * (y - t) ** 2).sum().backward()
        for k in expected:
            np.testing.assert_allclose(params[k].grad, expected[k], rtol=1e-12, atol=1e-15)


def test_dead_relu_units_get_no_gradient():
    w = dict(W1=np.array([[-1.0, 1.0], [-1.0, 1.0]]), b1=np.array([-0.5, 0.1]),
             W2=np.array([[2.0], [1.0]]), b2=np.array([0.0]))
    params, y, loss = fastgrad_net(w)
    loss.backward()
    np.testing.assert_array_equal(params["W1"].grad[:, 0], [0.0, 0.0])  # unit 0 never fires
    assert params["b1"].grad[0] == 0.0
    assert params["W2"].grad[0, 0] == 0.0
    _, expected = numpy_backprop(X, T, **w)
    for k in expected:
        np.testing.assert_allclose(params[k].grad, expected[k], rtol=1e-12)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    w = random_weights(np.random.default_rng(42))
    params, y, loss = fastgrad_net(w)
    loss.backward()
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in w.items()}
    ty = torch.relu(torch.tensor(X) @ tp["W1"] + tp["b1"]) @ tp["W2"] + tp["b2"]
    (0.5 * (ty - torch.tensor(T)) ** 2).sum().backward()
    for k in w:
        np.testing.assert_allclose(params[k].grad, tp[k].grad.numpy(), rtol=1e-12, atol=1e-15)


def test_a_wider_relu_net_learns_xor_on_a_tape():
    rng = np.random.default_rng(0)
    w = random_weights(rng, hidden=8)
    params, y, loss = fastgrad_net(w)
    tape = fg.lower(loss)
    lr = 0.05
    solved_at = None
    for step in range(2000):
        tape.zero_grad()
        tape.forward()
        if ((y.data > 0.5) == (T > 0.5)).all() and loss.item() < 0.02:
            solved_at = step
            break
        tape.backward()
        for p in params.values():
            p.data -= lr * p.grad
    assert solved_at is not None, f"XOR not learned: outputs {y.data.ravel()}"
    np.testing.assert_array_equal(y.data > 0.5, T > 0.5)
    # the tape's loss is the loss of the trained weights, rebuilt eagerly
    _, y2, loss2 = fastgrad_net({k: p.data for k, p in params.items()})
    np.testing.assert_array_equal(y2.data, y.data)
