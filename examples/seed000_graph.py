"""Seed 000 (and 002): one labelled neuron, its gradients, and its drawing.

Leaves x1 = 2, x2 = 0, w1 = -3, w2 = 1, b = 6.8814 and
y = x1*w1 + x2*w2 + b = 0.8814.  Backward: the sums pass dy = 1 straight
through, so dy/dx1 = w1 = -3, dy/dw1 = x1 = 2, dy/dx2 = w2 = 1,
dy/dw2 = x2 = 0 and dy/db = 1.  Each analytic derivative is compared with
the one-sided difference (f(a + h) - f(a)) / h that seed 000 starts from.

If ``fastgrad.viz`` is available, the graph is printed as mermaid (seed
002's drawing: one box per value, ``label | data 2.0000 | grad -3.0000``).

Run:  python examples/seed000_graph.py [--h 1e-6]
"""

from __future__ import annotations

import argparse
import importlib

import fastgrad as fg

START = {"x1": 2.0, "x2": 0.0, "w1": -3.0, "w2": 1.0, "b": 6.8814}


def neuron(values):
    """The neuron built from labelled Values; returns (leaves, y)."""
    v = {name: fg.Value(x, label=name) for name, x in values.items()}
    x1w1 = v["x1"] * v["w1"]
    x1w1.label = "x1*w1"
    x2w2 = v["x2"] * v["w2"]
    x2w2.label = "x2*w2"
    s = x1w1 + x2w2
    s.label = "x1*w1 + x2*w2"
    y = s + v["b"]
    y.label = "y"
    return v, y


def f(values) -> float:
    """The same function on plain floats (for the numerical derivative)."""
    return values["x1"] * values["w1"] + values["x2"] * values["w2"] + values["b"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--h", type=float, default=1e-6, help="finite-difference step")
    args = parser.parse_args(argv)

    leaves, y = neuron(START)
    y.backward()
    print(f"y = x1*w1 + x2*w2 + b = {y.data:.4f}")
    print(f"{'leaf':>4} {'data':>8} {'grad':>8} {'numerical':>12} {'|difference|':>13}")
    worst = 0.0
    for name, leaf in leaves.items():
        bumped = dict(START, **{name: START[name] + args.h})
        numerical = (f(bumped) - f(START)) / args.h
        diff = abs(numerical - leaf.grad)
        worst = max(worst, diff)
        print(f"{name:>4} {leaf.data:8.4f} {leaf.grad:8.4f} {numerical:12.6f} {diff:13.2e}")
    print(f"max |analytic - numerical| = {worst:.2e} (h = {args.h:g})")

    try:
        viz = importlib.import_module("fastgrad.viz")
    except ImportError:
        print("(fastgrad.viz is not available: skipping the mermaid drawing)")
    else:
        print("mermaid drawing of the graph:")
        print(viz.to_mermaid(y))
    return {name: leaf.grad for name, leaf in leaves.items()}, worst


if __name__ == "__main__":
    main()
