"""Scalar engines: micrograd 0.1.0, fastgrad.reference, fastgrad's compiled Value.

w1 builds micrograd's demo loss exactly as the notebook does (the same
code for every engine, only ``Value``/``MLP`` change)::

    inputs = [list(map(Value, xrow)) for xrow in X]
    scores = list(map(model, inputs))
    losses = [(1 + -yi*scorei).relu() for yi, scorei in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = alpha * sum((p*p for p in model.parameters()))
    total_loss = data_loss + reg_loss

An eager step builds that graph (~65,800 nodes), zeroes the grads, runs
backward and updates every parameter.  Rebinding the loss drops the previous
step's graph inside the timed region, as a training loop does: fastgrad frees
it by reference counting; micrograd's closures form cycles that wait for the
collector (off in the "GC off" rows, where it runs between batches, untimed).
The replay engine builds the graph once, lowers it with ``fastgrad.lower``
and then replays forward / zero_grad / backward / arena update; the
``scalar`` workload also times its forward and backward sweeps alone, and
the eager steps in parts.
"""

from __future__ import annotations

import random

from fastgrad.bench.harness import Engine, Skip, perf_counter

__all__ = ["MicrogradGCOn", "MicrogradGCOff", "ReferenceEngine", "FastgradEager",
           "FastgradEagerGCOn", "FastgradEagerGCOff", "FastgradReplay", "ReplayForward",
           "ReplayBackward", "W2ScalarReplay", "build_loss"]

MICROGRAD_PIP = "pip install micrograd==0.1.0"


def build_loss(model, Value, X, y, alpha):
    """micrograd's demo loss (the notebook's code, verbatim apart from names)."""
    inputs = [list(map(Value, xrow)) for xrow in X]
    scores = list(map(model, inputs))
    losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = alpha * sum((p * p for p in model.parameters()))
    total_loss = data_loss + reg_loss
    return total_loss


def _model(w, MLP):
    """MLP(2, [16, 16, 1]) after random.seed(seed); its weights must be the workload's."""
    random.seed(w.data["seed"])
    model = MLP(w.data["sizes"][0], w.data["sizes"][1:])
    got = [float(p.data) for p in model.parameters()]
    if got != w.data["flat"]:
        raise RuntimeError("the model's initial weights differ from micrograd's draws")
    return model


class _EagerScalar(Engine):
    """Rebuild the graph every step, as micrograd does.

    In a workload that times parts (``scalar``) ``run`` also times the three
    parts of each step: building the graph (which frees the previous one),
    zero_grad + backward, and the update.
    """

    min_batch = 1

    def _classes(self):
        raise NotImplementedError

    def setup(self):
        self.Value, MLP = self._classes()
        self.model = _model(self.w, MLP)
        self.params = self.model.parameters()
        self.X, self.y = self.w.data["X_list"], self.w.data["y_list"]
        self.alpha, self.lr = self.w.data["alpha"], self.w.lr
        self.last = None
        if self.w.parts:
            self.parts = ("build graph", "zero_grad + backward", "update")

    def _build(self):
        loss = build_loss(self.model, self.Value, self.X, self.y, self.alpha)
        self.last = loss            # drops the previous step's graph
        return loss

    def _backward(self, loss):
        self.model.zero_grad()
        loss.backward()

    def _update(self):
        lr = self.lr
        for p in self.params:
            p.data -= lr * p.grad

    def step(self):
        loss = self._build()
        self._backward(loss)
        self._update()
        return loss

    def run(self, n):
        if not self.parts:
            return super().run(n)
        build, backward, update = self._build, self._backward, self._update
        spent = [0.0, 0.0, 0.0]
        start = perf_counter()
        for _ in range(n):
            t0 = perf_counter()
            loss = build()
            t1 = perf_counter()
            backward(loss)
            t2 = perf_counter()
            update()
            t3 = perf_counter()
            spent[0] += t1 - t0
            spent[1] += t2 - t1
            spent[2] += t3 - t2
        elapsed = perf_counter() - start
        self.part_seconds = spent
        return elapsed

    def loss_value(self, out):
        return out.data

    def release(self):
        self.last = None


def _micrograd():
    try:
        from micrograd.engine import Value
        from micrograd.nn import MLP
    except ImportError:
        raise Skip("micrograd is not installed", MICROGRAD_PIP) from None
    return Value, MLP


class MicrogradGCOn(_EagerScalar):
    key, label, family = "micrograd_gc_on", "micrograd 0.1.0, GC on", "micrograd"
    note = ("micrograd GC on: the garbage collector on, as users run it; each timed batch "
            "starts after a gc.collect()")

    def setup(self):
        super().setup()
        # Batches of several steps so the collections the previous step's
        # cyclic garbage causes fall inside the timed region.
        self.min_batch = 1 if self.w.quick else 3

    def _classes(self):
        return _micrograd()


class MicrogradGCOff(_EagerScalar):
    key, label, family = "micrograd_gc_off", "micrograd 0.1.0, GC off", "micrograd"
    gc_off = True

    def _classes(self):
        return _micrograd()


class ReferenceEngine(_EagerScalar):
    key, label, family = "reference", "fastgrad.reference (pure Python), GC off", "reference"
    gc_off = True

    def _classes(self):
        from fastgrad.reference import MLP, Value
        return Value, MLP


class FastgradEager(_EagerScalar):
    """fastgrad.micrograd: the same Python code over the compiled Value; arena update."""

    key, label, family = "fastgrad_eager", "fastgrad eager scalar (fastgrad.micrograd)", \
        "fastgrad"

    def _classes(self):
        from fastgrad.micrograd import MLP, Value
        return Value, MLP

    def setup(self):
        super().setup()
        self.data = self.model.parameters_data()
        self.grad = self.model.parameters_grad()

    def _update(self):
        self.data -= self.lr * self.grad


class FastgradEagerGCOn(FastgradEager):
    """FastgradEager, labelled for the scalar workload, which also has it with GC off."""

    label = "fastgrad eager scalar (fastgrad.micrograd), GC on"


class FastgradEagerGCOff(FastgradEager):
    key = "fastgrad_eager_gc_off"
    label = "fastgrad eager scalar (fastgrad.micrograd), GC off"
    gc_off = True


class FastgradReplay(Engine):
    """The w1 graph built once with fastgrad.micrograd, lowered, replayed."""

    key, label, family = "fastgrad_replay", "fastgrad scalar tape replay", "fastgrad"
    show_first_call = True

    def setup(self):
        import fastgrad as fg
        from fastgrad.micrograd import MLP, Value

        w = self.w
        self.model = _model(w, MLP)
        self.data = self.model.parameters_data()
        self.grad = self.model.parameters_grad()
        t0 = perf_counter()
        self.loss = build_loss(self.model, Value, w.data["X_list"], w.data["y_list"],
                               w.data["alpha"])
        t1 = perf_counter()
        self.tape = fg.lower(self.loss)
        t2 = perf_counter()
        self.lr = w.lr
        stats = self.tape.stats()
        self.facts = {"instructions": stats["instructions"], "graph_nodes": stats["nodes"],
                      "build_s": t1 - t0, "lower_s": t2 - t1, "tape": repr(self.tape)}
        self.note = (f"fastgrad scalar tape replay: {len(self.tape)} instructions; first call "
                     f"= build the graph + lower it")

    def step(self):
        value = self.tape.forward()
        self.model.zero_grad()
        self.tape.backward()
        self.data -= self.lr * self.grad
        return value


class ReplayForward(FastgradReplay):
    """The replayed tape's forward sweep alone (the weights stay as they are)."""

    key, label = "fastgrad_replay_forward", "fastgrad scalar tape replay: forward only"
    show_first_call = False
    updates = False

    def setup(self):
        super().setup()
        self.note = ""

    def step(self):
        return self.tape.forward()


class ReplayBackward(ReplayForward):
    """The replayed tape's backward sweep alone (the gradients accumulate)."""

    key, label = "fastgrad_replay_backward", "fastgrad scalar tape replay: backward only"

    def setup(self):
        super().setup()
        self.value = self.tape.forward()

    def step(self):
        self.tape.backward()

    def loss_value(self, out):
        return self.value


class W2ScalarReplay(Engine):
    """Seed 003's net as fastgrad Values (6 + 3 weights), lowered once and replayed."""

    key, label, family = "fastgrad_scalar", "fastgrad scalar (Values, tape replay)", "fastgrad"
    show_first_call = True

    def setup(self):
        import fastgrad as fg
        from fastgrad.micrograd import ParameterArena

        d = self.w.data
        W1 = [[fg.Value(float(v)) for v in row] for row in d["W1"]]
        W2 = [fg.Value(float(row[0])) for row in d["W2"]]
        self.arena = ParameterArena([v for row in W1 for v in row] + W2)
        x0, x1 = (float(v) for v in d["x"][0])
        hidden = [x0 * W1[0][j] + x1 * W1[1][j] for j in range(3)]
        out = hidden[0] * W2[0] + hidden[1] * W2[1] + hidden[2] * W2[2]
        self.loss = 0.5 * (out - float(d["t"][0, 0])) ** 2
        self.tape = fg.lower(self.loss)
        self.data, self.grad, self.lr = self.arena.data, self.arena.grad, self.w.lr

    def step(self):
        value = self.tape.forward()
        self.grad.fill(0.0)
        self.tape.backward()
        self.data -= self.lr * self.grad
        return value


def micrograd_version() -> str | None:
    try:
        from importlib.metadata import version
        return version("micrograd")
    except Exception:
        return None
