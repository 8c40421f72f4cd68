"""``fastgrad.compile``: trace a function once per input signature, then replay.

The first call with a given signature (each array argument's shape and
dtype, and the values of the other arguments) runs the function eagerly
while recording the graph, and lowers it to a tape.  Later calls with the
same signature only copy the new arrays into the trace's input buffers (or
point its input leaves at them) and run the compiled forward sweep: no
Python per op, no array allocation.  The returned
tensor's ``.backward()`` runs the same tape's reverse sweep.

Tensors the function captures (module parameters) are leaves read by
reference, so updates to their ``.data`` -- in place or by assignment -- are
seen by the next call.

Array arguments are different: they belong to one call.  An argument whose
data the reverse sweep reads is copied into the trace's own buffer at each
call, so writing to it after the call (refilling a batch buffer, say) does
not change the gradients of that call.  Each call returns new result tensors
whose ``.backward()`` refuses to run once a later call has replayed the same
tape.  A Tensor argument that requires grad is a leaf of the trace; after
the reverse sweep its gradient goes where eager mode sends it: into its
``.grad`` (a leaf), or on through its own graph (a non-leaf, e.g. another
function's output).  Two threads calling with the same signature get a
RuntimeError rather than each other's values: a call made while the other's
sweep runs, or a backward whose tape the other call replayed.
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import Any, Callable, NamedTuple

import numpy as np

from fastgrad._atape import array_key, copy_into
from fastgrad.ops import BY_NAME
from fastgrad.tensor import Tensor, TracingError, _new, _state, _to_array

__all__ = ["compile", "CompiledFunction", "CacheInfo", "TracingError"]

_ARRAY_TYPES = (np.float32, np.float64, np.int64)
_LEAF = BY_NAME["leaf"].opcode


class CacheInfo(NamedTuple):
    traces: int
    hits: int
    misses: int


class _Input:
    """How one array argument enters the trace: a placeholder leaf.

    buffer: the trace's own copy of the argument, refilled at each call, when
    the reverse sweep reads the argument's data (else None: the placeholder
    points at the caller's array).  grad_buffer: the placeholder's gradient
    when the argument is a non-leaf (passed on through its graph after the
    reverse sweep).
    """

    __slots__ = ("placeholder", "name", "requires_grad", "shape", "dtype", "buffer",
                 "grad_buffer")

    def __init__(self, placeholder, name):
        self.placeholder = placeholder
        self.name = name
        self.requires_grad = placeholder.requires_grad
        self.shape = placeholder._data.shape
        self.dtype = placeholder._data.dtype
        self.buffer = None
        self.grad_buffer = None


class _Trace:
    """One signature's tape, its input buffers, and the number of its latest call.

    lock: held while a call fills the buffers and runs the forward sweep, and
    while a result's backward runs; a trace serves one call at a time.
    """

    __slots__ = ("tape", "inputs", "grad_inputs", "result", "single", "outputs", "calls",
                 "name", "lock")

    def __init__(self, tape, inputs, result, outputs, name):
        self.lock = threading.Lock()
        self.tape = tape
        self.inputs = inputs
        self.grad_inputs = [entry for entry in inputs if entry.requires_grad]
        self.result = result
        self.single = isinstance(result, Tensor)
        self.outputs = outputs
        self.calls = 1          # numbers the calls; a result's backward checks it
        self.name = name


class _Call:
    """One call's claim on its trace: the first result's ``.backward()`` runs here.

    sources: the Tensor arguments that require grad, in the order of the
    trace's grad_inputs.
    """

    __slots__ = ("trace", "number", "sources")

    def __init__(self, trace, number, sources):
        self.trace = trace
        self.number = number
        self.sources = sources

    def _replayed(self) -> str | None:
        """None while this call's values are still on the tape, else why not."""
        trace = self.trace
        if trace.calls == self.number:
            return None
        return (f"(call {self.number} with this signature returned it; the tape now "
                f"holds call {trace.calls}); call backward before the next call")

    def backward(self, grad=None):
        trace = self.trace
        lock = trace.lock
        if not lock.acquire(False):
            _busy(trace)
        try:
            if trace.calls != self.number:
                raise RuntimeError(f"compile: this result's tape has been replayed by a "
                                   f"later call of {trace.name} {self._replayed()}")
            if not self.sources:
                trace.tape.backward(grad)
                return
            non_leaves = self._bind_grads()
            trace.tape.backward(grad)
            # A non-leaf argument: go on through its own graph, as eager mode
            # does (one backward per distinct tensor, its gradients summed).
            pending: dict[int, list] = {}
            for source, g in non_leaves:
                item = pending.get(id(source))
                if item is None:
                    pending[id(source)] = [source, g]
                else:
                    item[1] = item[1] + g
            for source, g in pending.values():
                source.backward(g)
        finally:
            lock.release()

    def _bind_grads(self):
        """Point each grad input's placeholder at where its gradient goes.

        O(1) per input: the argument must still have the shape and dtype it
        was called with, and still require grad (its data need not be the
        same: the tape reads its own copy).
        """
        non_leaves = []
        for entry, source in zip(self.trace.grad_inputs, self.sources):
            arr = source._data
            if not source.requires_grad:
                change = "it no longer requires grad"
            elif type(arr) is not np.ndarray:
                change = f"its data is now a {type(arr).__name__}"
            elif arr.shape != entry.shape or arr.dtype != entry.dtype:
                change = (f"its data now has shape {arr.shape} and dtype {arr.dtype}, "
                          f"was {entry.shape} {entry.dtype}")
            else:
                change = None
            if change is not None:
                raise RuntimeError(
                    f"compile: {entry.name} of {self.trace.name} changed since the "
                    f"forward of this call: {change}, so its gradient has nowhere to go")
            if source._op == _LEAF:
                _alias_grad(entry, source)   # the tape checks it and adds to it
                continue
            call = source._tape
            replayed = call._replayed() if isinstance(call, _Call) else None
            if replayed:
                # Refuse now rather than after this tape added to gradients.
                raise RuntimeError(
                    f"compile: {entry.name} of {self.trace.name} is a result of "
                    f"{call.trace.name} whose tape has been replayed by a later call "
                    f"{replayed}")
            g = entry.grad_buffer
            if g is None:
                g = entry.grad_buffer = np.zeros(entry.shape, dtype=entry.dtype)
            else:
                g.fill(0)
            entry.placeholder.grad = g
            non_leaves.append((source, g))
        return non_leaves


def _busy(trace: _Trace) -> None:
    """Raise: the trace's lock is held (a call or backward is running)."""
    raise RuntimeError(
        f"compile: {trace.name} is already running with this signature (in another "
        f"thread?): one trace serves one call or backward at a time; compile the "
        f"function once per thread instead")


def _alias_grad(entry: _Input, source: Tensor) -> None:
    """The placeholder of a leaf argument accumulates into the argument's .grad.

    Done at each call as well as before each backward: a graph built on a
    call's result and lowered eagerly reaches the argument through it too.
    """
    g = source.grad
    if g is None:
        g = source.grad = np.zeros(entry.shape, dtype=entry.dtype)
    entry.placeholder.grad = g


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


def _parameter_names(fn) -> list[str]:
    """Names of fn's positional parameters (for messages), as far as known."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _read_by_backward(tape, placeholders) -> list[bool]:
    """Per placeholder: may the reverse sweep read its data?

    Conservatively, yes when any node computed from it (directly or not)
    requires grad: only those instructions run a backward, and whatever they
    read was computed from their operands.
    """
    masks = {id(p): 1 << i for i, p in enumerate(placeholders)}
    read = 0
    for node in tape.nodes:
        mask = masks.get(id(node), 0)
        for x in node._inputs:
            mask |= masks.get(id(x), 0)
        if mask:
            masks[id(node)] = mask
            if node.requires_grad and node._op != _LEAF:
                read |= mask
    return [bool(read >> i & 1) for i in range(len(placeholders))]


class _Output:
    """Another result of a call (not the first): its backward runs eagerly
    through the traced graph below it, while the call's values are still
    on the tape."""

    __slots__ = ("call", "node")

    def __init__(self, call, node):
        self.call = call
        self.node = node

    def backward(self, grad=None):
        from fastgrad.lower import lower_tensor

        why = self.call._replayed()
        if why is not None:
            raise RuntimeError(f"compile: this result's tape has been replayed by a "
                               f"later call of {self.call.trace.name} {why}")
        lower_tensor(self.node, expose_grads=False).backward(grad)


def _result_copy(node: Tensor, call) -> Tensor:
    """A new tensor for one call's result: the node's array, op and inputs."""
    t = _new(node._data, node._op, node._inputs, node._attrs, node.requires_grad,
             node.label)
    t.grad = node.grad
    t._tape = _Output(call, node)
    return t


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
            number = trace.calls
        else:
            self._hits += 1
            lock = trace.lock
            if not lock.acquire(False):
                _busy(trace)
            try:
                trace.calls = number = trace.calls + 1  # earlier results now refuse
                for (source, arr), entry in zip(arrays, trace.inputs):
                    buffer = entry.buffer
                    if buffer is not None:
                        copy_into(buffer, arr)
                    else:
                        entry.placeholder._data = arr
                if trace.grad_inputs:
                    for (source, arr), entry in zip(arrays, trace.inputs):
                        if entry.requires_grad and source._op == _LEAF:
                            _alias_grad(entry, source)
                trace.tape.forward()
            finally:
                lock.release()
        sources = None
        if trace.grad_inputs:
            sources = [source for (source, _), entry in zip(arrays, trace.inputs)
                       if entry.requires_grad]
        node = trace.outputs[0]
        first = _new(node._data, node._op, node._inputs, node._attrs, node.requires_grad,
                     node.label)
        first.grad = node.grad
        first._tape = _Call(trace, number, sources)
        if trace.single:
            return first
        results = [first] + [_result_copy(t, first._tape) for t in trace.outputs[1:]]
        if type(trace.result) is list:
            return results
        if type(trace.result) is tuple:
            return tuple(results)
        return type(trace.result)(*results)     # a namedtuple

    def _trace(self, key, args, kwargs, arrays):
        from fastgrad.lower import lower_tensor

        name = getattr(self.fn, "__qualname__", "function")
        names = _parameter_names(self.fn)
        inputs = []
        it = iter(arrays)

        def placeholder_for(x, position):
            source, arr = next(it)
            leaf = _new(arr, requires_grad=isinstance(source, Tensor) and source.requires_grad,
                        label=getattr(source, "label", None))
            if isinstance(position, str):
                described = f"input {position!r}"
            elif position < len(names):
                described = f"input {position} ({names[position]!r})"
            else:
                described = f"input {position}"
            entry = _Input(leaf, described)
            if leaf.requires_grad and source._op == _LEAF:
                _alias_grad(entry, source)
            inputs.append(entry)
            return leaf

        traced_args = [placeholder_for(x, i) if _is_array_like(x) else x
                       for i, x in enumerate(args)]
        traced_kwargs = {}
        for kw in sorted(kwargs):
            x = kwargs[kw]
            traced_kwargs[kw] = placeholder_for(x, kw) if _is_array_like(x) else x

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
        read = _read_by_backward(tape, [entry.placeholder for entry in inputs])
        for entry, is_read in zip(inputs, read):
            if is_read:
                # From now on the tape reads the trace's own copy.
                entry.buffer = entry.placeholder._data.copy()
                entry.placeholder._data = entry.buffer
        trace = _Trace(tape, inputs, result, outputs, name)
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

    Each call returns new tensors, but their arrays are the tape's buffers,
    which the next call with the same signature overwrites: copy a value
    (``loss.item()``) to keep it, and call ``.backward()`` before the next
    call (a replayed result's backward raises RuntimeError rather than give
    the later call's gradients).  Array arguments whose data the reverse sweep
    reads are copied into the trace's own buffers at each call, so changing
    them after the call does not change its gradients.  A Tensor argument that
    requires grad gets its gradient as in eager mode (a non-leaf passes it on
    through its own graph); changing its shape or dtype before the backward
    raises ``RuntimeError: input 0 ... changed since the forward of this
    call``.

    Python control flow is fixed when tracing; reading a tensor's value while
    tracing (``bool(t)``, ``float(t)``, ``t.item()``, ``if t > 0:``) raises
    TracingError.
    """
    if fn is None:
        return functools.partial(CompiledFunction, max_traces=max_traces)
    return CompiledFunction(fn, max_traces=max_traces)
