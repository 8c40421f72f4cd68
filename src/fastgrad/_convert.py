"""Exact conversion of numbers into fastgrad's dtypes (float32, float64, int64).

A conversion may round (float64 to float32, a huge int to float64) but never
changes a value otherwise: no wraparound of integers beyond int64, no
truncation of 1.5 or NaN into int64, no overflow of a finite value to inf.
Shared by tensor construction, ``Tensor.data`` assignment, the factories,
``Module.load_state_dict`` and the optimizers.
"""

from __future__ import annotations

import numpy as np

I64 = np.dtype(np.int64)
I64_MIN, I64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)
TWO_63 = 2.0 ** 63            # exactly representable; floats in [-2**63, 2**63) fit int64
EXACT = 2.0 ** 53             # every integer of smaller magnitude is exact in float64


def at_index(mask: np.ndarray) -> str:
    """' at index (i, j)' of the first True in mask ('' for a 0-d array)."""
    if mask.ndim == 0:
        return ""
    index = np.unravel_index(int(np.flatnonzero(mask)[0]), mask.shape)
    return f" at index {tuple(int(i) for i in index)}"


def checked_cast(arr: np.ndarray, target: np.dtype, name: str) -> np.ndarray:
    """arr as target, refusing any value the cast would change beyond rounding.

    int64 takes only integral values in its range (no wraparound of uint64 or
    of floats, no truncation of 1.5, no NaN or inf); a narrowing float cast may
    round but not overflow a finite value to inf.  Returns arr itself when it
    already has the target dtype.
    """
    src = arr.dtype
    if src == target:
        return arr
    if target == I64 and arr.size:
        if src.kind == "u" and src.itemsize >= 8:
            big = arr > I64_MAX
            if big.any():
                raise OverflowError(f"{name}: value {arr[big].flat[0]}{at_index(big)} does not "
                                    f"fit in int64 (largest {I64_MAX})")
        elif src.kind == "f":
            bad = ~np.isfinite(arr)
            if bad.any():
                raise ValueError(f"{name}: value {arr[bad].flat[0]}{at_index(bad)} cannot be "
                                 f"converted to int64")
            bad = (arr < -TWO_63) | (arr >= TWO_63)
            if bad.any():
                raise OverflowError(f"{name}: value {arr[bad].flat[0]}{at_index(bad)} does not "
                                    f"fit in int64 (range [{I64_MIN}, {I64_MAX}])")
            bad = arr != np.trunc(arr)
            if bad.any():
                raise ValueError(f"{name}: value {arr[bad].flat[0]}{at_index(bad)} is not an "
                                 f"integer; converting it to int64 would truncate it (round "
                                 f"it first, e.g. with np.round)")
    with np.errstate(over="ignore"):
        out = arr.astype(target, order="C")
    if (src.kind == "f" and target.kind == "f" and src.itemsize > target.itemsize
            and out.size and np.isinf(out).any()):
        bad = np.isinf(out) & np.isfinite(arr)
        if bad.any():
            raise OverflowError(f"{name}: value {arr[bad].flat[0]}{at_index(bad)} overflows "
                                f"{target} (largest {np.finfo(target).max})")
    return out


def is_int(v) -> bool:
    """A Python or numpy integer that is not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def first_big_int(leaves: list):
    """The first integer in leaves that int64 cannot hold, or None."""
    return next((v for v in leaves if is_int(v) and not I64_MIN <= int(v) <= I64_MAX), None)


def from_objects(arr: np.ndarray, target, data, name: str = "tensor") -> np.ndarray:
    """numpy falls back to dtype object for ints beyond 64 bits: give floats when
    the caller asked for them (or mixed in a float), else refuse with OverflowError."""
    leaves = arr.ravel().tolist()
    big = first_big_int(leaves)
    if big is None or not all(is_int(v) or isinstance(v, (bool, float, np.floating, np.bool_))
                              for v in leaves):
        raise TypeError(f"{name}: expected numbers, got an array of dtype {arr.dtype}"
                        f" (from {type(data).__name__})")
    floats = any(isinstance(v, (float, np.floating)) for v in leaves)
    if target == I64 or (target is None and not floats):
        raise OverflowError(f"{name}: value {big} does not fit in int64 (range [{I64_MIN}, "
                            f"{I64_MAX}]); write it as a float for a float tensor")
    try:
        return np.array([float(v) for v in leaves], dtype=np.float64).reshape(arr.shape)
    except OverflowError:
        raise OverflowError(f"{name}: value {big} is too large for float64") from None


def beyond_exact(arr: np.ndarray) -> bool:
    """Whether some |value| >= 2**53, where float64 stops holding every integer
    (cheap for the short lists that are typed by hand)."""
    if arr.size <= 32:
        return max(map(abs, arr.ravel().tolist()), default=0.0) >= EXACT
    return bool(np.abs(arr).max() >= EXACT)
