"""micrograd's demo -- a 2-16-16-1 MLP on two moons -- trained through a lowered tape.

The graph is built once with micrograd's own code (Neuron, Layer, MLP and
the SVM max-margin loss), lowered with ``fastgrad.lower``, and then each
step only replays the compiled tape:

    tape.forward(); model.zero_grad(); tape.backward(); data -= lr * grad

Run:  python examples/moons.py [--steps 100] [--seed 1337] [--eager]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

import fastgrad as fg
from fastgrad.datasets import make_moons
from fastgrad.micrograd import MLP, Value


def build(model, X, y, alpha=1e-4):
    """micrograd's loss: mean SVM max-margin + alpha * L2, and the scores."""
    inputs = [[Value(float(v)) for v in row] for row in X]
    scores = [model(x) for x in inputs]
    losses = [(1 + -float(yi) * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = alpha * sum(p * p for p in model.parameters())
    total = data_loss + reg_loss
    total.label = "loss"
    return total, scores


def accuracy(y, scores):
    return float(np.mean([(yi > 0) == (s.data > 0) for yi, s in zip(y, scores)]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--eager", action="store_true",
                        help="rebuild the graph every step, as micrograd does")
    args = parser.parse_args(argv)

    random.seed(args.seed)
    np.random.seed(args.seed)
    X, y = make_moons(n_samples=100, noise=0.1, random_state=args.seed)
    y = y * 2 - 1                       # labels -1 / +1 for the SVM loss
    model = MLP(2, [16, 16, 1])
    print(f"fastgrad {fg.__version__}: {model}"[:100] + " ...")
    print(f"{len(model.parameters())} parameters")

    data, grad = model.parameters_data(), model.parameters_grad()
    loss, scores = build(model, X, y)
    tape = None if args.eager else fg.lower(loss)
    if tape is not None:
        print(repr(tape))

    start = time.perf_counter()
    for k in range(args.steps):
        if tape is None:
            if k:
                loss, scores = build(model, X, y)
            value = loss.data
            model.zero_grad()
            loss.backward()
        else:
            value = tape.forward()
            model.zero_grad()
            tape.backward()
        lr = 1.0 - 0.9 * k / args.steps
        data -= lr * grad
        if k % 10 == 0 or k == args.steps - 1:
            print(f"step {k:3d} loss {value:.6f}, accuracy {accuracy(y, scores) * 100:.0f}%")
    elapsed = time.perf_counter() - start
    print(f"{args.steps} steps in {elapsed * 1e3:.1f} ms "
          f"({elapsed / args.steps * 1e6:.1f} us per step, "
          f"{'eager' if tape is None else 'tape replay'})")
    return value, accuracy(y, scores)


if __name__ == "__main__":
    main()
