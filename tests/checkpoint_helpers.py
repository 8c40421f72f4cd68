"""Helpers shared by the checkpoint tests (imported by test_serialization*.py)."""

import math

import numpy as np

from fastgrad.serialization import load, save

# -- a strict comparison: types, key order, dtypes, shapes and bits -------------

def assert_same(got, expected, where="obj"):
    assert type(got) is type(expected), f"{where}: {type(got)} != {type(expected)}"
    if isinstance(expected, dict):
        assert list(got.keys()) == list(expected.keys()), f"{where}: key order differs"
        for k in expected:
            assert_same(got[k], expected[k], f"{where}[{k!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), f"{where}: length differs"
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_same(g, e, f"{where}[{i}]")
    elif isinstance(expected, (np.ndarray, np.generic)):
        assert got.dtype == expected.dtype, f"{where}: dtype {got.dtype} != {expected.dtype}"
        assert np.shape(got) == np.shape(expected), f"{where}: shape differs"
        # bitwise (nan == nan, -0.0 != 0.0)
        assert np.asarray(got).tobytes() == np.asarray(expected).tobytes(), f"{where}: data"
    elif isinstance(expected, float):
        assert (math.isnan(got) and math.isnan(expected)) or (
            got == expected and math.copysign(1, got) == math.copysign(1, expected)), where
    elif isinstance(expected, complex):
        assert_same(got.real, expected.real, where)
        assert_same(got.imag, expected.imag, where)
    else:
        assert got == expected, f"{where}: {got!r} != {expected!r}"


def roundtrip(obj, tmp_path, name="ckpt.npz"):
    path = tmp_path / name
    save(obj, path)
    return load(path)


def optimizer_like_state():
    rng = np.random.default_rng(0)
    return {
        "defaults": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                     "nesterov": False, "name": None},
        "step": 17,
        "exp_avg": [rng.standard_normal((3, 4)), rng.standard_normal(5).astype(np.float32)],
        "exp_avg_sq": [rng.random((3, 4)), rng.random(5).astype(np.float32)],
    }
