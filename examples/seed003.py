"""Seed 003: a 2-3-1 linear network by hand -- one forward, one backward, one SGD step.

No biases, no activations.  Input x = (40, 80), target 60, loss
L = 1/2 (y - t)^2, learning rate 1e-5.  Every layer-1 weight is 0.5 and
every layer-2 weight is 1.0, so each hidden unit is 40*0.5 + 80*0.5 = 60,
the output is 180 and L = 1/2 * 120^2 = 7200.

The chain rule gives dL/dy = 120; a layer-2 weight's gradient is
120 * 60 = 7200; a layer-1 weight's is 120 * 1.0 * x_i: 4800 from x1 and
9600 from x2.  One SGD step then moves layer 2 to 1 - 1e-5 * 7200 = 0.928
and layer 1 to 0.452 (from x1) and 0.404 (from x2).

Run:  python examples/seed003.py
"""

from __future__ import annotations

import numpy as np

import fastgrad as fg


def main(argv=None):
    x = fg.tensor([[40.0, 80.0]], label="x")                 # one sample, 2 features
    t = fg.tensor([[60.0]], label="t")
    W1 = fg.full((2, 3), 0.5, requires_grad=True, label="W1")  # layer 1: 2 -> 3
    W2 = fg.full((3, 1), 1.0, requires_grad=True, label="W2")  # layer 2: 3 -> 1
    opt = fg.optim.SGD([W1, W2], lr=1e-5)

    z = x @ W1                      # hidden units z1, z2, z3
    y = z @ W2                      # the prediction y'
    loss = 0.5 * ((y - t) ** 2).sum()
    print(f"hidden z = {z.data.ravel().tolist()}")
    print(f"output y' = {y.item():g}")
    print(f"loss L = {loss.item():g}")

    opt.zero_grad()
    loss.backward()
    print(f"dL/dy' = {y.item() - t.item():g}")
    print(f"grad W2 (layer 2) = {W2.grad.ravel().tolist()}")
    print(f"grad W1 row x1 = {W1.grad[0].tolist()}")
    print(f"grad W1 row x2 = {W1.grad[1].tolist()}")

    opt.step()
    print("after one SGD step (lr 1e-5):")
    print(f"W2 = {np.round(W2.data.ravel(), 12).tolist()}")
    print(f"W1 row x1 = {np.round(W1.data[0], 12).tolist()}")
    print(f"W1 row x2 = {np.round(W1.data[1], 12).tolist()}")
    return loss.item(), W1.grad.copy(), W2.grad.copy(), W1.data.copy(), W2.data.copy()


if __name__ == "__main__":
    main()
