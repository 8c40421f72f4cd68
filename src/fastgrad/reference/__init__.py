"""fastgrad.reference: a pure-Python, micrograd-equivalent autodiff engine.

It shares no code with the compiled engine (only the standard library is
used), which makes it an honest oracle for tests and the baseline for
benchmarks::

    from fastgrad.reference import Value, MLP

    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    y = (a * b + a ** b).tanh()
    y.backward()
    a.grad, b.grad

Gradient semantics: leaf gradients accumulate across ``backward()`` calls;
intermediate gradients restart from zero on each call.
"""

from fastgrad.reference.engine import Value
from fastgrad.reference.nn import MLP, Layer, Module, Neuron

__all__ = ["Value", "Module", "Neuron", "Layer", "MLP"]
