"""Tests for fastgrad.datasets."""

import sys

import numpy as np
import pytest

from fastgrad.datasets import load_digits, make_moons, make_spirals, make_xor

GENERATORS = [make_moons, make_xor, make_spirals]


def check_arrays(X, y, n_samples, n_features=2):
    assert isinstance(X, np.ndarray) and isinstance(y, np.ndarray)
    assert X.shape == (n_samples, n_features) and y.shape == (n_samples,)
    assert X.dtype == np.float64 and y.dtype == np.int64
    assert np.all(np.isfinite(X))


# -- make_moons -------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_moons_shapes_and_labels(n):
    X, y = make_moons(n, random_state=0)
    check_arrays(X, y, n)
    assert (y == 0).sum() == n // 2 and (y == 1).sum() == n - n // 2


def test_moons_geometry_without_noise():
    X, y = make_moons(50, random_state=0)
    outer, inner = X[y == 0], X[y == 1]
    # class 0: upper unit half circle around (0, 0)
    assert np.allclose(np.hypot(outer[:, 0], outer[:, 1]), 1.0)
    assert np.all(outer[:, 1] >= -1e-12)
    # class 1: lower unit half circle around (1, 0.5)
    assert np.allclose(np.hypot(inner[:, 0] - 1.0, inner[:, 1] - 0.5), 1.0)
    assert np.all(inner[:, 1] <= 0.5 + 1e-12)
    # evenly spaced angles, end points included
    angles = np.sort(np.arctan2(outer[:, 1], outer[:, 0]))
    assert np.allclose(angles, np.linspace(0, np.pi, 25))


def test_moons_unshuffled_order_and_pair_sizes():
    X, y = make_moons((3, 5), shuffle=False)
    check_arrays(X, y, 8)
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert np.allclose(X[:3], [[1, 0], [0, 1], [-1, 0]], atol=1e-12)
    assert np.allclose(X[3], [0, 0.5]) and np.allclose(X[-1], [2, 0.5])


def test_moons_noise_moves_points():
    clean, y_clean = make_moons(200, random_state=3)
    noisy, y_noisy = make_moons(200, noise=0.1, random_state=3)
    assert np.array_equal(y_clean, y_noisy)  # same shuffle, then noise
    offsets = noisy - clean
    assert 0.07 < offsets.std() < 0.13


@pytest.mark.parametrize("noise", [None, 0.2])
@pytest.mark.parametrize("n_samples", [1, 10, 101, (4, 9)])
def test_moons_matches_sklearn(n_samples, noise):
    sk = pytest.importorskip("sklearn.datasets")
    for seed in (0, 42):
        X, y = make_moons(n_samples, noise=noise, random_state=seed)
        X_ref, y_ref = sk.make_moons(n_samples, noise=noise, random_state=seed)
        assert np.array_equal(X, X_ref) and np.array_equal(y, y_ref)
    X, y = make_moons(n_samples, noise=noise, random_state=np.random.RandomState(5))
    X_ref, y_ref = sk.make_moons(n_samples, noise=noise, random_state=np.random.RandomState(5))
    assert np.array_equal(X, X_ref) and np.array_equal(y, y_ref)


def test_moons_global_state_like_sklearn():
    sk = pytest.importorskip("sklearn.datasets")
    np.random.seed(1337)
    X, y = make_moons(100, noise=0.1)
    np.random.seed(1337)
    X_ref, y_ref = sk.make_moons(100, noise=0.1)
    assert np.array_equal(X, X_ref) and np.array_equal(y, y_ref)


# -- make_xor ----------------------------------------------------------------------


def test_xor_truth_table():
    X, y = make_xor()
    check_arrays(X, y, 4)
    assert X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert y.tolist() == [0, 1, 1, 0]
    X[0, 0] = 9.0  # callers get their own copy
    assert make_xor()[0][0, 0] == 0.0


def test_xor_truth_table_with_noise_keeps_order():
    X, y = make_xor(4, noise=0.05, random_state=0)
    assert y.tolist() == [0, 1, 1, 0]
    assert np.abs(X - [[0, 0], [0, 1], [1, 0], [1, 1]]).max() < 0.5


@pytest.mark.parametrize("n", [1, 3, 5, 400])
def test_xor_random_corners(n):
    X, y = make_xor(n, random_state=1)
    check_arrays(X, y, n)
    assert set(np.unique(X)) <= {0.0, 1.0}
    assert np.array_equal(y, (X[:, 0] != X[:, 1]).astype(np.int64))
    if n == 400:
        counts = np.unique(X, axis=0, return_counts=True)[1]
        assert len(counts) == 4 and counts.min() > 60


def test_xor_noise_keeps_labels_of_the_nearest_corner():
    X, y = make_xor(300, noise=0.1, random_state=np.random.default_rng(2))
    check_arrays(X, y, 300)
    corners = np.round(X).clip(0, 1)
    assert np.array_equal(y, (corners[:, 0] != corners[:, 1]).astype(np.int64))
    assert not set(np.unique(X)) <= {0.0, 1.0}


# -- make_spirals -----------------------------------------------------------------


@pytest.mark.parametrize("n, k", [(100, 2), (7, 3), (10, 10), (301, 4)])
def test_spirals_shapes_and_class_sizes(n, k):
    X, y = make_spirals(n, k)
    check_arrays(X, y, n)
    counts = np.bincount(y, minlength=k)
    assert counts.sum() == n and counts.max() - counts.min() <= 1
    assert np.all(np.diff(y) >= 0)  # ordered by class


def test_spirals_geometry():
    X, y = make_spirals(60, 3)
    for k in range(3):
        arm = X[y == k]
        radius = np.hypot(arm[:, 0], arm[:, 1])
        assert np.allclose(radius, np.linspace(0, 1, 20))
        # the outermost point sits at angle 2*pi*k/3 + 4 radians
        angle = 2 * np.pi * k / 3 + 4.0
        assert np.allclose(arm[-1], [np.cos(angle), np.sin(angle)])


def test_spirals_noise():
    clean, _ = make_spirals(500, 2)
    noisy, _ = make_spirals(500, 2, noise=0.2, random_state=0)
    assert 0.15 < (noisy - clean).std() < 0.25
    again, _ = make_spirals(500, 2, noise=0.2, random_state=0)
    assert np.array_equal(noisy, again)


# -- reproducibility and random sources --------------------------------------------


@pytest.mark.parametrize("make", GENERATORS)
def test_reproducible_with_seeds(make):
    kwargs = dict(noise=0.1)
    a = make(50, random_state=7, **kwargs)
    b = make(50, random_state=7, **kwargs)
    c = make(50, random_state=8, **kwargs)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    g1 = make(50, random_state=np.random.default_rng(3), **kwargs)
    g2 = make(50, random_state=np.random.default_rng(3), **kwargs)
    assert np.array_equal(g1[0], g2[0])
    r1 = make(50, random_state=np.random.RandomState(3), **kwargs)
    r2 = make(50, random_state=np.random.RandomState(3), **kwargs)
    assert np.array_equal(r1[0], r2[0])
    np.random.seed(11)
    s1 = make(50, **kwargs)
    np.random.seed(11)
    s2 = make(50, **kwargs)
    assert np.array_equal(s1[0], s2[0])


# -- bad arguments -----------------------------------------------------------------


@pytest.mark.parametrize("make", GENERATORS)
@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(n_samples=0), ValueError),
        (dict(n_samples=-3), ValueError),
        (dict(n_samples=2.5), TypeError),
        (dict(n_samples="10"), TypeError),
        (dict(n_samples=True), TypeError),
        (dict(n_samples=10, noise=-0.1), ValueError),
        (dict(n_samples=10, noise=float("nan")), ValueError),
        (dict(n_samples=10, noise="big"), TypeError),
        (dict(n_samples=10, noise=0.1, random_state="seed"), TypeError),
        (dict(n_samples=10, noise=0.1, random_state=1.5), TypeError),
    ],
)
def test_bad_arguments(make, kwargs, error):
    with pytest.raises(error, match=make.__name__):
        make(**kwargs)


@pytest.mark.parametrize(
    "make, kwargs",
    [
        (make_moons, dict(n_samples=(1, 2, 3))),
        (make_moons, dict(n_samples=(0, 0))),
        (make_moons, dict(n_samples=(-1, 3))),
        (make_spirals, dict(n_samples=10, n_classes=1)),
        (make_spirals, dict(n_samples=2, n_classes=3)),
    ],
)
def test_bad_arguments_specific(make, kwargs):
    with pytest.raises(ValueError, match=make.__name__):
        make(**kwargs)


def test_no_sklearn_import_at_module_level():
    import ast
    import pathlib

    import fastgrad.datasets as datasets

    tree = ast.parse(pathlib.Path(datasets.__file__).read_text())
    for node in tree.body:  # top-level statements only
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            assert not any(name.startswith("sklearn") for name in names)


# -- load_digits ----------------------------------------------------------------------


def test_load_digits():
    pytest.importorskip("sklearn")
    X, y = load_digits()
    check_arrays(X, y, 1797, 64)
    assert X.min() == 0.0 and X.max() == 16.0
    assert sorted(np.unique(y).tolist()) == list(range(10))


def test_load_digits_without_sklearn(monkeypatch):
    # a None entry in sys.modules makes `import sklearn...` raise ImportError
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install fastgrad\[sklearn\]"):
        load_digits()
