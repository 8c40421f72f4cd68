"""Optimizers whose step is one compiled kernel per parameter dtype.

An optimizer keeps its parameters in a TensorArena (reusing the module's
when given exactly a module's parameters), so ``step()`` is one nogil loop
over flat buffers -- never a Python loop over parameters.  They accept any
tensors that require grad (``SGD([W1, W2], lr=1e-5)``) and the scalar
``Value`` parameters of ``fastgrad.micrograd`` models.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from fastgrad._optim import adam_step, sgd_step
from fastgrad._value import Value
from fastgrad.nn.arena import TensorArena, arena_of
from fastgrad.tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]


class _ValueParams:
    """micrograd-style scalar parameters, viewed through their arena arrays."""

    def __init__(self, params: list[Value]):
        from fastgrad.micrograd import ParameterArena, _ARENA_OF_BUFFER

        arena = _ARENA_OF_BUFFER.get(id(params[0]._home)) if params[0]._home is not None else None
        if arena is None or not arena.valid or arena.params != params:
            arena = ParameterArena(params)
        self.arena = arena
        self.params = params

    def buffers(self):
        return [(self.arena.data, self.arena.grad)]

    def zero_grad(self) -> None:
        self.arena.grad.fill(0)

    def sync_grads(self) -> None:
        pass


class _TensorParams:
    def __init__(self, params: list[Tensor]):
        self.arena = arena_of(params) or TensorArena(params)
        self.params = params

    def buffers(self):
        return [(self.arena.data[dt], self.arena.grad[dt]) for dt in self.arena.data]

    def zero_grad(self) -> None:
        self.arena.zero_grad()

    def sync_grads(self) -> None:
        self.arena.sync_grads()


class Optimizer:
    """Base class: holds the parameters' arena and per-buffer state."""

    def __init__(self, params: Iterable, defaults: dict):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if all(isinstance(p, Value) for p in params):
            self._group = _ValueParams(params)
        elif all(isinstance(p, Tensor) for p in params):
            for i, p in enumerate(params):
                if not p.requires_grad:
                    raise ValueError(f"{type(self).__name__}: parameter {i} (shape {p.shape}) "
                                     f"does not require grad")
            self._group = _TensorParams(params)
        else:
            kinds = sorted({type(p).__name__ for p in params})
            raise TypeError(f"{type(self).__name__}: parameters must be all Tensors or all "
                            f"Values, got {kinds}")
        self.defaults = dict(defaults)
        self.state: dict[str, object] = {"step": 0}

    @property
    def params(self) -> list:
        return self._group.params

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero all gradients in place (one fill per buffer)."""
        if set_to_none and isinstance(self._group, _TensorParams):
            for p in self._group.params:
                p.grad = None
            return
        self._group.zero_grad()

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Hyper-parameters and state buffers (arrays are copies)."""
        out = {"defaults": dict(self.defaults), "step": int(self.state["step"])}
        for key, value in self.state.items():
            if key != "step":
                out[key] = [np.array(v, copy=True) for v in value]
        return out

    def load_state_dict(self, state: dict) -> None:
        if "step" not in state or "defaults" not in state:
            raise ValueError(f"{type(self).__name__}.load_state_dict: not an optimizer state "
                             f"(needs 'step' and 'defaults')")
        buffers = self._group.buffers()
        new_state: dict[str, object] = {"step": int(state["step"])}
        for key, value in state.items():
            if key in ("step", "defaults"):
                continue
            arrays = list(value)
            if len(arrays) != len(buffers) or any(
                    np.shape(a) != d.shape for a, (d, _) in zip(arrays, buffers)):
                raise ValueError(f"{type(self).__name__}.load_state_dict: state '{key}' does "
                                 f"not match the parameters' buffers")
            new_state[key] = [np.array(a, dtype=d.dtype) for a, (d, _) in zip(arrays, buffers)]
        self.defaults.update(state["defaults"])
        self.state = new_state

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({len(self.params)} parameters, {args})"


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's momentum, dampening, Nesterov and weight decay."""

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        if lr < 0:
            raise ValueError(f"SGD: invalid learning rate {lr}")
        if momentum < 0 or weight_decay < 0:
            raise ValueError("SGD: momentum and weight_decay must be >= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))
        self.state["momentum_buffer"] = [np.zeros_like(d) for d, _ in self._group.buffers()]

    def step(self) -> None:
        d = self.defaults
        self._group.sync_grads()
        first = self.state["step"] == 0
        for (data, grad), buf in zip(self._group.buffers(), self.state["momentum_buffer"]):
            sgd_step(data, grad, buf, d["lr"], d["momentum"], d["dampening"],
                     d["weight_decay"], d["nesterov"], first)
        self.state["step"] += 1


class Adam(Optimizer):
    """Adam (Kingma & Ba) with PyTorch's update; weight_decay adds to the gradient."""

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        b1, b2 = betas
        if lr < 0 or eps < 0 or not (0 <= b1 < 1 and 0 <= b2 < 1) or weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: invalid hyper-parameters lr={lr}, "
                             f"betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=weight_decay))
        self.state["exp_avg"] = [np.zeros_like(d) for d, _ in self._group.buffers()]
        self.state["exp_avg_sq"] = [np.zeros_like(d) for d, _ in self._group.buffers()]

    def step(self) -> None:
        d = self.defaults
        self._group.sync_grads()
        self.state["step"] += 1
        b1, b2 = d["betas"]
        for (data, grad), m, v in zip(self._group.buffers(), self.state["exp_avg"],
                                      self.state["exp_avg_sq"]):
            adam_step(data, grad, m, v, d["lr"], b1, b2, d["eps"], d["weight_decay"],
                      self.state["step"], self._decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), default 1e-2 as in PyTorch."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
