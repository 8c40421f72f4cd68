"""fastgrad.Tensor: construction, dtypes, conversion, properties and gradients' basics.

The ops themselves are tested in test_tensor_ops.py, the losses in
test_functional.py and lowering/replay in test_array_tape.py.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import fastgrad as fg

F64, F32, I64 = np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.int64)


# -- construction and dtypes -------------------------------------------------------

def test_python_floats_give_float64():
    t = fg.tensor([1.0, 2.5])
    assert isinstance(t, fg.Tensor)
    assert t.dtype == F64
    np.testing.assert_array_equal(t.data, [1.0, 2.5])


def test_python_scalar_gives_zero_dim_float64():
    t = fg.tensor(3.5)
    assert t.shape == () and t.ndim == 0 and t.size == 1 and t.dtype == F64
    assert t.item() == 3.5


def test_numpy_scalars_keep_their_float_dtype():
    assert fg.tensor(np.float32(2.5)).dtype == F32
    assert fg.tensor(np.float64(2.5)).dtype == F64
    assert fg.tensor(np.int32(2)).dtype == I64


def test_mixed_int_and_float_list_gives_float64():
    assert fg.tensor([1, 2.5]).dtype == F64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_arrays_keep_their_dtype(dtype):
    a = np.array([[1.0, 2.0]], dtype=dtype)
    t = fg.tensor(a)
    assert t.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(t.data, a)


@pytest.mark.parametrize("data", [[1, 2, 3], np.arange(3, dtype=np.int32),
                                  np.arange(3, dtype=np.uint8), np.arange(3, dtype=np.int64),
                                  [True, False]],
                         ids=["list", "int32", "uint8", "int64", "bool"])
def test_integer_data_gives_int64(data):
    t = fg.tensor(data)
    assert t.dtype == I64
    np.testing.assert_array_equal(t.data, np.asarray(data).astype(np.int64))


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(ValueError):
        fg.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(ValueError):
        fg.tensor([1.0, 2.0], dtype=np.int64, requires_grad=True)


@pytest.mark.parametrize("spec,expected", [
    ("float32", F32), (np.float32, F32), ("f4", F32), (np.dtype("float32"), F32),
    ("float64", F64), (np.float64, F64), ("f8", F64), ("<f8", F64), (float, F64),
    ("d", F64), ("int64", I64), (int, I64),
])
def test_dtype_argument_accepts_numpy_dtype_specs(spec, expected):
    t = fg.tensor([1, 2], dtype=spec)
    assert t.dtype == expected
    np.testing.assert_array_equal(t.data, [1, 2])


def test_dtype_argument_converts_float_data():
    t = fg.tensor(np.array([1.5, 2.25]), dtype="float32", requires_grad=True)
    assert t.dtype == F32 and t.requires_grad
    np.testing.assert_array_equal(t.data, np.array([1.5, 2.25], np.float32))


@pytest.mark.parametrize("spec", ["complex128", "U3", object, "not-a-dtype", "int32", "int8",
                                  "uint8", bool, "float16", "longdouble"])
def test_unsupported_dtype_argument_is_a_type_error(spec):
    with pytest.raises(TypeError):
        fg.tensor([1.0], dtype=spec)


@pytest.mark.parametrize("data", [[[1.0, 2.0], [3.0]], [1.0, [2.0, 3.0]], [[1], [2, 3]]],
                         ids=["ragged-rows", "scalar-and-list", "ragged-ints"])
def test_ragged_lists_are_value_errors(data):
    with pytest.raises(ValueError):
        fg.tensor(data)


@pytest.mark.parametrize("data", ["abc", b"abc", ["a", "b"], [object()], None, {"a": 1},
                                  [1 + 2j]],
                         ids=["str", "bytes", "str-list", "object", "None", "dict",
                              "complex"])
def test_strings_and_objects_are_type_errors(data):
    with pytest.raises(TypeError):
        fg.tensor(data)


def test_tensor_copies_its_input():
    a = np.array([1.0, 2.0])
    t = fg.tensor(a)
    a[0] = 99.0
    assert t.data[0] == 1.0
    u = fg.tensor(t)
    t.data[1] = -1.0
    assert u.data[1] == 2.0


def test_tensor_from_non_contiguous_array():
    a = np.arange(12.0).reshape(3, 4)[:, ::2]
    t = fg.tensor(a)
    np.testing.assert_array_equal(t.data, a)
    assert t.data.flags.c_contiguous


def test_label_and_requires_grad_are_stored():
    t = fg.tensor([1.0], requires_grad=True, label="w")
    assert t.label == "w" and t.requires_grad
    assert fg.tensor([1.0]).label is None
    assert not fg.tensor([1.0]).requires_grad


def test_class_constructor_matches_factory():
    t = fg.Tensor([1.0, 2.0], requires_grad=True, label="x")
    assert t.requires_grad and t.label == "x" and t.dtype == F64


# -- properties and conversion ---------------------------------------------------------

def test_shape_dtype_ndim_size_len():
    t = fg.tensor(np.zeros((2, 3, 4), dtype=np.float32))
    assert t.shape == (2, 3, 4)
    assert t.dtype == F32
    assert t.ndim == 3
    assert t.size == 24
    assert len(t) == 2


def test_data_is_the_live_array():
    t = fg.tensor([1.0, 2.0])
    assert isinstance(t.data, np.ndarray)
    t.data[0] = 5.0
    assert t.data[0] == 5.0
    assert t.numpy() is t.data
    assert np.asarray(t) is t.data  # no copy


def test_setting_data_keeps_dtype():
    t = fg.tensor([1.0, 2.0])
    t.data = np.array([3.0, 4.0], dtype=np.float32)
    assert t.dtype == F64
    np.testing.assert_array_equal(t.data, [3.0, 4.0])


def test_asarray_with_dtype_converts():
    t = fg.tensor([1.5, 2.5])
    a = np.asarray(t, dtype=np.float32)
    assert a.dtype == F32
    np.testing.assert_array_equal(a, [1.5, 2.5])


def test_np_array_copies():
    # regression: __array__ used to ignore copy=True, so np.array(t) aliased t.data
    t = fg.tensor([1.0, 2.0])
    a = np.array(t)
    a[0] = 99.0
    assert t.data[0] == 1.0
    b = np.array(t, dtype=np.float64, copy=True)
    b[1] = 99.0
    assert t.data[1] == 2.0


def test_numpy_ufuncs_accept_tensors():
    t = fg.tensor([1.0, 4.0])
    np.testing.assert_array_equal(np.sqrt(t), [1.0, 2.0])


def test_item_float_int_bool():
    assert fg.tensor([2.5]).item() == 2.5
    assert fg.tensor([[7]]).item() == 7
    assert isinstance(fg.tensor([7]).item(), int)
    assert float(fg.tensor([[2.5]])) == 2.5
    assert int(fg.tensor(3.0)) == 3
    assert bool(fg.tensor([1.0])) is True
    assert bool(fg.tensor(0.0)) is False


@pytest.mark.parametrize("fn", [lambda t: t.item(), float, bool, int],
                         ids=["item", "float", "bool", "int"])
def test_item_of_many_elements_is_a_value_error(fn):
    with pytest.raises(ValueError):
        fn(fg.tensor([1.0, 2.0]))
    with pytest.raises(ValueError):
        fn(fg.tensor(np.zeros((0,))))


def test_repr():
    r = repr(fg.tensor([1.0, 2.0]))
    assert r.startswith("tensor(") and "1." in r and "2." in r
    assert "dtype" not in r and "requires_grad" not in r
    r = repr(fg.tensor(np.array([1.5], np.float32), requires_grad=True, label="w"))
    assert "float32" in r and "requires_grad=True" in r and "'w'" in r
    assert "int64" in repr(fg.tensor([1, 2]))
    # large tensors are summarised
    assert len(repr(fg.zeros(1000))) < 200


@pytest.mark.parametrize("op,npop", [
    (lambda a, b: a < b, np.less), (lambda a, b: a <= b, np.less_equal),
    (lambda a, b: a > b, np.greater), (lambda a, b: a >= b, np.greater_equal),
], ids=["lt", "le", "gt", "ge"])
def test_comparisons_give_bool_arrays(op, npop):
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b = np.array([2.0, 2.0, 2.0])
    t, u = fg.tensor(a, requires_grad=True), fg.tensor(b)
    for result, expected in ((op(t, 2.0), npop(a, 2.0)), (op(t, u), npop(a, b)),
                             (op(t, b), npop(a, b))):
        assert isinstance(result, np.ndarray) and result.dtype == np.bool_
        np.testing.assert_array_equal(result, expected)


def test_tensors_are_hashable():
    a, b = fg.tensor([1.0]), fg.tensor([1.0])
    assert len({a, b}) == 2


# -- factories -------------------------------------------------------------------------

@pytest.mark.parametrize("factory,fill", [(fg.zeros, 0.0), (fg.ones, 1.0)])
def test_zeros_ones(factory, fill):
    for t in (factory(2, 3), factory((2, 3)), factory([2, 3])):
        assert t.shape == (2, 3) and t.dtype == F64
        assert (t.data == fill).all()
    t = factory(4, dtype="float32", requires_grad=True, label="p")
    assert t.dtype == F32 and t.requires_grad and t.label == "p" and t.shape == (4,)
    assert factory().shape == ()


def test_full():
    t = fg.full((2, 2), 3.5)
    assert t.dtype == F64
    np.testing.assert_array_equal(t.data, np.full((2, 2), 3.5))
    t = fg.full(3, -1.0, dtype=np.float32, requires_grad=True)
    assert t.shape == (3,) and t.dtype == F32 and t.requires_grad


def test_randn():
    t = fg.randn(200, 50)
    assert t.shape == (200, 50) and t.dtype == F64
    assert abs(t.data.mean()) < 0.05 and abs(t.data.std() - 1.0) < 0.05
    assert fg.randn(3, dtype="float32").dtype == F32
    assert fg.randn(3, requires_grad=True).requires_grad


def test_randn_is_reproducible():
    a = fg.randn(5, generator=np.random.default_rng(7))
    b = fg.randn(5, generator=np.random.default_rng(7))
    np.testing.assert_array_equal(a.data, b.data)
    np.random.seed(3)
    c = fg.randn(4)
    np.random.seed(3)
    d = fg.randn(4)
    np.testing.assert_array_equal(c.data, d.data)


# -- graph flags, detach, no_grad ---------------------------------------------------------

def test_results_require_grad_when_an_input_does():
    a = fg.tensor([1.0], requires_grad=True)
    b = fg.tensor([2.0])
    assert (a * b).requires_grad
    assert not (b * b).requires_grad
    assert a.is_leaf and not (a * b).is_leaf


def test_detach_shares_data_and_stops_gradients():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    d = a.detach()
    assert not d.requires_grad and d.grad is None
    assert np.shares_memory(d.data, a.data)
    y = (a * d.exp()).sum() + (d * 3.0).sum()
    y.backward()
    np.testing.assert_array_equal(a.grad, np.exp([1.0, 2.0]))
    assert d.grad is None


def test_no_grad_records_no_graph():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    assert fg.is_grad_enabled()
    with fg.no_grad():
        assert not fg.is_grad_enabled()
        b = a * 2.0
        np.testing.assert_array_equal(b.data, [2.0, 4.0])   # values still computed
        assert not b.requires_grad and b.is_leaf
    assert fg.is_grad_enabled()
    c = a * 2.0
    assert c.requires_grad


def test_no_grad_nests_and_restores_after_exceptions():
    with fg.no_grad():
        with fg.no_grad():
            pass
        assert not fg.is_grad_enabled()
    assert fg.is_grad_enabled()
    with pytest.raises(ZeroDivisionError):
        with fg.no_grad():
            1 / 0
    assert fg.is_grad_enabled()


def test_no_grad_as_decorator():
    @fg.no_grad()
    def f(x):
        return x * 3.0

    a = fg.tensor([1.0], requires_grad=True)
    assert not f(a).requires_grad
    assert fg.is_grad_enabled()


def test_no_grad_is_per_thread():
    seen = []
    with fg.no_grad():
        th = threading.Thread(target=lambda: seen.append(fg.is_grad_enabled()))
        th.start()
        th.join()
    assert seen == [True]


def test_requires_grad_and_flag_method():
    t = fg.tensor([1.0])
    assert t.requires_grad_() is t and t.requires_grad
    with pytest.raises(ValueError):
        fg.tensor([1]).requires_grad_()


# -- backward basics -------------------------------------------------------------------------

def test_grad_is_none_until_backward():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    b = fg.tensor([1.0, 2.0], requires_grad=True)
    y = (a * a).sum()
    assert a.grad is None
    y.backward()
    np.testing.assert_array_equal(a.grad, [2.0, 4.0])
    assert a.grad.dtype == a.dtype and a.grad.shape == a.shape
    assert b.grad is None            # not in the graph


def test_backward_of_one_element_needs_no_grad():
    a = fg.tensor([[3.0]], requires_grad=True)
    (a * a).backward()
    np.testing.assert_array_equal(a.grad, [[6.0]])


def test_backward_of_many_elements_requires_grad():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="one element"):
        (a * 2.0).backward()
    (a * 2.0).backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(a.grad, [2.0, 20.0])


def test_backward_grad_may_be_a_tensor_or_list():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    (a * 2.0).backward(fg.tensor([1.0, 1.0]))
    (a * 2.0).backward([1.0, 1.0])
    np.testing.assert_array_equal(a.grad, [4.0, 4.0])


@pytest.mark.parametrize("grad", [np.ones(3), np.ones((2, 1)), np.ones(()), np.ones((1, 2))])
def test_backward_with_wrong_grad_shape_is_a_value_error(grad):
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError):
        (a * 2.0).backward(grad)


def test_backward_twice_doubles_leaf_grads_exactly():
    rng = np.random.default_rng(1)
    w = fg.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    x = fg.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    b = fg.tensor(rng.standard_normal(2), requires_grad=True)
    y = ((x @ w + b).tanh() * 3.0).sum()     # every leaf is used once
    y.backward()
    gw, gx, gb = w.grad.copy(), x.grad.copy(), b.grad.copy()
    y.backward()
    np.testing.assert_array_equal(w.grad, 2 * gw)
    np.testing.assert_array_equal(x.grad, 2 * gx)
    np.testing.assert_array_equal(b.grad, 2 * gb)


def test_backward_twice_doubles_exactly_when_a_leaf_is_used_twice():
    # regression: each use's contribution used to be added straight into .grad, so a
    # second backward computed ((g1 + g2) + g1) + g2, which is not 2 * (g1 + g2)
    a = fg.tensor([1.0], requires_grad=True)
    y = (a * 0.1 + a * 0.2).sum()
    y.backward()
    g = a.grad.copy()            # 0.30000000000000004
    y.backward()
    np.testing.assert_array_equal(a.grad, 2 * g)


def test_setting_grad_to_none_restarts_from_zero():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    y = (a * a).sum()
    y.backward()
    y.backward()
    a.grad = None
    y.backward()
    np.testing.assert_array_equal(a.grad, [2.0, 4.0])


def test_zero_grad_method():
    a = fg.tensor([1.0], requires_grad=True)
    (a * 3.0).sum().backward()
    a.zero_grad()
    np.testing.assert_array_equal(a.grad, [0.0])
    (a * 3.0).sum().backward()
    np.testing.assert_array_equal(a.grad, [3.0])


def test_backward_on_a_leaf():
    a = fg.tensor(2.0, requires_grad=True)
    a.backward()
    assert a.grad == 1.0


def test_gradient_dtype_follows_the_leaf():
    a = fg.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    (a * a).sum().backward()
    assert a.grad.dtype == F32
    np.testing.assert_array_equal(a.grad, np.array([2.0, 4.0], np.float32))


def test_shared_subexpression_gradients_add():
    a = fg.tensor([2.0], requires_grad=True)
    b = a * a            # used twice
    (b + b * 3.0).sum().backward()
    np.testing.assert_array_equal(a.grad, [16.0])
