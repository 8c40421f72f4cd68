"""fastgrad's tensor engines: compiled steps, the bare-GEMM floor, the per-op tape.

A compiled step is what a user writes (issue 5)::

    @fg.compile
    def step(X, y):
        return loss_of(model(X), y)

    loss = step(X, y); opt.zero_grad(); loss.backward(); opt.step()

``step`` is traced and lowered on its first call ("first call" in the
table: building the model, tracing, lowering and the first step), then
every call replays the tape; ``opt.step()`` is one kernel over the
parameters' arena.
"""

from __future__ import annotations

import numpy as np

from fastgrad.bench.harness import Engine

__all__ = ["CompiledW1", "CompiledW2", "CompiledW3", "CompiledW4", "GemmFloor",
           "TapeForward", "TapeBackward"]


def _load_layers(model, layers) -> None:
    """Copy the workload's (W, b) into a fastgrad MLP's Linear layers, in place."""
    import fastgrad as fg

    linears = [m for m in model.modules() if isinstance(m, fg.nn.Linear)]
    if len(linears) != len(layers):
        raise RuntimeError(f"model has {len(linears)} Linear layers, workload {len(layers)}")
    for lin, (W, b) in zip(linears, layers):
        lin.weight.data[...] = W
        lin.bias.data[...] = b


class _Compiled(Engine):
    key, family = "fastgrad_compiled", "fastgrad"
    label = "fastgrad tensor compiled (@fg.compile + SGD)"
    show_first_call = True

    def _loss(self, model, params, F):
        raise NotImplementedError

    def _inputs(self):
        raise NotImplementedError

    def _model(self, fg):
        sizes = self.w.data["sizes"]
        model = fg.nn.MLP(sizes[0], sizes[1:], dtype=self.w.dtype)
        _load_layers(model, self.w.weights())
        return model

    def setup(self):
        import fastgrad as fg
        import fastgrad.nn.functional as F

        model = self._model(fg)
        params = model.parameters()
        self.fstep = fg.compile(self._loss(model, params, F))
        self.opt = fg.optim.SGD(params, lr=self.w.lr)
        self.args = self._inputs()

    def step(self):
        loss = self.fstep(*self.args)
        opt = self.opt
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    def loss_value(self, out):
        return out.item()


class CompiledW1(_Compiled):
    def _loss(self, model, params, F):
        alpha = self.w.data["alpha"]

        def svm_loss(X, y):
            scores = model(X).reshape(-1)
            data_loss = F.hinge_loss(scores, y)          # mean(relu(1 - y * score))
            reg_loss = sum((p * p).sum() for p in params) * alpha
            return data_loss + reg_loss

        return svm_loss

    def _inputs(self):
        return self.w.data["X"], self.w.data["y"]


class CompiledW2(_Compiled):
    def setup(self):
        import fastgrad as fg

        d = self.w.data
        W1 = fg.tensor(d["W1"].copy(), requires_grad=True, label="W1")
        W2 = fg.tensor(d["W2"].copy(), requires_grad=True, label="W2")

        @fg.compile
        def half_squared_error(x, t):
            y = x @ W1 @ W2
            return ((y - t) ** 2).sum() * 0.5

        self.fstep = half_squared_error
        self.opt = fg.optim.SGD([W1, W2], lr=self.w.lr)
        self.args = (d["x"], d["t"])


class CompiledW3(_Compiled):
    def _loss(self, model, params, F):
        def cross_entropy(X, y):
            return F.cross_entropy(model(X), y)
        return cross_entropy

    def _inputs(self):
        return self.w.data["X"], self.w.data["y"]


class CompiledW4(_Compiled):
    def _loss(self, model, params, F):
        def mse(X, T):
            return F.mse_loss(model(X), T)
        return mse

    def _inputs(self):
        return self.w.data["X"], self.w.data["T"]


def gemm_shapes(sizes, batch):
    """The 8 GEMMs of an MLP step (3 layers) as (A, B, C, trans_a, trans_b) shapes.

    Forward ``H_k = H_{k-1} @ W_k``; backward ``dW_k = H_{k-1}^T @ dZ_k`` and
    ``dH_{k-1} = dZ_k @ W_k^T`` for k = 3, 2, and ``dW_1 = X^T @ dZ_1``
    (no gradient for the input X).
    """
    s0, s1, s2, s3 = sizes
    B = batch
    return [
        ((B, s0), (s0, s1), (B, s1), False, False),   # Z1 = X @ W1
        ((B, s1), (s1, s2), (B, s2), False, False),   # Z2 = H1 @ W2
        ((B, s2), (s2, s3), (B, s3), False, False),   # Z3 = H2 @ W3
        ((B, s2), (B, s3), (s2, s3), True, False),    # dW3 = H2^T @ dZ3
        ((B, s3), (s2, s3), (B, s2), False, True),    # dH2 = dZ3 @ W3^T
        ((B, s1), (B, s2), (s1, s2), True, False),    # dW2 = H1^T @ dZ2
        ((B, s2), (s1, s2), (B, s1), False, True),    # dH1 = dZ2 @ W2^T
        ((B, s0), (B, s1), (s0, s1), True, False),    # dW1 = X^T @ dZ1
    ]


class GemmFloor(Engine):
    """The step's 8 GEMMs alone, through fastgrad's own BLAS wrapper (the floor)."""

    key, family = "fastgrad_gemms", "fastgrad"
    label = "8 bare GEMMs via fastgrad._blas (floor)"
    has_loss = False

    def setup(self):
        from fastgrad._blas import _gemm_test

        rng = np.random.default_rng(0)
        dt = np.dtype(self.w.dtype)
        batch = self.w.data["X"].shape[0]
        self.calls = []
        for a, b, c, ta, tb in gemm_shapes(self.w.data["sizes"], batch):
            self.calls.append((rng.standard_normal(a).astype(dt), rng.standard_normal(b).astype(dt),
                               np.zeros(c, dt), ta, tb))
        self.gemm = _gemm_test

    def step(self):
        gemm = self.gemm
        for A, B, C, ta, tb in self.calls:
            gemm(A, B, C, ta, tb)


def _ops_tape(w):
    import fastgrad as fg

    d = w.data
    x = fg.tensor(d["x"].copy(), requires_grad=True, label="x")
    a = fg.tensor(d["a"].copy(), requires_grad=True, label="a")
    b = fg.tensor(d["b"].copy(), requires_grad=True, label="b")
    y = x
    for i in range(d["n_ops"]):
        y = y * a if i % 2 == 0 else y + b
    root = y.sum()
    return fg.lower(root)


class TapeForward(Engine):
    """A replayed tape of N elementwise ops on (4,) arrays: forward sweep."""

    key, family = "fastgrad_tape_forward", "fastgrad"
    label = "fastgrad tape replay, forward"
    show_first_call = True

    def setup(self):
        self.tape = _ops_tape(self.w)
        self.per_step = self.w.data["n_ops"]
        self.note = (f"fastgrad tape: {len(self.tape)} instructions ({self.per_step} ops + the "
                     f"final sum); time per op = sweep time / {self.per_step}; first call = "
                     f"build the graph + lower it")

    def step(self):
        return self.tape.forward()

    def loss_value(self, out):
        return out.item()


class TapeBackward(TapeForward):
    """The same tape's reverse sweep (gradients accumulate into x, a, b)."""

    key, label = "fastgrad_tape_backward", "fastgrad tape replay, backward"
    show_first_call = False

    def setup(self):
        super().setup()
        self.note = ""
        self.value = self.tape.forward().item()

    def step(self):
        self.tape.backward()

    def loss_value(self, out):
        return self.value
