"""Seed 001: the gradients of a matrix product.

For Y = X @ W with X (N, D), W (D, H) and an upstream gradient dL/dY (N, H):
dL/dX = dL/dY @ W.T and dL/dW = X.T @ dL/dY.  Worked from the scalar-output
case (D = 4, dL/dy = -1, so dL/dx = -W.T and dL/dW = -x.T) up to a vector
output (D = 4, H = 2) and batches.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastgrad as fg

DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-14, atol=1e-15), np.float32: dict(rtol=1e-6, atol=1e-6)}


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_scalar_output_d4(dtype):
    x_np = np.array([[0.5, -1.0, 2.0, 3.0]], dtype=dtype)         # (1, D)
    W_np = np.array([[1.0], [-2.0], [0.25], [4.0]], dtype=dtype)   # (D, 1)
    x = fg.tensor(x_np, requires_grad=True, label="x")
    W = fg.tensor(W_np, requires_grad=True, label="W")
    y = x @ W
    assert y.shape == (1, 1)
    np.testing.assert_allclose(y.data, x_np @ W_np, **TOL[dtype])
    y.backward(np.array([[-1.0]], dtype=dtype))                   # dL/dy = -1
    np.testing.assert_array_equal(x.grad, -W_np.T)                 # dL/dx = -W.T
    np.testing.assert_array_equal(W.grad, -x_np.T)                 # dL/dW = -x.T


def test_scalar_output_with_vectors():
    x_np = np.array([0.5, -1.0, 2.0, 3.0])
    w_np = np.array([1.0, -2.0, 0.25, 4.0])
    x = fg.tensor(x_np, requires_grad=True)
    w = fg.tensor(w_np, requires_grad=True)
    y = x @ w                                                      # a 0-d dot product
    assert y.shape == () and y.item() == x_np @ w_np
    y.backward(-1.0)
    np.testing.assert_array_equal(x.grad, -w_np)
    np.testing.assert_array_equal(w.grad, -x_np)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("n", [1, 3, 16])
def test_vector_output_d4_h2_and_batches(n, dtype):
    rng = np.random.default_rng(n)
    X_np = rng.standard_normal((n, 4)).astype(dtype)
    W_np = rng.standard_normal((4, 2)).astype(dtype)
    dY = rng.standard_normal((n, 2)).astype(dtype)
    X = fg.tensor(X_np, requires_grad=True, label="X")
    W = fg.tensor(W_np, requires_grad=True, label="W")
    Y = X @ W
    assert Y.shape == (n, 2)
    Y.backward(dY)
    np.testing.assert_allclose(X.grad, dY @ W_np.T, **TOL[dtype])
    np.testing.assert_allclose(W.grad, X_np.T @ dY, **TOL[dtype])


def test_gradients_from_a_scalar_loss_over_y():
    # L = sum(Y * G) has dL/dY = G, the same rule seen through a loss
    rng = np.random.default_rng(9)
    X_np, W_np, G = rng.standard_normal((5, 4)), rng.standard_normal((4, 2)), \
        rng.standard_normal((5, 2))
    X = fg.tensor(X_np, requires_grad=True)
    W = fg.tensor(W_np, requires_grad=True)
    ((X @ W) * G).sum().backward()
    np.testing.assert_allclose(X.grad, G @ W_np.T, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(W.grad, X_np.T @ G, rtol=1e-14, atol=1e-15)


def test_replayed_on_a_tape_with_new_batches():
    rng = np.random.default_rng(2)
    X = fg.tensor(rng.standard_normal((8, 4)), requires_grad=True)
    W = fg.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    Y = X @ W
    tape = fg.lower(Y)
    for _ in range(3):
        X.data[...] = rng.standard_normal((8, 4))
        W.data[...] = rng.standard_normal((4, 2))
        dY = rng.standard_normal((8, 2))
        X.grad = W.grad = None
        tape.forward()
        tape.backward(dY)
        np.testing.assert_allclose(Y.data, X.data @ W.data, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(X.grad, dY @ W.data.T, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(W.grad, X.data.T @ dY, rtol=1e-14, atol=1e-15)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    X_np, W_np, dY = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), \
        rng.standard_normal((3, 2))
    X = fg.tensor(X_np, requires_grad=True)
    W = fg.tensor(W_np, requires_grad=True)
    (X @ W).backward(dY)
    tX = torch.tensor(X_np, requires_grad=True)
    tW = torch.tensor(W_np, requires_grad=True)
    (tX @ tW).backward(torch.tensor(dY))
    np.testing.assert_allclose(X.grad, tX.grad.numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(W.grad, tW.grad.numpy(), rtol=1e-14, atol=1e-15)
