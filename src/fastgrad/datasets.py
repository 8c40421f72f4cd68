"""Small classification data sets for examples and tests.

Everything here needs only numpy, except :func:`load_digits`, which borrows
scikit-learn's copy of the data and imports scikit-learn only when called.

Every generator returns ``(X, y)``: ``X`` a float64 array of shape
``(n_samples, n_features)`` and ``y`` an int64 array of shape ``(n_samples,)``.

``random_state`` may be ``None`` (numpy's global random state, as in
scikit-learn), an int seed (a fresh ``np.random.RandomState(seed)``, as in
scikit-learn, so ``make_moons`` reproduces scikit-learn's samples exactly),
an ``np.random.RandomState`` or an ``np.random.Generator``.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Tuple, Union

import numpy as np

__all__ = ["make_moons", "make_xor", "make_spirals", "load_digits"]

RandomStateLike = Union[None, int, np.random.RandomState, np.random.Generator]


def _random_source(random_state: RandomStateLike, func: str) -> Any:
    """Turn ``random_state`` into an object with ``shuffle``, ``normal``, ``choice``."""
    if random_state is None:
        return np.random  # the module-level functions draw from the global state
    if isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return np.random.RandomState(int(random_state))
    raise TypeError(
        f"{func}: random_state must be None, an int, a numpy RandomState or "
        f"Generator, got {type(random_state).__name__}"
    )


def _check_count(value: Any, name: str, func: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{func}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{func}: {name} must be >= {minimum}, got {value}")
    return int(value)


def _check_noise(noise: Any, func: str) -> Optional[float]:
    if noise is None:
        return None
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real):
        raise TypeError(
            f"{func}: noise must be None or a number, got {type(noise).__name__}"
        )
    if not 0 <= noise < float("inf"):  # also rejects nan
        raise ValueError(f"{func}: noise must be a finite number >= 0, got {noise}")
    return float(noise)


def make_moons(
    n_samples: Union[int, Tuple[int, int]] = 100,
    *,
    noise: Optional[float] = None,
    random_state: RandomStateLike = None,
    shuffle: bool = True,
) -> Tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (scikit-learn's ``make_moons`` algorithm).

    The upper ("outer") half circle of radius 1 centred at (0, 0) is class 0;
    the lower ("inner") half circle centred at (1, 0.5) is class 1. Points are
    evenly spaced in angle. The samples are then shuffled and, if ``noise`` is
    given, gaussian noise of that standard deviation is added to every
    coordinate, drawing random numbers in the same order as scikit-learn, so
    equal seeds give equal arrays.

    Args:
        n_samples: total number of points (class 0 gets ``n_samples // 2``),
            or a pair ``(n_outer, n_inner)``.
        noise: standard deviation of the gaussian noise, or None for none.
        random_state: seed or random source (see the module docstring).
        shuffle: shuffle the samples (scikit-learn's default); when false,
            all class-0 points come first.

    Returns:
        ``X`` of shape (n_samples, 2), float64, and ``y`` in {0, 1}, int64.
    """
    func = "make_moons"
    if isinstance(n_samples, tuple):
        if len(n_samples) != 2:
            raise ValueError(
                f"{func}: n_samples must be an int or a pair (n_outer, n_inner), "
                f"got a tuple of length {len(n_samples)}"
            )
        n_outer = _check_count(n_samples[0], "n_samples[0]", func, 0)
        n_inner = _check_count(n_samples[1], "n_samples[1]", func, 0)
        if n_outer + n_inner < 1:
            raise ValueError(f"{func}: n_samples must add up to >= 1, got {n_samples}")
    else:
        total = _check_count(n_samples, "n_samples", func, 1)
        n_outer = total // 2
        n_inner = total - n_outer
    noise = _check_noise(noise, func)
    rng = _random_source(random_state, func)

    outer_angle = np.linspace(0.0, np.pi, n_outer)
    inner_angle = np.linspace(0.0, np.pi, n_inner)
    x0 = np.concatenate([np.cos(outer_angle), 1.0 - np.cos(inner_angle)])
    x1 = np.concatenate([np.sin(outer_angle), 1.0 - np.sin(inner_angle) - 0.5])
    X = np.column_stack([x0, x1]).astype(np.float64)
    y = np.concatenate([np.zeros(n_outer, np.int64), np.ones(n_inner, np.int64)])

    if shuffle:
        order = np.arange(X.shape[0])
        rng.shuffle(order)
        X, y = X[order], y[order]
    if noise is not None:
        X += rng.normal(scale=noise, size=X.shape)
    return X, y


_XOR_CORNERS = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
_XOR_LABELS = np.array([0, 1, 1, 0], dtype=np.int64)


def make_xor(
    n_samples: int = 4,
    *,
    noise: Optional[float] = None,
    random_state: RandomStateLike = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """The XOR problem: corners of the unit square, label ``x0 XOR x1``.

    With ``n_samples=4`` the result is the truth table, in order:
    ``X = [[0, 0], [0, 1], [1, 0], [1, 1]]`` and ``y = [0, 1, 1, 0]``. Any
    other ``n_samples`` draws that many corners uniformly at random. If
    ``noise`` is given, gaussian noise of that standard deviation is added to
    every coordinate (the labels stay those of the corners).

    Args:
        n_samples: number of points, >= 1.
        noise: standard deviation of the gaussian noise, or None for none.
        random_state: seed or random source (see the module docstring); not
            used for the noiseless truth table.

    Returns:
        ``X`` of shape (n_samples, 2), float64, and ``y`` in {0, 1}, int64.
    """
    func = "make_xor"
    n_samples = _check_count(n_samples, "n_samples", func, 1)
    noise = _check_noise(noise, func)
    if n_samples == 4 and noise is None:
        return _XOR_CORNERS.copy(), _XOR_LABELS.copy()

    rng = _random_source(random_state, func)
    if n_samples == 4:
        corner = np.arange(4)
    else:
        corner = np.asarray(rng.choice(4, size=n_samples), dtype=np.intp)
    X = _XOR_CORNERS[corner].copy()
    y = _XOR_LABELS[corner].copy()
    if noise is not None:
        X += rng.normal(scale=noise, size=X.shape)
    return X, y


def make_spirals(
    n_samples: int = 100,
    n_classes: int = 2,
    *,
    noise: float = 0.0,
    random_state: RandomStateLike = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms in the plane, one arm per class.

    Arm ``k`` has ``m`` points (the ``n_samples`` are split as evenly as
    possible, earlier classes taking the remainder) at radius
    ``r = linspace(0, 1, m)`` and angle ``2*pi*k/n_classes + 4*r`` (radians),
    that is at ``(r cos(angle), r sin(angle))``. With ``noise > 0``, gaussian
    noise of that standard deviation is added to every coordinate. Samples are
    ordered by class.

    Args:
        n_samples: total number of points, >= ``n_classes``.
        n_classes: number of arms (classes), >= 2.
        noise: standard deviation of the gaussian noise, >= 0.
        random_state: seed or random source (see the module docstring); only
            used when ``noise > 0``.

    Returns:
        ``X`` of shape (n_samples, 2), float64, and ``y`` in
        ``{0, ..., n_classes - 1}``, int64.
    """
    func = "make_spirals"
    n_samples = _check_count(n_samples, "n_samples", func, 1)
    n_classes = _check_count(n_classes, "n_classes", func, 2)
    if n_samples < n_classes:
        raise ValueError(
            f"{func}: n_samples ({n_samples}) must be >= n_classes ({n_classes})"
        )
    noise = _check_noise(0.0 if noise is None else noise, func)

    base, extra = divmod(n_samples, n_classes)
    counts = [base + (1 if k < extra else 0) for k in range(n_classes)]
    radius = np.concatenate([np.linspace(0.0, 1.0, m) for m in counts])
    y = np.repeat(np.arange(n_classes, dtype=np.int64), counts)
    angle = 2.0 * np.pi * y / n_classes + 4.0 * radius
    X = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    if noise:
        rng = _random_source(random_state, func)
        X += rng.normal(scale=noise, size=X.shape)
    return X.astype(np.float64, copy=False), y


def load_digits() -> Tuple[np.ndarray, np.ndarray]:
    """The 8x8 handwritten digits (1797 images, 10 classes), via scikit-learn.

    Returns:
        ``X`` of shape (1797, 64), float64 pixel intensities in [0, 16], and
        ``y`` of shape (1797,), int64 digits 0-9.

    Raises:
        ImportError: scikit-learn is not installed
            (``pip install fastgrad[sklearn]``).
    """
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as error:
        raise ImportError(
            "load_digits needs scikit-learn: pip install fastgrad[sklearn]"
        ) from error
    bunch = sklearn_load_digits()
    return (
        np.asarray(bunch.data, dtype=np.float64),
        np.asarray(bunch.target, dtype=np.int64),
    )
