"""Modules: parameters, layers and models with PyTorch's conventions.

``Linear.weight`` has shape ``(nin, nout)`` and the layer computes
``x @ weight + bias`` (the seeds' ``Y = X·W``).  When the outermost module's
``__init__`` returns, its parameters are moved into one arena per dtype
(see fastgrad.nn.arena), so ``zero_grad`` is one fill and an optimizer step
one kernel call.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from math import sqrt

import numpy as np

from fastgrad.nn.arena import TensorArena
from fastgrad._convert import checked_cast, from_objects
from fastgrad.tensor import Tensor, _F32, _F64, _new

__all__ = ["Parameter", "Module", "Linear", "MLP", "Sequential", "ReLU", "Tanh",
           "Sigmoid", "Identity"]

_building = threading.local()

# Bumped whenever any module registers a parameter: a module's arena covers
# its parameters only if nothing was registered since it packed (else it
# checks, and re-packs if it has to).
_registrations = [0]


def Parameter(data, dtype=None, label: str | None = None) -> Tensor:
    """A leaf tensor that requires grad (what modules register as parameters)."""
    from fastgrad.tensor import tensor

    t = tensor(data, dtype=dtype, requires_grad=True, label=label)
    return t


def _float_dtype(dtype, name: str) -> np.dtype:
    try:
        dt = np.dtype(dtype if dtype is not None else "float64")
    except TypeError as exc:
        raise TypeError(f"{name}: {dtype!r} is not a dtype: {exc}") from None
    if dt not in (_F32, _F64):
        raise TypeError(f"{name}: dtype must be float32 or float64, got {dt}")
    return dt


def _size(value, name: str, what: str) -> int:
    """A layer size: an int >= 0 (numpy ints too; no bool, float or str)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: {what} must be an int >= 0, got {value!r} "
                        f"({type(value).__name__})")
    if value < 0:
        raise ValueError(f"{name}: {what} must be >= 0, got {value}")
    return int(value)


def _generator(generator, name: str):
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(f"{name}: generator must be a numpy.random.Generator or None, got "
                        f"{type(generator).__name__}")
    return generator


def _state_value(name: str, raw, p: Tensor) -> np.ndarray:
    """State-dict entry `name` as an array of p's shape and dtype, or raise."""
    where = f"load_state_dict: '{name}'"
    if isinstance(raw, (str, bytes)):
        raise TypeError(f"{where} is a {type(raw).__name__}, not an array of numbers")
    try:
        value = np.asarray(getattr(raw, "_data", raw))
    except ValueError as exc:
        raise ValueError(f"{where} is not a rectangular array: {exc}") from None
    if value.dtype == object:
        value = from_objects(value, p.dtype, raw, where)
    if value.dtype.kind not in "fiu":
        raise TypeError(f"{where} has dtype {value.dtype}; parameters take real numbers")
    if value.shape != p.shape:
        raise ValueError(f"{where} has shape {value.shape} in the state dict but {p.shape} "
                         f"in the module")
    if not p._data.flags.writeable:
        raise ValueError(f"{where}: the parameter's array is read-only")
    return checked_cast(value, p.dtype, where)


class Module:
    """Base class: register Tensors that require grad and sub-Modules as attributes."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_arena", None)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def __init__(self, *args, **kw):
            depth = getattr(_building, "depth", 0)
            _building.depth = depth + 1
            try:
                init(self, *args, **kw)
            finally:
                _building.depth = depth
            if depth == 0:
                self.pack()

        cls.__init__ = __init__

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before assigning "
                f"attributes in __init__")
        params, modules = self._parameters, self._modules
        params.pop(name, None)
        modules.pop(name, None)
        if isinstance(value, Tensor) and value.requires_grad and value.is_leaf:
            params[name] = value
            _registrations[0] += 1
        elif isinstance(value, Module):
            modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    # -- traversal ------------------------------------------------------------

    def modules(self) -> Iterator[Module]:
        """This module, then its sub-modules depth-first in registration order."""
        stack: list[Module] = [self]
        seen: set[int] = set()
        while stack:
            m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield m
            stack.extend(reversed(list(m._modules.values())))

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        stack: list[tuple[str, Module]] = [(prefix, self)]
        seen: set[int] = set()
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            children = [(f"{name}.{k}" if name else k, c) for k, c in m._modules.items()]
            stack.extend(reversed(children))

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        for prefix, m in self.named_modules():
            for name, p in m._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self) -> list[Tensor]:
        return [p for _, p in self.named_parameters()]

    def children(self) -> Iterator[Module]:
        return iter(self._modules.values())

    # -- arena ------------------------------------------------------------------

    def pack(self) -> TensorArena | None:
        """Move all parameters into one arena per dtype (done after __init__)."""
        params = self.parameters()
        arena = TensorArena(params) if params else None
        object.__setattr__(self, "_arena", arena)
        object.__setattr__(self, "_packed_at", _registrations[0])
        return arena

    def _arena_covers_parameters(self) -> bool:
        arena = self._arena
        if arena is None or not arena.intact():
            return False
        if self.__dict__.get("_packed_at") == _registrations[0]:
            return True
        if arena.owns(self.parameters()):
            object.__setattr__(self, "_packed_at", _registrations[0])
            return True
        return False

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero every parameter's grad in place (one fill per dtype when packed)."""
        if set_to_none:
            for p in self.parameters():
                p.grad = None
            return
        if self._arena_covers_parameters():
            self._arena.zero_grad()
            return
        for p in self.parameters():
            if p.grad is not None:
                p.grad[...] = 0

    # -- state --------------------------------------------------------------------

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Parameter name -> a copy of its data."""
        return OrderedDict((name, p._data.copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays into the parameters (in place: arenas and tapes stay valid).

        With ``strict`` (the default) a missing or unexpected key is an error.
        A shape mismatch, a value that is not real numbers (complex, bool,
        str, object) and a value the parameter's dtype cannot hold (beyond
        float32's range) always are.  Nothing is changed unless every entry fits.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict: expected a mapping of parameter names to "
                            f"arrays, got {type(state).__name__}")
        if not isinstance(strict, (bool, np.bool_)):
            raise TypeError(f"load_state_dict: strict must be True or False, got {strict!r}")
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise ValueError(f"load_state_dict: {'; '.join(parts)}")
        updates = []
        for name, p in own.items():
            if name in state:
                updates.append((p, _state_value(name, state[name], p)))
        for p, value in updates:
            p._data[...] = value

    # -- mode and calling ---------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in self._modules.items():
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        if len(lines) == 1:
            return lines[0] + ")"
        return "\n".join(lines) + "\n)"


class Linear(Module):
    """``y = x @ weight + bias`` with ``weight`` of shape ``(nin, nout)``.

    Initialised as PyTorch's Linear (Kaiming-uniform: weight and bias from
    U(-1/sqrt(nin), 1/sqrt(nin))), drawn from numpy's global random state
    unless a ``np.random.Generator`` is passed.
    """

    def __init__(self, nin: int, nout: int, bias: bool = True, dtype="float64",
                 generator: np.random.Generator | None = None):
        super().__init__()
        self.nin, self.nout = _size(nin, "Linear", "nin"), _size(nout, "Linear", "nout")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"Linear: bias must be True or False, got {bias!r}")
        dt = _float_dtype(dtype, "Linear")
        generator = _generator(generator, "Linear")
        bound = 1.0 / sqrt(self.nin) if self.nin > 0 else 0.0
        uniform = generator.uniform if generator is not None else np.random.uniform
        self.weight = Parameter(np.asarray(uniform(-bound, bound, (self.nin, self.nout)), dtype=dt))
        self.bias = Parameter(np.asarray(uniform(-bound, bound, (self.nout,)), dtype=dt)) \
            if bias else None

    def forward(self, x):
        y = x @ self.weight if isinstance(x, Tensor) else _as_input(x, self.weight) @ self.weight
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return f"{self.nin}, {self.nout}, bias={self.bias is not None}, dtype={self.weight.dtype}"


def _as_input(x, like: Tensor) -> Tensor:
    arr = np.asarray(x)
    dt = like.dtype if arr.dtype.kind in "fiub" else None
    return _new(np.array(arr, dtype=dt, order="C"))


class ReLU(Module):
    def forward(self, x):
        return x.relu()


class Tanh(Module):
    def forward(self, x):
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x):
        return x.sigmoid()


class Identity(Module):
    def forward(self, x):
        return x


_ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, None: None}


class Sequential(Module):
    """Modules applied in order."""

    def __init__(self, *layers: Module):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: item {i} is a {type(layer).__name__}, not a Module")
            setattr(self, str(i), layer)

    def __iter__(self):
        return iter(self._modules.values())

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x


class MLP(Sequential):
    """``Linear`` layers ``nin -> nouts[0] -> ... -> nouts[-1]``.

    ``activation`` ("relu", "tanh", "sigmoid" or None) follows every layer
    but the last, which is linear, as in micrograd.
    """

    def __init__(self, nin: int, nouts, activation: str | None = "relu", dtype="float64",
                 generator: np.random.Generator | None = None):
        if not (activation is None or isinstance(activation, str)) \
                or activation not in _ACTIVATIONS:
            raise ValueError(f"MLP: activation must be 'relu', 'tanh', 'sigmoid' or None, "
                             f"got {activation!r}")
        if isinstance(nouts, (str, bytes, dict, set)) or not isinstance(nouts, Iterable):
            raise TypeError(f"MLP: nouts must be a list of layer sizes, got {nouts!r}")
        sizes = [_size(nin, "MLP", "nin")] + [_size(n, "MLP", f"nouts[{i}]")
                                              for i, n in enumerate(nouts)]
        if len(sizes) < 2:
            raise ValueError("MLP: nouts must name at least one layer size")
        _float_dtype(dtype, "MLP")
        _generator(generator, "MLP")
        layers: list[Module] = []
        for i in range(len(sizes) - 1):
            layers.append(Linear(sizes[i], sizes[i + 1], dtype=dtype, generator=generator))
            if i < len(sizes) - 2 and activation is not None:
                layers.append(_ACTIVATIONS[activation]())
        super().__init__(*layers)
        object.__setattr__(self, "activation", activation)
