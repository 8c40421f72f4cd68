"""Seed 001: the gradients of a matrix product, checked against finite differences.

For Y = X @ W with an upstream gradient G = dL/dY (take L = sum(Y * G)):

    dL/dX = G @ W.T        dL/dW = X.T @ G

with shapes X (N, D), W (D, H), Y and G (N, H).  The seed works it out
from the scalar case (one sample, one output: y = x.W with D = 4 and
dL/dy = -1, so dL/dx = -W.T and dL/dW = -x.T) up to several outputs
(D = 4, H = 2).  For each case this script compares fastgrad's gradients
with the two formulas and with central differences of L.

Run:  python examples/seed001_matmul.py [--seed 0] [--eps 1e-6]
"""

from __future__ import annotations

import argparse

import numpy as np

import fastgrad as fg


def finite_difference(L, A, eps):
    """Central differences of the scalar function L() with respect to array A (in place)."""
    grad = np.zeros_like(A)
    for i in np.ndindex(A.shape):
        old = A[i]
        A[i] = old + eps
        up = L()
        A[i] = old - eps
        down = L()
        A[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def check(name, X, W, G, eps):
    Xt = fg.tensor(X, requires_grad=True, label="X")
    Wt = fg.tensor(W, requires_grad=True, label="W")
    Y = Xt @ Wt
    loss = (Y * fg.tensor(G)).sum()          # dL/dY = G
    loss.backward()

    def L():
        return float(np.sum((X @ W) * G))

    numeric_X = finite_difference(L, X, eps)
    numeric_W = finite_difference(L, W, eps)
    errors = {
        "dX vs G @ W.T": np.abs(Xt.grad - G @ W.T).max(),
        "dW vs X.T @ G": np.abs(Wt.grad - X.T @ G).max(),
        "dX vs finite differences": np.abs(Xt.grad - numeric_X).max(),
        "dW vs finite differences": np.abs(Wt.grad - numeric_W).max(),
    }
    print(f"{name}: X {X.shape} @ W {W.shape} -> Y {Y.shape}")
    for what, err in errors.items():
        print(f"  max error {what:<26} {err:.3e}")
    return Xt.grad, Wt.grad, errors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eps", type=float, default=1e-6)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    results = {}
    # The scalar case: y = x.W, D = 4, dL/dy = -1.
    x = rng.standard_normal((1, 4))
    w = rng.standard_normal((4, 1))
    dx, dw, errors = check("scalar output (D=4)", x, w, np.array([[-1.0]]), args.eps)
    print(f"  dL/dx == -W.T: {np.allclose(dx, -w.T)}   dL/dW == -x.T: {np.allclose(dw, -x.T)}")
    results["scalar"] = errors
    # A vector output (D = 4, H = 2), then a batch of samples (N = 3).
    for name, (N, D, H) in [("vector output (D=4, H=2)", (1, 4, 2)),
                            ("batch (N=3, D=4, H=2)", (3, 4, 2))]:
        X = rng.standard_normal((N, D))
        W = rng.standard_normal((D, H))
        G = rng.standard_normal((N, H))
        results[name] = check(name, X, W, G, args.eps)[2]
    worst = max(err for errors in results.values() for err in errors.values())
    print(f"largest error over all cases: {worst:.3e}")
    return results


if __name__ == "__main__":
    main()
