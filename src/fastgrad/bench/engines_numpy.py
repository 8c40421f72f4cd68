"""Hand-written numpy: forward, backward and SGD update, written as a numpy user would.

Straightforward array code (temporaries allocated as numpy allocates them),
in place where that is the natural spelling (``dZ *= Z > 0``, ``W -= lr * dW``).
numpy's ``@`` calls numpy's own OpenBLAS, not scipy's
(which fastgrad calls); the header of the report shows both.
"""

from __future__ import annotations

import numpy as np

from fastgrad.bench.engines_fastgrad import gemm_shapes
from fastgrad.bench.harness import Engine

__all__ = ["NumpyW1", "NumpyW2", "NumpyW3", "NumpyW4", "NumpyGemms", "NumpyUfunc"]


class _Numpy(Engine):
    key, family = "numpy", "numpy"
    label = "numpy hand-written (forward, backward, update)"

    def setup(self):
        self.layers = self.w.weights()
        self.lr = self.w.lr


class NumpyW1(_Numpy):
    """MLP 2-16-16-1 with ReLU, SVM max-margin loss + alpha * sum(p^2)."""

    def setup(self):
        super().setup()
        self.X, self.y, self.alpha = self.w.data["X"], self.w.data["y"], self.w.data["alpha"]

    def step(self):
        (W1, b1), (W2, b2), (W3, b3) = self.layers
        X, y, alpha, lr = self.X, self.y, self.alpha, self.lr
        Z1 = X @ W1 + b1
        H1 = np.maximum(Z1, 0.0)
        Z2 = H1 @ W2 + b2
        H2 = np.maximum(Z2, 0.0)
        scores = (H2 @ W3 + b3).ravel()
        margins = 1.0 - y * scores
        active = margins > 0
        loss = (margins[active].sum() / len(y)
                + alpha * sum(float(np.dot(p.ravel(), p.ravel()))
                              for layer in self.layers for p in layer))
        dscores = np.where(active, -y, 0.0)[:, None] / len(y)
        two_alpha = 2.0 * alpha
        dW3 = H2.T @ dscores + two_alpha * W3
        db3 = dscores.sum(0) + two_alpha * b3
        dZ2 = (dscores @ W3.T) * (Z2 > 0)
        dW2 = H1.T @ dZ2 + two_alpha * W2
        db2 = dZ2.sum(0) + two_alpha * b2
        dZ1 = (dZ2 @ W2.T) * (Z1 > 0)
        dW1 = X.T @ dZ1 + two_alpha * W1
        db1 = dZ1.sum(0) + two_alpha * b1
        for p, g in ((W1, dW1), (b1, db1), (W2, dW2), (b2, db2), (W3, dW3), (b3, db3)):
            p -= lr * g
        return loss


class NumpyW2(_Numpy):
    """Seed 003: y = x W1 W2, L = (y - t)^2 / 2 (the seed's own hand derivation)."""

    def setup(self):
        self.lr = self.w.lr
        d = self.w.data
        self.x, self.t = d["x"], d["t"]
        self.W1, self.W2 = d["W1"].copy(), d["W2"].copy()

    def step(self):
        x, W1, W2 = self.x, self.W1, self.W2
        h = x @ W1
        y = h @ W2
        dy = y - self.t
        loss = 0.5 * float((dy * dy).sum())
        dW2 = h.T @ dy
        dW1 = x.T @ (dy @ W2.T)
        W1 -= self.lr * dW1
        W2 -= self.lr * dW2
        return loss


def _mlp_backward(layers, X, H1, H2, Z1, Z2, dZ3, lr):
    """Backward through two ReLU layers and the last linear one, then SGD (5 GEMMs)."""
    (W1, b1), (W2, b2), (W3, b3) = layers
    dW3 = H2.T @ dZ3
    db3 = dZ3.sum(0)
    dZ2 = dZ3 @ W3.T
    dZ2 *= Z2 > 0
    dW2 = H1.T @ dZ2
    db2 = dZ2.sum(0)
    dZ1 = dZ2 @ W2.T
    dZ1 *= Z1 > 0
    dW1 = X.T @ dZ1
    db1 = dZ1.sum(0)
    for p, g in ((W1, dW1), (b1, db1), (W2, dW2), (b2, db2), (W3, dW3), (b3, db3)):
        p -= lr * g


def _mlp_forward(layers, X):
    (W1, b1), (W2, b2), (W3, b3) = layers
    Z1 = X @ W1 + b1
    H1 = np.maximum(Z1, 0)
    Z2 = H1 @ W2 + b2
    H2 = np.maximum(Z2, 0)
    out = H2 @ W3 + b3
    return Z1, H1, Z2, H2, out


class NumpyW3(_Numpy):
    """784-256-128-10, softmax cross-entropy (stable), 8 GEMMs."""

    def setup(self):
        super().setup()
        self.X, self.y = self.w.data["X"], self.w.data["y"]
        self.rows = np.arange(len(self.y))

    def step(self):
        X, y, rows = self.X, self.y, self.rows
        Z1, H1, Z2, H2, logits = _mlp_forward(self.layers, X)
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        sums = exp.sum(axis=1, keepdims=True)
        loss = float(np.log(sums).mean() - shifted[rows, y].mean())
        dZ3 = exp / sums
        dZ3[rows, y] -= 1
        dZ3 /= len(y)
        _mlp_backward(self.layers, X, H1, H2, Z1, Z2, dZ3, self.lr)
        return loss


class NumpyW4(_Numpy):
    """1024^3 MLP, mean squared error, 8 GEMMs."""

    def setup(self):
        super().setup()
        self.X, self.T = self.w.data["X"], self.w.data["T"]

    def step(self):
        Z1, H1, Z2, H2, Y = _mlp_forward(self.layers, self.X)
        diff = Y - self.T
        loss = float(np.dot(diff.ravel(), diff.ravel()) / diff.size)
        diff *= np.float32(2.0 / diff.size)
        _mlp_backward(self.layers, self.X, H1, H2, Z1, Z2, diff, self.lr)
        return loss


class NumpyGemms(Engine):
    """The same 8 GEMMs with numpy's matmul into preallocated outputs (its floor)."""

    key, family = "numpy_gemms", "numpy"
    label = "numpy GEMMs only (8 x np.matmul, out=)"
    has_loss = False

    def setup(self):
        rng = np.random.default_rng(0)
        dt = np.dtype(self.w.dtype)
        batch = self.w.data["X"].shape[0]
        self.calls = []
        for a, b, c, ta, tb in gemm_shapes(self.w.data["sizes"], batch):
            A = rng.standard_normal(a).astype(dt)
            B = rng.standard_normal(b).astype(dt)
            self.calls.append((A.T if ta else A, B.T if tb else B, np.zeros(c, dt)))

    def step(self):
        matmul = np.matmul
        for A, B, C in self.calls:
            matmul(A, B, out=C)


class NumpyUfunc(Engine):
    """The ops chain as numpy ufunc calls on (4,) arrays, each with out=."""

    key, family = "numpy_ufunc", "numpy"
    label = "numpy ufunc call with out= (per op)"

    def setup(self):
        d = self.w.data
        self.n = self.per_step = d["n_ops"]
        self.x, self.a, self.b = d["x"].copy(), d["a"].copy(), d["b"].copy()
        self.y = np.empty_like(self.x)

    def step(self):
        y, a, b = self.y, self.a, self.b
        mul, add = np.multiply, np.add
        y[...] = self.x
        for _ in range(self.n // 2):
            mul(y, a, out=y)
            add(y, b, out=y)
        return float(y.sum())
