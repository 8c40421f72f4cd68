"""Type stubs for fastgrad._blas (compiled from _blas.pyx).

The GEMM wrapper itself is a ``cdef`` function for other compiled modules
(see _blas.pxd); from Python there is only the test shim.
"""

from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

_C = TypeVar("_C", NDArray[np.float64], NDArray[np.float32])

def _gemm_test(
    A: NDArray[Any],
    B: NDArray[Any],
    C: _C,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    beta: float = 0.0,
) -> _C: ...
