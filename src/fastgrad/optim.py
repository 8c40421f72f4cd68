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

_ALL = slice(None)


class _ValueParams:
    """micrograd-style scalar parameters, viewed through their arena arrays."""

    def __init__(self, params: list[Value]):
        from fastgrad.micrograd import _ARENA_OF_BUFFER

        arena = _ARENA_OF_BUFFER.get(id(params[0]._home)) if params[0]._home is not None else None
        self.params = params
        self.arena = arena if arena is not None and arena.valid and arena.params == params \
            else self._pack()

    def _pack(self):
        from fastgrad.micrograd import ParameterArena

        return ParameterArena(self.params)

    def buffers(self):
        if not self.arena.valid:        # another arena took the parameters: take them back
            self.arena = self._pack()
        return [(self.arena.data, self.arena.grad)]

    def zero_grad(self) -> None:
        self.buffers()
        self.arena.grad.fill(0)

    def sync_grads(self) -> list[int]:
        return []

    def slices(self, i: int):
        return 0, i, i + 1


class _TensorParams:
    def __init__(self, params: list[Tensor]):
        self.arena = arena_of(params) or TensorArena(params)
        self.params = params

    def buffers(self):
        arena = self.arena
        if not arena.intact():
            # A parameter moved (another optimizer or module packed it, or its
            # shape changed): bring them all home again.
            shapes = [p.shape for p in self.params]
            if shapes != [v.shape for v in arena.data_views]:
                raise ValueError("optimizer: a parameter changed shape; create a new optimizer")
            arena = self.arena = TensorArena(self.params)
        return arena.pairs

    def zero_grad(self) -> None:
        self.buffers()
        self.arena.zero_grad()

    def sync_grads(self) -> list[int]:
        self.buffers()          # re-homes first if a parameter moved
        return self.arena.sync_grads()

    def slices(self, i: int):
        """(buffer index, start, stop) of parameter i within buffers()."""
        dt, start, stop = self.arena.ranges[i]
        return list(self.arena.data).index(dt), start, stop


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

    @property
    def lr(self) -> float:
        """The learning rate (settable between steps, e.g. for a schedule)."""
        return self.defaults["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        if not value >= 0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate {value}")
        self.defaults["lr"] = float(value)

    def _run(self, kernel) -> None:
        """Call kernel(buffer index, (data, grad), state slice) over all
        parameters -- one call per buffer, or per parameter slice for the
        parameters that have a gradient when some have none (grad None:
        skipped, as torch.optim does)."""
        missing = self._group.sync_grads()
        buffers = self._group.buffers()
        if not missing:
            for k, pair in enumerate(buffers):
                kernel(k, pair, _ALL)
            return
        skip = set(missing)
        for i in range(len(self._group.params)):
            if i in skip:
                continue
            k, start, stop = self._group.slices(i)
            data, grad = buffers[k]
            kernel(k, (data[start:stop], grad[start:stop]), slice(start, stop))

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
        if not lr >= 0:
            raise ValueError(f"SGD: invalid learning rate {lr}")
        if not (momentum >= 0 and weight_decay >= 0 and dampening >= 0):
            raise ValueError(f"SGD: momentum, dampening and weight_decay must be >= 0, got "
                             f"{momentum}, {dampening}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))
        self.state["momentum_buffer"] = [np.zeros_like(d) for d, _ in self._group.buffers()]

    def step(self) -> None:
        d = self.defaults
        first = self.state["step"] == 0
        buffers = self.state["momentum_buffer"]

        def kernel(k, pair, part):
            data, grad = pair
            buf = buffers[k] if part is _ALL else buffers[k][part]
            sgd_step(data, grad, buf, d["lr"], d["momentum"], d["dampening"],
                     d["weight_decay"], d["nesterov"], first)

        self._run(kernel)
        self.state["step"] += 1


class Adam(Optimizer):
    """Adam (Kingma & Ba) with PyTorch's update; weight_decay adds to the gradient."""

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        b1, b2 = betas
        if not (lr >= 0 and eps >= 0 and 0 <= b1 < 1 and 0 <= b2 < 1 and weight_decay >= 0):
            raise ValueError(f"{type(self).__name__}: invalid hyper-parameters lr={lr}, "
                             f"betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=weight_decay))
        self.state["exp_avg"] = [np.zeros_like(d) for d, _ in self._group.buffers()]
        self.state["exp_avg_sq"] = [np.zeros_like(d) for d, _ in self._group.buffers()]

    def step(self) -> None:
        d = self.defaults
        self.state["step"] += 1
        b1, b2 = d["betas"]
        step, m, v = self.state["step"], self.state["exp_avg"], self.state["exp_avg_sq"]

        def kernel(k, pair, part):
            data, grad = pair
            mk, vk = (m[k], v[k]) if part is _ALL else (m[k][part], v[k][part])
            adam_step(data, grad, mk, vk, d["lr"], b1, b2, d["eps"],
                      d["weight_decay"], step, self._decoupled)

        self._run(kernel)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), default 1e-2 as in PyTorch."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
