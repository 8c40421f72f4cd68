"""micrograd's API, backed by fastgrad's compiled Value.

``from fastgrad.micrograd import Value, MLP`` replaces
``from micrograd.engine import Value; from micrograd.nn import MLP``: the
constructors, the weight draws (``random.uniform(-1, 1)`` in micrograd's
order) and the forward expressions are micrograd 0.1.0's, so after the same
``random.seed(k)`` a model holds exactly micrograd's weights and computes
exactly its values.

One addition: a model's parameters live in one contiguous *arena*, exposed
as numpy arrays, so an update needs no Python loop per parameter::

    model = MLP(2, [16, 16, 1])
    ...
    data, grad = model.parameters_data(), model.parameters_grad()
    data -= learning_rate * grad       # every parameter at once
    model.zero_grad()                  # one fill, not a loop

``p.data``, ``p.grad`` and those arrays are the same memory.  Optimizers
(``fastgrad.optim``), including ones over some of the parameters, update
them in place, so the arrays stay valid; only packing again (``pack()``, or
building a model that contains this one) moves the parameters elsewhere.
"""

from __future__ import annotations

import random
import weakref
from collections.abc import Iterable, Sequence

import numpy as np

from fastgrad._value import Value

__all__ = ["Value", "Module", "Neuron", "Layer", "MLP", "ParameterArena"]


# id(arena.buffer) -> arena, so a new arena can retire the one it takes
# parameters from.  Weak: an arena nobody holds disappears from it.
_ARENA_OF_BUFFER: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


class ParameterArena:
    """One contiguous home for the data and grads of a list of leaf Values.

    ``data`` and ``grad`` are float64 arrays (halves of one buffer); element
    ``i`` *is* ``params[i].data`` / ``params[i].grad``.
    """

    __slots__ = ("params", "buffer", "data", "grad", "valid", "index", "__weakref__")

    def __init__(self, params: Sequence[Value]):
        self.params = list(params)
        self.valid = True
        n = len(self.params)
        self.buffer = np.zeros(2 * n, dtype=np.float64)
        self.data = self.buffer[:n]
        self.grad = self.buffer[n:]
        seen = set()
        for i, p in enumerate(self.params):
            if not isinstance(p, Value):
                raise TypeError(
                    f"ParameterArena: parameter {i} is a {type(p).__name__}, not a Value")
            if id(p) in seen:
                raise ValueError(f"ParameterArena: parameter {i} ({p!r}) appears twice")
            seen.add(id(p))
            # A Value has one home: the arena it leaves no longer holds it.
            previous = _ARENA_OF_BUFFER.get(id(p._home))
            if previous is not None:
                previous.valid = False
            # The Values keep only the buffer alive (no reference back to the
            # arena, so no cycle the garbage collector would have to find).
            p._rehome(self.data, self.grad, i, self.buffer)
        _ARENA_OF_BUFFER[id(self.buffer)] = self
        # id(value) -> its position (the arena holds the Values, so ids are stable)
        self.index = {id(p): i for i, p in enumerate(self.params)}

    def __len__(self) -> int:
        return len(self.params)

    def __repr__(self) -> str:
        return f"ParameterArena({len(self.params)} parameters)"


def _home_of(v: Value) -> tuple[ParameterArena, int] | None:
    """(arena, position) of the arena ``v`` lives in, or None when it lives in none."""
    home = v._home
    arena = _ARENA_OF_BUFFER.get(id(home)) if home is not None else None
    if arena is None or arena.buffer is not home:
        return None
    i = arena.index.get(id(v))
    return None if i is None else (arena, i)


class Module:
    """Base class with micrograd's ``zero_grad`` and ``parameters``.

    Subclasses override ``parameters()``.  ``parameters_data()`` and
    ``parameters_grad()`` move the parameters into one arena on first use
    (the built-in Neuron, Layer and MLP do so when constructed).
    """

    _arena: ParameterArena | None = None
    _arena_range: tuple[int, int] = (0, 0)

    def parameters(self) -> list[Value]:
        return []

    def _own_arena(self) -> tuple[ParameterArena, int, int] | None:
        arena = self._arena
        if arena is None or not arena.valid:
            return None
        start, stop = self._arena_range
        return arena, start, stop

    def pack(self) -> ParameterArena:
        """Move this module's parameters into one new arena (and return it).

        Sub-modules that are Neuron/Layer/MLP get views into the same arena.
        Call it again if a custom module's parameter list changes.
        """
        arena = ParameterArena(self.parameters())
        self._set_arena(arena, 0)
        return arena

    def _set_arena(self, arena: ParameterArena, start: int) -> int:
        stop = start
        for child in self._children():
            stop = child._set_arena(arena, stop)
        if stop == start:  # a leaf module, or a custom one: count its own
            stop = start + len(self.parameters())
        self._arena = arena
        self._arena_range = (start, stop)
        return stop

    def _children(self) -> list[Module]:
        return []

    def _arena_views(self) -> tuple[np.ndarray, np.ndarray]:
        own = self._own_arena()
        if own is None:
            self.pack()
            own = self._own_arena()
        arena, start, stop = own
        return arena.data[start:stop], arena.grad[start:stop]

    def parameters_data(self) -> np.ndarray:
        """All parameters' data as one float64 array; writes update the Values."""
        return self._arena_views()[0]

    def parameters_grad(self) -> np.ndarray:
        """All parameters' grads as one float64 array (same memory as ``p.grad``)."""
        return self._arena_views()[1]

    def zero_grad(self) -> None:
        """Set every parameter's grad to 0 (one fill when they share an arena)."""
        own = self._own_arena()
        if own is not None:
            arena, start, stop = own
            arena.grad[start:stop] = 0.0
        else:
            for p in self.parameters():
                p.grad = 0


def _count(value, name: str, what: str) -> int:
    """A layer size: an int >= 0 (numpy ints too; no bool, float or str)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: {what} must be an int >= 0, got {value!r} "
                        f"({type(value).__name__})")
    if value < 0:
        raise ValueError(f"{name}: {what} must be >= 0, got {value}")
    return int(value)


class Neuron(Module):
    """``nin`` weights drawn from U(-1, 1), a bias of 0, ReLU unless ``nonlin=False``."""

    def __init__(self, nin: int, nonlin: bool = True):
        nin = _count(nin, "Neuron", "nin")
        if not isinstance(nonlin, (bool, np.bool_)):
            raise TypeError(f"Neuron: nonlin must be True or False, got {nonlin!r}")
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0)
        self.nonlin = nonlin
        self.pack()

    def __call__(self, x):
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return act.relu() if self.nonlin else act

    def parameters(self) -> list[Value]:
        return self.w + [self.b]

    def __repr__(self) -> str:
        return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"


class Layer(Module):
    """``nout`` neurons over the same ``nin`` inputs."""

    def __init__(self, nin: int, nout: int, **kwargs):
        nin, nout = _count(nin, "Layer", "nin"), _count(nout, "Layer", "nout")
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]
        self.pack()

    def __call__(self, x):
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def _children(self) -> list[Module]:
        return self.neurons

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """Layers ``nin -> nouts[0] -> ... -> nouts[-1]``, ReLU between, last linear."""

    def __init__(self, nin: int, nouts: Sequence[int]):
        if isinstance(nouts, (str, bytes, dict, set)) or not isinstance(nouts, Iterable):
            raise TypeError(f"MLP: nouts must be a list of layer sizes, got {nouts!r}")
        sz = [_count(nin, "MLP", "nin")] + [_count(n, "MLP", f"nouts[{i}]")
                                            for i, n in enumerate(nouts)]
        if len(sz) < 2:
            raise ValueError("MLP: nouts must name at least one layer size")
        self.layers = [Layer(sz[i], sz[i + 1], nonlin=i != len(sz) - 2)
                       for i in range(len(sz) - 1)]
        self.pack()

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def _children(self) -> list[Module]:
        return self.layers

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
