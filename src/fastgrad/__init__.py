"""fastgrad: reverse-mode automatic differentiation with a compiled hot path.

Build a graph with micrograd-style scalars (:class:`Value`), lower it once to
a flat tape (:func:`lower`), and replay the tape's compiled forward and
backward sweeps step after step.
"""

from fastgrad._version import __version__
from fastgrad._value import Value
from fastgrad._tape import Tape
from fastgrad.lower import lower

__all__ = ["__version__", "Value", "Tape", "lower"]
