"""Handwritten digits (8x8, 10 classes) with a one-hidden-layer MLP: >= 95 % test accuracy.

The plain fastgrad loop: a ``fastgrad.nn.MLP`` 64-64-10, softmax
cross-entropy in one ``fastgrad.compile``-d step (traced once per batch
shape, then replayed), ``fastgrad.optim.Adam`` over the parameter arena:

    loss = step(xb, yb); opt.zero_grad(); loss.backward(); opt.step()

With ``--estimator`` the same training goes through the scikit-learn
interface, ``fastgrad.estimators.MLPClassifier``.  Pixels are scaled to
[0, 1]; a fixed 25 % of the images (--seed) is held out for testing.
Needs scikit-learn for the data (pip install fastgrad[sklearn]).

Run:  python examples/digits.py [--epochs 30] [--hidden 64] [--batch-size 32]
                                [--lr 1e-3] [--seed 0] [--estimator]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastgrad as fg
import fastgrad.nn.functional as F
from fastgrad.datasets import load_digits


def split(X, y, test_fraction, seed):
    order = np.random.default_rng(seed).permutation(len(X))
    n_test = int(round(len(X) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]


def train_loop(args, X_train, y_train, X_test, y_test):
    rng = np.random.default_rng(args.seed)
    model = fg.nn.MLP(64, [args.hidden, 10], activation="relu", generator=rng)
    opt = fg.optim.Adam(model.parameters(), lr=args.lr)

    @fg.compile
    def step(xb, yb):
        return F.cross_entropy(model(xb), yb)

    def test_accuracy():
        with fg.no_grad():
            return float(np.mean(np.argmax(model(X_test).data, axis=1) == y_test))

    n = len(X_train)
    for epoch in range(args.epochs):
        order = rng.permutation(n)
        total = 0.0
        for start in range(0, n, args.batch_size):
            rows = order[start:start + args.batch_size]
            loss = step(X_train[rows], y_train[rows])
            total += loss.item() * len(rows)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 5 == 0 or epoch == args.epochs - 1:
            print(f"epoch {epoch + 1:3d} loss {total / n:.4f} "
                  f"test accuracy {test_accuracy():.4f}")
    print(f"compiled step: {step.cache_info().traces} traces "
          f"(one per batch shape), {step.cache_info().hits} replays")
    return test_accuracy()


def train_estimator(args, X_train, y_train, X_test, y_test):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from fastgrad.estimators import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(args.hidden,), max_iter=args.epochs,
                        batch_size=args.batch_size, learning_rate_init=args.lr,
                        random_state=args.seed)
    with warnings.catch_warnings():             # stopping at max_iter is the plan here
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    for epoch in range(0, clf.n_iter_, 5):
        print(f"epoch {epoch + 1:3d} loss {clf.loss_curve_[epoch]:.4f}")
    print(f"epoch {clf.n_iter_:3d} loss {clf.loss_curve_[-1]:.4f}")
    print(repr(clf))
    return float(clf.score(X_test, y_test))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--estimator", action="store_true",
                        help="train through fastgrad.estimators.MLPClassifier")
    args = parser.parse_args(argv)

    X, y = load_digits()
    X = X / 16.0                                # pixels 0..16 -> [0, 1]
    X_train, X_test, y_train, y_test = split(X, y, 0.25, args.seed)
    print(f"digits: {len(X_train)} training and {len(X_test)} test images, "
          f"MLP 64-{args.hidden}-10, {args.epochs} epochs")
    start = time.perf_counter()
    run = train_estimator if args.estimator else train_loop
    accuracy = run(args, X_train, y_train, X_test, y_test)
    elapsed = time.perf_counter() - start
    print(f"test accuracy: {accuracy:.4f} ({elapsed:.2f} s)")
    return accuracy


if __name__ == "__main__":
    main()
