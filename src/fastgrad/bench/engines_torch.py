"""PyTorch eager: autograd on plain tensors and ``torch.optim.SGD``, as users write it.

Parameters are leaf tensors in fastgrad's layout (``x @ W + b`` with ``W`` of
shape ``(nin, nout)``), so every engine starts from the very same arrays.
A step is ``opt.zero_grad(); loss = f(...); loss.backward(); opt.step()``.
torch's thread counts are set by the harness (``torch.set_num_threads``).
"""

from __future__ import annotations

from fastgrad.bench.harness import Engine, Skip

__all__ = ["TorchW1", "TorchW2", "TorchW3", "TorchW4", "TorchOp", "torch_or_skip"]

TORCH_PIP = "pip install torch"


def torch_or_skip():
    try:
        import torch
    except ImportError:
        raise Skip("PyTorch is not installed", TORCH_PIP) from None
    return torch


class _Torch(Engine):
    key, family = "torch", "torch"
    label = "PyTorch eager (autograd + torch.optim.SGD)"

    def _leaf(self, array):
        return self.torch.from_numpy(array.copy()).requires_grad_(True)

    def _const(self, array):
        return self.torch.from_numpy(array.copy())

    def setup(self):
        torch = self.torch = torch_or_skip()
        self.params = [self._leaf(a) for layer in self.w.weights() for a in layer]
        self.opt = torch.optim.SGD(self.params, lr=self.w.lr)
        self.inputs()

    def inputs(self):
        raise NotImplementedError

    def loss(self):
        raise NotImplementedError

    def step(self):
        opt = self.opt
        opt.zero_grad()
        loss = self.loss()
        loss.backward()
        opt.step()
        return loss

    def loss_value(self, out):
        return out.item()


class TorchW1(_Torch):
    def inputs(self):
        self.X, self.y = self._const(self.w.data["X"]), self._const(self.w.data["y"])
        self.alpha = self.w.data["alpha"]

    def loss(self):
        torch = self.torch
        W1, b1, W2, b2, W3, b3 = self.params
        h = torch.relu(self.X @ W1 + b1)
        h = torch.relu(h @ W2 + b2)
        scores = (h @ W3 + b3).reshape(-1)
        data_loss = torch.relu(1 - self.y * scores).mean()
        reg_loss = self.alpha * sum((p * p).sum() for p in self.params)
        return data_loss + reg_loss


class TorchW2(_Torch):
    def setup(self):
        torch = self.torch = torch_or_skip()
        d = self.w.data
        self.params = [self._leaf(d["W1"]), self._leaf(d["W2"])]
        self.opt = torch.optim.SGD(self.params, lr=self.w.lr)
        self.x, self.t = self._const(d["x"]), self._const(d["t"])

    def loss(self):
        W1, W2 = self.params
        y = self.x @ W1 @ W2
        return ((y - self.t) ** 2).sum() * 0.5


class _TorchMLP(_Torch):
    def forward(self, X):
        torch = self.torch
        W1, b1, W2, b2, W3, b3 = self.params
        h = torch.relu(X @ W1 + b1)
        h = torch.relu(h @ W2 + b2)
        return h @ W3 + b3


class TorchW3(_TorchMLP):
    def inputs(self):
        self.X, self.y = self._const(self.w.data["X"]), self._const(self.w.data["y"])

    def loss(self):
        return self.torch.nn.functional.cross_entropy(self.forward(self.X), self.y)


class TorchW4(_TorchMLP):
    def inputs(self):
        self.X, self.T = self._const(self.w.data["X"]), self._const(self.w.data["T"])

    def loss(self):
        return self.torch.nn.functional.mse_loss(self.forward(self.X), self.T)


class TorchOp(Engine):
    """The ops chain as torch.mul / torch.add calls on (4,) tensors with out= (no autograd)."""

    key, family = "torch_op", "torch"
    label = "PyTorch op with out= (per op, no autograd)"

    def setup(self):
        torch = self.torch = torch_or_skip()
        d = self.w.data
        self.n = self.per_step = d["n_ops"]
        self.x, self.a, self.b = (torch.from_numpy(d[k].copy()) for k in ("x", "a", "b"))
        self.y = torch.empty_like(self.x)

    def step(self):
        torch = self.torch
        y, a, b, mul, add = self.y, self.a, self.b, torch.mul, torch.add
        y.copy_(self.x)
        for _ in range(self.n // 2):
            mul(y, a, out=y)
            add(y, b, out=y)
        return float(y.sum())
