"""fastgrad: reverse-mode automatic differentiation with a compiled hot path.

Build a graph with micrograd-style scalars (:class:`Value`) or numpy-backed
tensors (:class:`Tensor`), lower it once to a flat tape (:func:`lower`), and
replay the tape's compiled forward and backward sweeps step after step.
"""

from fastgrad._version import __version__
from fastgrad._preload import preload_cython_blas as _preload_cython_blas

_preload_cython_blas()
from fastgrad._value import Value
from fastgrad._tape import Tape
from fastgrad._atape import ArrayTape
from fastgrad.tensor import (
    Tensor, full, is_grad_enabled, no_grad, ones, randn, tensor, zeros,
)
from fastgrad.lower import lower
from fastgrad.compile import compile, TracingError
from fastgrad import nn, optim
from fastgrad import viz
from fastgrad.gradcheck import GradcheckError, gradcheck
from fastgrad.explain import explain
from fastgrad.serialization import load, save

__all__ = [
    "__version__", "Value", "Tape", "ArrayTape", "lower",
    "Tensor", "tensor", "zeros", "ones", "full", "randn", "no_grad",
    "is_grad_enabled", "compile", "TracingError", "nn", "optim", "manual_seed",
    "viz", "gradcheck", "GradcheckError", "explain", "save", "load",
]


def manual_seed(seed: int) -> None:
    """Seed numpy's global random state (parameter initialisation, randn)."""
    import numpy as np

    np.random.seed(seed)
