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
import fastgrad.micrograd  # noqa: F401  (fg.micrograd below)

I64_MAX = np.iinfo(np.int64).max
I64_MIN = np.iinfo(np.int64).min


# -- item 8: integers beyond int64 -----------------------------------------------------

@pytest.mark.parametrize("data", [[2**63], [[1, 2**63]], 2**63, [2**64], [-2**63 - 1],
                                  [2**63, -1], [np.uint64(2**63), -1], [10**30],
                                  [-1] * 40 + [2**63]],
                         ids=["2**63", "nested", "scalar", "2**64", "-2**63-1",
                              "mixed-sign", "numpy-uint64-scalar", "10**30", "long-list"])
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


# -- fastgrad.nn constructors -------------------------------------------------------------

@pytest.mark.parametrize("args", [(2.5, 3), (2, 3.0), ("2", 3), (True, 3), (None, 3),
                                  (np.float64(2), 3)],
                         ids=["float-nin", "float-nout", "str", "bool", "None", "numpy-float"])
def test_linear_rejects_non_int_sizes(args):
    with pytest.raises(TypeError, match="Linear: n(in|out) must be an int"):
        fg.nn.Linear(*args)


def test_linear_rejects_negative_size():
    with pytest.raises(ValueError, match="Linear: nout must be >= 0, got -3"):
        fg.nn.Linear(2, -3)


def test_linear_accepts_numpy_int_sizes():
    lin = fg.nn.Linear(np.int64(2), np.int32(3))
    assert lin.weight.shape == (2, 3) and type(lin.nin) is int


@pytest.mark.parametrize("kwargs,match", [
    (dict(bias="no"), "bias"), (dict(dtype="int8"), "dtype"), (dict(dtype="int64"), "dtype"),
    (dict(dtype="float16"), "dtype"), (dict(dtype="nonsense"), "dtype"),
    (dict(generator=5), "generator"),
])
def test_linear_rejects_bad_options(kwargs, match):
    with pytest.raises(TypeError, match=f"Linear: .*{match}"):
        fg.nn.Linear(2, 3, **kwargs)


@pytest.mark.parametrize("nouts", ["12", 3, [3.5], [2, "1"], [True], {"a": 1}],
                         ids=["str", "int", "float", "str-entry", "bool", "dict"])
def test_nn_mlp_rejects_bad_nouts(nouts):
    with pytest.raises(TypeError, match="MLP: nouts"):
        fg.nn.MLP(2, nouts)


def test_nn_mlp_rejects_negative_and_float_nin():
    with pytest.raises(ValueError, match=r"nouts\[1\] must be >= 0"):
        fg.nn.MLP(2, [3, -1])
    with pytest.raises(TypeError, match="MLP: nin"):
        fg.nn.MLP(2.0, [3])


@pytest.mark.parametrize("activation", ["ReLU", "gelu", ["relu"], fg.nn.ReLU, 1])
def test_nn_mlp_rejects_unknown_activation(activation):
    with pytest.raises(ValueError, match="activation"):
        fg.nn.MLP(2, [3, 1], activation=activation)


def test_nn_mlp_rejects_bad_dtype_and_generator_before_building():
    with pytest.raises(TypeError, match="MLP: dtype"):
        fg.nn.MLP(2, [3], dtype="int32")
    with pytest.raises(TypeError, match="MLP: generator"):
        fg.nn.MLP(2, [3], generator=np.random.RandomState(0))


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match="Sequential: item 1"):
        fg.nn.Sequential(fg.nn.Linear(2, 2), "relu")


# -- Module.load_state_dict ----------------------------------------------------------------

def _net():
    np.random.seed(0)
    return fg.nn.MLP(2, [3, 1])


@pytest.mark.parametrize("value", [np.zeros((2, 3), complex), np.zeros((2, 3), object),
                                   np.zeros((2, 3), bool), "abc", [["a"] * 3] * 2],
                         ids=["complex", "object", "bool", "str", "str-list"])
def test_module_load_state_dict_rejects_non_real_values(value):
    net = _net()
    before = net.state_dict()
    sd = dict(before, **{"0.weight": value})
    with pytest.raises(TypeError, match="'0.weight'"):
        net.load_state_dict(sd)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_module_load_state_dict_rejects_ragged_value():
    net = _net()
    sd = dict(net.state_dict(), **{"0.bias": [1.0, [2.0, 3.0], 4.0]})
    with pytest.raises(ValueError, match="'0.bias'"):
        net.load_state_dict(sd)


def test_module_load_state_dict_rejects_float32_overflow_atomically():
    np.random.seed(1)
    net = fg.nn.MLP(2, [3, 1], dtype="float32")
    before = net.state_dict()
    sd = {k: np.full(v.shape, 2.0) for k, v in before.items()}
    sd["2.bias"] = np.array([1e300])                # the last entry cannot be held
    with pytest.raises(OverflowError, match="'2.bias'"):
        net.load_state_dict(sd)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("state", [[("0.weight", np.zeros((2, 3)))], None, "state"])
def test_module_load_state_dict_rejects_non_mapping(state):
    with pytest.raises(TypeError, match="mapping"):
        _net().load_state_dict(state)


def test_module_load_state_dict_rejects_non_bool_strict():
    net = _net()
    with pytest.raises(TypeError, match="strict"):
        net.load_state_dict(net.state_dict(), strict="no")


def test_module_load_state_dict_accepts_tensors_and_int_arrays():
    net = _net()
    sd = {k: fg.tensor(np.ones(v.shape)) for k, v in net.state_dict().items()}
    sd["0.bias"] = np.array([1, 2, 3])
    net.load_state_dict(sd)
    np.testing.assert_array_equal(net[0].bias.data, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(net[0].weight.data, 1.0)


# -- fastgrad.micrograd constructors ---------------------------------------------------------

@pytest.mark.parametrize("make,match", [
    (lambda: fg.micrograd.Neuron(2.5), "Neuron: nin must be an int"),
    (lambda: fg.micrograd.Neuron("3"), "Neuron: nin must be an int"),
    (lambda: fg.micrograd.Neuron(True), "Neuron: nin must be an int"),
    (lambda: fg.micrograd.Neuron(2, nonlin="no"), "Neuron: nonlin"),
    (lambda: fg.micrograd.Layer(2, 3.0), "Layer: nout must be an int"),
    (lambda: fg.micrograd.MLP(2, "12"), "MLP: nouts"),
    (lambda: fg.micrograd.MLP(2, 3), "MLP: nouts"),
    (lambda: fg.micrograd.MLP(2, [3, 1.5]), r"MLP: nouts\[1\] must be an int"),
    (lambda: fg.micrograd.MLP(2.0, [3]), "MLP: nin must be an int"),
])
def test_micrograd_constructors_reject_non_int_sizes(make, match):
    with pytest.raises(TypeError, match=match):
        make()


@pytest.mark.parametrize("make,match", [
    (lambda: fg.micrograd.Neuron(-1), "Neuron: nin must be >= 0, got -1"),
    (lambda: fg.micrograd.Layer(2, -1), "Layer: nout must be >= 0, got -1"),
    (lambda: fg.micrograd.MLP(2, [3, -2]), r"MLP: nouts\[1\] must be >= 0, got -2"),
    (lambda: fg.micrograd.MLP(2, []), "at least one layer"),
])
def test_micrograd_constructors_reject_negative_sizes(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_micrograd_constructors_accept_numpy_ints_and_zero_inputs():
    import random

    random.seed(0)
    assert len(fg.micrograd.Neuron(np.int64(3)).parameters()) == 4
    assert len(fg.micrograd.Neuron(0).parameters()) == 1
    model = fg.micrograd.MLP(np.int32(2), (np.int64(3), 1))
    assert len(model.parameters()) == 3 * 3 + 4


# -- datasets ----------------------------------------------------------------------------------

@pytest.mark.parametrize("noise", [float("inf"), float("nan"), -0.1])
def test_make_moons_rejects_non_finite_noise(noise):
    from fastgrad.datasets import make_moons

    with pytest.raises(ValueError, match="make_moons: noise"):
        make_moons(10, noise=noise)
