"""The workloads: data, initial weights, loss and learning rate, shared by every engine.

Every engine of a workload starts from the arrays built here (copies, so
engines never share state) and computes the same loss, so the harness can
check their losses against fastgrad's before timing them.  Weight layout
is fastgrad's: a layer is ``x @ W + b`` with ``W`` of shape ``(nin, nout)``.

- **w1** micrograd's demo step: MLP 2-16-16-1 (ReLU, last layer linear),
  100 two-moons points (noise 0.1, labels -1/+1), SVM max-margin loss
  ``mean(relu(1 - y * score)) + 1e-4 * sum(p * p)`` over all parameters,
  SGD lr 0.1, float64.  The weights are micrograd's: ``random.seed(1337)``
  then ``random.uniform(-1, 1)`` per weight in micrograd's order, biases 0.
- **w2** seed 003's 2-3-1 linear net: ``x = (40, 80)``, target 60,
  ``L = 1/2 (y - y')^2``, W1 2x3 all 0.5, W2 3x1 all 1.0, SGD lr 1e-5, float64.
- **w3** MLP 784-256-128-10 (ReLU), batch 128, float32, softmax
  cross-entropy (mean), SGD lr 0.1; PyTorch's Linear initialisation.
- **w4** MLP 1024-1024-1024-1024 (ReLU), batch 512, float32, MSE (mean over
  all 512 x 1024 outputs), SGD lr 1 (the mean makes the gradients small; at
  lr 1 the first update changes the loss by ~1e-3, enough for the
  cross-check to test the gradients in float32).
- **ops** a chain of N elementwise ops on (4,) float64 arrays,
  ``y = y * a`` and ``y = y + b`` alternately, timed per op.
- **scalar** w1 again, for its scalar engines only and in more detail: the
  eager steps timed in parts (build the graph, zero_grad + backward,
  update), fastgrad eager with the collector on and off, and the replayed
  tape's forward and backward sweeps alone, from which the report derives
  the time per tape instruction and per graph node.  Run on request only.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Workload", "WORKLOADS", "build"]

SEED = 1337


@dataclass
class Workload:
    key: str
    title: str
    dtype: str
    baseline: str                   # engine key every ratio and check refers to
    unit: str = "step"              # what one timed sample measures
    # (engine key, heading) of an extra column: that engine's time over each row's
    versus: tuple[str, str] | None = None
    parts: bool = False             # engines that can, time the parts of a step
    lr: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    layers: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    quick: bool = False

    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Fresh copies of the initial (W, b) of every layer."""
        return [(W.copy(), b.copy()) for W, b in self.layers]


def micrograd_weights(sizes: list[int], seed: int) -> tuple[list, list[float]]:
    """micrograd's initial weights after ``random.seed(seed)``, as (W, b) per layer.

    micrograd draws ``random.uniform(-1, 1)`` for each neuron's weights, neuron
    after neuron, layer after layer; biases are 0.  Also returns the flat
    parameter list in micrograd's ``parameters()`` order (to check engines).
    """
    rng = random.Random(seed)
    layers, flat = [], []
    for nin, nout in zip(sizes[:-1], sizes[1:]):
        W = np.zeros((nin, nout))
        for j in range(nout):
            for i in range(nin):
                W[i, j] = rng.uniform(-1, 1)
            flat.extend(W[:, j].tolist())
            flat.append(0.0)
        layers.append((W, np.zeros(nout)))
    return layers, flat


def torch_style_weights(sizes: list[int], dtype, rng: np.random.Generator) -> list:
    """PyTorch's Linear initialisation: W and b from U(-1/sqrt(nin), 1/sqrt(nin))."""
    layers = []
    for nin, nout in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(nin)
        W = rng.uniform(-bound, bound, (nin, nout)).astype(dtype)
        b = rng.uniform(-bound, bound, (nout,)).astype(dtype)
        layers.append((W, b))
    return layers


def _w1(quick: bool) -> Workload:
    from fastgrad.datasets import make_moons

    X, y = make_moons(100, noise=0.1, random_state=SEED)
    y = (y * 2 - 1).astype(np.float64)
    sizes = [2, 16, 16, 1]
    layers, flat = micrograd_weights(sizes, SEED)
    data = {
        "X": np.ascontiguousarray(X, dtype=np.float64), "y": y,
        # Python floats for the scalar engines (plain floats are micrograd's
        # fastest input; the notebook passes numpy scalars, which is slower).
        "X_list": [[float(v) for v in row] for row in X], "y_list": [float(v) for v in y],
        "alpha": 1e-4, "sizes": sizes, "seed": SEED, "flat": flat,
    }
    return Workload("w1", "micrograd demo step: MLP 2-16-16-1, 100 moons, SVM loss + 1e-4 L2, "
                    "SGD lr 0.1, float64", "float64", "fastgrad_compiled",
                    versus=("micrograd_gc_off", "speed-up vs micrograd GC off"), lr=0.1,
                    data=data, layers=layers)


def _w2(quick: bool) -> Workload:
    data = {"x": np.array([[40.0, 80.0]]), "t": np.array([[60.0]]),
            "W1": np.full((2, 3), 0.5), "W2": np.full((3, 1), 1.0)}
    return Workload("w2", "seed 003 step: linear net 2-3-1 (no biases), x = (40, 80), "
                    "target 60, L = (y - y')^2 / 2, SGD lr 1e-5, float64", "float64",
                    "fastgrad_compiled", lr=1e-5, data=data)


def _w3(quick: bool) -> Workload:
    rng = np.random.default_rng(SEED)
    sizes, batch = [784, 256, 128, 10], 128
    data = {"X": rng.random((batch, sizes[0]), dtype=np.float32),
            "y": rng.integers(0, sizes[-1], batch).astype(np.int64), "sizes": sizes}
    layers = torch_style_weights(sizes, np.float32, rng)
    return Workload("w3", "MLP 784-256-128-10, batch 128, float32, cross-entropy, SGD lr 0.1",
                    "float32", "fastgrad_compiled", lr=0.1, data=data, layers=layers)


def _w4(quick: bool) -> Workload:
    rng = np.random.default_rng(SEED + 4)
    sizes, batch = [1024, 1024, 1024, 1024], 512
    data = {"X": rng.standard_normal((batch, sizes[0]), dtype=np.float32),
            "T": rng.standard_normal((batch, sizes[-1]), dtype=np.float32), "sizes": sizes}
    layers = torch_style_weights(sizes, np.float32, rng)
    return Workload("w4", "MLP 1024-1024-1024-1024, batch 512, float32, MSE, SGD lr 1 "
                    "(8 GEMMs a step)", "float32", "fastgrad_compiled", lr=1.0,
                    data=data, layers=layers)


def _ops(quick: bool) -> Workload:
    n = 1000
    data = {"n_ops": n, "x": np.linspace(0.5, 2.0, 4), "a": np.full(4, 0.5),
            "b": np.full(4, 0.5)}
    return Workload("ops", f"per-op overhead: a chain of {n} elementwise ops (y*a, y+b "
                    f"alternately) on (4,) float64 arrays, time per op", "float64",
                    "fastgrad_tape_forward", unit="op", data=data)


def _scalar(quick: bool) -> Workload:
    return dataclasses.replace(
        _w1(quick), key="scalar", baseline="fastgrad_replay", parts=True,
        title="w1's scalar engines in detail: step parts, GC on and off, replay sweeps, "
              "time per tape instruction and per graph node")


WORKLOADS = {"w1": _w1, "w2": _w2, "w3": _w3, "w4": _w4, "ops": _ops, "scalar": _scalar}


def build(key: str, quick: bool = False) -> Workload:
    w = WORKLOADS[key](quick)
    w.quick = quick
    return w
