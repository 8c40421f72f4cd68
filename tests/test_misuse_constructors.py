"""Constructors refuse what they cannot represent: no wraparound, no truncation.

Tensor data and factories (fg.tensor, Tensor.data, zeros/ones/full/randn):
integers beyond int64, fractions or NaN converted to int64, finite values
that would overflow float32, shapes that are not ints >= 0 and dtypes other
than float32/float64/int64 raise an exception that names the function and
the offending value.  Module, optimizer and micrograd constructors are
covered at the end of this file.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastgrad as fg

I64_MAX = np.iinfo(np.int64).max
I64_MIN = np.iinfo(np.int64).min


# -- item 8: integers beyond int64 -----------------------------------------------------

@pytest.mark.parametrize("data", [[2**63], [[1, 2**63]], 2**63, [2**64], [-2**63 - 1],
                                  [2**63, -1], [np.uint64(2**63), -1], [10**30]],
                         ids=["2**63", "nested", "scalar", "2**64", "-2**63-1",
                              "mixed-sign", "numpy-uint64-scalar", "10**30"])
def test_tensor_rejects_python_int_beyond_int64(data):
    with pytest.raises(OverflowError, match="int64") as info:
        fg.tensor(data)
    assert "tensor" in str(info.value)


def test_tensor_overflow_error_names_the_value():
    with pytest.raises(OverflowError, match=str(2**63)):
        fg.tensor([1, 2, 2**63])


def test_tensor_keeps_int64_extremes():
    t = fg.tensor([I64_MIN, I64_MAX])
    assert t.dtype == np.int64
    assert t.data.tolist() == [I64_MIN, I64_MAX]


@pytest.mark.parametrize("dtype", [None, "int64"])
def test_tensor_rejects_uint64_array_beyond_int64(dtype):
    a = np.array([1, 2**63 + 5], dtype=np.uint64)
    with pytest.raises(OverflowError, match=str(2**63 + 5)):
        fg.tensor(a, dtype=dtype)


def test_tensor_accepts_uint64_array_within_int64():
    a = np.array([0, I64_MAX], dtype=np.uint64)
    assert fg.tensor(a).data.tolist() == [0, I64_MAX]


def test_tensor_big_ints_become_floats_when_asked():
    t = fg.tensor([2**64, 3], dtype="float64")
    assert t.dtype == np.float64 and t.data.tolist() == [float(2**64), 3.0]
    # a float in the data makes numpy's float promotion intentional
    assert fg.tensor([2**63, 0.5]).data.tolist() == [float(2**63), 0.5]


def test_tensor_rejects_int_too_large_even_for_float():
    with pytest.raises(OverflowError):
        fg.tensor([10**400], dtype="float64")


# -- item 8: float -> int64 is exact or refused --------------------------------------------

def test_tensor_int64_dtype_rejects_fraction():
    with pytest.raises(ValueError, match="1.5") as info:
        fg.tensor([1.0, 1.5], dtype="int64")
    assert "int64" in str(info.value) and "index (1,)" in str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_tensor_int64_dtype_rejects_non_finite(bad):
    with pytest.raises(ValueError, match="int64"):
        fg.tensor([0.0, bad], dtype="int64")


@pytest.mark.parametrize("bad", [2.0**63, -2.0**64, 1e300])
def test_tensor_int64_dtype_rejects_out_of_range_float(bad):
    with pytest.raises(OverflowError, match="int64"):
        fg.tensor(np.array([bad]), dtype="int64")


def test_tensor_int64_dtype_takes_integral_floats():
    t = fg.tensor(np.array([3.0, -2.0, -2.0**63]), dtype="int64")
    assert t.data.tolist() == [3, -2, I64_MIN]


def test_tensor_float32_dtype_rejects_overflow_to_inf():
    with pytest.raises(OverflowError, match="float32"):
        fg.tensor(np.array([1.0, 1e300]), dtype="float32")
    # inf itself is a value float32 holds
    assert np.isinf(fg.tensor([np.inf], dtype="float32").data[0])


# -- item 9: dtypes ------------------------------------------------------------------------

@pytest.mark.parametrize("factory", ["zeros", "ones", "randn"])
@pytest.mark.parametrize("dtype", ["int8", "int32", "uint8", "float16", "complex64", bool])
def test_factories_reject_unsupported_dtype(factory, dtype):
    with pytest.raises(TypeError, match=factory):
        getattr(fg, factory)(3, dtype=dtype)


@pytest.mark.parametrize("dtype", ["int8", "float16", "complex128"])
def test_full_rejects_unsupported_dtype(dtype):
    with pytest.raises(TypeError, match="full"):
        fg.full(3, 1.0, dtype=dtype)


def test_randn_rejects_int64_dtype():
    with pytest.raises(TypeError, match="randn"):
        fg.randn(3, dtype="int64")


@pytest.mark.parametrize("factory", [fg.zeros, fg.ones])
def test_zeros_ones_accept_int64(factory):
    t = factory(2, 2, dtype="int64")
    assert t.dtype == np.int64 and t.shape == (2, 2)


def test_randn_rejects_a_non_generator():
    with pytest.raises(TypeError, match="generator"):
        fg.randn(3, generator=7)


# -- item 9: shapes ------------------------------------------------------------------------

@pytest.mark.parametrize("factory", [fg.zeros, fg.ones, fg.randn])
@pytest.mark.parametrize("shape", [("12",), (2.5,), ((2, 2.0),), (True,), ([3, None],),
                                   (np.float64(2),), ("2", "3")],
                         ids=["str", "float", "float-in-tuple", "bool", "None",
                              "numpy-float", "strs"])
def test_factories_reject_non_int_shape(factory, shape):
    with pytest.raises(TypeError, match=f"{factory.__name__}: shape entry"):
        factory(*shape)


def test_ones_rejects_string_shape():
    """fg.ones("12") used to give shape (1, 2)."""
    with pytest.raises(TypeError, match="'12'"):
        fg.ones("12")


def test_zeros_rejects_float_shape():
    """fg.zeros(2.5) used to truncate to shape (2,)."""
    with pytest.raises(TypeError, match="2.5"):
        fg.zeros(2.5)


@pytest.mark.parametrize("factory", [fg.zeros, fg.ones, fg.randn])
def test_factories_reject_negative_shape(factory):
    with pytest.raises(ValueError, match="-1"):
        factory(2, -1)


@pytest.mark.parametrize("shape", ["3", 2.5, (2, -1), (True, 2), None])
def test_full_rejects_bad_shape(shape):
    with pytest.raises((TypeError, ValueError), match="full: shape entry"):
        fg.full(shape, 1.0)


def test_factories_accept_numpy_int_and_zero_sizes():
    assert fg.zeros(np.int32(2), np.int64(0)).shape == (2, 0)
    assert fg.ones((np.uint8(3),)).shape == (3,)
    assert fg.full(np.int64(2), 1.0).shape == (2,)
    assert fg.randn(0).shape == (0,)


# -- full's fill value ------------------------------------------------------------------------

@pytest.mark.parametrize("fill", [1 + 2j, np.complex128(1), "1", None, [1.0], True])
def test_full_rejects_non_real_fill_value(fill):
    with pytest.raises(TypeError, match="full: fill_value"):
        fg.full(2, fill)


def test_full_int64_rejects_fraction_and_overflow():
    with pytest.raises(ValueError, match="1.5"):
        fg.full(2, 1.5, dtype="int64")
    with pytest.raises(ValueError, match="int64"):
        fg.full(2, float("nan"), dtype="int64")
    with pytest.raises(OverflowError, match=str(2**63)):
        fg.full(2, 2**63, dtype="int64")
    assert fg.full(2, 7.0, dtype="int64").data.tolist() == [7, 7]


def test_full_float32_rejects_overflow():
    with pytest.raises(OverflowError, match="float32"):
        fg.full(2, 1e300, dtype="float32")


# -- Tensor(...) arguments and Tensor.data assignment ---------------------------------------

@pytest.mark.parametrize("flag", ["yes", 1, None])
def test_tensor_rejects_non_bool_requires_grad(flag):
    with pytest.raises(TypeError, match="requires_grad"):
        fg.Tensor([1.0], requires_grad=flag)


def test_tensor_rejects_non_str_label():
    with pytest.raises(TypeError, match="label"):
        fg.tensor([1.0], label=3)


@pytest.mark.parametrize("value", [[1j, 2.0], np.array([1, 2], dtype=object), "ab",
                                   [object(), 1], np.array(["a", "b"])],
                         ids=["complex", "object", "str", "objects", "str-array"])
def test_data_assignment_rejects_non_numbers(value):
    t = fg.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="Tensor.data"):
        t.data = value
    assert t.data.tolist() == [1.0, 2.0]


def test_data_assignment_rejects_fraction_into_int_tensor():
    t = fg.tensor([1, 2])
    with pytest.raises(ValueError, match="1.5"):
        t.data = [1.5, 2.0]
    assert t.data.tolist() == [1, 2]


def test_data_assignment_rejects_wraparound_into_int_tensor():
    t = fg.tensor([1, 2])
    with pytest.raises(OverflowError, match="int64"):
        t.data = np.array([2**63, 1], dtype=np.uint64)
    with pytest.raises(OverflowError, match="int64"):
        t.data = [2**70, 1]
    assert t.data.tolist() == [1, 2]


def test_data_assignment_rejects_float32_overflow():
    t = fg.tensor(np.zeros(2, np.float32))
    with pytest.raises(OverflowError, match="float32"):
        t.data = np.array([1e300, 0.0])
    assert t.data.tolist() == [0.0, 0.0]


def test_data_assignment_still_converts_exact_values_in_place():
    t = fg.tensor([1, 2])
    home = t.data
    t.data = [3.0, 4.0]
    assert t.data is home and t.data.tolist() == [3, 4]
