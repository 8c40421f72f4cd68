"""Optimizers whose step is one compiled kernel per parameter dtype.

An optimizer updates its parameters where they live: parameters already in
an arena (a module's, a micrograd model's or another optimizer's) stay
there, so arrays handed out earlier (``p.data``, ``model.parameters_data()``)
keep working, and optimizers over overlapping subsets never fight over them.
Only parameters in no arena (bare tensors, fresh Values) are packed into a
new one when the optimizer is created: a tensor's ``.data`` then becomes a
view into it, so take ``p.data`` after creating the optimizer.

The parameters of one dtype that lie back to back in one arena (all of a
module's, or one layer's) are stepped through one view of it: ``step()`` is
one nogil loop over a flat buffer -- never a Python loop over parameters.  A
subset scattered over an arena is stepped one stretch at a time, or, when it
has many stretches, gathered into scratch buffers before the kernel and
written back after it.  Optimizers accept any tensors that require grad
(``SGD([W1, W2], lr=1e-5)``) and the scalar ``Value`` parameters of
``fastgrad.micrograd`` models.

Hyper-parameters are finite real numbers >= 0 (betas in [0, 1)); the
constructor and ``load_state_dict`` check them with the same code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from fastgrad._convert import checked_cast
from fastgrad._optim import adam_step, sgd_step
from fastgrad._value import Value
from fastgrad.nn.arena import TensorArena, home_of
from fastgrad.tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]

_ALL = slice(None)


class _Home:
    """Where one parameter lives: its ranges in an arena's flat buffers."""

    __slots__ = ("arena", "data", "grad", "start", "stop", "grad_view", "token")

    def __init__(self, arena, data, grad, start, stop, grad_view, token):
        self.arena, self.data, self.grad = arena, data, grad
        self.start, self.stop = start, stop
        self.grad_view = grad_view      # a tensor's home grad array (None for a Value)
        self.token = token              # what the parameter holds while it is at home


def _tensor_home(p: Tensor) -> _Home | None:
    found = home_of(p)
    if found is None:
        return None
    arena, i = found
    _, start, stop = arena.ranges[i]
    return _Home(arena, arena.data[p.dtype], arena.grad[p.dtype], start, stop,
                 arena.grad_views[i], arena.data_views[i])


def _value_home(p: Value) -> _Home | None:
    from fastgrad.micrograd import _home_of

    found = _home_of(p)
    if found is None:
        return None
    arena, i = found
    return _Home(arena, arena.data, arena.grad, i, i + 1, None, arena.buffer)


_MAX_RUNS = 32     # beyond this many pieces, gathering beats one kernel call per piece


class _Segment:
    """One dtype's parameters, in the optimizer's order, for the kernels.

    ``runs`` are (data, grad, state part) triples: views into the arenas the
    parameters live in -- one when they lie back to back there (``part`` is
    then the whole state array), else one per stretch of consecutive
    parameters (``part`` slices the state arrays).  With more stretches than
    _MAX_RUNS, the segment is ``gathered``: scratch arrays that gather() fills
    before a step and scatter() writes back after it.
    """

    def __init__(self, homes: list[_Home]):
        first = homes[0]
        self.dtype = first.data.dtype
        self.size = sum(h.stop - h.start for h in homes)
        self.gathered = False
        stretches: list[list] = []        # [data, grad, start, stop, offset in segment]
        offset = 0
        for h in homes:
            last = stretches[-1] if stretches else None
            if last is not None and last[0] is h.data and last[3] == h.start:
                last[3] = h.stop
            else:
                stretches.append([h.data, h.grad, h.start, h.stop, offset])
            offset += h.stop - h.start
        if len(stretches) == 1:
            d, g, a, b, _ = stretches[0]
            self.runs = [(d[a:b], g[a:b], _ALL)]
            return
        if len(stretches) <= _MAX_RUNS:
            self.runs = [(d[a:b], g[a:b], slice(o, o + b - a)) for d, g, a, b, o in stretches]
            return
        self.gathered = True
        self.data = np.empty(self.size, dtype=self.dtype)
        self.grad = np.empty(self.size, dtype=self.dtype)
        self.runs = [(self.data, self.grad, _ALL)]
        by_buffer: dict[int, tuple] = {}
        for d, g, a, b, o in stretches:
            entry = by_buffer.setdefault(id(d), (d, g, [], []))
            entry[2].append(np.arange(a, b))
            entry[3].append(np.arange(o, o + b - a))
        self.parts = [(d, g, np.concatenate(src), np.concatenate(dst))
                      for d, g, src, dst in by_buffer.values()]

    def gather(self) -> None:
        if self.gathered:
            for d, g, src, dst in self.parts:
                self.data[dst] = d[src]
                self.grad[dst] = g[src]

    def scatter(self) -> None:
        if self.gathered:
            for d, _, src, dst in self.parts:
                d[src] = self.data[dst]

    def zero_grad(self) -> None:
        if self.gathered:
            for _, g, src, _ in self.parts:
                g[src] = 0
            return
        for _, g, _ in self.runs:
            g.fill(0)


class _Params:
    """An optimizer's parameters, grouped into one segment per dtype."""

    def __init__(self, params: list, tensors: bool):
        self.params = params
        self.tensors = tensors
        self.shapes = [p.shape for p in params] if tensors else None
        self._resolve()

    def _resolve(self) -> None:
        find = _tensor_home if self.tensors else _value_home
        homes = [find(p) for p in self.params]
        if self.tensors:
            for i, (p, shape) in enumerate(zip(self.params, self.shapes)):
                if p.shape != shape:
                    raise ValueError(f"optimizer: parameter {i} changed shape from {shape} to "
                                     f"{p.shape}; create a new optimizer")
        homeless = [p for p, h in zip(self.params, homes) if h is None]
        if homeless:
            if self.tensors:
                arena = TensorArena(homeless)
            else:
                from fastgrad.micrograd import ParameterArena

                arena = ParameterArena(homeless)
            # find() reads the new arena back through a weak registry: the local
            # keeps it alive until self.arenas (below) holds it.
            homes = [h if h is not None else find(p) for p, h in zip(self.params, homes)]
            del arena
        self.homes = homes
        by_dtype: dict[np.dtype, list[int]] = {}
        for i, h in enumerate(homes):
            by_dtype.setdefault(h.data.dtype, []).append(i)
        self.segments = [_Segment([homes[i] for i in idx]) for idx in by_dtype.values()]
        self.where: list[tuple[int, int, int]] = [None] * len(homes)   # type: ignore
        for k, idx in enumerate(by_dtype.values()):
            offset = 0
            for i in idx:
                n = homes[i].stop - homes[i].start
                self.where[i] = (k, offset, offset + n)
                offset += n
        # (held: a registry of arenas is weak, and an arena made here has no other owner)
        self.arenas = list({id(h.arena): h.arena for h in homes}.values())

    def check(self) -> None:
        """Follow parameters that moved (a model re-packed them): O(parameters)."""
        if self.tensors:
            if all(p._data is h.token for p, h in zip(self.params, self.homes)):
                return
        elif all(a.valid for a in self.arenas) or all(
                p._home is h.token for p, h in zip(self.params, self.homes)):
            return
        self._resolve()

    def layout(self) -> list[tuple[np.dtype, int]]:
        """(dtype, length) of each segment: the shape of per-segment state."""
        return [(s.dtype, s.size) for s in self.segments]

    def sync_grads(self) -> list[int]:
        """Bring gradients set elsewhere (``p.grad = array``) home; the indices of
        tensors whose grad is None (their home grad is zeroed; steps skip them)."""
        self.check()
        if not self.tensors:
            return []
        missing = []
        for i, (p, h) in enumerate(zip(self.params, self.homes)):
            g = p.grad
            if g is h.grad_view:
                continue
            if g is None:
                h.grad_view[...] = 0
                missing.append(i)
                continue
            h.grad_view[...] = _grad_value(i, p, g)
            p.grad = h.grad_view
        return missing

    def begin(self) -> None:
        for s in self.segments:
            s.gather()

    def end(self) -> None:
        for s in self.segments:
            s.scatter()

    def piece(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Parameter i's (data, grad) as the kernels see them (after begin())."""
        k, start, stop = self.where[i]
        s = self.segments[k]
        if s.gathered:
            return s.data[start:stop], s.grad[start:stop]
        h = self.homes[i]
        return h.data[h.start:h.stop], h.grad[h.start:h.stop]

    def zero_grad(self) -> None:
        self.check()
        if self.tensors:
            for p, h in zip(self.params, self.homes):
                if p.grad is not h.grad_view:
                    p.grad = h.grad_view
        for s in self.segments:
            s.zero_grad()


def _grad_value(i: int, p: Tensor, g) -> np.ndarray:
    """A gradient assigned to parameter i (``p.grad = g``), checked before it is used."""
    where = f"optimizer: parameter {i}'s grad"
    if isinstance(g, (str, bytes)) or not isinstance(g, (np.ndarray, Tensor)):
        raise TypeError(f"{where} is a {type(g).__name__}, not an array")
    g = np.asarray(getattr(g, "_data", g))
    if g.dtype.kind not in "fiu":
        raise TypeError(f"{where} has dtype {g.dtype}; gradients are real numbers")
    if g.shape != p.shape:
        raise ValueError(f"{where} has shape {g.shape}, the parameter {p.shape}")
    return checked_cast(g, p.dtype, where)


def _real(where: str, name: str, value) -> float:
    """A hyper-parameter: a finite real number >= 0 (no bool, str, complex, NaN, inf)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise TypeError(f"{where}: {name} must be a real number, got {value!r} "
                        f"({type(value).__name__})")
    value = float(value)
    if not 0.0 <= value < math.inf:
        raise ValueError(f"{where}: invalid {name} {value} (must be a finite number >= 0)")
    return value


def _flag(where: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be True or False, got {value!r}")
    return bool(value)


class Optimizer:
    """Base class: holds the parameters' segments and per-segment state.

    Subclasses name their hyper-parameters' checks in ``_check_defaults``
    (run by both the constructor and ``load_state_dict``) and their state
    buffers in ``_state_keys``.
    """

    # state key -> whether its values must be >= 0 (all must be finite)
    _state_keys: dict[str, bool] = {}

    def __init__(self, params: Iterable, defaults: dict):
        name = type(self).__name__
        if isinstance(params, (Tensor, Value)):
            raise TypeError(f"{name}: params must be a list of parameters, got a single "
                            f"{type(params).__name__} (write [p])")
        params = list(params)
        if not params:
            raise ValueError(f"{name}: got an empty parameter list")
        self.defaults = self._check_defaults(defaults, name)
        seen: dict[int, int] = {}
        for i, p in enumerate(params):
            if id(p) in seen:
                raise ValueError(f"{name}: parameter {i} is parameter {seen[id(p)]} again")
            seen[id(p)] = i
        if all(isinstance(p, Value) for p in params):
            for i, p in enumerate(params):
                if p._prev:
                    raise ValueError(f"{name}: parameter {i} ({p!r}) is not a leaf Value "
                                     f"(it was computed by {p._op!r})")
            self._group = _Params(params, tensors=False)
        elif all(isinstance(p, Tensor) for p in params):
            for i, p in enumerate(params):
                if not p.requires_grad or not p.is_leaf:
                    raise ValueError(f"{name}: parameter {i} (shape {p.shape}) is not a leaf "
                                     f"that requires grad")
            self._group = _Params(params, tensors=True)
        else:
            kinds = sorted({type(p).__name__ for p in params})
            raise TypeError(f"{name}: parameters must be all Tensors or all Values, got "
                            f"{kinds}")
        self.state: dict[str, object] = {"step": 0}
        for key in self._state_keys:
            self.state[key] = [np.zeros(n, dtype=dt) for dt, n in self._group.layout()]

    @classmethod
    def _check_defaults(cls, defaults: dict, where: str) -> dict:
        """The checked hyper-parameters (subclasses check theirs; raise on a bad one)."""
        return dict(defaults)

    @property
    def params(self) -> list:
        return self._group.params

    @property
    def lr(self) -> float:
        """The learning rate (settable between steps, e.g. for a schedule)."""
        return self.defaults["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.defaults["lr"] = _real(type(self).__name__, "learning rate", value)

    def _run(self, kernel) -> None:
        """Call kernel(segment index, (data, grad), state slice) over all
        parameters -- one call per segment (per stretch of a scattered
        subset), or per parameter for the parameters that have a gradient
        when some have none (grad None: skipped, as torch.optim does)."""
        group = self._group
        missing = group.sync_grads()
        group.begin()
        try:
            if not missing:
                for k, segment in enumerate(group.segments):
                    for data, grad, part in segment.runs:
                        kernel(k, (data, grad), part)
                return
            skip = set(missing)
            for i, (k, start, stop) in enumerate(group.where):
                if i not in skip:
                    kernel(k, group.piece(i), slice(start, stop))
        finally:
            group.end()

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero all gradients in place (one fill per segment)."""
        if set_to_none and self._group.tensors:
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
        """Restore ``state_dict()``'s output.

        It is checked as strictly as the constructor checks its arguments:
        exactly the keys state_dict() gives, hyper-parameters the constructor
        would take, a step count that is an int >= 0, and per segment one
        finite float array of the segment's dtype and length.  Nothing
        changes unless everything fits.
        """
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, Mapping):
            raise TypeError(f"{name}: expected a mapping (an optimizer's state_dict()), got "
                            f"{type(state).__name__}")
        _check_keys(name, "state", state, {"defaults", "step", *self._state_keys})
        defaults = state["defaults"]
        if not isinstance(defaults, Mapping):
            raise TypeError(f"{name}: 'defaults' must be a mapping, got "
                            f"{type(defaults).__name__}")
        _check_keys(name, "defaults", defaults, set(self.defaults))
        defaults = self._check_defaults(dict(defaults), name)
        step = state["step"]
        if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"{name}: 'step' must be an int, got {step!r}")
        if step < 0:
            raise ValueError(f"{name}: 'step' must be >= 0, got {step}")
        new_state: dict[str, object] = {"step": int(step)}
        layout = self._group.layout()
        for key, nonnegative in self._state_keys.items():
            new_state[key] = _state_arrays(name, key, state[key], layout, nonnegative)
        self.defaults = defaults
        self.state = new_state

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({len(self.params)} parameters, {args})"


def _check_keys(where: str, what: str, given: Mapping, expected: set) -> None:
    missing = sorted(expected - set(given))
    unknown = sorted((k for k in given if k not in expected), key=repr)
    if missing or unknown:
        parts = ([f"missing keys {missing}"] if missing else []) + \
                ([f"unknown keys {unknown}"] if unknown else [])
        raise ValueError(f"{where}: {what} has {'; '.join(parts)} (expected "
                         f"{sorted(expected)})")


def _state_arrays(where: str, key: str, value, layout, nonnegative: bool) -> list:
    """Copies of state buffer `key`'s arrays, checked against the segments' layout."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{where}: '{key}' must be a list of arrays (one per parameter "
                        f"dtype), got {type(value).__name__}")
    if len(value) != len(layout):
        raise ValueError(f"{where}: '{key}' has {len(value)} arrays but the parameters "
                         f"have {len(layout)} dtype segment(s)")
    arrays = []
    for k, (a, (dt, n)) in enumerate(zip(value, layout)):
        label = f"'{key}'[{k}]"
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{where}: {label} must be a numpy array, got {type(a).__name__}")
        if a.dtype != dt:
            raise TypeError(f"{where}: {label} has dtype {a.dtype}, the parameters {dt}")
        if a.shape != (n,):
            raise ValueError(f"{where}: {label} has shape {a.shape}, the parameters need "
                             f"({n},)")
        bad = ~np.isfinite(a)
        if nonnegative:
            bad |= a < 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            need = "finite and >= 0" if nonnegative else "finite"
            raise ValueError(f"{where}: {label} holds {a[i]} at index {i}; it must be {need}")
        arrays.append(np.array(a, copy=True))
    return arrays


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's momentum, dampening, Nesterov and weight decay."""

    _state_keys = {"momentum_buffer": False}

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    @classmethod
    def _check_defaults(cls, d: dict, where: str) -> dict:
        out = dict(lr=_real(where, "learning rate", d["lr"]),
                   momentum=_real(where, "momentum", d["momentum"]),
                   dampening=_real(where, "dampening", d["dampening"]),
                   weight_decay=_real(where, "weight_decay", d["weight_decay"]),
                   nesterov=_flag(where, "nesterov", d["nesterov"]))
        if out["nesterov"] and (out["momentum"] <= 0 or out["dampening"] != 0):
            raise ValueError(f"{where}: Nesterov momentum needs momentum > 0 and dampening 0, "
                             f"got momentum={out['momentum']}, dampening={out['dampening']}")
        return out

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
    _state_keys = {"exp_avg": False, "exp_avg_sq": True}

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @classmethod
    def _check_defaults(cls, d: dict, where: str) -> dict:
        betas = d["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{where}: betas must be a pair (beta1, beta2), got {betas!r}")
        b1, b2 = (_real(where, f"beta{i + 1}", b) for i, b in enumerate(betas))
        if not (b1 < 1 and b2 < 1):
            raise ValueError(f"{where}: betas must be in [0, 1), got {tuple(betas)}")
        return dict(lr=_real(where, "learning rate", d["lr"]), betas=(b1, b2),
                    eps=_real(where, "eps", d["eps"]),
                    weight_decay=_real(where, "weight_decay", d["weight_decay"]))

    def step(self) -> None:
        d = self.defaults
        b1, b2 = d["betas"]
        step, m, v = self.state["step"] + 1, self.state["exp_avg"], self.state["exp_avg_sq"]

        def kernel(k, pair, part):
            data, grad = pair
            mk, vk = (m[k], v[k]) if part is _ALL else (m[k][part], v[k][part])
            adam_step(data, grad, mk, vk, d["lr"], b1, b2, d["eps"],
                      d["weight_decay"], step, self._decoupled)

        self._run(kernel)
        self.state["step"] = step


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), default 1e-2 as in PyTorch."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
