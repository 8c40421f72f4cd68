"""The one door to BLAS: fastgrad._blas.gemm, through its test shim.

``_gemm_test(A, B, C, trans_a, trans_b, alpha, beta)`` computes, in place,
``C = alpha * op(A) @ op(B) + beta * C`` on row-major arrays, where op(A) is
A or A.T.  Checked against numpy for float32 and float64, every transpose
combination, zero-size m, n and k, and alpha/beta.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgrad._blas import _gemm_test

DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}
FLAGS = list(itertools.product([False, True], repeat=2))


def operands(rng, m, n, k, trans_a, trans_b, dtype):
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return A, B


def reference(A, B, C, trans_a, trans_b, alpha, beta):
    a = A.T if trans_a else A
    b = B.T if trans_b else B
    out = alpha * (a.astype(np.float64) @ b.astype(np.float64))
    if beta != 0:
        out = out + beta * C.astype(np.float64)
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("trans_a,trans_b", FLAGS, ids=["NN", "NT", "TN", "TT"])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (2, 3, 4), (5, 1, 3), (1, 7, 2), (3, 4, 1),
                                   (17, 9, 33), (64, 48, 20)])
def test_gemm_matches_numpy(m, n, k, trans_a, trans_b, dtype):
    rng = np.random.default_rng(m * 100 + n * 10 + k)
    A, B = operands(rng, m, n, k, trans_a, trans_b, dtype)
    C = np.full((m, n), np.nan, dtype=dtype)           # beta == 0: C is not read
    out = _gemm_test(A, B, C, trans_a, trans_b)
    assert out is C
    np.testing.assert_allclose(C, reference(A, B, C, trans_a, trans_b, 1.0, 0.0),
                               **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("trans_a,trans_b", FLAGS, ids=["NN", "NT", "TN", "TT"])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (2.5, 0.0), (-1.0, 0.5), (0.0, 2.0)])
def test_gemm_alpha_beta(alpha, beta, trans_a, trans_b, dtype):
    rng = np.random.default_rng(11)
    m, n, k = 4, 3, 5
    A, B = operands(rng, m, n, k, trans_a, trans_b, dtype)
    C = rng.standard_normal((m, n)).astype(dtype)
    expected = reference(A, B, C, trans_a, trans_b, alpha, beta)
    _gemm_test(A, B, C, trans_a, trans_b, alpha, beta)
    np.testing.assert_allclose(C, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("trans_a,trans_b", FLAGS, ids=["NN", "NT", "TN", "TT"])
@pytest.mark.parametrize("m,n,k", [(0, 3, 2), (3, 0, 2), (0, 0, 2), (3, 2, 0), (0, 2, 0),
                                   (2, 0, 0), (0, 0, 0)])
def test_gemm_zero_sizes(m, n, k, trans_a, trans_b, dtype):
    rng = np.random.default_rng(0)
    A, B = operands(rng, m, n, k, trans_a, trans_b, dtype)
    # k == 0: an empty sum, so C = beta * C (zeros for beta == 0, even over nan)
    C = np.full((m, n), np.nan, dtype=dtype)
    _gemm_test(A, B, C, trans_a, trans_b)
    np.testing.assert_array_equal(C, np.zeros((m, n), dtype))
    C = np.full((m, n), 3.0, dtype=dtype)
    _gemm_test(A, B, C, trans_a, trans_b, 2.0, 0.5)
    np.testing.assert_array_equal(C, np.full((m, n), 1.5, dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@settings(max_examples=50, deadline=None)
@given(m=st.integers(0, 9), n=st.integers(0, 9), k=st.integers(0, 9),
       flags=st.sampled_from(FLAGS), alpha=st.sampled_from([1.0, -0.5, 3.0]),
       beta=st.sampled_from([0.0, 1.0, -2.0]), seed=st.integers(0, 2 ** 32 - 1))
def test_gemm_random_shapes(dtype, m, n, k, flags, alpha, beta, seed):
    rng = np.random.default_rng(seed)
    trans_a, trans_b = flags
    A, B = operands(rng, m, n, k, trans_a, trans_b, dtype)
    C = rng.standard_normal((m, n)).astype(dtype)
    expected = reference(A, B, C, trans_a, trans_b, alpha, beta)
    _gemm_test(A, B, C, trans_a, trans_b, alpha, beta)
    np.testing.assert_allclose(C, expected, **TOL[dtype])


def test_gemm_does_not_touch_its_inputs():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((3, 4))
    B = rng.standard_normal((4, 2))
    A0, B0 = A.copy(), B.copy()
    _gemm_test(A, B, np.zeros((3, 2)))
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(B, B0)


@pytest.mark.parametrize("shapes,flags", [
    (((2, 3), (4, 5), (2, 5)), (False, False)),     # inner dimensions differ
    (((2, 3), (3, 5), (2, 4)), (False, False)),     # wrong C columns
    (((2, 3), (3, 5), (3, 5)), (False, False)),     # wrong C rows
    (((2, 3), (3, 5), (2, 5)), (True, False)),      # A.T is 3 x 2
    (((2, 3), (3, 5), (2, 5)), (False, True)),      # B.T is 5 x 3
])
def test_gemm_shape_mismatch_is_a_value_error(shapes, flags):
    sa, sb, sc = shapes
    with pytest.raises(ValueError):
        _gemm_test(np.ones(sa), np.ones(sb), np.zeros(sc), *flags)


def test_gemm_rejects_non_contiguous_or_mixed_dtypes():
    with pytest.raises((ValueError, TypeError)):
        _gemm_test(np.ones((4, 4))[:, ::2], np.ones((2, 3)), np.zeros((4, 3)))
    with pytest.raises((ValueError, TypeError)):
        _gemm_test(np.ones((2, 2), np.float32), np.ones((2, 2)), np.zeros((2, 2)))
