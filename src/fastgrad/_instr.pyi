"""Type stubs for fastgrad._instr (compiled from _instr.pyx): one tensor instruction."""

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["eager_forward", "DTYPE_CODES"]

# Kernel dtype codes: float64 -> 0, float32 -> 1, int64 -> 2.
DTYPE_CODES: dict[np.dtype[Any], int]

def eager_forward(
    op: int,
    dtype: int,
    meta: ArrayLike,
    c: float,
    a: NDArray[Any],
    b: NDArray[Any] | None,
    out: NDArray[Any],
    scratch: NDArray[Any] | None = None,
) -> int: ...
