"""Every tensor op: values vs numpy, gradients vs finite differences and PyTorch.

Each op is checked, for float32 and float64 operands of small random shapes
(broadcasting pairs for binary ops):

* values against numpy, computed in float64 from the same inputs;
* gradients of ``sum(op(x) * G)`` (G a random upstream gradient) against
  central finite differences of the numpy reference, in float64;
* values and gradients against PyTorch, when it is installed;
* replay: a lowered tape fed new leaf data gives bitwise the values (and
  gradients) of the graph rebuilt eagerly on that data.

Inputs are kept in each op's domain (log and real powers on positive values,
division by values bounded away from 0, relu/abs/max away from their kinks
and ties) so finite differences are meaningful.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastgrad as fg

F64, F32 = np.dtype(np.float64), np.dtype(np.float32)
DTYPES = [F64, F32]
EXAMPLES = 25

# -- tolerances and helpers ------------------------------------------------------

# value tolerances (against a float64 numpy reference computed on the inputs)
VTOL = {F64: dict(rtol=1e-12, atol=1e-12), F32: dict(rtol=1e-5, atol=1e-5)}
# gradient tolerances against float64 central differences
GTOL = {F64: dict(rtol=1e-4, atol=1e-6), F32: dict(rtol=1e-4, atol=1e-4)}
# against PyTorch in the same dtype
TTOL = {F64: dict(rtol=1e-10, atol=1e-12), F32: dict(rtol=1e-4, atol=1e-5)}

ANY = st.floats(-3.0, 3.0, allow_nan=False, allow_subnormal=False)
# away from 0 (relu/abs kinks, division): |x| in [0.3, 3]
NONZERO = st.one_of(st.floats(-3.0, -0.3), st.floats(0.3, 3.0))
POS = st.floats(0.2, 3.0)
EXPONENT = st.floats(-2.0, 2.0, allow_nan=False, allow_subnormal=False)

SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
PAIRS = hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, min_side=1, max_side=4)


def arrays(shape, elements):
    return hnp.arrays(np.float64, shape, elements=elements)


def assert_close(actual, expected, rtol, atol, what="value"):
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                               rtol=rtol, atol=atol, err_msg=what)


def finite_difference(f, inputs, G, eps=1e-6):
    """d sum(f(*inputs) * G) / d inputs[k], by central differences (float64)."""
    inputs = [np.array(x, dtype=np.float64) for x in inputs]
    grads = []
    for k, x in enumerate(inputs):
        g = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            up = [a.copy() for a in inputs]
            down = [a.copy() for a in inputs]
            up[k][idx] += eps
            down[k][idx] -= eps
            g[idx] = np.sum((np.asarray(f(*up), dtype=np.float64)
                             - np.asarray(f(*down), dtype=np.float64)) * G) / (2 * eps)
        grads.append(g)
    return grads


def upstream(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=shape)


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def leaves_of(values, dtype):
    return [fg.tensor(v.astype(dtype), requires_grad=True, label=f"x{i}")
            for i, v in enumerate(values)]


def check_op(fg_fn, np_fn, values, dtype, G=None):
    """Values vs numpy and gradients vs central differences for one op."""
    xs = leaves_of(values, dtype)
    out = fg_fn(*xs)
    exact_inputs = [x.data.astype(np.float64) for x in xs]
    expected = np.asarray(np_fn(*exact_inputs), dtype=np.float64)
    assert out.dtype == dtype
    assert out.shape == expected.shape
    assert_close(out.data, expected, what="value", **VTOL[dtype])
    G = upstream(out.shape) if G is None else G
    out.backward(G.astype(dtype))
    fd = finite_difference(np_fn, exact_inputs, G)
    for x, g in zip(xs, fd):
        assert x.grad is not None and x.grad.dtype == dtype and x.grad.shape == x.shape
        assert_close(x.grad, g, what=f"grad of {x.label}", **GTOL[dtype])


def check_torch(fg_fn, torch_fn, values, dtype, torch):
    """Values and gradients vs PyTorch in the same dtype."""
    xs = leaves_of(values, dtype)
    ts = [torch.tensor(v.astype(dtype), requires_grad=True) for v in values]
    out = fg_fn(*xs)
    tout = torch_fn(*ts)
    assert out.shape == tuple(tout.shape)
    assert_close(out.data, tout.detach().numpy(), what="value vs torch", **TTOL[dtype])
    G = upstream(out.shape).astype(dtype)
    out.backward(G)
    tout.backward(torch.tensor(G))
    for x, t in zip(xs, ts):
        expected = t.grad.numpy() if t.grad is not None else np.zeros(x.shape, dtype)
        assert_close(x.grad, expected, what="grad vs torch", **TTOL[dtype])


def check_replay(fg_fn, values, new_values, dtype):
    """A tape replayed on new leaf data equals the eager graph built on that data."""
    xs = leaves_of(values, dtype)
    out = fg_fn(*xs)
    tape = fg.lower(out)
    for i, (x, v) in enumerate(zip(xs, new_values)):
        if i % 2 == 0:
            x.data[...] = v.astype(dtype)          # in place
        else:
            x.data = v.astype(dtype)               # a new array
    G = upstream(out.shape, seed=1).astype(dtype)
    for x in xs:
        x.grad = None
    root = tape.forward()
    assert root is out
    tape.backward(G)

    fresh = leaves_of(new_values, dtype)
    expected = fg_fn(*fresh)
    assert same_bits(out.data, expected.data)
    expected.backward(G)
    for x, y in zip(xs, fresh):
        assert same_bits(x.grad, y.grad)


# -- unary ops (including a Python number on either side) ------------------------

def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# name: (op, numpy reference, domain); the op also applies to torch tensors.
UNARY = {
    "neg": (lambda t: -t, lambda x: -x, ANY),
    "relu": (lambda t: t.relu(), lambda x: np.maximum(x, 0.0), NONZERO),
    "tanh": (lambda t: t.tanh(), np.tanh, ANY),
    "sigmoid": (lambda t: t.sigmoid(), _sigmoid, ANY),
    "exp": (lambda t: t.exp(), np.exp, ANY),
    "log": (lambda t: t.log(), np.log, POS),
    "abs": (lambda t: t.abs(), np.abs, NONZERO),
    "pow_2": (lambda t: t ** 2, lambda x: x ** 2, ANY),
    "pow_3": (lambda t: t ** 3, lambda x: x ** 3, ANY),
    "pow_0": (lambda t: t ** 0, lambda x: x ** 0, ANY),
    "pow_neg1": (lambda t: t ** -1, lambda x: x ** -1.0, NONZERO),
    "pow_half": (lambda t: t ** 0.5, np.sqrt, POS),
    "pow_neg1.5": (lambda t: t ** -1.5, lambda x: x ** -1.5, POS),
    "add_number": (lambda t: t + 1.5, lambda x: x + 1.5, ANY),
    "radd_number": (lambda t: 1.5 + t, lambda x: 1.5 + x, ANY),
    "sub_number": (lambda t: t - 0.75, lambda x: x - 0.75, ANY),
    "rsub_number": (lambda t: 0.75 - t, lambda x: 0.75 - x, ANY),
    "mul_number": (lambda t: t * -2.5, lambda x: x * -2.5, ANY),
    "rmul_number": (lambda t: -2.5 * t, lambda x: -2.5 * x, ANY),
    "truediv_number": (lambda t: t / 4.0, lambda x: x / 4.0, ANY),
    "rtruediv_number": (lambda t: 1.5 / t, lambda x: 1.5 / x, NONZERO),
    "rpow_number": (lambda t: 1.5 ** t, lambda x: 1.5 ** x, ANY),
    "int_rpow": (lambda t: 2 ** t, lambda x: 2.0 ** x, ANY),
    "chain": (lambda t: ((t * t + 1.0).log() - t.tanh()) / (t.sigmoid() + 1.0),
              lambda x: (np.log(x * x + 1) - np.tanh(x)) / (_sigmoid(x) + 1), ANY),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(UNARY))
@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_unary_values_and_gradients(name, dtype, data):
    op, ref, dom = UNARY[name]
    x = data.draw(SHAPES.flatmap(lambda s: arrays(s, dom)), label="x")
    check_op(op, ref, [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(UNARY))
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_unary_vs_torch(name, dtype, data):
    torch = pytest.importorskip("torch")
    op, ref, dom = UNARY[name]
    x = data.draw(SHAPES.flatmap(lambda s: arrays(s, dom)), label="x")
    check_torch(op, op, [x], dtype, torch)


@pytest.mark.parametrize("name", list(UNARY))
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_unary_replay(name, data):
    op, ref, dom = UNARY[name]
    dtype = data.draw(st.sampled_from(DTYPES))
    shape = data.draw(SHAPES)
    x0 = data.draw(arrays(shape, dom))
    x1 = data.draw(arrays(shape, dom))
    check_replay(op, [x0], [x1], dtype)


def test_python_number_takes_the_tensor_dtype():
    x = fg.tensor(np.array([1.0, 2.0], dtype=np.float32))
    for y in (x + 1.5, 1.5 + x, x - 1, 2 - x, x * 3, 3 * x, x / 7.0, 7.0 / x, x ** 2,
              2 ** x, x ** 0.5, -x):
        assert y.dtype == F32
    # the number is rounded to float32 first, as numpy does with NEP 50
    np.testing.assert_array_equal((x * 0.1).data, x.data * np.float32(0.1))


# -- binary ops between tensors, with broadcasting ---------------------------------

# name: (op, numpy reference or None when the op applies to arrays as is, domains)
BINARY = {
    "add": (lambda a, b: a + b, None, ANY, ANY),
    "sub": (lambda a, b: a - b, None, ANY, ANY),
    "mul": (lambda a, b: a * b, None, ANY, ANY),
    "truediv": (lambda a, b: a / b, None, ANY, NONZERO),
    "pow": (lambda a, b: a ** b, None, POS, EXPONENT),
    "mixed": (lambda a, b: (a * b - a / (b * b + 1.0)) * (a + b).tanh(),
              lambda a, b: (a * b - a / (b * b + 1.0)) * np.tanh(a + b), ANY, ANY),
}


def draw_pair(data, name):
    op, ref, dom_a, dom_b = BINARY[name]
    shapes = data.draw(PAIRS, label="shapes").input_shapes
    a = data.draw(arrays(shapes[0], dom_a), label="a")
    b = data.draw(arrays(shapes[1], dom_b), label="b")
    return op, a, b


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(BINARY))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_binary_values_and_gradients(name, dtype, data):
    op, a, b = draw_pair(data, name)
    check_op(op, BINARY[name][1] or op, [a, b], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(BINARY))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_binary_vs_torch(name, dtype, data):
    torch = pytest.importorskip("torch")
    op, a, b = draw_pair(data, name)
    check_torch(op, op, [a, b], dtype, torch)


@pytest.mark.parametrize("name", list(BINARY))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_binary_replay(name, data):
    op, a0, b0 = draw_pair(data, name)
    dtype = data.draw(st.sampled_from(DTYPES))
    _, _, dom_a, dom_b = BINARY[name]
    a1 = data.draw(arrays(a0.shape, dom_a))
    b1 = data.draw(arrays(b0.shape, dom_b))
    check_replay(op, [a0, b0], [a1, b1], dtype)


def test_same_tensor_on_both_sides():
    x = fg.tensor([1.5, -2.0, 3.0], requires_grad=True)
    (x * x + x / x - x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * np.array([1.5, -2.0, 3.0]) - 1, rtol=1e-15)


def test_pow_with_tensor_exponent_derivatives_closed_form():
    a = fg.tensor([0.5, 2.0, 3.0], requires_grad=True)
    b = fg.tensor([3.0, -1.0, 0.5], requires_grad=True)
    (a ** b).sum().backward()
    av, bv = np.array([0.5, 2.0, 3.0]), np.array([3.0, -1.0, 0.5])
    np.testing.assert_allclose(a.grad, bv * av ** (bv - 1), rtol=1e-14)
    np.testing.assert_allclose(b.grad, av ** bv * np.log(av), rtol=1e-14)


def test_pow_zero_exponent_has_zero_gradient_even_at_zero():
    x = fg.tensor([0.0, -1.0, 2.0], requires_grad=True)
    y = x ** 0
    np.testing.assert_array_equal(y.data, [1.0, 1.0, 1.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])


def test_abs_and_relu_subgradients_at_zero():
    torch = pytest.importorskip("torch")
    x = fg.tensor([0.0, 0.0], requires_grad=True)
    (x.abs() + x.relu()).sum().backward()
    t = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    (t.abs() + t.relu()).sum().backward()
    np.testing.assert_array_equal(x.grad, t.grad.numpy())


def test_mixed_precision_promotes_and_casts_gradients_back():
    a = fg.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    b = fg.tensor(np.array([3.0, 4.0], np.float64), requires_grad=True)
    y = a * b
    assert y.dtype == F64
    y.sum().backward()
    assert a.grad.dtype == F32 and b.grad.dtype == F64
    np.testing.assert_array_equal(a.grad, [3.0, 4.0])
    np.testing.assert_array_equal(b.grad, [1.0, 2.0])


@pytest.mark.parametrize("fdtype", DTYPES, ids=str)
def test_int_tensor_with_float_tensor_gives_float(fdtype):
    i = fg.tensor([1, 2, 3])
    f = fg.tensor(np.array([0.5, 0.25, 2.0], dtype=fdtype), requires_grad=True)
    for y, expected in ((i + f, [1.5, 2.25, 5.0]), (f * i, [0.5, 0.5, 6.0]),
                        (i / f, [2.0, 8.0, 1.5]), (f - i, [-0.5, -1.75, -1.0])):
        assert y.dtype == fdtype
        np.testing.assert_allclose(y.data, expected, rtol=1e-7)
    (i * f).sum().backward()
    np.testing.assert_array_equal(f.grad, [1.0, 2.0, 3.0])
    assert i.grad is None


def test_int_tensor_with_python_float_gives_float64():
    y = fg.tensor([1, 2]) * 0.5
    assert y.dtype == F64
    np.testing.assert_array_equal(y.data, [0.5, 1.0])


def test_unary_functions_on_int_tensors_give_float64():
    i = fg.tensor([1, 2])
    for y in (i.exp(), i.log(), i.tanh(), i.relu(), -i, i.abs(), i.sum(), i.mean(), i.max()):
        assert y.dtype == F64


# -- reductions ------------------------------------------------------------------

@st.composite
def reduction_case(draw, elements=ANY, unique=False):
    shape = draw(SHAPES)
    nd = len(shape)
    choices = [st.none()]
    if nd:
        choices += [st.integers(-nd, nd - 1), hnp.valid_tuple_axes(nd, min_size=1)]
    axis = draw(st.one_of(*choices))
    keepdims = draw(st.booleans())
    if unique:
        # distinct values at least 0.1 apart: no ties, finite differences are exact
        n = int(np.prod(shape))
        ints = draw(st.lists(st.integers(-40, 40), min_size=n, max_size=n, unique=True))
        x = np.array(ints, dtype=np.float64).reshape(shape) / 10.0
    else:
        x = draw(arrays(shape, elements))
    return x, axis, keepdims


def _torch_reduce(kind, axis, keepdims, ndim):
    def f(t):
        import torch
        dims = tuple(range(ndim)) if axis is None else (
            (axis,) if isinstance(axis, int) else tuple(axis))
        fn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax}[kind]
        return fn(t, dim=dims, keepdim=keepdims)
    return f


REDUCTIONS = ["sum", "mean", "max"]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", REDUCTIONS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_reduction_values_and_gradients(kind, dtype, data):
    x, axis, keepdims = data.draw(reduction_case(unique=(kind == "max")))
    op = lambda t: getattr(t, kind)(axis=axis, keepdims=keepdims)  # noqa: E731
    check_op(op, op, [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", REDUCTIONS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_reduction_vs_torch(kind, dtype, data):
    torch = pytest.importorskip("torch")
    x, axis, keepdims = data.draw(reduction_case(unique=(kind == "max")))
    assume(x.ndim > 0)
    op = lambda t: getattr(t, kind)(axis=axis, keepdims=keepdims)  # noqa: E731
    check_torch(op, _torch_reduce(kind, axis, keepdims, x.ndim), [x], dtype, torch)


@pytest.mark.parametrize("kind", REDUCTIONS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_reduction_replay(kind, data):
    x0, axis, keepdims = data.draw(reduction_case(unique=(kind == "max")))
    x1 = data.draw(arrays(x0.shape, ANY))
    dtype = data.draw(st.sampled_from(DTYPES))
    op = lambda t: getattr(t, kind)(axis=axis, keepdims=keepdims)  # noqa: E731
    check_replay(op, [x0], [x1], dtype)


def test_reduction_default_is_all_axes():
    x = fg.tensor(np.arange(6.0).reshape(2, 3))
    assert x.sum().shape == () and x.sum().item() == 15.0
    assert x.mean().item() == 2.5
    assert x.max().item() == 5.0
    assert x.sum(keepdims=True).shape == (1, 1)


def test_reduction_negative_and_tuple_axes():
    data = np.arange(24.0).reshape(2, 3, 4)
    x = fg.tensor(data)
    np.testing.assert_array_equal(x.sum(axis=-1).data, data.sum(axis=-1))
    np.testing.assert_array_equal(x.sum(axis=(0, 2)).data, data.sum(axis=(0, 2)))
    np.testing.assert_array_equal(x.max(axis=(-1, 0), keepdims=True).data,
                                  data.max(axis=(-1, 0), keepdims=True))
    np.testing.assert_allclose(x.mean(axis=(1,)).data, data.mean(axis=1), rtol=1e-15)


def test_max_ties_share_the_gradient_like_torch_amax():
    torch = pytest.importorskip("torch")
    data = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    for axis in (None, 1, 0):
        x = fg.tensor(data, requires_grad=True)
        y = x.max(axis=axis)
        G = upstream(y.shape)
        y.backward(G)
        t = torch.tensor(data, requires_grad=True)
        ty = torch.amax(t, dim=(0, 1) if axis is None else axis)
        ty.backward(torch.tensor(G))
        np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-15)


def test_max_tie_gradient_closed_form():
    x = fg.tensor([1.0, 3.0, 3.0, 3.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad, [0.0, 1 / 3, 1 / 3, 1 / 3], rtol=1e-15)


def test_reduction_bad_axes():
    x = fg.ones(2, 3)
    with pytest.raises(ValueError):
        x.sum(axis=2)
    with pytest.raises(ValueError):
        x.max(axis=-3)
    with pytest.raises(ValueError):
        x.sum(axis=(0, 0))
    with pytest.raises(TypeError):
        x.sum(axis=1.5)


# -- shape ops -------------------------------------------------------------------

@st.composite
def reshape_case(draw):
    shape = draw(SHAPES)
    size = int(np.prod(shape))
    target = draw(st.sampled_from([
        (size,), (-1,), tuple(reversed(shape)), (1,) + tuple(shape), tuple(shape) + (1,),
        ((-1,) + tuple(shape)[1:]) if len(shape) else (1, -1),
    ]))
    x = draw(arrays(shape, ANY))
    return x, target


@st.composite
def transpose_case(draw):
    shape = draw(SHAPES)
    axes = tuple(draw(st.permutations(range(len(shape)))))
    x = draw(arrays(shape, ANY))
    style = draw(st.sampled_from(["tuple", "varargs", "none", "T"]))
    return x, axes, style


def _transpose_op(axes, style):
    if style == "tuple":
        return lambda t: t.transpose(axes)
    if style == "varargs":
        return lambda t: t.transpose(*axes)
    if style == "none":
        return lambda t: t.transpose()
    return lambda t: t.T


@st.composite
def getitem_case(draw):
    shape = draw(SHAPES)
    index = draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    x = draw(arrays(shape, ANY))
    return x, index


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@settings(max_examples=EXAMPLES, deadline=None)
@given(case=reshape_case())
def test_reshape(dtype, case):
    x, target = case
    check_op(lambda t: t.reshape(target), lambda a: a.reshape(target), [x], dtype)
    # varargs form
    check_op(lambda t: t.reshape(*target), lambda a: a.reshape(target), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@settings(max_examples=EXAMPLES, deadline=None)
@given(case=transpose_case())
def test_transpose(dtype, case):
    x, axes, style = case
    op = _transpose_op(axes, style)
    ref = (lambda a: a.transpose(axes)) if style in ("tuple", "varargs") else (lambda a: a.T)
    check_op(op, ref, [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@settings(max_examples=40, deadline=None)
@given(case=getitem_case())
def test_getitem(dtype, case):
    x, index = case
    check_op(lambda t: t[index], lambda a: a[index], [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_shape_ops_vs_torch(dtype, data):
    torch = pytest.importorskip("torch")
    x, target = data.draw(reshape_case())
    check_torch(lambda t: t.reshape(target), lambda t: t.reshape(target), [x], dtype, torch)
    x, axes, _ = data.draw(transpose_case())
    check_torch(lambda t: t.transpose(axes) if isinstance(t, fg.Tensor) else t.permute(axes),
                lambda t: t.permute(axes), [x], dtype, torch)
    x = data.draw(arrays((3, 4), ANY))
    index = (slice(1, None), slice(None, None, 2))
    check_torch(lambda t: t[index], lambda t: t[index], [x], dtype, torch)
    check_torch(lambda t: t[..., None], lambda t: t[..., None], [x], dtype, torch)
    check_torch(lambda t: t[0], lambda t: t[0], [x], dtype, torch)


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_shape_ops_replay(data):
    dtype = data.draw(st.sampled_from(DTYPES))
    x0, target = data.draw(reshape_case())
    x1 = data.draw(arrays(x0.shape, ANY))
    check_replay(lambda t: t.reshape(target) * 2.0, [x0], [x1], dtype)
    x0, axes, style = data.draw(transpose_case())
    x1 = data.draw(arrays(x0.shape, ANY))
    check_replay(_transpose_op(axes, style), [x0], [x1], dtype)
    x0, index = data.draw(getitem_case())
    x1 = data.draw(arrays(x0.shape, ANY))
    check_replay(lambda t: t[index], [x0], [x1], dtype)


def test_getitem_documented_forms():
    data = np.arange(12.0).reshape(3, 4)
    x = fg.tensor(data, requires_grad=True)
    np.testing.assert_array_equal(x[1:, ::2].data, data[1:, ::2])
    np.testing.assert_array_equal(x[0].data, data[0])
    assert x[..., None].shape == (3, 4, 1)
    np.testing.assert_array_equal(x[::-1, -1].data, data[::-1, -1])
    (x[1:, ::2].sum() + x[0].sum() * 10).backward()
    expected = np.zeros((3, 4))
    expected[1:, ::2] += 1
    expected[0] += 10
    np.testing.assert_array_equal(x.grad, expected)


def test_overlapping_slices_accumulate():
    x = fg.tensor(np.arange(5.0), requires_grad=True)
    (x[1:4] * x[0:3]).sum().backward()
    d = np.arange(5.0)
    expected = np.zeros(5)
    expected[1:4] += d[0:3]
    expected[0:3] += d[1:4]
    np.testing.assert_array_equal(x.grad, expected)


@pytest.mark.parametrize("index", [
    [0, 1], np.array([0, 2]), np.array([True, False, True]), (slice(None), [0]),
    (np.array([0, 1]), np.array([1, 0])),
], ids=["list", "int-array", "bool-mask", "mixed", "pair"])
def test_advanced_indexing_is_a_type_error(index):
    x = fg.tensor(np.arange(9.0).reshape(3, 3), requires_grad=True)
    with pytest.raises(TypeError):
        x[index]


@pytest.mark.parametrize("index", [[], np.zeros(3, dtype=bool), (Ellipsis, []), True],
                         ids=["empty-list", "false-mask", "ellipsis-empty-list", "bool"])
def test_empty_advanced_indexing_is_a_type_error(index):
    # regression: an advanced index whose result is empty used to be accepted
    x = fg.tensor(np.arange(3.0))
    with pytest.raises(TypeError):
        x[index]


def test_integer_index_out_of_range_is_an_index_error():
    with pytest.raises(IndexError):
        fg.ones(3)[3]
    with pytest.raises(IndexError):
        fg.ones(2, 2)[0, -3]


def test_bad_reshape_and_transpose():
    x = fg.ones(2, 3, label="x")
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError):
        x.transpose(0, 0)
    with pytest.raises(ValueError):
        x.transpose(1, 0, 2)


# -- matmul -------------------------------------------------------------------------

MATMUL_CASES = {
    "v@v": lambda B, m, k, n: ((k,), (k,)),
    "v@M": lambda B, m, k, n: ((k,), (k, n)),
    "M@v": lambda B, m, k, n: ((m, k), (k,)),
    "M@M": lambda B, m, k, n: ((m, k), (k, n)),
    "BM@M": lambda B, m, k, n: ((B, m, k), (k, n)),
    "BM@BM": lambda B, m, k, n: ((B, m, k), (B, k, n)),
    "M@BM": lambda B, m, k, n: ((m, k), (B, k, n)),
    "BM@v": lambda B, m, k, n: ((B, m, k), (k,)),
    "v@BM": lambda B, m, k, n: ((k,), (B, k, n)),
    "CBM@CBM": lambda B, m, k, n: ((2, B, m, k), (2, B, k, n)),
    "CBM@M": lambda B, m, k, n: ((2, B, m, k), (k, n)),
}


@st.composite
def matmul_case(draw, min_side=1):
    name = draw(st.sampled_from(sorted(MATMUL_CASES)))
    B, m, k, n = (draw(st.integers(min_side, 4)) for _ in range(4))
    sa, sb = MATMUL_CASES[name](B, m, k, n)
    return draw(arrays(sa, ANY)), draw(arrays(sb, ANY))


def _mm(a, b):
    return a @ b


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@settings(max_examples=50, deadline=None)
@given(case=matmul_case())
def test_matmul_values_and_gradients(dtype, case):
    check_op(_mm, _mm, list(case), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@settings(max_examples=25, deadline=None)
@given(case=matmul_case())
def test_matmul_vs_torch(dtype, case):
    torch = pytest.importorskip("torch")
    check_torch(_mm, _mm, list(case), dtype, torch)


@settings(max_examples=20, deadline=None)
@given(case=matmul_case(), data=st.data())
def test_matmul_replay(case, data):
    a0, b0 = case
    a1 = data.draw(arrays(a0.shape, ANY))
    b1 = data.draw(arrays(b0.shape, ANY))
    dtype = data.draw(st.sampled_from(DTYPES))
    check_replay(_mm, [a0, b0], [a1, b1], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(MATMUL_CASES))
@pytest.mark.parametrize("zero", ["B", "m", "k", "n"])
def test_matmul_zero_sizes_behave_as_numpy(name, zero, dtype):
    dims = dict(B=2, m=3, k=2, n=4)
    dims[zero] = 0
    sa, sb = MATMUL_CASES[name](**dims)
    rng = np.random.default_rng(0)
    a = rng.standard_normal(sa).astype(dtype)
    b = rng.standard_normal(sb).astype(dtype)
    x, y = fg.tensor(a, requires_grad=True), fg.tensor(b, requires_grad=True)
    out = x @ y
    expected = a @ b
    assert out.shape == expected.shape and out.dtype == expected.dtype
    np.testing.assert_allclose(out.data, expected, **VTOL[dtype])
    G = upstream(out.shape).astype(dtype)
    out.backward(G)
    ga, gb = finite_difference(_mm, [a, b], G)  # all-zero or empty, as numpy's
    np.testing.assert_allclose(x.grad, ga, **GTOL[dtype])
    np.testing.assert_allclose(y.grad, gb, **GTOL[dtype])


def test_matmul_operators_with_arrays_and_lists():
    w = fg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal((w @ a).data, w.data)
    np.testing.assert_array_equal((a @ w).data, w.data)
    np.testing.assert_array_equal((w @ [1.0, 1.0]).data, [3.0, 7.0])


def test_matmul_shape_errors_name_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        fg.ones(2, 3) @ fg.ones(4, 5)
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        fg.ones(3) @ fg.ones(4)
    with pytest.raises(ValueError):
        fg.ones(2, 2, 3) @ fg.ones(3, 3, 4)      # unequal batches
    with pytest.raises(ValueError):
        fg.tensor(2.0) @ fg.ones(2)              # 0-d operand
    with pytest.raises(ValueError):
        fg.ones(2, 3) @ fg.ones(2, 2, 3)


def test_broadcast_error_names_shapes():
    for op in (lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b,
               lambda a, b: a / b, lambda a, b: a ** b):
        with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
            op(fg.ones(2, 3), fg.ones(4))


def test_ndarrays_and_numpy_scalars_on_the_left_give_tensors():
    x = fg.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    a = np.array([3.0, 4.0])
    for y, expected in ((a + x, a + 1.0 * x.data), (a * x, a * x.data), (a - x, a - x.data),
                        (a / x, a / x.data)):
        assert isinstance(y, fg.Tensor) and y.requires_grad
        assert y.dtype == F64                        # float64 array with a float32 tensor
        np.testing.assert_allclose(y.data, expected, rtol=1e-15)
    y = np.float64(2.0) * x                          # a numpy scalar acts as a number
    assert isinstance(y, fg.Tensor) and y.dtype == F32
    (a * x).sum().backward()
    np.testing.assert_array_equal(x.grad, np.array([3.0, 4.0], np.float32))


def test_unsupported_operand_type():
    with pytest.raises(TypeError):
        fg.ones(2) + "a"
    with pytest.raises(TypeError):
        fg.ones(2) * object()


# -- empty arrays, NaN, deep chains -----------------------------------------------------

EMPTY_SHAPES = [(0,), (0, 3), (3, 0), (2, 0, 4)]


@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=str)
@pytest.mark.parametrize("name", ["neg", "relu", "tanh", "sigmoid", "exp", "log", "abs",
                                  "pow_2", "rsub_number"])
def test_unary_on_empty_behaves_as_numpy(name, shape):
    op, ref, _ = UNARY[name]
    x = fg.tensor(np.zeros(shape), requires_grad=True)
    y = op(x)
    assert y.shape == shape
    y.backward(np.zeros(shape))
    assert x.grad.shape == shape


@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=str)
def test_reductions_on_empty_behave_as_numpy(shape):
    data = np.zeros(shape)
    x = fg.tensor(data, requires_grad=True)
    s = x.sum()
    assert s.item() == 0.0
    s.backward()
    assert x.grad.shape == shape
    for axis in range(len(shape)):
        for keepdims in (False, True):
            y = x.sum(axis=axis, keepdims=keepdims)
            expected = data.sum(axis=axis, keepdims=keepdims)
            assert y.shape == expected.shape
            np.testing.assert_array_equal(y.data, expected)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")      # numpy warns on empty means
                m = x.mean(axis=axis, keepdims=keepdims)
                expected_mean = data.mean(axis=axis, keepdims=keepdims)
            np.testing.assert_array_equal(m.data, expected_mean)
            if shape[axis] != 0:
                np.testing.assert_array_equal(x.max(axis=axis, keepdims=keepdims).data,
                                              data.max(axis=axis, keepdims=keepdims))
            else:
                with pytest.raises(ValueError):
                    x.max(axis=axis, keepdims=keepdims)
    with pytest.raises(ValueError):
        x.max()


def test_mean_of_empty_is_nan_like_numpy():
    x = fg.tensor(np.zeros((0,)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(x.mean().item())


def test_empty_broadcasting_and_shape_ops():
    a = fg.tensor(np.zeros((0, 3)), requires_grad=True)
    b = fg.tensor(np.ones((1, 3)), requires_grad=True)
    y = a * b + a
    assert y.shape == (0, 3)
    y.backward(np.zeros((0, 3)))
    np.testing.assert_array_equal(b.grad, np.zeros((1, 3)))
    assert a.reshape(3, 0).shape == (3, 0)
    assert a.T.shape == (3, 0)
    assert a[1:].shape == (0, 3)
    assert fg.ones(3)[3:].shape == (0,)


@pytest.mark.parametrize("name", ["neg", "relu", "tanh", "sigmoid", "exp", "log", "abs",
                                  "pow_2", "pow_half", "rtruediv_number", "rpow_number"])
def test_nan_propagates_through_unary_ops(name):
    op, ref, _ = UNARY[name]
    x = fg.tensor([np.nan, 1.0], requires_grad=True)
    y = op(x)
    assert np.isnan(y.data[0])
    y.sum().backward()      # no crash; the gradient at a nan input is nan
    assert x.grad.shape == (2,)


def test_nan_propagates_through_binary_reductions_and_matmul():
    x = fg.tensor([[np.nan, 1.0], [2.0, 3.0]], requires_grad=True)
    assert np.isnan((x + 1.0).data[0, 0])
    assert np.isnan((x * x).data[0, 0])
    assert np.isnan(x.sum().item())
    assert np.isnan(x.mean().item())
    assert np.isnan(x.max().item())
    np.testing.assert_array_equal(np.isnan(x.max(axis=1).data), [True, False])
    y = x @ fg.ones(2, 2)
    np.testing.assert_array_equal(np.isnan(y.data), [[True, True], [False, False]])
    y.sum().backward()
    assert x.grad.shape == (2, 2)


def test_division_by_zero_and_log_of_zero_give_infinities():
    with np.errstate(all="ignore"):
        x = fg.tensor([1.0, -1.0, 0.0])
        np.testing.assert_array_equal((x / 0.0).data[:2], [np.inf, -np.inf])
        assert np.isnan((x / 0.0).data[2])
        assert fg.tensor([0.0]).log().item() == -np.inf
        assert fg.tensor([1000.0]).exp().item() == np.inf


def test_sigmoid_is_stable_for_large_inputs():
    x = fg.tensor([-1000.0, 1000.0], requires_grad=True)
    y = x.sigmoid()
    np.testing.assert_array_equal(y.data, [0.0, 1.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


def test_deep_chain_does_not_recurse():
    limit = sys.getrecursionlimit()
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = x
    for _ in range(limit * 3):
        y = y * 1.0 + 0.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
