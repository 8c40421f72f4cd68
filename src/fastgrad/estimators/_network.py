"""The live fastgrad objects behind a fitted estimator: network, optimizer, compiled step."""

from __future__ import annotations

import numpy as np


class _Network:
    """The live fastgrad objects behind a fitted estimator (never pickled)."""

    def __init__(self, sizes, activation, dtype, solver, hyper, loss_kind, alpha):
        import fastgrad as fg

        self.sizes = tuple(sizes)
        self.dtype = np.dtype(dtype)
        # Initial values are overwritten by the estimator's own draws; a fixed
        # generator keeps numpy's global random state untouched.
        self.module = fg.nn.MLP(sizes[0], list(sizes[1:]), activation=activation,
                                dtype=self.dtype, generator=np.random.default_rng(0))
        self.layers = [m for m in self.module.modules() if isinstance(m, fg.nn.Linear)]
        self.params = [t for layer in self.layers for t in (layer.weight, layer.bias)]
        self.solver = solver
        if solver == "adam":
            self.optimizer = fg.optim.Adam(self.params, lr=hyper["lr"],
                                           betas=(hyper["beta_1"], hyper["beta_2"]),
                                           eps=hyper["epsilon"])
        else:
            momentum = hyper["momentum"]
            self.optimizer = fg.optim.SGD(self.params, lr=hyper["lr"], momentum=momentum,
                                          nesterov=bool(hyper["nesterov"]) and momentum > 0)
        self.step = _compiled_step(self.module, [layer.weight for layer in self.layers],
                                   loss_kind, alpha)

    @property
    def coefs(self):
        return [layer.weight.data for layer in self.layers]

    @property
    def intercepts(self):
        return [layer.bias.data for layer in self.layers]

    def snapshot(self):
        return [p.data.copy() for p in self.params]

    def restore(self, arrays):
        for p, a in zip(self.params, arrays):
            p.data[...] = a

    def forward(self, X):
        """The network's outputs for X (a 2-D array of the network's dtype)."""
        import fastgrad as fg

        with fg.no_grad():
            return self.module(X).data

    def train_batch(self, xb, yb) -> float:
        loss = self.step(xb, yb)
        value = float(loss.item())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if self.step.cache_info().traces > 16:      # many partial_fit batch sizes
            self.step.cache_clear()
        return value


def _compiled_step(module, weights, loss_kind, alpha):
    """loss(xb, yb) = data loss + alpha/2 * sum ||W||^2 / batch (scikit-learn's loss)."""
    import fastgrad as fg
    import fastgrad.nn.functional as F

    @fg.compile
    def step(xb, yb):
        out = module(xb)
        if loss_kind == "cross_entropy":
            loss = F.cross_entropy(out, yb)
        else:
            loss = F.mse_loss(out, yb) * 0.5
        if alpha > 0:
            penalty = (weights[0] * weights[0]).sum()
            for w in weights[1:]:
                penalty = penalty + (w * w).sum()
            loss = loss + penalty * (0.5 * alpha / xb.shape[0])
        return loss

    return step
