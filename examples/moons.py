"""micrograd's demo -- a 2-16-16-1 MLP on two moons -- trained through a lowered tape.

The graph is built once with micrograd's own code (Neuron, Layer, MLP and
the SVM max-margin loss), lowered with ``fastgrad.lower``, and then each
step only replays the compiled tape:

    tape.forward(); model.zero_grad(); tape.backward(); data -= lr * grad

With ``--tensor`` the same model and loss are written with tensors: a
``fastgrad.nn.MLP``, ``F.hinge_loss`` plus 1e-4 L2, one ``fastgrad.compile``-d
step and ``fastgrad.optim.SGD`` with micrograd's decaying learning rate:

    loss, scores = step(X, y); opt.zero_grad(); loss.backward(); opt.step()

``--plot PATH`` saves the decision boundary and the loss curve as a PNG
(needs matplotlib: pip install fastgrad[plot]).

Run:  python examples/moons.py [--steps 100] [--seed 1337] [--eager] [--tensor]
                               [--plot moons.png]
"""

from __future__ import annotations

import argparse
import random
import sys
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


def tensor_accuracy(y, scores) -> float:
    return float(np.mean((y > 0) == (scores > 0)))


def require_matplotlib():
    """pyplot with a file-only backend, or exit with a clear message."""
    try:
        import matplotlib
    except ImportError:
        sys.exit("--plot needs matplotlib, which is not installed: pip install matplotlib "
                 "(or pip install fastgrad[plot])")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plot(path, X, y, losses, predict, title):
    """Decision boundary (left) and loss curve (right) as one PNG."""
    plt = require_matplotlib()
    h = 0.05
    x_min, x_max = X[:, 0].min() - 1, X[:, 0].max() + 1
    y_min, y_max = X[:, 1].min() - 1, X[:, 1].max() + 1
    xx, yy = np.meshgrid(np.arange(x_min, x_max, h), np.arange(y_min, y_max, h))
    grid = np.c_[xx.ravel(), yy.ravel()]
    Z = (predict(grid) > 0).reshape(xx.shape)

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.contourf(xx, yy, Z, cmap=plt.cm.Spectral, alpha=0.8)
    left.scatter(X[:, 0], X[:, 1], c=y, s=40, cmap=plt.cm.Spectral, edgecolors="k")
    left.set_xlim(xx.min(), xx.max())
    left.set_ylim(yy.min(), yy.max())
    left.set_title(f"decision boundary ({title})")
    right.plot(np.arange(len(losses)), losses)
    right.set_yscale("log")
    right.set_xlabel("step")
    right.set_ylabel("loss (SVM max-margin + L2)")
    right.set_title("training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"saved the decision boundary and loss curve to {path}")


def run_scalar(args, X, y):
    """micrograd's Values, the graph lowered once to a tape (or rebuilt: --eager)."""
    model = MLP(2, [16, 16, 1])
    print(f"fastgrad {fg.__version__}: {model}"[:100] + " ...")
    print(f"{len(model.parameters())} parameters")

    data, grad = model.parameters_data(), model.parameters_grad()
    loss, scores = build(model, X, y)
    tape = None if args.eager else fg.lower(loss)
    if tape is not None:
        print(repr(tape))

    losses = []
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
        losses.append(value)
        lr = 1.0 - 0.9 * k / args.steps
        data -= lr * grad
        if k % 10 == 0 or k == args.steps - 1:
            print(f"step {k:3d} loss {value:.6f}, accuracy {accuracy(y, scores) * 100:.0f}%")
    elapsed = time.perf_counter() - start
    print(f"{args.steps} steps in {elapsed * 1e3:.1f} ms "
          f"({elapsed / args.steps * 1e6:.1f} us per step, "
          f"{'eager' if tape is None else 'tape replay'})")

    def predict(points):
        return np.array([model([Value(float(a)), Value(float(b))]).data for a, b in points])

    return value, accuracy(y, scores), losses, predict


def run_tensor(args, X, y):
    """The same model as tensors: fg.nn.MLP, one compiled step, fused SGD."""
    import fastgrad.nn.functional as F

    model = fg.nn.MLP(2, [16, 16, 1])          # initialised from numpy's seeded state
    params = model.parameters()
    print(f"fastgrad {fg.__version__}: {' '.join(repr(model).split())}"[:100] + " ...")
    print(f"{sum(p.size for p in params)} parameters")
    Xf = np.ascontiguousarray(X, dtype=np.float64)
    yf = y.astype(np.float64)
    alpha = 1e-4

    def loss_fn(X, y):
        scores = model(X).reshape(-1)
        data_loss = F.hinge_loss(scores, y)    # mean relu(1 - y * score)
        reg_loss = sum((p * p).sum() for p in params) * alpha
        return data_loss + reg_loss, scores

    step = loss_fn if args.eager else fg.compile(loss_fn)
    opt = fg.optim.SGD(params, lr=1.0)
    losses = []
    start = time.perf_counter()
    for k in range(args.steps):
        loss, scores = step(Xf, yf)
        value = loss.item()
        opt.zero_grad()
        loss.backward()
        opt.lr = 1.0 - 0.9 * k / args.steps
        opt.step()
        losses.append(value)
        if k == 0 and not args.eager:
            print(repr(step))
        if k % 10 == 0 or k == args.steps - 1:
            print(f"step {k:3d} loss {value:.6f}, "
                  f"accuracy {tensor_accuracy(y, scores.data) * 100:.0f}%")
    elapsed = time.perf_counter() - start
    print(f"{args.steps} steps in {elapsed * 1e3:.1f} ms "
          f"({elapsed / args.steps * 1e6:.1f} us per step, "
          f"{'eager tensors' if args.eager else 'compiled tensor step'})")

    def predict(points):
        with fg.no_grad():
            return model(points).data.ravel()

    return value, tensor_accuracy(y, scores.data), losses, predict


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--eager", action="store_true",
                        help="rebuild the graph every step, as micrograd does")
    parser.add_argument("--tensor", action="store_true",
                        help="tensors: fg.nn.MLP + fg.compile + fg.optim.SGD")
    parser.add_argument("--plot", metavar="PATH",
                        help="save the decision boundary and loss curve as a PNG")
    args = parser.parse_args(argv)
    if args.plot:
        require_matplotlib()                   # fail before training, not after

    random.seed(args.seed)
    np.random.seed(args.seed)
    X, y = make_moons(n_samples=100, noise=0.1, random_state=args.seed)
    y = y * 2 - 1                       # labels -1 / +1 for the SVM loss
    run = run_tensor if args.tensor else run_scalar
    value, acc, losses, predict = run(args, X, y)
    if args.plot:
        save_plot(args.plot, X, y, losses, predict, "tensors" if args.tensor else "scalars")
    return value, acc


if __name__ == "__main__":
    main()
