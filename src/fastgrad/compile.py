"""``fastgrad.compile``: trace a function once per input signature, then replay.

The first call with a given signature (each array argument's shape and
dtype, and the values of the other arguments) runs the function eagerly
while recording the graph, and lowers it to a tape.  Later calls with the
same signature only point the tape's input leaves at the new arrays and run
the compiled forward sweep: no Python per op, no allocation.  The returned
tensor's ``.backward()`` runs the same tape's reverse sweep.

Tensors the function captures (module parameters) are leaves read by
reference, so updates to their ``.data`` -- in place or by assignment -- are
seen by the next call.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import numpy as np

from fastgrad._atape import array_key
from fastgrad.tensor import Tensor, TracingError, _new, _state, _to_array

__all__ = ["compile", "CompiledFunction", "CacheInfo", "TracingError"]

_ARRAY_TYPES = (np.float32, np.float64, np.int64)


class CacheInfo(NamedTuple):
    traces: int
    hits: int
    misses: int


class _Input:
    """How one argument enters the trace: a placeholder leaf, or a constant."""

    __slots__ = ("placeholder", "source_grad")

    def __init__(self, placeholder):
        self.placeholder = placeholder
        self.source_grad = False


class _Trace:
    __slots__ = ("tape", "inputs", "result", "outputs")

    def __init__(self, tape, inputs, result, outputs):
        self.tape = tape
        self.inputs = inputs
        self.result = result
        self.outputs = outputs


def _array_of(x) -> np.ndarray:
    """x as a C-contiguous float32/float64/int64 array (no copy when it already is)."""
    if isinstance(x, np.ndarray) and x.dtype in _ARRAY_TYPES and x.flags.c_contiguous:
        return x
    return _to_array(x)


def _is_array_like(x) -> bool:
    return isinstance(x, (Tensor, np.ndarray, list))


def _static_key(x, position):
    try:
        hash(x)
    except TypeError:
        raise TypeError(
            f"compile: argument {position} is a {type(x).__name__}, which is neither an "
            f"array nor hashable; a constant is part of the trace's signature, so pass "
            f"it as a hashable value (number, string, tuple) or capture it in a closure"
        ) from None
    return (type(x), x)


class CompiledFunction:
    """A function traced per input signature into replayable tapes."""

    def __init__(self, fn: Callable[..., Any], max_traces: int = 64):
        if not callable(fn):
            raise TypeError(f"compile: expected a function, got {type(fn).__name__}")
        if max_traces < 1:
            raise ValueError(f"compile: max_traces must be >= 1, got {max_traces}")
        self.fn = fn
        self.max_traces = max_traces
        self._traces: dict[tuple, _Trace] = {}
        self._hits = 0
        self._misses = 0
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        return f"<fastgrad.compile of {name}: {len(self._traces)} trace(s)>"

    def cache_info(self) -> CacheInfo:
        """How many signatures were traced, and how calls were served."""
        return CacheInfo(len(self._traces), self._hits, self._misses)

    def cache_clear(self) -> None:
        self._traces.clear()

    def _signature(self, args, kwargs):
        key = []
        arrays = []
        for x in args:
            k = array_key(x)
            if k is not None:               # the common case, checked in C
                key.append(k)
                arrays.append((x, x))
            elif _is_array_like(x):
                arr = x._data if isinstance(x, Tensor) else _array_of(x)
                grad = isinstance(x, Tensor) and x.requires_grad
                key.append((arr.shape, arr.dtype.num) if not grad
                           else (arr.shape, arr.dtype.num, True))
                arrays.append((x, arr))
            else:
                key.append(_static_key(x, len(key)))
        for name in sorted(kwargs):
            x = kwargs[name]
            if _is_array_like(x):
                arr = x._data if isinstance(x, Tensor) else _array_of(x)
                grad = isinstance(x, Tensor) and x.requires_grad
                key.append((name, arr.shape, arr.dtype.num, grad))
                arrays.append((x, arr))
            else:
                key.append((name, _static_key(x, repr(name))))
        return tuple(key), arrays

    def __call__(self, *args, **kwargs):
        if getattr(_state, "tracing", None) is not None:
            # Called while another compiled function traces: inline it.
            return self.fn(*args, **kwargs)
        key, arrays = self._signature(args, kwargs)
        trace = self._traces.get(key)
        if trace is None:
            self._misses += 1
            trace = self._trace(key, args, kwargs, arrays)
            return trace.result
        self._hits += 1
        for (source, arr), entry in zip(arrays, trace.inputs):
            leaf = entry.placeholder
            leaf._data = arr
            if entry.source_grad:
                if source.grad is None:
                    source.grad = np.zeros_like(arr)
                leaf.grad = source.grad
        trace.tape.forward()
        return trace.result

    def _trace(self, key, args, kwargs, arrays):
        from fastgrad.lower import lower_tensor

        inputs = []
        it = iter(arrays)

        def placeholder_for(x):
            source, arr = next(it)
            leaf = _new(arr, requires_grad=isinstance(source, Tensor) and source.requires_grad,
                        label=getattr(source, "label", None))
            entry = _Input(leaf)
            if leaf.requires_grad:
                entry.source_grad = True
                if source.grad is None:
                    source.grad = np.zeros_like(arr)
                leaf.grad = source.grad
            inputs.append(entry)
            return leaf

        traced_args = [placeholder_for(x) if _is_array_like(x) else x for x in args]
        traced_kwargs = {}
        for name in sorted(kwargs):
            x = kwargs[name]
            traced_kwargs[name] = placeholder_for(x) if _is_array_like(x) else x

        name = getattr(self.fn, "__qualname__", "function")
        previous = getattr(_state, "tracing", None)
        _state.tracing = name
        try:
            result = self.fn(*traced_args, **traced_kwargs)
        finally:
            _state.tracing = previous

        if isinstance(result, Tensor):
            outputs = [result]
        elif isinstance(result, (tuple, list)) and result and all(
                isinstance(r, Tensor) for r in result):
            outputs = list(result)
        else:
            raise TypeError(
                f"compile: {name} must return a Tensor or a tuple of Tensors, got "
                f"{type(result).__name__}")
        tape = lower_tensor(outputs[0], tuple(outputs[1:]))
        outputs[0]._tape = tape
        trace = _Trace(tape, inputs, result, outputs)
        if len(self._traces) >= self.max_traces:
            # Oldest first (dicts keep insertion order): e.g. a float argument
            # that changes every call would otherwise grow the cache forever.
            del self._traces[next(iter(self._traces))]
        self._traces[key] = trace
        return trace


def compile(fn: Callable[..., Any] | None = None, *, max_traces: int = 64):
    """Trace ``fn`` once per input signature into a tape, then replay it.

    Use as ``@fastgrad.compile`` (or ``fastgrad.compile(fn)``).  Array
    arguments (Tensors, numpy arrays, nested lists) become the tape's inputs;
    any other argument is a constant baked into the trace and part of the
    signature, so it must be hashable (a number, string, tuple, module...).
    At most ``max_traces`` signatures are kept (oldest dropped first).  The function must
    return a Tensor or a tuple of Tensors; the first one is the one whose
    ``.backward()`` runs the tape's reverse sweep.

    The returned tensors are the same objects on every call, updated in
    place: copy a value (``loss.item()``) to keep it.  Python control flow is
    fixed when tracing; reading a tensor's value while tracing (``bool(t)``,
    ``float(t)``, ``t.item()``, ``if t > 0:``) raises TracingError.
    """
    if fn is None:
        return functools.partial(CompiledFunction, max_traces=max_traces)
    return CompiledFunction(fn, max_traces=max_traces)
