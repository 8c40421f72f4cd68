"""Seed 004: a ReLU MLP learns XOR with squared error -- and its gradients are the hand-written ones.

The seed writes a 2-2-1 network (ReLU hidden layer, linear output,
L = 1/2 (y - t)^2 averaged over the samples) and its gradients by hand in
numpy, with the ReLU indicator 1[h > 0].  This script

1. computes those numpy gradients for the network's initial weights and
   compares them with fastgrad's (printing the largest difference), then
2. trains the network with a compiled step and SGD with momentum, and
   prints its four outputs: XOR is learned when each is on the right side
   of 0.5.

A 2-2-1 ReLU net often gets stuck (a dead hidden unit), so the default
hidden layer is wider (--hidden 8); --hidden 2 is the seed's net.

Run:  python examples/xor.py [--hidden 8] [--steps 300] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad.datasets import make_xor


def numpy_gradients(X, T, W1, b1, W2, b2):
    """Seed 004's backward pass: gradients of mean 1/2 (y - t)^2 for y = relu(X W1 + b1) W2 + b2."""
    m = X.shape[0]
    Z1 = X @ W1 + b1
    A1 = np.maximum(Z1, 0.0)
    Z2 = A1 @ W2 + b2
    dZ2 = (Z2 - T) / m
    dW2 = A1.T @ dZ2
    db2 = dZ2.sum(axis=0)
    dZ1 = (dZ2 @ W2.T) * (A1 > 0)          # the ReLU indicator 1[h > 0]
    dW1 = X.T @ dZ1
    db1 = dZ1.sum(axis=0)
    return [dW1, db1, dW2, db2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    fg.manual_seed(args.seed)                  # the initial weights
    X, y = make_xor()                          # the truth table, in order
    T = y.astype(np.float64).reshape(-1, 1)
    model = fg.nn.MLP(2, [args.hidden, 1], activation="relu")
    params = model.parameters()                # W1, b1, W2, b2

    @fg.compile
    def step(X, T):
        return 0.5 * F.mse_loss(model(X), T)   # mean of 1/2 (y - t)^2

    loss = step(X, T)
    loss.backward()
    expected = numpy_gradients(X, T, *(p.data for p in params))
    worst = max(float(np.abs(p.grad - g).max()) for p, g in zip(params, expected))
    print(f"2-{args.hidden}-1 ReLU net: max |numpy hand-written - fastgrad| gradient "
          f"difference {worst:.2e}")

    opt = fg.optim.SGD(params, lr=args.lr, momentum=0.9)
    for k in range(args.steps):
        loss = step(X, T)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if k % 100 == 0 or k == args.steps - 1:
            print(f"step {k:4d} loss {loss.item():.6f}")

    with fg.no_grad():
        out = model(X).data.ravel()
    for x, t, o in zip(X, y, out):
        print(f"xor({x[0]:.0f}, {x[1]:.0f}) = {t}: output {o:.4f}")
    learned = bool(np.all((out > 0.5) == (y == 1)))
    print(f"XOR learned: {learned}")
    return out, learned, worst


if __name__ == "__main__":
    main()
