"""Seed 003: a 2-3-1 linear network by hand, then checked against PyTorch.

No biases, no activations.  x = (40, 80), target 60, L = 1/2 (y - y')^2,
layer 1 weights (2 x 3) all 0.5, layer 2 weights (3 x 1) all 1.0, learning
rate 1e-5.  Forward: z = 60, 60, 60; y' = 180; L = 7200; dL/dy' = 120.
Gradients: layer 2 all 7200; layer 1 4800 (weights from x1) and 9600 (from
x2).  One SGD step: layer 2 -> 0.928; layer 1 -> 0.452 (from x1), 0.404
(from x2).
"""

from __future__ import annotations

import numpy as np
import pytest

import fastgrad as fg

LR = 1e-5


def build():
    x = fg.tensor([[40.0, 80.0]], label="x")
    W1 = fg.full((2, 3), 0.5, requires_grad=True, label="W1")   # row i: weights from x_i
    W2 = fg.full((3, 1), 1.0, requires_grad=True, label="W2")
    z = x @ W1
    y_hat = z @ W2
    loss = 0.5 * (60.0 - y_hat) ** 2
    return x, W1, W2, z, y_hat, loss


def check_gradients(W1, W2):
    np.testing.assert_allclose(W2.grad, np.full((3, 1), 7200.0), rtol=1e-15)
    np.testing.assert_allclose(W1.grad[0], [4800.0] * 3, rtol=1e-15)
    np.testing.assert_allclose(W1.grad[1], [9600.0] * 3, rtol=1e-15)


def check_step(W1, W2):
    np.testing.assert_allclose(W2.data, np.full((3, 1), 0.928), rtol=1e-14)
    np.testing.assert_allclose(W1.data[0], [0.452] * 3, rtol=1e-14)
    np.testing.assert_allclose(W1.data[1], [0.404] * 3, rtol=1e-14)


def sgd(params):
    for p in params:
        p.data -= LR * p.grad


def test_forward_values():
    x, W1, W2, z, y_hat, loss = build()
    np.testing.assert_array_equal(z.data, [[60.0, 60.0, 60.0]])
    assert y_hat.item() == 180.0
    assert loss.item() == 7200.0


def test_upstream_gradient_of_the_loss():
    y_hat = fg.tensor(180.0, requires_grad=True)
    (0.5 * (60.0 - y_hat) ** 2).backward()
    assert y_hat.grad == 120.0


def test_gradients_and_one_sgd_step():
    x, W1, W2, z, y_hat, loss = build()
    loss.backward()
    check_gradients(W1, W2)
    sgd([W1, W2])
    check_step(W1, W2)


def test_through_a_lowered_tape():
    x, W1, W2, z, y_hat, loss = build()
    tape = fg.lower(loss)
    tape.zero_grad()
    tape.forward()
    assert loss.item() == 7200.0
    tape.backward()
    check_gradients(W1, W2)
    sgd([W1, W2])
    check_step(W1, W2)
    # the replay sees the stepped weights: z = 40*0.452 + 80*0.404 = 50.4, y' = 3 * 50.4 * 0.928
    tape.forward()
    z_new = 40 * 0.452 + 80 * 0.404
    y_new = 3 * z_new * 0.928
    np.testing.assert_allclose(y_hat.item(), y_new, rtol=1e-13)
    np.testing.assert_allclose(loss.item(), 0.5 * (y_new - 60.0) ** 2, rtol=1e-12)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    x = torch.tensor([[40.0, 80.0]], dtype=torch.float64)
    W1 = torch.full((2, 3), 0.5, dtype=torch.float64, requires_grad=True)
    W2 = torch.full((3, 1), 1.0, dtype=torch.float64, requires_grad=True)
    loss = 0.5 * (60.0 - (x @ W1) @ W2) ** 2
    loss.backward()
    with torch.no_grad():
        W1 -= LR * W1.grad
        W2 -= LR * W2.grad

    _, fW1, fW2, _, _, floss = build()
    floss.backward()
    assert floss.item() == loss.item()
    sgd([fW1, fW2])
    np.testing.assert_allclose(fW1.data, W1.detach().numpy(), rtol=1e-15)
    np.testing.assert_allclose(fW2.data, W2.detach().numpy(), rtol=1e-15)
