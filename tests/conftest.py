"""Shared test configuration: hypothesis profiles and the expression-graph helpers.

Hypothesis profiles
-------------------
``ci`` (the default when ``CI`` is set): no deadline, derandomized, no example
database, so a CI run is reproducible.  ``dev`` (the default otherwise): no
deadline, random.  ``thorough``: many more examples, for a long local run.
Pick one with ``HYPOTHESIS_PROFILE=thorough``.

Expression graphs
-----------------
Property tests draw a *program*: a few leaf values and a list of steps, each
step an op applied to earlier nodes (so subexpressions are shared).  The same
program is built with any Value class (fastgrad's, the reference engine's,
micrograd 0.1.0's) and evaluated on plain floats by :func:`evaluate`, a
forward-only interpreter written with :mod:`math` that shares nothing with
either engine.  Operands of log, division and pow are kept in their domains
structurally (``log(a*a + 1)``, ``a / (b*b + 1)``, ``(a*a + 1) ** c``), so the
only inputs a test has to reject are those whose values grow too large.

With ``--import-mode=importlib`` test modules cannot import this file, so the
helpers reach them through the session fixture ``graphs`` (draw programs
inside a test with ``st.data()``).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Plain helper modules beside the tests (checkpoint_helpers.py) import by
# name; the tests run with --import-mode=importlib, which adds no path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# -- hypothesis profiles ----------------------------------------------------

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=60, derandomize=True, database=None,
                          print_blob=True, **_COMMON)
settings.register_profile("dev", max_examples=60, **_COMMON)
settings.register_profile("thorough", max_examples=2000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


# -- a forward-only float interpreter (the third, independent oracle) -------


class Num:
    """A float with the Value methods the programs use; no gradients.

    Written from the textbook definitions with :mod:`math`; it exists only to
    evaluate programs independently of every engine under test (and to find
    the inputs whose intermediate values are too large to compare well).
    """

    __slots__ = ("data",)

    def __init__(self, data, label=""):
        self.data = float(data)

    @staticmethod
    def _v(x):
        return x.data if isinstance(x, Num) else float(x)

    def __add__(self, o):
        return Num(self.data + self._v(o))

    def __radd__(self, o):
        return Num(self._v(o) + self.data)

    def __sub__(self, o):
        return Num(self.data - self._v(o))

    def __rsub__(self, o):
        return Num(self._v(o) - self.data)

    def __mul__(self, o):
        return Num(self.data * self._v(o))

    def __rmul__(self, o):
        return Num(self._v(o) * self.data)

    def __truediv__(self, o):
        return Num(self.data / self._v(o))

    def __rtruediv__(self, o):
        return Num(self._v(o) / self.data)

    def __neg__(self):
        return Num(-self.data)

    def __pow__(self, o):
        return Num(math.pow(self.data, self._v(o)))

    def __rpow__(self, o):
        return Num(math.pow(self._v(o), self.data))

    def relu(self):
        return Num(self.data if self.data > 0 else 0.0)

    def tanh(self):
        return Num(math.tanh(self.data))

    def exp(self):
        return Num(math.exp(self.data))

    def log(self):
        return Num(math.log(self.data))

    def sigmoid(self):
        x = self.data
        if x >= 0:
            return Num(1.0 / (1.0 + math.exp(-x)))
        return Num(math.exp(x) / (1.0 + math.exp(x)))


# -- the op vocabulary of random programs -----------------------------------


@dataclass(frozen=True)
class Step:
    """How one program step builds a node from earlier nodes a, b, d and a number c."""

    arity: int                              # how many earlier nodes it reads
    build: Callable[..., Any]               # (a, b, d, c) -> node
    const: st.SearchStrategy | None = None  # strategy for c, if it takes one
    micrograd: bool = True                  # micrograd 0.1.0 has every op used
    ops: frozenset = frozenset()            # fastgrad op names it creates


_ANY_CONST = st.floats(-3.0, 3.0, allow_nan=False, allow_subnormal=False)

STEPS: dict[str, Step] = {
    "add": Step(2, lambda a, b, d, c: a + b, ops=frozenset({"add"})),
    "radd": Step(1, lambda a, b, d, c: c + a, _ANY_CONST, ops=frozenset({"add"})),
    "sub": Step(2, lambda a, b, d, c: a - b, ops=frozenset({"sub"})),
    "rsub": Step(1, lambda a, b, d, c: c - a, _ANY_CONST, ops=frozenset({"sub"})),
    "mul": Step(2, lambda a, b, d, c: a * b, ops=frozenset({"mul"})),
    "rmul": Step(1, lambda a, b, d, c: c * a, _ANY_CONST, ops=frozenset({"mul"})),
    "twice": Step(1, lambda a, b, d, c: a + a, ops=frozenset({"add"})),
    "square": Step(1, lambda a, b, d, c: a * a, ops=frozenset({"mul"})),
    "axpy": Step(3, lambda a, b, d, c: a * b + d, ops=frozenset({"mul", "add"})),
    "sum3": Step(3, lambda a, b, d, c: a + b + d, ops=frozenset({"add"})),
    "div": Step(2, lambda a, b, d, c: a / (b * b + 1), ops=frozenset({"truediv"})),
    "rdiv": Step(1, lambda a, b, d, c: c / (a * a + 1), _ANY_CONST, ops=frozenset({"truediv"})),
    "neg": Step(1, lambda a, b, d, c: -a, ops=frozenset({"neg"})),
    "powi": Step(1, lambda a, b, d, c: a ** c, st.integers(0, 3), ops=frozenset({"pow_const"})),
    "powc": Step(1, lambda a, b, d, c: (a * a + 1) ** c,
                 st.floats(-2.0, 2.0, allow_nan=False, allow_subnormal=False),
                 ops=frozenset({"pow_const"})),
    "relu": Step(1, lambda a, b, d, c: a.relu(), ops=frozenset({"relu"})),
    "powv": Step(2, lambda a, b, d, c: (a * a + 1) ** (b.tanh() * 2), micrograd=False,
                 ops=frozenset({"pow"})),
    "rpow": Step(1, lambda a, b, d, c: c ** a.tanh(),
                 st.floats(0.25, 4.0, allow_nan=False, allow_subnormal=False),
                 micrograd=False, ops=frozenset({"pow"})),
    "tanh": Step(1, lambda a, b, d, c: a.tanh(), micrograd=False, ops=frozenset({"tanh"})),
    "exp": Step(1, lambda a, b, d, c: a.exp(), micrograd=False, ops=frozenset({"exp"})),
    "log": Step(1, lambda a, b, d, c: (a * a + 1).log(), micrograd=False,
                ops=frozenset({"log"})),
    "sigmoid": Step(1, lambda a, b, d, c: a.sigmoid(), micrograd=False,
                    ops=frozenset({"sigmoid"})),
}

ALL_STEPS = tuple(STEPS)
# micrograd 0.1.0 (the PyPI release) has +, *, ** number, relu and what it
# derives from them (neg, -, /, r-ops); it has no tanh, exp, log or sigmoid.
MICROGRAD_STEPS = tuple(name for name, s in STEPS.items() if s.micrograd)


@dataclass(frozen=True)
class Program:
    """Leaves x0..x{n-1} with `values`, then `steps` of (name, node indices, c).

    Node k < n is leaf k; node n + s is the output of step s; the root is the
    last node.
    """

    values: tuple
    steps: tuple

    @property
    def n_leaves(self) -> int:
        return len(self.values)

    def uses(self) -> set:
        """fastgrad op names the program creates."""
        out = set()
        for name, _, _ in self.steps:
            out |= STEPS[name].ops
        return out


LEAF_VALUES = st.floats(-2.0, 2.0, allow_nan=False, allow_subnormal=False)


@st.composite
def programs(draw, steps=ALL_STEPS, min_leaves=2, max_leaves=5, max_steps=12):
    """Random expression DAGs over `steps` (see the module docstring)."""
    n = draw(st.integers(min_leaves, max_leaves))
    values = tuple(draw(st.lists(LEAF_VALUES, min_size=n, max_size=n)))
    k = draw(st.integers(1, max_steps))
    out = []
    for s in range(k):
        name = draw(st.sampled_from(steps))
        spec = STEPS[name]
        size = n + s
        # The first operand is often the newest node, so graphs get deep.
        first = draw(st.one_of(st.just(size - 1), st.integers(0, size - 1)))
        rest = [draw(st.integers(0, size - 1)) for _ in range(spec.arity - 1)]
        c = draw(spec.const) if spec.const is not None else None
        out.append((name, (first, *rest), c))
    return Program(values, tuple(out))


def build(program: Program, value_type, values=None, labels=True):
    """Build `program` with `value_type`; returns (leaves, nodes) (nodes[-1] is the root)."""
    values = program.values if values is None else values
    if labels:
        leaves = [value_type(v, label=f"x{k}") for k, v in enumerate(values)]
    else:
        leaves = [value_type(v) for v in values]
    nodes = list(leaves)
    for name, args, c in program.steps:
        operands = [nodes[i] for i in args] + [None] * (3 - len(args))
        nodes.append(STEPS[name].build(*operands, c))
    return leaves, nodes


def evaluate(program: Program, values=None, limit=1e4):
    """Every node's value on plain floats, or None when one is out of range.

    None means: some intermediate overflowed, is not finite, or exceeds
    `limit` in magnitude (inputs a test should reject with ``assume``).
    """
    try:
        _, nodes = build(program, Num, values)
    except (OverflowError, ZeroDivisionError, ValueError):
        return None
    out = [n.data for n in nodes]
    if not all(math.isfinite(x) and abs(x) <= limit for x in out):
        return None
    return out


def relu_pattern(program: Program, node_values) -> tuple:
    """The side of 0 every relu input is on: the graph's smooth piece."""
    n = program.n_leaves
    return tuple((node_values[args[0]] > 0) - (node_values[args[0]] < 0)
                 for name, args, c in program.steps if name == "relu")


def relu_margin(program: Program, node_values) -> float:
    """Smallest nonzero |relu input| (inf when there is none)."""
    m = math.inf
    for name, args, c in program.steps:
        if name == "relu":
            u = abs(node_values[args[0]])
            if u != 0.0:
                m = min(m, u)
    return m


# -- comparisons ------------------------------------------------------------


def close(actual, expected, rtol, atol=0.0) -> bool:
    """|actual - expected| <= atol + rtol*|expected|; non-finite values must match."""
    actual, expected = float(actual), float(expected)
    if not (math.isfinite(actual) and math.isfinite(expected)):
        return actual == expected or (math.isnan(actual) and math.isnan(expected))
    return abs(actual - expected) <= atol + rtol * abs(expected)


def assert_close(actual, expected, rtol, atol=0.0, what="value"):
    assert close(actual, expected, rtol, atol), (
        f"{what}: got {actual!r}, expected {expected!r} "
        f"(difference {float(actual) - float(expected):.3g}, rtol {rtol}, atol {atol})")


def same_bits(x: float, y: float) -> bool:
    """x and y are the same double (nan equals nan; 0.0 differs from -0.0)."""
    return math.copysign(1.0, x) == math.copysign(1.0, y) and (
        x == y or (math.isnan(x) and math.isnan(y)))


def central_difference(f, values, k, h=1e-6):
    """(f(x + h e_k) - f(x - h e_k)) / 2h."""
    up = list(values)
    down = list(values)
    up[k] += h
    down[k] -= h
    return (f(up) - f(down)) / (2 * h)


@pytest.fixture(scope="session")
def graphs():
    """The expression-graph helpers above, for test modules."""
    return SimpleNamespace(
        Num=Num, STEPS=STEPS, ALL_STEPS=ALL_STEPS, MICROGRAD_STEPS=MICROGRAD_STEPS,
        Program=Program, programs=programs, build=build, evaluate=evaluate,
        relu_pattern=relu_pattern, relu_margin=relu_margin, close=close,
        assert_close=assert_close, same_bits=same_bits,
        central_difference=central_difference, LEAF_VALUES=LEAF_VALUES,
    )


@pytest.fixture(scope="session")
def run_isolated():
    """Run Python source in a fresh interpreter that imports this fastgrad.

    For tests whose failure mode is a crash (deep graphs, memory safety): a
    segfault there fails one test instead of killing the whole session.
    Returns the CompletedProcess (stdout/stderr as text).
    """
    import fastgrad

    src_dir = os.path.dirname(os.path.dirname(os.path.abspath(fastgrad.__file__)))

    def run(source, timeout=240, **env):
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [src_dir] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p])
        environment.update(env)
        return subprocess.run([sys.executable, "-c", textwrap.dedent(source)],
                              env=environment, capture_output=True, text=True,
                              timeout=timeout)

    return run


@pytest.fixture(scope="session")
def RefValue():
    """The pure-Python reference engine's Value (the oracle)."""
    reference = pytest.importorskip("fastgrad.reference")
    return reference.Value


@pytest.fixture(scope="session")
def MgValue():
    """micrograd 0.1.0's Value."""
    engine = pytest.importorskip("micrograd.engine")
    return engine.Value
